//! Session transitions as input -> outputs tables, on a virtual clock (timers are
//! outputs; "time passing" is feeding `Expired`).

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use ipnet::IpNet;

use super::*;
use crate::config::{MaxPrefix, MaxPrefixAction, PeerConfig, Route};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn cfg() -> PeerConfig {
    let mut c = PeerConfig::new(
        "t",
        "10.200.0.2".parse().unwrap(),
        65005,
        65001,
        Ipv4Addr::new(10, 200, 0, 1),
    );
    c.ipv6_unicast = true;
    c.next_hop_v6 = Some("fd00:200::1".parse().unwrap());
    c.idle_hold_max = Duration::from_secs(8);
    c
}

fn msg(kind: u8, body: &[u8]) -> Bytes {
    let mut m = vec![0xFF; 16];
    m.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    Bytes::from(m)
}

fn keepalive() -> Bytes {
    msg(4, &[])
}

fn frr_open() -> Bytes {
    Bytes::from(hex(crate::wire::tests::FRR_OPEN))
}

/// (code, subcode, data) of every NOTIFICATION in the outputs.
fn notifications(out: &[Output]) -> Vec<(u8, u8, Vec<u8>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(b) if b.len() >= 21 && b[18] == 3 => {
                Some((b[19], b[20], b[21..].to_vec()))
            }
            _ => None,
        })
        .collect()
}

fn sends(out: &[Output]) -> Vec<u8> {
    out.iter()
        .filter_map(|o| {
            if let Output::Send(b) = o {
                Some(b[18])
            } else {
                None
            }
        })
        .collect()
}

fn armed(out: &[Output], t: Timer) -> Option<Duration> {
    out.iter().find_map(|o| match o {
        Output::Arm(x, d) if *x == t => Some(*d),
        _ => None,
    })
}

/// Drives a fresh session to OpenSent.
fn open_sent(c: PeerConfig) -> Session {
    let mut s = Session::new(c, 7);
    let out = s.handle(Input::Start);
    assert!(out.contains(&Output::Connect), "{out:?}");
    let out = s.handle(Input::Connected {
        local: "10.200.0.1".parse().unwrap(),
    });
    assert_eq!(sends(&out), vec![1], "OPEN sent on connect");
    assert_eq!(s.state(), PeerState::OpenSent);
    s
}

fn established(c: PeerConfig) -> Session {
    let mut s = open_sent(c);
    let out = s.handle(Input::Data(frr_open()));
    assert_eq!(sends(&out), vec![4], "KEEPALIVE answers the OPEN");
    assert_eq!(s.state(), PeerState::OpenConfirm);
    let out = s.handle(Input::Data(keepalive()));
    assert!(out.contains(&Output::Up), "{out:?}");
    assert_eq!(s.state(), PeerState::Established);
    s
}

fn v4() -> IpNet {
    "10.101.4.0/24".parse().unwrap()
}
fn v6() -> IpNet {
    "2001:db8:101::/48".parse().unwrap()
}

#[test]
fn start_connects_with_a_jittered_connect_retry() {
    let mut s = Session::new(cfg(), 1);
    let out = s.handle(Input::Start);
    assert_eq!(s.state(), PeerState::Connect);
    let d = armed(&out, Timer::ConnectRetry).expect("connect retry armed");
    assert!(
        d >= Duration::from_millis(22_500) && d <= Duration::from_secs(30),
        "{d:?}"
    );
}

#[test]
fn passive_peer_never_connects() {
    let mut c = cfg();
    c.passive = true;
    let mut s = Session::new(c, 1);
    assert!(!s.handle(Input::Start).contains(&Output::Connect));
    let out = s.handle(Input::Accepted {
        local: "10.200.0.1".parse().unwrap(),
    });
    assert_eq!(sends(&out), vec![1]);
}

#[test]
fn routes_announced_before_established_are_sent_on_up() {
    let mut s = open_sent(cfg());
    assert!(
        s.handle(Input::Announce(Route::new(v4()))).is_empty(),
        "nothing on the wire before Established"
    );
    s.handle(Input::Announce(Route::new(v6())));
    s.handle(Input::Data(frr_open()));
    let out = s.handle(Input::Data(keepalive()));
    // Two routes, then End-of-RIB for IPv4 and IPv6 (RFC 4724 §2).
    assert_eq!(sends(&out), vec![2, 2, 2, 2], "{out:?}");
    let Output::Send(eor) = out
        .iter()
        .filter(|o| matches!(o, Output::Send(_)))
        .nth(2)
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(eor.len(), 23, "the IPv4 End-of-RIB is an empty UPDATE");
    assert_eq!(s.prefixes_announced(), 2);
}

