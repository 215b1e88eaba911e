"""``ytfgvc prepare``: frames at the card's rate, rawframe lists, and TV-L1 optical flow.

    >>> from ytfgvc.prepare import PrepareConfig, prepare_dataset
    >>> result = prepare_dataset("./ytfgvc-data", "birds", PrepareConfig(flow=True, jobs=8))
    >>> print(result.summary())

Modules: :mod:`~ytfgvc.prepare.resample` (which frames, what size, which way up),
:mod:`~ytfgvc.prepare.video` (one video, decoded once; ``meta.json``),
:mod:`~ytfgvc.prepare.flow` (the flow backend registry and the on-disk encoding),
:mod:`~ytfgvc.prepare.flowstack` (flow stacks and their file numbering),
:mod:`~ytfgvc.prepare.lists` (rawframe lists), :mod:`~ytfgvc.prepare.batch` (the dataset),
:mod:`~ytfgvc.prepare.repack` (``--repack``: the folder store to the packed store). Where the
files go, folder or archive: :mod:`ytfgvc.store`.
"""

from ytfgvc.prepare.batch import NoVideosError, PrepareResult, prepare_dataset
from ytfgvc.prepare.config import PrepareConfig
from ytfgvc.prepare.flow import (
    FlowBackend,
    decode_flow,
    encode_flow,
    get_flow_backend,
    list_flow_backends,
    read_flow,
    register_flow_backend,
)
from ytfgvc.prepare.lists import write_lists

__all__ = [
    "FlowBackend",
    "NoVideosError",
    "PrepareConfig",
    "PrepareResult",
    "decode_flow",
    "encode_flow",
    "get_flow_backend",
    "list_flow_backends",
    "prepare_dataset",
    "read_flow",
    "register_flow_backend",
    "write_lists",
]
