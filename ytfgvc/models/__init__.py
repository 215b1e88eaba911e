"""The model registry: one place that knows every model by name.

    >>> from ytfgvc.models import create_model, list_models
    >>> model = create_model("rra", num_classes=200, backbone="inception_v3")

Registering a name twice raises; an unknown name gets a "did you mean".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from ytfgvc.config import did_you_mean
from ytfgvc.errors import YtfgvcError
from ytfgvc.models.base import ModelOutput, VideoClassifier

_MODELS: dict[str, Callable[..., VideoClassifier]] = {}


def register_model(name: str | None = None) -> Callable:
    """Decorator: register a builder ``fn(num_classes, **kw) -> VideoClassifier`` under ``name``."""

    def wrap(fn: Callable[..., VideoClassifier]) -> Callable[..., VideoClassifier]:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is already registered")
        _MODELS[key] = fn
        return fn

    return wrap


def _load_builtin() -> None:
    # Importing the modules registers their models (each module calls register_model).
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


# Each model module appends itself here.
_BUILTIN_MODULES: list[str] = []
_BUILTIN_MODULES += ["ytfgvc.models.rra", "ytfgvc.models.tsn", "ytfgvc.models.i3d"]


def list_models(pattern: str = "*") -> list[str]:
    _load_builtin()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, num_classes: int, **kwargs: Any) -> VideoClassifier:
    """Build model ``name`` for ``num_classes`` classes; ``kwargs`` go to its builder."""
    _load_builtin()
    if name not in _MODELS:
        raise YtfgvcError(
            f"unknown model {name!r}{did_you_mean(name, _MODELS)}", f"known models: {', '.join(sorted(_MODELS))}"
        )
    return _MODELS[name](num_classes=num_classes, **kwargs)


__all__ = ["ModelOutput", "VideoClassifier", "create_model", "list_models", "register_model"]
