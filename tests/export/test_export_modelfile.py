"""The Modelfile's TEMPLATE, rendered by Go's own text/template (Ollama's engine), equals the HF chat template."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from ftstudio.export.chat import ChatFormat
from ftstudio.export.modelfile import eos_texts, modelfile, ollama_chat
from go_render import go_render

SYSTEM = {"role": "system", "content": "You are a patient maths tutor."}
U1 = {"role": "user", "content": "What is 25 × 4?"}
A1 = {"role": "assistant", "content": "It is 100.\n\nAnything else?"}
U2 = {"role": "user", "content": 'And "3/4 + 1/2" — {{ braces }}?'}
CONVERSATIONS = [[U1], [SYSTEM, U1], [U1, A1, U2], [SYSTEM, U1, A1, U2]]




def test_go_template_renders_what_the_hf_template_renders(tiny_model, tmp_path):
    cases, expected = [], []
    for arch in ("llama", "qwen2", "phi3", "mistral"):
        folder = tiny_model(arch)
        chat = ChatFormat.from_folder(folder)
        template = ollama_chat(chat, eos_texts(folder)).template
        tokenizer = AutoTokenizer.from_pretrained(folder)
        bos = tokenizer.bos_token if tokenizer("a")["input_ids"][0] == tokenizer.bos_token_id else None
        for messages in CONVERSATIONS:
            hf_messages = messages
            if arch == "mistral" and messages[0]["role"] == "system":
                # Mistral's template has no system role; the Modelfile opens the first user turn with it.
                hf_messages = [{"role": "user", "content": f"{SYSTEM['content']}\n\n{U1['content']}"}, *messages[2:]]
            text = tokenizer.apply_chat_template(hf_messages, tokenize=False, add_generation_prompt=True)
            if bos:  # Ollama's tokenizer adds BOS itself, as llama.cpp does with add_bos_token
                assert text.startswith(bos)
                text = text[len(bos) :]
            system = messages[0]["content"] if messages[0]["role"] == "system" else ""
            values = {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages],
                      "System": system, "Prompt": messages[-1]["content"], "Response": ""}  # fmt: skip
            cases.append({"Template": template, "Values": values})
            expected.append((arch, text))
    rendered = go_render(cases, tmp_path)
    assert len(rendered) == len(expected) == 16
    for (arch, want), got in zip(expected, rendered, strict=True):
        assert got == want, arch


@pytest.mark.parametrize(
    ("arch", "stops"),
    [
        ("llama", ["<|eot_id|>", "<|end_of_text|>"]),
        ("qwen2", ["<|im_end|>", "<|endoftext|>"]),
        ("phi3", ["<|end|>", "<|endoftext|>", "<|assistant|>"]),
        ("mistral", ["</s>"]),
    ],
)
def test_modelfile_names_the_file_stops_and_system(tiny_model, arch, stops):
    folder = tiny_model(arch)
    chat = ollama_chat(ChatFormat.from_folder(folder), eos_texts(folder))
    text = modelfile("m-q8_0.gguf", chat, "Answer briefly.")
    lines = text.splitlines()
    assert lines[0] == "FROM ./m-q8_0.gguf"
    assert [line.split(" ", 2)[2] for line in lines if line.startswith("PARAMETER stop")] == [f'"{s}"' for s in stops]
    assert 'SYSTEM """Answer briefly."""' in lines
    assert f'TEMPLATE """{chat.template}"""' in text
