#!/bin/sh
# Runs every cargo fuzz target for SECONDS (default 660) with libFuzzer, two at a time (one per
# core of the 2-core development machine), after seeding fuzz/corpus/ (seed.sh). Logs go to
# fuzz/logs/<target>.log, crashing inputs to fuzz/artifacts/<target>/ (copy them into
# fuzz/regressions/<target>/ once fixed). Stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo fuzz
# pass its -Z flags. No sanitizer: the code under test has no `unsafe` of its own; what is looked
# for is a panic, an abort, a hang or a blow-up of memory.
#
#   sh fuzz/run_all.sh            # 4 targets x 11 minutes, about 22 minutes of wall time
#   SECONDS_PER_TARGET=60 sh fuzz/run_all.sh
set -eu
cd "$(dirname "$0")"
T=${SECONDS_PER_TARGET:-660}
sh seed.sh
mkdir -p logs
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir . --sanitizer none
run() {
  cargo fuzz run --fuzz-dir . --sanitizer none "$1" -- -max_total_time="$T" -rss_limit_mb=4096 \
    -timeout=30 -print_final_stats=1 > "logs/$1.log" 2>&1 || echo "$1: exit $? (see fuzz/logs/$1.log)"
}
run fuzz_safetensors & run fuzz_data_loaders & wait
run fuzz_gguf & run fuzz_toml_configs & wait
for t in fuzz_safetensors fuzz_data_loaders fuzz_gguf fuzz_toml_configs; do
  echo "== $t"; grep -E "^stat::|Done|ERROR|panicked|SUMMARY" "logs/$t.log" | tail -n 12
done
