"""Can this model be trained here, and exported? The checks run before anything downloads.

`check_model(spec, …)` resolves a hub id or folder (config and tokenizer files only) and answers ok / warn / error
with reasons and suggestions; `check_entry(entry, …)` answers the same from the catalog's data alone, for the
`ftstudio models` listing. Both apply one set of rules to `ModelFacts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ftstudio.basemodels.catalog import CatalogEntry, find_entry, full_precision_sibling, load_catalog
from ftstudio.basemodels.chat_template import (
    find_chat_template,
    render_sample,
    special_tokens,
)
from ftstudio.basemodels.hardware import Hardware, detect_hardware
from ftstudio.basemodels.memory import GIB, MemoryEstimate, ModelShape, estimate_memory
from ftstudio.errors import BadInput, Unavailable
from ftstudio.families import FAMILIES, gguf_model_types
from ftstudio.progress import ProgressFn

if TYPE_CHECKING:  # resolving imports the GGUF importer; the catalog's verdicts (`ftstudio models`) need neither
    from ftstudio.basemodels.resolve import ResolvedModel

CPU_PRACTICAL_PARAMS = 2e9  # above this, LoRA on a CPU runs for days rather than hours
MEMORY_WARN_FRACTION = 0.85

Level = Literal["ok", "warn", "error"]
_RANK = {"ok": 0, "warn": 1, "error": 2}


@dataclass(frozen=True)
class Finding:
    """One check's answer. `exit_code` matters for errors: 2 the model is wrong, 3 this machine lacks something."""

    check: str
    level: Level
    message: str
    suggestion: str | None = None
    exit_code: int = 2


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one model for this machine, with every finding and the memory estimates."""

    model: str
    findings: tuple[Finding, ...]
    estimates: dict[str, MemoryEstimate]
    hardware: Hardware
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Level:
        return max((f.level for f in self.findings), key=_RANK.__getitem__, default="ok")

    @property
    def reasons(self) -> list[str]:
        """Why the verdict is not plain ok: the messages of the warnings and errors, errors first."""
        worst_first = sorted((f for f in self.findings if f.level != "ok"), key=lambda f: -_RANK[f.level])
        return [f.message for f in worst_first]

    @property
    def suggestions(self) -> list[str]:
        return list(dict.fromkeys(f.suggestion for f in self.findings if f.suggestion and f.level != "ok"))

    @property
    def exit_code(self) -> int:
        """0 for ok/warn; for an error, 3 when only this machine is lacking (CUDA, memory), else 2."""
        errors = [f for f in self.findings if f.level == "error"]
        if not errors:
            return 0
        return 3 if all(f.exit_code == 3 for f in errors) else 2

    def raise_for_error(self, doing: str, extra_hint: str | None = None) -> None:
        """Raise when the verdict is error: Unavailable when only this machine is lacking, else BadInput."""
        if self.verdict != "error":
            return
        error = Unavailable if self.exit_code == 3 else BadInput
        raise error(
            f"{doing}: {self.model} fails its checks: " + "; ".join(self.reasons),
            hint="; ".join(self.suggestions + ([extra_hint] if extra_hint else [])) or None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "suggestions": self.suggestions,
            "checks": [
                {"check": f.check, "level": f.level, "message": f.message, "suggestion": f.suggestion}
                for f in self.findings
            ],
            "estimates": {method: e.to_dict() for method, e in self.estimates.items()},
            "hardware": self.hardware.to_dict(),
            **self.info,
        }


@dataclass(frozen=True)
class ModelFacts:
    """What the rules look at, from a resolved config or from the catalog."""

    label: str
    hub_id: str | None
    architecture: str | None
    config: dict[str, Any]
    chat_template: str | None  # the template text, or the catalog's family name
    chat_template_source: str | None
    tokens: dict[str, str]
    has_tokenizer: bool
    from_catalog: bool = False


def check_model(
    spec: str,
    *,
    trust_remote_code: bool = False,
    seq_len: int = 2048,
    batch: int = 1,
    method: str = "lora",
    lora_rank: int = 16,
    hardware: Hardware | None = None,
    offline: bool | None = None,
    cache_dir: str | None = None,
    progress: ProgressFn | None = None,
) -> CheckResult:
    """Resolve `spec` (hub id or folder: config and tokenizer files only; a .gguf file or ollama:NAME is imported
    first, reporting to `progress`) and check it for this machine.

    Raises BadInput/NotFound (exit 2) for a folder without config.json, a corrupt config, an unknown id, a GGUF that
    cannot be imported; Unavailable (exit 3) when the hub is unreachable and nothing is cached. Everything else is a
    finding in the result.
    """
    from ftstudio.basemodels.resolve import resolve_model

    resolved = resolve_model(spec, offline=offline, cache_dir=cache_dir, progress=progress)
    facts = _facts_from_resolved(resolved)
    result = _apply_rules(facts, hardware or detect_hardware(), trust_remote_code, seq_len, batch, method, lora_rank)
    result.info.update(
        source=resolved.source,
        folder=str(resolved.folder),
        offline_reason=resolved.offline_reason,
        files=sorted(resolved.files),
    )
    return result


def check_entry(
    entry: CatalogEntry,
    hardware: Hardware,
    *,
    seq_len: int = 2048,
    batch: int = 1,
    method: str = "lora",
    lora_rank: int = 16,
) -> CheckResult:
    """The same rules from the catalog's facts alone (no network): for the listing."""
    config = {"model_type": entry.architecture, "max_position_embeddings": entry.context, **entry.shape}
    if entry.bnb_4bit:
        config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    facts = ModelFacts(entry.id, entry.id, entry.architecture, config, entry.chat_template, "catalog", {}, True, True)
    return _apply_rules(facts, hardware, False, seq_len, batch, method, lora_rank)


