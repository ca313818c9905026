//! `vips_down` (decision 0017, amended): a report lists the VIPs whose own checks fail
//! at the sender, so a peer's last-announcer guard judges it per VIP. Checked like
//! every other field (a malformed list refuses the report whole and changes nothing);
//! a peer site's directors are down for a VIP only when each of them says so; a
//! change is sent at once, like a threshold.

mod common;

use std::time::Duration;

use geo_balancer::exchange::client::sign_report;
use geo_balancer::exchange::directors::combine;
use geo_balancer::exchange::{
    ExchangeConfig, LoadReport, LocalState, PeerTable, RejectKind, ReportScheduler, SendReason,
};
use geo_balancer::{SiteId, SiteLoad, SpillConfig, Time};

const KEY: &[u8] = b"shared-key-a-b-0123456789";
const NOW: u64 = 1_764_064_800_000;
const WEB: &str = "10.101.4.1";
const DNS6: &str = "2001:db8:4::53";

fn down(seq: u64, vips: &[&str]) -> LoadReport {
    LoadReport {
        vips_down: vips.iter().map(|v| v.to_string()).collect(),
        ..common::report(seq, NOW, 0.4)
    }
}

fn table() -> PeerTable {
    PeerTable::new(
        ExchangeConfig::new(SiteId::new("site-b")),
        vec![(SiteId::new("site-a"), KEY.to_vec())],
    )
    .expect("table")
}

fn deliver(t: &mut PeerTable, r: &LoadReport) -> Result<(), RejectKind> {
    let s = sign_report(r, KEY).expect("sign");
    t.receive(Time(NOW), Some(&s.sender), Some(&s.signature), &s.body)
        .map(|_| ())
        .map_err(|e| e.kind())
}

/// What site-a claims for `vip` (`None`: any VIP, the site-wide claim).
fn serves(t: &PeerTable, vip: Option<&str>) -> Option<bool> {
    let now = Time(NOW + 1000);
    match vip {
        Some(v) => t.claims_for(now, v).next().and_then(|c| c.serves),
        None => t.claims(now).next().and_then(|c| c.serves),
    }
}

#[test]
fn a_peer_with_load_but_this_vip_down_does_not_serve_it() {
    let mut t = table();
    assert_eq!(deliver(&mut t, &down(1, &[WEB, DNS6])), Ok(()));
    assert_eq!(serves(&t, Some(WEB)), Some(false));
    assert_eq!(serves(&t, Some(DNS6)), Some(false));
    assert_eq!(serves(&t, Some("10.101.4.2")), Some(true));
    assert_eq!(serves(&t, None), Some(true), "site-wide it serves (a load)");
    // Back up: the next report lists nothing.
    assert_eq!(deliver(&mut t, &down(2, &[])), Ok(()));
    assert_eq!(serves(&t, Some(WEB)), Some(true));
}

#[test]
fn a_report_without_the_field_is_judged_by_its_load_alone() {
    let mut t = table();
    let r = common::report(1, NOW, 0.4);
    let json = serde_json::to_string(&r).expect("json");
    assert!(
        !json.contains("vips_down"),
        "empty lists are left out: {json}"
    );
    assert_eq!(deliver(&mut t, &r), Ok(()));
    assert_eq!(serves(&t, Some(WEB)), Some(true));
    let null = LoadReport {
        load: None,
        ..common::report(2, NOW, 0.0)
    };
    assert_eq!(deliver(&mut t, &null), Ok(()));
    assert_eq!(serves(&t, Some(WEB)), Some(false));
}

#[test]
fn a_malformed_list_refuses_the_report_and_changes_nothing() {
    let mut t = table();
    assert_eq!(deliver(&mut t, &down(1, &[])), Ok(()));
    let too_many: Vec<String> = (0..257)
        .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
        .collect();
    let long = "1".repeat(65);
    for bad in [
        vec!["web; rm -rf".to_string()],
        vec![String::new()],
        vec![long],
        vec!["10.0.0.1\n".to_string()],
        too_many,
    ] {
        let r = LoadReport {
            vips_down: bad,
            ..down(2, &[])
        };
        assert_eq!(deliver(&mut t, &r), Err(RejectKind::Malformed));
        assert_eq!(serves(&t, Some(WEB)), Some(true), "state unchanged");
    }
}

#[test]
fn a_site_is_down_for_a_vip_only_when_every_fresh_director_says_so() {
    let a = LoadReport {
        director: Some("lb1".into()),
        ..down(1, &[WEB, DNS6])
    };
    let b = LoadReport {
        director: Some("lb1b".into()),
        ..down(2, &[WEB])
    };
    let c = combine(&[&a, &b]).expect("combined");
    assert_eq!(c.vips_down, vec![WEB.to_string()]);
    let one = combine(&[&a]).expect("one");
    assert_eq!(one.vips_down, vec![WEB.to_string(), DNS6.to_string()]);
}

fn state(vips_down: &[&str]) -> LocalState {
    LocalState {
        load: SiteLoad {
            served: 0.4,
            director: 0.4,
            healthy_capacity: 1000,
            active_local: 400,
            active_spilled: 0,
            up_servers: 2,
        },
        spilling_to: Vec::new(),
        spill_share: 0.0,
        vips_down: vips_down.iter().map(|v| v.to_string()).collect(),
    }
}

#[test]
fn a_change_of_vips_down_is_sent_at_once() {
    let cfg = ExchangeConfig::new(SiteId::new("site-b"));
    let mut s = ReportScheduler::new(cfg, SpillConfig::default(), vec![SiteId::new("site-a")], 7);
    let t0 = Time(NOW);
    let first = s.poll(t0, &state(&[])).expect("start round");
    assert_eq!(first.reason, SendReason::Start);
    assert!(first.reports[0].vips_down.is_empty());
    let t1 = t0.plus(Duration::from_secs(5));
    assert!(s.poll(t1, &state(&[])).is_none(), "nothing changed");
    // Same load band, one VIP down: a round at once, listing it (sorted, once).
    let r = s
        .poll(t1, &state(&[WEB, DNS6, WEB]))
        .expect("threshold round");
    assert_eq!(r.reason, SendReason::Threshold);
    assert_eq!(
        r.reports[0].vips_down,
        vec![WEB.to_string(), DNS6.to_string()]
    );
    let t2 = t1.plus(Duration::from_secs(5));
    assert!(
        s.poll(t2, &state(&[DNS6, WEB])).is_none(),
        "same list in another order"
    );
    let r = s.poll(t2, &state(&[])).expect("back up");
    assert!(r.reports[0].vips_down.is_empty());
}
