"""The training loop on tiny kit models: it learns, its adapter reloads, it stops cleanly, it resumes exactly."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from ftstudio.errors import BadInput
from ftstudio.train.runner import train
from ftstudio.train.runs import latest_run, list_runs, load_run

FAST = {"learning_rate": 3e-3, "batch_size": 4, "warmup_ratio": 0.0}


@pytest.mark.parametrize("arch", ["llama", "qwen2", "phi3", "mistral"])
def test_loss_falls_on_a_tiny_overfit_set(make_project, arch):
    project = make_project(arch, max_steps=16, **FAST)
    result = train(project, project.settings().train)
    assert result.status == "completed" and result.steps == 16
    losses = [m["loss"] for m in load_run(project, result.run_id).metrics() if "loss" in m]
    assert len(losses) == 16
    assert losses[-1] < 0.7 * losses[0], losses
    report = json.loads((result.run_dir / "eval.json").read_text())
    assert report["tuned_eval_loss"] < report["base_eval_loss"]
    assert report["answers"] and {"prompt", "reference", "base", "tuned"} <= set(report["answers"][0])
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["backend"] == "transformers" and "no CUDA" in info["backend_reason"]
    assert info["settings"]["max_steps"] == 16 and info["status"] == "completed"


def test_saved_adapter_reloads_with_the_same_logits(make_project):
    from peft import PeftModel, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    project = make_project("llama", max_steps=6, **FAST)
    result = train(project, project.settings().train)
    base = project.settings().base_model.model
    ids = torch.tensor([[5, 80, 120, 7, 300, 22]])
    plain = AutoModelForCausalLM.from_pretrained(base).eval()
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(result.run_dir / "adapter"))
    tuned.eval()
    again = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(result.run_dir / "adapter"))
    again.eval()
    with torch.no_grad():
        a, b, c = tuned(ids).logits, again(ids).logits, plain(ids).logits
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-3  # the adapter really changes the model
    # The reloaded adapter is bit-for-bit the one the run ended with: its last checkpoint was 2 steps earlier,
    # and its held-out loss matches what the run measured in memory.
    assert get_peft_model_state_dict(tuned)
    from ftstudio.train.evaluate import eval_loss
    from ftstudio.train.formatting import Formatter, end_of_turn_ids, prepare
    from ftstudio.train.runner import _read_examples

    fmt = Formatter.create(tuned_tokenizer(base), None, end_of_turn_ids(base, tuned_tokenizer(base)))
    s = project.settings().train
    data = prepare(fmt, _read_examples(project), max_length=s.max_seq_length, too_long=s.too_long,
                   eval_fraction=s.eval_fraction, seed=s.seed)  # fmt: skip
    reloaded = eval_loss(tuned, data.eval, batch_size=4, pack=True, capacity=s.max_seq_length, pad_id=0)
    assert reloaded == pytest.approx(result.eval["tuned_eval_loss"], abs=1e-5)


def tuned_tokenizer(base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(make_project):
    project = make_project("llama", max_steps=8, save_every=1, learning_rate=1e30, warmup_ratio=0.0)
    with pytest.raises(BadInput, match=r"the (loss|gradient norm) became (nan|inf)") as caught:
        train(project, project.settings().train)
    run = list_runs(project)[-1]
    assert run.status == "failed" and "became" in run.info["error"]
    assert run.checkpoints(), "the checkpoint before the divergence is kept"
    assert str(run.checkpoints()[-1]) in caught.value.hint
    assert not (run.path / "adapter").exists()


def test_cancel_saves_a_checkpoint_and_resume_ends_where_an_uninterrupted_run_does(make_project):
    project = make_project("llama", max_steps=10, save_every=100, keep_checkpoints=1, **FAST)
    settings = project.settings().train
    whole = train(project, settings)

    cancel = threading.Event()

    def stop_after_four(event):
        if event.stage == "train" and event.done == 4:
            cancel.set()

    stopped = train(project, settings, progress=stop_after_four, cancel=cancel)
    assert stopped.status == "stopped" and stopped.steps == 4
    run = load_run(project, stopped.run_id)
    assert [p.name for p in run.checkpoints()] == ["checkpoint-4"]
    assert latest_run(project).id == whole.run_id  # a stopped run is not a completed one
    resumed = train(project, settings, resume=stopped.run_id)
    assert resumed.status == "completed" and resumed.steps == 10 and resumed.run_id == stopped.run_id
    assert resumed.final_train_loss == pytest.approx(whole.final_train_loss, rel=1e-4)
    steps = [m["step"] for m in load_run(project, resumed.run_id).metrics() if "loss" in m]
    assert steps == list(range(1, 11))


def test_probe_measures_time_and_memory_without_changing_the_run(make_project):
    project = make_project("qwen2", max_steps=5, **FAST)
    plain = train(project, project.settings().train)
    probed_settings = project.settings().train.model_copy(update={"probe_steps": 2})
    only = train(project, probed_settings, probe_only=True)
    assert only.status == "probed" and only.run_id is None
    assert only.probe["seconds_per_step"] > 0 and only.probe["peak_memory_mb"] > 50
    assert only.probe["predicted_total_s"] == pytest.approx(only.probe["seconds_per_step"] * 5, abs=0.06)
    probed = train(project, probed_settings)
    assert probed.final_train_loss == pytest.approx(plain.final_train_loss, rel=1e-5)


def test_resume_refuses_a_missing_run_and_a_completed_one(make_project):
    project = make_project("llama", max_steps=2, **FAST)
    with pytest.raises(BadInput, match="no run 'nope'"):
        train(project, project.settings().train, resume="nope")
    done = train(project, project.settings().train)
    with pytest.raises(BadInput, match="already completed"):
        train(project, project.settings().train, resume=done.run_id)
