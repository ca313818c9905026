//! Tests of the schedule on a virtual clock.

use std::net::SocketAddr;

use super::*;
use crate::ids::ServerId;

const MS: Duration = Duration::from_millis(1);

fn tcp(name: &str, addr: &str) -> CheckConfig {
    let addr: SocketAddr = addr.parse().unwrap();
    CheckConfig {
        interval: 200 * MS,
        timeout: 200 * MS,
        ..CheckConfig::tcp(ServerId::new(name), addr)
    }
}

/// What the simulated network does: echo replies (by address) and full checks.
struct World {
    echo_ok: bool,
    full_ok: bool,
}

/// Runs `s` from `from` to `to` in 1 ms steps; full checks finish at once and
/// echoes are answered 1 ms later when the world says so. Returns every action
/// with the time it came out.
fn run(s: &mut Schedule, w: &World, from: Duration, to: Duration) -> Vec<(Duration, Action)> {
    let mut log = Vec::new();
    let mut answers: Vec<(Duration, IpAddr, u16)> = Vec::new();
    let mut t = from;
    while t <= to {
        let mut acts = Vec::new();
        answers.retain(|&(at, addr, seq)| {
            if at <= t {
                acts.extend(s.on_echo_reply(t, addr, seq, Ok(())));
                false
            } else {
                true
            }
        });
        acts.extend(s.on_timer(t));
        while let Some(a) = acts.pop() {
            match &a {
                Action::Full { server } => {
                    let o = if w.full_ok {
                        ProbeOutcome::Success
                    } else {
                        ProbeOutcome::Failure(ProbeError::Timeout {
                            target: "x".into(),
                            timeout_ms: 200,
                        })
                    };
                    acts.extend(s.on_full_done(t, *server, o));
                }
                Action::Echo { addr, seq } if w.echo_ok => answers.push((t + MS, *addr, *seq)),
                _ => {}
            }
            log.push((t, a));
        }
        t += MS;
    }
    log
}

fn fulls(log: &[(Duration, Action)], i: usize) -> Vec<Duration> {
    log.iter()
        .filter(|(_, a)| *a == Action::Full { server: i })
        .map(|(t, _)| *t)
        .collect()
}

fn reports(log: &[(Duration, Action)], src: ProbeSource) -> Vec<(Duration, usize, bool)> {
    log.iter()
        .filter_map(|(t, a)| match a {
            Action::Report {
                server,
                source,
                outcome,
            } if *source == src => Some((*t, *server, *outcome == ProbeOutcome::Success)),
            _ => None,
        })
        .collect()
}

fn echoes(log: &[(Duration, Action)]) -> usize {
    log.iter()
        .filter(|(_, a)| matches!(a, Action::Echo { .. }))
        .count()
}

#[test]
fn first_checks_are_spread_over_the_interval() {
    let cfgs = (0..4)
        .map(|i| tcp(&format!("rs{i}"), &format!("192.0.2.{}:80", i + 1)))
        .collect();
    let mut s = Schedule::new(cfgs, Duration::ZERO, 0);
    let w = World {
        echo_ok: true,
        full_ok: true,
    };
    let log = run(&mut s, &w, Duration::ZERO, 199 * MS);
    let firsts: Vec<Duration> = (0..4).map(|i| fulls(&log, i)[0]).collect();
    assert_eq!(firsts, vec![Duration::ZERO, 50 * MS, 100 * MS, 150 * MS]);
    assert_eq!(s.echo_targets(), 4);
}

#[test]
fn an_answering_host_relaxes_the_full_check_and_a_failure_tightens_it() {
    let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
    let mut w = World {
        echo_ok: true,
        full_ok: true,
    };
    let log = run(&mut s, &w, Duration::ZERO, 5000 * MS);
    // Full checks at 0 and 200 (rise 2) and the echo round at 200 answered: armed
    // at 201 ms; the full check at 400 was due already, then one every 5 s.
    assert!(s.armed(0));
    assert_eq!(fulls(&log, 0), vec![Duration::ZERO, 200 * MS, 400 * MS]);
    // An echo round every 400 ms from 200, one request each (answered), none
    // reported.
    assert_eq!(echoes(&log), 13);
    assert!(reports(&log, ProbeSource::Echo).is_empty());
    assert_eq!(reports(&log, ProbeSource::Periodic).len(), 3);
    // The service stops accepting (host alive): the full check at 5400 fails, the
    // following ones come every interval again.
    w.full_ok = false;
    let log = run(&mut s, &w, 5001 * MS, 6000 * MS);
    assert!(!s.armed(0));
    assert_eq!(
        fulls(&log, 0),
        vec![5400 * MS, 5600 * MS, 5800 * MS, 6000 * MS]
    );
}

