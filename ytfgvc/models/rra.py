"""Redundancy Reduction Attention (paper section 3.1, Fig. 2 and 3) and its ablations.

The backbone turns the n sampled frames into X = [x_1 … x_n] (c × n·h·w). Glimpse k,
with its own parameters, on the map X^k (X^1 = X):

* spatio-temporal soft attention ``a^k = softmax(X^kᵀ W_a^k)`` over all n·h·w positions;
* summary (eq. 1) ``x̂^k = X^k a^k``, scored by its own classifier after dropout,
  ``s_k = W_c^k dropout(x̂^k) + b_c^k``;
* reduction ``x̃^k = tanh(FC^k(x̂^k))`` and the redundancy-reduced map for the next glimpse
  (eq. 2) ``X^{k+1} = ReLU(BN^k(X^k ⊕ x̃^k))``, ⊕ adding x̃^k at every position of every frame.

The K-th glimpse has no reduction: its X^{K+1} feeds nothing, so no loss could train it.
Prediction and losses are in :mod:`ytfgvc.models.rra_loss` (eq. 3–6).

Variants (``variant=``), each changing one thing (Table 4 right and section 5.2):
``rra`` (the paper's model), ``avgpool`` (1: spatio-temporal average pooling instead of
attention), ``spatial_attention`` (2: softmax over h·w within each frame, then the average
over frames), ``no_bn`` (3), ``no_relu`` (4), ``no_tanh`` (5: x̃ = FC(x̂)), ``neg_relu``
(6: x̃ = −ReLU(FC(x̂))), ``parallel`` (K independent attentions on X, no reduction; the
model ``rra_parallel`` adds the paper's concatenated classifier: loss ``lc``, score
``concat``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ytfgvc.config import did_you_mean
from ytfgvc.errors import YtfgvcError
from ytfgvc.models import register_model
from ytfgvc.models.base import ModelOutput
from ytfgvc.models.common import FrameModel, init_classifier
from ytfgvc.models.rra_loss import concat_scores, ensemble_log_probs, parse_loss, rra_loss


@dataclass(frozen=True)
class Variant:
    """One RRA module design: which attention, and which parts of the reduction."""

    attention: str = "spatiotemporal"  # or "spatial", "average"
    reduce: bool = True  # False: parallel glimpses, all on X
    bn: bool = True
    relu: bool = True
    activation: str = "tanh"  # or "none", "neg_relu"


VARIANTS: dict[str, Variant] = {
    "rra": Variant(),
    "avgpool": Variant(attention="average"),
    "spatial_attention": Variant(attention="spatial"),
    "no_bn": Variant(bn=False),
    "no_relu": Variant(relu=False),
    "no_tanh": Variant(activation="none"),
    "neg_relu": Variant(activation="neg_relu"),
    "parallel": Variant(reduce=False),
}
SCORES = ("ensemble", "concat")
# How the test views (crops, and frame chunks) of a video are fused: the mean of ȳ ("prob"),
# of log ȳ ("log_prob"), or of the glimpse scores s_k before the softmax ("logits"). The
# paper is silent; docs/models.md argues the default.
TEST_FUSIONS = {
    "prob": "mean of the ensemble score ȳ over views",
    "log_prob": "mean of log ȳ over views",
    "logits": "mean of each glimpse's scores s_k over views, then ȳ",
}


class Attention(nn.Module):
    """a = softmax(Xᵀ W_a), a (B, n, h, w) summing to 1 over all n·h·w positions."""

    def __init__(self, channels: int, kind: str):
        super().__init__()
        self.kind = kind
        # No bias: a constant added to every position cancels in the softmax.
        self.w_a = nn.Linear(channels, 1, bias=False) if kind != "average" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, n, h, w = x.shape
        if self.w_a is None:
            return x.new_full((b, n, h, w), 1.0 / (n * h * w))
        logits = torch.einsum("bcnhw,c->bnhw", x, self.w_a.weight[0])
        if self.kind == "spatial":
            return F.softmax(logits.flatten(2), dim=-1).view(b, n, h, w) / n
        return F.softmax(logits.flatten(1), dim=-1).view(b, n, h, w)


class Reduction(nn.Module):
    """x̃ = tanh(FC(x̂)); X' = ReLU(BN(X ⊕ x̃)) — eq. 2, with the variant's parts."""

    def __init__(self, channels: int, variant: Variant):
        super().__init__()
        self.fc = nn.Linear(channels, channels)
        self.activation = variant.activation
        # Statistics per channel over batch, frames and positions of the (B, c, n, h, w) map.
        self.bn = nn.BatchNorm3d(channels) if variant.bn else None
        self.relu = variant.relu

    def transform(self, summary: torch.Tensor) -> torch.Tensor:
        """x̃ from the summary x̂ (B, c) → (B, c)."""
        z = self.fc(summary)
        if self.activation == "tanh":
            return torch.tanh(z)
        if self.activation == "neg_relu":
            return -F.relu(z)
        return z

    def forward(self, x: torch.Tensor, summary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_tilde = self.transform(summary)
        y = x + x_tilde[:, :, None, None, None]  # ⊕: the same x̃ at every position of every frame
        if self.bn is not None:
            y = self.bn(y)
        if self.relu:
            y = F.relu(y)
        return x_tilde, y


@dataclass
class Glimpses:
    """What the K glimpses computed (B batch, K glimpses, C classes, c channels)."""

    scores: torch.Tensor  # (B, K, C) s_k
    attention: torch.Tensor  # (B, K, n, h, w) a^k
    summaries: torch.Tensor  # (B, K, c) x̂^k
    reductions: torch.Tensor | None  # (B, K-1, c) x̃^k, None without reduction
    maps: list[torch.Tensor] = field(default_factory=list)  # X^1 … X^K, each (B, c, n, h, w), when asked


class RRAHead(nn.Module):
    """K glimpses over a (B, c, n, h, w) feature map."""

    def __init__(self, channels: int, num_classes: int, glimpses: int, variant: Variant, dropout: float):
        super().__init__()
        self.variant = variant
        self.attentions = nn.ModuleList(Attention(channels, variant.attention) for _ in range(glimpses))
        n_red = glimpses - 1 if variant.reduce else 0
        self.reductions = nn.ModuleList(Reduction(channels, variant) for _ in range(n_red))
        self.classifiers = nn.ModuleList(init_classifier(nn.Linear(channels, num_classes)) for _ in range(glimpses))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep_maps: bool = False) -> Glimpses:
        scores, attention, summaries, reductions, maps = [], [], [], [], []
        current = x
        for k, attend in enumerate(self.attentions):
            if keep_maps:
                maps.append(current)
            a = attend(current)
            summary = torch.einsum("bcnhw,bnhw->bc", current, a)  # eq. 1: x̂ = X a
            scores.append(self.classifiers[k](self.dropout(summary)))
            attention.append(a)
            summaries.append(summary)
            if k < len(self.reductions):
                x_tilde, current = self.reductions[k](current, summary)
                reductions.append(x_tilde)
        return Glimpses(
            scores=torch.stack(scores, 1),
            attention=torch.stack(attention, 1),
            summaries=torch.stack(summaries, 1),
            reductions=torch.stack(reductions, 1) if reductions else None,
            maps=maps,
        )


class RRA(FrameModel):
    """RRA on a 2D backbone; input (B, T, 3, H, W), T sampled frames (any T at test time), or
    (B, T, 2·L, H, W) flow stacks with ``modality="flow"``.

    ``logits`` are ``log ȳ`` (eq. 6) with ``score="ensemble"`` (the paper's prediction), or
    ``Σ_k s_k`` (eq. 4) with ``score="concat"``. ``extras``: ``glimpse_scores`` (B, K, C),
    ``attention`` (B, K, n, h, w), ``summaries`` (B, K, c), ``reductions`` (B, K−1, c) or
    None, ``ensemble_log_probs`` and ``concat_scores`` (B, C) — both scores, whichever
    ``logits`` is, for Table 3's mAP_e and mAP_c.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "inception_v3",
        pretrained: bool = False,
        weights=None,
        dropout: float = 0.7,
        num_segments: int = 4,
        glimpses: int = 4,
        loss: str = "li+le",
        variant: str = "rra",
        score: str = "ensemble",
        partial_bn: bool = False,
        test_frames: int | str = "all",
        test_fusion: str = "prob",
        modality: str = "rgb",
        flow_stack: int = 5,
    ):
        if variant not in VARIANTS:
            raise YtfgvcError(f"unknown RRA variant {variant!r}{did_you_mean(variant, VARIANTS)}",
                              f"choose one of {', '.join(VARIANTS)}")  # fmt: skip
        if score not in SCORES:
            raise YtfgvcError(f"unknown RRA score {score!r}{did_you_mean(score, SCORES)}", "use ensemble or concat")
        if not isinstance(glimpses, int) or glimpses < 1:
            raise YtfgvcError(f"glimpses must be a positive integer, got {glimpses!r}")
        if test_fusion not in TEST_FUSIONS:
            raise YtfgvcError(f"unknown RRA test_fusion {test_fusion!r}{did_you_mean(test_fusion, TEST_FUSIONS)}",
                              f"choose one of {', '.join(TEST_FUSIONS)}")  # fmt: skip
        if test_frames not in ("all", "train") and not (type(test_frames) is int and test_frames >= 1):
            raise YtfgvcError(f"RRA test_frames must be all, train or a positive integer, got {test_frames!r}")
        terms = parse_loss(loss)
        super().__init__(backbone, pretrained, weights, partial_bn, num_segments, modality, flow_stack)
        self.variant_name, self.score, self.loss_terms = variant, score, terms
        self.glimpses = glimpses
        self.test_frames, self.test_fusion = test_frames, test_fusion
        chunk = {"all": "all test frames in one attention softmax", "train": f"chunks of {num_segments} frames"}
        self.view_fusion = (
            f"{TEST_FUSIONS[test_fusion]} ({chunk.get(str(test_frames), f'chunks of {test_frames} frames')})"
        )
        self.head = RRAHead(self.backbone.out_channels, num_classes, glimpses, VARIANTS[variant], dropout)

    def glimpse_forward(self, x: torch.Tensor, keep_maps: bool = False) -> Glimpses:
        """Backbone and glimpses; ``keep_maps`` also returns X^1 … X^K (for visualisation)."""
        feats = self.frame_features(x).permute(0, 2, 1, 3, 4)  # (B, c, n, h, w)
        return self.head(feats, keep_maps=keep_maps)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        """Training, or ``test_frames="all"``: one pass over all T frames; else chunks of frames fused as views."""
        chunk = {"all": x.shape[1], "train": self.num_segments}.get(str(self.test_frames), self.test_frames)
        if self.training or chunk >= x.shape[1]:
            return self._forward_frames(x)
        n_chunks = -(-x.shape[1] // chunk)  # sizes differ by at most one frame (tensor_split)
        outs = [self._forward_frames(part) for part in x.tensor_split(n_chunks, dim=1)]
        scores = torch.stack([o.extras["glimpse_scores"] for o in outs], 1)  # (B, chunks, K, C)
        attention = torch.cat([o.extras["attention"] for o in outs], dim=2) / n_chunks  # still sums to 1
        fused = self._output(scores.mean(1), {"attention": attention, "summaries": None, "reductions": None})
        fused.logits = self._fuse(torch.stack([o.logits for o in outs], 1), scores)
        return fused

    def fuse_views(self, output: ModelOutput, views: int) -> torch.Tensor:
        """One row per video from its ``views`` consecutive outputs, by ``test_fusion`` (see ``TEST_FUSIONS``)."""
        scores = output.extras["glimpse_scores"].float()
        logits = output.logits.float()
        return self._fuse(logits.view(-1, views, logits.shape[-1]), scores.view(-1, views, *scores.shape[1:]))

    def _fuse(self, logits: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """(B, V, C) logits and (B, V, K, C) glimpse scores of V views → (B, C)."""
        if self.test_fusion == "log_prob":
            return logits.mean(1)
        if self.test_fusion == "prob":  # log of the mean of the softmaxes, finite where ȳ underflows
            return torch.logsumexp(F.log_softmax(logits, dim=-1), dim=1) - math.log(logits.shape[1])
        return self._output(scores.mean(1)).logits

    def _output(self, scores: torch.Tensor, extras: dict | None = None) -> ModelOutput:
        ens, cat = ensemble_log_probs(scores), concat_scores(scores)
        extras = {"glimpse_scores": scores, **(extras or {}), "ensemble_log_probs": ens, "concat_scores": cat}
        return ModelOutput(logits=ens if self.score == "ensemble" else cat, extras=extras)

    def _forward_frames(self, x: torch.Tensor) -> ModelOutput:
        g = self.glimpse_forward(x)
        return self._output(g.scores, {"attention": g.attention, "summaries": g.summaries, "reductions": g.reductions})

    def compute_loss(self, output: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        return rra_loss(output.extras["glimpse_scores"], target, self.loss_terms)


@register_model("rra")
def rra(num_classes: int, **kw) -> RRA:
    """RRA (Inception-V3, 4 glimpses, loss li+le, ensemble score unless told otherwise)."""
    return RRA(num_classes, **kw)


@register_model("rra_parallel")
def rra_parallel(num_classes: int, loss: str = "lc", score: str = "concat", **kw) -> RRA:
    """The parallel-glimpses model of section 5.2: K attentions on X, one classifier on their concatenation.

    A linear classifier on the concatenated summaries is Σ_k W_k x̂^k + b, i.e. the
    concatenation score of eq. 4, trained with Lc; ``loss``/``score`` may be changed.
    """
    if kw.get("variant", "parallel") != "parallel":
        raise YtfgvcError("rra_parallel is the 'parallel' variant", "use model rra for the other variants")
    kw.pop("variant", None)
    return RRA(num_classes, loss=loss, score=score, variant="parallel", **kw)
