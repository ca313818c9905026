#!/usr/bin/env bash
# Side-by-side benchmarks (issue 8): our side and the other side in the same run, raw
# figures and ratios. Needs root and the Debian packages of scripts/install-deps.sh
# (frr, bird2, gobgpd, exabgp, iptables; user-mode-linux for benchmark 4).
#   scripts/bench.sh           full run (200 failures per variant, 30 for ExaBGP's 5 s
#                              defaults, 50 silent failures, 10 min of 1% loss, 1M
#                              prefixes, 20 crashes per cell, 10 min footprint): about 1 h
#   scripts/bench.sh --quick   a few runs of each, for a smoke check (a few minutes)
#   BASELINE=path/to/anycastd  adds that build beside this one in benchmark 5 at scale
# keepalived needs IPVS: its side of benchmark 5 is bench/examples/checks_lab.rs, in the
# lab kernel (not run here).
# Three streams run side by side, each in its own namespaces: (A) the millisecond
# figures one after another (1, then 3, then 4), (B) site crashes (2: mostly waiting
# for hold timers), (C) silent failures and probe loss (1b), then the footprint (5).
# B and C are mostly idle; A's figures for unchanged sides matched a one-at-a-time run (see
# docs/performance.md). Nothing else heavy should run meanwhile.
# Results go to stdout and to target-bench/bench-<UTC time>.txt.
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
cargo build --release -p tunnel-forwarder --example ipvs_bench
BIN="$CARGO_TARGET_DIR/release/anycast-bench"
ANYCASTD="$CARGO_TARGET_DIR/release/anycastd"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$CARGO_TARGET_DIR/bench-$STAMP.txt"
PART="$CARGO_TARGET_DIR/bench-$STAMP"

if [ "$QUICK" = 1 ]; then
  RUNS=5; SLOW_RUNS=3; SIZES=100000; HOLDS=90; CRASH_RUNS=3; FOOT=60; SILENT_RUNS=5; LOSS_SECS=30; CHECK_SECS=10
else
  RUNS=200; SLOW_RUNS=30; SIZES=100000,1000000; HOLDS=90,9; CRASH_RUNS=20; FOOT=600; SILENT_RUNS=50; LOSS_SECS=600; CHECK_SECS=60
fi

# Runs one step bounded by `timeout` (besides its own bounded loops); a failing step is
# reported and the stream goes on with the next one.
step() {
  local limit=$1
  shift
  timeout "$limit" "$@" || { echo "!! step failed (exit $?): $*"; return 1; }
}

{
  ok=0
  echo "## 1. health failure -> withdraw"
  step 5400 "$BIN" withdraw --runs "$RUNS" --slow-runs "$SLOW_RUNS" --anycastd "$ANYCASTD" || ok=1
  echo "## 3. BGP ingest"
  step 1800 "$BIN" ingest --sizes "$SIZES" --holds "$HOLDS" || ok=1
  echo "## 4. IPVS programming in the lab kernel (tunnel-forwarder's own benchmark)"
  # Its figures and targets (BENCH, PASS, FAIL lines) without the guest's console.
  step 1200 "$CARGO_TARGET_DIR/release/examples/ipvs_bench" > "$PART-ipvs.log" 2>&1 || ok=1
  grep -E '^(BENCH|PASS|FAIL|== lab)' "$PART-ipvs.log" | awk '!seen[$0]++' || true
  exit "$ok"
} > "$PART-A.txt" 2>&1 &
A=$!
{
  echo "## 2. site crash detection"
  step 5400 "$BIN" crash --runs "$CRASH_RUNS" --anycastd "$ANYCASTD"
} > "$PART-B.txt" 2>&1 &
B=$!
{
  ok=0
  echo "## 1b. silent failure (packets to the real servers dropped) and 1% probe loss"
  step 5400 "$BIN" silent --runs "$SILENT_RUNS" --loss-secs "$LOSS_SECS" --anycastd "$ANYCASTD" || ok=1
  echo "## 5. footprint"
  step 2400 "$BIN" footprint --secs "$FOOT" --anycastd "$ANYCASTD" || ok=1
  echo "## 5 at scale. 20, 200, 1000 real servers (anycastd; ExaBGP up to 200)"
  step 3600 "$BIN" checks --servers 20,200,1000 --secs "$CHECK_SECS" --anycastd "$ANYCASTD" ${BASELINE:+--baseline "$BASELINE"} || ok=1
  exit "$ok"
} > "$PART-C.txt" 2>&1 &
C=$!
status=0
for p in $A $B $C; do wait "$p" || status=1; done
{
  echo "# anycast benchmarks $STAMP $(uname -r) $(nproc) cores quick=$QUICK"
  cat "$PART-A.txt" "$PART-B.txt" "$PART-C.txt"
} | tee "$OUT"
rm -f "$PART-A.txt" "$PART-B.txt" "$PART-C.txt" "$PART-ipvs.log"
echo "results: $OUT"
exit "$status"
