"""Listing helper models: a synchronous face over a provider's `list_models`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ftstudio.synth.providers import ModelInfo, ProviderError, create


def list_helpers(
    provider: str, base_url: str | None = None, api_key: str | None = None, *, root: Path | None = None
) -> list[ModelInfo]:
    """The models `provider` offers at `base_url` (a local provider: in the workspace `root` too); Unavailable (with
    the fix) when it cannot be reached."""

    async def main() -> list[ModelInfo]:
        async with create(provider, base_url=base_url, api_key=api_key, root=root) as p:
            return await p.list_models()

    try:
        return asyncio.run(main())
    except ProviderError as exc:
        raise exc.to_unavailable() from None
