"""``prepare --repack``: one video's folder becomes its archive, in place, without a moment of loss.

For each kind (``frames``, ``flow``) of a video in the folder store:

1. its files (``meta.json`` last) are written into ``.tmp-<id>.zip.…`` beside the folder;
2. the archive is read back, member by member, and compared with the folder's files byte for
   byte (names and contents);
3. it is fsynced, renamed to ``<id>.zip`` and the rename fsynced;
4. the folder is renamed out of the way (``.tmp-<id>.gone.…``) and deleted.

Killed at any point, the next run finds one of: the folder alone (step 1 or 2 was cut: the
temporary archive is swept, the video repacked again); the archive and the folder (step 4
was cut: the archive, verified before its rename, wins and the folder goes); the archive
alone. Nothing is lost, and a reader meanwhile sees a complete copy (it prefers the archive).
"""

from __future__ import annotations

from pathlib import Path

from ytfgvc.store.files import FolderFiles, PackedFiles
from ytfgvc.store.packed import META_NAME, PackedError
from ytfgvc.store.sink import Destination, open_sink, remove_folder


class RepackError(PackedError):
    """The archive written does not hold the folder's files (nothing was removed)."""


def repack_folder(folder: Path, archive: Path) -> int:
    """Turn ``folder`` into ``archive`` (see the module docstring); the number of files it holds.

    Already done (the archive alone) or half done (both): the folder goes, and the archive's
    member count is returned.
    """
    folder, archive = Path(folder), Path(archive)
    if archive.is_file():
        files = PackedFiles(archive)
        try:
            count, complete = len(files.names()), files.meta() is not None
        finally:
            files.close()
        if not complete:
            raise RepackError(f"{archive} has no meta.json", "delete it and run `ytfgvc prepare --repack` again")
        remove_folder(folder)
        return count
    source = FolderFiles(folder)
    names = source.names()
    if META_NAME not in names:
        raise RepackError(f"{folder} has no meta.json (not a finished video)", "run `ytfgvc prepare` to remake it")
    dest = Destination("packed", folder, archive)
    with open_sink(dest, durable=True, verify=lambda tmp: _verify(tmp, source, names)) as sink:
        for name in names:
            if name != META_NAME:
                sink.add(name, source.read(name))
        sink.finish(source.read(META_NAME))
    return len(names)


def _verify(tmp: Path, source: FolderFiles, names: list[str]) -> None:
    """Raise :class:`RepackError` unless the archive at ``tmp`` holds exactly the folder's files."""
    packed = PackedFiles(tmp)
    try:
        if packed.names() != names:
            raise RepackError(f"{tmp} does not list the files of {source.folder}", _AGAIN)
        for name in names:
            if packed.read(name) != source.read(name):
                raise RepackError(f"{tmp}: {name} differs from {source.folder / name}", _AGAIN)
    finally:
        packed.close()


_AGAIN = "nothing was removed; run `ytfgvc prepare --repack` again (check the disk if it repeats)"
