"""Backend choice: Unsloth only with CUDA (and installed); QLoRA refused without CUDA; the Unsloth path on a GPU."""

from __future__ import annotations

import pytest

from ftstudio.errors import Unavailable
from ftstudio.train.backends import choose_backend, cuda_available, find_linear_modules, unsloth_installed


def test_auto_picks_unsloth_only_with_cuda_and_unsloth():
    assert choose_backend("auto", cuda=True, unsloth=True).backend == "unsloth"
    no_unsloth = choose_backend("auto", cuda=True, unsloth=False)
    assert no_unsloth.backend == "transformers" and "pip install unsloth" in no_unsloth.reason
    cpu = choose_backend("auto", cuda=False, unsloth=True)
    assert cpu.backend == "transformers" and "no CUDA" in cpu.reason
    assert choose_backend("transformers", cuda=True, unsloth=True).backend == "transformers"


def test_asking_for_unsloth_without_cuda_is_refused_with_exit_3():
    with pytest.raises(Unavailable, match="needs a CUDA GPU") as caught:
        choose_backend("unsloth", cuda=False, unsloth=True)
    assert caught.value.exit_code == 3 and "--backend transformers" in caught.value.hint


def test_auto_target_modules_are_every_linear_projection(tiny_model):
    from transformers import AutoModelForCausalLM

    llama = AutoModelForCausalLM.from_pretrained(tiny_model("llama"))
    assert find_linear_modules(llama) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    phi3 = AutoModelForCausalLM.from_pretrained(tiny_model("phi3"))
    assert find_linear_modules(phi3) == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]


def test_cli_refuses_unsloth_on_this_cpu(cli, make_project):
    if cuda_available():
        pytest.skip("this machine has CUDA")
    project = make_project("llama")
    result = cli("train", project.name, "--backend", "unsloth")
    assert result.code == 3 and "CUDA" in result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not (cuda_available() and unsloth_installed()), reason="needs CUDA and unsloth")
def test_unsloth_trains_a_kit_model_on_the_gpu(make_project):  # pragma: no cover - GPU only
    from ftstudio.train.runner import train

    project = make_project("llama", max_steps=10, learning_rate=3e-3, warmup_ratio=0.0, backend="auto")
    result = train(project, project.settings().train)
    assert result.backend == "unsloth" and result.status == "completed"
    assert result.eval["tuned_eval_loss"] < result.eval["base_eval_loss"]


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CUDA")
def test_qlora_trains_on_the_gpu(make_project):  # pragma: no cover - GPU only
    pytest.importorskip("bitsandbytes")
    from ftstudio.train.runner import train

    project = make_project("llama", max_steps=10, learning_rate=3e-3, method="qlora", backend="transformers")
    result = train(project, project.settings().train)
    assert result.status == "completed" and result.eval["tuned_eval_loss"] < result.eval["base_eval_loss"]
