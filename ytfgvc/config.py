"""Typed configs: dataclasses validated in ``__post_init__``; YAML is only how they are saved.

Each stage keeps its config next to its code (``SynthConfig`` in ``synth.py``, …) and
derives from :class:`ConfigBase`, which gives YAML in and out and rejects unknown keys by
name ("did you mean …?").
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ytfgvc.errors import YtfgvcError
from ytfgvc.system.fsutil import write_text_atomic

C = TypeVar("C", bound="ConfigBase")


def did_you_mean(name: str, choices: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def default_of(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls``: command-line options read their defaults here."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise ValueError(f"{cls.__name__}.{name} has no default")
    raise ValueError(f"{cls.__name__} has no field {name!r}")


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The mapping at the top of a YAML config file (empty file: ``{}``); errors name the file."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise YtfgvcError(f"cannot read config {path}: {e}") from None
    if not isinstance(data, dict):
        raise YtfgvcError(f"config {path}: expected a mapping at the top level")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys, mappings merged key by key (neither is changed)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert YAML values to the field's declared type (nested configs, tuples, paths)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if isinstance(tp, type) and issubclass(tp, ConfigBase):
        if not isinstance(value, dict):
            raise YtfgvcError(f"{where}: expected a mapping, got {type(value).__name__}")
        return tp.from_dict(value, where=where)
    if tp is Path:
        return Path(value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclasses.dataclass
class ConfigBase:
    """Base for every stage config."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def to_yaml(self, path: Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            write_text_atomic(Path(path), text)
        return text

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = [k for k in data if k not in names]
        if unknown:
            k = unknown[0]
            raise YtfgvcError(f"{where}: unknown key {k!r}{did_you_mean(k, names)}")
        kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise YtfgvcError(f"{where}: {e}") from None

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)
