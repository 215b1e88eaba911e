#!/usr/bin/env bash
# The packed store and the flow stream on one GPU, in at most 4 minutes. Writes JSON under $OUT.
#
# Run from the repository root on a CUDA machine with torch, torchvision and OpenCV (PyAV is
# not needed: the frames are JPEGs made on the spot by benchmarks/train_throughput.py, the flow
# fields by benchmarks/_stores.py; nothing is installed or downloaded):
#     OUT=/some/folder bash benchmarks/gpu_store_session.sh
#
# Every step is time-boxed (timeout) within a total budget (STORE_SESSION_BUDGET seconds,
# default 235); a step that fails or runs out of time is logged and the next one runs (the
# per-method lines it printed stay in the log, and the summary reads them). Files (at most 4):
#   session.log        everything printed, each step's exit code and duration
#   rgb_folder.json    benchmarks/train_throughput.py --store folder: the four methods, train and
#                      test, pipeline against the model-only ceiling
#   rgb_packed.json    the same from the packed store (one uncompressed ZIP per video)
#   summary.json       packed / folder throughput per method and path (target >= 0.95), the flow
#                      TSN's pipeline / ceiling from the packed store (target >= 0.9), and that
#                      run's full results (the flow step's own JSON is folded in, then removed)
set -u
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
BUDGET=${STORE_SESSION_BUDGET:-235}
START=$(date +%s)
LOG="$OUT/session.log"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python}
# Fewer steps than the script's defaults: three runs must fit the budget. --no-data-only: the
# data path alone is not a target here.
COMMON="--no-data-only --steps 15 --warmup 3 --videos 128"
EXTRA=${STORE_SESSION_EXTRA:-} # e.g. "--device cpu --tiny --methods tsn,bninception" to try the script on a CPU

SESSION_RESERVE=12 # seconds kept for the summary at the end
. "$(dirname "$0")/_session.sh" # left, step

{
    echo "store session, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    nproc
    $PY -c "import torch, torchvision, cv2; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'opencv', cv2.__version__, 'cuda', torch.cuda.is_available())" 2>&1
} >>"$LOG"

# 1-2. The four methods from each store, one after the other on the same machine.
step rgb-folder 100 $PY benchmarks/train_throughput.py --store folder $COMMON $EXTRA --out "$OUT/rgb_folder.json"
step rgb-packed 100 $PY benchmarks/train_throughput.py --store packed $COMMON $EXTRA --out "$OUT/rgb_packed.json"

# 3. The flow TSN (Inception-V3, 4 stacks of 5 fields, 10 channels) from the packed store.
step flow-tsn 50 $PY benchmarks/train_throughput.py --store packed --modality flow --methods tsn \
    --no-data-only --steps 10 --warmup 2 --videos 32 $EXTRA --out "$OUT/flow_packed.json"

# 4. The ratios (from the JSONs, or from the per-method lines of a step cut short).
RESERVE=0 step summary 12 $PY - "$OUT" "$LOG" <<'EOF'
import json, re, sys
from pathlib import Path

out, log = Path(sys.argv[1]), Path(sys.argv[2]).read_text()

def runs(name, marker):
    path = out / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())["methods"]
    part = log.split(f"== {marker} (", 1)[1].split("\n== ", 1)[0] if f"== {marker} (" in log else ""
    found = {}
    for m, j in re.findall(r"^(\w+): (\{.*\})$", part, re.M):  # lines cut at 2000 characters are left out
        try:
            found[m] = json.loads(j)
        except ValueError:
            pass
    return found

folder, packed, flow = runs("rgb_folder", "rgb-folder"), runs("rgb_packed", "rgb-packed"), runs("flow_packed", "flow-tsn")
summary = {"packed_over_folder": {}, "targets": {"packed_over_folder": 0.95, "flow_pipeline_over_ceiling": 0.9}}
for m in folder:
    if m not in packed:
        continue
    row = {}
    for path in ("train", "test"):  # pipeline rates (clips/s, videos/s) as benchmarks/train_throughput.py writes them
        if path in folder[m] and path in packed[m]:
            row[path] = packed[m][path]["pipeline"]["rate"] / folder[m][path]["pipeline"]["rate"]
            row[f"{path}_ratio_to_ceiling"] = {"folder": folder[m][path]["ratio"], "packed": packed[m][path]["ratio"]}
    summary["packed_over_folder"][m] = row
tsn = flow.get("tsn", {})
summary["flow_tsn"] = {
    p: {
        "unit": tsn[p]["unit"],
        "ceiling": {mode: c["rate"] for mode, c in tsn[p]["ceiling"].items() if "rate" in c},
        "pipeline": tsn[p]["pipeline"]["rate"],
        "ratio": tsn[p]["ratio"],
    }
    for p in ("train", "test") if p in tsn
}
summary["flow_run"] = flow
ratios = [v for r in summary["packed_over_folder"].values() for k, v in r.items() if k in ("train", "test")]
flows = [r["ratio"] for r in summary["flow_tsn"].values()]
summary["meets"] = {  # None: not measured (a step cut short)
    "packed_over_folder": min(ratios) >= 0.95 if len(ratios) == 8 else None,
    "flow_pipeline_over_ceiling": min(flows) >= 0.9 if len(flows) == 2 else None,
}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
(out / "flow_packed.json").unlink(missing_ok=True)  # folded into summary.json (at most 4 files)
print(json.dumps({k: summary[k] for k in ("packed_over_folder", "flow_tsn", "meets")}, indent=1))
EOF

echo "== done after $(($(date +%s) - START))s of ${BUDGET}s" | tee -a "$LOG"
