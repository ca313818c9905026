# The seed topology demo, run inside the lab kernel by `seed-demo` (lab/src/bin).
# @BIN@ and @REPO@ are replaced by the runner. Reports with pass/fail; narrates on stdout.
BIN=@BIN@
REPO=@REPO@
export PATH="$BIN:$PATH"

say() { printf '\n\033[1m=== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@" 2>&1 | grep -v "vtysh.conf"; }

# A real server answers every line with its name; a client asks and prints the answer.
SERVER='import socket,sys,threading
n=sys.argv[1];s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("0.0.0.0",80));s.listen(256)
def h(c):
  f=c.makefile("rwb")
  try:
    for _ in range(10000):
      l=f.readline()
      if not l: break
      if l.startswith(b"get "): f.write(b"x"*int(l[4:]));f.flush();continue
      f.write((n+"\n").encode());f.flush()
  except Exception: pass
  c.close()
while True:
  c,_=s.accept();threading.Thread(target=h,args=(c,),daemon=True).start()'
# ask.py N HOLD: opens N connections, prints who serves each, keeps them HOLD seconds.
ASK='import socket,sys,time
n=int(sys.argv[1]);hold=float(sys.argv[2]);cs=[];who=[]
for _ in range(n):
  try:
    c=socket.create_connection(("10.101.4.1",80),timeout=2);c.sendall(b"who\n");who.append(c.makefile().readline().strip());cs.append(c)
  except Exception as e: who.append("error")
print(" ".join(who),flush=True)
time.sleep(hold)
if hold>0:
  again=[]
  for c in cs:
    try: c.sendall(b"who\n");again.append(c.makefile().readline().strip())
    except Exception: again.append("error")
  print("same connections later: "+" ".join(again),flush=True)'

# dl.py WARM GO: one connection; 1 MiB, then WARM written; once GO exists, 24 MiB.
DL='import socket,sys,time,os
c=socket.create_connection(("10.101.4.1",80),timeout=10);f=c.makefile("rwb")
f.write(b"who\n");f.flush();who=f.readline().strip().decode()
def get(k):
  f.write(b"get %d\n"%k);f.flush();got=0
  while got<k:
    b=f.read1(65536)
    if not b: raise OSError("closed after %d bytes"%got)
    got+=len(b)
get(1<<20);open(sys.argv[1],"w").write(who)
for _ in range(300):
  if os.path.exists(sys.argv[2]): break
  time.sleep(0.05)
t=time.time()
try: get(24<<20);print("%s: 24 MiB in %d ms, no reset"%(who,(time.time()-t)*1000),flush=True)
except Exception as e: print("error %s"%e,flush=True)'
rs_start() { ip netns exec "$1" python3 -c "$SERVER" "$1" >/dev/null 2>&1 & echo $! > "$D/$1.pid"; }
rs_kill() { kill -9 "$(cat "$D/$1.pid")" 2>/dev/null; }
ask() { ip netns exec "$1" python3 -c "$ASK" "$2" "${3:-0}"; }
path() { # the AS path of the best route to the VIP prefix in FRR instance $1
  vtysh -N "$1" -c "show ip bgp 10.101.4.0/24 json" 2>/dev/null | python3 -c '
import json, sys
t = sys.stdin.read(); t = t[t.find("{"):t.rfind("}") + 1]
try: d = json.loads(t)
except Exception: sys.exit()
print(next((p["aspath"]["string"] for p in d.get("paths", []) if p.get("bestpath", {}).get("overall")), ""))'; }
wait_path() { # ns want seconds
  i=0; while [ $i -lt $(( $3 * 10 )) ]; do [ "$(path "$1")" = "$2" ] && return 0; sleep 0.1; i=$((i+1)); done; return 1; }
status() { printf '$ anycastctl status   (on %s)\n' "$1"; ip netns exec "$1" anycastctl --api 127.0.0.1:9180 status; }

for rs in rs511 rs512 rs611 rs612; do rs_start $rs; done
# The operator's token for changes over the lab's loopback TCP API (root's, mode 0600).
(umask 077; echo "demo-operator-token-0123456789" > "$D/api.token")
ctl() { ns=$1; shift; ip netns exec "$ns" anycastctl --api 127.0.0.1:9180 --token-file "$D/api.token" "$@"; }
for site in idc1 idc1b idc2; do   # idc1b: IDC1's second director, started near the end
  sed -e 's/interval = "120s"/interval = "2s"/' -e "s#^listen = \"127.0.0.1:9180\"#listen = \"127.0.0.1:9180\"\ntoken_file = \"$D/api.token\"#" -e 's/hold_down = "10s"/hold_down = "2s"/' \
      -e 's/capacity = 100/capacity = 5/' \
      -e "s#key_file = \"keys/#key_file = \"$REPO/configs/keys/#" \
      -e "s#^vip_device = \"lo\"#vip_device = \"lo\"\nstate_dir = \"$D/state-$site\"#" \
      "$REPO/configs/$site.toml" > "$D/$site.toml"
done
ip netns exec lb1 anycastd --config "$D/idc1.toml" > "$D/anycastd-lb1.log" 2>&1 & echo $! > "$D/lb1.pid"
ip netns exec lb2 anycastd --config "$D/idc2.toml" > "$D/anycastd-lb2.log" 2>&1 & echo $! > "$D/lb2.pid"
sleep 1

say "Scenario 1: convergence (the paper's Figure 2.6)"
echo "Two sites of AS5 announce 10.101.4.0/24: IDC1 (LB1) under AS1, IDC2 (LB2) under AS2."
if wait_path c31 "3 1 5" 40 && wait_path c32 "3 2 5" 10; then pass converged; else fail converged; fi
echo "router behind R31 (10.101.3.1) sees AS path: $(path c31)"
echo "router behind R32 (10.101.3.9) sees AS path: $(path c32)"
echo "a client behind R31 is served by: $(ask c31 1)"
echo "a client behind R32 is served by: $(ask c32 1)"
status lb1

say "IDC1 serves by direct routing (VS/DR), IDC2 through IPIP (VS/TUN)"
echo "LB1 rewrites only the MAC (Route); LB2 wraps each packet in IPIP (Tunnel). The real"
echo "servers hold the VIP themselves and answer the clients directly, VIP as source."
show ip netns exec lb1 ipvsadm -Ln -t 10.101.4.1:80
show ip netns exec lb2 ipvsadm -Ln -t 10.101.4.1:80
new=$(ask c31 10)
echo "10 new connections from behind R31, served by IDC1's DR servers: $new"
case "$new" in *error*|*rs6*) fail dr_serves "$new";; *rs511*rs512*|*rs512*rs511*) pass dr_serves "$new";; *) fail dr_serves "$new";; esac
echo "a client's connection as rs511 sees it: VIP <-> client, nothing rewritten"
ask c31 2 3 > /dev/null & holder=$!
sleep 1
show ip netns exec rs511 ss -tn state established '( sport = :80 )'
wait $holder
echo "what each DR real server must have set, as anycastd check prints it:"
anycastd check --config "$D/idc1.toml" 2>/dev/null | sed -n '/^Real servers/,/^$/p'

