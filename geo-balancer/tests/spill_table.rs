//! Table tests walking the seed's thresholds exactly (1.1 to start, 0.7 on the remote,
//! 1.0 to stop), values just either side of each, stale/unknown peers, two peers, and
//! mutual overload. Virtual time; no I/O.

use std::time::Duration;

use geo_balancer::spill::SpillEvent;
use geo_balancer::{LocalView, PeerFacts, PeerView, Rule, SiteId, SpillConfig, SpillEngine, Time};

const EPS: f64 = 1e-9;
const T0: Time = Time(50_280_000); // 13:58:00 UTC

fn local(load: f64) -> LocalView {
    LocalView {
        load,
        capacity: 1000,
    }
}

fn peer(name: &str, load: f64) -> PeerView {
    PeerView {
        site: SiteId::new(name),
        facts: Some(PeerFacts {
            load,
            capacity: 1000,
            spilling_to_us: false,
            age: Duration::from_secs(41),
            seq: 7,
            other_spillers: 0,
        }),
    }
}

fn unknown(name: &str) -> PeerView {
    PeerView {
        site: SiteId::new(name),
        facts: None,
    }
}

fn spilling_back(name: &str, load: f64) -> PeerView {
    let mut p = peer(name, load);
    if let Some(f) = p.facts.as_mut() {
        f.spilling_to_us = true;
    }
    p
}

fn engine() -> SpillEngine {
    SpillEngine::new(SpillConfig::default())
}

fn at(secs: u64) -> Time {
    T0.plus(Duration::from_secs(secs))
}

/// One decision from a fresh engine: does it spill to site-b?
#[test]
fn start_rule_table() {
    struct Case {
        name: &'static str,
        local: f64,
        peer: PeerView,
        spills: bool,
        rule: fn(&Rule) -> bool,
    }
    let cases = [
        Case {
            name: "local exactly 1.1 does not start",
            local: 1.1,
            peer: peer("site-b", 0.5),
            spills: false,
            rule: |r| matches!(r, Rule::LocalNotAboveStart { .. }),
        },
        Case {
            name: "local just below 1.1",
            local: 1.1 - EPS,
            peer: peer("site-b", 0.5),
            spills: false,
            rule: |r| matches!(r, Rule::LocalNotAboveStart { .. }),
        },
        Case {
            name: "local just above 1.1 starts",
            local: 1.1 + EPS,
            peer: peer("site-b", 0.5),
            spills: true,
            rule: |r| matches!(r, Rule::Start { .. }),
        },
        Case {
            name: "remote exactly 0.7 is not a target",
            local: 1.2,
            peer: peer("site-b", 0.7),
            spills: false,
            rule: |r| matches!(r, Rule::PeerNotBelowStartRemote { .. }),
        },
        Case {
            name: "remote just below 0.7 is a target",
            local: 1.2,
            peer: peer("site-b", 0.7 - EPS),
            spills: true,
            rule: |r| matches!(r, Rule::Start { .. }),
        },
        Case {
            name: "remote just above 0.7 is not a target",
            local: 1.2,
            peer: peer("site-b", 0.7 + EPS),
            spills: false,
            rule: |r| matches!(r, Rule::PeerNotBelowStartRemote { .. }),
        },
        Case {
            name: "unknown (stale) peer is never a target",
            local: 5.0,
            peer: unknown("site-b"),
            spills: false,
            rule: |r| matches!(r, Rule::PeerUnknown),
        },
        Case {
            name: "peer spilling to us is never a target",
            local: 5.0,
            peer: spilling_back("site-b", 0.1),
            spills: false,
            rule: |r| matches!(r, Rule::PeerSpillsToUs),
        },
        Case {
            name: "peer that cannot serve (infinite) is not a target",
            local: 1.5,
            peer: peer("site-b", f64::INFINITY),
            spills: false,
            rule: |r| matches!(r, Rule::PeerNotBelowStartRemote { .. }),
        },
        Case {
            name: "local with no capacity (infinite) spills",
            local: f64::INFINITY,
            peer: peer("site-b", 0.2),
            spills: true,
            rule: |r| matches!(r, Rule::Start { .. }),
        },
        Case {
            name: "idle local and idle peer: nothing",
            local: 0.0,
            peer: peer("site-b", 0.0),
            spills: false,
            rule: |r| matches!(r, Rule::LocalAtOrBelowStop { .. }),
        },
    ];
    for c in cases {
        let d = engine().decide(T0, local(c.local), std::slice::from_ref(&c.peer));
        assert_eq!(d.spilling(), c.spills, "{}: {d}", c.name);
        assert_eq!(d.verdicts.len(), 1, "{}", c.name);
        assert!(
            (c.rule)(&d.verdicts[0].rule),
            "{}: got {:?}",
            c.name,
            d.verdicts[0].rule
        );
        if c.spills {
            assert_eq!(d.spilling_to(), vec![SiteId::new("site-b")], "{}", c.name);
            assert!(
                matches!(&d.events[..], [SpillEvent::Started { .. }]),
                "{}",
                c.name
            );
        } else {
            assert!(d.events.is_empty(), "{}", c.name);
            assert_eq!(d.total_share, 0.0, "{}", c.name);
        }
    }
}

