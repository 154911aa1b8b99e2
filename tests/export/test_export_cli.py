"""The export command end to end: verification in llama.cpp, adapter export, and every kind of bad input."""

from __future__ import annotations

import json
import os
import shutil
from collections import namedtuple

import pytest

from ftstudio.errors import Cancelled, Unavailable
from ftstudio.export.exporter import export
from ftstudio.export.gguf.quantize import llama_cpp_available
from ftstudio.export.settings import QUANTS

needs_llama = pytest.mark.skipif(not llama_cpp_available(), reason="needs llama-cpp-python")


def _leftovers(project):
    return [p.name for p in project.exports_dir.iterdir()] if project.exports_dir.exists() else []


@pytest.mark.llama
@needs_llama
@pytest.mark.parametrize("arch", ["llama", "phi3"])
def test_gguf_export_verifies_in_llama_cpp_with_held_out_prompts(cli, trained_project, arch):
    project = trained_project(arch)
    lines = [{"instruction": f"Question {i}: what is {i} + {i}?", "output": f"{2 * i}"} for i in range(5)]
    project.sft_data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = cli("export", "demo", "--format", "gguf", "--quant", "q8_0", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    check = report["verification"]
    assert check["passed"] and check["end_of_turn_stops"] and not check["problems"]
    # The last examples of the data file, without their answers.
    assert [p["prompt"] for p in check["prompts"]] == [f"Question {i}: what is {i} + {i}?" for i in (2, 3, 4)]
    assert all(p["same_tokenization"] and p["agreed"] == p["tokens"] for p in check["prompts"])
    sizes = {os.path.basename(f["path"]): f["size"] for f in report["files"]}
    assert sizes["demo-run-1-q8_0.gguf"] == (project.exports_dir / "demo-run-1-q8_0.gguf").stat().st_size
    assert not [n for n in _leftovers(project) if n.startswith(".")]  # the temporary merged model is gone


@pytest.mark.llama
@needs_llama
def test_verification_fails_for_a_gguf_of_another_model(trained_project, tiny_model, adapter_for, tmp_path):
    from ftstudio.export.gguf.writer import export_gguf
    from ftstudio.export.merged import export_merged
    from ftstudio.export.verify import held_out_prompts, verify_gguf

    base, adapter = adapter_for("llama")
    merged = export_merged(base, adapter, tmp_path / "merged")[0].parent
    other = export_gguf(tiny_model("llama", seed=7), tmp_path / "other.gguf", "f32")
    check = verify_gguf(other, merged, "f32", held_out_prompts(None, 2, None), max_tokens=4)
    assert not check.passed and any("not transformers' choice" in p for p in check.problems)


@pytest.mark.llama
@needs_llama
def test_verification_fails_for_a_gguf_llama_cpp_cannot_load(adapter_for, tmp_path):
    from ftstudio.export.gguf.writer import export_gguf
    from ftstudio.export.merged import export_merged
    from ftstudio.export.verify import held_out_prompts, verify_gguf

    base, adapter = adapter_for("llama")
    merged = export_merged(base, adapter, tmp_path / "merged")[0].parent
    broken = export_gguf(merged, tmp_path / "broken.gguf", "f32")
    with open(broken, "r+b") as f:  # tensor data that ends early, as an interrupted copy leaves it
        f.truncate(broken.stat().st_size // 2)
    check = verify_gguf(broken, merged, "f32", held_out_prompts(None, 2, None), max_tokens=4)
    assert not check.passed and not check.prompts
    assert len(check.problems) == 1 and "llama.cpp could not load broken.gguf" in check.problems[0]


def test_adapter_export_copies_the_peft_adapter(cli, trained_project):
    project = trained_project("mistral")
    result = cli("export", "demo", "--format", "adapter", "--json")
    assert result.code == 0, result.stderr
    folder = project.exports_dir / "demo-run-1-adapter"
    source = project.runs_dir / "run-1" / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (folder / name).read_bytes() == (source / name).read_bytes()
    assert {f["size"] for f in result.json()["files"]} >= {(source / "adapter_model.safetensors").stat().st_size}


def test_a_run_without_adapter_and_a_project_without_runs(cli, workspace, tiny_model, add_run):
    from ftstudio.project import Project

    project = Project.create("demo", workspace)
    none = cli("export", "demo", "--format", "merged")
    assert none.code == 2 and "has no completed training run" in none.stderr
    add_run(project, tiny_model("llama"), None, run_id="run-9", status="running")
    result = cli("export", "demo", "--run", "run-9", "--format", "merged")
    assert result.code == 2 and "run 'run-9' (status running) has no adapter yet" in result.stderr
    missing = cli("export", "demo", "--run", "nope", "--format", "merged")
    assert missing.code == 2 and "no run 'nope'" in missing.stderr and "runs: run-9" in missing.stderr


def test_unknown_quant_and_format_exit_2_listing_the_valid_ones(cli, trained_project):
    project = trained_project("llama")
    result = cli("export", "demo", "--format", "gguf", "--quant", "q3_k_s", "--json")
    assert result.code == 2
    assert result.json()["error"] == "unknown quant type 'q3_k_s'"
    assert ", ".join(QUANTS) in result.json()["hint"]
    bad_format = cli("export", "demo", "--format", "onnx")
    assert bad_format.code == 2 and "format: Input should be 'adapter', 'merged' or 'gguf'" in bad_format.stderr
    assert _leftovers(project) == []


def test_unsupported_architecture_refuses_gguf_but_merges(cli, workspace, tiny_model, tmp_path, add_run):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, StableLmConfig

    from ftstudio.project import Project

    base = tmp_path / "stablelm"
    base.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny_model("qwen2") / name, base / name)
    config = StableLmConfig(vocab_size=1027, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                            num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(base)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules="all-linear"))
    model.save_pretrained(tmp_path / "adapter")
    project = Project.create("demo", workspace)
    add_run(project, base, tmp_path / "adapter")

    gguf = cli("export", "demo", "--format", "gguf", "--quant", "f16")
    assert gguf.code == 2
    assert ("does not support architecture 'stablelm' (supported: gemma2, gemma3_text, granite, llama, mistral, "
            "olmo2, phi3, qwen2, qwen3, smollm3)") in gguf.stderr
    assert "--format merged" in gguf.stderr
    assert cli("export", "demo", "--format", "merged").code == 0


