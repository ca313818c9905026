#!/usr/bin/env bash
# Bounded fuzz run of the BGP decode path (bgp-speaker/fuzz, target `decode`):
# framing, message decode, RFC 7606 UPDATE classification and the Established
# session consuming arbitrary peer bytes. About FUZZ_SECONDS (default 60) of
# fuzzing after a ~30 s instrumented build. Any crash fails the run; its input is
# left in bgp-speaker/fuzz/artifacts/decode/ and belongs in a unit test.
#
# The machines have only stable Rust; cargo-fuzz needs -Z flags, hence
# RUSTC_BOOTSTRAP=1 (../shared/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_SECONDS:-60}"
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
  -max_total_time="$secs" -max_len=70000 -rss_limit_mb=2048 -print_final_stats=1

# The netlink replies tunnel-forwarder decodes (tunnel-forwarder/fuzz, target
# `netlink_decode`): a garbled kernel reply must be a typed error, never a panic.
cd ../../tunnel-forwarder/fuzz
mkdir -p corpus/netlink_decode
cargo fuzz run netlink_decode corpus/netlink_decode -- \
  -max_total_time="${NETLINK_FUZZ_SECONDS:-30}" -rss_limit_mb=2048 -print_final_stats=1