/// Start at 1.2, then walk local down: 1.05 keeps going, exactly 1.0 stops, and just
/// above 1.0 (inside the hysteresis gap) does not restart.
#[test]
fn exit_at_local_one() {
    let mut e = engine();
    let b = [peer("site-b", 0.5)];
    assert!(e.decide(at(0), local(1.2), &b).spilling());
    let d = e.decide(at(60), local(1.05), &b);
    assert!(d.spilling(), "1.05 is inside the gap: keep spilling");
    assert!(matches!(d.targets[0].now, Rule::Continue { .. }));
    let d = e.decide(at(120), local(1.0 + EPS), &b);
    assert!(d.spilling(), "just above 1.0 keeps spilling");
    let d = e.decide(at(180), local(1.0), &b);
    assert!(!d.spilling(), "exactly 1.0 stops: {d}");
    assert!(matches!(
        &d.events[..],
        [SpillEvent::Stopped {
            rule: Rule::LocalAtOrBelowStop { .. },
            ..
        }]
    ));
    assert_eq!(e.total_share(), 0.0);
    let d = e.decide(at(240), local(1.0 + EPS), &b);
    assert!(!d.spilling(), "just above 1.0 does not restart");
    let d = e.decide(at(300), local(1.1), &b);
    assert!(!d.spilling(), "exactly 1.1 does not restart");
    let d = e.decide(at(360), local(1.1 + EPS), &b);
    assert!(d.spilling(), "just above 1.1 restarts");
}

/// While spilling, the peer may sit at exactly 0.7 (keep), and just above it stops.
#[test]
fn remote_bound_stops_above_point_seven() {
    let mut e = engine();
    assert!(
        e.decide(at(0), local(1.3), &[peer("site-b", 0.4)])
            .spilling()
    );
    let d = e.decide(at(60), local(1.3), &[peer("site-b", 0.7)]);
    assert!(d.spilling(), "0.7 is not above 0.7: {d}");
    let d = e.decide(at(120), local(1.3), &[peer("site-b", 0.7 + EPS)]);
    assert!(!d.spilling());
    assert!(matches!(
        &d.events[..],
        [SpillEvent::Stopped {
            rule: Rule::PeerAboveStopRemote { .. },
            ..
        }]
    ));
    // Back at 0.7 exactly: not below, so no restart even with local above 1.1.
    assert!(
        !e.decide(at(180), local(1.3), &[peer("site-b", 0.7)])
            .spilling()
    );
    assert!(
        e.decide(at(240), local(1.3), &[peer("site-b", 0.7 - EPS)])
            .spilling()
    );
}

