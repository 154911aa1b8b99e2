"""Helper-model providers: one protocol (`base.Provider`), one registry, one module per provider."""

from ftstudio.synth.providers.base import Completion, ModelInfo, Provider, ProviderError
from ftstudio.synth.providers.registry import create, names, provider_class, register

__all__ = ["Completion", "ModelInfo", "Provider", "ProviderError", "create", "names", "provider_class", "register"]
