//! Benchmark: from `withdraw()` to the UPDATE on the wire, and to the route
//! leaving FRR's kernel table. 100 runs, p50/p99 printed.
//!
//! ```text
//! cargo run --release -p bgp-speaker --example withdraw_latency [-- RUNS]
//! ```
//!
//! Needs root (namespaces) and FRR 8.4. The speaker runs in namespace `spk`, FRR
//! (zebra + bgpd) in namespace `frr`, joined by a veth pair. A packet socket on
//! FRR's veth end sees the withdraw UPDATE arrive ("wire"); a netlink socket in
//! FRR's namespace sees the kernel route go ("kernel"). Both are timestamped in
//! user space with the monotonic clock when their thread wakes, so the figures are
//! upper bounds that include a scheduler wake-up on a shared 2-core machine.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anycast_lab::bgp_capture::{
    Prefix4, RouteChange, Update, bgp_in_frame, kernel_stamp, observe, packet_socket,
    route_changes, route_socket,
};
use anycast_lab::netns::{Netns, veth, wait_until};
use anycast_lab::peers::Frr;
use bgp_speaker::{PeerConfig, PeerState, Route, Speaker, SpeakerConfig};

const SPEAKER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const PREFIX: Prefix4 = (Ipv4Addr::new(10, 101, 4, 0), 24);

#[derive(Debug)]
enum Event {
    /// Seen by the capture thread (when it woke, and the kernel's receive timestamp).
    Wire(Instant, Option<SystemTime>),
    KernelAdd(Instant),
    KernelDel(Instant),
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let spk = Netns::create("benchspk")?;
    let peer = Netns::create("benchfrr")?;
    let link = veth(&spk, &["10.200.0.1/30"], &peer, &["10.200.0.2/30"])?;
    let conf = "router bgp 65001\n bgp router-id 10.200.0.2\n no bgp ebgp-requires-policy\n \
                neighbor 10.200.0.1 remote-as 65005\n neighbor 10.200.0.1 timers 3 9\n neighbor 10.200.0.1 timers connect 1\n";
    let frr = Frr::start(&peer, conf, true)?;

    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    // FRR's veth end: the speaker's UPDATEs withdrawing the prefix.
    let capture = {
        let (ifname, tx) = (link.b_if.clone(), tx.clone());
        observe(
            peer.name(),
            move || packet_socket(&ifname),
            stop.clone(),
            ready_tx.clone(),
            move |fd, frame, now| {
                if bgp_in_frame(frame, SPEAKER, PREFIX).contains(&Update::Withdraw) {
                    let _ = tx.send(Event::Wire(now, kernel_stamp(fd)));
                }
            },
        )
    };
    // FRR's kernel table (rtnetlink multicast): the prefix coming and going.
    let kernel = observe(
        peer.name(),
        route_socket,
        stop.clone(),
        ready_tx,
        move |_, buf, now| {
            for c in route_changes(buf, PREFIX) {
                let _ = tx.send(match c {
                    RouteChange::Add => Event::KernelAdd(now),
                    RouteChange::Del => Event::KernelDel(now),
                });
            }
        },
    );
    let threads = [capture, kernel];
    for _ in 0..2 {
        ready_rx.recv_timeout(Duration::from_secs(5))?;
    }

    spk.enter_current_thread()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut p = PeerConfig::new(
        "frr",
        "10.200.0.2".parse()?,
        65005,
        65001,
        "10.200.0.1".parse()?,
    );
    p.hold_time = 9;
    p.connect_retry = 1;
    let speaker = rt.block_on(Speaker::start(SpeakerConfig {
        peers: vec![p],
        listen: None,
    }))?;
    let up = wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
        rt.block_on(speaker.status())
            .first()
            .is_some_and(|s| s.state == PeerState::Established)
    });
    if !up {
        return Err(format!("session did not come up:\n{}", frr.log()).into());
    }

    let prefix = "10.101.4.0/24".parse()?;
    let mut wire = Vec::with_capacity(runs);
    let mut kern = Vec::with_capacity(runs);
    let mut wire_kernel = Vec::with_capacity(runs);
    let wait = |rx: &mpsc::Receiver<Event>, want: fn(&Event) -> bool| -> Option<Instant> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(e) if want(&e) => {
                    return Some(match e {
                        Event::Wire(t, _) | Event::KernelAdd(t) | Event::KernelDel(t) => t,
                    });
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };
    for i in 0..runs {
        rt.block_on(speaker.announce(Route::new(prefix)))?;
        wait(&rx, |e| matches!(e, Event::KernelAdd(_)))
            .ok_or(format!("run {i}: route never installed"))?;
        thread::sleep(Duration::from_millis(20));
        while rx.try_recv().is_ok() {}
        let t0_real = SystemTime::now();
        let t0 = Instant::now();
        rt.block_on(speaker.withdraw(prefix))?;
        let mut got_wire = None;
        let mut got_kernel = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while (got_wire.is_none() || got_kernel.is_none()) && Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                // Only the speaker's UPDATEs count (FRR echoes the withdraw back to us
                // about 50 ms later, from its own address); keep the first.
                Ok(Event::Wire(t, stamp)) if got_wire.is_none() => {
                    got_wire = Some(t);
                    if let Some(d) = stamp.and_then(|s| s.duration_since(t0_real).ok()) {
                        wire_kernel.push(d);
                    }
                }
                Ok(Event::KernelDel(t)) => got_kernel = Some(t),
                _ => {}
            }
        }
        let (Some(w), Some(k)) = (got_wire, got_kernel) else {
            return Err(format!("run {i}: wire {got_wire:?} kernel {got_kernel:?}").into());
        };
        wire.push(w.saturating_duration_since(t0));
        kern.push(k.saturating_duration_since(t0));
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(speaker.shutdown("benchmark done"));
    drop(rt);
    for t in threads {
        let _ = t.join();
    }
    println!(
        "withdraw() -> UPDATE on the wire, capture thread awake ({runs} runs): p50 {:?}  p99 {:?}  max {:?}",
        pct(&mut wire, 0.5),
        pct(&mut wire, 0.99),
        pct(&mut wire, 1.0)
    );
    if !wire_kernel.is_empty() {
        let n = wire_kernel.len();
        println!(
            "withdraw() -> UPDATE on the wire, kernel rx timestamp ({n} runs): p50 {:?}  p99 {:?}  max {:?}",
            pct(&mut wire_kernel, 0.5),
            pct(&mut wire_kernel, 0.99),
            pct(&mut wire_kernel, 1.0)
        );
    }
    println!(
        "withdraw() -> gone from FRR's kernel table ({runs} runs): p50 {:?}  p99 {:?}  max {:?}",
        pct(&mut kern, 0.5),
        pct(&mut kern, 0.99),
        pct(&mut kern, 1.0)
    );
    drop(frr);
    Ok(())
}
