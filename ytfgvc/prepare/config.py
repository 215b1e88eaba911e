"""``PrepareConfig``: the settings of ``ytfgvc prepare`` (validated here, naming the flag)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ytfgvc.config import ConfigBase
from ytfgvc.datasets import DatasetCard
from ytfgvc.distributed import ClusterConfig
from ytfgvc.errors import YtfgvcError
from ytfgvc.prepare.flow import FLOW_FORMATS
from ytfgvc.store import STORES


@dataclass(frozen=True)
class VideoSettings:
    """What a worker needs to prepare one video: it crosses process boundaries as it is (pickled).

    The card's rate is filled in; each value is recorded in the video's ``meta.json``.
    """

    sample_fps: float
    short_side: int
    jpeg_quality: int
    flow_backend: str
    flow_format: str
    flow_stack: int
    flow_params: dict[str, Any] = field(default_factory=dict)


# The settings a finished folder must share with the current run to count as done.
FRAME_KEYS = ("sample_fps", "short_side", "jpeg_quality")
FLOW_KEYS = ("flow_backend", "flow_stack", "flow_format")


@dataclass
class PrepareConfig(ConfigBase):
    """Parameters of ``ytfgvc prepare``.

    Attributes:
        short_side: frames are resized so their shorter side is this (never upscaled).
        jpeg_quality: OpenCV JPEG quality of the RGB frames (flow uses its own, fixed).
        sample_fps: frames kept per second; None takes the dataset card's ``sample_fps``.
        flow: also compute optical flow stacks.
        flow_backend: registered flow backend (``opencv``, ``torch``).
        flow_format: ``jpg`` (clamped to +-20 px, 8 bit) or ``npy`` (float16, lossless).
        flow_stack: fields per stack, anchored at each kept frame (the paper uses 5).
        flow_params: backend parameters by the backend's own names (e.g. ``warps``).
        jobs: worker processes; 0 means one per CPU core. With ``--executor ray``: the most
            videos in progress on the whole cluster (0: as many as its CPUs run).
        force: redo videos already prepared (also those made with other settings).
        limit: prepare at most this many videos in this run (None: all).
        store: ``folder`` (one file per frame and flow field) or ``packed`` (one uncompressed ZIP
            per video for its frames and one for its flow; :mod:`ytfgvc.store`) for the videos
            this run writes. Videos already prepared in the other store are read as they are.
        repack: convert the videos prepared in the folder store to the packed store, video by
            video (nothing is decoded; :mod:`ytfgvc.store.repack`).
        cluster: where the work runs (``--executor``, ``--ray-address``, ``--ray-shared-root``).
    """

    short_side: int = 256
    jpeg_quality: int = 95
    sample_fps: float | None = None
    flow: bool = False
    flow_backend: str = "opencv"
    flow_format: str = "jpg"
    flow_stack: int = 5
    flow_params: dict[str, Any] = field(default_factory=dict)
    jobs: int = 0
    force: bool = False
    limit: int | None = None
    store: str = "folder"
    repack: bool = False
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.short_side, int) or not 16 <= self.short_side <= 4096:
            raise YtfgvcError(f"--short-side must be an integer in 16..4096, got {self.short_side!r}")
        if not isinstance(self.jpeg_quality, int) or not 1 <= self.jpeg_quality <= 100:
            raise YtfgvcError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality!r}")
        if self.sample_fps is not None and not 0 < self.sample_fps <= 120:
            raise YtfgvcError(f"--sample-fps must be in (0, 120], got {self.sample_fps!r}")
        if self.flow_format not in FLOW_FORMATS:
            raise YtfgvcError(f"--flow-format must be one of {', '.join(FLOW_FORMATS)}, got {self.flow_format!r}")
        if not isinstance(self.flow_stack, int) or not 1 <= self.flow_stack <= 64:
            raise YtfgvcError(f"--flow-stack must be an integer in 1..64, got {self.flow_stack!r}")
        if not isinstance(self.jobs, int) or self.jobs < 0:
            raise YtfgvcError(f"--jobs must be 0 (one per core) or a positive integer, got {self.jobs!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise YtfgvcError(f"--limit must be a positive integer, got {self.limit!r}")
        if self.store not in STORES:
            raise YtfgvcError(f"--store must be one of {', '.join(STORES)}, got {self.store!r}")
        if self.repack and (self.flow or self.force or self.store != "packed"):
            raise YtfgvcError(
                "--repack converts what is prepared and makes nothing new",
                "run it alone (--jobs and --limit allowed), before or after a run with --flow or --force",
            )

    def video_settings(self, card: DatasetCard) -> VideoSettings:
        """What every worker needs, with the card's rate filled in (recorded in ``meta.json``)."""
        return VideoSettings(
            sample_fps=float(self.sample_fps or card.sample_fps),
            short_side=self.short_side,
            jpeg_quality=self.jpeg_quality,
            flow_backend=self.flow_backend,
            flow_format=self.flow_format,
            flow_stack=self.flow_stack,
            flow_params=dict(self.flow_params),
        )
