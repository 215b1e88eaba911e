"""I3D on ResNet-50 (Carreira & Zisserman, CVPR 2017): a 3D ResNet inflated from a 2D one.

Inflation copies a 2D ResNet (torchvision's, with whatever weights it was given) into 3D:
a k×k kernel becomes t×k×k, its 2D weights repeated t times over time and divided by t;
BatchNorm layers keep their parameters and statistics. Which kernels get a temporal
extent follows the usual I3D ResNet-50 design:

* conv1 5×7×7 with temporal stride 2; the max-pool after it has temporal stride 2;
* in the bottleneck blocks, the first 1×1 convolution becomes 3×1×1 in blocks
  (1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0) of res2–res5 (every block of
  res2, every other one after; for BasicBlock nets the first 3×3 becomes 3×3×3);
* a 2×1×1 temporal max-pool after res2.

A 32-frame clip ends as 4×7×7 at 224 px; clips need at least 8 frames. Temporal padding
repeats the edge frames instead of adding zeros, so a clip of one frame repeated gives the
2D network's output on that frame exactly (the "boring video" fixed point of inflation;
zero padding would bias the first and last time steps).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ytfgvc.errors import YtfgvcError
from ytfgvc.models import register_model
from ytfgvc.models.backbones import create_backbone
from ytfgvc.models.base import ModelOutput
from ytfgvc.models.common import TrunkModel, init_classifier

MIN_FRAMES = 8


class InflatedConv(nn.Module):
    """A Conv2d inflated to t×kh×kw, edge-replicating over time."""

    def __init__(self, conv: nn.Conv2d, time_kernel: int = 1, time_stride: int = 1):
        super().__init__()
        kh, kw = conv.kernel_size
        self.time_pad = time_kernel // 2
        self.conv = nn.Conv3d(
            conv.in_channels,
            conv.out_channels,
            (time_kernel, kh, kw),
            stride=(time_stride, *conv.stride),
            padding=(0, *conv.padding),
            dilation=(1, *conv.dilation),
            groups=conv.groups,
            bias=conv.bias is not None,
        )
        with torch.no_grad():
            self.conv.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, time_kernel, 1, 1) / time_kernel)
            if conv.bias is not None:
                self.conv.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            x = F.pad(x, (0, 0, 0, 0, self.time_pad, self.time_pad), mode="replicate")
        return self.conv(x)


def inflate_bn(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    """A BatchNorm3d with ``bn``'s parameters and running statistics."""
    out = nn.BatchNorm3d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine)
    out.load_state_dict(bn.state_dict())
    return out


class Block3d(nn.Module):
    """A torchvision Bottleneck or BasicBlock inflated to 3D."""

    def __init__(self, block: nn.Module, inflate: bool):
        super().__init__()
        bottleneck = hasattr(block, "conv3")
        first_t = 3 if inflate else 1
        self.conv1, self.bn1 = InflatedConv(block.conv1, first_t), inflate_bn(block.bn1)
        self.conv2, self.bn2 = InflatedConv(block.conv2, 1), inflate_bn(block.bn2)
        self.conv3 = InflatedConv(block.conv3, 1) if bottleneck else None
        self.bn3 = inflate_bn(block.bn3) if bottleneck else None
        self.downsample = None
        if block.downsample is not None:
            conv, bn = block.downsample[0], block.downsample[1]
            self.downsample = nn.Sequential(InflatedConv(conv, 1), inflate_bn(bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.conv3 is not None:
            out = self.bn3(self.conv3(F.relu(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def _inflate_pattern(layer: int, block: int) -> bool:
    # (1,1,1), (1,0,1,0), (1,0,1,0,1,0), (0,1,0) for ResNet-50's res2..res5.
    if layer == 1:
        return True
    return block % 2 == (1 if layer == 4 else 0)


class ResNet3d(nn.Module):
    """A 3D ResNet inflated from a torchvision ``ResNet`` (its ``fc`` is not used)."""

    def __init__(self, resnet2d: nn.Module):
        super().__init__()
        self.conv1 = InflatedConv(resnet2d.conv1, time_kernel=5, time_stride=2)
        self.bn1 = inflate_bn(resnet2d.bn1)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(2, 2, 2), padding=(0, 1, 1))
        self.pool2 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))
        for i in range(1, 5):
            layer = getattr(resnet2d, f"layer{i}")
            blocks = [Block3d(b, _inflate_pattern(i, j)) for j, b in enumerate(layer)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        last = resnet2d.layer4[-1]
        self.out_channels = (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) → (B, C, T/8, H/32, W/32)."""
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool2(self.layer1(x))
        return self.layer4(self.layer3(self.layer2(x)))


class I3D(TrunkModel):
    """I3D-ResNet: input a clip (B, 3, T, H, W); ``logits`` from the globally pooled 3D features."""

    input_kind = "clip"
    trunk_name = "net3d"

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool = False,
        weights=None,
        dropout: float = 0.7,
        num_segments: int = 32,
        partial_bn: bool = False,
    ):
        super().__init__(partial_bn=partial_bn)
        import torchvision

        net2d = create_backbone(backbone, pretrained=pretrained, weights=weights)
        if not isinstance(net2d.body, torchvision.models.ResNet):
            raise YtfgvcError(f"i3d inflates a torchvision ResNet, not {backbone!r}", "use resnet50 (or resnet18/152)")
        if num_segments < MIN_FRAMES:
            raise YtfgvcError(f"i3d needs clips of at least {MIN_FRAMES} frames, got num_segments={num_segments}")
        self.num_segments = num_segments  # the clip length of the protocol (32)
        self.net3d = ResNet3d(net2d.body)
        self.dropout = nn.Dropout(dropout)
        self.fc = init_classifier(nn.Linear(self.net3d.out_channels, num_classes))
        self._adopt(net2d)
        if net2d.pretrained:
            self.pretrained_source = f"{net2d.source} (inflated)"

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"expected a clip (B, 3, T, H, W), got shape {tuple(x.shape)}")
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"i3d needs at least {MIN_FRAMES} frames per clip, got {x.shape[2]}")
        feats = self.net3d(x).mean(dim=(2, 3, 4))
        return ModelOutput(logits=self.fc(self.dropout(feats)))


@register_model("i3d")
def i3d(num_classes: int, **kw) -> I3D:
    """I3D inflated from ResNet-50 (32-frame clips, dropout 0.7)."""
    return I3D(num_classes, **kw)
