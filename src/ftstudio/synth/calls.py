"""One request to the helper, as every synth task sends it: a time limit, retries with back-off, and its cost counted.

Generation, the eval set and the judge all go through `ask`, so they retry, count and fail the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from typing import Any, Protocol

from ftstudio.synth.providers import Completion, Provider, ProviderError

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0


class Counts(Protocol):
    """What `ask` adds to: requests sent, retries, tokens and USD (generation's per-request outcome is one)."""

    requests: int
    retries: int
    tokens_in: int
    tokens_out: int
    cost: float


@dataclass
class Usage:
    """Running totals of one task's helper use."""

    requests: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "tokens": {"in": self.tokens_in, "out": self.tokens_out},
            "cost_usd": round(self.cost, 6),
        }


@dataclass(frozen=True)
class Sampling:
    """How the helper is asked: the model, sampling, limits and tries."""

    model: str
    temperature: float | None
    seed: int | None
    max_tokens: int
    num_ctx: int | None
    timeout_s: float
    max_attempts: int


def deadline(seconds: float):
    """A per-request time limit without the extra task `asyncio.wait_for` costs (Python 3.11+)."""
    if hasattr(asyncio, "timeout"):
        return asyncio.timeout(seconds)
    return contextlib.nullcontext()  # 3.10: the provider's own session timeout (same value) applies


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before try `attempt + 1`: the server's Retry-After if given, else capped exponential + jitter."""
    if retry_after is not None:
        return min(retry_after, BACKOFF_CAP_S * 4) + rng.uniform(0, 0.1)
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.5)


async def ask(
    provider: Provider, how: Sampling, content: str, schema: dict[str, Any], counts: Counts, rng: random.Random
) -> Completion:
    """One chat with retries (rate limits, 5xx, timeouts, refused connections); counts into `counts`.

    Raises the last ProviderError when a try cannot help (bad key, missing model) or the tries are spent.
    """
    for attempt in range(1, how.max_attempts + 1):
        counts.requests += 1
        try:
            async with deadline(how.timeout_s):
                result = await provider.chat(
                    how.model,
                    [{"role": "user", "content": content}],
                    schema=schema,
                    temperature=how.temperature,
                    seed=how.seed,
                    max_tokens=how.max_tokens,
                    num_ctx=how.num_ctx,
                )
        except asyncio.TimeoutError:
            error = ProviderError("timeout", f"no reply within {how.timeout_s:g} s (timeout_s)")
        except ProviderError as exc:
            error = exc
        else:
            counts.tokens_in += result.tokens_in
            counts.tokens_out += result.tokens_out
            counts.cost += result.cost_usd or 0.0
            return result
        if not error.retryable or attempt == how.max_attempts:
            raise error
        counts.retries += 1
        await asyncio.sleep(backoff_delay(attempt, error.retry_after, rng))
    raise AssertionError("unreachable")


async def preflight(provider: Provider, model: str, max_tokens: int) -> float | None:
    """Check the server, key and model before any work; return a cost bound per request when prices are listed.

    Raises Unavailable (with the fix) when the server, key or model is missing.
    """
    try:
        info = await provider.check(model)
    except ProviderError as exc:
        raise exc.to_unavailable() from None
    if info is None or info.prompt_price is None or info.completion_price is None:
        return None
    # Prompt ≈ template + chunk; ~4 characters per token, generously rounded up.
    return 4096 * info.prompt_price + max_tokens * info.completion_price
