#!/usr/bin/env bash
# The Slurm launcher against a real Slurm: a one-node cluster on localhost (Debian's slurmctld,
# slurmd and munge, installed where missing; its own slurm.conf; run as root, no systemd).
#
#   bash scripts/slurm-test.sh            # needs root; about 3 minutes on 2 cores, built binary aside
#
# 1. `cargo xtask suite --suite smoke --launcher slurm --submit` queues 4 runs (sequential,
#    mssr, fixed-replay, sam; seed 0; 384 steps each, a few seconds) as one job array, at most 2
#    at a time, and the report job (afterany on the array).
# 2. Once the mssr run has logged some steps, `scontrol requeue` stops its array task mid-way:
#    Slurm sends SIGTERM, the run checkpoints at its next step and exits 75; Slurm requeues the
#    task, which starts again with --resume.
# 3. Checks: every array task COMPLETED, the requeued task restarted (SLURM_RESTART_COUNT 1 in
#    its log, the checkpointed stop in its log), every run.json says complete, the requeued
#    run's matrix equals an uninterrupted twin's (run here, outside Slurm) bit for bit, and the
#    report (report.html, summary.md) exists.
# The cluster is stopped on exit. SLURM_TEST_KEEP=1 keeps it (and its state folder) for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
START=$(date +%s)
say() { echo "[slurm-test $(( $(date +%s) - START ))s] $*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/slurm-test.sh: needs root (it starts munged, slurmctld and slurmd)" >&2
    exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurmctld, slurmd, slurm-client and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/continual-lm/ci-target}"
STATE=$(mktemp -d /tmp/cl-slurm.XXXXXX)
chmod 755 "$STATE"
say "building xtask"
cargo build -q -p xtask
# A copy: the array's tasks all run this one binary, whatever a later build leaves in the target.
cp "$CARGO_TARGET_DIR/debug/xtask" "$STATE/xtask"
XTASK="$STATE/xtask"
export SLURM_CONF="$STATE/slurm.conf"
HOST=$(hostname -s)

