#!/usr/bin/env bash
# The GPU sessions of issue 20, on one GPU with ~16 cores, from the repository root, offline, without
# `pip install` (PYTHONPATH is the clone). Two parts, each one call of at most 10 minutes:
#
#   OUT=/some/dir bash baselines/synthetic/gpu_session.sh 1   # rra-vs-tsn headline (tsn, rra, avgpool x 10
#                                                               # seeds) + redundancy (4 shares x 2 x 4 seeds)
#   OUT=/some/dir bash baselines/synthetic/gpu_session.sh 2   # crest-attention (224 px, 4 x 3 seeds) +
#                                                               # rra-vs-tsn's 16 other variants x 3 seeds
#
# Every step is time-boxed (`timeout`, and `--stop-after` so that no run starts too late: runs go seed by
# seed, so a part cut short has whole seeds), every study resumes (a second call on the same machine skips
# what is done), and whatever finished is exported. OUT receives at most 4 files per part:
#   session-<part>.json          wall time of every step and of the part, exit codes, the GPU (nvidia-smi)
#   log-<part>.txt               the steps' output
#   <study>-gpu-<part>.tar.gz    per study: results-*/ (runs.json, study.json, attention.json), the report as
#                                rendered there and its figures, the run folders' small files (no checkpoints)
# Back on a CPU, in the clone (merges the parts into the committed results, then rebuilds the reports):
#   python -m ytfgvc study rra-vs-tsn --profile gpu --results-only \
#       --merge rra-vs-tsn-gpu-1.tar.gz --merge rra-vs-tsn-gpu-2.tar.gz
#   python -m ytfgvc study redundancy --profile gpu --results-only --merge redundancy-gpu-1.tar.gz
#   python -m ytfgvc study crest-attention --profile gpu --results-only --merge crest-attention-gpu-2.tar.gz
set -u
PART=${1:?usage: OUT=dir bash baselines/synthetic/gpu_session.sh 1|2}
OUT=${OUT:?set OUT to the folder that receives the results}
BUDGET=${BUDGET:-535}             # seconds for the whole part; the device's limit per call is 600
PROFILE=${PROFILE:-gpu}           # micro: a plumbing check of this script on a CPU, in minutes
WORK=${WORK:-/tmp/ytfgvc-issue20}  # data, runs, reports, exports (kept between calls on one machine)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python}
mkdir -p "$OUT" "$WORK"
LOG=$OUT/log-$PART.txt
STEPS=$WORK/steps-$PART.tsv
: >"$LOG"
: >"$STEPS"
T0=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - T0))); }
pos() { echo $(($1 > 0 ? $1 : 0)); }

# step NAME LIMIT_S COMMAND...: run COMMAND under `timeout` (its whole process group), log it, time it.
step() {
  local name=$1 limit=$2 t rc
  shift 2
  if [ "$limit" -lt 10 ]; then
    printf '%s\t%s\t%s\t%s\n' "$name" "$(($(date +%s) - T0))" 0 skipped >>"$STEPS"
    echo "== $name: skipped, no time left" >>"$LOG"
    return 0
  fi
  t=$(date +%s)
  echo "== $name (limit ${limit}s, at $((t - T0))s): $*" >>"$LOG"
  timeout -k 15 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$((t - T0))" "$(($(date +%s) - t))" "$rc" >>"$STEPS"
  echo "== $name: exit $rc after $(($(date +%s) - t))s" >>"$LOG"
  return 0
}

# study NAME PART_TAG STOP_AFTER LIMIT [ARGS...]: run a study's gpu profile, then make sure it is exported.
study() {
  local name=$1 tag=$2 stop=$3 limit=$4 export=$WORK/export/$1
  shift 4
  step "$name: runs" "$limit" $PY -m ytfgvc study "$name" --profile "$PROFILE" --root "$WORK/data" \
    --out "$WORK/runs" --report "$WORK/report/$name/README.md" --export "$export" --stop-after "$(pos "$stop")" \
    --no-progress "$@"
  if [ ! -f "$export"/results-*/runs.json ] || [ "$(tail -1 "$STEPS" | cut -f4)" != 0 ]; then
    # Killed or failed before its export: rebuild from the run folders that finished.
    step "$name: export" "$(($(left) - 10 > 120 ? 120 : $(left) - 10))" $PY -m ytfgvc study "$name" --profile "$PROFILE" \
      --root "$WORK/data" --out "$WORK/runs" --report "$WORK/report/$name/README.md" --export "$export" \
      --results-only --no-progress
  fi
  if [ -d "$export" ]; then
    tar -czf "$OUT/$name-$PROFILE-$tag.tar.gz" -C "$export" .
  fi
}

ABLATIONS=${ABLATIONS:-k1,k2,k3,k5,spatial_attention,no_bn,no_relu,no_tanh,neg_relu,parallel,loss_lc,loss_le,loss_lc_le,loss_lc_li_le,loss_li,loss_lc_li}

case $PART in
1)
  # The redundancy study's four datasets are made in the background, niced, while the headline runs.
  timeout -k 5 300 nice -n 10 $PY -m ytfgvc study redundancy --profile "$PROFILE" --root "$WORK/data" --data-only \
    --no-progress >"$WORK/redundancy-data.log" 2>&1 &
  BG=$!
  study rra-vs-tsn 1 230 330 --variants tsn,rra,avgpool
  t=$(date +%s)
  wait $BG
  rc=$?
  printf '%s\t%s\t%s\t%s\n' "redundancy: data (background)" "-" "$(($(date +%s) - t)) waited" "$rc" >>"$STEPS"
  cat "$WORK/redundancy-data.log" >>"$LOG"
  study redundancy 1 "$(($(left) - 75))" "$(($(left) - 20))"
  ;;
2)
  timeout -k 5 240 nice -n 10 $PY -m ytfgvc study rra-vs-tsn --profile "$PROFILE" --root "$WORK/data" --data-only \
    --no-progress >"$WORK/rra-vs-tsn-data.log" 2>&1 &
  BG=$!
  study crest-attention 2 170 250
  t=$(date +%s)
  wait $BG
  rc=$?
  printf '%s\t%s\t%s\t%s\n' "rra-vs-tsn: data (background)" "-" "$(($(date +%s) - t)) waited" "$rc" >>"$STEPS"
  cat "$WORK/rra-vs-tsn-data.log" >>"$LOG"
  study rra-vs-tsn 2 "$(($(left) - 70))" "$(($(left) - 20))" --variants "$ABLATIONS"
  ;;
*)
  echo "part must be 1 or 2" >&2
  exit 2
  ;;
esac

GPU=$(nvidia-smi --query-gpu=name --format=csv 2>&1 | tr '\n' ';')
$PY - "$OUT/session-$PART.json" "$STEPS" "$PART" "$(($(date +%s) - T0))" "$BUDGET" "$GPU" <<'EOF'
import json, os, platform, sys
path, steps, part, wall, budget, gpu = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(steps) if line.strip()]
doc = {
    "part": int(part),
    "wall_time_s": int(wall),
    "budget_s": int(budget),
    "nvidia_smi": gpu,
    "host": platform.node(),
    "cpus": os.cpu_count(),
    "steps": [{"step": r[0], "started_at_s": r[1], "seconds": r[2], "exit": r[3]} for r in rows],
    "files": sorted(os.listdir(os.path.dirname(path) or ".")),
}
json.dump(doc, open(path, "w"), indent=2)
EOF
ls -la "$OUT" >>"$LOG"
echo "part $PART done in $(($(date +%s) - T0))s"
