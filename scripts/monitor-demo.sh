#!/usr/bin/env bash
# The browser monitor on this host, no root needed: one site (`demo`) with the data
# plane off, two real servers on 127.0.0.1 (python3), its BGP neighbor a loopback
# address where nobody answers, and the monitor over HTTPS on 127.0.0.1:8443 with a
# self-signed certificate and two users. Prints the URL and the logins, then runs
# until Enter (or Ctrl-C); without a terminal it checks a login and stops at once.
# Usage: scripts/monitor-demo.sh [BIN_DIR]   (default target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release}
PORT=${MONITOR_PORT:-8443}
D=$(mktemp -d /tmp/anycastd-monitor-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$D/monitor.key" -out "$D/monitor.crt" 2>/dev/null
chmod 600 "$D/monitor.key"
OP_PW="op-$(head -c 9 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
VIEW_PW="view-$(head -c 9 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
OP_HASH=$(printf '%s\n' "$OP_PW" | "$BIN/anycastd" hash-password)
VIEW_HASH=$(printf '%s\n' "$VIEW_PW" | "$BIN/anycastd" hash-password)

SERVER='
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
def hold(c):
    try:
        while c.recv(1024): pass
    except OSError: pass
    c.close()
for _ in range(100000):
    c, _ = s.accept(); threading.Thread(target=hold, args=(c,), daemon=True).start()
'
for p in 18081 18082; do python3 -c "$SERVER" "$p" & pids+=($!); done

cat > "$D/site.toml" <<TOML
[site]
name = "demo"
address = "127.0.0.1"
dataplane = false
shutdown_wait = "1s"
state_dir = "$D"

[api]
listen = "127.0.0.1:19180"
public = ["status", "metrics"]

[monitor]
listen = "127.0.0.1:$PORT"
cert_file = "monitor.crt"
key_file = "monitor.key"

[[monitor.user]]
name = "op"
role = "operator"
password_hash = "$OP_HASH"

[[monitor.user]]
name = "viewer"
role = "viewer"
password_hash = "$VIEW_HASH"

[bgp]
asn = 65005

[[bgp.neighbor]]
address = "127.0.0.2"
remote_asn = 65001
connect_retry = 3600

[[vip]]
name = "web"
prefix = "10.101.4.0/24"
address = "10.101.4.1"
hold_down = "1s"

[[vip.service]]
protocol = "tcp"
port = 80

[vip.service.check]
type = "tcp"
interval = "500ms"
timeout = "250ms"

[[vip.service.real_server]]
address = "127.0.0.1"
port = 18081
method = "nat"
capacity = 100

[[vip.service.real_server]]
address = "127.0.0.1"
port = 18082
method = "nat"
capacity = 100
TOML

"$BIN/anycastd" --config "$D/site.toml" > "$D/anycastd.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do
  curl -sk -o /dev/null "https://127.0.0.1:$PORT/" && break
  sleep 0.1
done
code=$(curl -sk -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
  -d "{\"user\":\"viewer\",\"password\":\"$VIEW_PW\"}" "https://127.0.0.1:$PORT/api/login")
if [ "$code" != 200 ]; then
  echo "monitor demo: login answered $code"; cat "$D/anycastd.log"; exit 1
fi

printf '\n\033[1m=== The browser monitor\033[0m\n'
echo "URL:      https://127.0.0.1:$PORT/   (self-signed certificate: accept it once)"
echo "operator: op / $OP_PW       (drain, undrain, real servers out and back)"
echo "viewer:   viewer / $VIEW_PW"
echo "From another machine: ssh -L $PORT:127.0.0.1:$PORT THIS-HOST, then the same URL."
echo "Kill a real server to watch it go down live: kill ${pids[0]}   (127.0.0.1:18081)"
if [ -t 0 ]; then
  read -r -p "Press Enter to stop the monitor demo. " _
else
  echo "(no terminal: login checked, stopping)"
fi
