#!/usr/bin/env bash
# The demo: the LVS paper's two-site topology (Figure 2.6) in the lab kernel, with
# FRR routers and two anycastd sites (IDC1 forwards to its real servers by VS/DR,
# IDC2 by VS/TUN), walking through convergence, the DR site serving, one real server
# taken out by the operator and back, a site failure and spill-over, IDC1's second
# director (LB1b) joining R11's ECMP, a download surviving the death of the director
# that carried it (IPVS connection sync, `mh`) while IDC1 stays announced, with
# `anycastctl status` between the steps. Then the browser monitor of a site on this
# host (scripts/monitor-demo.sh: its URL and logins). Installs what is
# missing, builds, runs; about two minutes after the build on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "== building (release)"
cargo build --release --locked -p anycastd -p anycast-lab
target/release/seed-demo target/release
scripts/monitor-demo.sh target/release