#[test]
fn a_silent_host_is_reported_by_one_failed_round_and_checked_by_full_checks_again() {
    let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
    let mut w = World {
        echo_ok: true,
        full_ok: true,
    };
    // (Past 1001: `run` drops the replies still in flight when it returns.)
    run(&mut s, &w, Duration::ZERO, 1100 * MS);
    assert!(s.armed(0));
    w.echo_ok = false;
    w.full_ok = false;
    let log = run(&mut s, &w, 1101 * MS, 2000 * MS);
    // The round of 1400 sends at 1400, 1450, 1500, 1550, 1600, 1700, fails at 1800:
    // seen 800 ms after the host went silent (the worst case, 2 x 400 ms).
    assert_eq!(
        reports(&log, ProbeSource::Echo),
        vec![(1800 * MS, 0, false)]
    );
    assert!(!s.armed(0));
    // A full check an interval later instead of at 5400.
    assert_eq!(fulls(&log, 0), vec![2000 * MS]);
    // Six requests for the failed round, five so far for the next.
    assert_eq!(echoes(&log), 11);
}

#[test]
fn a_silent_host_whose_full_check_fails_first_is_still_taken_down_by_its_round() {
    let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
    let mut w = World {
        echo_ok: true,
        full_ok: true,
    };
    run(&mut s, &w, Duration::ZERO, 5300 * MS);
    assert!(s.armed(0));
    // Silent from 5300: the full check of 5400 fails at once (a timeout, here),
    // before the round of 5400 concludes.
    w.echo_ok = false;
    w.full_ok = false;
    let log = run(&mut s, &w, 5301 * MS, 6000 * MS);
    let periodic = reports(&log, ProbeSource::Periodic);
    assert_eq!(periodic.first(), Some(&(5400 * MS, 0, false)));
    assert_eq!(
        reports(&log, ProbeSource::Echo),
        vec![(5800 * MS, 0, false)]
    );
    // Reported once: the next failed round is not (the server is down already).
    let log = run(&mut s, &w, 6001 * MS, 7000 * MS);
    assert!(reports(&log, ProbeSource::Echo).is_empty());
}

#[test]
fn a_host_that_never_answers_echo_keeps_full_checks_every_interval() {
    let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
    let w = World {
        echo_ok: false,
        full_ok: true,
    };
    let log = run(&mut s, &w, Duration::ZERO, 2000 * MS);
    assert!(!s.armed(0));
    assert_eq!(fulls(&log, 0).len(), 11);
    assert!(reports(&log, ProbeSource::Echo).is_empty());
}

#[test]
fn a_lost_request_is_retried_within_the_round() {
    let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
    let w = World {
        echo_ok: true,
        full_ok: true,
    };
    run(&mut s, &w, Duration::ZERO, 1100 * MS);
    // The round of 1400: its first request is lost, the retry at 1450 answered.
    let mut acts = s.on_timer(1400 * MS);
    assert!(matches!(acts.pop(), Some(Action::Echo { .. })), "{acts:?}");
    let acts = s.on_timer(1450 * MS);
    let Some(Action::Echo { addr, seq }) = acts.last().cloned() else {
        panic!("{acts:?}");
    };
    assert!(s.on_echo_reply(1451 * MS, addr, seq, Ok(())).is_empty());
    assert!(s.armed(0));
    // Nothing more in that round, nothing reported at its deadline.
    assert!(s.on_timer(1799 * MS).is_empty());
    assert!(
        s.on_timer(1800 * MS)
            .iter()
            .all(|a| matches!(a, Action::Echo { .. }))
    );
}

