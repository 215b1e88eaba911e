#!/usr/bin/env bash
# TV-L1 on one GPU, in about 5 minutes: the reference torch kernel against the fused Triton
# kernels, on synthetic pairs and on a video file, with profiles. Writes JSON under $OUT.
#
# Run from the repository root on a CUDA machine with torch, triton and opencv-contrib
# installed (nothing is installed or downloaded here):
#     OUT=/some/folder bash benchmarks/gpu_tvl1_session.sh
#
# Every step is time-boxed (timeout) within a total budget (TVL1_SESSION_BUDGET seconds,
# default 285); a step that fails or runs out of time is logged and the next one runs.
# The benchmarks rewrite their JSON after every variant, so a step cut short keeps what it
# measured. Files (at most 6):
#   session.log      everything printed, each step's exit code and duration
#   synthetic.json   benchmarks/flow_torch.py on synthetic 340x256 pairs: OpenCV 1 thread,
#                    reference eager at batch 256/512, Triton at 256/512 and launch variants,
#                    reference torch.compile at 512; EPE vs OpenCV/reference/truth; profiles
#   video.json       the same (fewer variants) on consecutive frames of a video file made by
#                    `ytfgvc synth` (rendered, H.264 -- not filmed footage)
#   kernels.json     benchmarks/tvl1_kernels.py: per-kernel times against the copy bandwidth
#   ncu.csv          Nsight Compute's SpeedOfLight/Occupancy of the Triton kernels (if ncu exists)
#   summary.json     the headline numbers of the files above
set -u
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
BUDGET=${TVL1_SESSION_BUDGET:-285}
START=$(date +%s)
LOG="$OUT/session.log"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python}

SESSION_RESERVE=15 # seconds kept for the summary at the end
. "$(dirname "$0")/_session.sh" # left, step

{
    echo "TV-L1 GPU session, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv 2>&1
    $PY -c "import torch, triton, cv2; print('torch', torch.__version__, 'triton', triton.__version__, 'opencv', cv2.__version__, 'cuda', torch.cuda.is_available())" 2>&1
} >>"$LOG"

# 1. Synthetic pairs: the reference (eager, then compiled, last: its compilation is the slowest
#    part) against the Triton kernels, with torch.profiler on one batch of each kind.
step synthetic 170 $PY benchmarks/flow_torch.py \
    --variants "torch@256,torch@512,triton@256,triton@512,triton+graphs=0@512,triton+iteration_block=256@512,torch+compile=default@512" \
    --opencv-pairs 6 --jobs 0 --cpu-pairs 0 --min-time 1 --profile --out "$OUT/synthetic.json"

# 2. A video file: `ytfgvc synth` renders small H.264 videos (not filmed footage); the first one's
#    consecutive frames, resized to 340x256.
#    TVL1_VIDEO names a file made elsewhere (a machine without PyAV cannot run synth).
if [ -n "${TVL1_VIDEO:-}" ]; then
    VIDEO=$TVL1_VIDEO
else
    VIDEO_ROOT=$(mktemp -d)
    step synth 30 $PY -m ytfgvc synth --classes 2 --videos-per-class 2 --jobs 4 --root "$VIDEO_ROOT"
    VIDEO=$(find "$VIDEO_ROOT" -name '*.mp4' 2>/dev/null | sort | head -n 1)
fi
if [ -n "$VIDEO" ]; then
    echo "video: $VIDEO" >>"$LOG"
    step video 60 $PY benchmarks/flow_torch.py --video "$VIDEO" \
        --variants "torch@512,triton@512,triton+graphs=0@512" \
        --opencv-pairs 6 --jobs 0 --cpu-pairs 0 --min-time 1 --out "$OUT/video.json"
else
    echo "== video: skipped, ytfgvc synth made no video" | tee -a "$LOG"
fi

# 3. Per-kernel times against the copy bandwidth (where the time goes inside an iteration).
step kernels 35 $PY benchmarks/tvl1_kernels.py --batch 256 --out "$OUT/kernels.json"

# 4. The GPU tests of the Triton path (reference vs Triton on CUDA, CUDA graphs on and off).
step gpu-tests 45 $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_tvl1_triton.py

# 5. Nsight Compute, where installed (and allowed to read the counters).
if command -v ncu >/dev/null 2>&1; then
    step ncu 40 bash -c "ncu --section SpeedOfLight --section Occupancy --csv --page details -k regex:tvl1_ -c 4 \
        $PY benchmarks/tvl1_kernels.py --ncu --batch 128 > '$OUT/ncu.csv'"
else
    echo "== ncu: not installed" | tee -a "$LOG"
fi

# 6. The headline numbers.
RESERVE=0 step summary 15 $PY - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
summary = {}
for name in ("synthetic", "video"):
    path = out / f"{name}.json"
    if not path.exists():
        summary[name] = "missing"
        continue
    data = json.loads(path.read_text())
    rows = []
    for row in data["rows"]:
        hours = row.get("gpu_hours") or row.get("cpu_hours") or {}
        rows.append({
            "method": row["method"], "pairs_per_s": row.get("pairs_per_s"), "error": row.get("error"),
            "x_opencv_1_thread": row.get("x_opencv_1_thread"), "epe": row.get("epe"),
            "hours_per_minute_of_video": {k: v.get("per_minute_of_average_video_length") for k, v in hours.items()},
        })
    timed = [r for r in data["rows"] if r.get("pairs_per_s") and r.get("kernel")]
    best = {k: max((r for r in timed if r["kernel"] == k), key=lambda r: r["pairs_per_s"], default=None)
            for k in ("torch", "triton")}
    entry = {"device": data["environment"]["device"], "rows": rows,
             "iterations": data["accuracy"].get("iterations"),
             "best_torch": best["torch"] and best["torch"]["method"], "best_triton": best["triton"] and best["triton"]["method"]}
    if best["torch"] and best["triton"]:
        entry["triton_speedup_over_best_reference"] = best["triton"]["pairs_per_s"] / best["torch"]["pairs_per_s"]
        entry["triton_pairs_per_s"] = best["triton"]["pairs_per_s"]
        entry["meets_600_pairs_per_s"] = best["triton"]["pairs_per_s"] >= 600
        entry["triton_epe_vs_opencv"] = best["triton"]["epe"].get("vs_opencv")
        entry["triton_epe_vs_reference"] = best["triton"]["epe"].get("vs_reference")
    entry["profiles"] = [{k: p.get(k) for k in ("variant", "wall_ms", "gpu_busy_fraction", "kernel_launches", "error")}
                         | {"top": [(t["name"][:80], round(t.get("gpu_ms", 0), 2)) for t in p.get("top", [])[:6]]}
                         for p in data.get("profiles", [])]
    summary[name] = entry
path = out / "kernels.json"
summary["kernels"] = json.loads(path.read_text())["kernels"] if path.exists() else "missing"
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=1)[:6000])
EOF

rm -rf "$VIDEO_ROOT"
echo "== done after $(($(date +%s) - START))s of ${BUDGET}s" | tee -a "$LOG"
