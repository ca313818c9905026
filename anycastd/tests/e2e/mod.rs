//! Shared pieces of the end-to-end tests in the lab kernel: the paper's topology
//! (lab/src/seed.rs), real servers as killable processes, anycastd per director.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anycast_lab::uml::{Lab, guest};
use anycast_lab::{Need, require, seed};

pub const VIP: &str = "10.101.4.1:80";

pub mod pmtu;
pub mod v6;

/// The host side of a test in the seed topology: without the lab kernel, root, FRR's
/// bgpd, python3 and `needs` it skips, or fails under CI (`require`); otherwise it
/// boots `lab` (1 GB) with the seed topology, re-executing `test` inside, prints the
/// report and asserts that every check passed.
pub fn run_seed_lab(test: &str, needs: &[Need], lab: Lab) {
    run_lab(test, needs, lab, seed::topology());
}

/// [`run_seed_lab`] with another topology (the seed's, extended by the test).
pub fn run_lab(test: &str, needs: &[Need], lab: Lab, topology: anycast_lab::uml::Topology) {
    let mut all = vec![
        Need::LabKernel,
        Need::Root,
        Need::Program("/usr/lib/frr/bgpd"),
        Need::Program("python3"),
    ];
    all.extend_from_slice(needs);
    if !require(test, &all) {
        return;
    }
    let out = lab
        .topology(topology)
        // The seed's IPv6 plane: IPv6 and the ip6ip6 tunnel.
        .extra_modules(anycast_lab::seed6::MODULES)
        .guest_test(test)
        .mem_mb(1024)
        .run()
        .expect("lab kernel runs");
    println!("{}", out.report());
    out.assert_passed();
}

/// A real server: answers each line with its name (like `guest::tcp::serve`), as a
/// process of its own so a test can kill it. Bulk transfers for [`BulkConn`]:
/// `up N` is followed by N bytes, answered with `NAME COUNT` once they are in;
/// `down N` is answered with N bytes and then `NAME` (N at most 64 MiB).
const SERVER_PY: &str = r#"
import socket, sys, threading
name = sys.argv[1]
def listener(fam, addr):
    s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, 80)); s.listen(256)
    return s
def bulk(f, w):
    n = int(w[1])
    if w[0] == b"up":
        got = 0
        while got < n:
            b = f.read(min(n - got, 65536))
            if not b: break
            got += len(b)
        f.write(("%s %d\n" % (name, got)).encode())
    else:
        chunk = b"x" * 65536
        while n > 0:
            f.write(chunk[:min(n, 65536)]); n -= 65536
        f.write((name + "\n").encode())
    f.flush()
def serve(c):
    f = c.makefile("rwb")
    try:
        for _ in range(10000):
            line = f.readline()
            if not line: break
            w = line.split()
            if len(w) == 2 and w[0] in (b"up", b"down") and w[1].isdigit() and int(w[1]) <= 1 << 26:
                bulk(f, w)
                continue
            f.write((name + "\n").encode()); f.flush()
    except Exception: pass
    c.close()