def _facts_from_resolved(resolved: ResolvedModel) -> ModelFacts:
    template, where = find_chat_template(resolved.files)
    has_tokenizer = any(name in resolved.files for name in ("tokenizer.json", "tokenizer.model"))
    config = resolved.config
    text_config = config.get("text_config")
    architecture = config.get("model_type") or (text_config or {}).get("model_type")
    return ModelFacts(
        resolved.label, resolved.hub_id, architecture, config, template, where, special_tokens(resolved.files),
        has_tokenizer,
    )  # fmt: skip


def _apply_rules(
    facts: ModelFacts, hw: Hardware, trust_remote_code: bool, seq_len: int, batch: int, method: str, rank: int
) -> CheckResult:
    if method not in ("lora", "qlora"):
        raise BadInput(f"unknown method {method!r}", hint="use lora or qlora")
    findings: list[Finding] = []
    info: dict[str, Any] = {"architecture": facts.architecture, "method": method, "seq_len": seq_len, "batch": batch}
    entry = find_entry(facts.hub_id) if facts.hub_id else None
    if entry:
        info["catalog"] = {"name": entry.name, "license": entry.license, "params_b": entry.params}

    findings += _architecture_rules(facts, trust_remote_code)
    quant = _quantization(facts.config)
    info["pre_quantized"] = quant
    findings += _hardware_rules(facts, hw, quant, method)

    effective = "qlora" if quant == "bnb-4bit" else method
    info["effective_method"] = effective
    estimates: dict[str, MemoryEstimate] = {}
    try:
        shape = ModelShape.from_config(facts.config, facts.architecture)
    except BadInput as exc:
        findings.append(Finding("memory", "warn", f"no memory estimate: {exc.message}"))
    else:
        info["parameters"] = shape.parameters()
        for m in ("lora", "qlora"):
            device = "cuda" if hw.cuda or m == "qlora" else "cpu"
            estimates[m] = estimate_memory(shape, method=m, device=device, seq_len=seq_len, batch=batch, lora_rank=rank)
        if hw.cuda or effective == "lora":  # without CUDA a 4-bit run is already refused above
            findings += _memory_rules(estimates[effective], hw, shape, facts, quant)
        if not hw.cuda and shape.parameters() > CPU_PRACTICAL_PARAMS:
            findings.append(
                Finding(
                    "speed", "warn",
                    f"{shape.parameters() / 1e9:.1f} B parameters on a CPU: each training step takes minutes",
                    "pick a model of 1.5 B parameters or fewer (e.g. Qwen/Qwen2.5-0.5B-Instruct), or train on a "
                    "CUDA machine",
                )
            )  # fmt: skip
    context = facts.config.get("max_position_embeddings")
    info["context"] = context
    if isinstance(context, int) and seq_len > context:
        findings.append(
            Finding("context", "warn", f"sequence length {seq_len} exceeds the model's context of {context} tokens",
                    f"use --seq-len {context} or less")
        )  # fmt: skip
    findings += _template_rules(facts, info)
    gguf = facts.architecture in gguf_model_types()
    info["gguf_export"] = gguf
    if gguf:
        findings.append(Finding("gguf", "ok", f"GGUF export supports {facts.architecture}"))
    else:
        families = ", ".join(f.label for f in FAMILIES.values())
        findings.append(
            Finding("gguf", "warn", f"GGUF export does not support the {facts.architecture} architecture",
                    f"the adapter and merged-safetensors exports still work; for GGUF pick a model of a family "
                    f"llama.cpp runs ({families})")
        )  # fmt: skip
    return CheckResult(facts.label, tuple(findings), estimates, hw, info)


