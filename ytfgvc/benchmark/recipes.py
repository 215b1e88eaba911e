"""Training recipes: how each Table 6 method is optimised, and where every number comes from.

The paper states RRA's recipe (section 5.1) and says its TSN row used "its official
implementation in PyTorch" (the Table 6 paragraph); for BN-Inception and I3D it says only
how frames are sampled. A recipe is the set of config keys that decide the optimisation
(optimizer, learning rate and its steps, epochs, weight decay, clipping, the parameter
groups, dropout, partial BN, the frozen phase, the batch), each with its source: a line of
the paper, a line of another project's code opened for this, or "choice" with the reason.
``metrics.json`` records the recipe a run used and every key where the run departed from it.

Sources (read for this module):

* **paper**: the RRA paper's section 5.1 ("Training"), and its Table 6 paragraph.
* **tsn-pytorch**: yjxiong/tsn-pytorch at 2f0468e: ``README.md`` (the RGB training
  command "to reproduce the original TSN experiments": ``--arch BNInception --num_segments 3
  --gd 20 --lr 0.001 --lr_steps 30 60 --epochs 80 -b 128 -j 8 --dropout 0.8``; "For flow
  models": ``--gd 20 --lr 0.001 --lr_steps 190 300 --epochs 340 -b 128 -j 8 --dropout 0.7``), ``opts.py``
  (defaults: batch 256, momentum 0.9, weight decay 5e-4, partial BN on unless
  ``--no_partialbn``), ``main.py`` (``torch.optim.SGD`` over ``get_optim_policies()``;
  ``adjust_learning_rate``: lr × 0.1 per step passed, times each group's ``lr_mult``, weight
  decay times its ``decay_mult``; ``clip_grad_norm`` over all parameters when ``--gd`` is
  set) and ``models.py`` (``get_optim_policies``: see :mod:`ytfgvc.benchmark.optim`).
* **mmaction2**: open-mmlab/mmaction2 at 4d6c934 (2023-10-12):
  ``configs/_base_/schedules/sgd_100e.py`` (SGD lr 0.01 "for 8 gpus", momentum 0.9, weight
  decay 1e-4, ``clip_grad`` max_norm 40, MultiStepLR milestones [40, 80], gamma 0.1, 100
  epochs), ``configs/_base_/models/i3d_r50.py`` (dropout_ratio 0.5, ``norm_eval=False``) and
  ``configs/recognition/i3d/i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py``
  (8 GPUs × 8 clips: ``auto_scale_lr`` base_batch_size 64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ytfgvc.config import did_you_mean
from ytfgvc.errors import YtfgvcError

PAPER = "paper, section 5.1"
TSN_README = "tsn-pytorch README.md, RGB training command"
TSN_README_FLOW = "tsn-pytorch README.md, flow training command"
TSN_OPTS = "tsn-pytorch opts.py default"
TSN_MAIN = "tsn-pytorch main.py"
MMA_SCHEDULE = "mmaction2 configs/_base_/schedules/sgd_100e.py"
MMA_MODEL = "mmaction2 configs/_base_/models/i3d_r50.py"
MMA_I3D = "mmaction2 i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb.py"


@dataclass(frozen=True)
class Recipe:
    """A named recipe: config values (``model.kwargs.*`` dotted) and the source of each."""

    name: str
    title: str
    values: dict[str, Any]
    sources: dict[str, str]

    def config(self) -> dict[str, Any]:
        """The values as a nested config dict (``{"model": {"kwargs": {...}}, ...}``)."""
        out: dict[str, Any] = {}
        for key, value in self.values.items():
            node = out
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = list(value) if isinstance(value, tuple) else value
        return out

    def deviations(self, cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Keys where the resolved config ``cfg`` (``BenchmarkConfig.to_dict()``) differs: ``{key: {recipe, run}}``."""
        out = {}
        for key, want in self.values.items():
            got: Any = cfg
            for part in key.split("."):
                got = got.get(part) if isinstance(got, dict) else None
            if _norm(got) != _norm(want):
                out[key] = {"recipe": _norm(want), "run": _norm(got)}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "values": {k: _norm(v) for k, v in self.values.items()},
            "sources": dict(self.sources),
        }


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _recipe(name: str, title: str, table: dict[str, tuple[Any, str]]) -> Recipe:
    return Recipe(name, title, {k: v for k, (v, _) in table.items()}, {k: s for k, (_, s) in table.items()})


