"""Training MMAction2 on ytfgvc's flow stacks: the one transform it lacks, and the config that uses it.

MMAction2 (open-mmlab/mmaction2 at 4d6c934) reads flow as TSN's dense layout: file ``i``
holds the flow from frame ``i`` to ``i + 1`` of the full-rate video, and a stack is any
``clip_len`` consecutive files from an offset ``SampleFrames`` draws
(``mmaction/datasets/transforms/loading.py``: ``frame_inds = clip_offsets[:, None] +
np.arange(clip_len)[None, :] * frame_interval``, then ``+ start_index``; ``RawFrameDecode``
reads ``filename_tmpl.format('x', idx)`` and ``.format('y', idx)`` for each index and
stacks them). ytfgvc keeps only the stacks of the kept frames: stack ``k`` (1-based) is files
``(k-1)·L + 1 … k·L`` (:mod:`ytfgvc.prepare.flowstack`), so an offset that is not a multiple of
``L`` would mix two stacks, and no ``SampleFrames`` setting avoids that.

The recipe: sample *stacks* with MMAction2's own ``SampleFrames`` (``clip_len=1``: one index
per segment, TSN's segment rule, over ``total_frames`` = the number of stacks, which
``lists/flow_train.txt`` gives), then :class:`FlowStackFields` turns each stack number into
its ``L`` file numbers, and ``RawFrameDecode`` reads them::

    custom_imports = dict(imports=["ytfgvc.prepare.mmaction"], allow_failed_imports=False)
    L = 5  # --flow-stack
    train_pipeline = [
        dict(type="SampleFrames", clip_len=1, frame_interval=1, num_clips=4),
        dict(type="FlowStackFields", stack=L),
        dict(type="RawFrameDecode"),
        dict(type="MultiScaleCrop", input_size=224, scales=(1, 0.875, 0.75)),
        dict(type="Resize", scale=(224, 224), keep_ratio=False),
        dict(type="FormatShape", input_format="NCHW"),  # (clips, 2·L, H, W): x1, y1, …, xL, yL
        dict(type="PackActionInputs"),
    ]
    train_dataloader = dict(dataset=dict(
        type="RawframeDataset", ann_file="<root>/<dataset>/lists/flow_train.txt",
        data_prefix=dict(img="<root>/<dataset>"), filename_tmpl="flow_{}_{:05d}.jpg",
        modality="Flow", start_index=1, pipeline=train_pipeline))
    # test: SampleFrames(clip_len=1, frame_interval=1, num_clips=25, test_mode=True), FlowStackFields, …

with the backbone's ``in_channels=2 * L`` and the data preprocessor's ``mean``/``std`` for
``2 * L`` channels, as MMAction2's own TSN flow config does
(``configs/recognition/tsn/tsn_imagenet-pretrained-r50_8xb32_5x1x3-110e_kinetics400-flow.py``).
Leave out MMAction2's ``Flip``: at that commit its ``_flip_imgs`` inverts every other image
of the list (written for separate x and y images), but ``RawFrameDecode`` now gives one
``(H, W, 2)`` image per field, so it would invert both components of every other field.
MMAction2 reads files: for the packed store, extract the archives first
(``unzip -q flow/<id>.zip -d flow/<id>``). ``tests/test_mmaction.py`` replays MMAction2's
index arithmetic on these lists and files.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class FlowStackFields:
    """MMAction2 transform: stack numbers (``frame_inds`` from ``SampleFrames(clip_len=1)``) -> their field files.

    Each index ``k`` becomes ``(k - s)·L + s … (k - s)·L + s + L - 1`` where ``s`` is the
    dataset's ``start_index`` (1: ytfgvc's files start at 1); ``clip_len`` becomes ``L`` so
    that ``FormatShape('NCHW')`` stacks the fields of one stack as ``2·L`` channels.
    """

    def __init__(self, stack: int = 5):
        if not isinstance(stack, int) or stack < 1:
            raise ValueError(f"stack must be a positive integer, got {stack!r}")
        self.stack = stack

    def transform(self, results: dict[str, Any]) -> dict[str, Any]:
        start = results.get("start_index", 1)
        stacks = np.asarray(results["frame_inds"]).reshape(-1)
        fields = (stacks[:, None] - start) * self.stack + start + np.arange(self.stack)[None, :]
        results["frame_inds"] = fields.reshape(-1).astype(np.int32)
        results["clip_len"] = self.stack
        return results

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        return self.transform(results)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(stack={self.stack})"


def _register() -> None:
    """Register :class:`FlowStackFields` with MMAction2's transforms when MMAction2 is installed."""
    try:
        from mmaction.registry import TRANSFORMS
    except ImportError:
        return
    TRANSFORMS.register_module(module=FlowStackFields, force=True)


_register()
