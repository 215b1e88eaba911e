"""Each method's recipe: the optimizer, its parameter groups, the schedule, clipping, the scratch refusal."""

import json
import math

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from ytfgvc.benchmark.config import deep_merge, load_config
from ytfgvc.benchmark.optim import build_optimizer, lr_at, param_groups, set_lr
from ytfgvc.benchmark.recipes import RECIPES, recipe_for
from ytfgvc.benchmark.run import run_benchmark
from ytfgvc.benchmark.table6 import build_table
from ytfgvc.cli import main
from ytfgvc.engine import DistEnv, train_one_epoch
from ytfgvc.errors import YtfgvcError
from ytfgvc.models import create_model

from . import tiny_models  # noqa: F401  (registers test_tiny_frames)
from .rawframes_utils import make_prepared


def _ids(params) -> set[int]:
    return {id(p) for p in params}


def test_tsn_groups_are_official_tsns_policies():
    model = create_model("tsn", 5, backbone="bninception", num_segments=1, partial_bn=True)
    groups = {g["name"]: g for g in param_groups(model, "tsn")}
    body = model.backbone.body
    first = body.conv1_7x7_s2.conv
    assert _ids(groups["first_conv_weight"]["params"]) == {id(first.weight)}
    assert _ids(groups["first_conv_bias"]["params"]) == {id(first.bias)}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)][1:]
    assert _ids(groups["normal_weight"]["params"]) == _ids([c.weight for c in convs] + [model.fc.weight])
    assert _ids(groups["normal_bias"]["params"]) == _ids([c.bias for c in convs] + [model.fc.bias])
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert _ids(groups["BN scale/shift"]["params"]) == _ids([p for b in bns for p in (b.weight, b.bias)])
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))  # each once
    # lr and weight decay multipliers of models.py get_optim_policies (RGB; flow: 5 and 10 on the first conv)
    opt = build_optimizer(model, "sgd", 0.01, 5e-4, 0.9, "tsn")
    got = {g["name"]: (g["lr"], g["weight_decay"]) for g in opt.param_groups}
    assert got == {
        "first_conv_weight": (0.01, 5e-4),
        "first_conv_bias": (0.02, 0.0),
        "normal_weight": (0.01, 5e-4),
        "normal_bias": (0.02, 0.0),
        "BN scale/shift": (0.01, 0.0),
    }
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    flow = {g["name"]: g["lr"] for g in build_optimizer(model, "sgd", 0.01, 5e-4, 0.9, "tsn", flow=True).param_groups}
    assert flow["first_conv_weight"] == pytest.approx(0.05) and flow["first_conv_bias"] == pytest.approx(0.1)
    # partial BN: every BatchNorm but the first is frozen in training mode, so SGD skips it
    model.train()
    assert [b.weight.requires_grad for b in bns[:2]] == [True, False]


def test_uniform_group_and_adam():
    model = create_model("rra", 5, backbone="tiny", num_segments=2)
    opt = build_optimizer(model, "adam", 2e-4)
    assert isinstance(opt, torch.optim.Adam) and len(opt.param_groups) == 1
    assert opt.param_groups[0]["lr"] == 2e-4 and opt.param_groups[0]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(model, "lamb", 1e-3)


def test_learning_rate_steps_at_the_recipes_epochs():
    tsn = RECIPES["tsn-official"].values
    lrs = [lr_at(e, tsn["lr"], tsn["lr_steps"], tsn["lr_gamma"]) for e in (0, 29, 30, 59, 60, 79)]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    rra = RECIPES["rra-paper"].values
    assert [lr_at(e, rra["lr"], rra["lr_steps"], 0.1) for e in (29, 30, 60, 90, 119)] == pytest.approx(
        [2e-4, 2e-5, 2e-6, 2e-7, 2e-7]
    )
    model = create_model("tsn", 3, backbone="tiny", num_segments=1)
    opt = build_optimizer(model, "sgd", 0.1, 0.0, 0.9, "tsn")
    set_lr(opt, 0.001)
    assert {g["name"]: g["lr"] for g in opt.param_groups}["normal_bias"] == pytest.approx(0.002)


class _Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        from ytfgvc.models.base import ModelOutput

        return ModelOutput(self.fc(x))

    def compute_loss(self, out, target):
        return 1e4 * nn.functional.cross_entropy(out.logits, target)  # a huge gradient


