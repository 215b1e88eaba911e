"""BN-Inception: Inception with batch normalization (Ioffe & Szegedy, ICML 2015).

The network TSN uses as its base model, built from the architecture table of the paper
(Figure 5 there; the same as TSN's ``bn_inception`` definition): a 7×7/2 and a 3×3 stem,
then ten inception blocks (3a–3c, 4a–4e, 5a–5b) in which the 5×5 branch of GoogLeNet is
two stacked 3×3 convolutions, every convolution followed by BatchNorm and ReLU. Blocks 3c
and 4e halve the resolution (stride-2 3×3 branches beside a max-pool pass-through). Output:
1024 channels at 1/32 of the input (7×7 for 224×224).

Module names follow the flat names of the released Caffe/TSN weights, with the block as a
sub-module: ``inception_3a_double_3x3_1_bn.weight`` there is
``inception_3a.double_3x3_1.bn.weight`` here; :func:`convert_flat_state_dict` maps one to
the other, so a TSN/pretrainedmodels BN-Inception state dict loads directly.

Input: the released weights expect Caffe's convention (BGR, 0–255, mean 104/117/128, std 1).
We take RGB: :data:`INPUT_MEAN` / :data:`INPUT_STD` (RGB, on the 0–1 scale) reproduce that
normalisation, and the converter swaps the first convolution's input channels.

Checked against the TSN authors' definition, ``bninception/bn_inception.yaml`` of the
``tsn-pytorch`` branch of https://github.com/yjxiong/tensorflow-model-zoo.torch (commit
9788c67) as their ``layer_factory.py`` builds it: every yaml id maps onto a module here with
the same shapes (convolutions with bias, BatchNorm with eps 1e-5), pooling is theirs (Caffe's
``ceil_mode=True``; stem and 3c/4e pools 3×3/2 unpadded, the others 3×3/1 padded 1, average
pools counting the padding, 5b's a max pool), and on the same weights the output is theirs
(tests/test_models_tsn_weights.py). Their weights are :data:`WEIGHTS_URL`. One addition: on an
odd-sized input to 3c or 4e their ceil-mode pool gives one row/column fewer than the padded
stride-2 convolutions beside it and their code cannot concatenate; here the pool's input gets
a row/column of -inf first (see :meth:`InceptionBlock.forward`).
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn import functional as F

# (R, G, B) mean and std on the 0–1 scale equivalent to Caffe's BGR 0–255 mean (104, 117, 128), std 1.
INPUT_MEAN = (128 / 255, 117 / 255, 104 / 255)
INPUT_STD = (1 / 255, 1 / 255, 1 / 255)
# The TSN authors' ImageNet weights (flat names, BGR): BNInception's weight_url in
# bninception/pytorch_load.py of github.com/yjxiong/tensorflow-model-zoo.torch, branch tsn-pytorch.
WEIGHTS_URL = "https://yjxiong.blob.core.windows.net/models/bn_inception-9f5701afb96c8044.pth"

# name: (1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool, pool projection, stride)
_BLOCKS = [
    ("inception_3a", 64, 64, 64, 64, 96, "avg", 32, 1),
    ("inception_3b", 64, 64, 96, 64, 96, "avg", 64, 1),
    ("inception_3c", 0, 128, 160, 64, 96, "max", 0, 2),
    ("inception_4a", 224, 64, 96, 96, 128, "avg", 128, 1),
    ("inception_4b", 192, 96, 128, 96, 128, "avg", 128, 1),
    ("inception_4c", 160, 128, 160, 128, 160, "avg", 128, 1),
    ("inception_4d", 96, 128, 192, 160, 192, "avg", 128, 1),
    ("inception_4e", 0, 128, 192, 192, 256, "max", 0, 2),
    ("inception_5a", 352, 192, 320, 160, 224, "avg", 128, 1),
    ("inception_5b", 352, 192, 320, 192, 224, "max", 128, 1),
]


class ConvBN(nn.Module):
    """Convolution (with bias, as in Caffe) → BatchNorm → ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionBlock(nn.Module):
    """One BN-Inception block: 1×1 | 1×1→3×3 | 1×1→3×3→3×3 | pool(→1×1), concatenated."""

    def __init__(self, cin, n1, n3r, n3, nd3r, nd3, pool, proj, stride):
        super().__init__()
        self.stride = stride
        self.has_1x1, self.has_proj = n1 > 0, proj > 0
        if self.has_1x1:
            self.add_module("1x1", ConvBN(cin, n1, 1))
        self.add_module("3x3_reduce", ConvBN(cin, n3r, 1))
        self.add_module("3x3", ConvBN(n3r, n3, 3, stride=stride, padding=1))
        self.add_module("double_3x3_reduce", ConvBN(cin, nd3r, 1))
        self.add_module("double_3x3_1", ConvBN(nd3r, nd3, 3, padding=1))
        self.add_module("double_3x3_2", ConvBN(nd3, nd3, 3, stride=stride, padding=1))
        if stride == 1:
            pool_layer = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d
            self.pool = pool_layer(3, stride=1, padding=1, ceil_mode=True)
        else:
            self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        if self.has_proj:
            self.add_module("pool_proj", ConvBN(cin, proj, 1))
        self.out_channels = n1 + n3 + nd3 + (proj if self.has_proj else cin)

    def _branch(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self._modules[name](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self._branch("1x1", x)] if self.has_1x1 else []
        outs.append(self._branch("3x3", self._branch("3x3_reduce", x)))
        d = self._branch("double_3x3_reduce", x)
        outs.append(self._branch("double_3x3_2", self._branch("double_3x3_1", d)))
        pooled = x
        if self.stride == 2:
            # Caffe's ceil-mode pool and the padded stride-2 convs agree on even sizes only; on
            # an odd size one row/column of -inf makes the pool match the convolutions.
            pooled = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), value=float("-inf"))
        pooled = self.pool(pooled)
        outs.append(self._branch("pool_proj", pooled) if self.has_proj else pooled)
        return torch.cat(outs, dim=1)


