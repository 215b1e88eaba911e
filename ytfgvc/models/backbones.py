"""2D backbones behind one registry: a frame in, a feature map out.

    >>> from ytfgvc.models.backbones import create_backbone, list_backbones
    >>> net = create_backbone("inception_v3", pretrained=True)   # torchvision's ImageNet weights
    >>> net(torch.randn(2, 3, 299, 299)).shape                    # (2, 2048, 8, 8)

Every backbone maps (N, 3, H, W) to the feature map before global pooling (N, C, h, w),
says its ``out_channels``, the input normalisation its weights expect (``input_mean`` and
``input_std``, RGB on the 0–1 scale), the crop side it was trained at (``input_size``) and
where its weights came from (``source``: ``torchvision:<name>.<weights>``, ``timm:<name>``,
``tsn:<file name>``, ``file:<path>`` or ``from scratch``; ``message`` says why in a
sentence; ``weights_sha256``: the sha256 of the weights file read, or None).

Names: ``inception_v3`` (torchvision's Inception-V3), ``tsn_inception_v3`` (the TSN authors'
Inception-V3, :mod:`ytfgvc.models.tsn_inception_v3`: the one the paper initialises TSN and
RRA from), ``resnet18``, ``resnet50``, ``resnet152`` (torchvision), ``bninception``
(:mod:`ytfgvc.models.bn_inception`), ``tiny`` (a 3-layer net for tests and smoke runs), and
``timm:<name>`` for any timm 2D model when timm is installed (``pip install 'ytfgvc[timm]'``).

Flow: ``modality="flow"`` gives the backbone ``2·flow_stack`` input channels after its ImageNet
weights are loaded, initialised as TSN does, and flow's normalisation
(:mod:`ytfgvc.models.modality`).

Weights: ``weights=FILE`` loads a local state dict (see :mod:`ytfgvc.models.weights`);
otherwise ``pretrained=True`` fetches the ImageNet weights: from torchvision or timm, or, for
``tsn_inception_v3`` and ``bninception``, the TSN authors' files (:data:`TSN_INCEPTION_V3_URL`,
:data:`BNINCEPTION_URL`) through ``torch.hub`` (each from its cache when offline). When that
fails the backbone is built from scratch and says so in ``source`` and in a logged warning;
nothing fails silently.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ytfgvc.errors import YtfgvcError
from ytfgvc.models import bn_inception, tsn_inception_v3
from ytfgvc.models.weights import load_state_into, read_state_dict, unwrap_state_dict

log = logging.getLogger("ytfgvc.models")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FROM_SCRATCH = "from scratch"
# The TSN authors' ImageNet weights: the weight_url defaults of bninception/pytorch_load.py in the
# tsn-pytorch branch of github.com/yjxiong/tensorflow-model-zoo.torch (commit 9788c67).
TSN_INCEPTION_V3_URL = tsn_inception_v3.WEIGHTS_URL
BNINCEPTION_URL = bn_inception.WEIGHTS_URL


class Backbone(nn.Module):
    """A 2D trunk ``body`` plus what a model needs to know about it."""

    def __init__(
        self,
        name: str,
        body: nn.Module,
        features: Callable[[nn.Module, torch.Tensor], torch.Tensor],
        out_channels: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        input_size: int = 224,
    ):
        super().__init__()
        self.name = name
        self.body = body
        self._features = features
        self.out_channels = out_channels
        self.input_mean, self.input_std = tuple(mean), tuple(std)
        self.input_size = input_size
        self.in_channels = 3
        self.source = FROM_SCRATCH
        self.message = f"{name}: built from scratch (no pretrained weights asked for)"
        self.weights_sha256: str | None = None  # of the weights file read (a local file or torch.hub's cached copy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised frames (or (N, 2·L, H, W) flow stacks) → (N, C, h, w) feature map."""
        return self._features(self.body, x)

    def to_flow(self, flow_stack: int) -> None:
        """Take ``2·flow_stack`` flow channels instead of RGB (TSN's cross-modality initialisation)."""
        from ytfgvc.models.modality import cross_modality, flow_normalisation

        cross_modality(self.body, 2 * flow_stack)
        self.in_channels = 2 * flow_stack
        self.input_mean, self.input_std = flow_normalisation(self.name, self.input_std)
        self.message += f"; first convolution adapted to {2 * flow_stack} flow channels (TSN's cross-modality init)"

    @property
    def pretrained(self) -> bool:
        return self.source != FROM_SCRATCH


