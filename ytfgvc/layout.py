"""The only module that knows where things live under ``--root``.

::

    <root>/<dataset>/
      annotations/            train_list.json, test_list.json, label2name.json, checksums.json
      mirror/<id>.mp4         (synthetic only) the stand-in for YouTube, served over loopback
      truth/<id>.json         (synthetic only) where the subject and its detail are, per frame
      videos/<id>.mp4         finished, verified downloads
      videos/<id>.info.json   what the source said about the video
      ledger.sqlite           one row per video id
      manifest.json           the snapshot obtained; its hash names it
      frames/<id>/img_00001.jpg … + meta.json      (folder store), or frames/<id>.zip (packed store)
      flow/<id>/flow_x_00001.jpg, flow_y_00001.jpg …   (folder store), or flow/<id>.zip (packed store)
      lists/train.txt, lists/test.txt, lists/missing.txt, lists/meta.json (+ flow_train.txt, flow_test.txt)
    <root>/leaderboard/        submissions/, README.md, index.html (leaderboard commands, unless --leaderboard-dir)
    <root>/runs/<dataset>/<method>/<run>/   benchmark (unless --out); study: <root>/runs/<folder>/
                              (rra-vs-tsn: study-<profile>; the other studies: <name>-<profile>)

Nobody else builds these paths: call :class:`DatasetLayout`, :func:`run_dir` and
:class:`RunFiles`. The files ytfgvc ships beside its code (dataset cards, baseline configs,
study files) are found by :func:`resource_dirs`.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ytfgvc.errors import YtfgvcError
from ytfgvc.system.fsutil import TMP_PREFIX

DEFAULT_ROOT = "./ytfgvc-data"
SPLITS = ("train", "test")
KINDS = ("frames", "flow")  # what prepare stores per video: its kept frames and its flow stacks
ARCHIVE_SUFFIX = ".zip"  # one packed video: frames/<id>.zip, flow/<id>.zip (ytfgvc.store)
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_DATASET_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def resource_dirs(name: str) -> list[Path]:
    """Folders holding ytfgvc's shipped files ``name`` (``annotations``, ``baselines``), in search order.

    The source tree's (a clone, or an editable install) first, then ``<prefix>/share/ytfgvc/<name>``
    (where ``pip install`` puts them: setup.cfg ``data_files``). Only existing folders are listed.
    """
    dirs = [Path(__file__).resolve().parent.parent / name, Path(sys.prefix) / "share" / "ytfgvc" / name]
    return [d for d in dirs if d.is_dir()]


def resource_file(name: str, relative: str) -> Path:
    """The first shipped file ``<name>/<relative>``; an error says where it was looked for."""
    for d in resource_dirs(name):
        if (d / relative).is_file():
            return d / relative
    looked = [str(Path(__file__).resolve().parent.parent / name), str(Path(sys.prefix) / "share" / "ytfgvc" / name)]
    raise YtfgvcError(
        f"ytfgvc's file {name}/{relative} is not installed (looked in {', '.join(looked)})",
        "reinstall ytfgvc (pip install ytfgvc, or pip install -e . in a clone)",
    )


def default_root() -> Path:
    """``$YTFGVC_ROOT`` if set, else ``./ytfgvc-data``."""
    return Path(os.environ.get("YTFGVC_ROOT") or DEFAULT_ROOT)


def is_valid_video_id(video_id: object) -> bool:
    """A YouTube id: exactly 11 characters of ``[A-Za-z0-9_-]``."""
    return isinstance(video_id, str) and bool(_VIDEO_ID.match(video_id))


def check_video_id(video_id: object) -> str:
    """Return ``video_id`` if valid; raise before it can reach a URL or a path."""
    if not is_valid_video_id(video_id):
        raise YtfgvcError(f"invalid video id {video_id!r}", "ids are 11 characters of A-Z a-z 0-9 _ -")
    return video_id  # type: ignore[return-value]


def check_dataset_name(name: str) -> str:
    if not isinstance(name, str) or not _DATASET_NAME.match(name):
        raise YtfgvcError(f"invalid dataset name {name!r}", "use lower-case letters, digits, '-' and '_'")
    return name


@dataclass(frozen=True)
class DatasetLayout:
    """Paths of one dataset under a root folder."""

    root: Path
    dataset: str

    def __post_init__(self) -> None:
        check_dataset_name(self.dataset)
        object.__setattr__(self, "root", Path(self.root))

    @property
    def base(self) -> Path:
        return self.root / self.dataset

    # annotations
    @property
    def annotations_dir(self) -> Path:
        return self.base / "annotations"

    def official_file(self, filename: str) -> Path:
        return self.annotations_dir / filename

    @property
    def checksums_path(self) -> Path:
        return self.annotations_dir / "checksums.json"

    # synthetic source
    @property
    def mirror_dir(self) -> Path:
        return self.base / "mirror"

    def mirror_video(self, video_id: str) -> Path:
        return self.mirror_dir / f"{check_video_id(video_id)}.mp4"

    @property
    def truth_dir(self) -> Path:
        return self.base / "truth"

    def truth_path(self, video_id: str) -> Path:
        return self.truth_dir / f"{check_video_id(video_id)}.json"

    # download
    @property
    def videos_dir(self) -> Path:
        return self.base / "videos"

    def video_path(self, video_id: str) -> Path:
        return self.videos_dir / f"{check_video_id(video_id)}.mp4"

    def info_path(self, video_id: str) -> Path:
        return self.videos_dir / f"{check_video_id(video_id)}.info.json"

    def download_tmp_dir(self, video_id: str) -> Path:
        """Where a download in progress lives (a temporary name: never taken for a finished file)."""
        return self.videos_dir / f"{TMP_PREFIX}{check_video_id(video_id)}"

    @property
    def download_lock_path(self) -> Path:
        """Held (:mod:`ytfgvc.system.locks`) while ``ytfgvc download`` (or ``--merge``) writes this dataset."""
        return self.base / ".download.lock"

    @property
    def ledger_path(self) -> Path:
        return self.base / "ledger.sqlite"

    @property
    def manifest_path(self) -> Path:
        return self.base / "manifest.json"

    @property
    def health_path(self) -> Path:
        """What the censuses (``download --recheck``) found, per class and over time."""
        return self.base / "health.json"

    def shared_root_marker(self, token: str) -> Path:
        """The file a cluster run's driver writes so that tasks can tell whether their node sees this root."""
        if not re.match(r"^[0-9a-f]{16,64}$", token):
            raise YtfgvcError(f"invalid run token {token!r}")
        return self.base / f".ytfgvc-shared-{token}"

    # prepare
    @property
    def frames_root(self) -> Path:
        return self.base / "frames"

    def frames_dir(self, video_id: str) -> Path:
        return self.frames_root / check_video_id(video_id)

    @staticmethod
    def frame_name(index: int) -> str:
        """1-based frame file name: ``img_00001.jpg``."""
        return f"img_{index:05d}.jpg"

    @property
    def flow_root(self) -> Path:
        return self.base / "flow"

    def flow_dir(self, video_id: str) -> Path:
        return self.flow_root / check_video_id(video_id)

    @staticmethod
    def flow_names(index: int, ext: str = "jpg") -> tuple[str, str]:
        """1-based flow file names: ``flow_x_00001.jpg``, ``flow_y_00001.jpg``."""
        return f"flow_x_{index:05d}.{ext}", f"flow_y_{index:05d}.{ext}"

    def frames_archive(self, video_id: str) -> Path:
        """The packed store's frames of a video: ``frames/<id>.zip`` (:mod:`ytfgvc.store`)."""
        return self.frames_root / f"{check_video_id(video_id)}{ARCHIVE_SUFFIX}"

    def flow_archive(self, video_id: str) -> Path:
        """The packed store's flow of a video: ``flow/<id>.zip``."""
        return self.flow_root / f"{check_video_id(video_id)}{ARCHIVE_SUFFIX}"

    def kind_root(self, kind: str) -> Path:
        """``frames/`` or ``flow/``."""
        return {"frames": self.frames_root, "flow": self.flow_root}[_check_kind(kind)]

    def video_folder(self, kind: str, video_id: str) -> Path:
        """The folder store's ``frames/<id>/`` or ``flow/<id>/``."""
        return self.frames_dir(video_id) if _check_kind(kind) == "frames" else self.flow_dir(video_id)

    def video_archive(self, kind: str, video_id: str) -> Path:
        """The packed store's ``frames/<id>.zip`` or ``flow/<id>.zip``."""
        return self.frames_archive(video_id) if _check_kind(kind) == "frames" else self.flow_archive(video_id)

    @property
    def lists_dir(self) -> Path:
        return self.base / "lists"

    def list_path(self, split: str) -> Path:
        if split not in SPLITS:
            raise YtfgvcError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
        return self.lists_dir / f"{split}.txt"

    def flow_list_path(self, split: str) -> Path:
        """``lists/flow_<split>.txt``: ``flow/<id> <stacks> <label>`` for MMAction2 (:mod:`ytfgvc.prepare.mmaction`)."""
        return self.list_path(split).with_name(f"flow_{split}.txt")

    @property
    def missing_list_path(self) -> Path:
        """``lists/missing.txt``: ``<id> <split> <reason>`` for each listed video without frames."""
        return self.lists_dir / "missing.txt"

    @property
    def lists_meta_path(self) -> Path:
        return self.lists_dir / "meta.json"

    @property
    def prepare_lock_path(self) -> Path:
        """Held (:mod:`ytfgvc.system.locks`) while ``ytfgvc prepare`` runs on this dataset."""
        return self.base / ".prepare.lock"

    @staticmethod
    def list_entry_dir(video_id: str) -> str:
        """The frame folder as written in rawframe lists, relative to the dataset folder."""
        return f"frames/{check_video_id(video_id)}"

    @staticmethod
    def flow_list_entry_dir(video_id: str) -> str:
        """The flow folder as written in the flow lists, relative to the dataset folder."""
        return f"flow/{check_video_id(video_id)}"


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {KINDS}")
    return kind