@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_gradient_clipping_bounds_the_step(clip):
    torch.manual_seed(0)
    model = _Linear()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    batch = (torch.randn(8, 4), torch.randint(0, 3, (8,)), torch.arange(8))
    train_one_epoch(model, model, [batch], opt, DistEnv(), clip_grad_norm=clip)
    step = math.sqrt(sum(((p - b) ** 2).sum().item() for p, b in zip(model.parameters(), before, strict=True)))
    if clip:
        assert step == pytest.approx(clip, rel=1e-4)  # lr 1: the step is the clipped gradient
    else:
        assert step > 100


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipes")
    make_prepared(root, classes=3, train_per_class=3, test_per_class=2)
    return root


def _paper_cfg(root, method="tsn", **over):
    tiny = {
        "dataset": "synthetic",
        "root": str(root),
        "model": {"name": "test_tiny_frames", "kwargs": {"pretrained": False}},
        "input_size": 24,
        "workers": 0,
        "batch_size": 3,
        "epochs": 3,
        "lr_steps": [1, 2],
        "test_segments": 2,
        "test_crops": 1,
    }
    return load_config(method, "paper", overrides=deep_merge(tiny, over))


def test_the_run_uses_the_recipes_optimizer_and_schedule(root, tmp_path):
    cfg = _paper_cfg(root, allow_scratch=True)
    assert (cfg.optimizer, cfg.param_groups, cfg.clip_grad_norm) == ("sgd", "tsn", 20.0)
    res = run_benchmark(cfg, tmp_path, progress=False, echo=lambda s: None)
    log = [json.loads(line) for line in (res.run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == pytest.approx([1e-3, 1e-4, 1e-5])
    state = torch.load(res.run_dir / "checkpoint.pt", weights_only=True)["optimizer"]
    groups = {g["name"]: g for g in state["param_groups"]}
    assert groups["normal_bias"]["lr"] == pytest.approx(2e-5) and groups["normal_bias"]["weight_decay"] == 0.0
    assert groups["normal_weight"]["weight_decay"] == 5e-4 and "momentum_buffer" in next(iter(state["state"].values()))
    recipe = res.metrics["recipe"]
    assert recipe["name"] == "tsn-official" and recipe["changed"]["epochs"] == {"recipe": 80, "run": 3}
    assert recipe["sources"]["clip_grad_norm"] == "tsn-pytorch README.md, RGB training command --gd 20"


def test_a_paper_run_that_would_start_from_scratch_stops_unless_allowed(root, tmp_path):
    with pytest.raises(YtfgvcError, match="--weights FILE with a copy of that file.*or --allow-scratch") as e:
        run_benchmark(_paper_cfg(root), tmp_path, progress=False, echo=lambda s: None)
    assert "paper preset starts tsn from pretrained weights" in str(e.value)
    assert not (tmp_path / "synthetic").exists()
    args = ["benchmark", "synthetic", "--model", "tsn", "--root", str(root), "--out", str(tmp_path), "--no-progress"]
    small = ["--set", "model.name=test_tiny_frames", "--set", "model.kwargs.pretrained=false", "--input-size", "24",
             "--workers", "0", "--batch-size", "3", "--epochs", "1", "--set", "test_segments=2",
             "--set", "test_crops=1"]  # fmt: skip
    res = CliRunner().invoke(main, [*args, *small])
    assert res.exit_code == 2 and "--allow-scratch" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, [*args, *small, "--allow-scratch", "--json"])
    assert res.exit_code == 0, res.output
    run = json.loads(res.output)["runs"][0]
    assert run["metrics"]["weights"]["source"] == "from scratch"
    assert "allow_scratch: true" in (tmp_path / "synthetic/tsn/paper-seed0/config.yaml").read_text()
    table = build_table([tmp_path])
    assert table.rows[0].from_scratch and "*from scratch*" in table.to_markdown()
    assert "from scratch" in table.to_csv() and "from scratch" in table.to_latex()
    pred = json.loads((tmp_path / "synthetic/tsn/paper-seed0/predictions.json").read_text())
    assert pred["provenance"] == {"weights": "from scratch", "recipe": "tsn-official; changed: batch_size, epochs"}


def test_every_method_has_a_recipe_with_a_source_for_each_value():
    for method in ("rra", "tsn", "bninception", "i3d"):
        recipe = recipe_for(method)
        assert set(recipe.values) == set(recipe.sources) and all(recipe.sources.values())
        cfg = load_config(method, "paper")
        assert recipe.deviations(cfg.to_dict()) == {}, method  # the paper preset is the recipe