cleanup() {
    local rc=$?
    if [ "${SLURM_TEST_KEEP:-0}" = 1 ]; then
        echo "kept: SLURM_CONF=$SLURM_CONF (state in $STATE)"
        return
    fi
    scancel --full -u root 2>/dev/null || true
    for f in slurmd slurmctld; do
        [ -s "$STATE/$f.pid" ] && kill "$(cat "$STATE/$f.pid")" 2>/dev/null || true
    done
    if [ -n "${MUNGE_PID:-}" ]; then kill "$MUNGE_PID" 2>/dev/null || true; fi
    sleep 1
    if [ $rc -ne 0 ]; then
        echo "---- slurmctld.log (tail)"; tail -n 30 "$STATE/slurmctld.log" 2>/dev/null || true
        echo "---- slurmd.log (tail)"; tail -n 30 "$STATE/slurmd.log" 2>/dev/null || true
        for f in "$STATE"/results/slurm/smoke/logs/*.out; do
            [ -e "$f" ] && { echo "---- $f"; tail -n 20 "$f"; }
        done
    fi
    rm -rf "$STATE"
}
trap cleanup EXIT

# ---- munge: its own socket and pid file, the package's key (made if missing)
mkdir -p "$STATE/munge" /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown root:root /etc/munge/munge.key "$STATE/munge"
chmod 400 /etc/munge/munge.key
chmod 700 "$STATE/munge"
MUNGE_SOCKET="$STATE/munge/munge.socket"
munged --force --socket="$MUNGE_SOCKET" --pid-file="$STATE/munge/munged.pid" \
    --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
MUNGE_PID=$(cat "$STATE/munge/munged.pid")

# ---- slurm.conf: this node's real CPUs and memory, 1 CPU per array task
NODE=$(slurmd -C | head -n 1 | sed "s/^NodeName=[^ ]*/NodeName=$HOST/")
mkdir -p "$STATE/ctld" "$STATE/spool"
cat >"$SLURM_CONF" <<EOF
ClusterName=cltest
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldPort=${SLURM_TEST_PORT:-6917}
SlurmdPort=$(( ${SLURM_TEST_PORT:-6917} + 1 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
KillWait=60
MinJobAge=3600
$NODE State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

say "starting slurmctld and slurmd on $HOST"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
    sinfo -h -o '%t' 2>/dev/null | grep -q -E '^(idle|mix|alloc)' && break
    sleep 1
done
sinfo
sinfo -h -o '%t' | grep -q -E '^(idle|mix|alloc)' || { echo "the node did not come up" >&2; exit 1; }

if [ "${SLURM_TEST_CLUSTER_ONLY:-0}" = 1 ]; then
    SLURM_TEST_KEEP=1
    say "cluster up (SLURM_TEST_CLUSTER_ONLY=1)"
    exit 0
fi

# ---- the suite as a job array: 4 runs, 2 at a time, one CPU each
OUT="$STATE/results"
METHODS=(sequential mssr fixed-replay sam)
SET=(--set checkpoint_every=16)
say "submitting ${#METHODS[@]} smoke runs through cargo xtask suite --launcher slurm --submit"
SUBMITTED=$("$XTASK" suite --suite smoke --methods "$(IFS=,; echo "${METHODS[*]}")" --seeds 1 \
    --device cpu "${SET[@]}" --out "$OUT" --log-level warn \
    --launcher slurm --max-parallel 2 --cpus-per-task 1 --time 00:20:00 --submit)
echo "$SUBMITTED"
ARRAY=$(sed -n 's/^array job \([0-9]*\) .*/\1/p' <<<"$SUBMITTED")
REPORT=$(sed -n 's/.*report job \([0-9]*\) .*/\1/p' <<<"$SUBMITTED")
[ -n "$ARRAY" ] && [ -n "$REPORT" ] || { echo "no job ids in: $SUBMITTED" >&2; exit 1; }
TSV="$OUT/slurm/smoke/tasks.tsv"
index_of() { grep -n "/$1.toml" "$TSV" | cut -d: -f1 | awk '{print $1 - 1}'; }

# The uninterrupted twins, outside Slurm, while the array runs.
say "running the uninterrupted twins of mssr and fixed-replay outside Slurm"
RAYON_NUM_THREADS=1 "$XTASK" suite --suite smoke --methods mssr,fixed-replay --seeds 1 --device cpu \
    "${SET[@]}" --out "$STATE/twin" --log-level warn 2>"$STATE/twin.log" &
TWIN=$!

steps() {
    local n
    n=$(grep -c '"type":"step"' "$OUT/smoke/$1/0/log.jsonl" 2>/dev/null || true)
    echo "${n:-0}"
}
wait_steps() { # method, steps
    for _ in $(seq 6000); do
        [ "$(steps "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    echo "$1 never logged $2 steps" >&2
    exit 1
}
# Preemption as Slurm does it: SIGTERM to the job, then back into the queue.
wait_steps mssr 60
say "scontrol requeue ${ARRAY}_$(index_of mssr) (mssr, $(steps mssr) steps logged)"
scontrol requeue "${ARRAY}_$(index_of mssr)"
# The time limit coming (--signal=B:USR1@...): the batch script's USR1, the run checkpoints and the
# script requeues its own task.
wait_steps fixed-replay 100
say "USR1 to the batch script of ${ARRAY}_$(index_of fixed-replay) (fixed-replay, $(steps fixed-replay) steps logged)"
scancel --batch --signal=USR1 "${ARRAY}_$(index_of fixed-replay)"

say "waiting for the array and the report job"
for _ in $(seq 1200); do
    [ -z "$(squeue -h -j "$ARRAY,$REPORT" 2>/dev/null)" ] && break
    sleep 1
done
[ -z "$(squeue -h -j "$ARRAY,$REPORT")" ] || { squeue; echo "jobs still queued after 20 minutes" >&2; exit 1; }
wait "$TWIN"
say "all jobs left the queue"

# ---- checks
fail() { echo "FAILED: $*" >&2; exit 1; }
STATES=$(scontrol show job "$ARRAY" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort | uniq -c)
echo "array task states: $STATES"
[ "$(scontrol show job "$ARRAY" | grep -c 'JobState=COMPLETED')" -eq ${#METHODS[@]} ] \
    || fail "not every array task COMPLETED"
scontrol show job "$REPORT" | grep -q 'JobState=COMPLETED' || fail "the report job did not complete"
for m in "${METHODS[@]}"; do
    grep -q '"status": *"complete"' "$OUT/smoke/$m/0/run.json" || fail "$m: run.json is not complete"
done
for m in mssr fixed-replay; do
    LOG=$(ls "$OUT"/slurm/smoke/logs/"${ARRAY}_$(index_of "$m")".out)
    grep -q 'restart 1)' "$LOG" || fail "$m: its array task did not restart ($LOG)"
    grep 'stopped: interrupted by a signal at step' "$LOG" || fail "$m: no checkpointed stop in $LOG"
    python3 - "$OUT/smoke/$m/0" "$STATE/twin/smoke/$m/0" <<'PY' || fail "$m: the requeued run differs from its twin"
import json, sys
a, b = sys.argv[1:]
rows = lambda d: json.load(open(f"{d}/matrix.json"))["rows"]
steps = lambda d: [json.loads(l) for l in open(f"{d}/log.jsonl") if '"type":"step"' in l]
assert rows(a) == rows(b), (rows(a), rows(b))
assert steps(a) == steps(b), "the step logs differ"
print(f"{a}: matrix equal to the twin's bit for bit, {len(steps(a))} steps logged once each")
assert len(steps(a)) == 384
PY
done
grep -h 'requeueing job' "$OUT"/slurm/smoke/logs/*.out >/dev/null || fail "the USR1 task did not requeue itself"
test -s "$OUT/report.html" && test -s "$OUT/summary.md" || fail "no report"
say "passed: ${#METHODS[@]} runs complete, 2 requeued runs equal their twins, report written"
