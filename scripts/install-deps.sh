#!/usr/bin/env bash
# Installs what the tests, the lab and the demo need on a fresh Debian 12 machine:
# real BGP peers (FRR, BIRD, GoBGP, ExaBGP), the user-mode-Linux lab kernel with IPVS
# and IPIP modules, ipvsadm/iproute2/iptables for looking, keepalived (benchmark 5's
# side by side), chromium and chromedriver (the browser monitor's tests), promtool
# (package prometheus: the alert rules and the metrics are checked with it), and cargo tools.
# Idempotent: installs only what is missing. Needs root for apt-get.
set -euo pipefail

PKGS=(frr bird2 gobgpd exabgp user-mode-linux kmod ipvsadm iproute2 iptables python3-jsonschema python3-yaml prometheus
      curl python3 procps iputils-ping tcpdump systemd man-db adduser keepalived
      chromium chromium-driver)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: not root; cannot install: ${missing[*]} (tests that need them will skip)" >&2
  else
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# FRR, BIRD and GoBGP get started per test inside namespaces; the packaged system
# services would only get in the way (and hold the default sockets).
if [ "$(id -u)" = 0 ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  for s in frr bird gobgpd exabgp keepalived prometheus; do systemctl disable --now "$s" >/dev/null 2>&1 || true; done
fi

# Make the UML kernel's modules visible to modprobe inside the guest (it sees the
# host filesystem). The version is read, not hard-coded.
if [ "$(id -u)" = 0 ] && [ -d /usr/lib/uml/modules ]; then
  mkdir -p /lib/modules
  for v in /usr/lib/uml/modules/*; do
    [ -e "/lib/modules/$(basename "$v")" ] || ln -s "$v" "/lib/modules/$(basename "$v")"
  done
fi

if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi

if ! cargo deb --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-deb"
  cargo install --locked cargo-deb >/dev/null
fi
