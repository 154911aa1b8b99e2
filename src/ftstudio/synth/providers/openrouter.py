"""OpenRouter: a configuration of the OpenAI-compatible provider with a required key, attribution headers and prices."""

from __future__ import annotations

from typing import Any

from ftstudio.synth.providers.base import Message, ProviderError
from ftstudio.synth.providers.openai import OpenAICompatProvider
from ftstudio.synth.providers.registry import register


@register
class OpenRouterProvider(OpenAICompatProvider):
    name = "openrouter"
    default_base_url = "https://openrouter.ai/api/v1"
    default_concurrency = 16
    needs_key = True
    key_env = "OPENROUTER_API_KEY"
    base_url_env = None
    label = "OpenRouter"

    def headers(self) -> dict[str, str]:
        # Attribution headers OpenRouter documents for app rankings.
        return {**super().headers(), "HTTP-Referer": "https://github.com/ftstudio/ftstudio", "X-Title": "ftstudio"}

    def _require_key(self) -> None:
        if not self._api_key:
            raise ProviderError(
                "auth",
                "no OpenRouter API key",
                hint="set OPENROUTER_API_KEY in the environment or enter the key in the UI (it is never stored)",
            )

    async def check(self, model: str):
        self._require_key()
        info = await super().check(model)
        if info is None and self._models:
            raise ProviderError(
                "model_missing",
                f"OpenRouter has no model {model!r}",
                hint="pick one that `ftstudio helpers --provider openrouter` lists (e.g. openai/gpt-4o-mini)",
            )
        return info

    def _payload(self, model, messages: list[Message], temperature, seed, max_tokens) -> dict:
        # usage.include makes OpenRouter report the request's cost in USD beside the token counts.
        payload = super()._payload(model, messages, temperature, seed, max_tokens)
        return {**payload, "usage": {"include": True}}

    async def chat(self, model: str, messages: list[Message], **kwargs: Any):
        self._require_key()
        return await super().chat(model, messages, **kwargs)
