"""The benchmark's typed config, its presets (``paper``, ``smoke``) and the baseline YAMLs.

A run's config is resolved in this order, later winning: the preset of the method, a
``--config FILE`` (any subset of the keys), then command-line flags (``--set key=value``
for any key, dotted for nested ones: ``--set model.kwargs.dropout=0.5``). The resolved
config is written as ``config.yaml`` beside every run and can be passed back with
``--config`` to repeat it.

``paper`` is the protocol of the paper (section 5.1 and Table 6) with each method's
recipe (:mod:`ytfgvc.benchmark.recipes`: RRA's from the paper, TSN's from the official
TSN code, BN-Inception's and I3D's chosen and sourced); ``smoke`` runs the same code at toy
sizes on a CPU. ``baselines/*.yaml`` hold the
``paper`` preset of each method, named ``{method}_{backbone}_{segments}_{modality}.yaml``
(each is :func:`baseline_yaml` of :func:`baseline_configs`; a test checks they match).

``modality: flow`` (``--modality flow``) trains the method's flow stream: the same sampler
picks kept frames, each bringing its stack of ``flow_stack`` fields (the paper's section 5.1:
"4 randomly sampled RGB frames or flow stacks (with 5 flow fields)"), the backbone's first
convolution takes ``2·flow_stack`` channels (:mod:`ytfgvc.models.modality`), and the recipe
is the method's flow recipe. TSN, RRA and BN-Inception have a flow stream; I3D does not.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ytfgvc.benchmark.optim import OPTIMIZERS, POLICIES
from ytfgvc.benchmark.recipes import RECIPES, recipe_for
from ytfgvc.config import ConfigBase, deep_merge, did_you_mean, read_yaml_mapping
from ytfgvc.data.transforms import SCALES
from ytfgvc.errors import YtfgvcError

CONFIG_SCHEMA = "ytfgvc-benchmark-config-2"
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
COMPILE_CHOICES = ("off", "auto", *COMPILE_MODES)
METHODS = ("bninception", "i3d", "tsn", "rra")  # Table 6's order
FLOW_METHODS = ("bninception", "tsn", "rra")  # the methods with a flow stream
PRESETS = ("paper", "smoke")
MODALITIES = ("rgb", "flow")


@dataclass
class ModelSpec(ConfigBase):
    """``create_model(name, num_classes, **kwargs)``."""

    name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchmarkConfig(ConfigBase):
    """Everything that decides a run's result (and how fast it gets there)."""

    schema: str = CONFIG_SCHEMA
    dataset: str = ""
    root: str = ""
    method: str = (
        ""  # the protocol and the runs/<dataset>/<method>/ folder: rra, tsn, bninception, i3d, or a model name
    )
    preset: str = "paper"
    run: str = ""  # the run's folder name; empty: "<preset>-seed<seed>"
    model: ModelSpec = field(default_factory=ModelSpec)
    num_classes: int = 0  # 0: from the dataset's label list
    modality: str = "rgb"  # rgb, or flow (the stacks of ytfgvc prepare --flow)
    flow_stack: int = 5  # flow fields per stack (flow only; must match the prepared flow)
    # Sampling: "segments" (one frame from each of num_segments segments) or "clip"
    # (num_segments consecutive frames).
    sampling: str = "segments"
    num_segments: int = 4
    input_size: int = 299
    scales: tuple[float, ...] = SCALES
    max_distort: int = 1
    more_fix_crop: bool = True
    flip: bool = True
    test_segments: int = 25  # segments (middle frames), or the clip length for "clip"
    test_crops: int = 10  # 10: 4 corners + centre and their flips; 1: centre
    test_scale: int = 0  # short side before test crops; 0: input_size * 256 // 224
    test_batch: int = 1  # videos per forward pass, per process (does not change the results)
    # The optimisation; the presets take it from the method's recipe (recipes.py), which names its sources.
    recipe: str = "rra-paper"
    optimizer: str = "adam"  # adam or sgd (with momentum)
    momentum: float = 0.9  # sgd only
    param_groups: str = "uniform"  # uniform, or tsn (official TSN's lr and decay multipliers)
    epochs: int = 120
    lr: float = 2e-4
    lr_steps: tuple[int, ...] = (30, 60, 90)  # epochs (0-based) at which lr is multiplied by lr_gamma
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    clip_grad_norm: float = 0.0  # 0: no clipping
    freeze_epochs: int = 30
    allow_scratch: bool = False  # let a paper-preset run start without pretrained weights
    batch_size: int = 256  # clips per optimizer step, over all processes
    micro_batch: int = 0  # clips per forward pass per process; 0: the whole share, halved on GPU OOM
    workers: int | str = "auto"  # loader processes per process; auto: its share of the cores (loader.auto_workers)
    device: str = "auto"
    amp: str = "auto"  # auto (bf16 on GPU), bf16, off
    channels_last: bool = True  # on GPU, and on CPU for frame (2D) models
    # torch.compile: off, auto (the mode measured faster for this method on a GPU: hardware.COMPILE_AUTO),
    # or a mode: default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs (true/false: default/off)
    compile: str = "off"
    find_unused_parameters: bool = False  # DDP: for models with parameters that get no gradient
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.compile, bool):  # older configs, and --compile/--no-compile
            self.compile = "default" if self.compile else "off"
        problems = []

        def need(ok: bool, flag: str, why: str) -> None:
            if not ok:
                problems.append(f"{flag}: {why}")

        positive = ("num_segments", "input_size", "test_segments", "test_batch", "epochs", "batch_size", "flow_stack")
        for name in positive:
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, _flag(name), f"must be a positive integer, got {v!r}")
        for name in ("micro_batch", "freeze_epochs", "test_scale", "max_distort", "num_classes", "seed"):
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 0, _flag(name), f"must be a non-negative integer, got {v!r}")
        ok_workers = self.workers == "auto" or (type(self.workers) is int and self.workers >= 0)
        need(ok_workers, "--workers", f"must be auto or a non-negative integer, got {self.workers!r}")
        need(self.sampling in ("segments", "clip"), "--set sampling", f"segments or clip, got {self.sampling!r}")
        need(self.modality in MODALITIES, "--modality", f"rgb or flow, got {self.modality!r}")
        need(
            self.modality != "flow" or self.sampling == "segments",
            "--modality flow",
            "clip models (I3D) have no flow stream here; train tsn, rra or bninception on flow",
        )
        need(self.test_crops in (1, 10), "--set test_crops", f"1 or 10, got {self.test_crops!r}")
        need(self.amp in ("auto", "bf16", "off"), "--amp", f"auto, bf16 or off, got {self.amp!r}")
        ok_compile = self.compile in COMPILE_CHOICES
        need(ok_compile, "--set compile", f"one of {', '.join(COMPILE_CHOICES)}, got {self.compile!r}")
        ok_device = self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", str(self.device)) is not None
        need(ok_device, "--device", f"auto, cpu, cuda or cuda:N, got {self.device!r}")
        need(self.lr > 0, "--lr", "must be positive")
        need(self.optimizer in OPTIMIZERS, "--set optimizer", f"one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        need(self.param_groups in POLICIES, "--set param_groups", f"one of {', '.join(POLICIES)}")
        need(0 <= self.momentum < 1, "--set momentum", "must be in [0, 1)")
        need(self.weight_decay >= 0 and self.clip_grad_norm >= 0, "--set weight_decay/clip_grad_norm", "must be >= 0")
        steps = list(self.lr_steps)
        ok_steps = all(type(s) is int and s >= 1 for s in steps) and steps == sorted(steps)
        need(ok_steps, "--set lr_steps", f"increasing positive epochs, e.g. [30, 60], got {list(self.lr_steps)!r}")
        need(self.recipe in RECIPES, "--set recipe", f"one of {', '.join(RECIPES)}, got {self.recipe!r}")
        need(0 < self.lr_gamma <= 1, "--set lr_gamma", "must be in (0, 1]")
        need(bool(self.scales) and all(0 < s <= 1 for s in self.scales), "--set scales", "each in (0, 1]")
        ok_micro = not self.micro_batch or (self.batch_size % self.micro_batch == 0)
        need(ok_micro, "--micro-batch", f"must divide --batch-size {self.batch_size}")
        if problems:
            raise YtfgvcError("bad benchmark config: " + "; ".join(problems))

    @property
    def run_name(self) -> str:
        """``<preset>-seed<seed>``; a flow run ``<preset>-flow-seed<seed>`` (beside its RGB run)."""
        stream = "-flow" if self.modality == "flow" else ""
        return self.run or f"{self.preset}{stream}-seed{self.seed}"

    def model_kwargs(self) -> dict[str, Any]:
        """The builder's keyword arguments, ``num_segments`` (and for flow ``modality``, ``flow_stack``) filled in."""
        flow = {"modality": "flow", "flow_stack": self.flow_stack} if self.modality == "flow" else {}
        return {"num_segments": self.num_segments, **flow, **self.model.kwargs}

    def baseline_name(self) -> str:
        backbone = str(self.model.kwargs.get("backbone", "default")).replace("_", "").replace(":", "-")
        return f"{self.method}_{backbone}_{self.num_segments}_{self.modality}"


# Config keys with a flag of their own on `ytfgvc benchmark`; the others are set with --set.
_FLAGS = {"micro_batch", "batch_size", "input_size", "epochs", "workers", "seed", "lr", "allow_scratch", "modality"}


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}" if name in _FLAGS else f"--set {name}"


