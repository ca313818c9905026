#!/usr/bin/env bash
# Side-by-side benchmarks (issue 8): our side and the other side in the same run, raw
# figures and ratios. Needs root and the Debian packages of scripts/install-deps.sh
# (frr, bird2, gobgpd, exabgp, iptables; user-mode-linux for benchmark 4).
#   scripts/bench.sh           full run (200 failures per variant, 30 for ExaBGP's 5 s defaults,
#                              1M prefixes, 10 min footprint): about 2 hours
#   scripts/bench.sh --quick   a few runs of each, for a smoke check (a few minutes)
# Results go to stdout and to target-bench/bench-<UTC time>.txt. One benchmark at a
# time: they share the machine's two cores and the figures are timing.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target-bench}"
cargo build --release -p anycastd -p anycast-bench
BIN="$CARGO_TARGET_DIR/release/anycast-bench"
ANYCASTD="$CARGO_TARGET_DIR/release/anycastd"
OUT="$CARGO_TARGET_DIR/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"

if [ "$QUICK" = 1 ]; then
  RUNS=5; SLOW_RUNS=3; SIZES=100000; HOLDS=90; CRASH_RUNS=3; FOOT=60; SILENT_RUNS=5; LOSS_SECS=30
else
  RUNS=200; SLOW_RUNS=30; SIZES=100000,1000000; HOLDS=90,9; CRASH_RUNS=20; FOOT=600; SILENT_RUNS=50; LOSS_SECS=600
fi

{
  echo "# anycast benchmarks $(date -u +%FT%TZ) $(uname -r) $(nproc) cores quick=$QUICK"
  echo "## 1. health failure -> withdraw"
  "$BIN" withdraw --runs "$RUNS" --slow-runs "$SLOW_RUNS" --anycastd "$ANYCASTD"
  echo "## 1b. silent failure (packets to the real servers dropped) and 1% probe loss"
  "$BIN" silent --runs "$SILENT_RUNS" --loss-secs "$LOSS_SECS" --anycastd "$ANYCASTD"
  echo "## 3. BGP ingest"
  "$BIN" ingest --sizes "$SIZES" --holds "$HOLDS"
  echo "## 2. site crash detection"
  "$BIN" crash --runs "$CRASH_RUNS" --anycastd "$ANYCASTD"
  echo "## 5. footprint"
  "$BIN" footprint --secs "$FOOT" --anycastd "$ANYCASTD"
  echo "## 4. IPVS programming in the lab kernel (tunnel-forwarder's own benchmark)"
  cargo run --release -p tunnel-forwarder --example ipvs_bench 2>&1 | tail -n 40
} 2>&1 | tee "$OUT"
echo "results: $OUT"