_RRA = _recipe(
    "rra-paper",
    "RRA as in the paper (section 5.1)",
    {
        "optimizer": ("adam", PAPER + ': "We used Adam optimizer"'),
        "lr": (2e-4, PAPER + ': "initial learning rate 0.0002"'),
        "lr_gamma": (0.1, PAPER + ': "learning rate decay factor 0.1"'),
        "lr_steps": ((30, 60, 90), PAPER + ': "decayed the learning rate every 30 epochs"'),
        "epochs": (120, PAPER + ': "the total number of epochs was set to 120"'),
        "batch_size": (256, PAPER + ': "Batch size is set to 256 on all datasets"'),
        "freeze_epochs": (30, PAPER + ': "pretrained convolutional layers were frozen until 30 epochs later"'),
        "model.kwargs.dropout": (0.7, PAPER + ': dropout "set to 0.7/0.5 for RGB/flow"'),
        "weight_decay": (0.0, "choice: the paper states none"),
        "clip_grad_norm": (0.0, "choice: the paper states none"),
        "param_groups": ("uniform", "choice: the paper states none (one learning rate for every parameter)"),
        "model.kwargs.partial_bn": (False, "choice: the paper states none; its 'frozen BN' (5.2) is an ablation"),
    },
)

# The TSN authors' PyTorch code, as its README says to train RGB models (BN-Inception there).
_TSN_TABLE: dict[str, tuple[Any, str]] = {
    "optimizer": ("sgd", TSN_MAIN + ": torch.optim.SGD"),
    "momentum": (0.9, TSN_OPTS + " --momentum 0.9"),
    "weight_decay": (5e-4, TSN_OPTS + " --weight-decay 5e-4"),
    "lr": (0.001, TSN_README + " --lr 0.001"),
    "lr_gamma": (0.1, TSN_MAIN + " adjust_learning_rate: 0.1 per step"),
    "lr_steps": ((30, 60), TSN_README + " --lr_steps 30 60"),
    "epochs": (80, TSN_README + " --epochs 80"),
    "clip_grad_norm": (20.0, TSN_README + " --gd 20"),
    "param_groups": ("tsn", "tsn-pytorch models.py get_optim_policies (lr_mult, decay_mult)"),
    "freeze_epochs": (0, "tsn-pytorch main.py: no frozen phase"),
    "model.kwargs.dropout": (0.8, TSN_README + " --dropout 0.8"),
    "model.kwargs.partial_bn": (True, TSN_OPTS + ": partial BN unless --no_partialbn"),
    "batch_size": (256, "choice: " + TSN_OPTS + " -b 256 and the paper's batch (the README command uses 128)"),
}
_TSN = _recipe("tsn-official", "official TSN (yjxiong/tsn-pytorch), RGB", _TSN_TABLE)
_BNINCEPTION = _recipe(
    "tsn-official-bninception",
    "official TSN's recipe on one frame (choice: the paper states none for BN-Inception)",
    _TSN_TABLE,
)
_I3D = _recipe(
    "i3d-mmaction2",
    "MMAction2's ImageNet-inflated I3D ResNet-50 (choice: the paper states none for I3D)",
    {
        "optimizer": ("sgd", MMA_SCHEDULE + ": SGD"),
        "momentum": (0.9, MMA_SCHEDULE + ": momentum=0.9"),
        "weight_decay": (1e-4, MMA_SCHEDULE + ": weight_decay=0.0001"),
        "lr": (0.01, MMA_SCHEDULE + ': lr=0.01 "used for 8 gpus" of 8 clips'),
        "lr_gamma": (0.1, MMA_SCHEDULE + ": gamma=0.1"),
        "lr_steps": ((40, 80), MMA_SCHEDULE + ": milestones=[40, 80]"),
        "epochs": (100, MMA_SCHEDULE + ": max_epochs=100"),
        "clip_grad_norm": (40.0, MMA_SCHEDULE + ": clip_grad max_norm=40"),
        "param_groups": ("uniform", MMA_SCHEDULE + ": no paramwise_cfg (weight decay on every parameter)"),
        "freeze_epochs": (0, MMA_I3D + ": no frozen phase"),
        "batch_size": (64, MMA_I3D + ": 8 GPUs x 8 clips (auto_scale_lr base_batch_size=64)"),
        "model.kwargs.dropout": (0.5, MMA_MODEL + ": dropout_ratio=0.5"),
        "model.kwargs.partial_bn": (False, MMA_MODEL + ": norm_eval=False"),
    },
)

