# The time-boxed steps of benchmarks/gpu_store_session.sh and benchmarks/gpu_tvl1_session.sh (sourced).
# The script sets BUDGET (seconds for the whole session), START (its start, date +%s), LOG, and
# SESSION_RESERVE (seconds kept for its last step); RESERVE=0 before a step lets it use them.

left() { echo $((BUDGET - ($(date +%s) - START))); }

step() { # step NAME MAX_SECONDS COMMAND... : run under timeout min(MAX, budget left); never stops the session
    local name=$1 max=$2 remain t started rc
    shift 2
    remain=$(($(left) - ${RESERVE:-$SESSION_RESERVE}))
    t=$((max < remain ? max : remain))
    if ((t < 10)); then
        echo "== $name: skipped, ${remain}s of the budget left" | tee -a "$LOG"
        return 0
    fi
    echo "== $name (timeout ${t}s) at $(date +%T)" | tee -a "$LOG"
    started=$(date +%s)
    timeout -k 5 "$t" "$@" >>"$LOG" 2>&1
    rc=$?
    echo "== $name: exit $rc after $(($(date +%s) - started))s" | tee -a "$LOG"
    return 0
}
