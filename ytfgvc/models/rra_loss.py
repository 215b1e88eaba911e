"""RRA's scores and losses (paper section 3.2, eq. 3–6).

With glimpse scores ``s`` of shape (B, K, C) — ``s[:, k] = W_c^k x̂^k + b_c^k``:

* concatenation score (eq. 4): ``ŷ_cat = softmax(Σ_k s_k)``; loss ``Lc = L(ŷ_cat, y)``;
* individual loss (eq. 5): ``Li = Σ_k L(softmax(s_k), y)``;
* ensemble score (eq. 6): ``ȳ = (1/K) Σ_k softmax(s_k)``; loss ``Le = L(ȳ, y)``;

with ``L`` the cross entropy of eq. 3, averaged over the batch. ``log ȳ`` is computed as
``logsumexp_k(log_softmax(s_k)) − log K``, which stays finite where the probabilities
underflow. Losses combine by name, equally weighted (section 5.2): any of the seven
non-empty combinations of Table 3, written ``"li+le"`` (the paper's choice), ``"lc"``,
``"lc+li+le"`` …
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ytfgvc.config import did_you_mean
from ytfgvc.errors import YtfgvcError

LOSS_TERMS = ("lc", "li", "le")


def parse_loss(spec: str) -> tuple[str, ...]:
    """``"Li + Le"`` → ``("li", "le")``; unknown or repeated terms raise."""
    terms = [t.strip().lower() for t in str(spec).split("+")]
    for t in terms:
        if t not in LOSS_TERMS:
            raise YtfgvcError(
                f"unknown RRA loss term {t!r} in {spec!r}{did_you_mean(t, LOSS_TERMS)}",
                "combine lc, li and le with '+', e.g. li+le",
            )
    if len(set(terms)) != len(terms):
        raise YtfgvcError(f"RRA loss {spec!r} repeats a term", "name each of lc, li, le at most once")
    return tuple(t for t in LOSS_TERMS if t in terms)


def concat_scores(scores: torch.Tensor) -> torch.Tensor:
    """Σ_k s_k (eq. 4, before the softmax): (B, K, C) → (B, C)."""
    return scores.sum(dim=1)


def ensemble_log_probs(scores: torch.Tensor) -> torch.Tensor:
    """log ȳ of eq. 6: the log of the mean of the glimpses' softmaxes, (B, K, C) → (B, C)."""
    return torch.logsumexp(F.log_softmax(scores, dim=-1), dim=1) - math.log(scores.shape[1])


def concatenation_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lc: cross entropy of softmax(Σ_k s_k)."""
    return F.cross_entropy(concat_scores(scores), target)


def individual_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Li: the sum over glimpses of each glimpse's cross entropy."""
    b, k, c = scores.shape
    per_glimpse = F.cross_entropy(scores.reshape(b * k, c), target.repeat_interleave(k), reduction="none")
    return per_glimpse.view(b, k).sum(dim=1).mean()


def ensemble_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Le: cross entropy of the ensemble score ȳ."""
    return F.nll_loss(ensemble_log_probs(scores), target)


_TERMS = {"lc": concatenation_loss, "li": individual_loss, "le": ensemble_loss}


def rra_loss(scores: torch.Tensor, target: torch.Tensor, terms: tuple[str, ...]) -> torch.Tensor:
    """The sum of the named losses, equally weighted."""
    return sum(_TERMS[t](scores, target) for t in terms)
