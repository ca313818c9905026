//! What the interop tests share: the two namespaces, our side of the session,
//! waiting for a state change, cutting the path to a peer with the carrier up, the
//! runtime, the timers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use anycast_lab::netns::{Netns, veth};
use bfd::{BfdHandle, Event, PeerSpec, State, Timers};
use tokio::sync::mpsc;

/// 300 ms x 5 on both sides: tolerant of a busy CI machine (a test process stalled
/// past the peer's detection time would look like a cut path); the fast timers are
/// benchmark 2's.
pub const TIMERS: Timers = Timers {
    desired_min_tx: Duration::from_millis(300),
    required_min_rx: Duration::from_millis(300),
    detect_mult: 5,
};

/// The next event that `want`s, and how long it took; `None` after `limit`.
pub async fn wait_event(
    rx: &mut mpsc::Receiver<Event>,
    limit: Duration,
    want: impl Fn(&Event) -> bool,
) -> Option<(Event, Duration)> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if want(&e) => return Some((e, start.elapsed())),
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

/// The peer's namespace and ours, `peer_ns` and `us_ns`, joined by a veth with
/// `peer`/`prefix_len` and `us`/`prefix_len` on its ends.
pub fn namespaces(
    peer_ns: &str,
    peer: &str,
    us_ns: &str,
    us: &str,
    prefix_len: u8,
) -> (Netns, Netns) {
    let p = Netns::create(peer_ns).expect("netns");
    let u = Netns::create(us_ns).expect("netns");
    veth(
        &p,
        &[&format!("{peer}/{prefix_len}")],
        &u,
        &[&format!("{us}/{prefix_len}")],
    )
    .expect("veth");
    (p, u)
}

/// Our side: one session with `peer` from `local` at [`TIMERS`], and its events.
/// Call from inside the runtime.
pub fn spawn(peer: &str, local: &str) -> (BfdHandle, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(64);
    let h = bfd::spawn(
        &[PeerSpec {
            peer: peer.parse().expect("peer address"),
            local: Some(local.parse().expect("local address")),
            timers: TIMERS,
        }],
        tx,
    )
    .expect("bfd");
    (h, rx)
}

/// Whether the session comes Up within `limit`.
pub async fn up_within(rx: &mut mpsc::Receiver<Event>, limit: Duration) -> bool {
    wait_event(rx, limit, |e| e.to == State::Up).await.is_some()
}

/// Drops (`-A`) or lets through again (`-D`) everything between `ns` and `peer`, in
/// both directions: a path cut with the carrier up.
pub fn cut(ns: &Netns, peer: &str, op: &str) {
    let tool = if peer.contains(':') {
        "ip6tables"
    } else {
        "iptables"
    };
    for (chain, dir) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
        ns.exec(tool, &[op, chain, dir, peer, "-j", "DROP"])
            .unwrap_or_else(|e| panic!("{tool} {op} {chain}: {e}"));
    }
}

/// A runtime whose workers start from this thread, in its namespace: the BFD task
/// runs on them while the test blocks on vtysh, birdc and iptables.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
