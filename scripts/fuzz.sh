#!/usr/bin/env bash
# Bounded fuzz runs of every decoder of input from outside: the BGP decode path
# (bgp-speaker/fuzz, target `decode`), the netlink replies tunnel-forwarder decodes
# (tunnel-forwarder/fuzz, `netlink_decode`), a peer site's signed load report
# (geo-balancer/fuzz, `report_receive`) and BFD control packets (bfd/fuzz,
# `control_decode`, BFD_FUZZ_SECONDS, default 15, beside the total). FUZZ_SECONDS
# (default 90) is the total of the first three: half to BGP, a quarter to each of the
# others (each after a ~30 s instrumented build). Any crash fails the run; its input is left in <crate>/fuzz/artifacts/<target>/
# and belongs in a unit test.
#
# The machines have only stable Rust; cargo-fuzz needs -Z flags, hence
# RUSTC_BOOTSTRAP=1 (../shared/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_SECONDS:-90}"
quarter=$(( secs / 4 > 1 ? secs / 4 : 1 ))
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

cd bgp-speaker/fuzz
# The committed seeds (wire captures from FRR and GoBGP) start the corpus; the
# corpus itself grows in an ignored directory.
mkdir -p corpus/decode
cp -n seeds/decode/* corpus/decode/
cargo fuzz run decode corpus/decode seeds/decode -- \
  -max_total_time="$(( secs - 2 * quarter ))" -max_len=70000 -rss_limit_mb=2048 -print_final_stats=1

# A garbled kernel reply must be a typed error, never a panic.
cd ../../tunnel-forwarder/fuzz
mkdir -p corpus/netlink_decode
cargo fuzz run netlink_decode corpus/netlink_decode -- \
  -max_total_time="${NETLINK_FUZZ_SECONDS:-$quarter}" -rss_limit_mb=2048 -print_final_stats=1

# Report bodies and headers from the network, and correctly signed bodies that reach
# the JSON and field checks; -max_len above the 8 KiB body limit.
cd ../../geo-balancer/fuzz
mkdir -p corpus/report_receive
cp -n seeds/report_receive/* corpus/report_receive/
cargo fuzz run report_receive corpus/report_receive seeds/report_receive -- \
  -max_total_time="${REPORT_FUZZ_SECONDS:-$quarter}" -max_len=9000 -rss_limit_mb=2048 -print_final_stats=1

# BFD control packets from the network, and the session they drive (a small, fast
# target: a fixed few seconds).
cd ../../bfd/fuzz
mkdir -p corpus/control_decode
cargo fuzz run control_decode corpus/control_decode -- \
  -max_total_time="${BFD_FUZZ_SECONDS:-15}" -max_len=512 -rss_limit_mb=2048 -print_final_stats=1