def _model(name: str, backbone: str) -> dict[str, Any]:
    return {"name": name, "kwargs": {"backbone": backbone, "pretrained": True, "weights": None}}


_PAPER_FRAMES = {
    "sampling": "segments",
    "num_segments": 4,
    "input_size": 299,
    "test_segments": 25,
    "test_crops": 10,
    "test_batch": 2,
}
# The data protocol of each method (the paper's section 5.1 and Table 6 paragraph) and its
# starting weights: the TSN authors' Inception-V3 for TSN and RRA (the paper's), their
# BN-Inception, torchvision's ImageNet ResNet-50 inflated for I3D. The optimisation comes
# from the method's recipe (recipes.py).
_PAPER: dict[str, dict[str, Any]] = {
    "rra": {"model": _model("rra", "tsn_inception_v3"), **_PAPER_FRAMES},
    "tsn": {"model": _model("tsn", "tsn_inception_v3"), **_PAPER_FRAMES},
    "bninception": {
        "model": _model("bninception", "bninception"),
        **{"sampling": "segments", "num_segments": 1, "input_size": 224, "test_segments": 1, "test_crops": 1},
        "test_batch": 256,  # one frame per video: small forwards would leave the GPU waiting on launches
    },
    "i3d": {
        "model": _model("i3d", "resnet50"),
        **{"sampling": "clip", "num_segments": 32, "input_size": 224, "test_segments": 32, "test_crops": 1},
        "test_batch": 32,
    },
}
for _spec in _PAPER.values():
    # The mode measured faster for the method on a GPU (hardware.COMPILE_AUTO), else eager: eager everywhere
    # until H100 measurements fill that table.
    _spec["compile"] = "auto"
