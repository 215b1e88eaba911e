"""What does ytfgvc's bookkeeping cost on top of yt-dlp? And does it extract each video once?

N small H.264 files are served by a loopback HTTP server. In the same run, on the same
files, from the same server, the script times:

* ``python -m yt_dlp URL...`` (the yt-dlp CLI: one process, sequential), and
* ``python -m ytfgvc download ... --jobs 1`` (extraction, filters, download, PyAV probe,
  sha256, info.json, ledger, manifest; also one process, sequential),

alternating them ``--repeats`` times, and prints the median wall times and their ratio
(target: <= 1.1). A third run, in this process, counts yt-dlp extractions
(``InfoExtractor.extract`` calls) per video (target: 1) and times ytfgvc as a library.
HTTP requests per video are counted by the server for every run. Both tools must end
with the same bytes.

Usage:
    python benchmarks/download_overhead.py --videos 40 --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ytfgvc.datasets.official import import_annotations  # noqa: E402
from ytfgvc.download import DownloadConfig, download  # noqa: E402
from ytfgvc.download.server import MirrorServer  # noqa: E402

DATASET = "synthetic"  # its card's filters (<= 40 s, >= 360p) let every file through


def make_videos(folder: Path, n: int, seconds: float = 2.0, fps: int = 10) -> list[str]:
    """``n`` distinct 640x360 H.264 files named by valid ids."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"bench{i:06d}" for i in range(n)]
    rng = np.random.default_rng(0)
    for vid in ids:
        base = rng.integers(0, 255, (46, 81, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)[:360, :640]
        with av.open(str(folder / f"{vid}.mp4"), "w") as c:
            s = c.add_stream("libx264", rate=Fraction(fps))
            s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
            s.options = {"preset": "ultrafast"}
            for t in range(int(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(base, 4 * t, axis=1)), format="bgr24")
                for p in s.encode(frame):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    return ids


def make_root(path: Path, ids: list[str]) -> Path:
    """A root with official lists naming ``ids`` (no videos yet)."""
    official = path / "official"
    official.mkdir(parents=True)
    (official / "train_list.json").write_text(json.dumps([[v, 0] for v in ids]))
    (official / "test_list.json").write_text("[]")
    (official / "label2name.json").write_text(json.dumps({"0": "bench"}))
    import_annotations(path, DATASET, official)
    return path


def digest(folder: Path) -> dict[str, str]:
    return {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.mp4"))}


def timed_child(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd`` (arg list, no shell); its wall time, its CPU time (user + system) and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), res.stdout


def run_ytdlp_cli(server: MirrorServer, ids: list[str], out: Path) -> tuple[float, float]:
    urls = [server.url_template.replace("{id}", v) for v in ids]
    cmd = [sys.executable, "-m", "yt_dlp", "-q", "--no-warnings", "--no-progress", "-o", f"{out}/%(id)s.%(ext)s"]
    wall, cpu, _ = timed_child(cmd + urls)
    return wall, cpu


def run_ytfgvc_cli(server: MirrorServer, root: Path) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "ytfgvc", "download", DATASET, "--root", str(root)]
    cmd += ["--source", server.url_template, "--jobs", "1", "--json"]
    wall, cpu, out = timed_child(cmd)
    summary = json.loads(out)
    assert summary["this_run"] == {"ok": summary["selected"]}, summary
    return wall, cpu


def count_extractions():
    """Patch yt-dlp so that every extractor run is counted; returns the counter dict."""
    from yt_dlp.extractor.common import InfoExtractor

    counter = {"n": 0}
    original = InfoExtractor.extract

    def counted(self, url):
        counter["n"] += 1
        return original(self, url)

    InfoExtractor.extract = counted
    return counter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ytfgvc-bench-dl-"))
    try:
        t = time.perf_counter()
        ids = make_videos(work / "mirror", args.videos)
        size = sum(p.stat().st_size for p in (work / "mirror").glob("*.mp4"))
        print(f"{len(ids)} videos, {size / 1e6:.1f} MB, made in {time.perf_counter() - t:.1f} s")
        print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        times: dict[str, list[float]] = {"yt-dlp CLI": [], "ytfgvc CLI": []}
        cpus: dict[str, list[float]] = {"yt-dlp CLI": [], "ytfgvc CLI": []}
        requests: dict[str, list[int]] = {"yt-dlp CLI": [], "ytfgvc CLI": []}
        with MirrorServer(work / "mirror") as server:
            for k in range(args.repeats):
                order = ["yt-dlp CLI", "ytfgvc CLI"] if k % 2 == 0 else ["ytfgvc CLI", "yt-dlp CLI"]
                for name in order:
                    before = len(server.requests)
                    if name == "yt-dlp CLI":
                        out = work / f"ytdlp-{k}"
                        wall, cpu = run_ytdlp_cli(server, ids, out)
                        ytdlp_files = digest(out)
                    else:
                        root = make_root(work / f"ytfgvc-{k}", ids)
                        wall, cpu = run_ytfgvc_cli(server, root)
                        ytfgvc_files = digest(root / DATASET / "videos")
                    times[name].append(wall)
                    cpus[name].append(cpu)
                    requests[name].append(len(server.requests) - before)
            assert ytdlp_files == ytfgvc_files and len(ytfgvc_files) == len(ids), "the two tools got different bytes"

            counter = count_extractions()
            root = make_root(work / "ytfgvc-lib", ids)
            before = len(server.requests)
            t = time.perf_counter()
            r = download(root, DownloadConfig(dataset=DATASET, source=server.url_template, jobs=1), progress=False)
            lib_s = time.perf_counter() - t
            lib_requests = len(server.requests) - before
            assert r.this_run == {"ok": len(ids)}, r.this_run

        n = len(ids)
        med = {k: statistics.median(v) for k, v in times.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpus.items()}
        head = f"{'run':<22} {'wall s':>7} {'ms/video':>9} {'CPU s':>6} {'req/video':>10}   all runs, wall (s)"
        print("\n" + head + "\n" + "-" * len(head))
        for name in times:
            rpv = statistics.median(requests[name]) / n
            row = f"{name:<22} {med[name]:>7.2f} {1000 * med[name] / n:>9.1f} {med_cpu[name]:>6.2f} {rpv:>10.2f}"
            print(row + "   " + ", ".join(f"{x:.2f}" for x in times[name]))
        lib = "ytfgvc library (1 run)"
        print(f"{lib:<22} {lib_s:>7.2f} {1000 * lib_s / n:>9.1f} {'':>6} {lib_requests / n:>10.2f}")
        ratio = med["ytfgvc CLI"] / med["yt-dlp CLI"]
        print(f"\nratio ytfgvc CLI / yt-dlp CLI, wall (medians): {ratio:.3f}  (target <= 1.1)")
        print(f"ratio ytfgvc CLI / yt-dlp CLI, CPU (medians):  {med_cpu['ytfgvc CLI'] / med_cpu['yt-dlp CLI']:.3f}")
        print(f"extractions per video: {counter['n'] / n:.2f}  ({counter['n']} for {n} videos; target 1)")
        print("both tools wrote identical bytes for every video")
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
