"""Ollama's native REST API (`/api/tags`, `/api/show`, `/api/chat`) at OLLAMA_HOST, read as Ollama's tools read it."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import urllib.parse
from typing import Any

from ftstudio.synth.providers.base import (
    Completion,
    Message,
    ModelInfo,
    Provider,
    ProviderError,
    error_text,
    json_text,
    parse_retry_after,
)
from ftstudio.synth.providers.registry import register

DEFAULT_PORT = 11434


def parse_ollama_host(host: str | None) -> str:
    """OLLAMA_HOST as Ollama's clients read it: `0.0.0.0`, `:11434`, `host:port`, `https://host` (port 443)…"""
    host, port = (host or "").strip(), DEFAULT_PORT
    scheme, _, hostport = host.partition("://")
    if not hostport:
        scheme, hostport = "http", host
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    split = urllib.parse.urlsplit(f"{scheme}://{hostport}")
    name = split.hostname or "127.0.0.1"
    port = split.port or port
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    except ValueError:
        pass
    path = split.path.strip("/")
    return f"{scheme}://{name}:{port}" + (f"/{path}" if path else "")


def _same_model(listed: str, wanted: str) -> bool:
    return listed == wanted or (":" not in wanted and listed == f"{wanted}:latest")


@register
class OllamaProvider(Provider):
    name = "ollama"
    default_concurrency = 4  # a local GPU serves few requests at once (OLLAMA_NUM_PARALLEL defaults to 4)

    def __init__(self, base_url: str | None = None, api_key: str | None = None, **kwargs: Any):
        super().__init__(parse_ollama_host(base_url or os.environ.get("OLLAMA_HOST")), api_key, **kwargs)

    def unreachable(self, exc: Exception) -> ProviderError:
        return ProviderError(
            "unreachable",
            f"no Ollama server at {self.base_url}",
            hint="start it with `ollama serve` or set OLLAMA_HOST (or --base-url) to where it runs",
        )

    def _model_missing(self, model: str) -> ProviderError:
        return ProviderError(
            "model_missing",
            f"Ollama at {self.base_url} has no model {model!r}",
            hint=f"pull it with `ollama pull {model}`, or pick one that `ftstudio helpers --provider ollama` lists",
        )

    async def list_models(self) -> list[ModelInfo]:
        status, body, _ = await self._request("GET", f"{self.base_url}/api/tags", what="listing models")
        if status != 200 or not isinstance(body, dict):
            raise ProviderError("server", f"Ollama /api/tags answered {status}: {error_text(body)}", status=status)
        listed = body.get("models") or []
        contexts = await asyncio.gather(*(self._context_length(m.get("name", "")) for m in listed))
        models = []
        for m, ctx in zip(listed, contexts, strict=True):
            d = m.get("details") or {}
            details = " ".join(x for x in (d.get("parameter_size"), d.get("quantization_level")) if x)
            models.append(
                ModelInfo(m.get("name", ""), ctx, 0.0, 0.0, m.get("size"), details)  # local: no price per token
            )
        return models

    async def _context_length(self, model: str) -> int | None:
        try:
            status, body, _ = await self._request(
                "POST", f"{self.base_url}/api/show", what="show", json_body={"model": model}
            )
        except ProviderError:
            return None
        info = body.get("model_info") if status == 200 and isinstance(body, dict) else None
        if not isinstance(info, dict):
            return None
        return next((int(v) for k, v in info.items() if k.endswith(".context_length")), None)

    async def check(self, model: str) -> ModelInfo | None:
        status, body, _ = await self._request("GET", f"{self.base_url}/api/tags", what="listing models")
        if status != 200 or not isinstance(body, dict):
            raise ProviderError("server", f"Ollama /api/tags answered {status}: {error_text(body)}", status=status)
        for m in body.get("models") or []:
            if _same_model(m.get("name", ""), model):
                return ModelInfo(m["name"], None, 0.0, 0.0, m.get("size"))
        raise self._model_missing(model)

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
        options = {"temperature": temperature, "seed": seed, "num_predict": max_tokens, "num_ctx": num_ctx}
        payload: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": False,
            "options": {k: v for k, v in options.items() if v is not None},
        }
        # The schema, the same for every request of a run, is encoded once.
        data = json_text(payload, format=self.encoded(schema)) if schema is not None else json_text(payload)
        status, body, headers = await self._request("POST", f"{self.base_url}/api/chat", what="chat", json_body=data)
        if status == 200 and isinstance(body, dict):
            content = (body.get("message") or {}).get("content") or ""
            return Completion(
                content,
                int(body.get("prompt_eval_count") or 0),
                int(body.get("eval_count") or 0),
                0.0,
                schema is not None,
            )
        text = error_text(body)
        if status == 404 and "not found" in text:
            raise self._model_missing(model)
        kind = "rate_limit" if status in (429, 503) else "server" if status >= 500 else "bad_request"
        raise ProviderError(
            kind,
            f"Ollama answered {status}: {text}",
            status=status,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
