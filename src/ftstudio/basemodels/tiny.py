"""Tiny real models: random weights, a tokenizer trained here, and the family's real chat template and special tokens.

Nothing can be downloaded on an offline machine, yet every step after this one needs a model that loads through
exactly the same path as a hub model. `build_tiny_model(folder, arch)` writes such a model (config.json,
model.safetensors, tokenizer.json, tokenizer_config.json, chat template, generation_config.json), loadable with
`AutoModelForCausalLM` / `AutoTokenizer` offline. Tests use it, and so can users as a quick offline smoke run
(`ftstudio models tiny FOLDER --arch llama`).

What each family's model is (config settings, tokenizer design, special tokens, chat template) comes from its entry
in `ftstudio.families`; the kit reproduces the tokenizer's real design, so that llama.cpp splits text exactly as
transformers does: byte-level BPE behind the family's own splitting steps (Llama 3, Qwen, SmolLM3, Granite, OLMo 2,
Phi-4-mini), or SentencePiece-style BPE on "▁"-marked words with the 256 byte-fallback tokens (Mistral, Phi-3,
Gemma).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftstudio.families import FAMILIES
from ftstudio.families.base import TinyTokenizer

ARCHITECTURES = tuple(FAMILIES)

# Text of our own for training the tiny tokenizers: prose, numbers, punctuation, code and several scripts, so that
# every byte pattern the tests use has been seen.
_CORPUS = """\
A fraction names a part of a whole. Three quarters of a pizza is 3/4, and 3/4 + 1/2 = 1 1/4.
To multiply 25 by 4, think of four quarters of a dollar: 25 × 4 = 100. Division undoes multiplication.
The mitochondria convert nutrients into energy; the cell's membrane decides what may enter or leave.
Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. Plants don't eat soil!
In 1969, two astronauts walked on the Moon; they'll be remembered, we're told, as long as people tell stories.
Newton's second law says F = m * a. A 2 kg ball pushed with 10 N accelerates at 5 m/s².
def area(width, height):\n    return width * height  # rectangles only\n
The teacher asked: "What is the capital of France?" The answer: Paris. Is it? Yes, it's Paris.
Gradient descent lowers the loss step by step; the learning rate sets the size of each step (e.g. 2e-4).
Ein Bruch ist ein Teil eines Ganzen. Une fraction est une partie d'un tout. Größe, façade, naïve café.
Числа и дроби. 数学は楽しい。 العربية. Emoji: 🙂 👍.
Tables: | Name | Age |\n| Ada | 36 |\nLists:\n- first item\n- second item\n\n# Heading one\n## Heading two
Question: How many sides does a hexagon have? Answer: A hexagon has six sides.
Question: What gas do plants release? Answer: Plants release oxygen during photosynthesis.
"""


def _train_corpus() -> list[str]:
    lines = _CORPUS.splitlines()
    # Repeat with variations so merges form for common words without making the vocabulary large.
    return lines * 3 + [line.lower() for line in lines] + [line.upper() for line in lines]


def build_tokenizer(arch: str, vocab_size: int = 1024):
    """A fast tokenizer of the family's design, trained on built-in text; returns a PreTrainedTokenizerFast."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    family = FAMILIES[arch]
    spec = family.tiny.tokenizer
    if spec.design == "byte-level":
        tok = Tokenizer(models.BPE(ignore_merges=spec.ignore_merges))
        steps = [pre_tokenizers.Digits(individual_digits=True)] if spec.digits else []
        if spec.split is not None:
            steps.append(pre_tokenizers.Split(Regex(spec.split), behavior="isolated"))
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=spec.split is None))
        tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        )
        tok.train_from_iterator(_train_corpus(), trainer)
        tok.add_special_tokens(list(spec.specials))
    else:
        tok = _spm_style_tokenizer(spec, vocab_size)
    if spec.plain_added:
        tok.add_tokens(list(spec.plain_added))
    if spec.add_bos:
        bos_id = tok.token_to_id(spec.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B", special_tokens=[(spec.bos, bos_id)]
        )
    elif spec.design == "byte-level":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        unk_token=spec.unk,
        chat_template=family.template_text(),
        clean_up_tokenization_spaces=spec.clean_up_spaces,
        model_max_length=2048,
    )


