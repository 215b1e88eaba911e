"""The frame store: where a prepared video's frames and flow live, and the one way to read them.

Two stores, the same files (byte for byte):

* ``folder`` (the default): ``frames/<id>/img_00001.jpg … meta.json`` and
  ``flow/<id>/flow_x_00001.jpg … meta.json``: one file per frame and per flow field,
  1 + K + 10·K files for a video of K frames with 5-field flow. What MMAction2 and the
  original TSN code read.
* ``packed`` (``prepare --store packed``, or ``prepare --repack`` to convert): the same files
  as members of one uncompressed ZIP per video and kind, ``frames/<id>.zip`` and
  ``flow/<id>.zip`` (:mod:`ytfgvc.store.packed`): 2 files per video, for filesystems that
  limit the number of files (Lustre, GPFS, NFS quotas). ``unzip`` and every ZIP tool list and
  extract them.

Everything that reads prepared frames goes through :func:`open_video` (one video) or a
:class:`StoreReader` (loader workers: open archives cached per process): the loader, the
resume checks of ``prepare``, the lists, ``visualize``, the attention study and the Ray
executor. An archive and a folder of the same video never both count: the archive is renamed
into place only when complete and wins (:func:`which_store`); ``prepare`` removes the other
copy when it writes one (:mod:`ytfgvc.store.sink`). :mod:`ytfgvc.layout` names the paths.
"""

from __future__ import annotations

from ytfgvc.layout import DatasetLayout
from ytfgvc.store.files import (
    FolderFiles,
    PackedFiles,
    StoreReader,
    VideoFiles,
    open_video,
    read_meta,
    stored_ids,
    which_store,
)
from ytfgvc.store.packed import META_NAME, PACKED_SCHEMA, PackedError, PackedReader, PackedWriter
from ytfgvc.store.sink import STORES, Destination, Sink, open_sink, remove_folder


def destination(layout: DatasetLayout, kind: str, video_id: str, store: str) -> Destination:
    """Where ``prepare`` writes a video's ``kind`` (``frames`` or ``flow``) in ``store``."""
    return Destination(store, layout.video_folder(kind, video_id), layout.video_archive(kind, video_id))


def export_video(dest: Destination) -> dict[str, bytes]:
    """A finished video's files for the trip back from a Ray node: relative name -> bytes.

    A folder gives its files; an archive gives itself under the empty name.
    """
    if dest.store == "packed":
        return {"": dest.archive.read_bytes()}
    from ytfgvc.distributed.cluster import read_tree

    return read_tree(dest.folder)


def install_video(dest: Destination, payload: dict[str, bytes]) -> None:
    """Write what :func:`export_video` returned at ``dest`` (atomically), replacing the other store's copy."""
    from ytfgvc.distributed.cluster import write_file, write_tree

    if set(payload) == {""}:
        write_file(dest.archive, payload[""])
        remove_folder(dest.folder)
    else:
        dest.archive.unlink(missing_ok=True)
        write_tree(dest.folder, payload)


__all__ = [
    "META_NAME",
    "PACKED_SCHEMA",
    "STORES",
    "Destination",
    "FolderFiles",
    "PackedError",
    "PackedFiles",
    "PackedReader",
    "PackedWriter",
    "Sink",
    "StoreReader",
    "VideoFiles",
    "destination",
    "export_video",
    "install_video",
    "open_sink",
    "open_video",
    "read_meta",
    "remove_folder",
    "stored_ids",
    "which_store",
]