#[test]
fn peer_turning_unknown_or_vanishing_or_spilling_back_stops_at_once() {
    for (name, next) in [
        ("unknown", vec![unknown("site-b")]),
        ("missing from the input", vec![]),
        ("spills to us", vec![spilling_back("site-b", 0.4)]),
    ] {
        let mut e = engine();
        assert!(
            e.decide(at(0), local(1.3), &[peer("site-b", 0.4)])
                .spilling()
        );
        let d = e.decide(at(1), local(1.3), &next);
        assert!(!d.spilling(), "{name}");
        assert!(
            matches!(&d.events[..], [SpillEvent::Stopped { .. }]),
            "{name}: {:?}",
            d.events
        );
        assert!(e.spilling_to().is_empty(), "{name}");
    }
}

/// The least loaded peer is preferred; a second one joins only when needed.
#[test]
fn two_peers_prefer_least_loaded() {
    let peers = [peer("site-b", 0.6), peer("site-c", 0.3)];
    let d = engine().decide(at(0), local(1.2), &peers);
    assert_eq!(d.spilling_to(), vec![SiteId::new("site-c")], "{d}");
    let b = d
        .verdicts
        .iter()
        .find(|v| v.site.as_str() == "site-b")
        .map(|v| v.rule.clone());
    assert!(matches!(b, Some(Rule::NotNeeded { .. })), "{b:?}");
}

/// When one peer has too little room, several share it, by inverse load.
#[test]
fn two_peers_spread_by_inverse_load_when_both_needed() {
    let cfg = SpillConfig {
        max_step: 1.0,
        ..SpillConfig::default()
    };
    let mut e = SpillEngine::new(cfg);
    // target = 1 - 0.95/2 = 0.525; rooms (0.7-0.2)/2 = 0.25 and (0.7-0.4)/2 = 0.15.
    let peers = [peer("site-b", 0.4), peer("site-c", 0.2)];
    let d = e.decide(at(0), local(2.0), &peers);
    assert_eq!(d.targets.len(), 2, "{d}");
    let share = |s: &str| {
        d.targets
            .iter()
            .find(|t| t.site.as_str() == s)
            .map_or(0.0, |t| t.share)
    };
    assert!(
        (d.total_share - 0.4).abs() < 1e-9,
        "capped by the rooms: {}",
        d.total_share
    );
    assert!(share("site-c") > share("site-b"), "less loaded gets more");
    assert!(share("site-c") <= 0.25 + 1e-9 && share("site-b") <= 0.15 + 1e-9);

    // Plenty of room at both: pure inverse-load split 2:1 (0.2 vs 0.4).
    let big = |n: &str, l: f64| {
        let mut p = peer(n, l);
        if let Some(f) = p.facts.as_mut() {
            f.capacity = 100_000;
        }
        p
    };
    let mut e = SpillEngine::new(SpillConfig {
        max_step: 1.0,
        ..SpillConfig::default()
    });
    // Only c is needed when it alone has room; force both by making b already active.
    e.decide(at(0), local(2.0), &[big("site-b", 0.4)]);
    let d = e.decide(
        at(60),
        local(2.0),
        &[big("site-b", 0.4), big("site-c", 0.2)],
    );
    assert_eq!(d.targets.len(), 1, "b alone has room, c not needed: {d}");
    assert!((d.total_share - 0.5).abs() < 1e-9);
}

/// The share moves by at most max_step per step_period, pro rata for shorter gaps.
#[test]
fn share_ramps_by_a_bounded_step() {
    let mut e = engine();
    let b = [peer("site-b", 0.1)];
    // target = 1 - target_local/1.5 = 1 - 0.95/1.5 = 0.3666...
    let shares: Vec<f64> = [0, 60, 120, 180, 240]
        .iter()
        .map(|&t| e.decide(at(t), local(1.5), &b).total_share)
        .collect();
    let t = 1.0 - 0.95 / 1.5;
    let want = [0.1, 0.2, 0.3, t, t];
    for (got, want) in shares.iter().zip(want) {
        assert!((got - want).abs() < 1e-9, "{shares:?}");
    }
    // Demand eases to 1.05 (target 0.095): down by at most 0.05 in 30 s.
    let d = e.decide(at(270), local(1.05), &b);
    assert!(
        (d.total_share - (t - 0.05)).abs() < 1e-9,
        "{}",
        d.total_share
    );
}

