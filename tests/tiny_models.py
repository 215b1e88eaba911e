"""Tiny stand-in models registered for the engine's tests (importing this module registers them).

``test_tiny_frames`` takes ``(B, T, 3, H, W)``, ``test_tiny_clip`` takes ``(B, 3, T, H, W)``.
Both keep the :class:`~ytfgvc.models.base.VideoClassifier` contract; with
``pretrained=True`` their convolution counts as "pretrained" (so freezing can be tested)
although its weights are random.
"""

from __future__ import annotations

import torch
from torch import nn

from ytfgvc.models import register_model
from ytfgvc.models.base import ModelOutput, VideoClassifier


class _Tiny(VideoClassifier):
    def __init__(self, conv: nn.Module, num_classes: int, pretrained: bool, dropout: float):
        super().__init__()
        self.conv = conv
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(8, num_classes)
        self._pretrained = pretrained
        self.pretrained_source = "test:random" if pretrained else "from scratch"

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return list(self.conv.parameters()) if self._pretrained else []


class TinyFrames(_Tiny):
    input_kind = "frames"

    def __init__(self, num_classes: int, pretrained: bool = False, dropout: float = 0.5, **_: object):
        super().__init__(nn.Conv2d(3, 8, 3, stride=2), num_classes, pretrained, dropout)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        b, t = x.shape[:2]
        f = torch.relu(self.conv(x.flatten(0, 1))).mean((2, 3)).view(b, t, -1).mean(1)
        return ModelOutput(self.fc(self.dropout(f)))


class TinyClip(_Tiny):
    input_kind = "clip"

    def __init__(self, num_classes: int, pretrained: bool = False, dropout: float = 0.5, **_: object):
        super().__init__(nn.Conv3d(3, 8, 3, stride=2), num_classes, pretrained, dropout)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        f = torch.relu(self.conv(x)).mean((2, 3, 4))
        return ModelOutput(self.fc(self.dropout(f)))


register_model("test_tiny_frames")(TinyFrames)
register_model("test_tiny_clip")(TinyClip)
