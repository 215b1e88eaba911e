"""What does ``--executor ray`` cost over ``--executor local`` on one machine?

The synthetic dataset is downloaded (from its mirror over loopback) and its frames
prepared twice, in the same process, on copies of the same root: once by the local
executor and once by a Ray started in this process with as many CPUs as ``--jobs``
(Ray's start-up is timed apart). Both runs must end with the same manifest hash and the
same frames. Printed: wall times, the ratio ray / local for each stage (target: close to
1 for download, where each video waits on the network; prepare pays a task per video) and
the cost per video. On a cluster the point is more machines, not this ratio.

Usage:
    python benchmarks/ray_executor.py --classes 4 --videos-per-class 6 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ytfgvc.distributed import ClusterConfig  # noqa: E402
from ytfgvc.download import DownloadConfig, download  # noqa: E402
from ytfgvc.prepare import PrepareConfig, prepare_dataset  # noqa: E402
from ytfgvc.synth import SynthConfig, generate  # noqa: E402

DATASET = "synthetic"


def _frames(root: Path) -> dict[str, bytes]:
    base = root / DATASET / "frames"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*.jpg"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--videos-per-class", type=int, default=6)
    ap.add_argument("--jobs", type=int, default=2, help="local threads/processes, and the Ray CPUs")
    ap.add_argument("--short-side", type=int, default=128)
    args = ap.parse_args()
    import ray

    with tempfile.TemporaryDirectory(prefix="ytfgvc-bench-") as tmp:
        base = Path(tmp) / "base"
        cfg = SynthConfig(classes=args.classes, videos_per_class=args.videos_per_class, seed=0)
        generate(base, cfg, jobs=args.jobs)
        roots = {name: shutil.copytree(base, Path(tmp) / name) for name in ("local", "ray")}
        print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        t = time.perf_counter()
        ray.init(num_cpus=args.jobs, include_dashboard=False, logging_level="WARNING")
        startup = time.perf_counter() - t
        times: dict[str, dict[str, float]] = {}
        hashes, counts = {}, {}
        for name, cluster in (("local", ClusterConfig()), ("ray", ClusterConfig("ray"))):
            t = time.perf_counter()
            r = download(roots[name], DownloadConfig(dataset=DATASET, jobs=args.jobs, cluster=cluster), progress=False)
            t_dl = time.perf_counter() - t
            t = time.perf_counter()
            p = prepare_dataset(
                roots[name], DATASET, PrepareConfig(jobs=args.jobs, short_side=args.short_side, cluster=cluster)
            )
            times[name] = {"download": t_dl, "prepare": time.perf_counter() - t}
            hashes[name], counts[name] = r.manifest_hash, (r.totals.get("ok", 0), p.made_frames)
        ray.shutdown()
        assert hashes["local"] == hashes["ray"], "the two executors obtained different snapshots"
        assert _frames(roots["local"]) == _frames(roots["ray"]), "the two executors wrote different frames"
    n_dl, n_prep = counts["local"]
    print(f"Ray start-up (not counted below): {startup:.1f} s")
    print(f"{'stage':<10} {'videos':>6} {'local s':>8} {'ray s':>8} {'ray/local':>9} {'extra ms/video':>15}")
    for stage, n in (("download", n_dl), ("prepare", n_prep)):
        lo, ra = times["local"][stage], times["ray"][stage]
        print(f"{stage:<10} {n:>6} {lo:>8.2f} {ra:>8.2f} {ra / lo:>9.2f} {1000 * (ra - lo) / max(n, 1):>15.0f}")
    print("same manifest hash and byte-identical frames from both executors")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
