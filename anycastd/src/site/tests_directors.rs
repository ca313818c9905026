//! Two directors of one site over a virtual clock (decision 0015): each sends its own
//! figures to the other, both compute the same site load and spill decision; a sibling
//! gone stale or running another site config leaves the site load; forged sibling
//! reports change nothing.

use geo_balancer::Time;
use geo_balancer::exchange::LoadReport;
use geo_balancer::exchange::client::sign_report;
use geo_balancer::health::ProbeOutcome;

use super::tests::{T0, at, config, deliver, key, probe, reconciled, report, sample, stats};
use super::{Effect, Site};
use crate::config::{Director, Directors, SiteConfig};
use crate::status::PeerState;

const DIRECTORS_KEY: &[u8] = b"directors-of-idc1-0123";

/// idc1's config on director `me`, whose sibling is `other`.
fn director(me: &str, other: &str) -> SiteConfig {
    let mut c = config();
    c.site.director = me.into();
    c.directors = Directors {
        key: DIRECTORS_KEY.to_vec(),
        others: vec![Director {
            name: other.into(),
            address: "10.101.3.3".parse().unwrap(),
            url: "http://10.101.3.3:9181/v1/report".into(),
        }],
    };
    c
}

/// A director with the data plane in place and both servers up.
fn up(cfg: SiteConfig) -> Site {
    let (mut site, _) = Site::new(cfg, T0).unwrap();
    reconciled(&mut site, T0, Ok(7));
    for rs in [super::tests::RS1, super::tests::RS2] {
        probe(&mut site, rs, T0, ProbeOutcome::Success);
        probe(&mut site, rs, at(2), ProbeOutcome::Success);
    }
    site
}

/// The report to this site's other directors in `effects`, if a round went out.
fn to_siblings(effects: &[Effect]) -> Option<LoadReport> {
    effects.iter().find_map(|e| match e {
        Effect::SendReports(r) => r
            .reports
            .iter()
            .find(|r| r.receiver.as_str() == "idc1")
            .cloned(),
        _ => None,
    })
}

/// Hands `r` to `site` as the directors' listener would.
fn hand(site: &mut Site, r: &LoadReport, key: &[u8], now: Time) -> Vec<Effect> {
    let signed = sign_report(r, key).unwrap();
    site.on_report(now, Some("idc1"), Some(&signed.signature), &signed.body)
        .unwrap();
    site.settle(now)
}

/// Both directors up, with `a` and `b` connections on each of their two servers
/// (capacity 100 each), and each one's report handed to the other.
fn pair(a: u32, b: u32) -> (Site, Site) {
    let (mut lb1, mut lb1b) = (up(director("lb1", "lb1b")), up(director("lb1b", "lb1")));
    sample(&mut lb1, at(3), &stats(a, 0));
    sample(&mut lb1b, at(3), &stats(b, 0));
    // The next round (periodic, interval 2 s) carries the figures.
    let from_a = to_siblings(&super::tests::tick(&mut lb1, at(6))).expect("lb1's round");
    let from_b = to_siblings(&super::tests::tick(&mut lb1b, at(6))).expect("lb1b's round");
    hand(&mut lb1b, &from_a, DIRECTORS_KEY, at(6));
    hand(&mut lb1, &from_b, DIRECTORS_KEY, at(6));
    (lb1, lb1b)
}

#[test]
fn both_directors_compute_the_same_site_load_from_their_own_figures() {
    let (lb1, lb1b) = pair(40, 20);
    let (s1, s2) = (lb1.status(at(6), &[]), lb1b.status(at(6), &[]));
    // Shared servers, capacity 200: (80 + 40) / 200.
    assert_eq!(s1.local_load, Some(0.6));
    assert_eq!(s1.local_load, s2.local_load);
    let (d1, d2) = (s1.directors.unwrap(), s2.directors.unwrap());
    assert_eq!((d1.own_load, d2.own_load), (Some(0.4), Some(0.2)));
    assert_eq!(d1.others[0].state, PeerState::Known);
    assert!(d1.others[0].counted && d2.others[0].counted);
    assert_eq!(d1.config_digest, d2.config_digest);
}

