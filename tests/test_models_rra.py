"""RRA as the paper defines it (section 3.1–3.2, Table 3 and 4), on a tiny CPU backbone."""

from __future__ import annotations

import math

import pytest
import torch

from ytfgvc.errors import YtfgvcError
from ytfgvc.models import create_model, list_models
from ytfgvc.models.rra import VARIANTS
from ytfgvc.models.rra_loss import (
    concatenation_loss,
    ensemble_log_probs,
    ensemble_loss,
    individual_loss,
    parse_loss,
)

from .torch_threads import one_torch_thread  # noqa: F401 - autouse

B, T, C = 2, 3, 5


def frames(b: int = B, t: int = T, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, 3, size, size, generator=torch.Generator().manual_seed(seed))


def tiny_rra(**kw):
    torch.manual_seed(0)
    return create_model("rra", C, backbone="tiny", **kw)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("glimpses", [1, 4])
def test_every_variant_gives_the_documented_shapes(variant: str, glimpses: int):
    out = tiny_rra(variant=variant, glimpses=glimpses)(frames())
    x = out.extras
    assert out.logits.shape == (B, C)
    assert x["glimpse_scores"].shape == (B, glimpses, C)
    assert x["attention"].shape == (B, glimpses, T, 4, 4)  # 32 px / 8 for the tiny backbone
    assert x["summaries"].shape == (B, glimpses, 64)
    reduces = variant != "parallel" and glimpses > 1
    assert (x["reductions"] is not None) == reduces
    if reduces:
        assert x["reductions"].shape == (B, glimpses - 1, 64)
    assert torch.isfinite(out.logits).all()


def test_rra_on_the_papers_inception_v3_backbone():
    out = create_model("rra", C, num_segments=2)(torch.randn(1, 2, 3, 75, 75))  # 75 px: Inception-V3's minimum
    assert out.logits.shape == (1, C) and out.extras["summaries"].shape == (1, 4, 2048)


@pytest.mark.parametrize("variant", ["rra", "spatial_attention", "parallel"])
def test_attention_sums_to_one_over_all_frames_and_positions(variant: str):
    a = tiny_rra(variant=variant)(frames()).extras["attention"]
    assert torch.allclose(a.sum(dim=(2, 3, 4)), torch.ones(B, 4), atol=1e-5)
    assert (a >= 0).all()
    if variant == "rra":  # spatio-temporal: frames compete, so per-frame masses differ
        per_frame = a.sum(dim=(3, 4))
        assert not torch.allclose(per_frame, torch.full_like(per_frame, 1 / T), atol=1e-3)
    if variant == "spatial_attention":  # spatial softmax, then the temporal average: 1/T per frame
        assert torch.allclose(a.sum(dim=(3, 4)), torch.full((B, 4, T), 1 / T), atol=1e-5)


def test_avgpool_variant_attends_uniformly():
    a = tiny_rra(variant="avgpool")(frames()).extras["attention"]
    assert torch.allclose(a, torch.full_like(a, 1 / (T * 16)))


def test_one_glimpse_with_average_pooling_is_tsn_numerically():
    rra = tiny_rra(glimpses=1, variant="avgpool").eval()
    tsn = create_model("tsn", C, backbone="tiny", partial_bn=False).eval()
    tsn.backbone.load_state_dict(rra.backbone.state_dict())
    torch.nn.init.normal_(rra.head.classifiers[0].weight)  # non-trivial weights, then the same in both
    tsn.fc.load_state_dict(rra.head.classifiers[0].state_dict())
    x = frames()
    r, t = rra(x), tsn(x)
    assert torch.allclose(r.extras["glimpse_scores"][:, 0], t.logits, atol=1e-5)
    assert torch.allclose(r.logits.softmax(-1), t.logits.softmax(-1), atol=1e-6)


# Fixed glimpse scores: 1 video, K = 2 glimpses, 3 classes, target class 1.
S1, S2, Y = [1.0, 2.0, 0.0], [0.0, 0.0, 3.0], 1
SCORES = torch.tensor([[S1, S2]])
TARGET = torch.tensor([Y])


def _softmax(s: list[float]) -> list[float]:
    z = sum(math.exp(v) for v in s)
    return [math.exp(v) / z for v in s]


