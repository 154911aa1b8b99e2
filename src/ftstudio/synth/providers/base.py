"""The helper-model protocol: list models, complete one chat (optionally constrained by a JSON schema).

A provider subclasses `Provider`, sets `name`, and implements `list_models` and `chat`; it registers itself with
`ftstudio.synth.providers.registry.register`. Failures are `ProviderError`s whose `kind` tells the caller whether
retrying can help (rate limit, server error, timeout) or not (no server, bad key, missing model).
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from ftstudio.errors import Unavailable
from ftstudio.progress import ProgressFn

ErrorKind = Literal["unreachable", "auth", "model_missing", "rate_limit", "server", "timeout", "bad_request"]
# Kinds a later attempt may fix; the others stop the run.
RETRYABLE: frozenset[str] = frozenset({"rate_limit", "server", "timeout", "unreachable"})


@dataclass(frozen=True)
class ModelInfo:
    """One model a provider offers; prices are USD per token, None where the provider does not say."""

    id: str
    context_length: int | None = None
    prompt_price: float | None = None
    completion_price: float | None = None
    size_bytes: int | None = None
    details: str = ""

    def cost(self, tokens_in: int, tokens_out: int) -> float | None:
        if self.prompt_price is None or self.completion_price is None:
            return None
        return tokens_in * self.prompt_price + tokens_out * self.completion_price


@dataclass(frozen=True)
class Completion:
    """The helper's reply: text plus what it cost (cost None when unknown, 0 for local models)."""

    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    structured: bool = False


@dataclass
class ProviderError(Exception):
    """A request failed; `kind` classifies it, `retry_after` is the server's wish in seconds when it sent one."""

    kind: ErrorKind
    message: str
    hint: str | None = None
    status: int | None = None
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    def to_unavailable(self) -> Unavailable:
        return Unavailable(self.message, hint=self.hint)


Message = dict[str, str]


@dataclass(frozen=True)
class JsonText:
    """A request body encoded already: `json_text(payload, member=text)` builds one."""

    data: bytes


def json_text(payload: dict[str, Any], **encoded: str) -> JsonText:
    """`payload` as one JSON object, plus members whose values are JSON text already (spliced in, not re-encoded:
    a schema sent with every request is encoded once, see `Provider.encoded`)."""
    text = json.dumps(payload)
    if encoded:
        assert payload, "the members are spliced after the payload's own"
        text = text[:-1] + "".join(f", {json.dumps(k)}: {v}" for k, v in encoded.items()) + "}"
    return JsonText(text.encode("utf-8"))


class Provider(ABC):
    """Base class of every helper-model provider. Use as `async with provider:` to close its connections."""

    name: ClassVar[str]
    default_base_url: ClassVar[str | None] = None
    default_concurrency: ClassVar[int] = 8
    needs_key: ClassVar[bool] = False
    # How JSON output is asked for: "json_schema" (a schema the server enforces), "json_object" (JSON mode carrying
    # the schema) or None (the prompt alone). A provider that negotiates it with its server updates it.
    structured_form: str | None = "json_schema"
    # Requests it can work on at once; None: as many as asked (a server queues them). A model in this process
    # decodes one sequence at a time: the runs cap their concurrency to it (`concurrency_for`).
    max_parallel: ClassVar[int | None] = None

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        concurrency: int = 64,
        timeout: float = 300,
        root: Path | None = None,
        num_ctx: int | None = None,
        progress: ProgressFn | None = None,
    ):
        """`root` is the workspace (a local provider finds models in it), `num_ctx` the context window the run asks
        for (a local provider sizes its model by it), `progress` where slow setup (loading a model) is reported."""
        self.base_url = base_url or self.default_base_url
        # The key lives only in memory; __repr__ leaves it out so it never reaches a log.
        self._api_key = api_key
        self.concurrency = concurrency
        self.timeout = timeout
        self.root, self.num_ctx, self.progress = root, num_ctx, progress
        self._session: Any = None
        self._encoded: dict[int, tuple[Any, str]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def concurrency_for(self, requested: int | None) -> int:
        """Requests a run keeps in flight: the one asked for (else the provider's default), at most `max_parallel`."""
        wanted = requested or self.default_concurrency
        return min(wanted, self.max_parallel) if self.max_parallel else wanted

    @abstractmethod
    async def list_models(self) -> list[ModelInfo]:
        """The models this provider can run now."""

    @abstractmethod
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
        """One chat completion; `schema` asks for JSON output following it. Raises ProviderError."""

    async def check(self, model: str) -> ModelInfo | None:
        """Fail fast (ProviderError) when the server, key or model is missing; return the model's info if listed."""
        models = await self.list_models()
        return next((m for m in models if m.id == model), None)

    async def session(self):
        """The shared aiohttp session, created in the running loop (aiohttp: far less CPU per request than httpx)."""
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers=self.headers(),
                # Helper APIs authenticate by header; a real cookie jar would filter cookies for every request.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def headers(self) -> dict[str, str]:
        return {}

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def encoded(self, value: Any) -> str:
        """The JSON text of a value that many requests repeat unchanged (a schema), encoded once per value.

        The value must not be changed afterwards (schemas are constants)."""
        hit = self._encoded.get(id(value))
        if hit is None or hit[0] is not value:
            hit = self._encoded[id(value)] = (value, json.dumps(value))
        return hit[1]

    async def _request(
        self, method: str, url: str, *, what: str, json_body: Any = None
    ) -> tuple[int, Any, Mapping[str, str]]:
        """Send one request; return (status, decoded JSON or text, headers: case-insensitive, read-only).

        `json_body` is a value to encode, or `JsonText` already encoded. Network failures → ProviderError."""
        import aiohttp

        session = await self.session()
        if isinstance(json_body, JsonText):
            body: dict[str, Any] = {"data": aiohttp.BytesPayload(json_body.data, content_type="application/json")}
        else:
            body = {"json": json_body}
        try:
            async with session.request(method, url, **body) as resp:
                raw = await resp.read()
                try:
                    reply: Any = json.loads(raw) if raw else None
                except ValueError:
                    reply = raw.decode("utf-8", "replace")
                return resp.status, reply, resp.headers
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ProviderError("timeout", f"{what}: no reply from {self.base_url} within {self.timeout:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise self.unreachable(exc) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            raise ProviderError("server", f"{what}: the connection to {self.base_url} broke ({exc})") from exc

    def unreachable(self, exc: Exception) -> ProviderError:
        return ProviderError(
            "unreachable",
            f"no {self.name} server at {self.base_url} ({exc.__class__.__name__})",
            hint="check the address (--base-url) and that the server is running",
        )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def error_text(body: Any) -> str:
    """The message inside an error body in Ollama's (`{"error": "…"}`) or OpenAI's (`{"error": {"message"}}`) form."""
    if isinstance(body, dict):
        err = body.get("error", body.get("message", body))
        if isinstance(err, dict):
            err = err.get("message") or err
        return str(err)[:500]
    return str(body or "")[:500]