#[test]
fn withdraw_goes_out_in_the_same_step_without_a_timer() {
    let mut s = established(cfg());
    s.handle(Input::Announce(Route::new(v4())));
    let out = s.handle(Input::Withdraw(v4()));
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        matches!(&out[0], Output::Send(b) if b[18] == 2 && b[19..21] == [0, 4]),
        "withdrawn-routes length 4"
    );
    // A withdraw of something never announced sends nothing.
    assert!(s.handle(Input::Withdraw(v6())).is_empty());
}

#[test]
fn route_refresh_resends_that_family() {
    let mut s = established(cfg());
    s.handle(Input::Announce(Route::new(v4())));
    s.handle(Input::Announce(Route::new(v6())));
    let out = s.handle(Input::Data(msg(5, &[0, 2, 0, 1])));
    assert_eq!(sends(&out), vec![2], "only the IPv6 route: {out:?}");
}

#[test]
fn hold_timer_expiry_sends_4_0_and_restarts_after_backoff() {
    let mut s = established(cfg());
    let out = s.handle(Input::Expired(Timer::Hold));
    assert_eq!(notifications(&out), vec![(4, 0, vec![])]);
    assert!(out.contains(&Output::Close));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Down(r) if r.contains("hold timer expired")))
    );
    let d = armed(&out, Timer::IdleHold).expect("restart scheduled");
    assert!(
        d <= Duration::from_secs(1),
        "first backoff is about 1 s: {d:?}"
    );
    assert_eq!(s.state(), PeerState::Idle);
    let out = s.handle(Input::Expired(Timer::IdleHold));
    assert!(out.contains(&Output::Connect));
}

#[test]
fn backoff_doubles_and_is_capped() {
    let mut s = Session::new(cfg(), 3);
    s.handle(Input::Start);
    let mut last = Duration::ZERO;
    for _ in 0..8 {
        s.handle(Input::Connected {
            local: "10.200.0.1".parse().unwrap(),
        });
        let out = s.handle(Input::Data(msg(3, &[6, 5]))); // Cease/Connection Rejected
        last = armed(&out, Timer::IdleHold).expect("idle hold");
        s.handle(Input::Expired(Timer::IdleHold));
    }
    assert!(
        last <= Duration::from_secs(8) && last >= Duration::from_secs(6),
        "{last:?}"
    );
}

#[test]
fn peer_notification_is_the_reported_reason() {
    let mut s = established(cfg());
    let mut body = vec![6, 2, 5];
    body.extend_from_slice(b"maint");
    let out = s.handle(Input::Data(msg(3, &body)));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Down(r) if r.contains("6/2") && r.contains("maint"))),
        "{out:?}"
    );
    assert_eq!(s.counters().notifications_received, 1);
}

#[test]
fn stop_sends_cease_admin_shutdown_with_reason_and_stays_down() {
    let mut s = established(cfg());
    let out = s.handle(Input::Stop {
        reason: "drain".into(),
    });
    let mut data = vec![5];
    data.extend_from_slice(b"drain");
    assert_eq!(notifications(&out), vec![(6, 2, data)]);
    assert!(out.contains(&Output::Close));
    assert_eq!(armed(&out, Timer::IdleHold), None);
    assert!(s.finished());
}

#[test]
fn malformed_input_gets_the_exact_notification() {
    // (bytes from the peer once Established, expected code, subcode)
    let mut bad_marker = vec![0u8; 16];
    bad_marker.extend_from_slice(&[0, 19, 4]);
    let cases: Vec<(Bytes, u8, u8)> = vec![
        (Bytes::from(bad_marker), 1, 1),
        (
            Bytes::from(hex("ffffffffffffffffffffffffffffffff000504")),
            1,
            2,
        ),
        (msg(7, &[]), 1, 3),
        (msg(2, &[0, 200, 24, 10, 1, 1, 0, 0]), 3, 1),
        (msg(1, &hex("04fde900b40ac8000200")), 5, 0), // OPEN while Established: FSM error
    ];
    for (bytes, code, sub) in cases {
        let mut s = established(cfg());
        let out = s.handle(Input::Data(bytes.clone()));
        let n = notifications(&out);
        assert_eq!(n.len(), 1, "{bytes:?} -> {out:?}");
        assert_eq!((n[0].0, n[0].1), (code, sub), "{bytes:?}");
        assert!(out.contains(&Output::Close));
        assert!(armed(&out, Timer::IdleHold).is_some(), "reconnects later");
    }
}

