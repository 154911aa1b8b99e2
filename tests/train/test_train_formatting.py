"""Chat-template rendering and answer-only labels, checked by decoding exactly the trained tokens."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from ftstudio.dataset import parse_record
from ftstudio.errors import BadInput
from ftstudio.train.formatting import IGNORE, Formatter, end_of_turn_ids, prepare, split_indices

CONVERSATION = parse_record(
    {
        "messages": [
            {"role": "user", "content": "What is 3/4 + 1/2?"},
            {"role": "assistant", "content": "It is 1 1/4."},
            {"role": "user", "content": "And 25 × 4?"},
            {"role": "assistant", "content": "100, like four quarters."},
        ]
    },
    7,
)
# What each family's template closes an assistant turn with (trained too, so the model learns to stop).
TURN_END = {"llama": "<|eot_id|>", "qwen2": "<|im_end|>\n", "phi3": "<|end|>\n", "mistral": "</s>"}


def formatter_for(tiny_model, arch: str, system: str | None = None) -> Formatter:
    folder = tiny_model(arch)
    tok = AutoTokenizer.from_pretrained(folder)
    return Formatter.create(tok, system, end_of_turn_ids(str(folder), tok))


def trained_runs(enc, tok) -> list[str]:
    """The decoded text of each contiguous run of trained tokens."""
    runs, current = [], []
    for token, label in zip(enc.input_ids, enc.labels, strict=True):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            runs.append(tok.decode(current))
            current = []
    if current:
        runs.append(tok.decode(current))
    return runs


@pytest.mark.parametrize("arch", ["llama", "qwen2", "phi3", "mistral"])
def test_only_the_answers_and_their_end_token_are_trained(tiny_model, arch):
    fmt = formatter_for(tiny_model, arch)
    enc = fmt.encode(CONVERSATION)
    runs = trained_runs(enc, fmt.tokenizer)
    end = TURN_END[arch]
    last_end = end + "<|endoftext|>" if arch == "phi3" else end  # Phi-3's template appends eos after the chat
    # Spaces compared loosely: SentencePiece-style decoding (phi3) shows a "▁" before the newline after <|end|>.
    expected = ["It is 1 1/4." + end, "100, like four quarters." + last_end]
    assert [r.replace(" ", "") for r in runs] == [e.replace(" ", "") for e in expected]
    assert runs[0].startswith("It is 1 1/4.") and runs[1].startswith("100, like four quarters.")
    # And everything else, the questions included, is masked.
    masked = fmt.tokenizer.decode([t for t, label in zip(enc.input_ids, enc.labels, strict=True) if label == IGNORE])
    assert "What is 3/4" in masked and "25 × 4" in masked and "1 1/4" not in masked


def test_system_prompt_folds_into_the_first_turn_when_the_template_rejects_it(tiny_model):
    mistral = formatter_for(tiny_model, "mistral", system="Answer briefly.")
    assert not mistral.system_supported
    text = mistral.render(mistral.messages(CONVERSATION))
    assert text.startswith("<s>[INST] Answer briefly.\n\nWhat is 3/4")
    llama = formatter_for(tiny_model, "llama", system="Answer briefly.")
    rendered = llama.render(llama.messages(CONVERSATION))
    # Llama 3.2's system turn: its dated header, then the system text.
    assert rendered.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge")
    assert "\n\nAnswer briefly.<|eot_id|><|start_header_id|>user" in rendered
    # The system prompt is never trained on.
    assert all("briefly" not in run for run in trained_runs(llama.encode(CONVERSATION), llama.tokenizer))


def test_preflight_truncates_or_drops_long_examples_and_counts_them(tiny_model):
    fmt = formatter_for(tiny_model, "qwen2")
    short = parse_record({"instruction": "Hi?", "output": "Hello."}, 1)
    long = parse_record({"instruction": "Talk?", "output": "word " * 200}, 2)
    # Qwen 2.5's template writes its default system prompt first: 128 tokens hold the short example, not the long.
    kept = prepare(fmt, [short, long] * 3, max_length=128, too_long="truncate", eval_fraction=0.2, seed=1)
    assert kept.truncated == 3 and len(kept.train) + len(kept.eval) == 6
    assert max(len(e) for e in kept.train + kept.eval) == 128
    assert any("3 example(s) longer than 128 tokens were truncated" in w for w in kept.warnings)
    dropped = prepare(fmt, [short, long] * 3, max_length=128, too_long="drop", eval_fraction=0.2, seed=1)
    assert dropped.dropped == 3 and len(dropped.train) + len(dropped.eval) == 3


def test_preflight_refuses_a_template_that_trains_nothing(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model("qwen2"))
    # A broken template that drops assistant turns: a known way to train on nothing.
    tok.chat_template = "{% for m in messages %}{% if m['role'] == 'user' %}<|im_start|>user\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"  # noqa: E501
    fmt = Formatter.create(tok)
    with pytest.raises(BadInput, match="line 7: the chat template leaves no assistant token"):
        prepare(fmt, [CONVERSATION], max_length=512, too_long="truncate", eval_fraction=0, seed=0)


def test_pad_equal_to_eos_is_reported_as_handled(tiny_model):
    fmt = formatter_for(tiny_model, "phi3")
    assert fmt.tokenizer.pad_token_id == fmt.tokenizer.eos_token_id
    prepared = prepare(fmt, [CONVERSATION] * 4, max_length=512, too_long="truncate", eval_fraction=0.25, seed=0)
    assert any("padding token is the end token" in w and "handled" in w for w in prepared.warnings)


def test_split_is_seeded_and_holds_out_at_least_one():
    assert split_indices(10, 0.05, seed=3) == split_indices(10, 0.05, seed=3)
    train, held = split_indices(10, 0.05, seed=3)
    assert len(held) == 1 and sorted(train + held) == list(range(10))
    assert split_indices(100, 0.1, seed=3)[1] != split_indices(100, 0.1, seed=4)[1]


def test_show_mask_cli_marks_the_trained_tokens(cli, make_project):
    project = make_project("llama")
    result = cli("data", project.name, "--show-mask", "--line", "2", "--json")
    assert result.code == 0, result.stderr
    shown = result.json()
    assert shown["line"] == 2
    assert [s["text"] for s in shown["segments"] if s["trained"]] == ["1 plus 2 is 3.<|eot_id|>"]
    human = cli("data", project.name, "--show-mask")
    assert "⟦1 plus 1 is 2.<|eot_id|>⟧" in human.stdout
