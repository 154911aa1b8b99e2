"""Packing several examples into one row gives the same loss as padding each: no attention leaks across them."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftstudio.dataset import parse_record
from ftstudio.train.batching import collate, plan_epoch
from ftstudio.train.formatting import Formatter


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_packed_loss_equals_padded_loss(tiny_model, arch):
    folder = tiny_model(arch)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa").eval()
    fmt = Formatter.create(tok)
    texts = [("Hi?", "Hello."), ("What is 25 × 4?", "It is 100, like four quarters of a dollar."), ("Why?", "Because.")]
    examples = [fmt.encode(parse_record({"instruction": q, "output": a})) for q, a in texts * 2]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    packed = collate(examples, pack=True, capacity=512, pad_id=pad)
    padded = collate(examples, pack=False, capacity=512, pad_id=pad)
    assert packed.inputs["input_ids"].shape[0] == 1 and padded.inputs["input_ids"].shape[0] == 6
    assert packed.tokens == padded.tokens == sum(len(e) for e in examples)
    assert packed.labels == padded.labels
    # use_cache=False matters: with a cache, transformers does not look for packed sequences.
    with torch.no_grad():
        loss_packed = model(**packed.inputs, num_items_in_batch=packed.labels, use_cache=False).loss
        loss_padded = model(**padded.inputs, num_items_in_batch=padded.labels, use_cache=False).loss
        # Without the position-id boundaries the examples would see each other and the loss would differ.
        leaky = {k: v for k, v in packed.inputs.items() if k != "position_ids"}
        loss_leaky = model(**leaky, num_items_in_batch=packed.labels, use_cache=False).loss
    assert loss_packed.item() == pytest.approx(loss_padded.item(), rel=1e-5, abs=1e-5)
    assert abs(loss_leaky.item() - loss_padded.item()) > 1e-3


def test_rows_never_exceed_capacity_and_every_example_is_placed(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model("llama"))
    fmt = Formatter.create(tok)
    examples = [fmt.encode(parse_record({"instruction": "Q" * n, "output": "A" * n})) for n in range(3, 30, 4)]
    # Llama 3.2's template opens every example with its dated system header (about 30 tokens).
    assert max(len(e) for e in examples) <= 200 < sum(len(e) for e in examples)
    batch = collate(examples, pack=True, capacity=200, pad_id=0)
    ids = batch.inputs["input_ids"]
    assert ids.shape[1] <= 200 and ids.shape[0] < len(examples)
    assert batch.tokens == sum(len(e) for e in examples)
    assert sorted(batch.lines) == sorted(e.line for e in examples)


def test_epoch_plan_is_a_seeded_permutation():
    lengths = [10, 300, 40, 200, 35, 90, 120, 60, 5, 250]
    plan = plan_epoch(lengths, 3, seed=7, epoch=0, group_by_length=True)
    assert sorted(i for b in plan for i in b) == list(range(10))
    assert plan == plan_epoch(lengths, 3, seed=7, epoch=0, group_by_length=True)
    assert plan != plan_epoch(lengths, 3, seed=7, epoch=1, group_by_length=True)


def test_one_row_per_pass_gives_the_same_loss_and_gradients(tiny_model):
    from peft import LoraConfig, get_peft_model

    folder = tiny_model("llama")
    tok = AutoTokenizer.from_pretrained(folder)
    fmt = Formatter.create(tok)
    examples = [fmt.encode(parse_record({"instruction": "Q" * n, "output": "A" * n})) for n in range(3, 40, 5)]
    batch = collate(examples, pack=True, capacity=60, pad_id=0)
    assert len(batch.row_lengths) > 2
    grads = []
    for rows in (None, 1):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(folder)
        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
        # Train B away from zero first, so gradients reach A as well.
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.02)
        total = 0.0
        for chunk in batch.chunks(rows):
            out = model(**chunk, num_items_in_batch=batch.labels, use_cache=False)
            out.loss.backward()
            total += out.loss.item()
        grads.append((total, [p.grad.clone() for p in model.parameters() if p.requires_grad]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
