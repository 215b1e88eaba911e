"""What the registered models share: a pretrained trunk, its BatchNorm policy, frame batching.

BatchNorm policy of the trunk (the pretrained part), applied every time the model is put
in training mode:

* ``partial_bn`` (TSN's "partial BN"): every BatchNorm layer but the first runs in eval
  mode (running statistics frozen) with its scale and shift frozen; only the first keeps
  training and updating its statistics.
* while :meth:`~ytfgvc.models.base.VideoClassifier.freeze_pretrained` holds the pretrained
  layers frozen (the first 30 epochs of the protocol), their BatchNorm statistics are frozen
  too: a frozen layer does not drift.
"""

from __future__ import annotations

import torch
from torch import nn

from ytfgvc.models.backbones import Backbone, create_backbone
from ytfgvc.models.base import VideoClassifier

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``module`` in definition order."""
    return [m for m in module.modules() if isinstance(m, _BN)]


def init_classifier(fc: nn.Linear, std: float = 0.001) -> nn.Linear:
    """TSN's initialisation of a new classification layer: N(0, 0.001) weights, zero bias."""
    nn.init.normal_(fc.weight, 0.0, std)
    nn.init.zeros_(fc.bias)
    return fc


class TrunkModel(VideoClassifier):
    """A classifier whose trunk (the sub-module named ``trunk_name``) may hold pretrained weights."""

    trunk_name = "backbone"

    def __init__(self, partial_bn: bool = False):
        super().__init__()
        self.partial_bn = partial_bn
        self._pretrained_frozen = False

    @property
    def trunk(self) -> nn.Module:
        return getattr(self, self.trunk_name)

    def _adopt(self, backbone: Backbone) -> None:
        """Take normalisation and the weights' provenance from ``backbone``."""
        self.input_mean, self.input_std = backbone.input_mean, backbone.input_std
        self.input_size = backbone.input_size
        self.pretrained_source = backbone.source
        self.pretrained_sha256 = backbone.weights_sha256
        self.pretrained_message = backbone.message
        self._apply_bn_policy()

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return [] if self.pretrained_source == "from scratch" else list(self.trunk.parameters())

    def freeze_pretrained(self, frozen: bool) -> None:
        super().freeze_pretrained(frozen)
        self._pretrained_frozen = frozen and bool(self.pretrained_parameters())
        self.train(self.training)  # re-apply the BatchNorm policy (and undo it when unfreezing)

    def train(self, mode: bool = True) -> TrunkModel:
        super().train(mode)
        self._apply_bn_policy()
        return self

    def _apply_bn_policy(self) -> None:
        layers = batchnorm_layers(self.trunk)
        if self._pretrained_frozen:
            frozen = layers
        elif self.partial_bn:
            frozen = layers[1:]
        else:
            return
        for bn in frozen:
            bn.eval()
            for p in (bn.weight, bn.bias):
                if p is not None:
                    p.requires_grad_(False)


class FrameModel(TrunkModel):
    """A model over (B, T, C, H, W) frames with a 2D backbone applied to each frame.

    ``modality="rgb"``: C = 3; ``"flow"``: C = 2·``flow_stack`` (x and y of each field of a
    stack), the backbone's first convolution initialised from its RGB one
    (:mod:`ytfgvc.models.modality`).
    """

    input_kind = "frames"

    def __init__(
        self,
        backbone: str,
        pretrained: bool,
        weights,
        partial_bn: bool,
        num_segments: int,
        modality: str = "rgb",
        flow_stack: int = 5,
    ):
        super().__init__(partial_bn=partial_bn)
        if num_segments < 1:
            raise ValueError(f"num_segments must be positive, got {num_segments}")
        self.num_segments = num_segments
        self.modality, self.flow_stack = modality, flow_stack
        self.backbone = create_backbone(backbone, pretrained, weights, modality=modality, flow_stack=flow_stack)
        self._adopt(self.backbone)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) → (B, T, C', h, w): the backbone on every frame."""
        if x.dim() != 5 or x.shape[2] != self.backbone.in_channels:
            c = self.backbone.in_channels
            raise ValueError(f"expected frames (B, T, {c}, H, W), got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        feats = self.backbone(x.flatten(0, 1))
        return feats.view(b, t, *feats.shape[1:])
