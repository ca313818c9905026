//! Several directors per site (decision 0015): a peer site's directors are summed into
//! one entry, a stale one drops out, each has its own replay window; this site's
//! siblings add their fresh figures to ours unless their config digest differs; forged,
//! unknown or malformed sibling reports change nothing.

mod common;

use geo_balancer::exchange::client::{SignedReport, sign_report};
use geo_balancer::exchange::directors::{MAX_DIRECTORS, combine, site_load};
use geo_balancer::exchange::{
    ExchangeConfig, LoadReport, PeerClaim, PeerTable, Reject, RejectKind,
};
use geo_balancer::{SiteId, SiteLoad, Time};

const KEY: &[u8] = b"shared-key-a-b-0123456789";
const DIRECTORS_KEY: &[u8] = b"directors-of-b-0123456789";
const NOW: u64 = 1_764_064_800_000;

/// Site-b's table on director `lb2`: peer site-a, sibling `lb2b`, our digest `aa`.
fn table() -> PeerTable {
    let cfg = ExchangeConfig::new(SiteId::new("site-b"));
    let mut t = PeerTable::new(cfg, vec![(SiteId::new("site-a"), KEY.to_vec())]).expect("table");
    t.set_siblings(
        "lb2",
        vec!["lb2b".into()],
        DIRECTORS_KEY.to_vec(),
        "aa".into(),
    )
    .expect("siblings");
    t
}

/// A report from director `director` of site-a: `active` of `capacity`.
fn from_a(director: Option<&str>, seq: u64, active: u64, capacity: u64) -> LoadReport {
    let load = active as f64 / capacity as f64;
    LoadReport {
        seq,
        timestamp: NOW,
        load: Some(load),
        director_load: Some(load),
        capacity,
        active,
        director: director.map(str::to_string),
        ..common::report(seq, NOW, 0.0)
    }
}

/// A report from sibling `director` of site-b with `digest`.
fn sibling(director: &str, seq: u64, active: u64, capacity: u64, digest: &str) -> LoadReport {
    LoadReport {
        sender: SiteId::new("site-b"),
        receiver: SiteId::new("site-b"),
        config_digest: Some(digest.into()),
        ..from_a(Some(director), seq, active, capacity)
    }
}

fn deliver(t: &mut PeerTable, now: u64, r: &LoadReport, key: &[u8]) -> Result<u64, Reject> {
    let s: SignedReport = sign_report(r, key).expect("sign");
    t.receive(Time(now), Some(&s.sender), Some(&s.signature), &s.body)
        .map(|a| a.seq)
}

fn view_of_a(t: &PeerTable, now: u64) -> Option<(f64, u64)> {
    t.views(Time(now))
        .into_iter()
        .find(|v| v.site.as_str() == "site-a")
        .and_then(|v| v.facts)
        .map(|f| (f.load, f.capacity))
}

#[test]
fn a_peer_site_with_two_directors_is_one_site_with_summed_figures() {
    let mut t = table();
    deliver(&mut t, NOW, &from_a(Some("lb1"), 10, 500, 1000), KEY).expect("lb1");
    deliver(&mut t, NOW, &from_a(Some("lb1b"), 7, 300, 1000), KEY).expect("lb1b");
    // Shared real servers: capacity 1000, connections 500 + 300.
    let (load, cap) = view_of_a(&t, NOW).expect("known");
    assert!((load - 0.8).abs() < 1e-9, "{load}");
    assert_eq!(cap, 1000);
    let st = t.status(Time(NOW));
    let a = st.iter().find(|p| p.site.as_str() == "site-a").expect("a");
    assert_eq!(a.directors.len(), 2);
    assert_eq!(a.last_report.as_ref().map(|r| r.active), Some(800));
    // Peer sites' digests are not ours to judge.
    assert!(a.directors.iter().all(|d| d.digest_match.is_none()));
}

#[test]
fn a_stale_director_of_a_peer_site_drops_out() {
    let mut t = table();
    let stale_after = t.config().stale_after().as_millis() as u64;
    deliver(&mut t, NOW, &from_a(Some("lb1"), 10, 500, 1000), KEY).expect("lb1");
    let later = NOW + stale_after / 2;
    let mut r = from_a(Some("lb1b"), 11, 300, 1000);
    r.timestamp = later;
    deliver(&mut t, later, &r, KEY).expect("lb1b");
    // lb1 stale, lb1b fresh: only lb1b counts.
    let now = NOW + stale_after + 1;
    let (load, _) = view_of_a(&t, now).expect("still known through lb1b");
    assert!((load - 0.3).abs() < 1e-9, "{load}");
    let a = t.status(Time(now)).remove(0);
    assert_eq!(a.directors.iter().filter(|d| d.fresh).count(), 1);
    // Both stale: unknown.
    assert_eq!(view_of_a(&t, later + stale_after + 1), None);
}

