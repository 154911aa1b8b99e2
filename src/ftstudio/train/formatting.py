"""Examples to token ids with the base model's own chat template, and labels on the assistant's tokens only.

Assistant spans are found by rendering the conversation's prefixes as text and diffing them: the text the template
adds for assistant turn *i* lies between "everything before it, with the generation prompt" and "everything up to
and including it". Tokens are then labelled by their character offsets, so the method works for every template
(no `{% generation %}` markers needed) and for tokenizers that merge across the prompt/answer boundary.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ftstudio.dataset import Example
from ftstudio.errors import BadInput

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One example as the model sees it: ids, labels (IGNORE where masked), its data line, whether truncated."""

    input_ids: list[int]
    labels: list[int]
    line: int
    truncated: bool = False

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class Formatter:
    """Renders conversations with one tokenizer's chat template; built once per run with `Formatter.create`."""

    tokenizer: Any
    system_prompt: str | None = None
    system_supported: bool = True
    end_ids: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def create(cls, tokenizer: Any, system_prompt: str | None = None, end_ids: Sequence[int] = ()) -> Formatter:
        """Check the tokenizer can render chats here; BadInput naming the problem otherwise."""
        if not getattr(tokenizer, "chat_template", None):
            raise BadInput(
                f"the tokenizer of {getattr(tokenizer, 'name_or_path', 'the base model')} has no chat template",
                hint="pick an instruct/chat variant of the model (its tokenizer_config.json has a chat_template)",
            )
        if not getattr(tokenizer, "is_fast", False):
            raise BadInput(
                "the base model's tokenizer has no fast (Rust) version, which training needs for token offsets",
                hint="pick a model that ships tokenizer.json",
            )
        ends = set(end_ids)
        if tokenizer.eos_token_id is not None:
            ends.add(tokenizer.eos_token_id)
        return cls(tokenizer, system_prompt, _accepts_system(tokenizer), frozenset(ends))

    def messages(self, example: Example) -> list[dict[str, str]]:
        """The example's messages as dicts, with the system prompt applied (folded into the first user turn when
        the template rejects a system role, as Mistral's does)."""
        msgs = [{"role": m.role, "content": m.content} for m in example.messages]
        if self.system_prompt and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        if msgs[0]["role"] == "system" and not self.system_supported:
            system = msgs.pop(0)["content"]
            msgs[0] = {"role": "user", "content": f"{system}\n\n{msgs[0]['content']}"}
        return msgs

    def render(self, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids that ask the model for the next assistant turn (chat and answer comparison use this)."""
        text = self.render(messages, generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def assistant_spans(self, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
        """The rendered text and the character span of every assistant turn (its content and end-of-turn)."""
        full = self.render(messages)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self.render(messages[:i], generation_prompt=True) if i else ""
            through = self.render(messages[: i + 1])
            start = len(before) if full.startswith(before) else _common_prefix(before, full)
            end = _common_prefix(through, full)
            content = message["content"].strip()
            if not any(e in full[start:end] for e in self._end_texts()) and content and full.startswith(content, start):
                # The template renders a turn differently once later turns follow (Qwen 3 drops the empty think
                # block of earlier answers): the turn then ends at its end-of-turn token in the full text.
                end = self._turn_end(full, start) or end
            if end > start:
                spans.append((start, end))
        return full, spans

    def _end_texts(self) -> list[str]:
        return [t for t in self.tokenizer.convert_ids_to_tokens(sorted(self.end_ids)) if t]

    def _turn_end(self, full: str, start: int) -> int | None:
        found = [i + len(e) for e in self._end_texts() if (i := full.find(e, start)) >= 0]
        if not found:
            return None
        end = min(found)
        while end < len(full) and full[end] in "\n ":  # the newline the template writes after the token
            end += 1
        return end

    def encode(self, example: Example, max_length: int | None = None) -> Encoded:
        """Token ids and labels for one example; truncated at `max_length` (marked) when longer."""
        text, spans = self.assistant_spans(self.messages(example))
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = enc["input_ids"]
        labels = [IGNORE] * len(ids)
        for k, (a, b) in enumerate(enc["offset_mapping"]):
            # A token straddling the start of a span is trained (its answer part is predicted); one straddling the
            # end is not (the char-level common prefix can stop inside the next turn's first special token).
            if b > a and any(a < end and start < b <= end for start, end in spans):
                labels[k] = ids[k]
        # Special tokens of an assistant turn (its end-of-turn) can come with empty offsets in some tokenizers.
        for k, (a, b) in enumerate(enc["offset_mapping"]):
            if a == b and k and labels[k - 1] != IGNORE and ids[k] in self.end_ids:
                labels[k] = ids[k]
        truncated = max_length is not None and len(ids) > max_length
        if truncated:
            ids, labels = ids[:max_length], labels[:max_length]
        return Encoded(ids, labels, example.line, truncated)

    def mask_segments(self, encoded: Encoded) -> list[tuple[str, bool]]:
        """The example as consecutive (text, trained) pieces: what `--show-mask` prints."""
        segments: list[tuple[str, bool]] = []
        run: list[int] = []
        state = None
        for token, label in zip(encoded.input_ids, encoded.labels, strict=True):
            trained = label != IGNORE
            if state is not None and trained != state:
                segments.append((self.tokenizer.decode(run), state))
                run = []
            run.append(token)
            state = trained
        if run:
            segments.append((self.tokenizer.decode(run), bool(state)))
        return segments


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _accepts_system(tokenizer: Any) -> bool:
    marker = "ftstudio-system-probe"
    probe = [
        {"role": "system", "content": marker},
        {"role": "user", "content": "U"},
        {"role": "assistant", "content": "A"},
    ]
    try:
        text = tokenizer.apply_chat_template(probe, tokenize=False)
    except Exception:  # jinja2's TemplateError from raise_exception(...), or anything the template throws
        return False
    return marker in text


@dataclass(frozen=True)
class Prepared:
    """The data ready for training: encoded train and eval splits and what pre-flight found."""

    train: list[Encoded]
    eval: list[Encoded]
    eval_examples: list[Example]
    truncated: int
    dropped: int
    warnings: list[str]


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded train/eval split: `fraction` of `n` (at least one when fraction > 0 and n ≥ 2) held out."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_eval = 0 if fraction <= 0 or n < 2 else max(1, round(n * fraction))
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def prepare(
    formatter: Formatter,
    examples: Sequence[Example],
    *,
    max_length: int,
    too_long: str,
    eval_fraction: float,
    seed: int,
) -> Prepared:
    """Encode, split and pre-flight the examples; BadInput when training could not learn anything from them."""
    if not examples:
        raise BadInput("the training data has no examples", hint=_NO_DATA_HINT)
    warnings: list[str] = []
    tok = formatter.tokenizer
    if tok.pad_token_id is None:
        warnings.append("the tokenizer has no padding token; padding uses the end token, never as a label")
    elif tok.pad_token_id in formatter.end_ids:
        warnings.append(
            f"the padding token is the end token ({tok.pad_token!r}); handled: labels come from the assistant "
            "spans, so the end token is still learned"
        )
    encoded, problems, truncated, dropped = [], [], 0, 0
    for example in examples:
        enc = formatter.encode(example, max_length)
        if enc.truncated:
            truncated += 1
            if too_long == "drop":
                dropped += 1
                continue
        if enc.trained_tokens == 0:
            if enc.truncated:
                dropped += 1  # the answer lay wholly past max_length
                continue
            problems.append(f"line {example.line}: the chat template leaves no assistant token to train on")
        elif not enc.truncated and not _ends_turn(enc, formatter.end_ids):
            tail = tok.decode(enc.input_ids[-8:])
            problems.append(f"line {example.line}: the last answer has no end-of-turn token to learn (ends {tail!r})")
        encoded.append((example, enc))
    if problems:
        raise BadInput(
            "pre-flight refused the data:\n  " + "\n  ".join(problems[:10]) + _more(problems),
            hint="the base model's chat template does not mark answers as this trainer expects; pick a chat model "
            "whose template closes each assistant turn with its end token",
        )
    if not encoded:
        raise BadInput(
            f"all {len(examples)} examples are longer than max_seq_length={max_length} tokens",
            hint="raise train.max_seq_length (project.toml or --max-seq-length), or set train.too_long = 'truncate'",
        )
    if truncated:
        verb = "dropped" if too_long == "drop" else "truncated"
        warnings.append(f"{truncated} example(s) longer than {max_length} tokens were {verb}")
    if dropped and too_long != "drop":
        warnings.append(f"{dropped} truncated example(s) kept no answer token and were dropped")
    train_idx, eval_idx = split_indices(len(encoded), eval_fraction, seed)
    if not eval_idx:
        warnings.append("too few examples for a held-out split; no evaluation loss will be reported")
    return Prepared(
        [encoded[i][1] for i in train_idx],
        [encoded[i][1] for i in eval_idx],
        [encoded[i][0] for i in eval_idx],
        truncated,
        dropped,
        warnings,
    )


def _ends_turn(enc: Encoded, end_ids: frozenset[int]) -> bool:
    """Whether the last run of trained tokens holds an end-of-turn token (so the model learns to stop)."""
    k = max(k for k, label in enumerate(enc.labels) if label != IGNORE)
    while k >= 0 and enc.labels[k] != IGNORE:
        if enc.input_ids[k] in end_ids:
            return True
        k -= 1
    return False


def _more(items: list[str]) -> str:
    return f"\n  … and {len(items) - 10} more" if len(items) > 10 else ""


_NO_DATA_HINT = (
    "generate examples in the Generate tab (`ftstudio generate NAME …`), or put your own JSONL in data/sft_data.jsonl: "
    'one {"instruction": "…", "output": "…"} per line (ShareGPT and OpenAI chat forms work too)'
)


def end_of_turn_ids(base_model: str, tokenizer) -> list[int]:
    """The model's end-of-turn ids: generation_config's eos ids, and every family's end-of-turn token the vocabulary
    has (Llama 3's <|eot_id|>, ChatML's <|im_end|>, Phi-3's <|end|>, Gemma's <end_of_turn>…)."""
    from transformers import GenerationConfig

    from ftstudio.families import end_of_turn_tokens

    ids = []
    try:
        eos = GenerationConfig.from_pretrained(base_model).eos_token_id
        ids += eos if isinstance(eos, list) else [eos] if eos is not None else []
    except OSError:
        pass
    for token in end_of_turn_tokens():
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and token in tokenizer.get_vocab():
            ids.append(tid)
    return ids
