"""What a model family is, as data: the parts of it that the checks, trainer, exporter and tiny-model kit read.

A `Family` holds its `model_type`s, how its weights are laid out in GGUF (`Layout`), the facts of its chat template
(`Chat`) with its Ollama (Go text/template) rendition, and the tiny model its tests build (`Tiny`). This module
imports no stage of ftstudio: every stage imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # gguf (numpy inside) loads only where a GGUF is written: the registry is read at CLI start-up
    import gguf
    import numpy as np

Config = dict[str, Any]
# Adds the family's own keys (beyond the hyper-parameters every decoder has) to a GGUF being written.
MetadataFn = Callable[["gguf.GGUFWriter", Config], None]


@dataclass(frozen=True)
class Layout:
    """How llama.cpp expects the family's weights and hyper-parameters (its `convert_hf_to_gguf.py` is the authority).

    `permute_qk`: llama.cpp runs this architecture with "normal" RoPE (rotary halves interleaved), so HF's Q and K
    weights are permuted; NeoX-style architectures keep the HF layout. `norm_offset`: added to every norm weight
    (Gemma's RMSNorm multiplies by 1 + w; llama.cpp by the stored weight). `metadata` writes the family's own keys;
    `check` refuses a config llama.cpp would run differently from transformers (BadInput-style message, or None).
    `lm_head`: how llama.cpp's loader (`src/models/<arch>.cpp`) gets the output matrix. "optional": `output.weight`
    where the file has one, else the token embedding (a tied model writes none); "required": `output.weight` or the
    load fails (OLMo 2), so a tied model's embedding is written a second time under that name; "embedding": never
    `output.weight`, the token embedding is the output (Gemma 2), so none is written.
    """

    arch: str  # llama.cpp's architecture name (GGUF general.architecture): "llama", "qwen3", ...
    permute_qk: bool = False
    norm_offset: float = 0.0
    metadata: MetadataFn | None = None
    check: Callable[[Config], str | None] | None = None
    tensors: Callable[[Config], dict[str, np.ndarray]] | None = None  # computed tensors (Phi-3's LongRoPE factors)
    lm_head: Literal["optional", "required", "embedding"] = "optional"

    @property
    def model_arch(self) -> gguf.MODEL_ARCH:
        """`arch` as the gguf package's enum (for its tensor-name maps)."""
        import gguf

        return next(a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == self.arch)


@dataclass(frozen=True)
class Chat:
    """Facts of the family's chat template, and its Ollama TEMPLATE.

    `markers`: substrings that together identify this family's template text (families are tried in registry
    order, the most specific first). `thinking`: what the template puts before a non-thinking answer (Qwen 3's
    empty think block), so that it is trained exactly as rendered. `ollama`: Go text/template over Ollama's data
    (`.Messages` with `.Role`/`.Content`, the SYSTEM text arriving as a system message); BOS is left out, as
    Ollama's tokenizer adds it when the GGUF says so. `{DEFAULT_SYSTEM}` in it is replaced with the system turn the
    HF template writes by itself when a conversation has none, and `{TODAY}` with the export's date in
    `date_format` (Go templates have no clock; the model was trained on dated headers too).
    """

    end_of_turn: str
    system_role: bool
    markers: tuple[str, ...]
    ollama: str
    thinking: str | None = None
    date_format: str | None = None  # the template writes today's date (strftime_now): `{TODAY}` in `ollama`


@dataclass(frozen=True)
class TinyTokenizer:
    """The family's tokenizer design, which the tiny-model kit reproduces with a small trained vocabulary.

    byte-level: BPE over bytes behind the family's own split regex (`split`; None: GPT-2's regex inside the
    byte-level step), with a digits step first where the family has one (StarCoder-style); `ignore_merges`: a word
    found whole in the vocabulary is taken as it is (Llama 3). sentencepiece: "▁"-marked pieces with the 256 byte
    tokens; `leading` specials take the first ids; `prefix_space`: a "▁" is prepended (Llama 2, not Gemma).
    """

    design: Literal["byte-level", "sentencepiece"]
    specials: tuple[str, ...]  # added after the vocabulary, in id order
    eos: str
    generation_eos: tuple[str, ...]  # generation_config's end tokens
    bos: str | None = None
    pad: str | None = None
    unk: str | None = None
    add_bos: bool = False
    split: str | None = None
    digits: bool = False
    ignore_merges: bool = False
    leading: tuple[str, ...] = ()
    prefix_space: bool = True
    plain_added: tuple[str, ...] = ()  # added tokens that are not special (Qwen 3's <think>)
    clean_up_spaces: bool = False  # tokenizer_config's clean_up_tokenization_spaces


@dataclass(frozen=True)
class Tiny:
    """The tiny model a family's tests build: the config's family-specific settings, tokenizer and template file.

    `config` is applied on top of the kit's sizes (hidden 64, 2 layers, 4 heads…); `template` names a file in
    `ftstudio/families/templates/` (see SOURCE.md there for where each came from).
    """

    config: Config
    tokenizer: TinyTokenizer
    template: str


def _two_norms(hidden: int, q: int, kv: int, head: int) -> int:
    return 2 * hidden


@dataclass(frozen=True)
class Family:
    """A model family. `layer_norm_parameters(hidden, q width, kv width, head_dim)`: the norm weights one decoder
    layer holds, and `qkv_bias`: whether its q/k/v projections have biases (for parameter counts)."""

    name: str
    label: str  # for people: "Qwen 3"
    model_types: tuple[str, ...]  # config.json model_type values this family's layout writes
    layout: Layout
    chat: Chat
    tiny: Tiny
    match: Callable[[Config], bool] | None = None  # among families sharing a model_type, is this config ours?
    layer_norm_parameters: Callable[[int, int, int, int], int] = _two_norms
    qkv_bias: bool = False
    attn_implementation: str = "sdpa"  # what transformers trains it with (Gemma 2's soft-capping needs "eager")

    def template_text(self) -> str:
        """The tiny kit's chat template for this family (package data)."""
        return resources.files("ftstudio.families").joinpath("templates", self.tiny.template).read_text("utf-8")


def rope_parameters(config: Config, layer_type: str = "full_attention") -> Config:
    """The RoPE settings of `config`, in either form: transformers 5's `rope_parameters` (possibly per layer type,
    as Gemma 3 writes it) or the published `rope_theta` + `rope_scaling`."""
    params = config.get("rope_parameters") or {}
    if layer_type in params or "full_attention" in params:
        params = params.get(layer_type) or params.get("full_attention") or {}
    params = dict(params or config.get("rope_scaling") or {})
    if "rope_theta" not in params and config.get("rope_theta") is not None:
        params["rope_theta"] = config["rope_theta"]
    params.setdefault("rope_type", params.pop("type", None) or "default")
    return params


def head_dim(config: Config) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def layer_types(config: Config) -> list[str]:
    return list(config.get("layer_types") or ["full_attention"] * config["num_hidden_layers"])


def sliding_window_metadata(writer: gguf.GGUFWriter, config: Config) -> None:
    """The sliding window and which layers use it, from the config's own `layer_types` (not llama.cpp's default)."""
    writer.add_sliding_window(config["sliding_window"])
    writer.add_sliding_window_pattern([t == "sliding_attention" for t in layer_types(config)])