#[test]
fn bad_opens_get_open_message_errors() {
    // version 3 -> 2/1; AS 65002 when 65001 is configured -> 2/2; hold 1 -> 2/6
    let cases = [
        ("03fde900b40ac8000200", 2, 1),
        ("04fdea00b40ac8000200", 2, 2),
        ("04fde900010ac8000200", 2, 6),
    ];
    for (body, code, sub) in cases {
        let mut s = open_sent(cfg());
        let out = s.handle(Input::Data(msg(1, &hex(body))));
        let n = notifications(&out);
        assert_eq!((n[0].0, n[0].1), (code, sub), "{body}");
        assert_eq!(s.state(), PeerState::Idle);
    }
}

#[test]
fn treat_as_withdraw_keeps_the_session() {
    let mut s = established(cfg());
    let attrs = hex("40010105400206020100 00fde94003040ac80002"
        .replace(' ', "")
        .as_str());
    let mut body = vec![0, 0, 0, u8::try_from(attrs.len()).unwrap()];
    body.extend_from_slice(&attrs);
    body.extend_from_slice(&[24, 10, 1, 1]);
    let out = s.handle(Input::Data(msg(2, &body)));
    assert!(notifications(&out).is_empty(), "{out:?}");
    assert_eq!(s.state(), PeerState::Established);
    assert_eq!(s.counters().treat_as_withdraw, 1);
}

/// An Established session with max-prefix 1 (teardown, 60 s hold-off) that has just
/// received two prefixes: the session and what it did.
fn over_max_prefix() -> (Session, Vec<Output>) {
    let mut c = cfg();
    c.max_prefix = Some(MaxPrefix {
        limit: 1,
        action: MaxPrefixAction::Teardown {
            hold_off: Duration::from_secs(60),
        },
    });
    let mut s = established(c);
    let attrs = hex("400101004002060201 0000fde94003040ac80002"
        .replace(' ', "")
        .as_str());
    let mut body = vec![0, 0, 0, u8::try_from(attrs.len()).unwrap()];
    body.extend_from_slice(&attrs);
    body.extend_from_slice(&[24, 10, 1, 1, 24, 10, 1, 2]);
    let out = s.handle(Input::Data(msg(2, &body)));
    (s, out)
}

#[test]
fn max_prefix_teardown_sends_cease_1_and_holds_off() {
    let (_, out) = over_max_prefix();
    assert_eq!(notifications(&out), vec![(6, 1, vec![0, 1, 1, 0, 0, 0, 1])]);
    assert_eq!(armed(&out, Timer::IdleHold), Some(Duration::from_secs(60)));
}

#[test]
fn send_hold_timer_runs_only_while_stalled_and_expiry_sends_8_0() {
    let mut s = established(cfg());
    let out = s.handle(Input::WriteStalled);
    assert_eq!(armed(&out, Timer::SendHold), Some(Duration::from_secs(480)));
    assert_eq!(
        s.handle(Input::WriteDrained),
        vec![Output::Cancel(Timer::SendHold)]
    );
    s.handle(Input::WriteStalled);
    let out = s.handle(Input::Expired(Timer::SendHold));
    assert_eq!(notifications(&out), vec![(8, 0, vec![])]);
    assert!(out.contains(&Output::Close));
    assert_eq!(s.state(), PeerState::Idle);
}

#[test]
fn connection_loss_in_established_reports_down_and_reconnects() {
    let mut s = established(cfg());
    let out = s.handle(Input::Closed);
    assert!(out.iter().any(|o| matches!(o, Output::Down(_))));
    assert!(armed(&out, Timer::IdleHold).is_some());
    assert_eq!(s.prefixes_received(), 0);
}

#[test]
fn bytes_split_anywhere_decode_the_same() {
    let mut s = open_sent(cfg());
    let open = frr_open();
    for chunk in open.chunks(7) {
        s.handle(Input::Data(Bytes::copy_from_slice(chunk)));
    }
    assert_eq!(s.state(), PeerState::OpenConfirm);
}

#[test]
fn collision_refuses_a_second_connection_once_established() {
    let s = established(cfg());
    assert_eq!(s.collision(), Collision::Refuse);
    assert!(!s.collision_winner_is_new("255.255.255.255".parse().unwrap()));
}

