"""Inception-V3 as the TSN authors ported it: the network their ImageNet weights were made for.

The architecture is ``bninception/inceptionv3.yaml`` of the ``tsn-pytorch`` branch of
https://github.com/yjxiong/tensorflow-model-zoo.torch (commit 9788c67, the ``tf_model_zoo``
submodule of yjxiong/tsn-pytorch), as built by ``bninception/layer_factory.py`` and
``pytorch_load.py`` there (class ``InceptionV3``). The paper initialises TSN and RRA from it.
It differs from torchvision's Inception-V3 in more than names:

* every convolution has a bias (``get_basic_layer(..., conv_bias=True)``), every BatchNorm
  is ``nn.BatchNorm2d(c)`` (eps 1e-5, not torchvision's 1e-3);
* every pooling is Caffe's: ``ceil_mode=True``; average pools count the padding;
* every 1×7 / 7×1 pair of the factorised 7×7 branches comes in the opposite order to
  torchvision's (kernels here are (height, width), the yaml's ``kernel_h``, ``kernel_w``),
  the split 3×3 branches put the 3×1 output before the 1×3 one, and the last block's pool
  branch is a max pool (torchvision: average).

Module names are the yaml's ``id`` fields, so the released state dict
(``inceptionv3-cuhk-0e09b300b493bc74c.pth``, :data:`WEIGHTS_URL`) loads as it is:
``conv_Conv2D.weight``, ``conv_batchnorm.running_mean``, ``mixed_10_tower_2_conv_Conv2D.bias``…
Its classifier ``top_cls_fc`` (after an 8×8 average pool) is not part of this trunk.

The trunk ends at ``mixed_10_join``: 2048 channels, 8×8 for a 299×299 input normalised
as ``(x - 0.5) / 0.5`` on RGB in 0–1 (``input_mean`` / ``input_std`` of tsn-pytorch's
``models.py``).

One addition: where the reduction blocks' ceil-mode max pool gives one row or column more
than the stride-2 convolutions beside it (an even-sized input to ``mixed_3`` or
``mixed_8``, e.g. at 224 px), the authors' code cannot concatenate and fails; here the extra
row/column is dropped (floor mode, torchvision's choice). Where the authors' graph runs
(299, 331 … px) this module computes exactly what it computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

WEIGHTS_URL = "https://yjxiong.blob.core.windows.net/models/inceptionv3-cuhk-0e09b300b493bc74c.pth"
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else v


@dataclass(frozen=True)
class Conv:
    """Convolution (with bias) → BatchNorm → ReLU: modules ``<name>_Conv2D`` and ``<name>_batchnorm``."""

    name: str
    out: int
    kernel: int | tuple[int, int]
    stride: int = 1
    pad: int | tuple[int, int] = 0


@dataclass(frozen=True)
class Pool:
    """Caffe pooling (``ceil_mode=True``); ``mode`` is ``"max"`` or ``"ave"``. No parameters."""

    name: str
    mode: str
    kernel: int
    stride: int
    pad: int = 0


@dataclass(frozen=True)
class Split:
    """Two convolutions on the same input, their outputs concatenated (``a`` first)."""

    a: Conv
    b: Conv


Step = Conv | Pool | Split
Branch = list[Step]


# --- the blocks, named as in the yaml ------------------------------------------------------------
# A branch ``tower_1`` of block ``mixed_4`` has convolutions mixed_4_tower_1_conv, _conv_1, _conv_2, …


def block_a(p: str, pool_proj: int) -> list[Branch]:
    """35×35: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg pool→1×1 (``mixed``, ``mixed_1``, ``mixed_2``)."""
    return [
        [Conv(f"{p}_conv", 64, 1)],
        [Conv(f"{p}_tower_conv", 48, 1), Conv(f"{p}_tower_conv_1", 64, 5, pad=2)],
        [
            Conv(f"{p}_tower_1_conv", 64, 1),
            Conv(f"{p}_tower_1_conv_1", 96, 3, pad=1),
            Conv(f"{p}_tower_1_conv_2", 96, 3, pad=1),
        ],
        [Pool(f"{p}_tower_2_pool", "ave", 3, 1, 1), Conv(f"{p}_tower_2_conv", pool_proj, 1)],
    ]


def block_b(p: str) -> list[Branch]:
    """35×35 → 17×17: 3×3/2 | 1×1→3×3→3×3/2 | max pool/2 (``mixed_3``)."""
    return [
        [Conv(f"{p}_conv", 384, 3, stride=2)],
        [
            Conv(f"{p}_tower_conv", 64, 1),
            Conv(f"{p}_tower_conv_1", 96, 3, pad=1),
            Conv(f"{p}_tower_conv_2", 96, 3, stride=2),
        ],
        [Pool(f"{p}_pool", "max", 3, 2)],
    ]


def block_c(p: str, c7: int) -> list[Branch]:
    """17×17, 7×7 factorised into 7×1 and 1×7: 1×1 | 1×1→7×1→1×7 | 1×1→1×7→7×1→1×7→7×1 | avg pool→1×1."""
    v, h = dict(kernel=(7, 1), pad=(3, 0)), dict(kernel=(1, 7), pad=(0, 3))  # kernel (height, width)
    return [
        [Conv(f"{p}_conv", 192, 1)],
        [Conv(f"{p}_tower_conv", c7, 1), Conv(f"{p}_tower_conv_1", c7, **v), Conv(f"{p}_tower_conv_2", 192, **h)],
        [
            Conv(f"{p}_tower_1_conv", c7, 1),
            Conv(f"{p}_tower_1_conv_1", c7, **h),
            Conv(f"{p}_tower_1_conv_2", c7, **v),
            Conv(f"{p}_tower_1_conv_3", c7, **h),
            Conv(f"{p}_tower_1_conv_4", 192, **v),
        ],
        [Pool(f"{p}_tower_2_pool", "ave", 3, 1, 1), Conv(f"{p}_tower_2_conv", 192, 1)],
    ]


def block_d(p: str) -> list[Branch]:
    """17×17 → 8×8: 1×1→3×3/2 | 1×1→7×1→1×7→3×3/2 | max pool/2 (``mixed_8``)."""
    return [
        [Conv(f"{p}_tower_conv", 192, 1), Conv(f"{p}_tower_conv_1", 320, 3, stride=2)],
        [
            Conv(f"{p}_tower_1_conv", 192, 1),
            Conv(f"{p}_tower_1_conv_1", 192, (7, 1), pad=(3, 0)),
            Conv(f"{p}_tower_1_conv_2", 192, (1, 7), pad=(0, 3)),
            Conv(f"{p}_tower_1_conv_3", 192, 3, stride=2),
        ],
        [Pool(f"{p}_pool", "max", 3, 2)],
    ]


def block_e(p: str, pool: str) -> list[Branch]:
    """8×8: 1×1 | 1×1→(3×1, 1×3) | 1×1→3×3→(3×1, 1×3) | pool→1×1 (``mixed_9`` ave, ``mixed_10`` max)."""

    def split(q: str) -> Split:
        return Split(
            Conv(f"{q}_mixed_conv", 384, (3, 1), pad=(1, 0)), Conv(f"{q}_mixed_conv_1", 384, (1, 3), pad=(0, 1))
        )

    return [
        [Conv(f"{p}_conv", 320, 1)],
        [Conv(f"{p}_tower_conv", 384, 1), split(f"{p}_tower")],
        [Conv(f"{p}_tower_1_conv", 448, 1), Conv(f"{p}_tower_1_conv_1", 384, 3, pad=1), split(f"{p}_tower_1")],
        [Pool(f"{p}_tower_2_pool", pool, 3, 1, 1), Conv(f"{p}_tower_2_conv", 192, 1)],
    ]


STEM: Branch = [
    Conv("conv", 32, 3, stride=2),
    Conv("conv_1", 32, 3),
    Conv("conv_2", 64, 3, pad=1),
    Pool("pool", "max", 3, 2),
    Conv("conv_3", 80, 1),
    Conv("conv_4", 192, 3),
    Pool("pool_1", "max", 3, 2),
]

# (block name, its branches); the block's output is the concatenation of its branches, in this order.
BLOCKS: list[tuple[str, list[Branch]]] = [
    ("mixed", block_a("mixed", 32)),  # 256 ch, 35×35
    ("mixed_1", block_a("mixed_1", 64)),  # 288
    ("mixed_2", block_a("mixed_2", 64)),  # 288
    ("mixed_3", block_b("mixed_3")),  # 768, 17×17
    ("mixed_4", block_c("mixed_4", 128)),  # 768
    ("mixed_5", block_c("mixed_5", 160)),
    ("mixed_6", block_c("mixed_6", 160)),
    ("mixed_7", block_c("mixed_7", 192)),
    ("mixed_8", block_d("mixed_8")),  # 1280, 8×8
    ("mixed_9", block_e("mixed_9", "ave")),  # 2048
    ("mixed_10", block_e("mixed_10", "max")),  # 2048: mixed_10_join
]


class TSNInceptionV3(nn.Module):
    """The TSN authors' Inception-V3 trunk: (N, 3, H, W) → ``mixed_10_join`` (N, 2048, h, w)."""

    out_channels = 2048

    def __init__(self):
        super().__init__()
        c = self._build(STEM, 3)
        for _, branches in BLOCKS:
            c = sum(self._build(branch, c) for branch in branches)
        assert c == self.out_channels

    def _build(self, steps: Branch, c: int) -> int:
        """Register the modules of ``steps`` on this module (flat, under the yaml's ids); channels out."""
        for step in steps:
            if isinstance(step, Conv):
                conv = nn.Conv2d(c, step.out, _pair(step.kernel), _pair(step.stride), _pair(step.pad), bias=True)
                self.add_module(f"{step.name}_Conv2D", conv)
                self.add_module(f"{step.name}_batchnorm", nn.BatchNorm2d(step.out))
                c = step.out
            elif isinstance(step, Split):
                c = self._build([step.a], c) + self._build([step.b], c)
        return c

    def _run(self, steps: Branch, x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            if isinstance(step, Conv):
                x = self._modules[f"{step.name}_Conv2D"](x)
                x = F.relu(self._modules[f"{step.name}_batchnorm"](x), inplace=True)
            elif isinstance(step, Pool):
                if step.mode == "max":
                    x = F.max_pool2d(x, step.kernel, step.stride, step.pad, ceil_mode=True)
                else:
                    x = F.avg_pool2d(x, step.kernel, step.stride, step.pad, ceil_mode=True, count_include_pad=True)
            else:
                x = torch.cat([self._run([step.a], x), self._run([step.b], x)], dim=1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._run(STEM, x)
        for _, branches in BLOCKS:
            outs = [self._run(branch, x) for branch in branches]
            # Only a ceil-mode pool can come out one larger (see the module's docstring).
            h, w = min(o.shape[-2] for o in outs), min(o.shape[-1] for o in outs)
            x = torch.cat([o[..., :h, :w] for o in outs], dim=1)
        return x
