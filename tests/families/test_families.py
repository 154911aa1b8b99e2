"""Every family in the registry, end to end on its tiny model with its real template: trained a few steps, exported
to GGUF, and read back by llama.cpp (llama-cpp-python) as transformers reads the merged model."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftstudio.dataset import parse_record
from ftstudio.export.gguf.quantize import llama_cpp_available
from ftstudio.families import FAMILIES, for_template
from ftstudio.train.formatting import IGNORE, Formatter, end_of_turn_ids
from go_render import go_render

NAMES = list(FAMILIES)
needs_llama = pytest.mark.skipif(not llama_cpp_available(), reason="needs llama-cpp-python")

# Long enough (a few hundred tokens) that per-position comparisons mean something; several scripts, digits, code.
LONG = (
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen; plants don't eat soil! "
    "In 1969, two astronauts walked on the Moon. Newton's second law says F = m * a: a 2 kg ball pushed with 10 N "
    "accelerates at 5 m/s². Une fraction est une partie d'un tout; Größe, façade. Числа и дроби. 数学は楽しい。 "
    "def area(w, h):\n    return w * h  # rectangles\n"
) * 2
SYSTEM = {"role": "system", "content": "You are a patient maths tutor."}
U1 = {"role": "user", "content": "What is 25 × 4? Don't guess: 12345, naïve café 🙂"}
A1 = {"role": "assistant", "content": "It is 100.\n\n- first\n- second\n\n" + LONG}
U2 = {"role": "user", "content": 'And "3/4 + 1/2" — {{ braces }}?'}
# With a system turn: templates that write a long default one otherwise (SmolLM3's) keep the prompt short.
CHAT = [SYSTEM, U1, A1, U2]


def _hf_messages(name: str, messages: list[dict]) -> list[dict]:
    """The conversation as training renders it: a system turn folded into the first user turn where the
    template has no system role."""
    if FAMILIES[name].chat.system_role or messages[0]["role"] != "system":
        return messages
    first = {"role": "user", "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}
    return [first, *messages[2:]]


@pytest.fixture(scope="module")
def reference(exported):
    """Per family: the chat-templated prompt, its HF ids and transformers' logits on the merged model (2-D weights
    rounded to f16 for `weights="f16"`, as that GGUF stores them)."""
    cache = {}

    def get(name: str, weights: str = "f32"):
        if (name, weights) not in cache:
            merged = exported(name).merged
            tokenizer = AutoTokenizer.from_pretrained(merged)
            model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
            if weights == "f16":
                with torch.no_grad():
                    for param in model.parameters():
                        if param.dim() == 2:
                            param.copy_(param.half().float())
            text = tokenizer.apply_chat_template(_hf_messages(name, CHAT), tokenize=False, add_generation_prompt=True)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].numpy()
            cache[name, weights] = (text, ids, logits)
        return cache[name, weights]

    return get


def _llama(path):
    import llama_cpp

    # One thread: with several, ggml's summation order (and a near-tie's winner) can change between runs.
    return llama_cpp.Llama(str(path), n_ctx=2048, logits_all=True, verbose=False, n_threads=1)


def _logits(path, ids):
    llm = _llama(path)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


@needs_llama
@pytest.mark.parametrize("name", NAMES)
def test_llama_cpp_tokenizes_the_chat_prompt_as_hf_and_f32_logits_agree(exported, reference, name):
    text, ids, ref = reference(name)
    llm = _llama(exported(name).gguf["f32"])
    try:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
    finally:
        llm.close()
    got = _logits(exported(name).gguf["f32"], ids)
    span = ref.max(-1) - ref.min(-1)
    assert (np.abs(got - ref).max(-1) < 1e-3 * span).all()


@needs_llama
@pytest.mark.parametrize("name", NAMES)
def test_f16_picks_the_same_top1_at_every_position(exported, reference, name):
    _, ids, ref = reference(name, "f16")
    got = _logits(exported(name).gguf["f16"], ids)
    span = ref.max(-1) - ref.min(-1)
    # llama.cpp multiplies f16 weights with activations rounded to f16 (about 5e-4 of the range): the same top-1
    # wherever transformers' best two logits are further apart than 1e-3 of the range; at a closer near-tie,
    # llama.cpp's pick is within that of the best.
    top2 = np.sort(ref, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > 1e-3 * span
    chosen = ref[np.arange(len(ids)), got.argmax(-1)]
    assert (got.argmax(-1) == ref.argmax(-1))[decisive].all()
    assert ((ref.max(-1) - chosen) <= 1e-3 * span).all()
    assert decisive.mean() > 0.95


@needs_llama
@pytest.mark.parametrize("name", NAMES)
def test_q8_0_tensors_equal_llama_cpps_own_quantization(exported, name, tmp_path):
    import llama_cpp

    ours = exported(name).gguf["q8_0"]
    theirs = tmp_path / "llama-cpp-q8_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(gguf.LlamaFileType.MOSTLY_Q8_0)
    params.nthread = 1
    assert llama_cpp.llama_model_quantize(str(exported(name).gguf["f32"]).encode(), str(theirs).encode(), params) == 0
    mine = {t.name: t for t in gguf.GGUFReader(ours).tensors}
    cpp = {t.name: t for t in gguf.GGUFReader(theirs).tensors}
    assert set(mine) == set(cpp)
    for tensor_name, t in cpp.items():
        assert mine[tensor_name].tensor_type == t.tensor_type, tensor_name
        assert np.array_equal(np.asarray(mine[tensor_name].data), np.asarray(t.data)), tensor_name
    assert any(t.tensor_type == gguf.GGMLQuantizationType.Q8_0 for t in cpp.values())


@needs_llama
@pytest.mark.parametrize("name", NAMES)
def test_the_end_of_turn_token_stops_generation(exported, reference, name):
    import llama_cpp

    _, ids, _ = reference(name)
    tokenizer = AutoTokenizer.from_pretrained(exported(name).merged)
    eot = tokenizer.convert_tokens_to_ids(FAMILIES[name].chat.end_of_turn)
    llm = _llama(exported(name).gguf["f32"])
    try:
        assert llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), eot)
        # Made the most likely token, the end-of-turn ends the answer at once.
        out = llm.create_completion(ids, max_tokens=8, temperature=0, logit_bias={eot: 1000.0})
        assert out["choices"][0]["finish_reason"] == "stop" and out["usage"]["completion_tokens"] <= 1
    finally:
        llm.close()


# ---- chat templates: trained tokens and the Modelfile ---------------------------------------------------------

TWO_TURNS = parse_record(
    {
        "messages": [
            {"role": "user", "content": "What is 3/4 + 1/2?"},
            {"role": "assistant", "content": "It is 1 1/4."},
            {"role": "user", "content": "And 25 × 4?"},
            {"role": "assistant", "content": "100, like four quarters."},
        ]
    },
    1,
)


def _trained_runs(enc, tokenizer) -> list[str]:
    runs, current = [], []
    for token, label in zip(enc.input_ids, enc.labels, strict=True):
        if label != IGNORE:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return [*runs, tokenizer.decode(current)] if current else runs


def test_the_tiny_command_names_every_family():
    from ftstudio.cli.models import TINY_FAMILIES_HELP

    assert f"A model family: {', '.join(NAMES[:-1])} or {NAMES[-1]}." == TINY_FAMILIES_HELP


@pytest.mark.parametrize("name", NAMES)
def test_each_template_is_known_as_its_own_family(name):
    assert for_template(FAMILIES[name].template_text()) is FAMILIES[name]


@pytest.mark.parametrize("name", NAMES)
def test_only_the_answers_and_their_end_of_turn_are_trained_as_the_template_renders_them(tiny_model, name):
    folder = tiny_model(name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    formatter = Formatter.create(tokenizer, None, end_of_turn_ids(str(folder), tokenizer))
    chat = FAMILIES[name].chat
    enc = formatter.encode(TWO_TURNS)
    runs = _trained_runs(enc, tokenizer)
    # SentencePiece decoding shows a space where "▁" meets a newline: compare without spaces there.
    squash = (lambda t: t.replace(" ", "")) if FAMILIES[name].tiny.tokenizer.design == "sentencepiece" else str
    answers = ["It is 1 1/4.", "100, like four quarters."]
    assert len(runs) == 2, runs
    full = formatter.render(formatter.messages(TWO_TURNS))
    for k, (run, answer) in enumerate(zip(runs, answers, strict=True)):
        # The last answer carries what the template writes before a non-thinking answer (Qwen 3's empty think).
        prefix = chat.thinking if chat.thinking and k == len(answers) - 1 else ""
        head = squash(prefix + answer + chat.end_of_turn)
        assert squash(run).startswith(head), (run, head)
        # After the end-of-turn only what the template writes there: a newline, and Phi's closing eos.
        assert squash(run)[len(head) :].strip() in ("", squash(tokenizer.eos_token or "")), run
        assert head in squash(full)
    masked = tokenizer.decode([t for t, label in zip(enc.input_ids, enc.labels, strict=True) if label == IGNORE])
    assert "3/4" in masked and "25 × 4" in masked and "1 1/4" not in masked


SHORT_A1 = {"role": "assistant", "content": "It is 100.\n\nAnything else?"}
CONVERSATIONS = [[U1], [SYSTEM, U1], [U1, SHORT_A1, U2], [SYSTEM, U1, SHORT_A1, U2]]


@pytest.fixture(scope="module")
def go_rendered(exported, tmp_path_factory):
    """Every family's exported Modelfile TEMPLATE rendered by Go's text/template (Ollama's engine) on the test
    conversations, with Ollama's think switch unset and (for thinking families) off; and the HF renders."""
    cases, expected = [], []
    for name in NAMES:
        text = exported(name).modelfile.read_text(encoding="utf-8")
        template = text.split('TEMPLATE """', 1)[1].split('"""\n', 1)[0]
        tokenizer = AutoTokenizer.from_pretrained(exported(name).merged)
        bos = tokenizer.bos_token if tokenizer("a")["input_ids"][0] == tokenizer.bos_token_id else None
        switches = [None, False] if "enable_thinking" in tokenizer.chat_template else [None]
        for think in switches:
            for messages in CONVERSATIONS:
                kwargs = {} if think is None else {"enable_thinking": think}
                want = tokenizer.apply_chat_template(_hf_messages(name, messages), tokenize=False,
                                                     add_generation_prompt=True, **kwargs)  # fmt: skip
                if bos:  # Ollama's tokenizer adds BOS itself, as llama.cpp does with add_bos_token
                    assert want.startswith(bos)
                    want = want[len(bos) :]
                values = {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages],
                          "System": messages[0]["content"] if messages[0]["role"] == "system" else "",
                          "Prompt": messages[-1]["content"], "Response": "",
                          "Think": bool(think), "IsThinkSet": think is not None}  # fmt: skip
                cases.append({"Template": template, "Values": values})
                expected.append((name, think, want))
    return list(zip(expected, go_render(cases, tmp_path_factory.mktemp("go")), strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_the_modelfile_template_renders_as_the_hf_template(go_rendered, name):
    mine = [(think, want, got) for (family, think, want), got in go_rendered if family == name]
    assert len(mine) >= len(CONVERSATIONS)
    for think, want, got in mine:
        assert got == want, f"{name} (thinking {think})"