def test_k_quant_without_llama_cpp_python_exits_3_with_the_install_command(cli, trained_project, tmp_path):
    project = trained_project("llama")
    # A llama_cpp that fails to import, first on the path: what a machine without the package sees.
    shadow = tmp_path / "shadow" / "llama_cpp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named llama_cpp')\n")
    path = os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])
    result = cli("export", "demo", "--format", "gguf", "--quant", "q4_k_m", env={"PYTHONPATH": path})
    assert result.code == 3
    assert "needs llama.cpp's quantizer" in result.stderr and "pip install llama-cpp-python" in result.stderr
    assert _leftovers(project) == []
    # Pure-Python types still work there, without verification.
    plain = cli("export", "demo", "--format", "gguf", "--quant", "q4_0", "--json", env={"PYTHONPATH": path})
    assert plain.code == 0, plain.stderr
    assert plain.json()["verification"] is None


def test_too_little_disk_is_refused_before_writing(trained_project, monkeypatch):
    project = trained_project("llama")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 50_000, 50_000))
    for fmt in ("merged", "gguf"):
        with pytest.raises(Unavailable, match="not enough disk space"):
            export(project, fmt=fmt, quant="f16", verify=False)
    assert _leftovers(project) == []


def test_an_interrupted_export_leaves_no_partial_file(trained_project):
    project = trained_project("llama")
    seen = []

    def stop_midway(event):
        seen.append(event.stage)
        if seen.count("gguf") == 3:  # a few tensors into the file
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        export(project, fmt="gguf", quant="f32", verify=False, progress=stop_midway)
    assert "merge" in seen and _leftovers(project) == []