#[test]
fn collision_higher_identifier_keeps_its_own_connection() {
    // Our id 10.200.0.1, our connection (outbound) is in OpenSent.
    let s = open_sent(cfg());
    assert_eq!(s.collision(), Collision::Hold);
    assert!(
        s.collision_winner_is_new("10.200.0.2".parse().unwrap()),
        "peer higher: its connection wins"
    );
    assert!(
        !s.collision_winner_is_new("10.0.0.1".parse().unwrap()),
        "we are higher: ours wins"
    );
}

#[test]
fn adopting_the_peers_connection_continues_from_its_open() {
    let mut s = open_sent(cfg());
    let mut data = frr_open().to_vec();
    data.extend_from_slice(&keepalive());
    let out = s.handle(Input::Adopt {
        local: "10.200.0.1".parse().unwrap(),
        data: Bytes::from(data),
    });
    // Our OPEN is not sent again; the KEEPALIVE answers the peer's OPEN; then Up
    // and the two End-of-RIB markers.
    assert_eq!(sends(&out), vec![4, 2, 2], "{out:?}");
    assert!(out.contains(&Output::Up));
    assert_eq!(s.state(), PeerState::Established);
}

#[test]
fn configured_keepalive_shortens_the_negotiated_interval() {
    let mut c = cfg();
    c.keepalive = Some(5);
    let mut s = open_sent(c);
    let out = s.handle(Input::Data(frr_open()));
    // hold min(90, 180) = 90 -> 30 s negotiated, 5 s configured
    assert_eq!(armed(&out, Timer::Keepalive), Some(Duration::from_secs(5)));
    let mut s = open_sent(cfg());
    let out = s.handle(Input::Data(frr_open()));
    assert_eq!(armed(&out, Timer::Keepalive), Some(Duration::from_secs(30)));
}

#[test]
fn reset_sends_cease_4_and_comes_back_quickly() {
    let mut s = established(cfg());
    let out = s.handle(Input::Reset {
        reason: "clear".into(),
    });
    let mut data = vec![5];
    data.extend_from_slice(b"clear");
    assert_eq!(notifications(&out), vec![(6, 4, data)]);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Down(r) if r.contains("administrative reset")))
    );
    assert_eq!(
        armed(&out, Timer::IdleHold),
        Some(Duration::from_millis(100))
    );
    assert!(
        s.handle(Input::Expired(Timer::IdleHold))
            .contains(&Output::Connect)
    );
}

#[test]
fn disable_then_enable() {
    let mut s = established(cfg());
    let out = s.handle(Input::Stop {
        reason: "down".into(),
    });
    assert_eq!(notifications(&out).len(), 1);
    assert!(s.is_stopped());
    assert!(
        s.handle(Input::Expired(Timer::IdleHold)).is_empty(),
        "no reconnect while disabled"
    );
    let out = s.handle(Input::Start);
    assert!(out.contains(&Output::Connect));
    assert!(!s.is_stopped());
}

#[test]
fn leaving_connect_is_not_a_session_down() {
    let mut s = Session::new(cfg(), 1);
    s.handle(Input::Start);
    let out = s.handle(Input::Reset { reason: "x".into() });
    assert!(!out.iter().any(|o| matches!(o, Output::Down(_))), "{out:?}");
}

#[test]
fn connect_now_ends_the_backoff_and_starts_it_over() {
    let mut s = Session::new(cfg(), 3);
    s.handle(Input::Start);
    // Three failures: the backoff stands at about 4 s.
    for _ in 0..3 {
        s.handle(Input::Connected {
            local: "10.200.0.1".parse().unwrap(),
        });
        let out = s.handle(Input::Data(msg(3, &[6, 5])));
        assert!(armed(&out, Timer::IdleHold).is_some(), "{out:?}");
        s.handle(Input::Expired(Timer::IdleHold));
    }
    s.handle(Input::Connected {
        local: "10.200.0.1".parse().unwrap(),
    });
    let out = s.handle(Input::Data(msg(3, &[6, 5])));
    assert!(armed(&out, Timer::IdleHold) >= Some(Duration::from_secs(6)));
    assert_eq!(s.state(), PeerState::Idle);
    let out = s.handle(Input::ConnectNow);
    assert!(out.contains(&Output::Cancel(Timer::IdleHold)), "{out:?}");
    assert!(out.contains(&Output::Connect), "{out:?}");
    assert_eq!(s.state(), PeerState::Connect);
    // The next failure waits the first backoff again.
    s.handle(Input::Connected {
        local: "10.200.0.1".parse().unwrap(),
    });
    let out = s.handle(Input::Data(msg(3, &[6, 5])));
    assert!(armed(&out, Timer::IdleHold) <= Some(Duration::from_secs(1)));
}

