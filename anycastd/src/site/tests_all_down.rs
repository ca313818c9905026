//! The last-announcer guard (`[site] all_down`, decision 0017) over a virtual clock.

use geo_balancer::AllDown;
use geo_balancer::Time;
use geo_balancer::exchange::LoadReport;
use geo_balancer::health::ProbeOutcome;

use super::tests::{RS1, RS2, at, config, deliver, key, probe, reconciled, refused, report, tick};
use super::{Effect, Site};
use crate::layout::VipId;
use crate::status::VipState;

const WEB: VipId = VipId(0);

/// idc2's report that it cannot serve (load null).
fn down_report(seq: u64, ts: Time) -> LoadReport {
    LoadReport {
        load: None,
        director_load: None,
        capacity: 0,
        active: 0,
        ..report(0.0, seq, ts)
    }
}

fn announce() -> Effect {
    Effect::Announce {
        vip: WEB,
        graceful_shutdown: false,
    }
}

/// A site serving (both servers up) under `policy`.
fn serving(policy: AllDown) -> Site {
    let mut cfg = config();
    cfg.site.all_down = policy;
    let (mut site, _) = Site::new(cfg, at(0)).unwrap();
    reconciled(&mut site, at(0), Ok(7));
    for rs in [RS1, RS2] {
        probe(&mut site, rs, at(0), ProbeOutcome::Success);
        probe(&mut site, rs, at(1), ProbeOutcome::Success);
    }
    assert_eq!(site.vips[0].announcer.state(), VipState::Announced);
    site
}

/// Both servers fail; the effects of the second failure (the last server down).
fn fail_both(site: &mut Site, t: u64) -> Vec<Effect> {
    probe(site, RS1, at(t), refused());
    probe(site, RS2, at(t), refused())
}

/// Both servers fail at `t` and the guard holds at once: no withdraw.
fn fail_both_held(site: &mut Site, t: u64) {
    let e = fail_both(site, t);
    assert!(
        !e.iter().any(|e| matches!(e, Effect::Withdraw { .. })),
        "{e:?}"
    );
    assert!(vip_status(site, t).held);
}

fn vip_status(site: &Site, t: u64) -> crate::status::VipStatus {
    site.status(at(t), &[]).vips.remove(0)
}

#[test]
fn both_sites_failing_the_last_one_to_hear_holds_until_the_peer_serves_again() {
    let mut site = serving(AllDown::Announce);
    let (r, _) = deliver(&mut site, &report(0.3, 1, at(2)), &key(), at(2));
    assert_eq!(r, Ok(()));
    // Our checks fail while idc2 still serves: withdraw at once, as ever.
    let e = fail_both(&mut site, 3);
    assert_eq!(e.first(), Some(&Effect::Withdraw { vip: WEB }), "{e:?}");
    assert!(!vip_status(&site, 3).held);
    // idc2 reports that it cannot serve either: hold the VIP announced, once.
    let (r, e) = deliver(&mut site, &down_report(2, at(4)), &key(), at(4));
    assert_eq!(r, Ok(()));
    assert_eq!(e.first(), Some(&announce()), "{e:?}");
    let st = vip_status(&site, 4);
    assert!(st.held);
    assert_eq!(st.state, VipState::Announced);
    assert!(
        st.reason
            .starts_with("held: every peer withdrawn (own checks: "),
        "{}",
        st.reason
    );
    let (_, e) = deliver(&mut site, &down_report(3, at(5)), &key(), at(5));
    assert!(
        !e.iter().any(Effect::is_urgent),
        "same facts, no flap: {e:?}"
    );
    // idc2 serves again: let go at once, the VIP follows its own checks.
    let (_, e) = deliver(&mut site, &report(0.2, 4, at(6)), &key(), at(6));
    assert_eq!(e.first(), Some(&Effect::Withdraw { vip: WEB }), "{e:?}");
    assert!(!vip_status(&site, 6).held);
}

#[test]
fn a_peer_gone_stale_releases_the_hold() {
    let mut site = serving(AllDown::Announce);
    let (r, _) = deliver(&mut site, &down_report(1, at(2)), &key(), at(2));
    assert_eq!(r, Ok(()));
    // The peer already cannot serve: our own failure never withdraws.
    fail_both_held(&mut site, 3);
    // Fail-open: the failed servers stay in IPVS (no weight-0 update for them).
    assert!(
        !site.plans[0]
            .as_ref()
            .unwrap()
            .local
            .iter()
            .any(|(_, w)| *w == 0),
        "{:?}",
        site.plans[0]
    );
    // Nothing more from idc2: while holding, its report of null counts for twice
    // stale_after; then the guard lets go (the driver ticks at every deadline the
    // core asks for).
    let stale_at = at(2).plus(crate::mapping::exchange_config(site.config()).stale_after() * 2);
    let mut t = at(3);
    let released = loop {
        t = site.next_deadline(t).unwrap();
        assert!(
            t <= stale_at.plus(std::time::Duration::from_secs(1)),
            "no release by {t:?}"
        );
        let e = tick(&mut site, t);
        if e.contains(&Effect::Withdraw { vip: WEB }) {
            break t;
        }
    };
    assert!(
        released > stale_at,
        "released at {released:?}, stale at {stale_at:?}"
    );
    assert!(!site.vips[0].held);
}

