#!/usr/bin/env bash
# The powered suite's runs (issue 21), in the order that gives verdicts soonest: the methods the
# papers' claims name, three seeds, seed by seed; then every other method; then the second task
# order for sequential, fixed replay and MSSR. Resumable: finished runs are skipped, a stopped
# run continues from its checkpoint. Run it in the background and commit results as runs finish:
#
#   nohup setsid scripts/power-queue.sh > /tmp/power-queue.log 2>&1 &
#
# After each batch of runs it rescores the finished ones (incrementally): general ability on 256
# ARC-Easy records and the loss on 64 held-out openwebtext passages, backbone against final
# adapter. Then: cargo xtask report --results experiments/results-power.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-experiments/results-power}
JOBS=${JOBS:-2}
CLAIMS=sequential,fixed-replay,mssr,loss-driven,loss-driven-matched,accuracy-supervised,sam,xsam,mssr-xsam,kl,kl-corpus
OTHERS=joint,mssr-kl,mssr-sampler-only,mssr-scheduler-only,wise-ft,ewc,lwf,agem,derpp,olora
# A copy of the binary: a build from another worktree sharing the target directory must not
# swap it under a queue that runs for days.
# run.json's git_revision is HEAD when a run starts, which moves on while the queue runs; the
# binary's own source revision is recorded once, in $OUT/binary.json.
BIN=${BIN:-/tmp/power-xtask}
if [ ! -x "$BIN" ]; then
  cargo build -q -p xtask && cp target/debug/xtask "$BIN"
  mkdir -p "$OUT"
  printf '{"built_from": "%s", "dirty": %s, "sha256": "%s", "built_at": "%s"}\n' \
    "$(git rev-parse HEAD)" \
    "$([ -z "$(git status --porcelain --untracked-files=no -- crates xtask Cargo.toml Cargo.lock)" ] && echo false || echo true)" \
    "$(sha256sum "$BIN" | cut -d' ' -f1)" "$(date -u +%FT%TZ)" > "$OUT/binary.json"
fi
if [ -f "$OUT/binary.json" ] && ! grep -q "$(sha256sum "$BIN" | cut -d' ' -f1)" "$OUT/binary.json"; then
  echo "error: $BIN is not the binary $OUT/binary.json records; runs of one table need one binary" >&2
  exit 2
fi
# $BIN's O-LoRA runs saved the fresh adapter that follows the last fold, not the trained model
# (fixed after $BIN was built; training and the runs' own rows are right). A later build rebuilds
# their adapter/ from the last checkpoint and scores them again (--rebuild-olora-adapters).
FIX_BIN=${FIX_BIN:-/tmp/rescore-xtask}
if [ ! -x "$FIX_BIN" ]; then
  cargo build -q -p xtask && cp target/debug/xtask "$FIX_BIN"
fi
suite() { "$BIN" suite --suite power --out "$OUT" --jobs "$JOBS" --resume "$@"; }
rescore() {
  "$BIN" rescore --results "$OUT" --suite "$1" --task arc-easy-probe --limit 256
  "$BIN" rescore --results "$OUT" --suite "$1" --corpus openwebtext --limit 64
  if compgen -G "$OUT/$1/olora/*/adapter" > /dev/null; then
    "$FIX_BIN" rescore --results "$OUT" --suite "$1" --task arc-easy-probe --limit 256 \
      --methods olora --rebuild-olora-adapters
    "$FIX_BIN" rescore --results "$OUT" --suite "$1" --corpus openwebtext --limit 64 \
      --methods olora --rebuild-olora-adapters
  fi
}
for methods in "$CLAIMS" "$OTHERS"; do
  for seed in 0 1 2; do
    suite --methods "$methods" --seeds 1 --first-seed "$seed"
    rescore power
  done
done
suite --methods sequential,fixed-replay,mssr --seeds 3 --order reversed
rescore power@reversed
