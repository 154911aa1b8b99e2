"""Requests: what one run of a stage should do, as every face asks for it (Python API, CLI, studio, jobs).

A request holds this run's own options (pairs, topic, resume, ...) and `overrides` of the stage's settings
(the `[train]`, `[synth]`, ... table of project.toml). One rule for every command and face: an override applies
to this run only; with `save=True` (`--save` on the command line) it is also written to project.toml, after the
request was checked. `resolve(project)` checks everything before any work or job starts and raises one BadInput
naming every field that is wrong (`pairs: must be at least 1`, `model: no helper model chosen`).

The job runner turns a request into the argv of our own CLI (`options()`, `positionals()`), so no face builds
command lines and the core never reads the CLI's definition: tests check that the CLI parses each argv back into
the same request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ftstudio.errors import BadInput
from ftstudio.export.settings import ExportSettings
from ftstudio.knowledge.settings import KnowledgeSettings
from ftstudio.knowledge.store import MAX_K
from ftstudio.settings import EvalSettings, settings_errors
from ftstudio.synth.settings import ProviderName, SynthSettings
from ftstudio.train.settings import TrainSettings


def parse_set(item: str) -> tuple[str, Any]:
    """`KEY=VALUE` of `--set` as (key, value): a JSON list/object or `null` is read as JSON, the rest as text that
    the settings model converts ("4" → 4, "true" → True)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise BadInput(f"--set {item!r} is not KEY=VALUE", hint="e.g. --set dropout=0.1")
    raw = raw.strip()
    if raw == "null" or raw[:1] in "[{":
        try:
            return key.strip(), json.loads(raw)
        except ValueError as exc:
            raise BadInput(f"--set {item!r}: {exc}", hint='write lists as JSON, e.g. ["q_proj"]') from exc
    return key.strip(), raw


def _set_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class Request(BaseModel):
    """Base of every request: `overrides` of the stage's settings and the one save rule."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    command: ClassVar[str]
    section: ClassVar[str | None] = None  # the project.toml table `overrides` belong to
    settings_model: ClassVar[type[BaseModel] | None] = None
    flags: ClassVar[dict[str, str]] = {}  # overrides with a CLI flag of their own; the rest go as --set KEY=VALUE
    positional: ClassVar[tuple[str, ...]] = ()  # fields passed after `--`, in order

    overrides: dict[str, Any] = Field(default_factory=dict, description="Settings for this run only.")
    save: bool = Field(False, description="Also store the overrides in project.toml.")

    @field_validator("overrides")
    @classmethod
    def _known(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        fields = cls.settings_model.model_fields if cls.settings_model else {}
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
        return {k: v for k, v in overrides.items() if v is not None or cls._nullable(k)}

    @classmethod
    def _nullable(cls, name: str) -> bool:
        info = cls.settings_model.model_fields[name]  # type: ignore[union-attr]
        return info.default is None

    @classmethod
    def build(cls, **values: Any) -> Request:
        """The request from plain values; BadInput naming every field that is wrong."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise BadInput(settings_errors(exc, cls.command), hint="nothing was started; correct the values") from exc

    # -- checking -----------------------------------------------------------------------------------------------

    def stage_settings(self, project) -> Any:
        """The project's settings for this stage with the overrides applied, validated (BadInput if not)."""
        if self.settings_model is None:
            return None
        # No project (`ftstudio models check` without --project): the settings a new project starts with.
        table = getattr(project.settings(), self.section) if project is not None else None  # type: ignore[arg-type]
        current = table.model_dump() if table is not None else {}
        try:
            return self.settings_model.model_validate({**current, **self.overrides})
        except ValidationError as exc:
            raise BadInput(
                settings_errors(exc, self.command), hint="nothing was started or saved; correct the values"
            ) from exc

    def resolve(self, project) -> Any:
        """Check the request against the project (before any work) and return the stage settings to run with."""
        settings = self.stage_settings(project)
        problems = self.problems(project, settings)
        if problems:
            raise BadInput("\n".join(problems), hint="nothing was started or saved; correct the values")
        return settings

    def problems(self, project, settings: Any) -> list[str]:
        """What else makes this request unable to run: `field: what is wrong and what to do`, one per line."""
        return []

    def store(self, project) -> None:
        """With `save`, write the overrides into project.toml. The steps call it once their own checks passed (the
        helper answered, the base model passed), so a refused run changes nothing."""
        if self.save and self.overrides and self.section:
            project.update_settings(self.section, **self.overrides)

    # -- as a command line --------------------------------------------------------------------------------------

    def positionals(self) -> list[str]:
        found: list[str] = []
        for name in self.positional:
            value = getattr(self, name)
            found += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
        return found

    def options(self) -> list[str]:
        """This request's options for `ftstudio COMMAND`, each as one `--flag=value` (or a bare `--flag`) word, so
        that no value can be read as another option."""
        args: list[str] = []
        own = set(type(self).model_fields) - {"overrides", "save", *self.positional}
        for name in type(self).model_fields:
            if name not in own:
                continue
            value = getattr(self, name)
            default = type(self).model_fields[name].default
            if value == default:
                continue
            if isinstance(value, bool):
                args.append(_flag(name) if value else "--no-" + name.replace("_", "-"))
            else:
                args.append(f"{_flag(name)}={value}")
        for name, value in self.overrides.items():
            flag = self.flags.get(name)
            if flag is not None and isinstance(value, bool):
                args.append(flag if value else "--no-" + flag[2:])
            elif flag is not None and isinstance(value, list):  # a list flag takes its items comma-separated
                args.append(f"{flag}={','.join(map(str, value))}")
            elif flag is not None and value is not None:
                args.append(f"{flag}={value}")
            else:
                args.append(f"--set={name}={_set_value(value)}")
        if self.save:
            args.append("--save")
        return args