def _architecture_rules(facts: ModelFacts, trust_remote_code: bool) -> list[Finding]:
    if facts.from_catalog:
        # Every catalog architecture is a causal LM of the transformers ftstudio requires (pyproject; the catalog
        # tests hold it so): the listing answers without importing transformers, which takes seconds.
        return [Finding("architecture", "ok", f"{facts.architecture} is a causal LM transformers supports")]
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    arch = facts.architecture
    auto_map = facts.config.get("auto_map") or {}
    known = arch in CONFIG_MAPPING_NAMES
    if auto_map and not known:
        if not trust_remote_code:
            return [
                Finding("remote_code", "error",
                        f"{facts.label} needs trust_remote_code: its model class is Python code in the repository",
                        "only if you trust its authors: --trust-remote-code (or [base_model] trust_remote_code = "
                        "true); otherwise pick a catalog model (`ftstudio models`)")
            ]  # fmt: skip
        causal = "AutoModelForCausalLM" in auto_map
        return [
            Finding("remote_code", "warn", f"{facts.label} runs its own Python code (trust_remote_code is on)"),
            Finding("architecture", "ok" if causal else "error",
                    "its code provides a causal LM" if causal else "its code provides no AutoModelForCausalLM class",
                    None if causal else "pick a causal (text-generation) model"),
        ]  # fmt: skip
    if not arch:
        return [Finding("architecture", "error", "config.json has no model_type", "is this a transformers model?")]
    if not known:
        return [
            Finding("architecture", "error",
                    f"transformers {transformers.__version__} does not know the model type {arch!r}",
                    "upgrade transformers (pip install -U transformers), or pick a catalog model")
        ]  # fmt: skip
    # BERT-like encoders appear in the causal-LM mapping too (as decoders with is_decoder=True), but such a
    # checkpoint is a masked-LM encoder: not a chat model to fine-tune.
    encoder = arch in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not facts.config.get("is_decoder")
    if arch not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or encoder or facts.config.get("is_encoder_decoder"):
        return [
            Finding("architecture", "error",
                    f"{facts.label} is a {arch} model, which is not a causal (text-generation) language model",
                    "pick a decoder model such as Qwen/Qwen2.5-0.5B-Instruct (see `ftstudio models`)")
        ]  # fmt: skip
    findings = []
    if auto_map:
        findings.append(Finding("remote_code", "ok", "transformers has this model built in; no repository code runs"))
    if not facts.from_catalog:
        try:
            from transformers import AutoConfig

            config = {k: v for k, v in facts.config.items() if k not in ("model_type", "auto_map")}
            AutoConfig.for_model(arch, **config)
        except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for a bad config
            return [Finding("architecture", "error", f"transformers rejects this {arch} config: {exc}",
                            "the config.json is damaged or from an incompatible version")]  # fmt: skip
    findings.append(Finding("architecture", "ok", f"{arch} is a causal LM transformers supports"))
    return findings


def _quantization(config: dict[str, Any]) -> str | None:
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        return None
    method = str(qc.get("quant_method", "")).lower()
    if method == "bitsandbytes" or "load_in_4bit" in qc or "_load_in_4bit" in qc:
        if qc.get("load_in_4bit") or qc.get("_load_in_4bit"):
            return "bnb-4bit"
        return "bnb-8bit"
    return method or "unknown"


def _hardware_rules(facts: ModelFacts, hw: Hardware, quant: str | None, method: str) -> list[Finding]:
    findings = []
    if quant == "bnb-4bit":
        if hw.cuda:
            findings.append(Finding("quantization", "ok", "pre-quantized 4-bit: trains as QLoRA on CUDA"))
        else:
            sibling = full_precision_sibling(facts.hub_id or "")
            findings.append(
                Finding("quantization", "error",
                        f"{facts.label} is pre-quantized to 4 bits (bitsandbytes), which needs a CUDA GPU; "
                        "this machine has none",
                        f"use its full-precision sibling {sibling} with --method lora" if sibling else
                        "use the same model's 16-bit repository with --method lora", exit_code=3)
            )  # fmt: skip
    elif quant:
        findings.append(
            Finding("quantization", "warn" if hw.cuda else "error",
                    f"{facts.label} is pre-quantized ({quant}); ftstudio trains 16-bit bases or bitsandbytes 4-bit",
                    "use the model's 16-bit repository", exit_code=3)
        )  # fmt: skip
    if method == "qlora" and not hw.cuda and quant != "bnb-4bit":
        findings.append(
            Finding("method", "error", "QLoRA quantizes the base to 4 bits with bitsandbytes, which needs a CUDA GPU",
                    "use --method lora on this machine", exit_code=3)
        )  # fmt: skip
    return findings


