"""Find a model's config and tokenizer files, from a local folder, the Hugging Face hub or a GGUF, and nothing else.

A GGUF file or `ollama:NAME[:TAG]` is imported once into a cached folder (`ftstudio.basemodels.gguf_import`) and
resolved as that folder, under the user's spec.

A hub id is read through `huggingface_hub` (so its cache is shared with every other tool): only `config.json` and the
tokenizer files, never weights. Offline (HF_HUB_OFFLINE set, or the hub unreachable) the cache is used alone and the
result says so. Reachability is probed once with a short TCP connect, because huggingface_hub otherwise retries a
dead network for about 20 seconds before giving up.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ftstudio.basemodels.gguf_import import import_gguf, is_gguf_spec
from ftstudio.errors import BadInput, NotFound, Unavailable
from ftstudio.progress import ProgressFn

CONFIG_FILE = "config.json"
TOKENIZER_FILES = (
    "tokenizer_config.json",
    "tokenizer.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
    "generation_config.json",
)
PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's metadata came from. `folder` holds config.json (a local folder or a hub cache snapshot)."""

    spec: str
    source: str  # "folder", "hub" (fetched now), "hub-cache" (offline, from the cache), "gguf" or "ollama" (imported)
    folder: Path
    config: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)
    hub_id: str | None = None
    offline_reason: str | None = None

    @property
    def label(self) -> str:
        if self.source in ("gguf", "ollama"):
            return self.spec
        return self.hub_id or str(self.folder)


def looks_like_path(spec: str) -> bool:
    """True for anything that names a folder rather than a hub id: absolute, ./, ~, or an existing path."""
    return spec.startswith(("/", "./", "../", "~", ".\\")) or Path(spec).expanduser().exists() or spec.count("/") > 1


def read_config(path: Path) -> dict[str, Any]:
    """Parse a config.json; BadInput naming the file and the problem when it is not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})", hint="the config.json is damaged: fetch it again") from exc
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a JSON object, got {type(data).__name__}", hint="is this a model config?")
    return data


def resolve_model(
    spec: str,
    *,
    offline: bool | None = None,
    cache_dir: Path | str | None = None,
    progress: ProgressFn | None = None,
) -> ResolvedModel:
    """Resolve a local folder, a hub id or a GGUF spec (a .gguf file, ollama:NAME[:TAG]) to config and tokenizer files.

    `offline` None means: offline when HF_HUB_OFFLINE is set or the hub does not answer. A GGUF spec is imported
    (dequantized once, reporting to `progress`) and resolved as its cached folder. Raises NotFound/BadInput (exit 2)
    for a folder without config.json, a malformed id, a repository the hub does not have, or a GGUF that cannot be
    imported, and Unavailable (exit 3) when the hub cannot be reached and nothing is cached.
    """
    spec = spec.strip()
    if not spec:
        raise BadInput(
            "no model given",
            hint="pass a hub id such as Qwen/Qwen2.5-0.5B-Instruct, a folder, a .gguf file or ollama:NAME",
        )
    if is_gguf_spec(spec):
        imported = import_gguf(spec, progress=progress)
        folder = _resolve_folder(str(imported.folder))
        # A file is named by its absolute path (as a project stores it), an Ollama model by its name.
        label = spec if imported.kind == "ollama" else imported.source
        return ResolvedModel(label, imported.kind, folder.folder, folder.config, folder.files)
    if looks_like_path(spec):
        return _resolve_folder(spec)
    return _resolve_hub(spec, offline=offline, cache_dir=cache_dir)


def _resolve_folder(spec: str) -> ResolvedModel:
    folder = Path(spec).expanduser().resolve()
    if not folder.is_dir():
        raise NotFound(f"no folder {folder}", hint="pass an existing model folder, or a hub id like org/name")
    config = folder / CONFIG_FILE
    if not config.is_file():
        raise BadInput(
            f"{folder} has no {CONFIG_FILE}: not a Hugging Face model folder",
            hint="point at the folder that holds config.json (and the tokenizer files)",
        )
    files = {name: folder / name for name in (CONFIG_FILE, *TOKENIZER_FILES) if (folder / name).is_file()}
    return ResolvedModel(spec, "folder", folder, read_config(config), files)


def hub_cache_dir(cache_dir: Path | str | None = None) -> Path:
    """The hub cache: the argument, else $HF_HUB_CACHE, else $HF_HOME/hub, else huggingface_hub's default."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def hub_reachable(endpoint: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when a TCP connection to the hub opens within `timeout`, else why not (one line)."""
    url = urlparse(endpoint or hub_endpoint())
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot reach {host}:{port} ({exc.strerror or exc.__class__.__name__})"


def _resolve_hub(repo_id: str, *, offline: bool | None, cache_dir: Path | str | None) -> ResolvedModel:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise BadInput(
            f"{repo_id!r} is neither a folder nor a valid hub id ({exc})",
            hint="a hub id looks like org/name (e.g. Qwen/Qwen2.5-0.5B-Instruct); a folder must exist",
        ) from exc
    cache = hub_cache_dir(cache_dir)
    reason = None
    if offline is None:
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
            reason = "HF_HUB_OFFLINE is set"
        else:
            reason = hub_reachable()
    elif offline:
        reason = "offline mode was asked for"
    local_only = reason is not None

    def download(name: str) -> Path:
        return Path(
            hf_hub_download(
                repo_id, name, cache_dir=cache, local_files_only=local_only, etag_timeout=10, endpoint=hub_endpoint()
            )
        )

    try:
        config_path = download(CONFIG_FILE)
    except GatedRepoError as exc:
        raise Unavailable(
            f"{repo_id} is gated: the hub wants you to accept its terms first",
            hint=f"accept them at {hub_endpoint()}/{repo_id}, then log in (`hf auth login`) or set HF_TOKEN",
        ) from exc
    except RepositoryNotFoundError as exc:
        raise NotFound(
            f"the hub has no model {repo_id!r}",
            hint="check the spelling (ids are org/name); private repositories need HF_TOKEN",
        ) from exc
    except EntryNotFoundError as exc:
        if isinstance(exc, LocalEntryNotFoundError) or local_only:
            raise Unavailable(
                f"{repo_id} is not in the local hub cache ({cache}) and the hub is unreachable: {reason}",
                hint="connect to the internet once (ftstudio only fetches config and tokenizer files), "
                "or pass a local model folder",
            ) from exc
        raise BadInput(f"{repo_id} has no config.json: not a transformers model", hint="pick another model") from exc
    except OSError as exc:  # network failure after a successful probe
        raise Unavailable(f"could not fetch {repo_id}/config.json: {exc}", hint="check the connection") from exc
    files = {CONFIG_FILE: config_path}
    for name in TOKENIZER_FILES:
        try:
            files[name] = download(name)
        except (EntryNotFoundError, RepositoryNotFoundError, OSError):
            continue  # a repository has only some of them; a missing one is simply absent
    source = "hub-cache" if local_only else "hub"
    return ResolvedModel(repo_id, source, config_path.parent, read_config(config_path), files, repo_id, reason)
