"""Pretrained weights: read a local state dict and load it into a network, loudly.

A weights file is what ``torch.save(model.state_dict(), path)`` writes (or a
``.safetensors`` file): a mapping from parameter names to tensors, optionally wrapped
in a dict under ``"state_dict"`` or ``"model"`` (training checkpoints). Names may carry a
prefix (``module.``, ``backbone.``, ``module.base_model.`` …); the prefix that matches the
most of the network's names is stripped.

Loading never half-succeeds in silence: a name the network needs but the file lacks, or
a tensor of the wrong shape, is an error that lists them; names the network does not have
(a classifier head, auxiliary logits) are ignored and reported.

Two things old files do are accepted: BatchNorm's ``num_batches_tracked`` counters (added
in PyTorch 0.4.1) may be absent, and a tensor may carry extra leading dimensions of size 1
(the TSN authors' released BN-Inception and Inception-V3 files store BatchNorm vectors as
(1, C), which PyTorch 0.3 loaded and later versions refuse: yjxiong/tsn-pytorch issues #74,
#100, zhoubolei/TRN-pytorch issues #43, #89); such a tensor is read as the network's shape and
the report says how many were.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ytfgvc.errors import YtfgvcError

log = logging.getLogger("ytfgvc.models")

_SHOWN = 8  # names listed per problem before "… and N more"


@dataclass
class LoadReport:
    """What a weights file gave a network."""

    loaded: int
    prefix: str = ""
    ignored: list[str] = field(default_factory=list)
    reshaped: list[str] = field(default_factory=list)  # read without their leading size-1 dimensions

    def describe(self) -> str:
        text = f"{self.loaded} tensors loaded"
        if self.prefix:
            text += f" (prefix {self.prefix!r} stripped)"
        if self.reshaped:
            text += f" ({len(self.reshaped)} reshaped: stored with extra leading size-1 dims, e.g. (1, C) for (C,))"
        if self.ignored:
            groups = Counter(self._group(k) for k in self.ignored)
            listed = [f"{g} ({n})" if n > 1 else g for g, n in sorted(groups.items())]
            text += f"; ignored {len(self.ignored)} not used by this network: {_names(listed)}"
        return text

    def _group(self, key: str) -> str:
        # By top-level module below the stripped prefix ("fc.*"), else by owning module ("module.new_fc.*").
        if key.startswith(self.prefix):
            head, dot, _ = key[len(self.prefix) :].partition(".")
            return head + (".*" if dot else "")
        head, dot, _ = key.rpartition(".")
        return head + ".*" if dot else key


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" … and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict (``torch.save`` file or ``.safetensors``) from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise YtfgvcError(f"weights file {path} does not exist", "pass the path of a local state dict")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise YtfgvcError(f"cannot read weights file {path}: {type(e).__name__}: {e}") from None
    return unwrap_state_dict(obj, f"weights file {path}")


def unwrap_state_dict(obj: object, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a loaded weights object: a state dict, or a checkpoint holding one under
    ``"state_dict"`` or ``"model"``. ``what`` names it in errors (``"weights file …"``)."""
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise YtfgvcError(f"{what} holds no state dict", "save one with torch.save(model.state_dict(), …)")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise YtfgvcError(f"{what} holds no tensors")
    return state


def _squeezes_to(stored: torch.Size, wanted: torch.Size) -> bool:
    """``stored`` is ``wanted`` with extra leading dimensions of size 1, e.g. (1, 64) for (64,)."""
    extra = len(stored) - len(wanted)
    return extra > 0 and stored[extra:] == wanted and all(d == 1 for d in stored[:extra])


def _best_prefix(file_keys: list[str], wanted: set[str]) -> str:
    """The prefix whose removal makes the most file names match the network's names."""
    votes: Counter[str] = Counter()
    for key in file_keys:
        if key in wanted:
            votes[""] += 1
        parts = key.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in wanted:
                votes[".".join(parts[:i]) + "."] += 1
    return votes.most_common(1)[0][0] if votes else ""


def load_state_into(net: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> LoadReport:
    """Copy ``state`` into ``net``; raise listing every missing or mis-shaped tensor.

    Args:
        net: the network to fill.
        state: parameter names to tensors (a prefix is found and stripped).
        source: what the tensors are, for messages (``"file:…"``, ``"torchvision:…"``).
    """
    own = net.state_dict()
    needed = {k for k in own if not k.endswith("num_batches_tracked")}
    prefix = _best_prefix(list(state), set(own))
    stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    ignored = sorted(k for k in state if not k.startswith(prefix) or k[len(prefix) :] not in own)
    missing = sorted(needed - set(stripped))
    reshaped = sorted(k for k in set(stripped) & set(own) if _squeezes_to(stripped[k].shape, own[k].shape))
    for k in reshaped:
        stripped[k] = stripped[k].reshape(own[k].shape)
    wrong = [
        f"{k} {tuple(stripped[k].shape)} (network: {tuple(own[k].shape)})"
        for k in sorted(set(stripped) & set(own))
        if stripped[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(needed)} tensors missing: {_names(missing)}")
    if wrong:
        problems.append(f"{len(wrong)} with the wrong shape: {_names(wrong)}")
    if problems:
        raise YtfgvcError(
            f"weights from {source} do not fit {type(net).__name__}: " + "; ".join(problems),
            "check that the file is for this backbone (see `ytfgvc models`)",
        )
    usable = {k: v for k, v in stripped.items() if k in own}
    net.load_state_dict(usable, strict=False)
    return LoadReport(loaded=len(usable), prefix=prefix, ignored=ignored, reshaped=reshaped)
