//! A peer's room is shared by every site that spills to it (issue 18): the peer table
//! counts the other known spillers from their own reports, and the spill rule claims an
//! equal part of the room. Virtual clock; no I/O.

use std::time::Duration;

use geo_balancer::exchange::client::sign_report;
use geo_balancer::exchange::{ExchangeConfig, LoadReport, PeerTable};
use geo_balancer::{LocalView, PeerFacts, PeerView, SiteId, SpillConfig, SpillEngine, Time};

const T0: Time = Time(1_764_064_800_000);
const KEY: &[u8] = b"shared-key-for-every-pair-0123";

fn view(others: u32) -> Vec<PeerView> {
    vec![PeerView {
        site: SiteId::new("idle"),
        facts: Some(PeerFacts {
            load: 0.4,
            capacity: 1000,
            spilling_to_us: false,
            age: Duration::from_secs(30),
            seq: 1,
            other_spillers: others,
        }),
    }]
}

/// The share a site at 1.5 settles on after ten minutes of decisions, one a minute.
fn settled(others: u32) -> f64 {
    let mut e = SpillEngine::new(SpillConfig::default());
    let local = LocalView {
        load: 1.5,
        capacity: 1000,
    };
    let mut share = 0.0;
    for k in 0..10u64 {
        share = e
            .decide(T0.plus(Duration::from_secs(60 * k)), local, &view(others))
            .total_share;
    }
    share
}

#[test]
fn the_room_is_split_among_the_sites_spilling_to_a_peer() {
    // Room alone: (0.7 - 0.4) * 1000 / (1.5 * 1000) = 0.2 of our new connections.
    let alone = settled(0);
    assert!((alone - 0.2).abs() < 1e-9, "alone {alone}");
    let shared = settled(1);
    assert!(
        (shared - 0.1).abs() < 1e-9,
        "with one other spiller {shared}"
    );
    let crowded = settled(3);
    assert!((crowded - 0.05).abs() < 1e-9, "with three others {crowded}");
}

#[test]
fn a_share_already_placed_is_kept_when_others_join() {
    let mut e = SpillEngine::new(SpillConfig::default());
    let local = LocalView {
        load: 1.5,
        capacity: 1000,
    };
    for k in 0..5u64 {
        e.decide(T0.plus(Duration::from_secs(60 * k)), local, &view(0));
    }
    let before = e.total_share();
    // Another site starts spilling to the same peer: our placed share does not drop
    // (no churn), it only stops growing; the peer's stop_remote rule is the limit.
    let d = e.decide(T0.plus(Duration::from_secs(300)), local, &view(1));
    assert!((d.total_share - before).abs() < 1e-9);
    assert!(d.events.is_empty(), "{:?}", d.events);
}

fn report(from: &str, to: &str, seq: u64, spilling_to: &[&str]) -> LoadReport {
    LoadReport {
        version: 1,
        sender: SiteId::new(from),
        receiver: SiteId::new(to),
        seq,
        timestamp: T0.as_millis(),
        load: Some(0.5),
        director_load: Some(0.5),
        capacity: 1000,
        active: 500,
        spilling_to: spilling_to.iter().map(|s| SiteId::new(*s)).collect(),
        spill_share: if spilling_to.is_empty() { 0.0 } else { 0.1 },
        director: None,
        config_digest: None,
        vips_down: Vec::new(),
    }
}

#[test]
fn the_peer_table_counts_other_known_spillers_from_their_reports() {
    let me = SiteId::new("me");
    let peers = ["a", "b", "c", "idle"]
        .iter()
        .map(|s| (SiteId::new(*s), KEY.to_vec()))
        .collect();
    let mut t = PeerTable::new(ExchangeConfig::new(me), peers).expect("table");
    for r in [
        report("a", "me", 1, &["idle"]),
        report("b", "me", 1, &["idle", "c"]),
        report("c", "me", 1, &[]),
        report("idle", "me", 1, &[]),
    ] {
        let s = sign_report(&r, KEY).expect("sign");
        t.receive(T0, Some(&s.sender), Some(&s.signature), &s.body)
            .expect("accepted");
    }
    let others = |t: &PeerTable, now: Time, site: &str| {
        t.views(now)
            .into_iter()
            .find(|v| v.site.as_str() == site)
            .and_then(|v| v.facts)
            .map(|f| f.other_spillers)
    };
    assert_eq!(others(&t, T0, "idle"), Some(2));
    assert_eq!(others(&t, T0, "c"), Some(1));
    assert_eq!(others(&t, T0, "a"), Some(0));
    // A spiller whose report went stale no longer counts; a fresh one does.
    let later = T0.plus(Duration::from_secs(300));
    let mut fresh = report("a", "me", 2, &["idle"]);
    fresh.timestamp = later.as_millis();
    let mut idle = report("idle", "me", 2, &[]);
    idle.timestamp = later.as_millis();
    for r in [fresh, idle] {
        let s = sign_report(&r, KEY).expect("sign");
        t.receive(later, Some(&s.sender), Some(&s.signature), &s.body)
            .expect("accepted");
    }
    let after_stale = T0.plus(Duration::from_secs(361));
    assert_eq!(others(&t, after_stale, "idle"), Some(1));
}
