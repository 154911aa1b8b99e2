"""Any OpenAI-compatible server (vLLM, llama.cpp's server, LM Studio, Ollama's /v1) by base URL; key optional.

`/models` lists, `/chat/completions` answers. Structured output is negotiated once per server and remembered for the
provider's life (one generation run): `response_format` `json_schema` first, then `json_object` carrying the schema
(llama-cpp-python's server and others that turn it into a grammar), then prompt-only JSON. A step down is taken only
when the server's answer (400, 422, 500 or 501 whose message names the response format or schema) says the last form
is not supported; every other answer is classified as usual. Until one form has been answered, structured requests
go one at a time, so a run with many requests in flight learns the server's form from a single refusal.
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

from ftstudio.errors import BadInput
from ftstudio.synth.providers.base import (
    Completion,
    JsonText,
    Message,
    ModelInfo,
    Provider,
    ProviderError,
    error_text,
    json_text,
    parse_retry_after,
)
from ftstudio.synth.providers.registry import register

# The ways to ask for JSON, best first; None is prompt-only (the prompt itself asks for JSON).
STRUCTURED_FORMS: tuple[str | None, ...] = ("json_schema", "json_object", None)
_FORMAT_STATUSES = frozenset({400, 422, 500, 501})
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema", "grammar", "structured")


def normalize_base_url(url: str) -> str:
    """`http://host:8000` → `http://host:8000/v1`; a URL with a path is kept as given (minus a trailing slash)."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    return url + "/v1" if not urllib.parse.urlsplit(url).path else url


