//! Shared pieces of the tests: the two-site topology, desired states, a director
//! handle that runs a Forwarder inside the director's namespace, and the checks the
//! lab-kernel scenarios repeat. `state` has what the kernel-free diff tests share.
#![allow(dead_code)]

pub mod state;
pub mod v6;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc;

use anycast_lab::uml::{Topology, guest};
use tunnel_forwarder::{DesiredState, Dest, Forward, Forwarder, Report, TunnelIn};

pub use state::{TUN, VIP};

pub const DIR_A: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
pub const DIR_B: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
pub const MARK: u32 = 0x41;

pub fn vip80() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(VIP), 80)
}

/// client -- r -- dira (rs a1, a2)
///               \- dirb (rs b1, b2)
/// The router sends the VIP to site A (the client's nearest site).
pub fn two_sites() -> Topology {
    let mut t = Topology::new()
        .router("r")
        .router("dira")
        .router("dirb")
        .link("client", "eth0", "10.0.0.2/24", "r", "c0", "10.0.0.1/24")
        .link("r", "a0", "10.1.0.1/24", "dira", "eth0", "10.1.0.2/24")
        .link("r", "b0", "10.2.0.1/24", "dirb", "eth0", "10.2.0.2/24")
        .route("client", "default via 10.0.0.1")
        .route("r", "10.101.4.1/32 via 10.1.0.2")
        .route("dira", "default via 10.1.0.1")
        .route("dirb", "default via 10.2.0.1");
    for (dir, rs, net) in [
        ("dira", "a1", "10.101.5"),
        ("dira", "a2", "10.101.15"),
        ("dirb", "b1", "10.101.6"),
        ("dirb", "b2", "10.101.16"),
    ] {
        t = t
            .link(
                dir,
                rs,
                &format!("{net}.1/24"),
                rs,
                "eth0",
                &format!("{net}.11/24"),
            )
            .route(rs, &format!("default via {net}.1"));
    }
    t
}

pub fn rs_addr(name: &str) -> Ipv4Addr {
    match name {
        "a1" => Ipv4Addr::new(10, 101, 5, 11),
        "a2" => Ipv4Addr::new(10, 101, 15, 11),
        "b1" => Ipv4Addr::new(10, 101, 6, 11),
        "b2" => Ipv4Addr::new(10, 101, 16, 11),
        _ => panic!("unknown real server {name}"),
    }
}

/// Starts the four real servers (each answers with its name).
pub fn start_real_servers() {
    for rs in ["a1", "a2", "b1", "b2"] {
        guest::tcp::serve(rs, SocketAddr::new(IpAddr::V4(rs_addr(rs)), 80), rs);
    }
}

/// One site's desired state: VIP:80 with two local NAT real servers of weight
/// `local_w`, one peer of weight `peer_w`, and the loop guard when `guard`.
pub fn site(
    local: &[&str],
    local_w: u32,
    me: Ipv4Addr,
    peer: Ipv4Addr,
    peer_w: u32,
    guard: bool,
) -> DesiredState {
    let dests = |w| {
        local
            .iter()
            .map(|n| Dest::new(IpAddr::V4(rs_addr(n)), 80, Forward::Nat, w))
            .collect::<Vec<_>>()
    };
    // Tunnelled-in connections go to local servers at their own weight.
    let tunnel_in = guard.then(|| TunnelIn::like(MARK, &dests(1)));
    state::one_service(dests(local_w), tunnel_in, me, peer, peer_w)
}

pub fn site_a(local_w: u32, peer_w: u32, guard: bool) -> DesiredState {
    site(&["a1", "a2"], local_w, DIR_A, DIR_B, peer_w, guard)
}

pub fn site_b(local_w: u32, peer_w: u32, guard: bool) -> DesiredState {
    site(&["b1", "b2"], local_w, DIR_B, DIR_A, peer_w, guard)
}

type Job = Box<dyn FnOnce(&mut Forwarder) + Send>;

/// A Forwarder living on a thread inside a director's namespace (netlink sockets
/// and /proc/sys writes both follow the thread's namespace), driven by closures.
pub struct Director {
    tx: mpsc::Sender<Job>,
}