def _spm_style_tokenizer(spec: TinyTokenizer, vocab_size: int):
    """Llama-2/Gemma-style tokenizer: the leading specials, the 256 byte tokens, then BPE pieces on '▁'-joined
    words, then the other specials."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    unk = spec.unk or "<unk>"
    scratch = Tokenizer(models.BPE(unk_token=unk))
    scheme = "always" if spec.prefix_space else "never"
    scratch.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=True)
    budget = vocab_size - len(spec.leading) - 256 - len(spec.specials)
    scratch.train_from_iterator(_train_corpus(), trainers.BpeTrainer(vocab_size=budget, show_progress=False))
    learned = json.loads(scratch.to_str())["model"]

    vocab: dict[str, int] = {t: i for i, t in enumerate(spec.leading)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece in sorted(learned["vocab"], key=learned["vocab"].get):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, byte_fallback=True, fuse_unk=True))
    # As Llama 2 / Mistral / Phi-3 ship it: spaces become '▁' and one is prepended, with no pre-splitting; Gemma
    # prepends none.
    replace = normalizers.Replace(" ", "▁")
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), replace]) if spec.prefix_space else replace
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if spec.prefix_space:
        steps.append(decoders.Strip(" ", 1, 0))
    tok.decoder = decoders.Sequence(steps)
    tok.add_special_tokens(list(spec.leading + spec.specials))
    return tok


def build_tiny_model(
    folder: Path | str,
    arch: str = "llama",
    *,
    hidden_size: int = 64,
    layers: int | None = None,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate_size: int | None = None,
    vocab_size: int = 1024,
    max_positions: int | None = None,
    quantized_4bit: bool = False,
    seed: int = 0,
    dtype: str = "float32",
    tied: bool | None = None,
) -> Path:
    """Write a random-weight model of `arch` (a family name) with its family's config settings, tokenizer and
    template into `folder`; return it. `layers` and `max_positions` default to the family's tiny config (else 2 and
    2048); `tied` (lm_head shares the token embedding) to the family's tiny config (else untied).

    `quantized_4bit=True` writes a config that claims bitsandbytes NF4 quantization, like the `…-bnb-4bit` hub
    repositories, for testing the 4-bit rules (the weights themselves stay unquantized).
    """
    import torch
    import transformers

    if arch not in FAMILIES:
        raise ValueError(f"unknown architecture {arch!r}; the kit has {', '.join(ARCHITECTURES)}")
    family = FAMILIES[arch]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(arch, vocab_size)
    ids = tokenizer.convert_tokens_to_ids
    spec = family.tiny.tokenizer
    config_kwargs: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=ids(spec.bos) if spec.bos else None,
        eos_token_id=[ids(t) for t in spec.generation_eos]
        if len(spec.generation_eos) > 1
        else ids(spec.generation_eos[0]),
        pad_token_id=ids(spec.pad) if spec.pad else None,
        rms_norm_eps=1e-5,
    )
    config_kwargs.update({k: v for k, v in family.tiny.config.items() if k != "model_type"})
    if layers is not None:
        config_kwargs["num_hidden_layers"] = layers
        if "layer_types" in family.tiny.config:  # the family's pattern, repeated over the layers asked for
            pattern = family.tiny.config["layer_types"]
            config_kwargs["layer_types"] = [pattern[i % len(pattern)] for i in range(layers)]
    if max_positions is not None:
        config_kwargs["max_position_embeddings"] = max_positions
    if tied is not None:
        config_kwargs["tie_word_embeddings"] = tied
    config = transformers.AutoConfig.for_model(family.tiny.config["model_type"], **config_kwargs)
    config._attn_implementation = family.attn_implementation
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    # Random init at the library's default scale gives near-uniform logits; a wider spread makes logit comparisons
    # (export checks) meaningful.
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0.0, 0.08)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.bos_token_id = config.bos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if quantized_4bit:
        raw = json.loads((folder / "config.json").read_text())
        raw["quantization_config"] = {
            "quant_method": "bitsandbytes",
            "load_in_4bit": True,
            "load_in_8bit": False,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_use_double_quant": True,
            "bnb_4bit_compute_dtype": "bfloat16",
        }
        (folder / "config.json").write_text(json.dumps(raw, indent=2))
    return folder


def write_tiny_model(folder: Path | str, arch: str = "llama", *, quantized_4bit: bool = False) -> Path:
    """`build_tiny_model` for users (`ftstudio models tiny`): refuses an unknown arch or a non-empty folder, and
    writes into a scratch folder renamed at the end, so a failure leaves nothing behind. Returns the folder."""
    import shutil
    import tempfile

    from ftstudio.errors import BadInput

    if arch not in FAMILIES:
        raise BadInput(f"unknown architecture {arch!r}", hint=f"use one of {', '.join(ARCHITECTURES)}")
    folder = Path(folder).expanduser().resolve()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BadInput(f"{folder} already exists and is not an empty folder", hint="name a new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        build_tiny_model(scratch, arch, quantized_4bit=quantized_4bit)
        if folder.exists():
            folder.rmdir()
        scratch.rename(folder)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return folder