def test_each_loss_matches_a_hand_computation():
    lc = -math.log(_softmax([a + b for a, b in zip(S1, S2, strict=True)])[Y])  # eq. 4
    li = -math.log(_softmax(S1)[Y]) - math.log(_softmax(S2)[Y])  # eq. 5
    le = -math.log((_softmax(S1)[Y] + _softmax(S2)[Y]) / 2)  # eq. 6
    assert concatenation_loss(SCORES, TARGET).item() == pytest.approx(lc, rel=1e-6)
    assert individual_loss(SCORES, TARGET).item() == pytest.approx(li, rel=1e-6)
    assert ensemble_loss(SCORES, TARGET).item() == pytest.approx(le, rel=1e-6)
    probs = ensemble_log_probs(SCORES).exp()[0].tolist()
    assert probs == pytest.approx([(p + q) / 2 for p, q in zip(_softmax(S1), _softmax(S2), strict=True)], rel=1e-6)

    model = tiny_rra(glimpses=2)
    out = model(frames())
    fixed = type(out)(logits=out.logits, extras={**out.extras, "glimpse_scores": SCORES})
    for spec, want in [("lc", lc), ("li", li), ("le", le), ("li+le", li + le), ("lc+li", lc + li),
                       ("lc+le", lc + le), ("lc+li+le", lc + li + le)]:  # fmt: skip
        model.loss_terms = parse_loss(spec)
        assert model.compute_loss(fixed, TARGET).item() == pytest.approx(want, rel=1e-6), spec