#[test]
fn servers_back_while_held_keep_the_vip_announced_without_a_flap() {
    let mut site = serving(AllDown::Announce);
    let (r, _) = deliver(&mut site, &down_report(1, at(2)), &key(), at(2));
    assert_eq!(r, Ok(()));
    fail_both(&mut site, 3);
    let mut all = Vec::new();
    for t in 4..40 {
        if t % 2 == 0 {
            let (r, _) = deliver(&mut site, &down_report(t, at(t)), &key(), at(t));
            assert_eq!(r, Ok(()));
        }
        for rs in [RS1, RS2] {
            all.extend(probe(&mut site, rs, at(t), ProbeOutcome::Success));
        }
        all.extend(tick(&mut site, at(t)));
    }
    assert!(
        !all.iter().any(|e| matches!(e, Effect::Withdraw { .. })),
        "{all:?}"
    );
    let st = vip_status(&site, 40);
    assert_eq!(st.state, VipState::Announced);
    assert!(!st.held, "its own checks carry it again: {}", st.reason);
}

#[test]
fn with_all_down_withdraw_every_site_withdraws() {
    let mut site = serving(AllDown::Withdraw);
    let (r, _) = deliver(&mut site, &down_report(1, at(2)), &key(), at(2));
    assert_eq!(r, Ok(()));
    let e = fail_both(&mut site, 3);
    assert_eq!(e.first(), Some(&Effect::Withdraw { vip: WEB }), "{e:?}");
    let (_, e) = deliver(&mut site, &down_report(2, at(4)), &key(), at(4));
    assert!(!e.iter().any(Effect::is_urgent), "{e:?}");
    assert_eq!(vip_status(&site, 4).state, VipState::Withdrawn);
}

/// idc2's report that it serves (load 0.3) but not the VIPs `down`.
fn report_down(seq: u64, ts: Time, down: &[&str]) -> LoadReport {
    LoadReport {
        vips_down: down.iter().map(|v| v.to_string()).collect(),
        ..report(0.3, seq, ts)
    }
}

fn web_text(site: &Site) -> String {
    site.config().vips[0].address.to_string()
}

#[test]
fn a_peer_that_serves_other_vips_but_not_this_one_counts_as_withdrawn_for_it() {
    let mut site = serving(AllDown::Announce);
    let web = web_text(&site);
    // idc2 has capacity (load 0.3) yet reports our VIP down: for this VIP it is
    // withdrawn, so our own failure holds the VIP announced.
    let (r, _) = deliver(&mut site, &report_down(1, at(2), &[&web]), &key(), at(2));
    assert_eq!(r, Ok(()));
    fail_both_held(&mut site, 3);
    // It reports our VIP back up (another of its VIPs down): let go at once.
    let (_, e) = deliver(
        &mut site,
        &report_down(2, at(4), &["192.0.2.77"]),
        &key(),
        at(4),
    );
    assert_eq!(e.first(), Some(&Effect::Withdraw { vip: WEB }), "{e:?}");
    assert!(!vip_status(&site, 4).held);
}

#[test]
fn a_peer_that_reports_another_vip_down_still_serves_this_one() {
    let mut site = serving(AllDown::Announce);
    let (r, _) = deliver(
        &mut site,
        &report_down(1, at(2), &["192.0.2.77", "2001:db8::77"]),
        &key(),
        at(2),
    );
    assert_eq!(r, Ok(()));
    let e = fail_both(&mut site, 3);
    assert_eq!(e.first(), Some(&Effect::Withdraw { vip: WEB }), "{e:?}");
    assert!(!vip_status(&site, 3).held);
}

/// The `vips_down` of the reports in `effects`, if any round was sent.
fn sent_down(effects: &[Effect]) -> Option<Vec<String>> {
    effects.iter().find_map(|e| match e {
        Effect::SendReports(round) => round.reports.first().map(|r| r.vips_down.clone()),
        _ => None,
    })
}

#[test]
fn a_failing_vip_goes_into_the_reports_at_once_and_leaves_them_when_it_serves() {
    let mut site = serving(AllDown::Announce);
    let web = web_text(&site);
    // The first failure's load change was reported at 40; the withdraw a moment later
    // goes out at the end of the reports' minimum gap (1 s), not at the next period.
    fail_both(&mut site, 40);
    let next = site.next_deadline(at(40)).unwrap();
    assert!(next <= at(41), "{next:?}");
    let e = tick(&mut site, next);
    assert_eq!(sent_down(&e), Some(vec![web.clone()]), "{e:?}");
    // Held or not, a VIP whose own checks fail is reported down: a peer failing too
    // must see this site as withdrawn for it.
    let (_, e) = deliver(&mut site, &report_down(1, at(43), &[&web]), &key(), at(43));
    assert!(vip_status(&site, 43).held, "{e:?}");
    let e = tick(&mut site, at(44));
    assert_eq!(
        sent_down(&e),
        None,
        "nothing changed, nothing sent early: {e:?}"
    );
    // The servers come back: after the hold-down the VIP serves on its own checks,
    // and the round sent then says so.
    let mut e = Vec::new();
    for t in 80..120 {
        for rs in [RS1, RS2] {
            e.extend(probe(&mut site, rs, at(t), ProbeOutcome::Success));
        }
        e.extend(tick(&mut site, at(t)));
    }
    assert_eq!(vip_status(&site, 120).state, VipState::Announced);
    let last = e
        .iter()
        .rev()
        .find_map(|e| sent_down(std::slice::from_ref(e)));
    assert_eq!(last, Some(Vec::new()), "{e:?}");
}
