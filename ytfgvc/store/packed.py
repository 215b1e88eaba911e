"""One video in one uncompressed ZIP archive (``ytfgvc-packed-1``): written once, read by member name.

The archive is a standard ZIP file (PKWARE APPNOTE 6.3), every member *stored* (no
compression: JPEG bytes are already compressed), so ``unzip -l``, ``unzip``, ``bsdtar``,
``python -m zipfile -l`` and any ZIP library list and extract it; the members are the exact
bytes the folder store would hold as files. Two additions, both inside the standard:

* ``meta.json`` is written last, and the archive comment says where it is:
  ``ytfgvc-packed-1 meta.json <local header offset> <size>``, so a resume check reads the
  tail of the file and then the meta, two reads, whatever the number of members;
* members have no extra fields in their local headers (ZIP64 only past 4 GiB or 65,535
  members, which the reader handles), so a member's data is one read at
  ``offset + 30 + len(name)``.

Random access: :class:`PackedReader` reads the end of the archive once per open (its end
record and, for most frame archives, the whole central directory: the ZIP's index, about 60
bytes per member, sorted by name), finds a member by a binary search of the directory (or,
in another tool's archive, a search of its name), then reads the member with one ``pread``
and, with ``verify`` (the default), checks its CRC-32. Loader workers read with
``verify=False``, as they read a folder's files (which have no checksum); ``--repack``
compares every member with the folder's file byte for byte, and ``unzip -t`` checks them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

from ytfgvc.errors import YtfgvcError

PACKED_SCHEMA = "ytfgvc-packed-1"
META_NAME = "meta.json"
# Every member's timestamp (ZIP's DOS time): fixed, so the same bytes make the same archive.
MEMBER_TIME = (1980, 1, 1, 0, 0, 0)
_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory record (22 bytes)
_EOCD64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # central directory header (46 bytes)
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header (30 bytes)
_TAIL = 32 << 10  # bytes read at the end of an archive: its end record, and most often its directory and meta
_MAX_U16, _MAX_U32 = 0xFFFF, 0xFFFFFFFF
_SEARCHES = 8  # name searches in the directory before it is parsed into a dict


class PackedError(YtfgvcError):
    """An archive that is not a readable ``ytfgvc-packed-1`` ZIP (or lacks a member)."""


class PackedWriter:
    """Write members in order into a new ZIP file at ``path`` (stored, fixed timestamps), then :meth:`close`.

    ``meta.json`` is written by :meth:`close` (last), and the archive comment points at it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._zip = zipfile.ZipFile(self.path, "x", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._names: set[str] = set()

    def add(self, name: str, data: bytes) -> None:
        if name in self._names or name == META_NAME:
            raise ValueError(f"{name!r} is already in {self.path.name} (or reserved)")
        self._names.add(name)
        self._zip.writestr(_member(name), data)

    def close(self, meta: dict[str, Any] | bytes | None, durable: bool = False) -> None:
        """Write ``meta`` as ``meta.json`` (a dict, or its file's bytes), the comment and the directory.

        ``durable``: fsync the archive before returning.
        """
        if meta is not None:
            info = _member(META_NAME)
            data = meta if isinstance(meta, bytes) else (json.dumps(meta, indent=2) + "\n").encode()
            self._zip.writestr(info, data)
            self._zip.comment = f"{PACKED_SCHEMA} {META_NAME} {info.header_offset} {len(data)}".encode()
        self._zip.filelist.sort(key=lambda info: info.filename)  # a sorted directory: lookups bisect it
        self._zip.close()
        if durable:
            with open(self.path, "rb") as f:
                os.fsync(f.fileno())

    def abort(self) -> None:
        self._zip.close()


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, MEMBER_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16  # a regular file, readable once extracted
    info.create_system = 3  # Unix
    return info


class PackedReader:
    """Random access to the members of one archive (see the module docstring); one file descriptor.

    Not shared across processes: each process opens its own (:class:`ytfgvc.store.StoreReader`
    keeps them per process).
    """

    def __init__(self, path: Path | str, verify: bool = True):
        self.path, self.verify = path, verify  # a str stays a str: no pathlib on the loader's hot path
        try:
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise  # no archive: the caller looks for the folder store's copy
        except OSError as e:
            raise PackedError(f"cannot open {self.path}: {e.strerror}", _REDO) from None
        try:
            self.size = os.fstat(self.fd).st_size
            self.cd_offset, self.cd_size, self.entries, self.comment = self._end_record()
        except BaseException:
            os.close(self.fd)
            raise
        self._cd: bytes | None = None
        self._index: dict[str, tuple[int, int, int]] | None = None
        self._lookups = 0
        self._stride: tuple[int, int] | None = None

    # -- the end of the archive
    def _end_record(self) -> tuple[int, int, int, bytes]:
        n = min(self.size, _TAIL)
        tail = os.pread(self.fd, n, self.size - n)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 and n < self.size:  # a comment longer than the tail read (another tool's archive)
            n = min(self.size, _EOCD.size + _MAX_U16)
            tail = os.pread(self.fd, n, self.size - n)
            at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _EOCD.size:  # none, or cut short inside it
            raise PackedError(f"{self.path} is not a ZIP archive, or is cut short (no end of central directory)", _REDO)
        self._tail, self._tail_start = tail, self.size - n
        _, _, _, _, entries, cd_size, cd_offset, comment_len = _EOCD.unpack_from(tail, at)
        comment = tail[at + _EOCD.size : at + _EOCD.size + comment_len]
        if entries == _MAX_U16 or _MAX_U32 in (cd_size, cd_offset):
            entries, cd_size, cd_offset = self._zip64_end(self.size - n + at)
        if cd_offset + cd_size > self.size:
            raise PackedError(f"{self.path} is cut short (its central directory lies past its end)", _REDO)
        return cd_offset, cd_size, entries, comment

    def _zip64_end(self, eocd_at: int) -> tuple[int, int, int]:
        loc = os.pread(self.fd, _EOCD64_LOCATOR.size, max(0, eocd_at - _EOCD64_LOCATOR.size))
        if eocd_at < _EOCD64_LOCATOR.size or loc[:4] != b"PK\x06\x07":
            raise PackedError(f"{self.path}: a ZIP64 archive without its locator", _REDO)
        buf = os.pread(self.fd, _EOCD64.size, _EOCD64_LOCATOR.unpack(loc)[2])
        if len(buf) != _EOCD64.size or buf[:4] != b"PK\x06\x06":
            raise PackedError(f"{self.path}: a ZIP64 archive without its end record", _REDO)
        rec = _EOCD64.unpack(buf)
        return rec[7], rec[8], rec[9]

    def _pread(self, size: int, offset: int) -> bytes:
        """``size`` bytes at ``offset``: from the tail read at open when it holds them, else one read."""
        at = offset - self._tail_start
        if at >= 0 and at + size <= len(self._tail):
            return self._tail[at : at + size]
        return os.pread(self.fd, size, offset)

    def _directory(self) -> bytes:
        if self._cd is None:
            cd = self._pread(self.cd_size, self.cd_offset)
            if len(cd) != self.cd_size:
                raise PackedError(f"{self.path} is cut short", _REDO)
            self._cd = cd
        return self._cd

    # -- members
    def locate(self, name: str) -> tuple[int, int, int] | None:
        """``(local header offset, size, crc)`` of member ``name``, or None.

        The first few lookups search the directory for the name; a reader asked for more
        (a whole archive read, listed or verified) parses the directory into a dict once.
        """
        if self._index is not None or self._lookups >= _SEARCHES:
            return self._members().get(name)
        found = self._bisect(name.encode())
        if found is not None:
            return found
        self._lookups += 1
        cd, want = self._directory(), name.encode()
        start = 0
        while (at := cd.find(want, start)) >= 0:
            entry = at - _CENTRAL.size
            start = at + 1
            if entry < 0 or cd[entry : entry + 4] != b"PK\x01\x02":
                continue
            f = _CENTRAL.unpack_from(cd, entry)
            if f[10] != len(want):
                continue
            return self._entry(name, cd, entry, f)
        return None

    def _bisect(self, want: bytes) -> tuple[int, int, int] | None:
        """A sorted directory whose entries (but the last, ``meta.json``) have one size: a binary search."""
        if self._stride is None:
            self._stride = self._fixed_stride()
        stride, count = self._stride
        if not count or len(want) != stride - _CENTRAL.size:
            return None
        cd, lo, hi = self._directory(), 0, count
        while lo < hi:
            mid = (lo + hi) // 2
            at = mid * stride + _CENTRAL.size
            name = cd[at : at + len(want)]
            if name == want:
                entry = mid * stride
                f = _CENTRAL.unpack_from(cd, entry)
                if f[0] != b"PK\x01\x02" or f[10] != len(want):
                    return None  # not this writer's layout after all: the caller searches
                return self._entry(want.decode(), cd, entry, f)
            lo, hi = (mid + 1, hi) if name < want else (lo, mid)
        return None

    def _parse_fixed(self, stride: int, count: int) -> dict[str, tuple[int, int, int]] | None:
        """The first ``count`` entries as one array when they are this writer's (one size, stored, no extra
        field, below 4 GiB); None otherwise (the caller parses entry by entry)."""
        import numpy as np

        n = stride - _CENTRAL.size
        rows = np.frombuffer(self._directory(), np.uint8, count * stride).reshape(count, stride)

        def field(a: int, b: int, kind: str) -> np.ndarray:
            return np.ascontiguousarray(rows[:, a:b]).view(kind).ravel()

        sizes, offsets = field(24, 28, "<u4"), field(42, 46, "<u4")
        usual = (
            (rows[:, :4] == np.frombuffer(b"PK\x01\x02", np.uint8)).all()
            and (field(28, 30, "<u2") == n).all()
            and not field(30, 34, "<u4").any()  # extra and comment lengths
            and not field(10, 12, "<u2").any()  # stored
            and not (field(8, 10, "<u2") & 1).any()  # not encrypted
            and (sizes < _MAX_U32).all()
            and (offsets < _MAX_U32).all()
        )
        if not usual:
            return None
        names = rows[:, _CENTRAL.size :].tobytes().decode("utf-8")
        if len(names) != count * n:  # names with multi-byte characters: not n characters each
            return None
        offsets, sizes, crcs = offsets.tolist(), sizes.tolist(), field(16, 20, "<u4").tolist()
        return {names[i * n : (i + 1) * n]: (offsets[i], sizes[i], crcs[i]) for i in range(count)}

    def _fixed_stride(self) -> tuple[int, int]:
        """(entry size, entries of that size from the start) when the layout allows a binary search, else (0, 0)."""
        cd = self._directory()
        if self.entries < 2 or len(cd) < _CENTRAL.size:
            return 0, 0
        first = _CENTRAL.unpack_from(cd, 0)
        stride = _CENTRAL.size + first[10] + first[11] + first[12]
        if first[0] != b"PK\x01\x02" or first[11] or first[12]:
            return 0, 0
        if len(cd) == self.entries * stride:
            return stride, self.entries
        last = (self.entries - 1) * stride  # all but the last entry (meta.json) of one size
        if len(cd) - last > _CENTRAL.size and cd[last : last + 4] == b"PK\x01\x02":
            return stride, self.entries - 1
        return 0, 0

    def _parse_directory(self) -> dict[str, tuple[int, int, int]]:
        """Member name -> (local header offset, size, crc), every member (vectorised for this writer's layout)."""
        if self._stride is None:
            self._stride = self._fixed_stride()
        stride, count = self._stride
        out = self._parse_fixed(stride, count) if count else None
        if out is None:
            out, count = {}, 0
        cd, at = self._directory(), stride * count
        for _ in range(self.entries - count):
            if at + _CENTRAL.size > len(cd) or cd[at : at + 4] != b"PK\x01\x02":
                raise PackedError(f"{self.path}: damaged central directory", _REDO)
            f = _CENTRAL.unpack_from(cd, at)
            name = cd[at + _CENTRAL.size : at + _CENTRAL.size + f[10]].decode("utf-8")
            out[name] = self._entry(name, cd, at, f)
            at += _CENTRAL.size + f[10] + f[11] + f[12]
        return out

    def _entry(self, name: str, cd: bytes, entry: int, f: tuple) -> tuple[int, int, int]:
        flags, method, crc, csize, size, nlen, elen, offset = f[3], f[4], f[7], f[8], f[9], f[10], f[11], f[16]
        if method != zipfile.ZIP_STORED or flags & 1:
            raise PackedError(f"{self.path}: member {name} is compressed or encrypted", _REDO)
        if _MAX_U32 in (csize, size, offset):
            size, offset = _zip64_values(cd[entry + _CENTRAL.size + nlen : entry + _CENTRAL.size + nlen + elen], f)
        return offset, size, crc

    def read(self, name: str) -> bytes:
        """The bytes of member ``name`` (CRC-checked); :class:`PackedError` naming it when absent or damaged."""
        found = self.locate(name)
        if found is None:
            raise PackedError(f"{self.path} has no member {name}", _REDO)
        return self._read_at(name, *found)

    def _read_at(self, name: str, offset: int, size: int, crc: int) -> bytes:
        want = name.encode()
        head = _LOCAL.size + len(want)
        buf = os.pread(self.fd, head + size, offset)
        if len(buf) < _LOCAL.size or buf[:4] != b"PK\x03\x04":
            raise PackedError(f"{self.path}: member {name} has no local header where the directory says", _REDO)
        nlen, elen = _LOCAL.unpack_from(buf)[9:11]
        moved = nlen != len(want) or elen  # another tool's extra field: the data starts later
        data = os.pread(self.fd, size, offset + _LOCAL.size + nlen + elen) if moved else buf[head:]
        if len(data) != size or (self.verify and zlib.crc32(data) != crc):
            raise PackedError(f"{self.path}: member {name} is damaged (cut short or CRC mismatch)", _REDO)
        return data

    def _members(self) -> dict[str, tuple[int, int, int]]:
        """Every member (see :meth:`_parse_directory`), parsed once."""
        if self._index is None:
            self._index = self._parse_directory()
        return self._index

    def advise(self, names: list[str], advice: int) -> None:
        """``posix_fadvise(advice)`` over each of ``names`` (its local header and data) that the archive holds.

        What :func:`ytfgvc.data.rawframes.read_frames` does per file of the folder store: drop a
        member from the page cache (``POSIX_FADV_DONTNEED``), or have the kernel read it ahead
        (``POSIX_FADV_WILLNEED``).
        """
        for name in names:
            found = self.locate(name)
            if found is not None:
                os.posix_fadvise(self.fd, found[0], _LOCAL.size + len(name.encode()) + found[1], advice)

    def names(self) -> list[str]:
        """Every member name, in the directory's order (sorted by name for this writer's archives)."""
        return list(self._members())

    def data_order(self) -> list[str]:
        """Every member name, in the order their bytes lie in the file: to read them all, front to back."""
        members = self._members()
        return sorted(members, key=lambda n: members[n][0])

    def sizes(self) -> dict[str, int]:
        """Member name -> size in bytes (the ``stat`` of the folder store)."""
        return {n: size for n, (_, size, _) in self._members().items()}

    def meta(self) -> dict[str, Any] | None:
        """``meta.json``, through the comment's pointer (two reads); None when absent or unreadable."""
        try:
            parts = self.comment.decode().split()
            if len(parts) == 4 and parts[0] == PACKED_SCHEMA and parts[1] == META_NAME:
                offset, size = int(parts[2]), int(parts[3])
                buf = self._pread(_LOCAL.size + len(META_NAME) + size, offset)
                if buf[:4] == b"PK\x03\x04" and _LOCAL.unpack_from(buf)[9:11] == (len(META_NAME), 0):
                    data = buf[_LOCAL.size + len(META_NAME) :]
                    if zlib.crc32(data) == _LOCAL.unpack_from(buf)[6]:
                        return _json(data)
            found = self.locate(META_NAME)  # an archive made by another tool: the directory says
            return _json(self._read_at(META_NAME, *found)) if found else None
        except (OSError, ValueError, UnicodeDecodeError, struct.error, PackedError):
            return None

    def close(self) -> None:
        """Close this process's descriptor (a forked child closes its own copy only)."""
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> PackedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()


def _zip64_values(extra: bytes, f: tuple) -> tuple[int, int]:
    """(size, offset) from a ZIP64 extra field (sizes and offset stored as 0xFFFFFFFF in the directory)."""
    size, csize, offset = f[9], f[8], f[16]
    at = 0
    while at + 4 <= len(extra):
        tag, n = struct.unpack_from("<HH", extra, at)
        if tag == 1:
            values, v = list(struct.unpack_from(f"<{n // 8}Q", extra, at + 4)), 0
            if size == _MAX_U32:
                size, v = values[v], v + 1
            if csize == _MAX_U32:
                v += 1
            if offset == _MAX_U32:
                offset = values[v]
            return size, offset
        at += 4 + n
    raise PackedError("a ZIP64 member without its ZIP64 extra field", _REDO)


def _json(data: bytes) -> dict[str, Any] | None:
    meta = json.loads(data)
    return meta if isinstance(meta, dict) else None


_REDO = "run `ytfgvc prepare` again with --force for this video (or delete the archive) to re-make it"
