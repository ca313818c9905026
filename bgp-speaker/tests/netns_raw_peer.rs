//! Cases a real router cannot be made to produce: a malformed UPDATE, and more
//! prefixes than allowed. For these only, the test itself is the peer, speaking
//! BGP over a raw TCP socket in the peer's namespace.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anycast_lab::netns::{self, Netns, wait_until};
use anycast_lab::{Need, require};
use bgp_speaker::{MaxPrefix, MaxPrefixAction, PeerConfig, PeerState, Speaker};
use common::*;

fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xFF; 16];
    m.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// OPEN from AS 65001, hold 9, id 10.200.0.2, IPv4+IPv6 unicast, 4-octet AS.
fn open() -> Vec<u8> {
    open_with_id([10, 200, 0, 2])
}

fn open_with_id(id: [u8; 4]) -> Vec<u8> {
    let caps: &[u8] = &[
        2, 6, 1, 4, 0, 1, 0, 1, // MP IPv4 unicast
        2, 6, 1, 4, 0, 2, 0, 1, // MP IPv6 unicast
        2, 6, 65, 4, 0, 0, 0xFD, 0xE9, // 4-octet AS 65001
    ];
    let mut body = vec![
        4,
        0xFD,
        0xE9,
        0,
        9,
        id[0],
        id[1],
        id[2],
        id[3],
        u8::try_from(caps.len()).unwrap(),
    ];
    body.extend_from_slice(caps);
    msg(1, &body)
}

fn keepalive() -> Vec<u8> {
    msg(4, &[])
}

/// A well-formed eBGP UPDATE from AS 65001 announcing `prefixes` (/24s).
fn update(origin: u8, prefixes: &[[u8; 3]]) -> Vec<u8> {
    let attrs: &[u8] = &[
        0x40, 1, 1, origin, // ORIGIN
        0x40, 2, 6, 2, 1, 0, 0, 0xFD, 0xE9, // AS_PATH 65001
        0x40, 3, 4, 10, 200, 0, 2, // NEXT_HOP
    ];
    let mut body = vec![0, 0];
    body.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    body.extend_from_slice(attrs);
    for p in prefixes {
        body.push(24);
        body.extend_from_slice(p);
    }
    msg(2, &body)
}

/// Reads one BGP message: (type, body).
fn read_msg(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 19];
    s.read_exact(&mut h)?;
    let len = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let mut body = vec![0u8; len.saturating_sub(19)];
    s.read_exact(&mut body)?;
    Ok((h[18], body))
}

/// Reads until a message of `kind` arrives (bounded).
fn read_until(s: &mut TcpStream, kind: u8) -> std::io::Result<Vec<u8>> {
    for _ in 0..100 {
        let (t, body) = read_msg(s)?;
        if t == kind {
            return Ok(body);
        }
    }
    Err(std::io::Error::other("no such message in 100"))
}

/// Accepts the speaker's connection and completes the OPEN exchange.
fn accept_established(l: &TcpListener) -> TcpStream {
    let (mut s, _) = l.accept().expect("accept");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    read_until(&mut s, 1).expect("speaker's OPEN");
    s.write_all(&open()).unwrap();
    s.write_all(&keepalive()).unwrap();
    read_until(&mut s, 4).expect("speaker's KEEPALIVE");
    s
}

/// Runs `f` on a helper thread inside `ns`; sockets it makes stay in that namespace.
fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = ns.name().to_string();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        netns::enter(&name).expect("setns");
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("helper thread")
}

/// A listener on the peer's address inside the peer namespace.
fn listen_in(ns: &Netns) -> TcpListener {
    in_ns(ns, || {
        TcpListener::bind((PEER_V4, 179)).expect("bind peer address")
    })
}