impl Director {
    pub fn start(ns: &str) -> Director {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let ns2 = ns.to_string();
        guest::spawn_in_netns(ns, move || {
            let mut f = match Forwarder::open() {
                Ok(f) => {
                    let _ = ready_tx.send(Ok(()));
                    f
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{ns2}: {e}")));
                    return;
                }
            };
            for job in rx {
                job(&mut f);
            }
        });
        ready_rx
            .recv()
            .expect("director thread")
            .unwrap_or_else(|e| panic!("Forwarder::open: {e}"));
        Director { tx }
    }

    /// Runs `f` on the director's Forwarder and returns its result.
    pub fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Forwarder) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Box::new(move |fw| {
                let _ = tx.send(f(fw));
            }))
            .expect("director alive");
        rx.recv().expect("director answered")
    }

    pub fn reconcile(&self, d: &DesiredState) -> Report {
        let d = d.clone();
        self.with(move |f| f.reconcile(&d))
            .unwrap_or_else(|e| panic!("reconcile: {e}"))
    }

    /// Packets the director's tunnel device received (0 while it has none).
    pub fn tunnel_rx(&self) -> u64 {
        self.with(|f| f.link_packets(TUN))
            .expect("link")
            .unwrap_or([0, 0])[0]
    }
}

/// Forwarders on both directors, each reconciled once: A to `a`, B to `b`.
pub fn start_directors(a: &DesiredState, b: &DesiredState) -> (Director, Director) {
    let (da, db) = (Director::start("dira"), Director::start("dirb"));
    da.reconcile(a);
    db.reconcile(b);
    (da, db)
}

/// `n` tries of `ask` (each a fresh connection or a fresh UDP socket from the
/// client): who answered each, `error:...` for a try that got no answer.
pub fn ask_n<E: std::fmt::Display>(n: usize, ask: impl Fn() -> Result<String, E>) -> Vec<String> {
    (0..n)
        .map(|_| ask().unwrap_or_else(|e| format!("error:{e}")))
        .collect()
}

/// `n` UDP flows from the client to `addr`, each from a source port no ask used
/// before (counting up from 10000, below the ephemeral range). A random port can repeat
/// one of an earlier flow whose connection entry still lives (5 minutes for UDP) and be
/// sent where that flow went: after a few hundred flows, one in about ten runs of 30.
pub fn ask_udp_unused_ports(n: usize, addr: std::net::SocketAddr) -> Vec<String> {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(10_000);
    ask_n(n, || {
        let port = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        guest::udp::ask_from("client", addr, port)
    })
}

/// `n` short connections from the client to the VIP; the names that answered.
pub fn ask_many(n: usize) -> Vec<String> {
    ask_n(n, || guest::tcp::ask_once("client", vip80()))
}

pub fn count(names: &[String], prefix: &str) -> usize {
    names.iter().filter(|n| n.starts_with(prefix)).count()
}

/// What the kernel holds in each director's namespace, for the log.
pub fn dump(nss: &[&str]) {
    for ns in nss {
        println!(
            "--- {ns}\n{}",
            guest::sh_in(
                ns,
                "ipvsadm -Ln; ip -br addr; tc filter show dev acip0 ingress 2>&1 | head -20; ip -s link show dev acip0 2>&1 | head -6"
            )
        );
    }
}

/// Checks that every answer in `names` came from a server whose name starts with
/// `prefix`.
pub fn check_all_from(step: &str, names: &[String], prefix: &str) -> bool {
    guest::check(
        step,
        count(names, prefix) == names.len(),
        &format!("{names:?}"),
    )
}

/// Checks that director `dir` (named `who` in the detail) received nothing on its
/// tunnel device.
pub fn check_no_tunnel_rx(step: &str, who: &str, dir: &Director) -> bool {
    let rx = dir.tunnel_rx();
    guest::check(step, rx == 0, &format!("{who} {TUN} rx {rx}"))
}

/// Asks again on a long-lived connection; checks that `first` answers again.
pub fn check_same_server(step: &str, conn: &mut guest::tcp::Client, first: &str) -> bool {
    let again = conn.ask().unwrap_or_else(|e| format!("error:{e}"));
    guest::check(step, again == first, &format!("{first} then {again}"))
}