def _memory_rules(
    estimate: MemoryEstimate, hw: Hardware, shape: ModelShape, facts: ModelFacts, quant: str | None
) -> list[Finding]:
    where = "VRAM" if hw.cuda else "RAM"
    budget = hw.vram_total if hw.cuda else hw.ram_total
    available = hw.vram_free if hw.cuda else hw.ram_available
    label = {"lora": "LoRA", "qlora": "QLoRA"}[estimate.method]
    need = f"{label} at {estimate.seq_len} tokens × batch {estimate.batch} needs about " \
           f"{estimate.total / GIB:.1f} GiB"  # fmt: skip
    if estimate.total > budget:
        smaller = _largest_fitting(hw, estimate)
        tips = [f"lower --seq-len (now {estimate.seq_len}) or --batch (now {estimate.batch})"]
        if hw.cuda and estimate.method == "lora":
            tips.append("use --method qlora")
        if smaller:
            tips.append(f"or pick a smaller model such as {smaller}")
        return [Finding("memory", "error", f"{need}; this machine has {budget / GIB:.1f} GiB {where}",
                        "; ".join(tips), exit_code=3)]  # fmt: skip
    if estimate.total > available * MEMORY_WARN_FRACTION:
        return [Finding("memory", "warn", f"{need}; only {available / GIB:.1f} GiB {where} is free now",
                        "close other programs, or lower --seq-len / --batch")]  # fmt: skip
    return [Finding("memory", "ok", f"{need} of {budget / GIB:.1f} GiB {where}")]


def _largest_fitting(hw: Hardware, like: MemoryEstimate) -> str | None:
    budget = hw.vram_total if hw.cuda else hw.ram_total
    fitting = []
    for entry in load_catalog():
        if entry.bnb_4bit and not hw.cuda:
            continue
        shape = ModelShape.from_config(entry.shape, entry.architecture)
        method = "qlora" if entry.bnb_4bit else like.method
        est = estimate_memory(shape, method=method, device=hw.device if method == "lora" else "cuda",
                              seq_len=like.seq_len, batch=like.batch, lora_rank=like.lora_rank)  # fmt: skip
        if est.total <= budget:
            fitting.append((shape.parameters(), entry.id))
    return max(fitting)[1] if fitting else None


def _template_rules(facts: ModelFacts, info: dict[str, Any]) -> list[Finding]:
    findings = []
    if not facts.has_tokenizer:
        findings.append(
            Finding("tokenizer", "warn", "no tokenizer files (tokenizer.json or tokenizer.model) were found",
                    "training needs the model's tokenizer: make sure the folder or repository has it")
        )  # fmt: skip
    if facts.from_catalog:
        info["chat_template"] = {"found": True, "family": facts.chat_template}
        findings.append(Finding("chat_template", "ok", f"{facts.chat_template} chat template"))
        return findings
    if facts.chat_template is None:
        info["chat_template"] = {"found": False}
        findings.append(
            Finding("chat_template", "warn", "no chat template: training and chat need one",
                    "pick an instruct/chat variant (its tokenizer_config.json or chat_template.jinja has one), or "
                    "add a chat_template.jinja to the folder")
        )  # fmt: skip
        return findings
    try:
        rendered, system_ok = render_sample(facts.chat_template, facts.tokens)
    except Exception as exc:  # noqa: BLE001 - any template error means the template cannot be used
        info["chat_template"] = {"found": True, "source": facts.chat_template_source, "renders": False}
        findings.append(
            Finding("chat_template", "warn", f"the chat template in {facts.chat_template_source} does not render: "
                    f"{exc}; training and chat need a template that renders")
        )  # fmt: skip
        return findings
    info["chat_template"] = {
        "found": True, "source": facts.chat_template_source, "renders": True, "system_role": system_ok,
        "sample": rendered,
    }  # fmt: skip
    note = "" if system_ok else " (it refuses a system message: the system prompt is folded into the first turn)"
    findings.append(Finding("chat_template", "ok", f"chat template from {facts.chat_template_source}{note}"))
    return findings


def catalog_fits(
    hardware: Hardware | None = None,
    *,
    seq_len: int = 2048,
    batch: int = 1,
    method: str = "lora",
    lora_rank: int = 16,
) -> list[tuple[CatalogEntry, CheckResult]]:
    """Every catalog entry with its verdict for this machine, fastest to try first: usable ones, then by size."""
    hw = hardware or detect_hardware()
    plan = {"seq_len": seq_len, "batch": batch, "method": method, "lora_rank": lora_rank}
    rows = [(e, check_entry(e, hw, **plan)) for e in load_catalog()]
    return sorted(rows, key=lambda row: (_RANK[row[1].verdict], row[0].params, row[0].id))