#[test]
fn connect_now_retries_a_pending_or_failed_connect_at_once() {
    for fail in [false, true] {
        let mut s = Session::new(cfg(), 1);
        s.handle(Input::Start);
        if fail {
            s.handle(Input::ConnectFailed);
        }
        let before = s.state();
        let out = s.handle(Input::ConnectNow);
        assert!(out.contains(&Output::Connect), "{before:?}: {out:?}");
        assert!(armed(&out, Timer::ConnectRetry).is_some(), "{out:?}");
        assert_eq!(s.state(), PeerState::Connect, "from {before:?}");
    }
}

#[test]
fn connects_after_connect_now_hang_half_a_second_three_times() {
    let mut s = Session::new(cfg(), 1);
    s.handle(Input::Start);
    s.handle(Input::ConnectFailed);
    let out = s.handle(Input::ConnectNow);
    assert_eq!(
        armed(&out, Timer::ConnectRetry),
        Some(Duration::from_millis(500))
    );
    // A SYN or SYN-ACK lost: the pending connect is dropped and tried again, twice
    // more at half a second, then at ConnectRetry.
    for fast in [true, true, false] {
        let out = s.handle(Input::Expired(Timer::ConnectRetry));
        assert!(out.contains(&Output::Connect), "{out:?}");
        let d = armed(&out, Timer::ConnectRetry).unwrap();
        assert_eq!(d == Duration::from_millis(500), fast, "{d:?}");
        assert_eq!(s.state(), PeerState::Connect);
    }
    // A connection ends the fast retries.
    let mut s = Session::new(cfg(), 1);
    s.handle(Input::Start);
    s.handle(Input::ConnectNow);
    s.handle(Input::Connected {
        local: "10.200.0.1".parse().unwrap(),
    });
    s.handle(Input::Data(msg(3, &[6, 5])));
    let out = s.handle(Input::Expired(Timer::IdleHold));
    assert!(out.contains(&Output::Connect), "{out:?}");
    let d = armed(&out, Timer::ConnectRetry).unwrap();
    assert!(d > Duration::from_millis(500), "{d:?}");
}

#[test]
fn connect_now_leaves_a_connection_a_stop_and_a_hold_off_alone() {
    let mut s = open_sent(cfg());
    assert!(s.handle(Input::ConnectNow).is_empty());
    let mut s = established(cfg());
    assert!(s.handle(Input::ConnectNow).is_empty());
    s.handle(Input::Stop {
        reason: "down".into(),
    });
    assert!(s.handle(Input::ConnectNow).is_empty(), "disabled");

    let (mut s, out) = over_max_prefix();
    assert_eq!(armed(&out, Timer::IdleHold), Some(Duration::from_secs(60)));
    assert!(
        s.handle(Input::ConnectNow).is_empty(),
        "max-prefix hold-off"
    );
    // Once the hold-off is over, a failure's backoff may be cut short again.
    let out = s.handle(Input::Expired(Timer::IdleHold));
    assert!(out.contains(&Output::Connect), "{out:?}");
    s.handle(Input::ConnectFailed);
    assert!(s.handle(Input::ConnectNow).contains(&Output::Connect));
}

#[test]
fn failed_connects_retry_no_further_apart_than_the_cap() {
    // connect_retry 30 s, idle_hold_max 8 s: the cap is 30 s, never the FSM's 300 s.
    let mut s = Session::new(cfg(), 5);
    s.handle(Input::Start);
    let mut longest = Duration::ZERO;
    for _ in 0..12 {
        let out = s.handle(Input::ConnectFailed);
        if let Some(d) = armed(&out, Timer::ConnectRetry) {
            longest = longest.max(d);
        }
        s.handle(Input::Expired(Timer::ConnectRetry));
    }
    assert!(
        longest >= Duration::from_millis(22_500) && longest <= Duration::from_secs(30),
        "{longest:?}"
    );
    // A short base and a longer backoff cap: the backoff cap.
    let mut c = cfg();
    c.connect_retry = 1;
    c.idle_hold_max = Duration::from_secs(4);
    let mut s = Session::new(c, 5);
    s.handle(Input::Start);
    for _ in 0..12 {
        let out = s.handle(Input::ConnectFailed);
        if let Some(d) = armed(&out, Timer::ConnectRetry) {
            assert!(d <= Duration::from_secs(4), "{d:?}");
        }
        s.handle(Input::Expired(Timer::ConnectRetry));
    }
}