def accept(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
# IPv4 and IPv6 on sockets of their own: an IPv4 connection looks as it always did.
s4 = listener(socket.AF_INET, "0.0.0.0")
try:
    threading.Thread(target=accept, args=(listener(socket.AF_INET6, "::"),), daemon=True).start()
except OSError:
    pass
accept(s4)
"#;

pub struct RealServer {
    pub ns: &'static str,
    child: Option<Child>,
}

impl RealServer {
    pub fn start(ns: &'static str) -> RealServer {
        let mut rs = RealServer { ns, child: None };
        rs.restart();
        rs
    }

    pub fn restart(&mut self) {
        let child = Command::new("ip")
            .args([
                "netns", "exec", self.ns, "python3", "-c", SERVER_PY, self.ns,
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("start real server");
        self.child = Some(child);
        // Listening within 3 s (python starts slowly in the lab kernel).
        let ns = self.ns;
        guest::wait_for(Duration::from_secs(3), || {
            guest::sh_in(ns, "ss -ltn 'sport = :80'")
                .contains("LISTEN")
                .then_some(())
        });
    }

    /// SIGKILL: the process is gone, its sockets are reset.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The lab's copy of a site config: the exchange and hold-downs shortened, state in
/// the work dir, the key files by absolute path, an API token file of its own.
pub fn lab_config(site: &str, edits: &[(&str, &str)]) -> PathBuf {
    lab_config_as(site, site, edits)
}

/// [`lab_config`] of `configs/<site>.toml` written as `<out>.toml` in the work dir,
/// with its own state dir and token (`api-<out>.token`): a variant of a config
/// leaves the one a running director reads alone.
pub fn lab_config_as(site: &str, out: &str, edits: &[(&str, &str)]) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(repo.join(format!("configs/{site}.toml"))).unwrap();
    let key = repo.join("configs/keys/idc1-idc2.key");
    let directors_key = repo.join("configs/keys/idc1-directors.key");
    let mut text = text
        .replace(
            "directors_key_file = \"keys/idc1-directors.key\"",
            &format!("directors_key_file = \"{}\"", directors_key.display()),
        )
        .replace("interval = \"120s\"", "interval = \"1s\"")
        .replace("hold_down = \"10s\"", "hold_down = \"2s\"")
        .replace("shutdown_wait = \"5s\"", "shutdown_wait = \"2s\"")
        .replace(
            "key_file = \"keys/idc1-idc2.key\"",
            &format!("key_file = \"{}\"", key.display()),
        )
        .replace(
            "vip_device = \"lo\"",
            &format!(
                "vip_device = \"lo\"\nstate_dir = \"{}\"",
                guest::work_dir().join(format!("state-{out}")).display()
            ),
        );
    // Changes over the TCP API need a token: one per site, mode 0600, in the work dir.
    let token = guest::work_dir().join(format!("api-{out}.token"));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&token);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&token)
            .unwrap();
        writeln!(f, "lab-token-{out}-0123456789abcdef").unwrap();
    }
    text = text.replacen(
        "[api]\n",
        &format!("[api]\ntoken_file = \"{}\"\n", token.display()),
        1,
    );
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "lab_config: `{from}` not in {site}.toml"
        );
        text = text.replace(from, to);
    }
    let path = guest::work_dir().join(format!("{out}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

pub struct Anycastd {
    pub ns: &'static str,
    pub config: PathBuf,
    child: Option<Child>,
}

impl Anycastd {
    pub fn start(ns: &'static str, config: PathBuf) -> Anycastd {
        let log =
            std::fs::File::create(guest::work_dir().join(format!("anycastd-{ns}.log"))).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_anycastd"),
                "--config",
            ])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start anycastd");
        Anycastd {
            ns,
            config,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            guest::sh(&format!("kill -{sig} {pid}"));
        }
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits up to `t` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, t: Duration) -> Option<i32> {
        let c = self.child.as_mut()?;
        let deadline = Instant::now() + t;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(guest::work_dir().join(format!("anycastd-{}.log", self.ns)))
            .unwrap_or_default()
    }

    /// `anycastctl ARGS` inside the director's namespace, on the configs' TCP API with
    /// the token [`lab_config`] wrote (not `--config`: a test overwrites the config
    /// with a bad one and still asks for the status): (exit code, stdout+stderr).
    pub fn ctl(&self, args: &str) -> (i32, String) {
        let site = self.config.file_stem().unwrap().to_string_lossy();
        let token = self.config.with_file_name(format!("api-{site}.token"));
        let out = Command::new("ip")
            .args(["netns", "exec", self.ns, env!("CARGO_BIN_EXE_anycastctl")])
            .args(["--api", "127.0.0.1:9180", "--token-file"])
            .arg(&token)
            .args(args.split_whitespace())
            .output()
            .expect("run anycastctl");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), s)
    }
}

impl Drop for Anycastd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The AS path of the best route to the VIP prefix in FRR instance `ns`, if any.
pub fn best_path(ns: &str) -> Option<String> {
    best_path_to(ns, "10.101.4.0/24")
}

