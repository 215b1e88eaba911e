"""The model registry: one place that knows every model by name.

    >>> from ytfgvc.models import create_model, list_models
    >>> model = create_model("rra", num_classes=200, backbone="inception_v3")

Registering a name twice raises; an unknown name gets a "did you mean".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ytfgvc.models.base import ModelOutput, VideoClassifier
from ytfgvc.registry import Registry

MODELS = Registry("model", builtin=["ytfgvc.models.rra", "ytfgvc.models.tsn", "ytfgvc.models.i3d"], hint="known models")


def register_model(name: str | None = None) -> Callable:
    """Decorator: register a builder ``fn(num_classes, **kw) -> VideoClassifier`` under ``name``."""
    return MODELS.register(name)


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


def create_model(name: str, num_classes: int, **kwargs: Any) -> VideoClassifier:
    """Build model ``name`` for ``num_classes`` classes; ``kwargs`` go to its builder."""
    return MODELS.get(name)(num_classes=num_classes, **kwargs)


__all__ = ["MODELS", "ModelOutput", "VideoClassifier", "create_model", "list_models", "register_model"]