/// The test as the one peer `cfg` describes: listens on the peer's address, starts
/// the speaker, and accepts its connection through the OPEN exchange.
fn raw_session(env: &Env, cfg: PeerConfig) -> (TcpListener, Speaker, TcpStream) {
    let l = listen_in(&env.peer);
    let speaker = start_speaker(env, vec![cfg], None);
    let s = accept_established(&l);
    (l, speaker, s)
}

#[test]
fn netns_raw_malformed_update_treat_as_withdraw_then_reset_and_recover() {
    if !require(
        "netns_raw_malformed_update_treat_as_withdraw_then_reset_and_recover",
        &[Need::Netns],
    ) {
        return;
    }
    let env = env("raw");
    let (l, speaker, mut s) = raw_session(&env, peer_config("raw"));
    assert!(wait_established(&env, &speaker, Duration::from_secs(5)));

    // Two good prefixes, counted.
    s.write_all(&update(0, &[[10, 1, 1], [10, 1, 2]])).unwrap();
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || status(&env, &speaker).prefixes_received == 2
    ));

    // RFC 7606 §7.1: an ORIGIN of 5 is malformed -> treat-as-withdraw; the session stays up.
    s.write_all(&update(5, &[[10, 1, 1]])).unwrap();
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            let st = status(&env, &speaker);
            st.counters.treat_as_withdraw == 1 && st.prefixes_received == 1
        }
    ));
    assert_eq!(status(&env, &speaker).state, PeerState::Established);

    // Withdrawn Routes Length beyond the message: RFC 7606 §4 leaves only a session
    // reset, with NOTIFICATION 3/1 (UPDATE Message Error / Malformed Attribute List).
    s.write_all(&msg(2, &[0, 200, 24, 10, 1, 1, 0, 0])).unwrap();
    let notification = read_until(&mut s, 3).expect("NOTIFICATION");
    assert_eq!(&notification[..2], &[3, 1], "got {notification:?}");
    let st = status(&env, &speaker);
    assert_ne!(st.state, PeerState::Established);
    assert!(
        st.last_error.as_deref().unwrap_or_default().contains("3/1"),
        "{:?}",
        st.last_error
    );
    drop(s);

    // The session recovers on its own (backoff with jitter, at most idle_hold_max).
    let _s2 = accept_established(&l);
    assert!(wait_established(&env, &speaker, Duration::from_secs(10)));
    assert_eq!(status(&env, &speaker).prefixes_received, 0);
}

#[test]
fn netns_raw_max_prefix_teardown_holds_off() {
    if !require("netns_raw_max_prefix_teardown_holds_off", &[Need::Netns]) {
        return;
    }
    let env = env("rawmax");
    let mut cfg = peer_config("raw");
    cfg.max_prefix = Some(MaxPrefix {
        limit: 2,
        action: MaxPrefixAction::Teardown {
            hold_off: Duration::from_secs(3),
        },
    });
    let (l, speaker, mut s) = raw_session(&env, cfg);
    s.write_all(&update(0, &[[10, 1, 1], [10, 1, 2], [10, 1, 3]]))
        .unwrap();
    let notification = read_until(&mut s, 3).expect("NOTIFICATION");
    // RFC 4486: Cease / Maximum Number of Prefixes Reached, data AFI 1, SAFI 1, limit 2.
    assert_eq!(notification, vec![6, 1, 0, 1, 1, 0, 0, 0, 2]);
    drop(s);
    let down_at = Instant::now();
    let _s2 = accept_established(&l);
    let waited = down_at.elapsed();
    assert!(
        waited >= Duration::from_millis(2500),
        "reconnected after {waited:?}, before the 3 s hold-off"
    );
    assert!(wait_established(&env, &speaker, Duration::from_secs(5)));
}