def leaderboard_dir(root: Path) -> Path:
    """``<root>/leaderboard/``: where leaderboard commands write unless told otherwise (never the repository's)."""
    return Path(root) / "leaderboard"


def runs_dir(root: Path) -> Path:
    """``<root>/runs/``: where ``benchmark`` and ``study`` write their run folders unless ``--out`` says otherwise."""
    return Path(root) / "runs"


@dataclass(frozen=True)
class RunFiles:
    """The files of one run folder ``<runs>/<dataset>/<method>/<run>/`` (written by ``ytfgvc benchmark``,
    or by ``ytfgvc fuse``: ``predictions.json``, ``scores.npz`` and ``metrics.json`` only).

    Formats: :mod:`ytfgvc.benchmark.records` (config, log, metrics, curves), :mod:`ytfgvc.engine`
    (checkpoint) and :mod:`ytfgvc.predictions`.
    """

    folder: Path

    # Every record but the checkpoint.
    RECORDS = ("config.yaml", "log.jsonl", "metrics.json", "predictions.json", "scores.npz", "curves.png")

    @property
    def config(self) -> Path:
        return self.folder / "config.yaml"

    @property
    def log(self) -> Path:
        return self.folder / "log.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def predictions(self) -> Path:
        return self.folder / "predictions.json"

    @property
    def scores(self) -> Path:
        """Every test video's score row (``ytfgvc-scores-1``, :mod:`ytfgvc.benchmark.records`): what ``fuse`` reads."""
        return self.folder / "scores.npz"

    @property
    def metrics(self) -> Path:
        """Written last: a run is finished when this file exists."""
        return self.folder / "metrics.json"

    @property
    def curves(self) -> Path:
        return self.folder / "curves.png"

    @property
    def lock(self) -> Path:
        """Held by the process running the folder's run (rank 0 under torchrun): one process per run."""
        return self.folder / ".lock"

    @property
    def visualize_dir(self) -> Path:
        return self.folder / "visualize"

    @property
    def finished(self) -> bool:
        return self.metrics.is_file()


def run_dir(runs_root: Path, dataset: str, model: str, run: str) -> Path:
    """``<runs>/<dataset>/<model>/<run>/``."""
    for part, what in ((dataset, "dataset"), (model, "model"), (run, "run name")):
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", part):
            raise YtfgvcError(f"invalid {what} {part!r}", "use letters, digits, '.', '_' and '-'")
    return Path(runs_root) / dataset / model / run