/// `ns`'s best AS path to an IPv4 `prefix` (`None`: no route).
pub fn best_path_to(ns: &str, prefix: &str) -> Option<String> {
    let out = guest::vtysh(ns, &format!("show ip bgp {prefix} json"));
    // vtysh may add a warning line about its own config file: parse the JSON only.
    let json = &out[out.find('{')?..=out.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["paths"].as_array()?.iter().find_map(|p| {
        p["bestpath"]["overall"]
            .as_bool()
            .filter(|b| *b)
            .map(|_| p["aspath"]["string"].as_str().unwrap_or("").to_string())
    })
}

/// Waits until `ns`'s best path to the VIP prefix is `want` ("" = no route).
pub fn wait_path(ns: &str, want: &str, t: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    guest::wait_for(t, || {
        (best_path(ns).unwrap_or_default() == want).then_some(())
    })
    .map(|_| start.elapsed())
    .ok_or_else(|| format!("{ns} best path is {:?}, wanted {want:?}", best_path(ns)))
}

pub fn vip() -> SocketAddr {
    VIP.parse().unwrap()
}

/// Which real server answers a new connection from client `ns`.
pub fn served(ns: &str) -> String {
    guest::tcp::ask_once(ns, vip()).unwrap_or_else(|e| format!("error: {e}"))
}

// ---- Helpers of the spill and crash scenarios (lab_kernel_scenarios.rs). ----

impl Anycastd {
    /// The lines of its `/metrics` whose names start with one of `prefixes` (read
    /// with its operator token); empty while the daemon does not answer.
    pub fn metrics(&self, prefixes: &[&str]) -> String {
        let site = self.config.file_stem().unwrap().to_string_lossy();
        let token =
            std::fs::read_to_string(self.config.with_file_name(format!("api-{site}.token")))
                .unwrap_or_default();
        let body = guest::in_netns(self.ns, move || {
            anycastd::ctl::client::request_with_token(
                &anycastd::config::ApiListen::Tcp("127.0.0.1:9180".parse().unwrap()),
                "GET",
                "/metrics",
                token.trim().as_bytes(),
            )
        })
        .map(|r| r.body)
        .unwrap_or_default();
        body.lines()
            .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `anycastctl --json status`, parsed; `None` while the daemon does not answer.
    pub fn status(&self) -> Option<anycastd::status::Status> {
        let (code, out) = self.ctl("--json status");
        if code != 0 {
            return None;
        }
        let json = &out[out.find('{')?..=out.rfind('}')?];
        serde_json::from_str(json).ok()
    }

    /// Polls the status (bounded by `t`) until `f` holds; the time it took and the
    /// status that satisfied it.
    pub fn wait_status(
        &self,
        t: Duration,
        mut f: impl FnMut(&anycastd::status::Status) -> bool,
    ) -> Option<(Duration, anycastd::status::Status)> {
        let start = Instant::now();
        guest::wait_for(t, || self.status().filter(|s| f(s))).map(|s| (start.elapsed(), s))
    }

    /// SIGKILL (no graceful stop: what a crash looks like to the peers), then reaped.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Share of new connections spilled to `peer` in a status document.
pub fn spill_share(st: &anycastd::status::Status, peer: &str) -> f64 {
    st.spill
        .iter()
        .filter(|s| s.peer == peer)
        .map(|s| s.share)
        .sum()
}

/// `known`, `stale` or `unknown`: how a status document sees `peer`.
pub fn peer_state(
    st: &anycastd::status::Status,
    peer: &str,
) -> Option<anycastd::status::PeerState> {
    st.peers.iter().find(|p| p.name == peer).map(|p| p.state)
}

/// The load `peer` last reported, as a status document shows it.
pub fn peer_load(st: &anycastd::status::Status, peer: &str) -> Option<f64> {
    st.peers
        .iter()
        .find(|p| p.name == peer)
        .and_then(|p| p.load)
}

/// One line of the spill and peer state, for check details.
pub fn spill_line(st: &anycastd::status::Status) -> String {
    let spill: Vec<String> = st
        .spill
        .iter()
        .map(|s| format!("{} {:.2} ({})", s.peer, s.share, s.reason))
        .collect();
    let peers: Vec<String> = st
        .peers
        .iter()
        .map(|p| {
            format!(
                "{} {} load {:?} age {:?}",
                p.name,
                p.state.as_str(),
                p.load,
                p.report_age_s
            )
        })
        .collect();
    format!(
        "{} local {:?}; spill [{}]; peers [{}]",
        st.site,
        st.local_load,
        spill.join(", "),
        peers.join(", ")
    )
}

/// A long-lived client connection and the real server that answered its first request.
pub struct Conn {
    pub client: guest::tcp::Client,
    pub server: String,
}

/// Opens up to `n` long-lived connections from client `ns` to the VIP, one after the
/// other; those that failed are left out (the caller checks the count).
pub fn open_conns(ns: &str, n: usize) -> Vec<Conn> {
    (0..n)
        .filter_map(|_| {
            let mut client = guest::tcp::Client::connect(ns, vip()).ok()?;
            let server = client.ask().ok()?;
            Some(Conn { client, server })
        })
        .collect()
}

/// Asks again on every connection: how many answered, and by the server of their
/// first answer.
pub fn still_same_server(conns: &mut [Conn]) -> usize {
    let mut same = 0;
    for c in conns.iter_mut() {
        if c.client.ask().ok().as_deref() == Some(c.server.as_str()) {
            same += 1;
        }
    }
    same
}

/// `n` new short connections from client `ns`: the answers in order.
/// Puts the site behind `lb` above 1.1 with 12 long connections from `client` (the
/// lab tests' capacity 5 per server: 10 in all) and waits until it spills more than
/// 0.15 to `peer`, checked as `step`. The connections hold the load: keep them.
pub fn overload_until_spilling(client: &str, lb: &Anycastd, peer: &str, step: &str) -> Vec<Conn> {
    let load = open_conns(client, 12);
    let ramped = lb.wait_status(Duration::from_secs(20), |s| spill_share(s, peer) > 0.15);
    guest::check(
        step,
        ramped.is_some(),
        &lb.status().map_or("no status".into(), |s| spill_line(&s)),
    );
    load
}

pub fn served_n(ns: &str, n: usize) -> Vec<String> {
    (0..n).map(|_| served(ns)).collect()
}

/// Packets received on the director's IPIP device `anycast0` (`ip -s link show`):
/// everything another director tunnelled to it. IPVS encapsulates spilled packets
/// itself, so the sender's device counters do not move; the receiver's RX does.
pub fn tunnel_rx_packets(ns: &str) -> Option<u64> {
    dev_rx_packets(ns, "anycast0")
}

/// Packets received on device `dev` of `ns` (`ip -s link show`).
pub fn dev_rx_packets(ns: &str, dev: &str) -> Option<u64> {
    let out = guest::sh_in(ns, &format!("ip -s link show dev {dev}"));
    let mut lines = out.lines();
    lines.find(|l| l.trim_start().starts_with("RX:"))?;
    lines.next()?.split_whitespace().nth(1)?.parse().ok()
}

/// Entries of the director's IPVS connection table (`ipvsadm -Lnc`) whose
/// destination is `dest` (an address, e.g. the peer director's tunnel endpoint).
pub fn ipvs_conns_to(ns: &str, dest: &str) -> usize {
    guest::sh_in(ns, "ipvsadm -Lnc")
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(5)
                .is_some_and(|d| d.rsplit_once(':').is_some_and(|(a, _)| a == dest))
        })
        .count()
}

/// Entries of `ipvsadm -Lnc` from client address `src` to destination address `dest`.
pub fn ipvs_conns_from_to(ns: &str, src: &str, dest: &str) -> usize {
    let addr = |f: Option<&str>| {
        f.and_then(|x| x.rsplit_once(':'))
            .map(|(a, _)| a.to_string())
    };
    guest::sh_in(ns, "ipvsadm -Lnc")
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            addr(f.get(3).copied()).as_deref() == Some(src)
                && addr(f.get(5).copied()).as_deref() == Some(dest)
        })
        .count()
}

