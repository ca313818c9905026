#!/usr/bin/env bash
# Builds the Debian package of anycastd from this checkout:
#   target/debian/anycastd_<version>-1_<arch>.deb
# with anycastd, anycastctl, the systemd units (anycastd/debian/), the example config,
# and man pages and shell completions generated from the clap definitions.
# Needs cargo-deb (scripts/install-deps.sh installs it). Prints the .deb's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-deb packages `target/release/...` from wherever the target dir really is.
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
assets="$target_dir/release/assets"
rm -rf "$assets"
# The dev profile: the test build that follows in scripts/test.sh reuses what it built.
cargo run --locked -q -p anycastd --example gen_assets -- "$assets" >&2
# Debian policy: man pages gzipped (cargo-deb compresses only files it did not build).
gzip -9n "$assets"/man/*.8
# Only the two binaries in release (cargo-deb alone would build the whole workspace).
cargo build --release --locked -p anycastd --bins >&2
# Stripped: 3 MB instead of 20 MB of debug info.
cargo deb --no-build --strip -p anycastd --output "$target_dir/debian/" >&2
ls -t "$target_dir"/debian/anycastd_*.deb | head -1