/// Checks `ok` about a reconcile's report, with its requests as the detail.
pub fn check_report(step: &str, ok: bool, r: &Report) -> bool {
    guest::check(step, ok, &format!("{:?}", r.requests))
}

/// `d` with a UDP service on port 53 beside its first (TCP) service: the same
/// servers on port 53, the loop guard's mark one above the TCP service's.
pub fn with_udp(mut d: DesiredState) -> DesiredState {
    let mut udp = d.vips[0].services[0].clone();
    udp.protocol = tunnel_forwarder::Protocol::Udp;
    udp.port = 53;
    for dest in udp.local.iter_mut() {
        dest.port = 53;
    }
    if let Some(t) = udp.tunnel_in.as_mut() {
        t.mark += 1;
        for dest in t.dests.iter_mut() {
            dest.port = 53;
        }
    }
    d.vips[0].services.push(udp);
    d
}

/// New connections (or UDP flows) counted in a split test, at a share of 276/1024.
pub const SPLIT_N: usize = 400;

/// The split test's share, in units: 27%.
pub const SPLIT_SHARE: f64 = 0.27;

/// The longest run of answers from site B in a row.
pub fn longest_run_to_b(names: &[String]) -> usize {
    names
        .split(|x| !x.starts_with('b'))
        .map(<[String]>::len)
        .max()
        .unwrap_or(0)
}

/// Checks [`SPLIT_N`] answers under a split of 276/1024 (`Split::units(0.27)`): the
/// count sent to B, and no burst to B.
pub fn check_split_counts(what: &str, answers: &[String]) {
    let to_b = count(answers, "b");
    // Binomial(400, 276/1024): mean 107.8, sd 8.87; 4 sd either way, 72..=144. The
    // chance that a correct split fails one count is 6e-5 (at 3 sd one run in 370
    // would fail each count).
    guest::check(
        &format!("split_share_of_new_{what}"),
        (72..=144).contains(&to_b) && count(answers, "error") == 0,
        &format!("{to_b} of {SPLIT_N} {what} to B (expected about 108)"),
    );
    // The longest run of B in a row: wlc on a fresh peer destination would give one
    // long run (80 in a row was seen); the split gives short ones (a run of 12 or
    // more has a chance of about 400 x 0.27^12 = 3e-5).
    let longest = longest_run_to_b(answers);
    guest::check(
        &format!("split_no_burst_of_{what}"),
        longest <= 12,
        &format!("longest run to B: {longest}"),
    );
}

/// A spill step from `from`'s split to `to`'s (share 0) as targeted requests on
/// director `a`: small, applied, then nothing leaves (`ask` TCP and UDP, 30 each; UDP
/// from ports never used before, [`ask_udp_unused_ports`])
/// and a reconcile reads it back unchanged. Checks are named `{tag}_...`.
pub fn check_split_to_zero(
    tag: &str,
    a: &Director,
    (from, to): (&DesiredState, &DesiredState),
    ask: [fn(usize) -> Vec<String>; 2],
) {
    let step = from
        .split
        .as_ref()
        .and_then(|s| s.changes(to.split.as_ref().expect("split")))
        .expect("a targeted step");
    guest::check(
        &format!("{tag}_step_is_small"),
        step.len() <= 2,
        &format!("{step:?}"),
    );
    let n_applied = a.with(move |f| f.apply(&step)).expect("apply");
    guest::check(&format!("{tag}_step_applied"), n_applied >= 1, "");
    check_all_from(&format!("{tag}_zero_sends_nothing"), &ask[0](30), "a");
    check_all_from(&format!("{tag}_zero_sends_no_udp"), &ask[1](30), "a");
    let again = a.reconcile(to);
    check_report(&format!("{tag}_zero_read_back"), again.changes == 0, &again);
    println!(
        "--- dira\n{}",
        guest::sh_in(
            "dira",
            "ipvsadm -Ln; tc -s filter show dev eth0 ingress; tc filter show dev eth0 ingress chain 44033"
        )
    );
}