#[test]
fn reports_carry_the_directors_own_figures_name_and_digest() {
    let mut lb1 = up(director("lb1", "lb1b"));
    sample(&mut lb1, at(3), &stats(40, 0));
    let e = super::tests::tick(&mut lb1, at(6));
    let Some(Effect::SendReports(round)) = e.iter().find(|e| matches!(e, Effect::SendReports(_)))
    else {
        panic!("no round in {e:?}");
    };
    // One to the peer site, one to our own site's other directors.
    assert_eq!(round.reports.len(), 2);
    for r in &round.reports {
        assert_eq!(r.director.as_deref(), Some("lb1"));
        assert_eq!(r.load, Some(0.4));
        assert_eq!(r.config_digest.as_ref().map(String::len), Some(32));
    }
}

#[test]
fn a_stale_sibling_counts_as_down() {
    let (mut lb1, _) = pair(40, 20);
    let stale = at(6).plus(lb1.config().exchange.interval * 3 + std::time::Duration::from_secs(1));
    // The expiry is a deadline the core asks for.
    assert!(lb1.next_deadline(at(7)).is_some_and(|t| t <= stale));
    super::tests::tick(&mut lb1, stale);
    let st = lb1.status(stale, &[]);
    assert_eq!(st.local_load, Some(0.4));
    let d = st.directors.unwrap();
    assert_eq!(
        (d.others[0].state, d.others[0].counted),
        (PeerState::Stale, false)
    );
}

#[test]
fn a_sibling_with_another_site_config_is_reported_and_left_out() {
    let mut other = director("lb1b", "lb1");
    other.spill.start_local_above = 1.3;
    let (mut lb1, mut lb1b) = (up(director("lb1", "lb1b")), up(other));
    sample(&mut lb1, at(3), &stats(40, 0));
    sample(&mut lb1b, at(3), &stats(20, 0));
    let from_b = to_siblings(&super::tests::tick(&mut lb1b, at(6))).expect("round");
    hand(&mut lb1, &from_b, DIRECTORS_KEY, at(6));
    let st = lb1.status(at(6), &[]);
    assert_eq!(st.local_load, Some(0.4), "never averaged across a mismatch");
    let d = st.directors.unwrap();
    assert_eq!(d.others[0].digest_match, Some(false));
    assert!(!d.others[0].counted);
    assert_eq!(d.others[0].state, PeerState::Known);
}

#[test]
fn forged_or_foreign_sibling_reports_change_nothing() {
    let (mut lb1, mut lb1b) = pair(40, 20);
    let before = lb1.status(at(6), &[]);
    // Across a threshold: a round at once.
    let mut r = to_siblings(&sample(&mut lb1b, at(7), &stats(90, 0))).expect("round");
    // Signed with the peer site's key: forged.
    let signed = sign_report(&r, &key()).unwrap();
    let got = lb1.on_report(at(8), Some("idc1"), Some(&signed.signature), &signed.body);
    assert!(got.is_err());
    // A director the config does not list.
    r.director = Some("lb9".into());
    let signed = sign_report(&r, DIRECTORS_KEY).unwrap();
    let got = lb1.on_report(at(8), Some("idc1"), Some(&signed.signature), &signed.body);
    assert!(got.is_err());
    lb1.settle(at(8));
    assert_eq!(lb1.status(at(8), &[]).local_load, before.local_load);
    // A peer site's report is not a sibling's: it does not move the site load.
    let (ok, _) = deliver(&mut lb1, &report(0.9, 1, at(8)), &key(), at(8));
    assert!(ok.is_ok());
    assert_eq!(lb1.status(at(8), &[]).local_load, before.local_load);
}

/// A reload that changes the site-wide config (here a service's scheduler, as the
/// demo does when it turns to `mh` with `[sync]`) sends the new digest from the next
/// report on, and the sibling reloaded the same way counts it again.
#[test]
fn a_reload_sends_the_new_digest() {
    let mut lb1 = up(director("lb1", "lb1b"));
    let old = lb1.status(at(3), &[]).directors.unwrap().config_digest;
    let mut next = lb1.config().clone();
    next.vips[0].services[0].scheduler = "mh".into();
    lb1.reload(next.clone(), at(3)).unwrap();
    let new = lb1.status(at(3), &[]).directors.unwrap().config_digest;
    assert_ne!(new, old);
    sample(&mut lb1, at(4), &stats(40, 0));
    let r = to_siblings(&super::tests::tick(&mut lb1, at(6))).expect("a round");
    assert_eq!(r.config_digest.as_deref(), Some(new.as_str()));
}