class IngestRequest(Request):
    command: ClassVar[str] = "ingest"
    section: ClassVar[str | None] = "knowledge"
    settings_model: ClassVar[type[BaseModel] | None] = KnowledgeSettings
    flags: ClassVar[dict[str, str]] = {"chunk_tokens": "--chunk-tokens", "overlap": "--overlap"}
    positional: ClassVar[tuple[str, ...]] = ("paths",)

    paths: list[Path] = Field(..., min_length=1, description="Files or folders (recursive) to ingest.")


class SearchRequest(Request):
    command: ClassVar[str] = "search"
    positional: ClassVar[tuple[str, ...]] = ("query",)

    query: str = Field(..., min_length=1, description="Any text; words are matched, ranked by BM25.")
    k: int = Field(5, ge=1, le=MAX_K, description="How many results.")


class CheckRequest(Request):
    """Can a base model be trained here? Planned with the project's training settings (or these overrides); without
    a project, with a new project's."""

    command: ClassVar[str] = "models check"
    section: ClassVar[str | None] = "train"
    settings_model: ClassVar[type[BaseModel] | None] = TrainSettings

    model: str | None = Field(
        None, description="Hub id, local folder, .gguf file or ollama:NAME; default: the project's base model."
    )
    trust_remote_code: bool | None = Field(
        None, description="Allow code shipped with the model; default: the project's base_model.trust_remote_code."
    )

    def plan(self, project) -> dict[str, Any]:
        """What every check plans for (ftstudio.check_model, `models use`, the catalog, the studio): the [train]
        settings (the project's, else a new project's) with the overrides, as the checks' keyword arguments."""
        train = self.resolve(project)
        return {"seq_len": train.max_seq_length, "batch": train.batch_size, "method": train.method,
                "lora_rank": train.rank}  # fmt: skip


class UseModelRequest(Request):
    """Check a base model and save it as the project's (`ftstudio models use`); a GGUF is imported first, which is
    why the studio runs it as a job."""

    command: ClassVar[str] = "models use"
    positional: ClassVar[tuple[str, ...]] = ("model",)

    model: str = Field(..., min_length=1, description="Hub id, local folder, .gguf file or ollama:NAME[:TAG].")
    trust_remote_code: bool = Field(False, description="Allow code shipped with the model. Trusted models only.")
    force: bool = Field(False, description="Save even when the check says error.")