@dataclass(frozen=True)
class _Spec:
    build: Callable[[], nn.Module]  # the architecture, randomly initialised, without its head
    features: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    out_channels: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_size: int = 224
    torchvision_weights: str | None = None  # e.g. "IMAGENET1K_V1"
    url: str | None = None  # a state dict to fetch through torch.hub (the TSN authors' files)
    convert: Callable[[dict], dict] | None = None  # file names → body names
    doc: str = ""


def _resnet_build(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        net = torchvision.models.get_model(name, weights=None)
        net.fc = nn.Identity()
        return net

    return build


def _resnet_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def _inception_build() -> nn.Module:
    import torchvision

    # transform_input is off: input_mean/std of 0.5 give the (x - 0.5) / 0.5 input its weights expect.
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, transform_input=False, init_weights=True)
    net.fc = nn.Identity()
    return net


_INCEPTION_LAYERS = [
    *("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2"),
    *("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"),
    *("Mixed_7a", "Mixed_7b", "Mixed_7c"),
]


def _inception_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    for name in _INCEPTION_LAYERS:
        x = getattr(net, name)(x)
    return x


def _tiny_build() -> nn.Module:
    def unit(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    return nn.Sequential(unit(3, 16), unit(16, 32), unit(32, 64))


_TV = "IMAGENET1K_V1"  # torchvision's first ImageNet weights: the PyTorch models of 2018
_SPECS: dict[str, _Spec] = {
    "inception_v3": _Spec(
        _inception_build,
        _inception_features,
        out_channels=2048,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=299,
        torchvision_weights=_TV,
        doc="Inception-V3 to Mixed_7c (2048 ch, 8x8 at 299 px; min 75 px)",
    ),
    "tsn_inception_v3": _Spec(
        tsn_inception_v3.TSNInceptionV3,
        lambda net, x: net(x),
        out_channels=2048,
        mean=tsn_inception_v3.INPUT_MEAN,
        std=tsn_inception_v3.INPUT_STD,
        input_size=299,
        url=TSN_INCEPTION_V3_URL,
        doc="the TSN authors' Inception-V3 (tf_model_zoo) to mixed_10_join (2048 ch, 8x8 at 299 px); their weights",
    ),
    **{
        name: _Spec(
            _resnet_build(name),
            _resnet_features,
            out_channels=channels,
            torchvision_weights=_TV,
            doc=f"{name.replace('resnet', 'ResNet-')} to layer4 ({channels} ch, 1/32)",
        )
        for name, channels in (("resnet18", 512), ("resnet50", 2048), ("resnet152", 2048))
    },
    "bninception": _Spec(
        bn_inception.BNInception,
        lambda net, x: net.features(x),
        out_channels=1024,
        mean=bn_inception.INPUT_MEAN,
        std=bn_inception.INPUT_STD,
        convert=bn_inception.convert_flat_state_dict,
        url=BNINCEPTION_URL,
        doc="BN-Inception (Ioffe & Szegedy 2015) to inception_5b (1024 ch, 1/32); the TSN authors' weights",
    ),
    "tiny": _Spec(
        _tiny_build,
        lambda net, x: net(x),
        out_channels=64,
        input_size=64,
        doc="3 conv-BN-ReLU layers (64 ch, 1/8), for tests",
    ),
}


def list_backbones() -> dict[str, str]:
    """Backbone names and one line on each (``timm:<name>`` takes any timm model)."""
    names = {name: spec.doc for name, spec in _SPECS.items()}
    names["timm:<name>"] = "any timm 2D model (pip install timm), its feature map before pooling"
    return names


def create_backbone(
    name: str,
    pretrained: bool = False,
    weights: str | Path | None = None,
    modality: str = "rgb",
    flow_stack: int = 5,
) -> Backbone:
    """Build backbone ``name``; ``weights`` (a local RGB state dict) wins over ``pretrained``.

    ``modality="flow"``: the RGB network (with its weights) then takes ``2·flow_stack`` flow
    channels (:meth:`Backbone.to_flow`).

    Raises:
        YtfgvcError: unknown name ("did you mean"), unreadable or ill-fitting weights file, unknown modality.
    """
    from ytfgvc.models.modality import MODALITIES

    if modality not in MODALITIES:
        raise YtfgvcError(f"unknown modality {modality!r}", f"use one of {', '.join(MODALITIES)}")
    if not isinstance(flow_stack, int) or flow_stack < 1:
        raise YtfgvcError(f"flow_stack must be a positive integer, got {flow_stack!r}")
    net = _create_rgb(name, pretrained, weights)
    if modality == "flow":
        net.to_flow(flow_stack)
    return net


def _create_rgb(name: str, pretrained: bool, weights: str | Path | None) -> Backbone:
    if name.startswith("timm:"):
        return _create_timm(name[len("timm:") :], pretrained, weights)
    if name not in _SPECS:
        close = difflib.get_close_matches(name, list(_SPECS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise YtfgvcError(
            f"unknown backbone {name!r}{hint}", f"known: {', '.join(_SPECS)}, or timm:<name> with timm installed"
        )
    spec = _SPECS[name]
    net = Backbone(name, spec.build(), spec.features, spec.out_channels, spec.mean, spec.std, spec.input_size)
    if weights is not None:
        _load_file(net, Path(weights), spec.convert)
    elif pretrained and spec.url is not None:
        _load_hub(net, spec)
    elif pretrained:
        _load_torchvision(net, name, spec)
    return net


def file_sha256(path: Path) -> str:
    """The sha256 of a file, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _load_file(net: Backbone, path: Path, convert: Callable[[dict], dict] | None = None) -> None:
    state = read_state_dict(path)
    if convert is not None:
        state = convert(state)
    report = load_state_into(net.body, state, f"file:{path}")
    net.source = f"file:{path}"
    net.weights_sha256 = file_sha256(path)
    net.message = f"{net.name}: weights from {path} (sha256 {net.weights_sha256}): {report.describe()}"
    log.info(net.message)


def _hub_file(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps the file of ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _cached_sha256(url: str) -> str | None:
    path = _hub_file(url)
    return file_sha256(path) if path.is_file() else None


def _load_hub(net: Backbone, spec: _Spec) -> None:
    """The TSN authors' weights of ``spec.url``, downloaded once into torch.hub's cache."""
    url = spec.url
    file_name = url.rsplit("/", 1)[-1]
    try:
        # check_hash: torch.hub compares the hex digits in the file name with the file's sha256.
        obj = torch.hub.load_state_dict_from_url(url, map_location="cpu", check_hash=True, weights_only=True)
    except Exception as e:  # noqa: BLE001 - no network, dead link, bad hash: all mean "not available here"
        _from_scratch(
            net,
            f"could not fetch the TSN authors' weights {file_name} from {url} ({_reason(e)})",
            f"download {file_name} and pass --weights FILE (weights=FILE)",
        )
        return
    state = unwrap_state_dict(obj, f"{file_name} from {url}")
    if spec.convert is not None:
        state = spec.convert(state)
    tag = f"tsn:{file_name}"
    report = load_state_into(net.body, state, tag)
    net.source, net.weights_sha256 = tag, _cached_sha256(url)
    net.message = f"{net.name}: weights {tag} ({url}, sha256 {net.weights_sha256}): {report.describe()}"
    log.info(net.message)


def _fetch_torchvision_state(name: str, weights_name: str) -> dict[str, torch.Tensor]:
    """Download (or read from torch's cache) torchvision's weights; tests replace this."""
    import torchvision

    return torchvision.models.get_model_weights(name)[weights_name].get_state_dict(progress=True)


def _load_torchvision(net: Backbone, name: str, spec: _Spec) -> None:
    if spec.torchvision_weights is None:
        _from_scratch(
            net, f"no downloadable weights for {name!r}", "pass weights=FILE (--weights) with a local state dict"
        )
        return
    tag = f"torchvision:{name}.{spec.torchvision_weights}"
    try:
        state = _fetch_torchvision_state(name, spec.torchvision_weights)
    except Exception as e:  # noqa: BLE001 - no network, proxy, disk: all mean "not available here"
        _from_scratch(net, f"could not fetch {tag} ({_reason(e)})", "pass --weights FILE with a local copy")
        return
    report = load_state_into(net.body, state, tag)
    net.source, net.weights_sha256 = tag, _cached_sha256(_torchvision_url(name, spec.torchvision_weights))
    net.message = f"{name}: weights {tag}: {report.describe()}"
    log.info(net.message)


def _torchvision_url(name: str, weights_name: str) -> str:
    import torchvision

    return torchvision.models.get_model_weights(name)[weights_name].url


def _from_scratch(net: Backbone, why: str, hint: str) -> None:
    net.source = FROM_SCRATCH
    net.message = f"{net.name}: {why}; training from scratch — {hint}"
    log.warning(net.message)


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


# --- timm -------------------------------------------------------------------------------------


def _timm():
    try:
        import timm
    except ImportError:
        raise YtfgvcError("timm backbones need timm", "pip install 'ytfgvc[timm]' (or pip install timm)") from None
    return timm


def _timm_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    y = net.forward_features(x)
    if y.dim() == 3:  # tokens (N, L, C) of a vision transformer: drop class/register tokens, back to a grid
        y = y[:, getattr(net, "num_prefix_tokens", 0) :]
        side = int(round(y.shape[1] ** 0.5))
        if side * side != y.shape[1]:
            raise YtfgvcError(f"cannot arrange {y.shape[1]} tokens of {type(net).__name__} in a square grid")
        return y.transpose(1, 2).reshape(y.shape[0], y.shape[2], side, side)
    if y.dim() == 4 and y.shape[1] != net.num_features and y.shape[-1] == net.num_features:
        y = y.permute(0, 3, 1, 2)  # channels-last models (Swin, …)
    return y


def _create_timm(model_name: str, pretrained: bool, weights: str | Path | None) -> Backbone:
    timm = _timm()
    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=1)
        hint = f" (did you mean 'timm:{close[0]}'?)" if close else ""
        raise YtfgvcError(f"unknown timm model {model_name!r}{hint}", "see timm.list_models()")
    kw = {"num_classes": 0, "global_pool": ""}
    body, why = None, ""
    if pretrained and weights is None:
        try:
            body = timm.create_model(model_name, pretrained=True, **kw)
        except Exception as e:  # noqa: BLE001 - offline hub, missing weights: both mean "not available"
            why = f"could not fetch timm weights for {model_name} ({_reason(e)})"
    pretrained_ok = body is not None
    if body is None:
        body = timm.create_model(model_name, pretrained=False, **kw)
    cfg = getattr(body, "pretrained_cfg", {}) or {}
    name = f"timm:{model_name}"
    size = int((cfg.get("input_size") or (3, 224, 224))[-1])
    mean, std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
    net = Backbone(name, body, _timm_features, body.num_features, mean, std, size)
    if weights is not None:
        _load_file(net, Path(weights))
    elif pretrained_ok:
        tag = cfg.get("hf_hub_id") or cfg.get("tag") or model_name
        net.source, net.message = f"timm:{tag}", f"{name}: timm pretrained weights ({tag})"
        log.info(net.message)
    elif pretrained:
        _from_scratch(net, why, "pass --weights FILE with a local copy (HF_HUB_OFFLINE=1 skips the retries)")
    return net
