#!/usr/bin/env bash
# One GPU session for issue 22 (parts 2-4), on one GPU with 16 cores (an H100): throughput in
# steady state of the four methods (train and test), I3D's test path before and after and from
# disk, the time to Table 6, and torch.compile. Every step is time-boxed, a failed step does not
# stop the others, and the whole stays under BUDGET seconds (default 450); each JSON is written as
# its figures come, so a step cut short keeps what it measured. Needs torch, torchvision,
# opencv-python-headless (no PyAV, no network).
#
#   OUT=/path bash benchmarks/gpu_speed_session.sh                    # the main session (~7.5 min)
#   OUT=/path SESSION=compile bash benchmarks/gpu_speed_session.sh    # the compile modes left (~7.5 min)
#
# $OUT gets (7 files at most): throughput.json, i3d_test_loader.json, time_to_table6.json,
# compile.json, env.json, session.log, summary.md (printed at the end).
set -u
: "${OUT:?set OUT to the folder for the results}"
SESSION=${SESSION:-main}
BUDGET=${BUDGET:-450}
PY=${PYTHON:-python}
WORK=${WORK:-/tmp/ytfgvc-speed}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
LOG=$OUT/session.log
STEPS=$WORK/steps.tsv
: > "$STEPS"
START=$SECONDS

left() { echo $((BUDGET - (SECONDS - START))); }

# step NAME MAX_S MIN_S COMMAND...: run COMMAND for at most MAX_S seconds (less if the budget is
# shorter), or skip it when fewer than MIN_S seconds are left.
step() {
    local name=$1 max=$2 min=$3
    shift 3
    local rest
    rest=$(left)
    if ((rest < min)); then
        echo "[$name] skipped: ${rest} s of the budget left" | tee -a "$LOG"
        printf '%s\tskipped\t0\n' "$name" >> "$STEPS"
        return
    fi
    local limit=$((max < rest ? max : rest)) t0=$SECONDS
    echo "[$name] at $((SECONDS - START)) s, up to ${limit} s: $*" | tee -a "$LOG"
    timeout --signal=TERM --kill-after=15 "$limit" "$@" >> "$LOG" 2>&1
    local rc=$?
    echo "[$name] exit $rc after $((SECONDS - t0)) s" | tee -a "$LOG"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$STEPS"
}

EXTRA=${EXTRA:-}  # more options for both scripts (a CPU rehearsal: EXTRA="--device cpu --tiny")
TP="$PY benchmarks/train_throughput.py --frames-root $WORK/frames --ceiling-steps 20 $EXTRA"
T6="$PY benchmarks/time_to_table6.py --frames-root $WORK/frames6 $EXTRA"

{
    echo "session $SESSION, budget $BUDGET s, $(date -u +%FT%TZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|NUMA node\(s\))' || true
    free -g | head -2
    df -h "$WORK" | tail -1
    $PY -c "
import importlib
for name in ('torch', 'torchvision', 'numpy', 'PIL', 'cv2', 'yaml', 'tqdm'):
    try:
        print(name, getattr(importlib.import_module(name), '__version__', '?'))
    except ImportError as e:
        print(name, 'MISSING', e)
"
} > "$WORK/env.txt" 2>&1
cat "$WORK/env.txt" | tee -a "$LOG"

# The frames, made once by a process pool: 256 videos x 60 distinct 340x256 JPEGs (throughput), and
# 128 x 48 written as `ytfgvc prepare` writes them (OpenCV, quality 95; time to Table 6).
step frames 60 0 $PY -c "
import sys; sys.path.insert(0, 'benchmarks')
from pathlib import Path
from train_throughput import make_frames
make_frames(Path('$WORK/frames'), 256, 60, '340x256', 90, 'torchvision')
make_frames(Path('$WORK/frames6'), 128, 48, '340x256', 95, 'cv2')
"
sync

# Could this machine drop the whole page cache (opened for writing, nothing written)? The cold runs
# do not need it: they drop each file just before reading it (POSIX_FADV_DONTNEED).
if (exec 3>/proc/sys/vm/drop_caches) 2>/dev/null; then DROP=writable; else DROP=not-writable; fi
echo "drop_caches: $DROP" | tee -a "$LOG"

if [ "$SESSION" = main ]; then
    # 1. Eager, steady state, every method and path: ceiling, data path alone, pipeline (I3D first).
    step throughput 190 60 $TP --methods i3d,bninception,rra,tsn --label eager --out "$OUT/throughput.json"
    # 2. I3D's test path: main's settings (12 workers, no read-ahead) against this branch's defaults (in 1),
    #    16 workers, and from disk (every file dropped from the page cache before it is read).
    step i3d_test_loader 100 40 $TP --methods i3d --splits test --out "$OUT/i3d_test_loader.json" \
        --variants "before:workers=12,read_ahead=0,steps=100;workers16:workers=16,data_only=1,steps=100;cold:cold=1,steps=100;cold-before:cold=1,workers=12,read_ahead=0,data_only=1,steps=100"
    # 3. Time to Table 6, eager (RRA frozen and unfrozen), through the engine.
    step time_to_table6 100 45 $T6 --out "$OUT/time_to_table6.json"
    # 4. torch.compile (default mode) where it matters most: I3D's training (half of Table 6's hours)
    #    and test path (its pipeline too), then RRA's and TSN's training ceilings.
    step compile_i3d 150 60 $TP --methods i3d --compile default --pipeline-compile default --no-data-only \
        --steps 100 --out "$WORK/compile_i3d.json"
    step compile_rra_tsn 150 70 $TP --methods rra,tsn --splits train --compile default --ceilings-only \
        --out "$WORK/compile_rra_tsn.json"
else
    # The compile measurements the main session had no time for: the other paths in default mode,
    # then the other modes on I3D's training.
    step compile_rest 240 60 $TP --methods bninception,rra,tsn --splits test,train --compile default \
        --ceilings-only --out "$WORK/compile_rest.json"
    step compile_modes 200 60 $TP --methods i3d --splits train \
        --compile reduce-overhead,max-autotune-no-cudagraphs,max-autotune --ceilings-only \
        --out "$WORK/compile_modes.json"
fi

$PY - "$WORK" "$OUT" "$DROP" "$SESSION" <<'EOF'
import json, sys
from pathlib import Path
work, out, drop, session = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
steps = [line.split("\t") for line in (work / "steps.tsv").read_text().splitlines() if line]
env = {"session": session, "drop_caches": drop, "env": (work / "env.txt").read_text(),
       "steps": [{"step": s, "exit": rc, "seconds": int(t)} for s, rc, t in steps]}
(out / "env.json").write_text(json.dumps(env, indent=1) + "\n")
EOF
MERGE=()
if ls "$WORK"/compile_*.json > /dev/null 2>&1; then MERGE=(--merge-compile "$WORK"/compile_*.json); fi
$PY benchmarks/speed_summary.py "$OUT" ${MERGE[@]+"${MERGE[@]}"} > "$OUT/summary.md" 2>> "$LOG"
cat "$OUT/summary.md"
echo "session: $((SECONDS - START)) s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
