//! A report's age is not clock skew (issue 18): on a virtual clock, a report delayed by up
//! to one period plus the skew is accepted and counts as old as it is; a report older
//! than that, one from too far in the future, a forged one and a replayed one (also a
//! late copy of one already accepted) are still refused and change nothing.

mod common;

use common::report;

use std::time::Duration;

use geo_balancer::exchange::client::{SignedReport, sign_report};
use geo_balancer::exchange::{ExchangeConfig, LoadReport, PeerTable, Reject};
use geo_balancer::{SiteId, Time};

const KEY: &[u8] = b"shared-key-a-b-0123456789";
/// Our clock: 10:00:00 UTC on a day in 2025, in ms.
const NOW: u64 = 1_764_064_800_000;

fn table() -> PeerTable {
    let cfg = ExchangeConfig::new(SiteId::new("site-b"));
    PeerTable::new(cfg, vec![(SiteId::new("site-a"), KEY.to_vec())]).expect("table")
}

fn signed(r: &LoadReport) -> SignedReport {
    sign_report(r, KEY).expect("sign")
}

fn deliver(t: &mut PeerTable, now: u64, s: &SignedReport) -> Result<u64, Reject> {
    t.receive(
        Time(now),
        Some(&s.sender),
        Some(&s.signature),
        s.body.as_slice(),
    )
    .map(|a| a.seq)
}

#[test]
fn max_age_is_one_period_plus_the_skew() {
    let cfg = ExchangeConfig::new(SiteId::new("site-b"));
    assert_eq!(cfg.max_age(), Duration::from_secs(150));
}

#[test]
fn a_report_late_by_up_to_a_period_plus_skew_is_accepted_and_counts_its_age() {
    let mut t = table();
    // Sent 140 s ago (a delay the old 30 s bound refused).
    let late = signed(&report(1, NOW - 140_000, 0.4));
    assert_eq!(deliver(&mut t, NOW, &late), Ok(1));
    let views = t.views(Time(NOW));
    let facts = views[0].facts.as_ref().expect("known");
    assert_eq!(
        facts.age,
        Duration::from_secs(140),
        "age from the timestamp"
    );
    assert_eq!(t.status(Time(NOW))[0].age, Some(Duration::from_secs(140)));
    // Known until 3 periods after it was stamped, not after it arrived.
    let expiry = t.next_expiry(Time(NOW)).expect("expiry");
    assert_eq!(expiry, Time(NOW - 140_000 + 360_000 + 1));
    assert!(
        t.views(Time(NOW - 140_000 + 360_000))
            .iter()
            .all(|v| v.facts.is_some())
    );
    assert!(t.views(expiry).iter().all(|v| v.facts.is_none()));
    // Exactly at the bound: still accepted.
    let edge = signed(&report(2, NOW + 10_000 - 150_000, 0.4));
    assert_eq!(deliver(&mut t, NOW + 10_000, &edge), Ok(2));
}

#[test]
fn too_old_forged_replayed_and_future_reports_are_refused_without_change() {
    let mut t = table();
    let first = signed(&report(10, NOW - 5_000, 0.3));
    assert_eq!(deliver(&mut t, NOW, &first), Ok(10));
    let before = t.status(Time(NOW));

    // Older than one period plus the skew.
    let old = signed(&report(11, NOW - 150_001, 0.2));
    assert!(matches!(
        deliver(&mut t, NOW, &old),
        Err(Reject::Stale {
            age_ms: 150_001,
            ..
        })
    ));
    // The same report again, a minute later (a replay inside the age window).
    assert!(matches!(
        deliver(&mut t, NOW + 60_000, &first),
        Err(Reject::Replayed {
            seq: 10,
            last: 10,
            ..
        })
    ));
    // A late copy of an older report, arriving after a newer one.
    let older = signed(&report(9, NOW - 20_000, 0.1));
    assert!(matches!(
        deliver(&mut t, NOW, &older),
        Err(Reject::Replayed {
            seq: 9,
            last: 10,
            ..
        })
    ));
    // Ahead of our clock by more than the skew (30 s): age does not widen that side.
    let ahead = signed(&report(12, NOW + 31_000, 0.2));
    assert!(matches!(
        deliver(&mut t, NOW, &ahead),
        Err(Reject::FromFuture {
            ahead_ms: 31_000,
            ..
        })
    ));
    // Forged: a body changed after signing, or signed with another key.
    let mut forged = signed(&report(13, NOW, 0.2));
    forged.body = serde_json::to_vec(&report(13, NOW, 0.0)).expect("json");
    assert!(matches!(
        deliver(&mut t, NOW, &forged),
        Err(Reject::Forged { .. })
    ));
    let other_key = sign_report(&report(14, NOW, 0.2), b"another-key-0123456789ab").expect("sign");
    assert!(matches!(
        deliver(&mut t, NOW, &other_key),
        Err(Reject::Forged { .. })
    ));

    assert_eq!(t.status(Time(NOW)), before, "a refusal changed the table");
    let next = signed(&report(15, NOW - 100_000, 0.5));
    assert_eq!(
        deliver(&mut t, NOW, &next),
        Ok(15),
        "late but newer: accepted"
    );
}

#[test]
fn a_sender_clock_ahead_does_not_make_its_report_younger() {
    let mut t = table();
    let ahead = signed(&report(1, NOW + 20_000, 0.4));
    assert_eq!(deliver(&mut t, NOW, &ahead), Ok(1));
    let views = t.views(Time(NOW + 10_000));
    let facts = views[0].facts.as_ref().expect("known");
    assert_eq!(facts.age, Duration::from_secs(10), "age from the arrival");
}