/// The guard's cheap query says what the status says: one director, two summed (one
/// of them with no capacity), one stale, none fresh.
#[test]
fn claims_agree_with_the_status() {
    let mut t = table();
    let stale_after = t.config().stale_after().as_millis() as u64;
    let agree = |t: &PeerTable, now: u64| {
        let want: Vec<PeerClaim> = t.status(Time(now)).iter().map(PeerClaim::from).collect();
        assert_eq!(t.claims(Time(now)).collect::<Vec<_>>(), want, "at {now}");
        want
    };
    assert_eq!(agree(&t, NOW)[0].serves, None);
    let mut down = from_a(Some("lb1"), 10, 0, 0);
    (down.load, down.director_load) = (None, None);
    deliver(&mut t, NOW, &down, KEY).expect("lb1");
    assert_eq!(agree(&t, NOW)[0].serves, Some(false));
    let later = NOW + stale_after / 2;
    let mut r = from_a(Some("lb1b"), 11, 300, 1000);
    r.timestamp = later;
    deliver(&mut t, later, &r, KEY).expect("lb1b");
    assert_eq!(agree(&t, later)[0].serves, Some(true));
    // lb1 stale: lb1b alone; both stale: lb1b's last word.
    assert_eq!(agree(&t, NOW + stale_after + 1)[0].serves, Some(true));
    assert_eq!(agree(&t, later + stale_after + 1)[0].serves, Some(true));
}

#[test]
fn a_peer_director_gone_long_is_forgotten() {
    let mut t = table();
    deliver(&mut t, NOW, &from_a(None, 10, 500, 1000), KEY).expect("unnamed");
    // The sender upgraded and names itself now, long after.
    let later = NOW + 3_600_000;
    let mut r = from_a(Some("lb1"), 11, 300, 1000);
    r.timestamp = later;
    deliver(&mut t, later, &r, KEY).expect("lb1");
    let names: Vec<String> = t.status(Time(later))[0]
        .directors
        .iter()
        .map(|d| d.name.clone())
        .collect();
    assert_eq!(names, ["lb1"]);
}

#[test]
fn each_director_has_its_own_replay_window() {
    let mut t = table();
    deliver(&mut t, NOW, &from_a(Some("lb1"), 10, 500, 1000), KEY).expect("lb1");
    // Another director's lower seq is not a replay of lb1's.
    deliver(&mut t, NOW, &from_a(Some("lb1b"), 5, 300, 1000), KEY).expect("lb1b");
    let again = deliver(&mut t, NOW, &from_a(Some("lb1"), 10, 900, 1000), KEY);
    assert!(
        matches!(again, Err(Reject::Replayed { last: 10, .. })),
        "{again:?}"
    );
}

#[test]
fn an_older_sender_without_a_director_is_one_unnamed_director() {
    let mut t = table();
    let body = br#"{"version":1,"sender":"site-a","receiver":"site-b","seq":3,
        "timestamp":1764064800000,"load":0.25,"director_load":0.25,"capacity":400,
        "active":100,"spilling_to":[],"spill_share":0.0}"#;
    let sig = geo_balancer::exchange::auth::sign(KEY, body);
    t.receive(Time(NOW), Some("site-a"), Some(&sig), body)
        .expect("accepted");
    assert_eq!(view_of_a(&t, NOW), Some((0.25, 400)));
    assert_eq!(t.status(Time(NOW))[0].directors[0].name, "");
}

#[test]
fn a_peer_site_may_not_grow_past_the_director_limit() {
    let mut t = table();
    for i in 0..MAX_DIRECTORS {
        deliver(&mut t, NOW, &from_a(Some(&format!("d{i}")), 1, 1, 10), KEY).expect("fits");
    }
    let r = deliver(&mut t, NOW, &from_a(Some("one-more"), 1, 1, 10), KEY);
    assert!(matches!(r, Err(Reject::Malformed { .. })), "{r:?}");
}