#[test]
fn netns_raw_max_prefix_warn_keeps_session() {
    if !require("netns_raw_max_prefix_warn_keeps_session", &[Need::Netns]) {
        return;
    }
    let env = env("rawwarn");
    let mut cfg = peer_config("raw");
    cfg.max_prefix = Some(MaxPrefix {
        limit: 1,
        action: MaxPrefixAction::Warn,
    });
    let (_l, speaker, mut s) = raw_session(&env, cfg);
    s.write_all(&update(0, &[[10, 1, 1], [10, 1, 2], [10, 1, 3]]))
        .unwrap();
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || status(&env, &speaker).prefixes_received == 3
    ));
    assert_eq!(status(&env, &speaker).state, PeerState::Established);
}

/// RFC 4271 §6.8 with the test as the peer: our connection is in OpenSent when the
/// peer opens a second one. The connection opened by the higher BGP Identifier wins;
/// the loser gets Cease / Connection Collision Resolution (6/7).
fn collision(peer_id: [u8; 4], new_wins: bool) {
    let env = env(if new_wins { "colnew" } else { "colold" });
    let l = listen_in(&env.peer);
    let mut cfg = peer_config("raw");
    cfg.connect_retry = 30; // one outgoing attempt during the test
    let listen = format!("{SPK_V4}:179").parse().unwrap();
    let speaker = start_speaker(&env, vec![cfg], Some(listen));

    let (mut ours, _) = l.accept().expect("speaker connects");
    ours.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    read_until(&mut ours, 1).expect("speaker's OPEN on its connection");

    let mut theirs = in_ns(&env.peer, || {
        TcpStream::connect((SPK_V4, 179)).expect("connect to the speaker")
    });
    theirs
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    read_until(&mut theirs, 1).expect("speaker's OPEN on the peer's connection");
    theirs.write_all(&open_with_id(peer_id)).unwrap();

    let (winner, loser) = if new_wins {
        (&mut theirs, &mut ours)
    } else {
        (&mut ours, &mut theirs)
    };
    let n = read_until(loser, 3).expect("NOTIFICATION on the losing connection");
    assert_eq!(&n[..2], &[6, 7], "Cease / Connection Collision Resolution");
    if !new_wins {
        winner.write_all(&open_with_id(peer_id)).unwrap();
    }
    winner.write_all(&keepalive()).unwrap();
    read_until(winner, 4).expect("KEEPALIVE on the winning connection");
    assert!(
        wait_established(&env, &speaker, Duration::from_secs(5)),
        "{:?}",
        status(&env, &speaker)
    );
    let st = status(&env, &speaker);
    assert_eq!(st.remote_id.map(|(id, _)| id.octets()), Some(peer_id));
}

#[test]
fn netns_raw_collision_higher_peer_id_keeps_the_peers_connection() {
    if !require(
        "netns_raw_collision_higher_peer_id_keeps_the_peers_connection",
        &[Need::Netns],
    ) {
        return;
    }
    collision([10, 200, 0, 2], true);
}

#[test]
fn netns_raw_collision_lower_peer_id_keeps_our_connection() {
    if !require(
        "netns_raw_collision_lower_peer_id_keeps_our_connection",
        &[Need::Netns],
    ) {
        return;
    }
    collision([1, 1, 1, 1], false);
}

/// Dropping every handle stops the session with Cease / Administrative Shutdown.
#[test]
fn netns_raw_dropping_the_speaker_sends_cease() {
    if !require("netns_raw_dropping_the_speaker_sends_cease", &[Need::Netns]) {
        return;
    }
    let env = env("rawdrop");
    let (_l, speaker, mut s) = raw_session(&env, peer_config("raw"));
    assert!(wait_established(&env, &speaker, Duration::from_secs(5)));
    drop(speaker);
    let n = read_until(&mut s, 3).expect("NOTIFICATION");
    assert_eq!(&n[..2], &[6, 2]);
    assert_eq!(&n[3..], b"speaker stopped");
}

