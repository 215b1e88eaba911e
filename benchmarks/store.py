"""The frame store on this machine: list, stat and read a dataset's frames, folders against containers.

Makes a synthetic prepared dataset (``--videos`` videos of ``--frames`` JPEG frames at
``--size``, and with ``--flow-stack L`` their 2·L flow files per frame, grey JPEGs), writes it
in each layout, and times, over every video:

* **list**: the names of its files (folder: ``os.listdir``; zip: the central directory;
  tar: a scan of its headers, or the sidecar index of ``tar+index``);
* **stat**: every file's size (folder: ``os.stat`` per file; containers: their index);
* **read all**: every file's bytes;
* **read clip**: ``--clip`` random frames of each video, opened afresh per video (what a
  loader worker does for one training clip), with their flow stacks when there is flow;

each cold (the page cache of every file involved dropped first: ``/proc/sys/vm/drop_caches``
when writable, else ``posix_fadvise(DONTNEED)`` per file, which leaves the kernel's inode and
directory caches warm) and warm (the same pass again), ``--repeats`` times (the best is
kept); and the bytes on disk (allocated blocks, files and folders) and the file count.

Layouts: ``folder`` (the folder store), ``zip`` (the packed store: ``ytfgvc.store``, one
uncompressed ZIP per video and kind, read as the loader reads it: no CRC check), ``tar``
(one uncompressed tar per video and kind, members found by scanning its headers: what
standard tools do) and ``tar+index`` (the same tar with a sidecar index of member offsets:
random access, but a second file per tar).

    python benchmarks/store.py --out store.json
    python benchmarks/store.py --videos 100 --frames 60 --flow-stack 5 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's ytfgvc, installed or not

from _stores import jpeg_pool  # noqa: E402  (this script's folder)

from ytfgvc.layout import DatasetLayout  # noqa: E402
from ytfgvc.store import PackedReader, PackedWriter  # noqa: E402

LAYOUTS = ("folder", "zip", "tar", "tar+index")
KINDS = ("frames", "flow")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=100)
    p.add_argument("--frames", type=int, default=60, help="kept frames per video")
    p.add_argument("--flow-stack", type=int, default=5, help="flow fields per frame (0: no flow)")
    p.add_argument("--size", default="340x256", help="WxH of the frames")
    p.add_argument("--clip", type=int, default=4, help="random frames per video in 'read clip'")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--layouts", default=",".join(LAYOUTS))
    p.add_argument("--work", type=Path, default=None, help="where to write the layouts (default: a temp dir)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- the data


def video_files(args: argparse.Namespace, v: int, pools: dict[str, list[bytes]]) -> dict[str, dict[str, bytes]]:
    """Per kind, file name -> bytes of video ``v``."""
    pool = pools["frames"]
    frames = {DatasetLayout.frame_name(i): pool[(v * 7 + i) % len(pool)] for i in range(1, args.frames + 1)}
    out = {"frames": frames | {"meta.json": b'{"num_frames": %d}\n' % args.frames}}
    if args.flow_stack:
        flow = {}
        for n in range(1, args.frames * args.flow_stack + 1):
            x, y = DatasetLayout.flow_names(n)
            flow[x] = pools["flow"][(v * 11 + 2 * n) % len(pools["flow"])]
            flow[y] = pools["flow"][(v * 11 + 2 * n + 1) % len(pools["flow"])]
        out["flow"] = flow | {"meta.json": b"{}\n"}
    return out


def write_layout(layout: str, root: Path, files: dict[str, dict[str, dict[str, bytes]]]) -> None:
    for vid, kinds in files.items():
        for kind, members in kinds.items():
            folder = root / kind
            folder.mkdir(parents=True, exist_ok=True)
            if layout == "folder":
                (folder / vid).mkdir()
                for name, data in members.items():
                    (folder / vid / name).write_bytes(data)
            elif layout == "zip":
                w = PackedWriter(folder / f"{vid}.zip")
                for name, data in members.items():
                    if name != "meta.json":
                        w.add(name, data)
                w.close(json.loads(members["meta.json"]))
            else:
                _write_tar(folder / f"{vid}.tar", members, index=layout == "tar+index")


def _write_tar(path: Path, members: dict[str, bytes], index: bool) -> None:
    import io

    offsets = {}
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
            offsets[name] = [tar.offset - _padded(len(data)), len(data)]
    if index:
        path.with_suffix(".idx").write_text(json.dumps(offsets))


def _padded(n: int) -> int:
    return (n + 511) // 512 * 512


# --------------------------------------------------------------------------- readers


class Reader:
    """The four operations on one layout (per video, per kind)."""

    def __init__(self, layout: str, root: Path):
        self.layout, self.root = layout, root

    def path(self, kind: str, vid: str) -> Path:
        ext = {"folder": "", "zip": ".zip", "tar": ".tar", "tar+index": ".tar"}[self.layout]
        return self.root / kind / f"{vid}{ext}"

    def names(self, kind: str, vid: str) -> list[str]:
        p = self.path(kind, vid)
        if self.layout == "folder":
            return os.listdir(p)
        if self.layout == "zip":
            with PackedReader(str(p)) as r:
                return r.names()
        if self.layout == "tar":
            with tarfile.open(p) as t:
                return t.getnames()
        return list(json.loads(p.with_suffix(".idx").read_bytes()))

    def sizes(self, kind: str, vid: str) -> dict[str, int]:
        p = self.path(kind, vid)
        if self.layout == "folder":
            return {n: os.stat(p / n).st_size for n in os.listdir(p)}
        if self.layout == "zip":
            with PackedReader(str(p)) as r:
                return r.sizes()
        if self.layout == "tar":
            with tarfile.open(p) as t:
                return {m.name: m.size for m in t.getmembers()}
        return {n: s for n, (_, s) in json.loads(p.with_suffix(".idx").read_bytes()).items()}

    def read(self, kind: str, vid: str, names: list[str] | None) -> int:
        """Bytes read: ``names`` (all when None), the archive opened once."""
        p = self.path(kind, vid)
        if self.layout == "folder":
            return sum(len(_read_file(os.path.join(p, n))) for n in (names if names is not None else os.listdir(p)))
        if self.layout == "zip":
            with PackedReader(str(p), verify=False) as r:  # as loader workers read (a folder has no checksum)
                return sum(len(r.read(n)) for n in (names if names is not None else r.data_order()))
        if self.layout == "tar":
            with tarfile.open(p) as t:
                if names is None:
                    return sum(len(t.extractfile(m).read()) for m in t.getmembers())
                return sum(len(t.extractfile(n).read()) for n in names)  # scans the headers up to each
        index = json.loads(p.with_suffix(".idx").read_bytes())
        fd = os.open(p, os.O_RDONLY)
        try:
            return sum(len(os.pread(fd, index[n][1], index[n][0])) for n in (names if names is not None else index))
        finally:
            os.close(fd)

    def files(self, kind: str, vid: str) -> list[Path]:
        """Every file of the video on disk (to drop from the page cache)."""
        p = self.path(kind, vid)
        if self.layout == "folder":
            return [p / n for n in os.listdir(p)]
        return [p, p.with_suffix(".idx")] if self.layout == "tar+index" else [p]


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def drop_caches(paths: list[Path]) -> str:
    """Drop the page cache: the kernel's (if allowed), else each file's pages."""
    with contextlib.suppress(OSError):
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "drop_caches"
    for p in paths:
        with contextlib.suppress(OSError):
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return "posix_fadvise(DONTNEED) per file"


def clip_names(args: argparse.Namespace, kind: str, rng: random.Random) -> list[str]:
    picks = rng.sample(range(1, args.frames + 1), min(args.clip, args.frames))
    if kind == "frames":
        return [DatasetLayout.frame_name(k) for k in picks]
    names = []
    for k in picks:
        for j in range(1, args.flow_stack + 1):
            names += DatasetLayout.flow_names((k - 1) * args.flow_stack + j)
    return names


def operations(args: argparse.Namespace, reader: Reader, vids: list[str], kinds: list[str]) -> dict:
    seed = random.Random(0)
    clips = {(k, v): clip_names(args, k, seed) for v in vids for k in kinds}
    return {
        "list": lambda: sum(len(reader.names(k, v)) for v in vids for k in kinds),
        "stat": lambda: sum(sum(reader.sizes(k, v).values()) for v in vids for k in kinds),
        "read all": lambda: sum(reader.read(k, v, None) for v in vids for k in kinds),
        "read clip": lambda: sum(reader.read(k, v, clips[(k, v)]) for v in vids for k in kinds),
    }


def on_disk(root: Path) -> dict:
    """Allocated bytes (files and folders), apparent bytes and the number of files."""
    blocks = apparent = files = 0
    for dirpath, _, filenames in os.walk(root):
        blocks += os.stat(dirpath).st_blocks
        for n in filenames:
            st = os.stat(os.path.join(dirpath, n))
            blocks, apparent, files = blocks + st.st_blocks, apparent + st.st_size, files + 1
    return {"allocated_bytes": blocks * 512, "apparent_bytes": apparent, "files": files}


def measure(args: argparse.Namespace, layout: str, root: Path, vids: list[str], kinds: list[str]) -> dict:
    reader = Reader(layout, root)
    every = [p for v in vids for k in kinds for p in reader.files(k, v)]
    row: dict = {"disk": on_disk(root), "seconds": {}}
    for name, op in operations(args, reader, vids, kinds).items():
        best = {"cold": float("inf"), "warm": float("inf")}
        for _ in range(args.repeats):
            row["cache_drop"] = drop_caches(every)
            for state in ("cold", "warm"):
                t = time.perf_counter()
                op()
                best[state] = min(best[state], time.perf_counter() - t)
        row["seconds"][name] = best
    return row


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    pools = {"frames": jpeg_pool(64, w, h, False, 0), "flow": jpeg_pool(64, w, h, True, 1)}
    vids = [f"st{i:09d}" for i in range(args.videos)]
    kinds = ["frames", "flow"] if args.flow_stack else ["frames"]
    files = {v: video_files(args, i, pools) for i, v in enumerate(vids)}
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="ytfgvc-store-")
    work = args.work or Path(tmp.name)
    results = {
        "schema": "store-benchmark-1",
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "settings": {k: str(v) for k, v in vars(args).items()},
        "members": {k: sum(len(files[v][k]) for v in vids) for k in kinds},
        "bytes": {k: sum(len(b) for v in vids for b in files[v][k].values()) for k in kinds},
        "layouts": {},
    }
    try:
        for layout in args.layouts.split(","):
            root = work / layout
            shutil.rmtree(root, ignore_errors=True)
            t = time.perf_counter()
            write_layout(layout, root, files)
            os.sync()
            row = {"write_s": time.perf_counter() - t} | measure(args, layout, root, vids, kinds)
            results["layouts"][layout] = row
            print(f"{layout}: {json.dumps(row)}", flush=True)
            shutil.rmtree(root, ignore_errors=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(report(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def report(results: dict) -> str:
    ops = ("list", "stat", "read all", "read clip")
    head = "| layout | files | on disk (MB) | " + " | ".join(f"{o} cold / warm (s)" for o in ops) + " |"
    lines = [head, "|---" * (3 + len(ops)) + "|"]
    for name, r in results["layouts"].items():
        cells = [f"{r['seconds'][o]['cold']:.3f} / {r['seconds'][o]['warm']:.3f}" for o in ops]
        disk = f"{r['disk']['files']:,} | {r['disk']['allocated_bytes'] / 1e6:.1f}"
        lines.append(f"| {name} | {disk} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
