#!/usr/bin/env bash
# The whole test suite: lint, unit tests, interop tests against real BGP peers in
# network namespaces, lab-kernel tests, a bounded fuzz run, and the Debian package
# installed and purged again.
# Tests that need root, namespaces, a peer or the lab kernel skip with a reason on a
# developer's machine; with CI=true they fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== docs (broken intra-doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
echo "== fuzz (bounded)"
scripts/fuzz.sh
echo "== package (build, systemd-analyze, dpkg -i, installed binaries, man, purge)"
scripts/package-test.sh
echo "== tests"
cargo nextest run --workspace --locked --no-fail-fast
