"""The one registry of helper-model providers; the built-ins register here exactly like a plugin does.

A third-party package adds a provider by exposing a `Provider` subclass under the `ftstudio.providers` entry-point
group (or by calling `register` itself).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from ftstudio.errors import BadInput
from ftstudio.synth.providers.base import Provider

_PROVIDERS: dict[str, type[Provider]] = {}
_BUILTINS = ("ollama", "openai", "openrouter", "offline", "llamacpp")
_loaded = False


def register(cls: type[Provider]) -> type[Provider]:
    """Class decorator: make `cls` available under `cls.name`."""
    _PROVIDERS[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTINS:
        import_module(f"ftstudio.synth.providers.{module}")
    for ep in entry_points(group="ftstudio.providers"):
        register(ep.load())


def names() -> list[str]:
    _load()
    return sorted(_PROVIDERS)


def provider_class(name: str) -> type[Provider]:
    _load()
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise BadInput(f"unknown provider {name!r}", hint=f"use one of: {', '.join(names())}") from None


def create(name: str, *, base_url: str | None = None, api_key: str | None = None, **kwargs) -> Provider:
    """A provider instance by name; the key (if any) comes from the caller or the provider's environment variable."""
    return provider_class(name)(base_url=base_url, api_key=api_key, **kwargs)