# Flow streams. RRA: the paper's recipe with its flow dropout (section 5.1 gives one recipe
# for both streams, dropout "0.7/0.5 for RGB/flow"). TSN and BN-Inception: the official TSN's
# flow command, as their RGB recipes follow its RGB command (the paper's TSN row is "its
# official implementation"); its longer schedule is what TSN trains flow with.
_RRA_FLOW = _recipe(
    "rra-paper-flow",
    "RRA as in the paper (section 5.1), flow stream",
    {
        **{k: (v, _RRA.sources[k]) for k, v in _RRA.values.items()},
        "model.kwargs.dropout": (0.5, PAPER + ': dropout "set to 0.7/0.5 for RGB/flow"'),
    },
)
_TSN_FLOW_TABLE: dict[str, tuple[Any, str]] = {
    **_TSN_TABLE,
    "lr": (0.001, TSN_README_FLOW + " --lr 0.001"),
    "lr_steps": ((190, 300), TSN_README_FLOW + " --lr_steps 190 300"),
    "epochs": (340, TSN_README_FLOW + " --epochs 340"),
    "clip_grad_norm": (20.0, TSN_README_FLOW + " --gd 20"),
    "model.kwargs.dropout": (0.7, TSN_README_FLOW + " --dropout 0.7"),
    "param_groups": ("tsn", "tsn-pytorch models.py get_optim_policies: first conv lr_mult 5 (bias 10) for Flow"),
    "batch_size": (256, "choice: " + TSN_OPTS + " -b 256 and the paper's batch (the README command uses 128)"),
}
_TSN_FLOW = _recipe("tsn-official-flow", "official TSN (yjxiong/tsn-pytorch), flow", _TSN_FLOW_TABLE)
_BNINCEPTION_FLOW = _recipe(
    "tsn-official-bninception-flow",
    "official TSN's flow recipe on one stack (choice: the paper states none for BN-Inception)",
    _TSN_FLOW_TABLE,
)

RECIPES: dict[str, Recipe] = {
    r.name: r for r in (_RRA, _TSN, _BNINCEPTION, _I3D, _RRA_FLOW, _TSN_FLOW, _BNINCEPTION_FLOW)
}
# The recipe of each Table 6 method and stream; other models take TSN's protocol and RRA's recipe.
METHOD_RECIPES = {
    ("rra", "rgb"): "rra-paper",
    ("tsn", "rgb"): "tsn-official",
    ("bninception", "rgb"): "tsn-official-bninception",
    ("i3d", "rgb"): "i3d-mmaction2",
    ("rra", "flow"): "rra-paper-flow",
    ("tsn", "flow"): "tsn-official-flow",
    ("bninception", "flow"): "tsn-official-bninception-flow",
}
DEFAULT_RECIPE = {"rgb": "rra-paper", "flow": "rra-paper-flow"}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise YtfgvcError(f"unknown recipe {name!r}{did_you_mean(name, RECIPES)}", f"known: {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_for(method: str, modality: str = "rgb") -> Recipe:
    return RECIPES[METHOD_RECIPES.get((method, modality), DEFAULT_RECIPE[modality])]