def _price(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@register
class OpenAICompatProvider(Provider):
    name = "openai"
    default_concurrency = 16
    key_env: ClassVar[str] = "OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"
    label: ClassVar[str] = "OpenAI-compatible server"

    def __init__(self, base_url: str | None = None, api_key: str | None = None, **kwargs: Any):
        base = base_url or (os.environ.get(self.base_url_env) if self.base_url_env else None) or self.default_base_url
        if not base:
            raise BadInput(
                "the openai provider needs the server's address",
                hint="pass --base-url (e.g. http://127.0.0.1:8000/v1 for vLLM, http://127.0.0.1:11434/v1 for Ollama)"
                f" or set {self.base_url_env}",
            )
        super().__init__(normalize_base_url(base), api_key or os.environ.get(self.key_env) or None, **kwargs)
        self.structured_form: str | None = STRUCTURED_FORMS[0]
        self._form_settled = False  # True once the server answered a structured request (or none is left to try)
        self._probe: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._models: dict[str, ModelInfo] = {}

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _raise_for(self, status: int, body: Any, headers: Mapping[str, str], model: str | None = None) -> None:
        text = error_text(body)
        after = parse_retry_after(headers.get("Retry-After"))  # aiohttp's headers are case-insensitive
        if status in (401, 403):
            raise ProviderError(
                "auth",
                f"{self.label} at {self.base_url} rejected the request as unauthorised ({status})",
                hint=f"check the API key (set {self.key_env} or enter it in the UI); the key is never stored",
                status=status,
            )
        if status == 402:
            raise ProviderError("auth", f"{self.label} refused: {text} (402)", hint="add credits to the account")
        if status == 404:
            raise ProviderError(
                "model_missing",
                f"{self.label} at {self.base_url} has no model {model!r} ({text})",
                hint=f"pick one that `ftstudio helpers --provider {self.name}` lists",
                status=status,
            )
        if status == 429:
            raise ProviderError("rate_limit", f"rate limited (429): {text}", status=status, retry_after=after)
        if status == 408:
            raise ProviderError("timeout", f"request timed out at the server (408): {text}", status=status)
        if status >= 500:
            raise ProviderError("server", f"server error {status}: {text}", status=status, retry_after=after)
        raise ProviderError("bad_request", f"{self.label} answered {status}: {text}", status=status)

    async def list_models(self) -> list[ModelInfo]:
        status, body, headers = await self._request("GET", f"{self.base_url}/models", what="listing models")
        if status != 200:
            self._raise_for(status, body, headers)
        items = body.get("data") if isinstance(body, dict) else None
        models = []
        for m in items or []:
            pricing = m.get("pricing") or {}
            ctx = (
                m.get("context_length") or m.get("max_model_len") or (m.get("top_provider") or {}).get("context_length")
            )
            models.append(
                ModelInfo(
                    str(m.get("id")),
                    int(ctx) if ctx else None,
                    _price(pricing.get("prompt")),
                    _price(pricing.get("completion")),
                    None,
                    str(m.get("name") or m.get("owned_by") or ""),
                )
            )
        self._models = {m.id: m for m in models}
        return models

    async def check(self, model: str) -> ModelInfo | None:
        await self.list_models()
        # Some servers list nothing useful (or serve whatever is loaded); an unlisted model is tried anyway.
        return self._models.get(model)

    def _payload(self, model, messages, temperature, seed, max_tokens) -> dict[str, Any]:
        """The request's members but the response format (`_body` adds it)."""
        payload: dict[str, Any] = {"model": model, "messages": messages}
        for key, value in (("temperature", temperature), ("seed", seed), ("max_tokens", max_tokens)):
            if value is not None:
                payload[key] = value
        return payload

    def _body(self, payload: dict[str, Any], schema: dict[str, Any] | None, form: str | None) -> JsonText:
        """The request body; the schema, the same for every request of a run, is encoded once."""
        if schema is None or form is None:
            return json_text(payload)
        encoded = self.encoded(schema)
        if form == "json_schema":
            fmt = '{"type": "json_schema", "json_schema": {"name": "pairs", "schema": ' + encoded + ', "strict": true}}'
        else:
            fmt = '{"type": "json_object", "schema": ' + encoded + "}"
        return json_text(payload, response_format=fmt)

    def _probe_lock(self) -> asyncio.Lock:
        """The lock that lets one structured request at a time find the server's form (one per event loop)."""
        loop = asyncio.get_running_loop()
        if self._probe is None or self._probe[0] is not loop:
            self._probe = (loop, asyncio.Lock())
        return self._probe[1]

    def _form_refused(self, form: str | None, status: int, body: Any) -> bool:
        """Whether this answer says the server cannot do `form`; if so, step down to the next form (once)."""
        if form is None or status not in _FORMAT_STATUSES:
            return False
        if not any(word in error_text(body).lower() for word in _FORMAT_WORDS):
            return False
        if self.structured_form == form:  # another request may have stepped down already
            self.structured_form = STRUCTURED_FORMS[STRUCTURED_FORMS.index(form) + 1]
            self._form_settled = self.structured_form is None
        return True

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
        args = (model, messages, schema, temperature, seed, max_tokens)
        if schema is not None and not self._form_settled:
            async with self._probe_lock():
                if not self._form_settled:
                    return await self._chat(*args)
        return await self._chat(*args)

    async def _chat(self, model, messages, schema, temperature, seed, max_tokens) -> Completion:
        while True:
            form = self.structured_form if schema is not None else None
            data = self._body(self._payload(model, messages, temperature, seed, max_tokens), schema, form)
            url = f"{self.base_url}/chat/completions"
            status, body, headers = await self._request("POST", url, what="chat", json_body=data)
            if self._form_refused(form, status, body):
                continue  # the same request in the next form; the prompt itself asks for JSON in every form
            if status != 200 or not isinstance(body, dict) or not body.get("choices"):
                if status == 200:
                    raise ProviderError("server", f"reply without choices: {error_text(body)}", status=status)
                self._raise_for(status, body, headers, model)
            if form is not None:
                self._form_settled = True
            message = body["choices"][0].get("message") or {}
            usage = body.get("usage") or {}
            tokens_in, tokens_out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            cost = _price(usage.get("cost"))
            if cost is None and model in self._models:
                cost = self._models[model].cost(tokens_in, tokens_out)
            return Completion(message.get("content") or "", tokens_in, tokens_out, cost, form is not None)