/// Active connections of the director's loop-guard firewall-mark services (`ipvsadm
/// -Ln`; not the spill split's): the connections that arrived through the tunnel
/// and were scheduled by the loop guard.
pub fn ipvs_fwmark_active(ns: &str) -> u64 {
    let split = anycastd::layout::SPLIT_MARK.to_string();
    let mut in_fwm = false;
    let mut sum = 0;
    for l in guest::sh_in(ns, "ipvsadm -Ln").lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.first() {
            Some(&"FWM") => in_fwm = f.get(1) != Some(&split.as_str()),
            Some(&"->") if in_fwm => {
                sum += f.get(4).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
            }
            Some(&"->") => {}
            _ => in_fwm = false,
        }
    }
    sum
}

/// Opens long-lived connections from `ns` one at a time until `want` of them are
/// served by a real server whose name starts with `prefix` (or `max` are open):
/// under the spill split each new connection goes away with the share's
/// probability. Returns (those served by `prefix`, the others).
pub fn open_until_served_by(
    ns: &str,
    prefix: &str,
    want: usize,
    max: usize,
) -> (Vec<Conn>, Vec<Conn>) {
    let (mut via, mut other) = (Vec::new(), Vec::new());
    for _ in 0..max {
        if via.len() >= want {
            break;
        }
        for c in open_conns(ns, 1) {
            if c.server.starts_with(prefix) {
                via.push(c);
            } else {
                other.push(c);
            }
        }
    }
    (via, other)
}

