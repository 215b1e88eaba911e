"""Flow input for a 2D backbone: TSN's cross-modality initialisation and flow normalisation.

The paper trains its flow networks with the RGB architecture "except for changing the first
convolution layer to adapt to stacked optical flows" (section 3). How, is TSN's
(yjxiong/tsn-pytorch ``models.py``, ``TSN._construct_flow_model``, commit 2f0468e): the first
``Conv2d`` of the ImageNet network gets ``2·L`` input channels (``new_length`` L = 5 for
flow), its kernel the RGB kernel averaged over the colour channels and repeated over the
flow channels (``weight.mean(dim=1, keepdim=True).expand(…, 2·L, …)``), its bias kept.

Normalisation of flow input (the 8-bit codes, 128 = still; ``TSN._prepare_base_model``):

* ResNet/VGG: mean ``[0.5]``, std ``[np.mean(input_std)]`` of the RGB std, on the 0–1 scale;
* BNInception: mean ``[128]``, std ``[1]`` on the 0–255 scale (``ToTorchFormatTensor(div=False)``);
* Inception (``tf_model_zoo``'s, as the paper's Inception-V3): no flow branch, so the RGB
  ``[0.5]``/``[0.5]`` stand.

Here: ``bninception`` takes TSN's BNInception rule, ``inception_v3`` and ``tsn_inception_v3``
its Inception rule, every other backbone (ResNets, ``tiny``, ``timm:``) its ResNet rule —
for ``tiny`` and ``timm:`` a **choice** (TSN has neither).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MODALITIES = ("rgb", "flow")
_BNINCEPTION = ((128 / 255,), (1 / 255,))  # TSN's [128] / [1] on 0-255, on the 0-1 scale
_INCEPTION = ((0.5,), (0.5,))


def flow_normalisation(backbone: str, rgb_std: tuple[float, ...]) -> tuple[tuple[float], tuple[float]]:
    """``(mean, std)`` of flow input for ``backbone`` (one value for every channel; see the module docstring)."""
    if backbone == "bninception":
        return _BNINCEPTION
    if backbone in ("inception_v3", "tsn_inception_v3"):
        return _INCEPTION
    return (0.5,), (float(np.mean(rgb_std)),)


def first_conv(body: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """The first ``Conv2d`` in definition order (TSN's rule), with its parent module and attribute name."""
    for name, module in body.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_name, _, attr = name.rpartition(".")
            return body.get_submodule(parent_name) if parent_name else body, attr, module
    raise ValueError(f"{type(body).__name__} has no Conv2d to take flow input")


def cross_modality(body: nn.Module, in_channels: int) -> nn.Conv2d:
    """Replace ``body``'s first convolution by one of ``in_channels`` inputs initialised as TSN does; returns it."""
    parent, attr, conv = first_conv(body)
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean.expand(-1, in_channels, -1, -1))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    new.to(device=conv.weight.device, dtype=conv.weight.dtype)
    setattr(parent, attr, new)
    return new