# The same code at toy sizes: a few minutes for all four methods on 2 CPU cores. The
# recipe's optimizer, parameter groups, clipping and dropout stay; its sizes do not.
_SMOKE_COMMON = {
    "epochs": 2,
    "lr": 1e-3,
    "lr_steps": [1],
    "batch_size": 8,
    "workers": 1,
    "input_size": 96,
    "test_batch": 4,
    "compile": "off",
}
# A flow stream: the data of section 5.1 ("flow stacks (with 5 flow fields)") and TSN's flow
# augmentation, GroupMultiScaleCrop(input_size, [1, .875, .75]) (tsn-pytorch models.py
# get_augmentation, Flow; RGB uses .66 too), the paper's "same multi-scale cropping … as TSN".
_FLOW = {"modality": "flow", "flow_stack": 5, "scales": [1.0, 0.875, 0.75]}
_SMOKE: dict[str, dict[str, Any]] = {
    "rra": {"num_segments": 3, "test_segments": 3},
    "tsn": {"num_segments": 3, "test_segments": 3},
    "bninception": {},
    "i3d": {"num_segments": 4, "test_segments": 4, "input_size": 64},  # 3D convolutions cost ~T times more
}


def preset_dict(method: str, preset: str, modality: str = "rgb") -> dict[str, Any]:
    """The preset's values for ``method`` and its ``modality`` stream (a model outside the four
    methods gets TSN's protocol, RRA's recipe)."""
    if preset not in PRESETS:
        raise YtfgvcError(f"unknown preset {preset!r}{did_you_mean(preset, PRESETS)}", f"use {' or '.join(PRESETS)}")
    if modality not in MODALITIES:
        raise YtfgvcError(f"--modality must be rgb or flow, got {modality!r}")
    known = method in _PAPER
    base = copy.deepcopy(_PAPER[method] if known else {"model": {"name": method, "kwargs": {}}, **_PAPER_FRAMES})
    if modality == "flow":
        base.update(copy.deepcopy(_FLOW))
    recipe = recipe_for(method, modality)
    base = deep_merge(base, {"recipe": recipe.name, **recipe.config()})
    base.update(method=method, preset=preset)
    if preset == "smoke":
        base.update(copy.deepcopy(_SMOKE_COMMON))
        base.update(copy.deepcopy(_SMOKE.get(method, _SMOKE["tsn"])))
        base["freeze_epochs"] = min(base["freeze_epochs"], 1)  # a frozen first epoch where the recipe has one
        if known:
            base["model"]["kwargs"].update(backbone="resnet18", pretrained=False)
    return base


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise YtfgvcError(f"--set {item!r}: expected KEY=VALUE", "e.g. --set model.kwargs.dropout=0.5")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as e:
            raise YtfgvcError(f"--set {item!r}: {e}") from None
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def upgrade_config_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A config dict of an older schema or version in today's keys.

    ``ytfgvc-benchmark-config-1``'s ``lr_step`` becomes ``lr_steps``; ``decode`` (where JPEGs
    were decoded: the loader workers, or nvjpeg on the GPU, since removed) is dropped, as
    the workers always decode now; a config from before the flow stream (no ``flow_stack``)
    gets the default, so a run started then resumes.
    """
    data = dict(data)
    data.pop("decode", None)
    data.setdefault("flow_stack", BenchmarkConfig.flow_stack)
    if "lr_step" in data:
        step = data.pop("lr_step")
        epochs = data.get("epochs", 120)
        if type(step) is int and step >= 1 and type(epochs) is int:
            data["lr_steps"] = list(range(step, epochs, step))
        else:
            data["lr_steps"] = step  # let validation name the bad value
    if data.get("schema") == "ytfgvc-benchmark-config-1":
        data["schema"] = CONFIG_SCHEMA
    return data


def load_config(
    method: str | None = None,
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> BenchmarkConfig:
    """Resolve preset < ``config_file`` < ``overrides`` into a :class:`BenchmarkConfig`."""
    from_file: dict[str, Any] = {}
    if config_file is not None:
        from_file = read_yaml_mapping(config_file)
    overrides = dict(overrides or {})
    method = method or overrides.get("method") or from_file.get("method")
    if not method:
        raise YtfgvcError("no method given", f"pass --model ({', '.join(METHODS)}) or a --config naming one")
    preset = preset or overrides.get("preset") or from_file.get("preset") or "paper"
    modality = overrides.get("modality") or from_file.get("modality") or "rgb"
    base = preset_dict(method, preset, modality)
    if "lr_step" in from_file or "lr_step" in overrides:  # an older config: its step replaces the preset's steps
        base.pop("lr_steps")
    merged = upgrade_config_dict(deep_merge(deep_merge(base, from_file), overrides))
    merged.update(method=method, preset=preset)
    where = str(config_file) if config_file else "config"
    return BenchmarkConfig.from_dict(merged, where=where)


def baseline_configs() -> dict[str, BenchmarkConfig]:
    """The ``paper`` preset of each method and stream, by baseline file name (without ``.yaml``)."""
    cfgs = [load_config(m, "paper") for m in METHODS]
    cfgs += [load_config(m, "paper", overrides={"modality": "flow"}) for m in FLOW_METHODS]
    return {c.baseline_name(): c for c in cfgs}


def baseline_yaml(cfg: BenchmarkConfig) -> str:
    d = cfg.to_dict()
    for k in ("dataset", "root", "run"):
        d.pop(k)
    use = f"ytfgvc benchmark DATASET --config baselines/{cfg.baseline_name()}.yaml"
    recipe = RECIPES[cfg.recipe]
    stream = ", flow stream" if cfg.modality == "flow" else ""
    head = (
        f"# {cfg.method}{stream}: the paper's protocol ({use})\n"
        f"# recipe {recipe.name}: {recipe.title}; the source of every value is in ytfgvc/benchmark/recipes.py\n"
    )
    return head + yaml.safe_dump(d, sort_keys=False)
