"""Real weights end to end: SmolLM2-135M-Instruct and Gemma 3 270M (installed GGUF packages, imported once per session
by `real_model`) trained a few steps, exported to GGUF and read back by llama.cpp, which must answer as transformers
does with the adapter; and SmolLM2's Modelfile template rendered by Go as its tokenizer renders the chat."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftstudio.example import example_files
from ftstudio.export.gguf.quantize import llama_cpp_available
from ftstudio.project import Project
from go_render import go_render

pytestmark = pytest.mark.slow
needs_llama = pytest.mark.skipif(not llama_cpp_available(), reason="needs llama-cpp-python")

# Eight of the example's pairs (their first wordings), packed into one row: every step sees the same batch, so the
# loss must fall.
_LINES = [json.loads(line) for line in (example_files() / "sft_data.jsonl").read_text().splitlines()]
PAIRS = [pair for pair in _LINES if "meta" not in pair][:8]
PROMPTS = ["What is sourdough bread?", "What does the yeast in a starter do?", "Name a fruit."]
TOKENS = 8
# q8_0 against transformers, 2026-12-04: the ten top logits of each answer position differ by at most 0.59
# (SmolLM2) and 1.35 (Gemma 3, whose logits run to 38); f16 by at most 0.1. The best token's own logit moved by at
# most 0.74, so a lead of 1.5 is one that 8-bit weights did not undo.
Q8_ERROR = 2.0
CLEAR_LEAD = 1.5


@dataclass
class Trained:
    project: Project
    losses: list[float]
    merged: Path
    gguf: dict[str, Path]
    modelfile: Path


@pytest.fixture(scope="session")
def trained_real(real_model, tmp_path_factory):
    """`trained_real("smollm2")`: the real model trained 4 steps on the pairs, merged, and exported to f16 and q8_0."""
    from ftstudio.export.exporter import export
    from ftstudio.train.runner import train

    built: dict[str, Trained] = {}

    def get(name: str) -> Trained:
        if name not in built:
            project = Project.create("real", tmp_path_factory.mktemp(f"real-{name}"))
            project.update_settings("base_model", model=str(real_model(name)))
            project.update_settings("train", max_steps=4, probe_steps=0, compare_answers=0, eval_every=1000,
                                    learning_rate=1e-3, batch_size=8, warmup_ratio=0.0, eval_fraction=0.0,
                                    scheduler="constant", max_seq_length=256)  # fmt: skip
            project.data_dir.mkdir(parents=True, exist_ok=True)
            project.sft_data.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
            run = train(project, project.settings().train)
            assert run.status == "completed"
            metrics = (run.run_dir / "metrics.jsonl").read_text().splitlines()
            losses = [json.loads(line)["loss"] for line in metrics if '"loss"' in line]
            merged = Path(export(project, fmt="merged").files[0]["path"]).parent
            paths = {}
            for quant in ("f16", "q8_0"):
                result = export(project, fmt="gguf", quant=quant, verify=False)
                paths[quant] = Path(result.files[0]["path"])
            built[name] = Trained(project, losses, merged, paths, Path(result.files[1]["path"]))
        return built[name]

    return get


def _hf_greedy(folder: Path, prompts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompt_ids, answers = [], []
    for prompt in prompts:
        # Gemma 3 270M is a base model: its import gave it Gemma 3's published template, which it was trained with
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)  # fmt: skip
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=TOKENS, do_sample=False)  # fmt: skip
        prompt_ids.append(ids)
        answers.append(out[0, len(ids) :].tolist())
    return prompt_ids, answers


def _hf_logits(folder: Path, sequences: list[list[int]]) -> list:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return [model(torch.tensor([seq])).logits[0].numpy() for seq in sequences]


def _llama_logits(path: Path, sequences: list[list[int]]) -> list:
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(str(path), n_ctx=512, verbose=False, n_threads=1, logits_all=True)
    try:
        found = []
        for seq in sequences:
            llm.reset()
            llm.eval(seq)
            found.append(np.array(llm.scores[: len(seq)]))
        return found
    finally:
        llm.close()


def _llama_greedy(path: Path, prompt_ids: list[list[int]]) -> list[list[int]]:
    import llama_cpp

    # One thread: ggml's summation order (and so a near-tie's winner) then does not change between runs.
    llm = llama_cpp.Llama(str(path), n_ctx=512, verbose=False, n_threads=1)
    try:
        answers = []
        for ids in prompt_ids:
            llm.reset()
            out: list[int] = []
            for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
                if token == llm.token_eos() or len(out) == TOKENS:
                    break
                out.append(token)
            answers.append(out)
        return answers
    finally:
        llm.close()


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_training_moves_the_loss_on_real_weights(trained_real, name):
    losses = trained_real(name).losses
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses


@needs_llama
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_the_exported_f16_gguf_answers_as_transformers_with_the_adapter(trained_real, name):
    trained = trained_real(name)
    prompt_ids, want = _hf_greedy(trained.merged, PROMPTS)
    got = _llama_greedy(trained.gguf["f16"], prompt_ids)
    for prompt, w, g in zip(PROMPTS, want, got, strict=True):
        # transformers stops at its end token; llama.cpp's loop above stops before it: compare up to it
        w = w[: len(g)] if len(g) < len(w) else w
        assert g == w, prompt


@needs_llama
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_the_exported_q8_0_gguf_picks_transformers_tokens_wherever_they_are_clear(trained_real, name):
    """8-bit weights move logits by up to about one, so a near-tie may tip (Gemma 3's first answer token to "What
    does the yeast in a starter do?" leads the second by 0.02, and its q8_0 file picks the second). Along
    transformers' greedy answers, llama.cpp's logits must stay close, and it must pick the same token wherever
    transformers' lead is clear."""
    import numpy as np

    trained = trained_real(name)
    prompt_ids, want = _hf_greedy(trained.merged, PROMPTS)
    hf = _hf_logits(trained.merged, [ids + w for ids, w in zip(prompt_ids, want, strict=True)])
    lc = _llama_logits(trained.gguf["q8_0"], [ids + w for ids, w in zip(prompt_ids, want, strict=True)])
    clear, agree, error = 0, 0, 0.0
    for ids, w, h, c in zip(prompt_ids, want, hf, lc, strict=True):
        for pos in range(len(ids) - 1, len(ids) + len(w) - 1):
            top = np.argsort(h[pos])[-10:]
            error = max(error, float(np.abs(h[pos][top] - c[pos][top]).max()))
            if h[pos][top[-1]] - h[pos][top[-2]] >= CLEAR_LEAD:
                clear += 1
                agree += int(np.argmax(c[pos]) == top[-1])
    assert error < Q8_ERROR, error  # a real fault (a norm, a rope, a layout) moves logits by far more
    assert agree == clear and clear >= TOKENS // 2, (agree, clear)  # measured: 8 (SmolLM2) and 13 (Gemma 3) of 24


def test_the_modelfile_template_renders_as_smollm2s_chat_template(trained_real, tmp_path):
    from transformers import AutoTokenizer

    trained = trained_real("smollm2")
    template = trained.modelfile.read_text(encoding="utf-8").split('TEMPLATE """', 1)[1].split('"""\n', 1)[0]
    tokenizer = AutoTokenizer.from_pretrained(trained.merged)
    system = {"role": "system", "content": "You answer questions about bread."}
    user = {"role": "user", "content": "What is hooch?"}
    answer = {"role": "assistant", "content": "A grey liquid on a hungry starter."}
    conversations = [[user], [system, user], [user, answer, {"role": "user", "content": "And then?"}]]
    cases, want = [], []
    for messages in conversations:
        want.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        values = {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages],
                  "System": messages[0]["content"] if messages[0]["role"] == "system" else "",
                  "Prompt": messages[-1]["content"], "Response": "", "Think": False, "IsThinkSet": False}  # fmt: skip
        cases.append({"Template": template, "Values": values})
    assert go_render(cases, tmp_path) == want
