//! Interop with FRR 8.4's bfdd in network namespaces on the host kernel: a session
//! comes up, a cut path (carrier up, everything dropped) brings it down on both sides
//! within the detection time, it comes back, timers are renegotiated by a Poll
//! Sequence, FRR going AdminDown is seen as such, FRR restarting is survived, and
//! malformed or wrong-TTL packets change nothing but counters.

mod common;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anycast_lab::netns::{Netns, wait_until};
use anycast_lab::peers::Frr;
use anycast_lab::{Need, require};
use bfd::{Diag, State, Timers};
use common::wait_event;

const NEEDS: &[Need] = &[
    Need::Netns,
    Need::Program("/usr/lib/frr/bfdd"),
    Need::Program("/usr/lib/frr/zebra"),
    Need::Program("/usr/lib/frr/bgpd"),
    Need::Program("vtysh"),
    Need::Program("iptables"),
];

const FRR: &str = "10.77.0.1";
const US: &str = "10.77.0.2";

fn bfdd_conf(shutdown: bool) -> String {
    format!(
        "bfd\n peer {US} local-address {FRR}\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 5\n{} !\n!\n",
        if shutdown { "  shutdown\n" } else { "" }
    )
}

/// FRR's view of its peer: (status, remote transmit interval ms).
fn frr_peer(frr: &Frr) -> (String, u64) {
    let out = frr
        .vtysh(&format!("show bfd peer {US} json"))
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    (
        v["status"].as_str().unwrap_or_default().to_string(),
        v["remote-transmit-interval"].as_u64().unwrap_or(0),
    )
}

#[test]
fn netns_frr_bfd_up_cut_heal_poll_admin_down_restart_garbage() {
    if !require(
        "netns_frr_bfd_up_cut_heal_poll_admin_down_restart_garbage",
        NEEDS,
    ) {
        return;
    }
    let (frr_ns, us_ns) = common::namespaces("bfdfrr", FRR, "bfdus", US, 24);
    let mut frr = Frr::start_with_bfdd(
        &frr_ns,
        "frr defaults traditional\nrouter bgp 64512\n bgp router-id 10.77.0.1\n",
        &bfdd_conf(false),
    )
    .expect("start FRR with bfdd");

    us_ns.enter_current_thread().expect("enter netns");
    let rt = common::runtime();
    rt.block_on(async {
        let peer: IpAddr = FRR.parse().unwrap();
        let (h, mut rx) = common::spawn(FRR, US);

        // 1. Up, and FRR agrees.
        let up = common::up_within(&mut rx, Duration::from_secs(15)).await;
        assert!(up, "no Up; FRR says {:?}", frr_peer(&frr));
        frr_sees(&frr, |status, _| status == "up");
        // Both ends polled to 300 ms x 5 once Up.
        let st = wait_status(&h, Duration::from_secs(5), |s| {
            s.tx_interval == Duration::from_millis(300)
                && s.detection_time == Duration::from_millis(1500)
        })
        .await;
        assert!(st.is_ok(), "{st:?}");

        // 2. The path is cut with the carrier up: down on our side within the
        // detection time (1.5 s; timer and scheduling slack allowed), on FRR's too.
        common::cut(&us_ns, FRR, "-A");
        let down = wait_event(&mut rx, Duration::from_secs(3), |e| e.to == State::Down).await;
        let (ev, took) = down.expect("no Down after the cut");
        assert_eq!(ev.diag, Diag::ControlDetectionTimeExpired);
        assert!(took <= Duration::from_millis(1900), "down after {took:?}");
        println!("BENCH bfd_cut_to_down_ms {}", took.as_millis());
        frr_sees(&frr, |status, _| status == "down");

        // 3. Healed: up again on both sides.
        common::cut(&us_ns, FRR, "-D");
        assert!(
            common::up_within(&mut rx, Duration::from_secs(10)).await,
            "not up after the heal; FRR {:?}",
            frr_peer(&frr)
        );

        // 4. Slower timers from our side: a Poll Sequence, FRR sees 400 ms.
        h.set_timers(
            peer,
            Timers {
                desired_min_tx: Duration::from_millis(400),
                required_min_rx: Duration::from_millis(400),
                detect_mult: 3,
            },
        )
        .await;
        frr_sees(&frr, |_, remote_tx_ms| remote_tx_ms == 400);
        let st = wait_status(&h, Duration::from_secs(5), |s| {
            s.state == State::Up && s.tx_interval == Duration::from_millis(400)
        })
        .await;
        assert!(st.is_ok(), "{st:?}");

        // 5. Garbage and wrong-TTL packets from FRR's side: counted, nothing changes.
        let before = (
            h.counters().malformed.load(Ordering::Relaxed),
            h.counters().bad_ttl.load(Ordering::Relaxed),
        );
        send_from(
            &frr_ns,
            &[(255, &[0u8; 10]), (255, &[0x40; 24]), (64, &[0x20; 24])],
        );
        assert!(wait_until(
            Duration::from_secs(2),
            Duration::from_millis(20),
            || {
                h.counters().malformed.load(Ordering::Relaxed) >= before.0 + 2
                    && h.counters().bad_ttl.load(Ordering::Relaxed) > before.1
            }
        ));
        let st = h.status().await;
        let mut seen = Vec::new();
        while let Ok(e) = rx.try_recv() {
            seen.push(e);
        }
        assert_eq!(st[0].state, State::Up, "{st:?} events {seen:?}");

        // 6. FRR takes the session administratively down: we go Down, diag "neighbor
        // signaled session down", and see its state AdminDown.
        frr_shutdown(&frr_ns, true);
        let (ev, _) = wait_event(&mut rx, Duration::from_secs(5), |e| e.to == State::Down)
            .await
            .expect("no Down after FRR's shutdown");
        assert_eq!(ev.diag, Diag::NeighborSignaledSessionDown);
        let st = h.status().await;
        assert_eq!(st[0].remote_state, State::AdminDown, "{st:?}");
        // (FRR 8.4 sends its AdminDown packets with diagnostic 0, not 7.)
        println!("FRR's diagnostic with AdminDown: {}", st[0].remote_diag);

        // 7. FRR restarts (config without the shutdown): the session comes back.
        frr_shutdown(&frr_ns, false);
        assert!(
            common::up_within(&mut rx, Duration::from_secs(10)).await,
            "not up after no shutdown"
        );
        frr.restart().expect("restart FRR");
        assert!(
            common::up_within(&mut rx, Duration::from_secs(15)).await,
            "not up after FRR's restart; FRR {:?}",
            frr_peer(&frr)
        );
        // 8. A well-formed packet from an address that is no configured neighbor
        // changes nothing but a counter.
        frr_ns
            .ip(&["addr", "add", "10.77.0.9/32", "dev", "lo"])
            .expect("second address");
        let st = h.status().await[0].clone();
        let forged = bfd::ControlPacket {
            diag: Diag::None,
            state: State::Down,
            poll: false,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_discr: 99,
            your_discr: st.local_discr,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 1_000_000,
            required_min_echo_rx_us: 0,
        }
        .encode();
        let unknown = h.counters().unknown.load(Ordering::Relaxed);
        send_from_addr(&frr_ns, "10.77.0.9", &[(255, &forged)]);
        assert!(wait_until(
            Duration::from_secs(2),
            Duration::from_millis(20),
            || { h.counters().unknown.load(Ordering::Relaxed) > unknown }
        ));
        assert_eq!(h.status().await[0].state, State::Up);

        // 9. Our side restarts (a new task, a new discriminator): up again.
        h.shutdown().await;
        let (h, mut rx) = common::spawn(FRR, US);
        assert!(
            common::up_within(&mut rx, Duration::from_secs(15)).await,
            "not up after our restart; FRR {:?}",
            frr_peer(&frr)
        );
        drop(h);
    });
}

