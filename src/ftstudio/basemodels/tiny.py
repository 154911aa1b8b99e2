"""Tiny real models: random weights, a tokenizer trained here, and the family's real chat template and special tokens.

Nothing can be downloaded on an offline machine, yet every step after this one needs a model that loads through
exactly the same path as a hub model. `build_tiny_model(folder, arch)` writes such a model (config.json,
model.safetensors, tokenizer.json, tokenizer_config.json, chat template, generation_config.json), loadable with
`AutoModelForCausalLM` / `AutoTokenizer` offline. Tests use it, and so can users as a quick offline smoke run
(`ftstudio models tiny FOLDER --arch llama`).

Each family's tokenizer reproduces its real design, so that llama.cpp splits text exactly as transformers does:
- llama (Llama 3) and qwen2 (Qwen 2/2.5): byte-level BPE behind the family's own split regex;
- phi3 and mistral: SentencePiece-style BPE on "▁"-marked words with the 256 byte-fallback tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARCHITECTURES = ("llama", "qwen2", "phi3", "mistral")

# The families' real pre-tokenizer patterns (what llama.cpp calls "llama-bpe" and "qwen2").
LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"  # noqa: E501
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}{% elif message['role'] == 'user' %}"
    "{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class Family:
    """What makes a model family's tokenizer and template what they are."""

    arch: str
    config_class: str
    byte_level: bool  # byte-level BPE with a split regex, else SentencePiece-style with byte fallback
    split: str | None
    specials: tuple[str, ...]  # in id order after the trained vocabulary (byte-level) or first (SPM)
    bos: str | None
    eos: str
    pad: str | None
    unk: str | None
    add_bos: bool
    template: str
    eos_ids: tuple[str, ...]  # generation_config's end tokens
    tie_embeddings: bool


FAMILIES: dict[str, Family] = {
    "llama": Family(
        "llama", "LlamaConfig", True, LLAMA3_SPLIT,
        ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None, unk=None, add_bos=True, template=LLAMA3_TEMPLATE,
        eos_ids=("<|end_of_text|>", "<|eot_id|>"), tie_embeddings=False,
    ),
    "qwen2": Family(
        "qwen2", "Qwen2Config", True, QWEN2_SPLIT, ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, add_bos=False, template=CHATML_TEMPLATE,
        eos_ids=("<|im_end|>", "<|endoftext|>"), tie_embeddings=True,
    ),
    # Phi-3's own release sets pad = eos = <|endoftext|>: a pitfall training must handle, so the kit keeps it.
    "phi3": Family(
        "phi3", "Phi3Config", False, None,
        ("<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"),
        bos="<s>", eos="<|endoftext|>", pad="<|endoftext|>", unk="<unk>", add_bos=False, template=PHI3_TEMPLATE,
        eos_ids=("<|endoftext|>", "<|assistant|>", "<|end|>"), tie_embeddings=False,
    ),
    "mistral": Family(
        "mistral", "MistralConfig", False, None, ("<unk>", "<s>", "</s>"),
        bos="<s>", eos="</s>", pad=None, unk="<unk>", add_bos=True, template=MISTRAL_TEMPLATE,
        eos_ids=("</s>",), tie_embeddings=False,
    ),
}  # fmt: skip

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
    if family.byte_level:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(family.split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        )
        tok.train_from_iterator(_train_corpus(), trainer)
        tok.add_special_tokens(list(family.specials))
    else:
        tok = _spm_style_tokenizer(family, vocab_size)
    if family.add_bos:
        bos_id = tok.token_to_id(family.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A", pair=f"{family.bos} $A {family.bos} $B", special_tokens=[(family.bos, bos_id)]
        )
    elif family.byte_level:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.pad,
        unk_token=family.unk,
        chat_template=family.template,
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )


def _spm_style_tokenizer(family: Family, vocab_size: int):
    """Llama-2-style tokenizer: <unk> <s> </s>, the 256 byte tokens, then BPE pieces on '▁'-joined words."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    scratch = Tokenizer(models.BPE(unk_token="<unk>"))
    scratch.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    budget = vocab_size - 3 - 256 - (len(family.specials) - 3)
    scratch.train_from_iterator(_train_corpus(), trainers.BpeTrainer(vocab_size=budget, show_progress=False))
    learned = json.loads(scratch.to_str())["model"]

    vocab: dict[str, int] = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece in sorted(learned["vocab"], key=learned["vocab"].get):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # As Llama 2 / Mistral / Phi-3 ship it: spaces become '▁' and one is prepended, with no pre-splitting.
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens(list(family.specials))
    return tok


def build_tiny_model(
    folder: Path | str,
    arch: str = "llama",
    *,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate_size: int | None = None,
    vocab_size: int = 1024,
    max_positions: int = 2048,
    quantized_4bit: bool = False,
    seed: int = 0,
    dtype: str = "float32",
) -> Path:
    """Write a random-weight model of `arch` with its family's tokenizer and template into `folder`; return it.

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
    config_kwargs: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=family.tie_embeddings,
        bos_token_id=ids(family.bos) if family.bos else None,
        eos_token_id=[ids(t) for t in family.eos_ids] if len(family.eos_ids) > 1 else ids(family.eos_ids[0]),
        pad_token_id=ids(family.pad) if family.pad else None,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
    )
    if arch == "phi3":
        config_kwargs.pop("rope_theta")
    config = getattr(transformers, family.config_class)(**config_kwargs)
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