say "The operator takes one real server of IDC1 out, and puts it back"
show ctl lb1 server disable web 10.101.5.12
new=$(ask c31 6)
echo "6 new connections from behind R31 are served by: $new"
case "$new" in *rs512*) fail server_disabled "$new";; *rs511*) pass server_disabled "$new";; *) fail server_disabled "$new";; esac
show ctl lb1 server list
show ctl lb1 server enable web 10.101.5.12
sleep 1
new=$(ask c31 8)
echo "8 new connections from behind R31 are served by: $new"
case "$new" in *rs512*) pass server_enabled "$new";; *) fail server_enabled "$new";; esac

say "Scenario 2: IDC2 fails (both its real servers killed)"
rs_kill rs611; rs_kill rs612
start=$(date +%s%N); i=0; who=""
while [ $i -lt 300 ]; do who=$(ask c32 1); case "$who" in rs5*) break;; esac; i=$((i+1)); sleep 0.02; done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
case "$who" in rs5*) pass site_failure "${ms}ms";; *) fail site_failure "$who";; esac
echo "from the kill to the first request from behind R32 served by IDC1 ($who): ${ms} ms"
wait_path c32 "3 1 5" 5; echo "router behind R32 now sees AS path: $(path c32)"
status lb2
echo "IDC2 recovers:"
rs_start rs611; rs_start rs612
if wait_path c32 "3 2 5" 30; then pass recovery; else fail recovery; fi
echo "router behind R32 sees AS path again: $(path c32)"

say "Scenario 4: spill-over from IDC1 to IDC2 through the IPIP tunnel"
echo "Capacity is 5 connections per real server here (10 per site). 13 long-lived"
echo "connections from behind R31 put IDC1 at 1.3 > 1.1, while IDC2 is at 0 < 0.7:"
ask c31 13 40 > "$D/held.txt" &
held=$!
i=0; while [ $i -lt 300 ]; do
  ip netns exec lb1 anycastctl --api 127.0.0.1:9180 --json status 2>/dev/null | grep -q '"share":0\.[1-9]' && break; i=$((i+1)); sleep 0.1; done
sleep 4
status lb1
echo "the held connections were served by: $(head -1 "$D/held.txt")"
new=$(ask c31 30)
echo "30 new connections from behind R31 (about a quarter split off to IDC2) are served by: $new"
case "$new" in *rs6*) pass spill "$new";; *) fail spill "$new";; esac
show ip netns exec lb1 anycastctl --api 127.0.0.1:9180 why web
echo "waiting for the held connections to ask again on the same connections..."
wait $held
tail -1 "$D/held.txt"
echo "demand gone: IDC1 falls below 1.0 and spilling stops"
i=0; while [ $i -lt 200 ]; do
  ip netns exec lb1 anycastctl --api 127.0.0.1:9180 --json status 2>/dev/null | grep -q '"share":0\.[1-9]' || break; i=$((i+1)); sleep 0.1; done
