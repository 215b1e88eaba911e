"""The contract every video model keeps, so one engine trains and tests them all.

* ``input_kind``: ``"frames"`` — input ``(B, T, 3, H, W)``, T sampled frames or segments
  (TSN, RRA, BN-Inception with T=1); ``"clip"`` — input ``(B, 3, T, H, W)``, T consecutive
  frames (I3D).
* ``forward(x) -> ModelOutput``: ``logits`` (B, C) are the scores used for prediction
  (``softmax(logits)`` is the predicted distribution; for RRA, ``log`` of the ensemble
  score ȳ of eq. 6); ``extras`` holds what the loss or a visualisation needs
  (per-glimpse scores, attention maps).
* ``compute_loss(output, target) -> Tensor``: the model's own training loss.
* ``pretrained_source``: where the weights came from (``"torchvision:…"``, ``"timm:…"``,
  ``"tsn:…"``, ``"file:…"``) or ``"from scratch"``; recorded in every result.
  ``pretrained_sha256``: the sha256 of the weights file read (a local file or torch.hub's
  cached download), or None.
* ``input_mean`` / ``input_std``: the normalisation the weights expect, RGB on the 0–1
  scale (``(x - mean) / std`` per channel); the data pipeline applies it. ``input_size``:
  the crop side the backbone was trained at (299 for Inception-V3, 224 for most others).
* ``pretrained_parameters()``: the parameters that came pretrained, frozen for the first
  epochs of the protocol by :meth:`freeze_pretrained`.
* ``fuse_views(output, views)``: one score row per video from the outputs of its test
  views (crops): by default the mean of the logits, official TSN's rule (its
  ``test_models.py`` averages the raw scores of the crops); ``view_fusion`` says which rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class ModelOutput:
    logits: torch.Tensor
    extras: dict[str, Any] = field(default_factory=dict)


class VideoClassifier(nn.Module):
    """Base class of every registered model."""

    input_kind: str = "frames"
    pretrained_source: str = "from scratch"
    pretrained_sha256: str | None = None
    input_mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    input_std: tuple[float, ...] = (0.229, 0.224, 0.225)
    input_size: int = 224
    view_fusion: str = "logits averaged over views (official TSN's test rule)"

    def fuse_views(self, output: ModelOutput, views: int) -> torch.Tensor:
        """(N·V, C) outputs, V consecutive views per video → (N, C) video scores: the mean of the logits."""
        logits = output.logits.float()
        return logits.view(-1, views, logits.shape[-1]).mean(1)

    def compute_loss(self, output: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output.logits, target)

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """Parameters loaded from pretrained weights (empty when trained from scratch)."""
        return []

    def freeze_pretrained(self, frozen: bool) -> None:
        for p in self.pretrained_parameters():
            p.requires_grad_(not frozen)