class BNInception(nn.Module):
    """The BN-Inception trunk: ``features(x)`` maps (N, 3, H, W) to (N, 1024, H/32, W/32)."""

    out_channels = 1024

    def __init__(self):
        super().__init__()
        self.conv1_7x7_s2 = ConvBN(3, 64, 7, stride=2, padding=3)
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2_3x3_reduce = ConvBN(64, 64, 1)
        self.conv2_3x3 = ConvBN(64, 192, 3, padding=1)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        cin = 192
        for name, *spec in _BLOCKS:
            block = InceptionBlock(cin, *spec)
            self.add_module(name, block)
            cin = block.out_channels
        assert cin == self.out_channels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1_7x7_s2(x))
        x = self.pool2(self.conv2_3x3(self.conv2_3x3_reduce(x)))
        for name, *_ in _BLOCKS:
            x = self._modules[name](x)
        return x

    forward = features


_FLAT_UNIT = re.compile(
    r"^(?:(?P<stem>conv1_7x7_s2|conv2_3x3_reduce|conv2_3x3)|(?P<block>inception_\d[a-e])_(?P<branch>[a-z0-9_]+?))(?P<bn>_bn)?$"
)


def convert_flat_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map flat Caffe/TSN names (``inception_3a_1x1_bn.weight``) to this module's names.

    Any prefix (``module.base_model.``) is kept for the loader to strip. A state dict
    already in this module's names is returned unchanged; in a converted one the first
    convolution's input channels are reversed (BGR → RGB).
    """
    out: dict[str, torch.Tensor] = {}
    first_conv = None
    for key, value in state.items():
        head, _, param = key.rpartition(".")
        prefix, _, unit = head.rpartition(".")
        m = _FLAT_UNIT.match(unit)
        if m is None:
            out[key] = value
            continue
        name = f"{m['block']}.{m['branch']}" if m["block"] else m["stem"]
        new = f"{prefix + '.' if prefix else ''}{name}.{'bn' if m['bn'] else 'conv'}.{param}"
        out[new] = value
        if name == "conv1_7x7_s2" and not m["bn"] and param == "weight":
            first_conv = new
    if first_conv is not None:
        out[first_conv] = out[first_conv].flip(1)
    return out
