#!/bin/sh
# Runs every cargo fuzz target for SECONDS_PER_TARGET (default 610) with libFuzzer, one after
# the other at the lowest priority (nice 19: the 2-core development machine stays usable),
# after seeding fuzz/corpus/ (seed.sh). The targets call only Burn-free crates (fuzz-entry:
# formats, bench-tasks), so the instrumented build takes minutes. Logs go to
# fuzz/logs/<target>.log, crashing inputs to fuzz/artifacts/<target>/ (copy them into
# fuzz/regressions/<target>/ once fixed; `cargo test -p bad-inputs` replays them). Nightly
# toolchain (cargo fuzz passes -Z flags). No sanitizer: the code under test has no `unsafe` of
# its own; what is looked for is a panic, an abort, a hang or a blow-up of memory.
#
#   sh fuzz/run_all.sh                          # 6 targets x 610 s, about 62 minutes
#   SECONDS_PER_TARGET=60 sh fuzz/run_all.sh    # a short pass
#   TARGETS="fuzz_gguf" sh fuzz/run_all.sh      # one target
set -eu
cd "$(dirname "$0")"
T=${SECONDS_PER_TARGET:-610}
TARGETS=${TARGETS:-"fuzz_safetensors fuzz_gguf fuzz_config_json fuzz_adapter_config fuzz_data_loaders fuzz_toml_configs"}
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
sh seed.sh
mkdir -p logs
nice -n 19 cargo +"$TOOLCHAIN" fuzz build --fuzz-dir . --sanitizer none
for t in $TARGETS; do
  nice -n 19 cargo +"$TOOLCHAIN" fuzz run --fuzz-dir . --sanitizer none "$t" -- \
    -max_total_time="$T" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
    > "logs/$t.log" 2>&1 || echo "$t: exit $? (see fuzz/logs/$t.log)"
done
# Per target: executions, coverage (cov: edges, ft: features) at the first and last report,
# final corpus size and crashes.
for t in $TARGETS; do
  echo "== $t"
  grep -E "INITED|DONE" "logs/$t.log" | sed 's/^/  /' || true
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "logs/$t.log" | sed 's/^/  /' || true
  n=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  echo "  crash/timeout/oom artifacts: $n"
done
