"""TSN (Wang et al., ECCV 2016) and the single-frame BN-Inception baseline (paper Table 6).

TSN: the backbone on each of the T segments' frames, global average pooling, dropout,
one classification layer, and the average of the T segment scores (TSN's "average
consensus", before the softmax). ``partial_bn`` (on by default, as in the official TSN)
keeps only the first BatchNorm layer of the backbone training.

BN-Inception: the same network on the BN-Inception backbone with one frame — a random frame
in training, the middle frame in test (the engine's sampling; ``num_segments=1``). With T
frames it averages their scores like TSN.
"""

from __future__ import annotations

import torch
from torch import nn

from ytfgvc.models import register_model
from ytfgvc.models.base import ModelOutput
from ytfgvc.models.common import FrameModel, init_classifier


class TSN(FrameModel):
    """Input (B, T, 3, H, W) (flow: (B, T, 2·L, H, W)); ``logits`` the mean of the segment scores;
    ``extras["segment_scores"]`` (B, T, C)."""

    def __init__(
        self,
        num_classes: int,
        backbone: str = "inception_v3",
        pretrained: bool = False,
        weights=None,
        dropout: float = 0.7,
        num_segments: int = 4,
        partial_bn: bool = True,
        modality: str = "rgb",
        flow_stack: int = 5,
    ):
        super().__init__(backbone, pretrained, weights, partial_bn, num_segments, modality, flow_stack)
        self.dropout = nn.Dropout(dropout)
        self.fc = init_classifier(nn.Linear(self.backbone.out_channels, num_classes))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        feats = self.frame_features(x).mean(dim=(-2, -1))  # (B, T, c): global average pooling
        segment_scores = self.fc(self.dropout(feats))
        return ModelOutput(logits=segment_scores.mean(dim=1), extras={"segment_scores": segment_scores})


@register_model("tsn")
def tsn(num_classes: int, **kw) -> TSN:
    """TSN (Inception-V3, 4 segments, dropout 0.7, partial BN unless told otherwise)."""
    return TSN(num_classes, **kw)


@register_model("bninception")
def bninception(
    num_classes: int, backbone: str = "bninception", num_segments: int = 1, partial_bn: bool = False, **kw
) -> TSN:
    """BN-Inception on a single frame (Table 6), dropout 0.7."""
    return TSN(num_classes, backbone=backbone, num_segments=num_segments, partial_bn=partial_bn, **kw)