#[test]
fn siblings_add_their_fresh_figures_to_ours() {
    let mut t = table();
    deliver(
        &mut t,
        NOW,
        &sibling("lb2b", 4, 300, 1000, "aa"),
        DIRECTORS_KEY,
    )
    .expect("sib");
    let own = SiteLoad {
        served: 0.5,
        director: 0.6,
        healthy_capacity: 1000,
        active_local: 500,
        active_spilled: 100,
        up_servers: 2,
    };
    let sibs = t.sibling_reports(Time(NOW));
    assert_eq!(sibs.len(), 1);
    let site = site_load(&own, &sibs);
    assert!((site.served - 0.8).abs() < 1e-9, "{site:?}");
    assert!((site.director - 0.9).abs() < 1e-9, "{site:?}");
    assert_eq!((site.active_local, site.healthy_capacity), (800, 1000));
    // The sibling on the other side computes the same site load from the mirror inputs.
    let mirror = site_load(
        &SiteLoad {
            served: 0.3,
            director: 0.3,
            healthy_capacity: 1000,
            active_local: 300,
            active_spilled: 0,
            up_servers: 2,
        },
        &[&LoadReport {
            director_load: Some(0.6),
            ..sibling("lb2", 1, 500, 1000, "aa")
        }],
    );
    assert!((mirror.served - site.served).abs() < 1e-9);
    assert!((mirror.director - site.director).abs() < 1e-9);
    // Stale: it counts as down, the site load is ours alone.
    let later = Time(NOW + t.config().stale_after().as_millis() as u64 + 1);
    assert!(t.sibling_reports(later).is_empty());
    let st = t.siblings(later);
    assert_eq!((st[0].name.as_str(), st[0].fresh), ("lb2b", false));
}

#[test]
fn a_sibling_with_another_config_digest_is_never_averaged_in() {
    let mut t = table();
    deliver(
        &mut t,
        NOW,
        &sibling("lb2b", 4, 300, 1000, "bb"),
        DIRECTORS_KEY,
    )
    .expect("sib");
    assert!(t.sibling_reports(Time(NOW)).is_empty());
    let st = t.siblings(Time(NOW));
    assert_eq!(st[0].digest_match, Some(false));
    assert!(st[0].fresh);
    // Same digest again: counted.
    deliver(
        &mut t,
        NOW,
        &sibling("lb2b", 5, 300, 1000, "aa"),
        DIRECTORS_KEY,
    )
    .expect("sib");
    assert_eq!(t.sibling_reports(Time(NOW)).len(), 1);
    assert_eq!(t.siblings(Time(NOW))[0].digest_match, Some(true));
}

#[test]
fn forged_unknown_or_malformed_sibling_reports_change_nothing() {
    let mut t = table();
    let cases: Vec<(LoadReport, &[u8], RejectKind)> = vec![
        // Signed with the peer's key, not the directors'.
        (sibling("lb2b", 4, 300, 1000, "aa"), KEY, RejectKind::Forged),
        // A director the config does not list.
        (
            sibling("lb9", 4, 300, 1000, "aa"),
            DIRECTORS_KEY,
            RejectKind::Unauthenticated,
        ),
        // Ourselves.
        (
            sibling("lb2", 4, 300, 1000, "aa"),
            DIRECTORS_KEY,
            RejectKind::Unauthenticated,
        ),
        // A name the syntax refuses.
        (
            sibling("lb 2b", 4, 300, 1000, "aa"),
            DIRECTORS_KEY,
            RejectKind::Malformed,
        ),
        // A digest that is not hex.
        (
            sibling("lb2b", 4, 300, 1000, "zz"),
            DIRECTORS_KEY,
            RejectKind::Malformed,
        ),
    ];
    for (r, key, kind) in cases {
        let got = deliver(&mut t, NOW, &r, key);
        assert_eq!(got.map_err(|e| e.kind()), Err(kind), "{r:?}");
    }
    assert!(t.sibling_reports(Time(NOW)).is_empty());
    assert!(t.siblings(Time(NOW)).iter().all(|d| d.age.is_none()));
}

#[test]
fn combine_keeps_the_union_of_spill_targets_and_a_site_without_capacity() {
    let mut a = from_a(Some("lb1"), 1, 0, 1000);
    a.spilling_to = vec![SiteId::new("site-c")];
    a.spill_share = 0.2;
    let mut b = from_a(Some("lb1b"), 2, 0, 1000);
    b.load = None;
    b.director_load = None;
    b.capacity = 0;
    let c = combine(&[&a, &b]).expect("some");
    assert_eq!(c.capacity, 1000);
    assert_eq!(c.spilling_to, vec![SiteId::new("site-c")]);
    assert!((c.spill_share - 0.2).abs() < 1e-9);
    // Every director without capacity: the site cannot serve.
    a.load = None;
    a.capacity = 0;
    assert_eq!(combine(&[&a, &b]).and_then(|r| r.load), None);
    assert_eq!(combine(&[]), None, "no report, no site");
}