#[test]
fn servers_on_one_address_share_an_echo_and_icmp_checks_report_each_echo() {
    let mut icmp = tcp("ping", "192.0.2.1:0");
    icmp.kind = CheckKind::Icmp;
    icmp.fast_detect = false;
    let cfgs = vec![tcp("a", "192.0.2.1:80"), tcp("b", "192.0.2.1:443"), icmp];
    let mut s = Schedule::new(cfgs, Duration::ZERO, 0);
    // One liveness round for a and b, the icmp check's own echo.
    assert_eq!(s.echo_targets(), 2);
    let w = World {
        echo_ok: true,
        full_ok: true,
    };
    let log = run(&mut s, &w, Duration::ZERO, 1001 * MS);
    assert!(s.armed(0) && s.armed(1));
    assert!(fulls(&log, 2).is_empty());
    let r = reports(&log, ProbeSource::Periodic);
    assert_eq!(r.iter().filter(|x| x.1 == 2).count(), 5);
    assert_eq!(echoes(&log), 8);
}

#[test]
fn an_answered_round_leaves_no_wake_behind() {
    let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
    let w = World {
        echo_ok: true,
        full_ok: true,
    };
    run(&mut s, &w, Duration::ZERO, 1100 * MS);
    let acts = s.on_timer(1400 * MS);
    let Some(Action::Echo { addr, seq }) = acts.last().cloned() else {
        panic!("{acts:?}");
    };
    assert_eq!(s.next_wake(), Some(1450 * MS), "the first retry");
    assert!(s.on_echo_reply(1401 * MS, addr, seq, Ok(())).is_empty());
    // Neither the retry nor the deadline: the next round.
    assert_eq!(s.next_wake(), Some(1800 * MS));
}

#[test]
fn a_late_checker_sends_the_whole_ladder_before_a_round_fails() {
    let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
    let w = World {
        echo_ok: true,
        full_ok: true,
    };
    run(&mut s, &w, Duration::ZERO, 1100 * MS);
    assert!(s.armed(0));
    // The round of 1400 sends its first request; then this task gets no CPU
    // until 1900, past the round's deadline (1800) and its retries.
    assert!(matches!(
        s.on_timer(1400 * MS).last(),
        Some(Action::Echo { .. })
    ));
    let acts = s.on_timer(1900 * MS);
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Report { .. })),
        "{acts:?}"
    );
    let Some(Action::Echo { addr, seq }) = acts
        .iter()
        .find(|a| matches!(a, Action::Echo { .. }))
        .cloned()
    else {
        panic!("no request sent late: {acts:?}");
    };
    // The late request is answered: the server stays up and armed.
    assert!(s.on_echo_reply(1901 * MS, addr, seq, Ok(())).is_empty());
    assert!(s.armed(0));
    // A silent host with a late checker: still six requests before it fails.
    let mut sent = 0;
    let mut failed = None;
    let mut t = 2000;
    while failed.is_none() && t < 6000 {
        for a in s.on_timer(t * MS) {
            match a {
                Action::Echo { .. } => sent += 1,
                Action::Report {
                    source: ProbeSource::Echo,
                    outcome,
                    ..
                } => failed = Some(outcome),
                _ => {}
            }
        }
        t += 500; // every wake half a second late
    }
    assert!(failed.is_some(), "never failed");
    assert!(sent >= 6, "failed after {sent} requests");
}

#[test]
fn stray_and_forged_replies_change_nothing() {
    let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 7);
    let acts = s.on_timer(200 * MS);
    let Some(Action::Echo { seq, .. }) = acts.last().cloned() else {
        panic!("{acts:?}");
    };
    let t = 201 * MS;
    // Unknown sequence number; the right one from another address.
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "192.0.2.9".parse().unwrap();
    assert!(
        s.on_echo_reply(t, a, seq.wrapping_add(9), Ok(()))
            .is_empty()
    );
    assert!(s.on_echo_reply(t, b, seq, Ok(())).is_empty());
    assert_eq!(s.outstanding.len(), 1);
    // Still pending: the real reply is taken.
    assert!(s.on_echo_reply(t, a, seq, Ok(())).is_empty());
    assert!(s.outstanding.is_empty());
}

#[test]
fn timeout_equal_to_interval_leaves_nothing_outstanding() {
    let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
    let w = World {
        echo_ok: false,
        full_ok: true,
    };
    run(&mut s, &w, Duration::ZERO, 10_000 * MS);
    // At most the five requests of the round in progress.
    assert!(s.outstanding.len() <= 5, "{}", s.outstanding.len());
}
