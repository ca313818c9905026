//! What the interop tests share: waiting for a state change, cutting the path to a
//! peer with the carrier up, the runtime, the timers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use anycast_lab::netns::Netns;
use bfd::{Event, Timers};
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