class GenerateRequest(Request):
    command: ClassVar[str] = "generate"
    section: ClassVar[str | None] = "synth"
    settings_model: ClassVar[type[BaseModel] | None] = SynthSettings
    flags: ClassVar[dict[str, str]] = {
        "provider": "--provider", "model": "--model", "base_url": "--base-url", "concurrency": "--concurrency",
        "pairs_per_chunk": "--per-chunk", "judge": "--judge", "question_types": "--question-types",
        "paraphrases": "--paraphrases", "followups": "--followups", "passages_share": "--passages-share",
        "distractors": "--distractors", "audience": "--audience", "style": "--style",
    }  # fmt: skip

    pairs: int | None = Field(
        None, ge=1, description="Pairs the run writes in all; empty: 100 (or an unfinished run's own number)."
    )
    topic: str | None = Field(None, description="Narrow to chunks matching this; with no documents: topic only.")
    topic_only: bool = Field(False, description="Ignore the documents; write from the topic alone.")
    max_cost: float | None = Field(None, gt=0, description="Stop before spending more USD; empty: no limit.")
    fresh: bool = Field(False, description="Close an unfinished run instead of resuming it.")

    def problems(self, project, settings: SynthSettings) -> list[str]:
        found = []
        if not settings.model:
            found.append("model: no helper model chosen; choose one the provider lists (command line: "
                         "`ftstudio helpers`, then --model NAME; studio: Refresh list, then Helper model)")  # fmt: skip
        if self.topic_only and not (self.topic or "").strip():
            found.append("topic: topic_only needs a topic to write from")
        return found


class TrainRequest(Request):
    command: ClassVar[str] = "train"
    section: ClassVar[str | None] = "train"
    settings_model: ClassVar[type[BaseModel] | None] = TrainSettings
    flags: ClassVar[dict[str, str]] = {
        n: _flag(n) for n in ("method", "backend", "epochs", "max_steps", "learning_rate", "batch_size",
                              "max_seq_length", "rank", "seed", "save_every", "only_accepted")
    }  # fmt: skip

    base_model: str | None = Field(
        None, description="Hub id, local folder, .gguf file or ollama:NAME; default: the project's base model."
    )
    resume: str | None = Field(None, description="Continue this run from its last checkpoint.")
    probe_only: bool = Field(False, description="Measure memory and time per step, predict the total, stop.")

    def problems(self, project, settings: TrainSettings) -> list[str]:
        if not (self.base_model or self.resume or project.settings().base_model.model):
            return ["base_model: no base model chosen; pick one in the Base model tab or pass --base-model"]
        return []

    def store(self, project, base_model: str | None = None) -> None:
        """As `Request.store`, and the base model of this run (as the trainer resolved it) with it."""
        super().store(project)
        if self.save and self.base_model and base_model:
            project.update_settings("base_model", model=base_model)


def _helper_problems(project) -> list[str]:
    if project.settings().synth.model:
        return []
    return ["model: no helper model chosen; choose one the provider lists (command line: `ftstudio helpers`, then "
            "`ftstudio generate NAME --model NAME --save`; studio: Generate tab, Helper model)"]  # fmt: skip


