"""The optimizer of a run: its parameter groups, its kind, and the learning rate of each epoch.

Parameter groups (config key ``param_groups``):

* ``uniform``: every parameter in one group, the run's ``lr`` and ``weight_decay``.
* ``tsn``: the groups of the official TSN's ``get_optim_policies`` (yjxiong/tsn-pytorch
  ``models.py``), each with a learning-rate and a weight-decay multiplier that its
  ``main.py`` applies at every epoch:

  ==================== ========================================= ======= =========
  group                parameters                                lr_mult decay_mult
  ==================== ========================================= ======= =========
  first_conv_weight    the first convolution's weight            1 (5)   1
  first_conv_bias      its bias                                  2 (10)  0
  normal_weight        every other convolution and linear weight 1       1
  normal_bias          their biases                              2       0
  BN scale/shift       BatchNorm scale and shift                 1       0
  ==================== ========================================= ======= =========

  (the multipliers in brackets are TSN's for flow input). TSN leaves the BatchNorm layers
  that partial BN freezes out of every group; here they are in "BN scale/shift" with
  ``requires_grad`` off, so they get no gradient and the optimizer skips them, which is the
  same. TSN raises on any other module with parameters; here other parameters (RRA's
  attention vector, for instance) join ``normal_weight`` (2-D and up) or ``normal_bias``.

The learning rate at epoch ``e`` (0-based) is ``lr × lr_gamma^(number of lr_steps ≤ e)``,
times the group's ``lr_mult`` (TSN's ``adjust_learning_rate``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
POLICIES = ("uniform", "tsn")
OPTIMIZERS = ("adam", "sgd")


def param_groups(model: nn.Module, policy: str = "uniform", flow: bool = False) -> list[dict[str, Any]]:
    """The model's parameters in groups with ``name``, ``lr_mult`` and ``decay_mult`` (see the module doc)."""
    params = list(model.parameters())
    if policy == "uniform":
        return [{"params": params, "name": "all", "lr_mult": 1.0, "decay_mult": 1.0}]
    if policy != "tsn":
        raise ValueError(f"unknown parameter-group policy {policy!r}; use one of {POLICIES}")
    groups: dict[str, list[nn.Parameter]] = {k: [] for k in _TSN_GROUPS}
    first_conv_seen = False
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if not own:
            continue
        if isinstance(module, _CONV) and not first_conv_seen:
            first_conv_seen = True
            groups["first_conv_weight"].append(module.weight)
            if module.bias is not None:
                groups["first_conv_bias"].append(module.bias)
        elif isinstance(module, _BN):
            groups["BN scale/shift"] += own
        else:
            for p in own:
                groups["normal_weight" if p.dim() > 1 else "normal_bias"].append(p)
    out = []
    for name, (lr_mult, decay_mult, flow_lr_mult) in _TSN_GROUPS.items():
        mult = flow_lr_mult if flow else lr_mult
        out.append({"params": groups[name], "name": name, "lr_mult": mult, "decay_mult": decay_mult})
    return out


# name: (lr_mult, decay_mult, lr_mult for flow input) — tsn-pytorch models.py get_optim_policies
_TSN_GROUPS = {
    "first_conv_weight": (1.0, 1.0, 5.0),
    "first_conv_bias": (2.0, 0.0, 10.0),
    "normal_weight": (1.0, 1.0, 1.0),
    "normal_bias": (2.0, 0.0, 2.0),
    "BN scale/shift": (1.0, 0.0, 1.0),
}


def build_optimizer(
    model: nn.Module,
    kind: str,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    policy: str = "uniform",
    flow: bool = False,
) -> torch.optim.Optimizer:
    """Adam or SGD (with momentum) over :func:`param_groups`, each group's decay set once."""
    groups = param_groups(model, policy, flow)
    for g in groups:
        g["lr"] = lr * g["lr_mult"]
        g["weight_decay"] = weight_decay * g["decay_mult"]
    groups = [g for g in groups if g["params"]]
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {kind!r}; use one of {OPTIMIZERS}")


def lr_at(epoch: int, lr: float, steps: tuple[int, ...] | list[int], gamma: float) -> float:
    """The base learning rate of 0-based ``epoch``: decayed by ``gamma`` at each step it has reached."""
    return lr * gamma ** sum(epoch >= s for s in steps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every group ``lr`` times its ``lr_mult``."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