/// Sends each (TTL, bytes) from a socket in `ns` to our BFD port.
fn send_from(ns: &Netns, packets: &[(u32, &[u8])]) {
    send_from_addr(ns, "0.0.0.0", packets);
}

/// [`send_from`] with the source address `src`.
fn send_from_addr(ns: &Netns, src: &str, packets: &[(u32, &[u8])]) {
    let src = format!("{src}:0");
    let packets: Vec<(u32, Vec<u8>)> = packets.iter().map(|(t, b)| (*t, b.to_vec())).collect();
    let name = ns.name().to_string();
    std::thread::spawn(move || {
        anycast_lab::netns::enter(&name).expect("enter FRR's netns");
        let s = std::net::UdpSocket::bind(src.as_str()).expect("socket");
        for (ttl, bytes) in packets {
            s.set_ttl(ttl).expect("ttl");
            s.send_to(&bytes, (US, bfd::task::CONTROL_PORT))
                .expect("send");
        }
    })
    .join()
    .expect("sender thread");
}

/// Polls the session's status until `ok` holds: Ok(status) or Err(the last one).
async fn wait_status(
    h: &bfd::BfdHandle,
    limit: Duration,
    ok: impl Fn(&bfd::PeerStatus) -> bool,
) -> Result<bfd::PeerStatus, Option<bfd::PeerStatus>> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < limit {
        let st = h.status().await.into_iter().next();
        if let Some(s) = st.as_ref().filter(|s| ok(s)) {
            return Ok(s.clone());
        }
        last = st;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last)
}

/// `shutdown` (`down`) or `no shutdown` on FRR's session with us, through vtysh.
fn frr_shutdown(ns: &Netns, down: bool) {
    let peer = format!("peer {US} local-address {FRR}");
    let tag = ns.name().replace('-', "");
    let cmd = if down { "shutdown" } else { "no shutdown" };
    let _ = ns.exec(
        "vtysh",
        &[
            "-N",
            &tag,
            "-c",
            "configure terminal",
            "-c",
            "bfd",
            "-c",
            &peer,
            "-c",
            cmd,
        ],
    );
}

/// Waits up to 5 s for FRR's view of its peer, (status, remote transmit interval ms),
/// to satisfy `ok`; panics with it otherwise.
fn frr_sees(frr: &Frr, ok: impl Fn(&str, u64) -> bool) {
    let seen = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let (status, tx) = frr_peer(frr);
        ok(&status, tx)
    });
    assert!(seen, "FRR: {:?}", frr_peer(frr));
}