sleep 1
new=$(ask c31 6)
echo "6 new connections from behind R31 are served by: $new"
case "$new" in *rs6*) fail spill_stops "$new";; *) pass spill_stops "$new";; esac
status lb1

say "Issue 15: IDC1's second director, LB1b, behind R11's ECMP"
echo "LB1b (configs/idc1b.toml: IDC1's site, its own uplink 10.101.7.2) shares IDC1's LAN switch;"
echo "the DR servers' gateway is R11's port on that LAN, so their replies need no director."
echo "Both directors sync IPVS connections over sync0 and schedule with mh (a flow gets the same"
echo "real server whichever director it reaches); LB1 takes that by a reload (SIGHUP)."
for site in idc1 idc1b; do
  sed -i -e 's/scheduler = "wlc"/scheduler = "mh"/' \
      -e 's/^\[\[vip\]\]$/[sync]\ninterface = "sync0"\nsyncid = 1\n\n[[vip]]/' "$D/$site.toml"
done
kill -HUP "$(cat "$D/lb1.pid")"
i=0; while [ $i -lt 100 ] && ! grep -q "new config in force" "$D/anycastd-lb1.log"; do sleep 0.1; i=$((i+1)); done
ip netns exec lb1b anycastd --config "$D/idc1b.toml" > "$D/anycastd-lb1b.log" 2>&1 & echo $! > "$D/lb1b.pid"
two() { ip -n r11 route show 10.101.4.0/24 | grep -q 10.101.1.2 && ip -n r11 route show 10.101.4.0/24 | grep -q 10.101.7.2; }
i=0; while [ $i -lt 300 ] && ! two; do sleep 0.1; i=$((i+1)); done
if two; then pass ecmp; else fail ecmp "$(ip -n r11 route show 10.101.4.0/24)"; fi
show ip -n r11 route show 10.101.4.0/24
# Until lb1b has lb1's first report since its reload (the same site config: counted).
i=0; while [ $i -lt 100 ] && ! ip netns exec lb1b anycastctl --api 127.0.0.1:9180 status | grep -q "^lb1 .* same "; do sleep 0.1; i=$((i+1)); done
status lb1b
echo "A 24 MiB download from behind R31 (the real servers send at 40 Mbit/s: about 5 s);"
echo "the director R11's ECMP gave it is killed (SIGKILL) and its link to R11 cut a second in."
for rs in rs511 rs512; do ip netns exec $rs tc qdisc replace dev eth1 root tbf rate 40mbit burst 64kb latency 200ms; done
local_conn() { ip netns exec "$1" cat /proc/net/ip_vs_conn_sync | grep ESTABLISHED | grep -q "$2"; }
rm -f "$D/warm" "$D/go"
ip netns exec c31 python3 -c "$DL" "$D/warm" "$D/go" > "$D/dl.txt" 2>&1 & dl=$!
i=0; while [ $i -lt 100 ] && [ ! -s "$D/warm" ]; do sleep 0.1; i=$((i+1)); done
A=lb1; B=lb1b; LINK=eth2
if local_conn lb1b LOCAL; then A=lb1b; B=lb1; LINK=eth3; fi
i=0; while [ $i -lt 80 ] && ! local_conn $B SYNC; do sleep 0.1; i=$((i+1)); done
if local_conn $B SYNC; then pass synced "$A holds the connection, $B learned it"; else fail synced "$(ip netns exec $B cat /proc/net/ip_vs_conn_sync)"; fi
echo "the connection came through $A (server $(cat "$D/warm")); $B learned it from the sync:"
ip netns exec $B cat /proc/net/ip_vs_conn_sync | grep ESTABLISHED | head -2
touch "$D/go"; sleep 1
kill -9 "$(cat "$D/$A.pid")"; ip -n r11 link set dev $LINK down
start=$(date +%s%N)
gone() { case $A in lb1) ! ip -n r11 route show 10.101.4.0/24 | grep -q 10.101.1.2;; *) ! ip -n r11 route show 10.101.4.0/24 | grep -q 10.101.7.2;; esac; }
i=0; while [ $i -lt 100 ] && ! gone; do sleep 0.05; i=$((i+1)); done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
wait $dl
got=$(cat "$D/dl.txt")
echo "the download: $got"
case "$got" in *"no reset"*) pass download_survives "$got";; *) fail download_survives "$got";; esac
for rs in rs511 rs512; do ip netns exec $rs tc qdisc del dev eth1 root; done
show ip -n r11 route show 10.101.4.0/24
new=$(ask c31 6)
echo "R11 dropped $A after ${ms} ms; 6 new connections from behind R31 are served by: $new"
case "$new" in *error*|*rs6*) fail one_director_left "$new";; *) pass one_director_left "$new";; esac
echo "router behind R31 still sees AS path: $(path c31)"

say "Stopping: SIGTERM announces GRACEFUL_SHUTDOWN, waits, withdraws, closes with Cease"
kill -TERM "$(cat "$D/lb1.pid")" "$(cat "$D/lb1b.pid")" "$(cat "$D/lb2.pid")" 2>/dev/null
sleep 7
echo "done."
