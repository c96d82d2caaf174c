#!/bin/sh
# Builds the probe four ways and prints GFLOP/s for docs/performance.md (about 2 minutes).
set -eu
cd "$(dirname "$0")"
cargo build -q --features v4 && cp target/debug/gemm-probe target/dev-checks-v4
cargo build -q --profile dev-no-checks --features v4 && cp target/dev-no-checks/gemm-probe target/dev-no-checks-v4
cargo build -q --release && cp target/release/gemm-probe target/release-avx2
cargo build -q --release --features v4 && cp target/release/gemm-probe target/release-v4
for bin in dev-checks-v4 dev-no-checks-v4 release-avx2 release-v4; do
  echo "== $bin"
  ./target/$bin 2048 2048 2048 1
  ./target/$bin 2048 576 1536 2
done
