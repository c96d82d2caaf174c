#!/bin/sh
# Fills fuzz/corpus/<target>/ with the seeds: the bad-inputs corpus, the backbone's small
# fixtures (<= 1 MiB) and fuzz/regressions/<target>/. The data-loader and TOML targets take a
# selector byte first; every seed is written once per selector.
set -eu
cd "$(dirname "$0")"
R=..
TARGETS="fuzz_safetensors fuzz_gguf fuzz_config_json fuzz_adapter_config fuzz_data_loaders fuzz_toml_configs"
for t in $TARGETS; do
  mkdir -p corpus/$t
  cp regressions/$t/* corpus/$t/ 2>/dev/null || true
done
i=0
find $R/crates/bad-inputs/corpus $R/crates/backbone/tests/fixtures $R/crates/bench-tasks/fetch-manifest.toml \
  -type f -size -1025k | sort | while read -r f; do
  i=$((i + 1))
  case "$f" in
    */adapter_config.json) cp "$f" corpus/fuzz_adapter_config/seed-$i ;;
    */config.json) cp "$f" corpus/fuzz_config_json/seed-$i ;;
    *.safetensors|*.safetensors.index.json) cp "$f" corpus/fuzz_safetensors/seed-$i ;;
    *.gguf) cp "$f" corpus/fuzz_gguf/seed-$i ;;
  esac
  case "$f" in
    *.json|*.jsonl|*.csv)
      for s in 0 1 2 3 4 5 6 7 8; do { printf "\\$(printf %03o $s)"; cat "$f"; } > corpus/fuzz_data_loaders/seed-$i-$s; done ;;
    */case.toml) ;;
    *.toml)
      for s in 0 1; do { printf "\\$(printf %03o $s)"; cat "$f"; } > corpus/fuzz_toml_configs/seed-$i-$s; done ;;
  esac
done