class EvalSetRequest(Request):
    """Make the frozen eval set (data/eval_set.jsonl) with the project's helper, or the one named here for this run:
    `ftstudio data NAME --make-eval N [--provider P] [--model M] [--base-url URL]`. The overrides are `[eval]`
    settings; with `save`, they and the helper named here are stored once the set is written."""

    command: ClassVar[str] = "data"
    section: ClassVar[str | None] = "eval"
    settings_model: ClassVar[type[BaseModel] | None] = EvalSettings
    helper_fields: ClassVar[tuple[str, ...]] = ("provider", "model", "base_url")  # [synth] settings of this run

    make_eval: int = Field(..., ge=1, description="Eval questions the helper writes into data/eval_set.jsonl.")
    fresh: bool = Field(False, description="Replace an existing eval set.")
    max_cost: float | None = Field(None, gt=0, description="Stop before spending more USD; empty: no limit.")
    provider: ProviderName | None = Field(None, description="Helper provider for this run; default: synth.provider.")
    model: str | None = Field(None, description="Helper model for this run; default: synth.model.")
    base_url: str | None = Field(None, description="Helper address for this run; default: synth.base_url.")

    def helper(self) -> dict[str, Any]:
        """The helper settings this request names (the rest come from the project's `[synth]`)."""
        return {n: getattr(self, n) for n in self.helper_fields if getattr(self, n) is not None}

    def helper_choice(self, project) -> tuple[SynthSettings, str]:
        """The `[synth]` settings to run with and where their helper came from: this request's helper over the
        project's; when neither names a model, the helper of the last generation run (`ftstudio generate` without
        --save leaves none in project.toml), unless this request names another provider."""
        from ftstudio.synth.state import last_run_helper

        synth = project.settings().synth
        chosen = synth.model_copy(update=self.helper())
        if chosen.model:
            return chosen, "this run" if self.model else "project.toml [synth]"
        last = last_run_helper(project.dir)
        if last is None or (self.provider is not None and self.provider != last[1]["provider"]):
            return chosen, "none"
        run_id, helper = last
        return synth.model_copy(update={**helper, **self.helper()}), f"generation run {run_id}"

    def helper_settings(self, project) -> SynthSettings:
        """The `[synth]` settings this run uses (see `helper_choice`)."""
        return self.helper_choice(project)[0]

    def problems(self, project, settings: EvalSettings) -> list[str]:
        return [] if self.helper_settings(project).model else _helper_problems(project)

    def store(self, project) -> None:
        super().store(project)
        if self.save and self.helper():
            project.update_settings("synth", **self.helper())


class EvaluateRequest(Request):
    """The knowledge report card of a run (`ftstudio eval`), with this run's `[eval]` settings."""

    command: ClassVar[str] = "eval"
    section: ClassVar[str | None] = "eval"
    settings_model: ClassVar[type[BaseModel] | None] = EvalSettings
    flags: ClassVar[dict[str, str]] = {"judge_model": "--judge-model"}

    run: str | None = Field(None, description="Run id; default: the newest completed run.")

    def problems(self, project, settings: EvalSettings) -> list[str]:
        if not project.eval_set.is_file():  # the first thing to fix: without questions there is nothing to judge
            return [
                f"eval set: project {project.name!r} has none (data/eval_set.jsonl); make one, best before "
                f"training: `ftstudio data {project.name} --make-eval 40` (studio: Generate tab, Make eval set)"
            ]
        return [] if settings.judge_model else _helper_problems(project)


class ExportRequest(Request):
    command: ClassVar[str] = "export"
    section: ClassVar[str | None] = "export"
    settings_model: ClassVar[type[BaseModel] | None] = ExportSettings
    flags: ClassVar[dict[str, str]] = {"format": "--format", "quant": "--quant", "verify": "--verify"}

    run: str | None = Field(None, description="Run id; default: the newest completed run.")
    to_ollama: str | None = Field(None, description="Install the GGUF into Ollama as NAME[:TAG] ($OLLAMA_HOST).")


class ChatRequest(Request):
    command: ClassVar[str] = "chat"
    positional: ClassVar[tuple[str, ...]] = ("prompt",)

    prompt: str = Field(..., min_length=1, description="What to ask the tuned model.")
    run: str | None = Field(None, description="Run id; default: the newest completed run.")
    passages: int = Field(0, ge=0, le=20, description="Chunks from the knowledge store put before the question.")
    compare: bool = Field(False, description="Also answer with the base model alone, for comparison.")
    max_new_tokens: int | None = Field(None, ge=1, description="Longest answer in tokens; empty: the run's setting.")


# The commands that may run as background jobs, by name.
JOB_REQUESTS: dict[str, type[Request]] = {
    r.command: r for r in (IngestRequest, GenerateRequest, TrainRequest, ExportRequest, EvalSetRequest, EvaluateRequest)
}