/// One peer's malformed input resets only that peer's session.
#[test]
fn netns_raw_one_bad_peer_does_not_touch_another() {
    if !require(
        "netns_raw_one_bad_peer_does_not_touch_another",
        &[Need::Netns],
    ) {
        return;
    }
    let env = env("rawtwo");
    // A second subnet on the same veth pair for peer B.
    let (spk_if, peer_if) = (env.link.a_if.clone(), env.link.b_if.clone());
    env.spk
        .ip(&["addr", "add", "10.200.1.1/24", "dev", &spk_if])
        .unwrap();
    env.peer
        .ip(&["addr", "add", "10.200.1.2/24", "dev", &peer_if])
        .unwrap();

    let la = listen_in(&env.peer);
    let lb = in_ns(&env.peer, || {
        TcpListener::bind(("10.200.1.2", 179)).expect("bind B")
    });
    let a = peer_config("a");
    let mut b = peer_config("b");
    b.remote_addr = "10.200.1.2".parse().unwrap();
    let speaker = start_speaker(&env, vec![a, b], None);
    let mut sa = accept_established(&la);
    let _sb = accept_established(&lb);
    let state = |name: &str| {
        env.rt
            .block_on(speaker.peer(name).unwrap().status())
            .unwrap()
    };
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || state("a").state == PeerState::Established && state("b").state == PeerState::Established
    ));

    sa.write_all(&msg(2, &[0, 200, 24, 10, 1, 1, 0, 0]))
        .unwrap();
    assert_eq!(
        &read_until(&mut sa, 3).expect("NOTIFICATION to A")[..2],
        &[3, 1]
    );
    thread::sleep(Duration::from_millis(300));
    let b = state("b");
    assert_eq!(b.state, PeerState::Established, "{b:?}");
    assert_eq!(b.counters.established_transitions, 1);
    assert_eq!(b.counters.notifications_sent, 0);
}

/// RFC 9687: a peer that keeps sending KEEPALIVEs but stops reading gets a send
/// hold timer expiry (NOTIFICATION 8/0 attempted, connection closed).
#[test]
fn netns_raw_send_hold_timer_closes_a_peer_that_stops_reading() {
    if !require(
        "netns_raw_send_hold_timer_closes_a_peer_that_stops_reading",
        &[Need::Netns],
    ) {
        return;
    }
    let env = env("rawshold");
    // Small send buffers in the speaker's namespace so a few hundred KB fill the pipe.
    env.spk
        .exec(
            "sysctl",
            &["-q", "-w", "net.ipv4.tcp_wmem=4096 16384 65536"],
        )
        .unwrap();
    let mut cfg = peer_config("raw");
    cfg.send_hold_time = Some(Duration::from_secs(10));
    let (_l, speaker, s) = raw_session(&env, cfg);
    assert!(wait_established(&env, &speaker, Duration::from_secs(5)));
    // The peer stays alive (KEEPALIVE every 2 s) but never reads again.
    let mut ka = s.try_clone().unwrap();
    let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = alive.clone();
    let keepalives = thread::spawn(move || {
        for _ in 0..15 {
            if !flag.load(std::sync::atomic::Ordering::Relaxed)
                || ka.write_all(&keepalive()).is_err()
            {
                break;
            }
            thread::sleep(Duration::from_secs(2));
        }
    });
    // The first write that cannot complete happens after this instant.
    let started = Instant::now();
    env.rt.block_on(async {
        for i in 0..20_000u32 {
            let [_, _, c, d] = i.to_be_bytes();
            let p = format!("10.50.{c}.{d}/32").parse().unwrap();
            speaker.announce(bgp_speaker::Route::new(p)).await.unwrap();
        }
    });
    let expired = wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        status(&env, &speaker)
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("send hold timer expired")
    });
    alive.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = keepalives.join();
    let st = status(&env, &speaker);
    assert!(expired, "{st:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "expired after {:?}",
        started.elapsed()
    );
    assert_ne!(st.state, PeerState::Established);
    assert!(st.counters.notifications_sent >= 1);
    drop(s);
}
