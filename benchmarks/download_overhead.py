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

from ytfgvc.annotations import import_annotations  # noqa: E402
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


def run_ytdlp_cli(server: MirrorServer, ids: list[str], out: Path) -> float:
    urls = [server.url_template.replace("{id}", v) for v in ids]
    cmd = [sys.executable, "-m", "yt_dlp", "-q", "--no-warnings", "--no-progress", "-o", f"{out}/%(id)s.%(ext)s"]
    t = time.perf_counter()
    subprocess.run(cmd + urls, check=True, cwd=ROOT)
    return time.perf_counter() - t


def run_ytfgvc_cli(server: MirrorServer, root: Path) -> float:
    cmd = [sys.executable, "-m", "ytfgvc", "download", DATASET, "--root", str(root)]
    cmd += ["--source", server.url_template, "--jobs", "1", "--json"]
    t = time.perf_counter()
    res = subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
    summary = json.loads(res.stdout)
    assert summary["this_run"] == {"ok": summary["selected"]}, summary
    return time.perf_counter() - t


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
        times: dict[str, list[float]] = {"yt-dlp CLI": [], "ytfgvc CLI": []}
        requests: dict[str, list[int]] = {"yt-dlp CLI": [], "ytfgvc CLI": []}
        with MirrorServer(work / "mirror") as server:
            for k in range(args.repeats):
                order = ["yt-dlp CLI", "ytfgvc CLI"] if k % 2 == 0 else ["ytfgvc CLI", "yt-dlp CLI"]
                for name in order:
                    before = len(server.requests)
                    if name == "yt-dlp CLI":
                        out = work / f"ytdlp-{k}"
                        times[name].append(run_ytdlp_cli(server, ids, out))
                        ytdlp_files = digest(out)
                    else:
                        root = make_root(work / f"ytfgvc-{k}", ids)
                        times[name].append(run_ytfgvc_cli(server, root))
                        ytfgvc_files = digest(root / DATASET / "videos")
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

        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med["ytfgvc CLI"] / med["yt-dlp CLI"]
        n = len(ids)
        print(f"\n{'run':<22} {'median s':>9} {'per video ms':>13} {'requests/video':>15}   all runs (s)")
        for name in times:
            runs = ", ".join(f"{x:.2f}" for x in times[name])
            rpv = statistics.median(requests[name]) / n
            print(f"{name:<22} {med[name]:>9.2f} {1000 * med[name] / n:>13.1f} {rpv:>15.2f}   {runs}")
        print(f"{'ytfgvc library (1 run)':<22} {lib_s:>9.2f} {1000 * lib_s / n:>13.1f} {lib_requests / n:>15.2f}")
        print(f"\nratio ytfgvc CLI / yt-dlp CLI: {ratio:.3f}  (target <= 1.1)")
        print(f"extractions per video: {counter['n'] / n:.2f}  ({counter['n']} for {n} videos; target 1)")
        print("both tools wrote identical bytes for every video")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
