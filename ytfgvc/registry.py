"""A named registry (models, flow backends): register once, look up with "did you mean".

    >>> MODELS = Registry("model", builtin=["ytfgvc.models.rra"])
    >>> @MODELS.register("rra")
    ... def rra(num_classes, **kw): ...
    >>> MODELS.get("rra")            # imports the built-in modules first, so they have registered

A name registered twice raises; an unknown name raises :class:`~ytfgvc.errors.YtfgvcError`
naming the closest known one. Built-in modules are imported on first use; one that is not
installed (an optional extra) is skipped.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

from ytfgvc.config import did_you_mean
from ytfgvc.errors import YtfgvcError


class Registry:
    """Builders by name, for one kind of thing (``kind`` appears in error messages)."""

    def __init__(self, kind: str, builtin: list[str] | None = None, hint: str = "known"):
        self.kind = kind
        self._builtin = list(builtin or [])
        self._loaded = False
        self._items: dict[str, Callable[..., Any]] = {}
        self._hint = hint

    def register(self, name: str | None = None) -> Callable:
        """Decorator: register ``fn`` under ``name`` (default: its ``__name__``)."""

        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            key = name or fn.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = fn
            return fn

        return wrap

    def names(self, pattern: str = "*") -> list[str]:
        self._load_builtin()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> Callable[..., Any]:
        self._load_builtin()
        if name not in self._items:
            raise YtfgvcError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}",
                f"{self._hint}: {', '.join(sorted(self._items))}",
            )
        return self._items[name]

    def _load_builtin(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin:
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)