def test_ensemble_loss_stays_finite_where_probabilities_underflow():
    scores = torch.tensor([[[0.0, 1000.0], [0.0, 1000.0]]])
    loss = ensemble_loss(scores, torch.tensor([0]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(1000.0)


def test_loss_names_are_parsed_strictly():
    assert parse_loss(" Li + Le ") == ("li", "le")
    assert len({parse_loss(s) for s in ["lc", "li", "le", "lc+li", "lc+le", "li+le", "lc+li+le"]}) == 7
    with pytest.raises(YtfgvcError, match="did you mean 'le'"):
        parse_loss("li+lee")
    with pytest.raises(YtfgvcError, match="repeats"):
        parse_loss("li+li")


def test_bad_options_say_what_to_use():
    with pytest.raises(YtfgvcError, match="did you mean 'no_tanh'"):
        tiny_rra(variant="no-tanh")
    with pytest.raises(YtfgvcError, match="ensemble or concat"):
        tiny_rra(score="mean")
    with pytest.raises(YtfgvcError, match="did you mean 'rra'"):
        create_model("rrra", C)
    assert {"rra", "rra_parallel", "tsn", "bninception", "i3d"} <= set(list_models())


def test_prediction_is_the_ensemble_score_by_default_and_the_concatenation_on_request():
    x = frames()
    ens = tiny_rra().eval()(x)
    assert torch.allclose(ens.logits, ens.extras["ensemble_log_probs"])
    assert torch.allclose(ens.logits.exp().sum(-1), torch.ones(B), atol=1e-5)  # log of a distribution
    cat = tiny_rra(score="concat").eval()(x)
    assert torch.allclose(cat.logits, cat.extras["glimpse_scores"].sum(1))


def test_reduction_is_bounded_and_added_at_every_position_of_every_frame():
    model = tiny_rra()
    seen = {}
    model.head.reductions[0].bn.register_forward_hook(lambda m, inp, out: seen.setdefault("sum", inp[0]))
    g = model.glimpse_forward(frames(), keep_maps=True)
    x_tilde = g.reductions[:, 0]
    assert ((x_tilde > -1) & (x_tilde < 1)).all() and x_tilde.abs().max() > 0.01
    added = seen["sum"] - g.maps[0]  # (X ⊕ x̃) − X, (B, c, n, h, w)
    assert torch.allclose(added, x_tilde[:, :, None, None, None].expand_as(added), atol=1e-6)
    # The next glimpse sees ReLU(BN(X ⊕ x̃)): non-negative and different from X.
    assert (g.maps[1] >= 0).all() and not torch.allclose(g.maps[1], g.maps[0])


def test_reduction_ablations_change_only_their_part():
    x = torch.randn(B, 64) * 10
    assert (tiny_rra(variant="neg_relu").head.reductions[0].transform(x) <= 0).all()
    linear = tiny_rra(variant="no_tanh").head.reductions[0]
    assert torch.allclose(linear.transform(x), linear.fc(x)) and linear.transform(x).abs().max() > 1
    assert tiny_rra(variant="no_bn").head.reductions[0].bn is None
    g = tiny_rra(variant="no_relu").glimpse_forward(frames(), keep_maps=True)
    assert (g.maps[1] < 0).any()  # BN without the ReLU threshold leaves negative activations


@pytest.mark.parametrize("variant", ["rra", "spatial_attention", "parallel"])
def test_gradient_reaches_the_backbone_and_every_glimpse(variant: str):
    model = tiny_rra(variant=variant)
    loss = model.compute_loss(model(frames()), torch.tensor([0, 3]))
    loss.backward()
    first_conv = model.backbone.body[0][0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    for k, att in enumerate(model.head.attentions):
        assert att.w_a.weight.grad.abs().sum() > 0, k
    for red in model.head.reductions:
        assert red.fc.weight.grad.abs().sum() > 0


def test_parallel_model_uses_the_concatenation_by_default():
    model = create_model("rra_parallel", C, backbone="tiny")
    assert model.loss_terms == ("lc",) and model.score == "concat" and len(model.head.reductions) == 0
    assert create_model("rra_parallel", C, backbone="tiny", loss="li+le").loss_terms == ("li", "le")
    with pytest.raises(YtfgvcError, match="parallel"):
        create_model("rra_parallel", C, backbone="tiny", variant="no_bn")


# --- test-time choices (the paper is silent: options, defaults argued in docs/models.md) -----------


def _probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=-1)


def test_views_are_fused_by_the_chosen_rule():
    x = frames(b=2 * 3, t=2)  # 2 videos x 3 views
    for fusion in ("prob", "log_prob", "logits"):
        model = tiny_rra(test_fusion=fusion).eval()
        with torch.no_grad():
            out = model(x)
            fused = model.fuse_views(out, 3)
        log_y = out.logits.view(2, 3, C)  # log ȳ of each view
        scores = out.extras["glimpse_scores"].view(2, 3, 4, C)
        expected = {
            "prob": torch.log(log_y.exp().mean(1)),  # mean of ȳ
            "log_prob": log_y.mean(1),  # mean of log ȳ
            "logits": torch.log(torch.softmax(scores.mean(1), -1).mean(1)),  # s_k averaged, then eq. 6
        }[fusion]
        assert torch.allclose(fused, expected, atol=1e-5), fusion
        assert model.view_fusion.endswith("(all test frames in one attention softmax)")


def test_test_frames_in_chunks_of_the_training_length_are_views_of_the_video():
    x = frames(b=2, t=8)
    model = tiny_rra(num_segments=4, test_frames="train").eval()
    whole = tiny_rra(num_segments=4).eval()
    with torch.no_grad():
        chunked = model(x)
        a, b = whole(x[:, :4]), whole(x[:, 4:])
        one = whole(x)
    expected = torch.log((a.logits.exp() + b.logits.exp()) / 2)  # default rule: the mean of ȳ over the chunks
    assert torch.allclose(chunked.logits, expected, atol=1e-5)
    half = chunked.extras["attention"][:, :, :4].sum(dim=(2, 3, 4))
    assert torch.allclose(half, torch.full_like(half, 0.5), atol=1e-5)  # each chunk is its own softmax, half the mass
    assert not torch.allclose(one.extras["attention"][:, :, :4].sum(dim=(2, 3, 4)), half, atol=1e-4)
    assert chunked.extras["attention"].shape[2] == 8
    assert torch.allclose(chunked.extras["attention"].sum(dim=(2, 3, 4)), torch.ones(2, 4), atol=1e-5)
    # 7 frames in chunks of 3: sizes 3, 2, 2 (three views); training ignores the option
    seven = tiny_rra(test_frames=3).eval()
    with torch.no_grad():
        parts = [seven(p) for p in frames(b=2, t=7).tensor_split(3, dim=1)]
        expected = torch.log(torch.stack([p.logits.exp() for p in parts]).mean(0))
        assert torch.allclose(seven(frames(b=2, t=7)).logits, expected, atol=1e-5)
    assert seven.train()(frames(b=2, t=7)).extras["attention"].shape[2] == 7


def test_bad_test_time_options_say_what_to_use():
    with pytest.raises(YtfgvcError, match="did you mean 'logits'"):
        tiny_rra(test_fusion="logit")
    with pytest.raises(YtfgvcError, match="all, train or a positive integer"):
        tiny_rra(test_frames=0)