/// The share (in 1/1024ths of new TCP connections) that the spill split's chain on
/// `dev` marks, read from `tc filter show ... chain 44033`: each `match V/M at 24`
/// block covers 1024 >> (bits in M).
pub fn split_units(ns: &str, dev: &str) -> u32 {
    guest::sh_in(ns, &format!("tc filter show dev {dev} ingress chain 44033"))
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("match ")?.strip_suffix(" at 24")?;
            let (_, mask) = rest.split_once('/')?;
            let mask = u32::from_str_radix(mask, 16).ok()?;
            Some(1024 >> mask.count_ones())
        })
        .sum()
}

/// Weight of destination address `dest` in the director's VIP service (`ipvsadm -Ln`,
/// the first service that lists it).
pub fn ipvs_weight(ns: &str, dest: &str) -> Option<u32> {
    guest::sh_in(ns, "ipvsadm -Ln").lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (a, _) = f.get(1)?.rsplit_once(':')?;
        (f.first() == Some(&"->") && a == dest)
            .then(|| f.get(3)?.parse().ok())
            .flatten()
    })
}

// ---- Bulk transfers (issue 19: PMTU on spilled connections). ----

/// A client connection for bulk transfers to the VIP (the real servers' `up`/`down`
/// requests), with the real server that answered its first request. Every transfer
/// is bounded by a deadline: a stalled one fails instead of hanging.
pub struct BulkConn {
    r: std::io::BufReader<std::net::TcpStream>,
    w: std::net::TcpStream,
    pub server: String,
}

impl BulkConn {
    /// Connects from `ns` to the VIP and asks who serves it (2 s each).
    pub fn open(ns: &str) -> std::io::Result<BulkConn> {
        BulkConn::open_at(ns, vip())
    }

    /// [`BulkConn::open`] to `addr` (the IPv6 VIP, say).
    pub fn open_at(ns: &str, addr: SocketAddr) -> std::io::Result<BulkConn> {
        let s = guest::in_netns(ns, move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        })?;
        let mut c = BulkConn {
            w: s.try_clone()?,
            r: std::io::BufReader::new(s),
            server: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        c.send(b"who\n", deadline)?;
        c.server = c.line(deadline)?;
        Ok(c)
    }

