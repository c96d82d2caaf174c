#!/usr/bin/env bash
# The powered suite's runs (issue 21), in the order that gives verdicts soonest: the methods the
# papers' claims name, three seeds, seed by seed; then every other method; then the second task
# order for sequential, fixed replay and MSSR. Resumable: finished runs are skipped, a stopped
# run continues from its checkpoint. Run it in the background and commit results as runs finish:
#
#   nohup setsid scripts/power-queue.sh > /tmp/power-queue.log 2>&1 &
#
# Afterwards: cargo xtask rescore --results experiments/results-power --suite power \
#   --task arc-easy-probe --limit 256   (and --corpus openwebtext --limit 64), then cargo xtask report.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-experiments/results-power}
JOBS=${JOBS:-2}
CLAIMS=sequential,fixed-replay,mssr,loss-driven,accuracy-supervised,sam,xsam,mssr-xsam,kl,kl-corpus
OTHERS=joint,mssr-kl,mssr-sampler-only,mssr-scheduler-only,wise-ft,ewc,lwf,agem,derpp,olora
# A copy of the binary: a build from another worktree sharing the target directory must not
# swap it under a queue that runs for days.
BIN=${BIN:-/tmp/power-xtask}
if [ ! -x "$BIN" ]; then cargo build -q -p xtask && cp target/debug/xtask "$BIN"; fi
suite() { "$BIN" suite --suite power --out "$OUT" --jobs "$JOBS" --resume "$@"; }
for methods in "$CLAIMS" "$OTHERS"; do
  for seed in 0 1 2; do
    suite --methods "$methods" --seeds 1 --first-seed "$seed"
  done
done
suite --methods sequential,fixed-replay,mssr --seeds 3 --order reversed
