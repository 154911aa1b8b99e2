"""Verifying a GGUF: llama.cpp must tokenize and answer as the merged model does in transformers.

For a few held-out prompts (the last examples of the training data, else built-in ones), rendered with the model's
chat template: llama.cpp's token ids must equal the HF tokenizer's; llama.cpp decodes greedily; transformers, fed the
same tokens, must rank each token llama.cpp chose first (within a tolerance that grows with quantization, relative to
the logit range); and the end-of-turn token must be one llama.cpp stops on. A failed check is an error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftstudio.errors import BadInput
from ftstudio.export.chat import ChatFormat
from ftstudio.progress import ProgressFn, report

BUILT_IN_PROMPTS = (
    "What is three quarters of a pizza as a fraction?",
    "Explain photosynthesis in one sentence.",
    "How many sides does a hexagon have?",
)
# Largest gap, as a fraction of the position's logit range, between transformers' best logit and its logit for the
# token llama.cpp picked. Quantization moves logits; f32 only by rounding.
TOLERANCE = {"f32": 1e-3, "f16": 1e-2, "bf16": 3e-2, "q8_0": 3e-2, "q4_0": 0.15, "q4_k_m": 0.15, "q5_k_m": 0.1,
             "q6_k": 0.08}  # fmt: skip


@dataclass
class PromptCheck:
    prompt: str
    tokens: int
    same_tokenization: bool
    agreed: int  # generated tokens transformers ranks first too (within tolerance)
    worst_gap: float
    stopped_on_end_of_turn: bool
    text: str


@dataclass
class Verification:
    passed: bool
    quant: str
    end_of_turn: str
    end_of_turn_stops: bool
    prompts: list[PromptCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def held_out_prompts(data_file: Path | None, count: int, system: str | None) -> list[list[dict[str, str]]]:
    """Conversations to verify with: the last `count` examples of the data file without their answers."""
    conversations: list[list[dict[str, str]]] = []
    if data_file is not None and data_file.is_file():
        from ftstudio.dataset import read_dataset

        examples = read_dataset(data_file).examples[-count:]
        for ex in examples:
            conversations.append([{"role": m.role, "content": m.content} for m in ex.messages[:-1]])
    for prompt in BUILT_IN_PROMPTS[: max(0, count - len(conversations))]:
        conversations.append([{"role": "user", "content": prompt}])
    if system:
        conversations = [
            c if c[0]["role"] == "system" else [{"role": "system", "content": system}, *c] for c in conversations
        ]
    return conversations


def verify_gguf(
    gguf_path: Path,
    merged_dir: Path,
    quant: str,
    conversations: list[list[dict[str, str]]],
    *,
    max_tokens: int = 8,
    progress: ProgressFn | None = None,
) -> Verification:
    """Compare llama.cpp on `gguf_path` with transformers on `merged_dir`; returns what was found (see `passed`)."""
    import llama_cpp
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    chat = ChatFormat.from_folder(merged_dir)
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    model.eval()
    eot = chat.end_of_turn()
    eot_id = tokenizer.convert_tokens_to_ids(eot)
    if not chat.supports_system():
        conversations = [_fold_system(c) for c in conversations]

    try:
        llm = llama_cpp.Llama(str(gguf_path), n_ctx=2048, logits_all=True, verbose=False, n_threads=None)
    except ValueError as exc:  # the binding's only word for a file llama.cpp's loader refused
        problem = f"llama.cpp could not load {gguf_path.name} ({exc}); its log says why when run with verbose=True"
        return Verification(passed=False, quant=quant, end_of_turn=eot, end_of_turn_stops=False, problems=[problem])
    try:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        eot_stops = bool(llama_cpp.llama_vocab_is_eog(vocab, eot_id))
        result = Verification(passed=True, quant=quant, end_of_turn=eot, end_of_turn_stops=eot_stops)
        if not eot_stops:
            result.problems.append(f"llama.cpp does not stop on the end-of-turn token {eot!r} (id {eot_id})")
        for n, messages in enumerate(conversations):
            text = chat.render(messages)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            cpp_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            same = cpp_ids == ids
            if not same:
                result.problems.append(f"prompt {n + 1}: llama.cpp tokenizes it differently from the HF tokenizer")
            llm.reset()
            llm.eval(ids)
            generated: list[int] = []
            stopped = False
            for _ in range(max_tokens):
                token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                generated.append(token)
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    stopped = token == eot_id
                    break
                llm.eval([token])
            with torch.no_grad():
                logits = model(torch.tensor([ids + generated])).logits[0, len(ids) - 1 : -1].numpy()
            gaps = [
                float((row.max() - row[tok]) / max(float(row.max() - row.min()), 1e-9))
                for row, tok in zip(logits, generated, strict=True)
            ]
            agreed = sum(g <= TOLERANCE[quant] for g in gaps)
            if agreed < len(generated):
                first = next(i for i, g in enumerate(gaps) if g > TOLERANCE[quant])
                result.problems.append(
                    f"prompt {n + 1}: token {first + 1} from llama.cpp is not transformers' choice "
                    f"(gap {gaps[first]:.3f} of the logit range, tolerance {TOLERANCE[quant]})"
                )
            result.prompts.append(
                PromptCheck(messages[-1]["content"], len(generated), same, agreed, max(gaps), stopped,
                            tokenizer.decode(generated))
            )  # fmt: skip
            report(progress, "verify", n + 1, len(conversations), f"prompt {n + 1}")
        result.passed = not result.problems
        return result
    finally:
        llm.close()


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """For templates without a system role (Mistral): the system text opens the first user turn."""
    if messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    if not rest or rest[0]["role"] != "user":
        raise BadInput("a conversation with a system message must continue with a user message")
    rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    return rest