    fn left(deadline: Instant) -> std::io::Result<Duration> {
        let d = deadline.saturating_duration_since(Instant::now());
        if d.is_zero() {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "deadline passed",
            ))
        } else {
            Ok(d)
        }
    }

    /// Writes all of `buf` before `deadline`, counting what the socket took in `sent`.
    fn send_counted(
        &mut self,
        mut buf: &[u8],
        deadline: Instant,
        sent: &mut usize,
    ) -> std::io::Result<()> {
        use std::io::Write;
        while !buf.is_empty() {
            self.w.set_write_timeout(Some(Self::left(deadline)?))?;
            match self.w.write(buf) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    *sent += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn send(&mut self, buf: &[u8], deadline: Instant) -> std::io::Result<()> {
        self.send_counted(buf, deadline, &mut 0)
    }

    fn line(&mut self, deadline: Instant) -> std::io::Result<String> {
        use std::io::BufRead;
        let mut line = String::new();
        loop {
            self.r
                .get_mut()
                .set_read_timeout(Some(Self::left(deadline)?))?;
            match self.r.read_line(&mut line) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(_) if line.ends_with('\n') => return Ok(line.trim().to_string()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer before the deadline (have {line:?})"),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `n` bytes to the real server within `limit`; how long it took until
    /// the server confirmed every byte.
    pub fn upload(&mut self, n: usize, limit: Duration) -> Result<Duration, String> {
        self.upload_paced(n, None, limit)
    }

    /// [`BulkConn::upload`], handing the bytes to the socket no faster than `rate`
    /// bytes per second when given (64 KiB at a time).
    pub fn upload_paced(
        &mut self,
        n: usize,
        rate: Option<f64>,
        limit: Duration,
    ) -> Result<Duration, String> {
        let t0 = Instant::now();
        let deadline = t0 + limit;
        let chunk = vec![b'u'; 64 * 1024];
        let mut sent = 0;
        let res = (|| {
            self.send(format!("up {n}\n").as_bytes(), deadline)?;
            while sent < n {
                if let Some(rate) = rate {
                    let due = t0 + Duration::from_secs_f64(sent as f64 / rate);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                let k = (n - sent).min(chunk.len());
                self.send_counted(&chunk[..k], deadline, &mut sent)?;
            }
            self.line(deadline)
        })();
        match res {
            Ok(answer) if answer == format!("{} {n}", self.server) => Ok(t0.elapsed()),
            Ok(answer) => Err(format!("server answered {answer:?}")),
            Err(e) => Err(format!(
                "{e} after {:?} ({sent} of {n} bytes handed to the socket)",
                t0.elapsed()
            )),
        }
    }

    /// Receives `n` bytes from the real server within `limit`; how long it took.
    pub fn download(&mut self, n: usize, limit: Duration) -> Result<Duration, String> {
        use std::io::Read;
        let t0 = Instant::now();
        let deadline = t0 + limit;
        let mut got = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let res = (|| {
            self.send(format!("down {n}\n").as_bytes(), deadline)?;
            while got < n {
                self.r
                    .get_mut()
                    .set_read_timeout(Some(Self::left(deadline)?))?;
                let k = (n - got).min(buf.len());
                match self.r.read(&mut buf[..k]) {
                    Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(m) => got += m,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.line(deadline)
        })();
        match res {
            Ok(answer) if answer == self.server => Ok(t0.elapsed()),
            Ok(answer) => Err(format!("server answered {answer:?}")),
            Err(e) => Err(format!(
                "{e} after {:?} ({got} of {n} bytes in)",
                t0.elapsed()
            )),
        }
    }
}

/// Opens bulk connections from `ns` one at a time (at most `max`) until one is
/// served by a real server whose name starts with `prefix`; the others are returned
/// open too (they count as load).
pub fn bulk_served_by(ns: &str, prefix: &str, max: usize) -> (Option<BulkConn>, Vec<BulkConn>) {
    bulk_served_by_at(ns, vip(), prefix, max)
}

/// [`bulk_served_by`] to `addr`.
pub fn bulk_served_by_at(
    ns: &str,
    addr: SocketAddr,
    prefix: &str,
    max: usize,
) -> (Option<BulkConn>, Vec<BulkConn>) {
    let mut others = Vec::new();
    for _ in 0..max {
        match BulkConn::open_at(ns, addr) {
            Ok(c) if c.server.starts_with(prefix) => return (Some(c), others),
            Ok(c) => others.push(c),
            Err(_) => {}
        }
    }
    (None, others)
}

/// One IP counter of namespace `ns` from /proc/net/snmp (`FragCreates`,
/// `ReasmOKs`, ...).
pub fn ip_counter(ns: &str, name: &str) -> Option<u64> {
    let text = guest::sh_in(ns, "cat /proc/net/snmp");
    let mut ip = text.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next()?, ip.next()?);
    let i = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// `net.ipv4.vs.pmtu_disc` in namespace `ns`.
pub fn pmtu_disc(ns: &str) -> String {
    guest::sh_in(ns, "cat /proc/sys/net/ipv4/vs/pmtu_disc")
        .trim()
        .to_string()
}

/// Guest-wide CPU jiffies from /proc/stat: (busy, all). The lab kernel is one CPU
/// shared by every namespace, so this is both directors, the routers and the hosts.
pub fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let all: u64 = f.iter().sum();
    // idle and iowait are fields 4 and 5.
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (all - idle, all)
}