/// Both sites overloaded: each reports a served load of about 1.0, so neither is below
/// 0.7 and neither spills.
#[test]
fn mutual_overload_spills_nowhere() {
    let mut a = engine();
    let mut b = engine();
    let da = a.decide(at(0), local(1.4), &[peer("site-b", 1.3)]);
    let db = b.decide(at(0), local(1.3), &[peer("site-a", 1.4)]);
    assert!(!da.spilling() && !db.spilling());
}

#[test]
fn never_more_than_max_share() {
    let mut e = SpillEngine::new(SpillConfig {
        max_step: 1.0,
        ..SpillConfig::default()
    });
    let mut b = peer("site-b", 0.0);
    if let Some(f) = b.facts.as_mut() {
        f.capacity = 1_000_000;
    }
    let d = e.decide(at(0), local(10.0), &[b]);
    assert!((d.total_share - 0.5).abs() < 1e-9, "{}", d.total_share);
}

#[test]
fn explanation_reads_like_the_cli() {
    let mut e = engine();
    let b = [PeerView {
        site: SiteId::new("site-b"),
        facts: Some(PeerFacts {
            load: 0.62,
            capacity: 3000,
            spilling_to_us: false,
            age: Duration::from_secs(41),
            seq: 3,
            other_spillers: 0,
        }),
    }];
    let d = e.decide(T0, local(1.14), &b);
    assert_eq!(
        d.to_string(),
        "spilling 10% of new connections to site-b since 13:58 because local 1.14 > 1.10 and \
         site-b 0.62 < 0.70 (report 41s old)"
    );
    let d = e.decide(at(120), local(1.05), &b);
    assert!(
        d.to_string()
            .contains("since 13:58 because local 1.05 > 1.00 and site-b 0.62 <= 0.70"),
        "{d}"
    );
    let d = e.decide(at(180), local(0.9), &b);
    assert_eq!(
        d.to_string(),
        "not spilling: local load 0.90; site-b: local 0.90 <= 1.00"
    );
    let json = serde_json::to_string(&d).unwrap_or_default();
    assert!(
        json.contains("\"rule\":\"local_at_or_below_stop\""),
        "{json}"
    );
}

#[test]
fn config_validation() {
    assert!(SpillConfig::default().validate().is_ok());
    let bad = SpillConfig {
        start_remote: 1.0,
        ..SpillConfig::default()
    };
    assert!(bad.validate().is_err());
    let bad = SpillConfig {
        stop_local: 1.2,
        ..SpillConfig::default()
    };
    assert!(bad.validate().is_err());
    let bad = SpillConfig {
        max_step: 0.0,
        ..SpillConfig::default()
    };
    assert!(bad.validate().is_err());
    let bad = SpillConfig {
        start_local: f64::NAN,
        ..SpillConfig::default()
    };
    assert!(bad.validate().is_err());
}

/// A separate stop_remote (0.8) widens the remote hysteresis: a peer at 0.75 keeps
/// receiving but is never newly chosen.
#[test]
fn separate_stop_remote_threshold() {
    let cfg = SpillConfig {
        stop_remote: 0.8,
        ..SpillConfig::default()
    };
    assert!(cfg.validate().is_ok());
    let mut e = SpillEngine::new(cfg.clone());
    assert!(
        !e.decide(at(0), local(1.3), &[peer("site-b", 0.75)])
            .spilling()
    );
    assert!(
        e.decide(at(60), local(1.3), &[peer("site-b", 0.6)])
            .spilling()
    );
    assert!(
        e.decide(at(120), local(1.3), &[peer("site-b", 0.8)])
            .spilling()
    );
    assert!(
        !e.decide(at(180), local(1.3), &[peer("site-b", 0.8 + EPS)])
            .spilling()
    );
}

#[test]
fn explanation_shows_enough_digits_at_the_threshold() {
    let d = engine().decide(T0, local(1.1003), &[peer("site-b", 0.25)]);
    assert!(
        d.to_string()
            .contains("local 1.1003 > 1.10 and site-b 0.25 < 0.70"),
        "{d}"
    );
}
