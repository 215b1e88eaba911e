"""Reading one video's frames or flow from either store, and a per-process cache of open videos."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.store.packed import META_NAME, PackedError, PackedReader


class VideoFiles:
    """The files of one video's frames (or flow), whichever store holds them.

    ``read(name)`` gives a file's bytes (``img_00001.jpg``, ``flow_x_00001.jpg``,
    ``meta.json``), identical in both stores; ``where(name)`` names it in messages.
    """

    store = ""

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def names(self) -> list[str]:
        """Every file name, sorted."""
        raise NotImplementedError

    def has(self, name: str) -> bool:
        raise NotImplementedError

    def meta(self) -> dict[str, Any] | None:
        """``meta.json`` parsed, or None when absent or unreadable."""
        raise NotImplementedError

    def where(self, name: str = "") -> str:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FolderFiles(VideoFiles):
    """``frames/<id>/``: one file per frame (or flow field) and ``meta.json``."""

    store = "folder"

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def names(self) -> list[str]:
        with os.scandir(self.folder) as entries:  # the entries' types: no stat per file
            return sorted(e.name for e in entries if e.is_file())

    def has(self, name: str) -> bool:
        return (self.folder / name).is_file()

    def meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads((self.folder / META_NAME).read_text())
        except (OSError, ValueError, RecursionError):  # absent, torn, or not ours
            return None
        return meta if isinstance(meta, dict) else None

    def where(self, name: str = "") -> str:
        return str(self.folder / name) if name else str(self.folder)


class PackedFiles(VideoFiles):
    """``frames/<id>.zip``: the same files as members of one uncompressed ZIP (:mod:`ytfgvc.store.packed`).

    ``verify``: check each member's CRC-32 (the loader does not, as a folder's files have none).
    """

    store = "packed"

    def __init__(self, archive: Path | str, verify: bool = True):
        self.archive = archive
        self.reader = PackedReader(archive, verify=verify)

    def read(self, name: str) -> bytes:
        return self.reader.read(name)

    def names(self) -> list[str]:
        return sorted(self.reader.names())

    def has(self, name: str) -> bool:
        return self.reader.locate(name) is not None

    def meta(self) -> dict[str, Any] | None:
        return self.reader.meta()

    def where(self, name: str = "") -> str:
        return f"{self.archive}:{name}" if name else str(self.archive)

    def close(self) -> None:
        self.reader.close()


def which_store(layout: DatasetLayout, kind: str, video_id: str) -> str | None:
    """``"packed"`` when ``<kind>/<id>.zip`` exists (it wins: it is renamed into place only when complete),
    ``"folder"`` when ``<kind>/<id>/`` does, else None."""
    if layout.video_archive(kind, video_id).is_file():
        return "packed"
    if layout.video_folder(kind, video_id).is_dir():
        return "folder"
    return None


def open_video(layout: DatasetLayout, kind: str, video_id: str, verify: bool = True) -> VideoFiles | None:
    """The video's ``kind`` (``frames`` or ``flow``) in whichever store holds it, or None.

    The archive wins (:func:`which_store`); a damaged archive beside a folder gives the folder.
    ``verify``: check the CRC-32 of what is read from an archive.
    """
    folder = layout.video_folder(kind, video_id)
    try:  # one system call when the archive is there
        return PackedFiles(str(layout.video_archive(kind, video_id)), verify=verify)
    except FileNotFoundError:
        pass
    except PackedError:
        if not folder.is_dir():
            raise
    return FolderFiles(folder) if folder.is_dir() else None


def read_meta(layout: DatasetLayout, kind: str, video_id: str) -> dict[str, Any] | None:
    """The ``meta.json`` of the video's complete ``kind``, in either store; None if absent or unreadable."""
    try:
        files = open_video(layout, kind, video_id)
    except (PackedError, OSError):
        return None
    if files is None:
        return None
    try:
        return files.meta()
    finally:
        files.close()


def stored_ids(layout: DatasetLayout, kind: str) -> dict[str, str]:
    """Video id -> store, for every finished video of ``kind`` (folders with ``meta.json``, archives)."""
    from ytfgvc.layout import ARCHIVE_SUFFIX, is_valid_video_id
    from ytfgvc.system.fsutil import is_temporary

    root, out = layout.kind_root(kind), {}
    if not root.is_dir():
        return out
    for p in root.iterdir():
        if is_temporary(p):
            continue
        if p.suffix == ARCHIVE_SUFFIX and is_valid_video_id(p.stem) and p.is_file():
            out[p.stem] = "packed"
        elif is_valid_video_id(p.name) and (p / META_NAME).is_file():
            out.setdefault(p.name, "folder")
    return out


class StoreReader:
    """Open videos of one dataset, cached per process (at most ``max_open``, least recently used first out).

    What loader workers read through: each process opens its own archives (a reader that
    crossed a ``fork`` or a pickle starts with an empty cache, never sharing a descriptor),
    keeps up to ``max_open`` of them open and reads each member with one ``pread``.
    """

    def __init__(self, layout: DatasetLayout, max_open: int = 64):
        self.layout, self.max_open = layout, max_open
        self._open: OrderedDict[tuple[str, str], VideoFiles] = OrderedDict()
        self._pid = os.getpid()

    def video(self, kind: str, video_id: str) -> VideoFiles:
        """The video's ``kind``; :class:`~ytfgvc.errors.YtfgvcError` naming the fix when it is not prepared."""
        if self._pid != os.getpid():  # a forked child: the parent's descriptors are not ours to use
            self._open.clear()
            self._pid = os.getpid()
        key = (kind, video_id)
        files = self._open.get(key)
        if files is not None:
            self._open.move_to_end(key)
            return files
        files = open_video(self.layout, kind, video_id, verify=False)  # as a folder's files: no checksum
        if files is None:
            flag = " --flow" if kind == "flow" else ""
            what = "frame" if kind == "frames" else "flow"
            raise YtfgvcError(
                f"cannot read {what} files of {video_id}: neither {self.layout.video_folder(kind, video_id)}/ nor "
                f"{self.layout.video_archive(kind, video_id)} exists",
                f"run `ytfgvc prepare {self.layout.dataset}{flag}` first",
            )
        self._open[key] = files
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)[1].close()
        return files

    def close(self) -> None:
        for files in self._open.values():
            files.close()
        self._open.clear()

    def __getstate__(self) -> dict[str, Any]:
        return {"layout": self.layout, "max_open": self.max_open}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["layout"], state["max_open"])
