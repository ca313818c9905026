//! The site core over a virtual clock: inputs in, effects out.

use std::path::Path;
use std::time::Duration;

use geo_balancer::exchange::client::sign_report;
use geo_balancer::exchange::{LoadReport, Reject};
use geo_balancer::health::{HealthEvent, ProbeOutcome, ProbeSource};
use geo_balancer::{ProbeError, ServerId, SiteId, Time};
use tunnel_forwarder as tf;

use super::{Effect, Site};
use crate::dataplane::DataplaneError;
use crate::layout::VipId;
use crate::status::{PeerState, ServerState, VipState};

pub(super) const T0: Time = Time(1_800_000_000_000);

pub(super) fn at(secs: u64) -> Time {
    T0.plus(Duration::from_secs(secs))
}

pub(super) fn config() -> crate::config::SiteConfig {
    let mut c = crate::config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/idc1.toml"
    )))
    .unwrap();
    c.exchange.interval = Duration::from_secs(2);
    // Each service spills through its own peer destination (no split), unless a test
    // turns the split on (`split_site`).
    c.site.client_devices.clear();
    c
}

pub(super) const RS1: &str = "web/tcp80/10.101.5.11:80";
pub(super) const RS2: &str = "web/tcp80/10.101.5.12:80";

/// What the driver does with an input: its urgent effects, then the settled rest.
pub(super) fn then_settle(site: &mut Site, t: Time, mut urgent: Vec<Effect>) -> Vec<Effect> {
    urgent.extend(site.settle(t));
    urgent
}

pub(super) fn probe(site: &mut Site, server: &str, t: Time, outcome: ProbeOutcome) -> Vec<Effect> {
    let e = site.on_health(HealthEvent {
        server: ServerId::new(server),
        at: t,
        source: ProbeSource::Periodic,
        outcome,
    });
    then_settle(site, t, e)
}

pub(super) fn tick(site: &mut Site, t: Time) -> Vec<Effect> {
    let e = site.on_timer(t);
    then_settle(site, t, e)
}

pub(super) fn reconciled(
    site: &mut Site,
    t: Time,
    r: Result<usize, DataplaneError>,
) -> Vec<Effect> {
    let e = site.on_reconciled(t, r);
    then_settle(site, t, e)
}

pub(super) fn sample(site: &mut Site, t: Time, s: &[tf::ServiceStats]) -> Vec<Effect> {
    site.on_stats(t, s);
    site.settle(t)
}

fn ip_vs_missing() -> DataplaneError {
    DataplaneError::Kernel(tf::Error::ModuleMissing {
        module: "ip_vs".into(),
        during: "reading services".into(),
    })
}

const WEB: VipId = VipId(0);

pub(super) fn refused() -> ProbeOutcome {
    ProbeOutcome::HardFailure(ProbeError::Refused {
        addr: "10.101.5.11:80".parse().unwrap(),
    })
}

/// A site with the data plane in place and both servers up (rise 2).
pub(super) fn serving() -> Site {
    let (mut site, first) = Site::new(config(), T0).unwrap();
    assert!(
        matches!(first.first(), Some(Effect::Reconcile(_))),
        "{first:?}"
    );
    reconciled(&mut site, T0, Ok(7));
    for rs in [RS1, RS2] {
        probe(&mut site, rs, T0, ProbeOutcome::Success);
        probe(&mut site, rs, at(2), ProbeOutcome::Success);
    }
    assert_eq!(site.vips[0].announcer.state(), VipState::Announced);
    site
}

fn has(effects: &[Effect], want: &Effect) -> bool {
    effects.iter().any(|e| e == want)
}

#[test]
fn nothing_is_announced_before_the_data_plane_and_a_healthy_server() {
    let (mut site, _) = Site::new(config(), T0).unwrap();
    let e = probe(&mut site, RS1, T0, ProbeOutcome::Success);
    let e2 = probe(&mut site, RS1, at(2), ProbeOutcome::Success);
    assert!(
        !e.iter()
            .chain(&e2)
            .any(|e| matches!(e, Effect::Announce { .. }))
    );
    let e = reconciled(&mut site, at(2), Ok(5));
    assert_eq!(
        e[0],
        Effect::Announce {
            vip: WEB,
            graceful_shutdown: false
        },
        "{e:?}"
    );
}

#[test]
fn losing_the_last_server_withdraws_first_thing() {
    let mut site = serving();
    probe(&mut site, RS1, at(3), refused());
    let e = probe(&mut site, RS2, at(3), refused());
    assert_eq!(e.first(), Some(&Effect::Withdraw { vip: WEB }), "{e:?}");
    // And the dead servers leave the kernel's services (their connections are
    // expired), by targeted updates (the first one went down in its own step).
    let Some(Effect::Apply(r)) = e.iter().find(|e| matches!(e, Effect::Apply(_))) else {
        panic!("no update in {e:?}");
    };
    assert!(
        r.iter().all(|r| matches!(r, tf::Request::DelDest(..))),
        "{r:?}"
    );
    assert!(site.desired.vips[0].services[0].local.is_empty());
    assert_eq!(site.status(at(3), &[]).vips[0].state, VipState::Withdrawn);
}

#[test]
fn the_status_weight_is_each_servers_own_when_one_has_left_ipvs() {
    let mut site = serving();
    probe(&mut site, RS1, at(3), refused());
    // RS1 failed and left the service: RS2 is now the list's first destination.
    assert_eq!(site.desired.vips[0].services[0].local.len(), 1);
    let st = site.status(at(3), &[]);
    let weight = |addr: &str| {
        st.real_servers
            .iter()
            .find(|r| r.address == addr)
            .map(|r| r.weight)
    };
    assert_eq!(weight("10.101.5.11"), Some(0), "{:?}", st.real_servers);
    assert!(weight("10.101.5.12") > Some(0), "{:?}", st.real_servers);
}

#[test]
fn a_failed_server_leaves_ipvs_a_disabled_or_unchecked_one_stays_at_weight_0() {
    // Not checked yet: both in IPVS at weight 0 (a restart cuts no connection).
    let (site, _) = Site::new(config(), T0).unwrap();
    let local = &site.desired.vips[0].services[0].local;
    assert_eq!(local.len(), 2);
    let mut site = serving();
    let e = probe(&mut site, RS1, at(3), refused());
    let Some(Effect::Apply(r)) = e.iter().find(|e| matches!(e, Effect::Apply(_))) else {
        panic!("no update in {e:?}");
    };
    let cmds: Vec<String> = r.iter().map(tf::Request::command).collect();
    assert!(
        cmds.iter().any(|c| c.starts_with("ipvsadm -d -t ")),
        "{cmds:?}"
    );
    assert_eq!(site.desired.vips[0].services[0].local.len(), 1);
    // Back after rise: added again, with a weight.
    probe(&mut site, RS1, at(4), ProbeOutcome::Success);
    let e = probe(&mut site, RS1, at(5), ProbeOutcome::Success);
    let Some(Effect::Apply(r)) = e.iter().find(|e| matches!(e, Effect::Apply(_))) else {
        panic!("no update in {e:?}");
    };
    assert!(
        r.iter()
            .any(|r| matches!(r, tf::Request::NewDest(_, d) if d.weight > 0)),
        "{r:?}"
    );
    assert_eq!(site.desired.vips[0].services[0].local.len(), 2);
}

#[test]
fn a_failed_reconcile_withdraws_the_vip() {
    let mut site = serving();
    let e = reconciled(&mut site, at(3), Err(ip_vs_missing()));
    assert_eq!(e.first(), Some(&Effect::Withdraw { vip: WEB }));
    assert!(
        !e.iter().any(|e| matches!(e, Effect::Reconcile(_))),
        "no retry storm: {e:?}"
    );
    assert!(
        !tick(&mut site, at(4))
            .iter()
            .any(|e| matches!(e, Effect::Reconcile(_)))
    );
    assert!(
        tick(&mut site, at(5))
            .iter()
            .any(|e| matches!(e, Effect::Reconcile(_))),
        "retried after 2 s"
    );
    let st = site.status(at(3), &[]);
    assert!(!st.dataplane.ok);
    assert!(
        st.vips[0].reason.contains("data plane"),
        "{}",
        st.vips[0].reason
    );
}

#[test]
fn drain_then_undrain() {
    let mut site = serving();
    let (names, e) = site.drain(at(3), Some("web")).unwrap();
    assert_eq!(names, ["web"]);
    assert_eq!(
        e,
        vec![Effect::Announce {
            vip: WEB,
            graceful_shutdown: true
        }]
    );
    assert!(!has(
        &tick(&mut site, at(4)),
        &Effect::Withdraw { vip: WEB }
    ));
    let e = tick(&mut site, at(3 + 5));
    assert!(has(&e, &Effect::Withdraw { vip: WEB }), "{e:?}");
    assert_eq!(site.status(at(9), &[]).vips[0].state, VipState::Drained);
    let (_, e) = site.undrain(at(10), None).unwrap();
    assert_eq!(
        e,
        vec![Effect::Announce {
            vip: WEB,
            graceful_shutdown: false
        }]
    );
    assert_eq!(
        site.drain(at(10), Some("mail")).unwrap_err().to_string(),
        "no VIP named `mail` (known: web)"
    );
}

#[test]
fn withdraw_all_at_shutdown() {
    let mut site = serving();
    assert_eq!(
        site.withdraw_all(at(5)),
        vec![Effect::Withdraw { vip: WEB }]
    );
    assert_eq!(site.withdraw_all(at(6)), vec![]);
}

pub(super) fn report(load: f64, seq: u64, ts: Time) -> LoadReport {
    LoadReport {
        version: 1,
        sender: SiteId::new("idc2"),
        receiver: SiteId::new("idc1"),
        seq,
        timestamp: ts.as_millis(),
        load: Some(load),
        director_load: Some(load),
        capacity: 200,
        active: (load * 200.0) as u64,
        spilling_to: vec![],
        spill_share: 0.0,
        director: None,
        config_digest: None,
        vips_down: Vec::new(),
    }
}

pub(super) fn deliver(
    site: &mut Site,
    r: &LoadReport,
    key: &[u8],
    now: Time,
) -> (Result<(), Reject>, Vec<Effect>) {
    let signed = sign_report(r, key).unwrap();
    let r = site.on_report(now, Some("idc2"), Some(&signed.signature), &signed.body);
    (r, site.settle(now))
}

pub(super) fn key() -> Vec<u8> {
    config().peers[0].key.clone()
}

/// IPVS stats with `active` connections on each local server of the VIP.
pub(super) fn stats(active: u32, tunnelled: u32) -> Vec<tf::ServiceStats> {
    let dest = |addr: &str, fwd, active| tf::DestStats {
        addr: addr.parse().unwrap(),
        port: 80,
        forward: Some(fwd),
        weight: 1,
        active,
        inactive: 0,
        persistent: 0,
        counters: tf::Counters::default(),
    };
    vec![tf::ServiceStats {
        key: tf::ServiceKey::Addr {
            protocol: tf::Protocol::Tcp,
            addr: "10.101.4.1".parse().unwrap(),
            port: 80,
        },
        counters: tf::Counters::default(),
        dests: vec![
            dest("10.101.5.11", tf::Forward::DirectRoute, active),
            dest("10.101.5.12", tf::Forward::DirectRoute, active),
            dest("10.101.2.2", tf::Forward::Tunnel, tunnelled),
        ],
    }]
}

/// The peer tunnel's weight in the last data-plane effect that sets it.
fn peer_weight(e: &[Effect]) -> Option<u32> {
    let peer: std::net::IpAddr = "10.101.2.2".parse().unwrap();
    e.iter().rev().find_map(|e| match e {
        Effect::Reconcile(d) => Some(d.vips[0].services[0].peers[0].weight),
        Effect::Apply(r) => r.iter().find_map(|r| match r {
            tf::Request::SetDest(_, d) if d.addr == peer => Some(d.weight),
            _ => None,
        }),
        _ => None,
    })
}

#[test]
fn overload_spills_to_a_light_peer_and_stops_at_1_0() {
    let mut site = serving();
    let (ok, _) = deliver(&mut site, &report(0.3, 1, at(3)), &key(), at(3));
    assert_eq!(ok, Ok(()));
    // 2 x 115 active over 2 x 100 capacity = 1.15 > 1.1.
    let e = sample(&mut site, at(4), &stats(115, 0));
    assert!(peer_weight(&e).is_some_and(|w| w > 0), "{e:?}");
    let st = site.status(at(4), &[]);
    assert!(st.spill[0].share > 0.0);
    assert!(
        st.spill[0]
            .reason
            .starts_with("local 1.15 > 1.10 and idc2 0.30 < 0.70"),
        "{}",
        st.spill[0].reason
    );
    let why = site.why("web").unwrap();
    assert!(why.spill[0].starts_with("spilling "), "{why:?}");
    // Demand falls to 0.9 (director load, spilled included): spilling stops.
    let e = sample(&mut site, at(6), &stats(80, 10));
    assert_eq!(peer_weight(&e), Some(0), "{e:?}");
}

#[test]
fn forged_replayed_and_garbage_reports_change_nothing() {
    let mut site = serving();
    assert_eq!(
        deliver(&mut site, &report(0.3, 10, at(3)), &key(), at(3)).0,
        Ok(())
    );
    let before = site.status(at(3), &[]).peers;
    let (forged, e) = deliver(
        &mut site,
        &report(0.1, 11, at(3)),
        b"not-the-key-0123456789",
        at(3),
    );
    let rej = forged.unwrap_err();
    assert!(rej.to_string().starts_with("forged"), "{rej}");
    assert_eq!(rej.http_status(), 401);
    assert!(e.is_empty());
    let (replayed, _) = deliver(&mut site, &report(0.1, 10, at(3)), &key(), at(3));
    assert!(replayed.is_err());
    let garbage = site.on_report(at(3), Some("idc2"), Some("sha256=00"), b"\xff\x00garbage");
    assert!(garbage.is_err());
    assert_eq!(site.status(at(3), &[]).peers, {
        let mut b = before;
        b[0].rejected_reports = 3;
        b
    });
    let rejected: u64 = site.counters().rejected_reports.values().sum();
    assert_eq!(rejected, 3);
}

#[test]
fn a_stale_peer_is_no_longer_a_target() {
    let mut site = serving();
    assert_eq!(
        deliver(&mut site, &report(0.3, 1, at(3)), &key(), at(3)).0,
        Ok(())
    );
    let e = sample(&mut site, at(4), &stats(115, 0));
    assert!(peer_weight(&e).is_some_and(|w| w > 0));
    // Interval 2 s, stale after 3 periods: by 3 + 6 + 1 s the peer is unknown.
    let e = tick(&mut site, at(10));
    assert_eq!(peer_weight(&e), Some(0), "{e:?}");
    assert_eq!(site.status(at(10), &[]).peers[0].state, PeerState::Stale);
}

#[test]
fn a_report_is_sent_at_start() {
    let (_, e) = Site::new(config(), T0).unwrap();
    assert!(
        e.iter().any(|e| matches!(e, Effect::SendReports(_))),
        "first report at start: {e:?}"
    );
}

#[test]
fn reload_keeps_announcements_and_health() {
    let mut site = serving();
    let e = site.reload(config(), at(5)).unwrap();
    assert!(
        !e.iter().any(|e| matches!(
            e,
            Effect::Withdraw { .. } | Effect::WithdrawPrefix(_) | Effect::Announce { .. }
        )),
        "{e:?}"
    );
    assert!(
        e.iter().any(|e| matches!(e, Effect::Reconcile(_))),
        "resync after reload"
    );
    let st = site.status(at(5), &[]);
    assert_eq!(st.vips[0].state, VipState::Announced);
    assert!(st.real_servers.iter().all(|r| r.state == ServerState::Up));
    // And the load is the servers' at once, not the infinity of a site just built
    // (which made the spill rule start in the lab at every SIGHUP).
    assert!(site.load.served.is_finite(), "{:?}", site.load);
}

#[test]
fn reload_withdraws_a_prefix_that_is_gone() {
    let mut site = serving();
    let mut c = config();
    c.vips[0].prefix = "10.101.4.0/25".parse().unwrap();
    let e = site.reload(c, at(5)).unwrap();
    assert_eq!(
        e.first(),
        Some(&Effect::WithdrawPrefix("10.101.4.0/24".parse().unwrap())),
        "{e:?}"
    );
}

#[test]
fn without_a_data_plane_health_alone_decides() {
    let mut c = config();
    c.site.dataplane = false;
    c.peers.clear();
    c.directors = Default::default();
    let (mut site, first) = Site::new(c, T0).unwrap();
    assert!(
        !first.iter().any(|e| matches!(e, Effect::Reconcile(_))),
        "{first:?}"
    );
    probe(&mut site, RS1, T0, ProbeOutcome::Success);
    let e = probe(&mut site, RS1, at(1), ProbeOutcome::Success);
    assert_eq!(
        e,
        vec![Effect::Announce {
            vip: WEB,
            graceful_shutdown: false
        }]
    );
    let e = probe(&mut site, RS1, at(2), refused());
    assert_eq!(e, vec![Effect::Withdraw { vip: WEB }]);
}

#[test]
fn a_load_url_value_replaces_connection_counts_while_fresh() {
    let mut site = serving();
    let id = ServerId::new(RS1);
    // RS1 says it is full (1.0 x capacity 100); RS2 has no load source: 0 connections.
    site.on_external_load(at(3), &id, Some(1.0));
    sample(&mut site, at(3), &stats(0, 0));
    assert_eq!(site.status(at(3), &[]).local_load, Some(0.5));
    // Stale after three polls (1 s each, RealServer::load_poll): connections count again.
    sample(&mut site, at(10), &stats(0, 0));
    assert_eq!(site.status(at(10), &[]).local_load, Some(0.0));
}

#[test]
fn servers_coming_up_end_the_spill_at_once() {
    // Until its real servers pass their checks a site has infinite load and spills to
    // a light peer. When they come up it announces in the same step; the spill must end
    // in that step too, not at the next IPVS stats: in the lab kernel a restarted
    // director sent its first new connections through the tunnel in between.
    let (mut site, _) = Site::new(config(), T0).unwrap();
    reconciled(&mut site, T0, Ok(7));
    let (ok, e) = deliver(&mut site, &report(0.0, 1, T0), &key(), T0);
    assert_eq!(ok, Ok(()));
    assert!(peer_weight(&e).is_some_and(|w| w > 0), "{e:?}");
    let mut e = Vec::new();
    for t in [at(1), at(2)] {
        for rs in [RS1, RS2] {
            e.extend(probe(&mut site, rs, t, ProbeOutcome::Success));
        }
    }
    assert!(
        has(
            &e,
            &Effect::Announce {
                vip: WEB,
                graceful_shutdown: false
            }
        ),
        "{e:?}"
    );
    assert_eq!(peer_weight(&e), Some(0), "{e:?}");
    assert!(site.status(at(2), &[]).spill.iter().all(|s| s.share == 0.0));
}

#[test]
fn a_site_with_no_healthy_capacity_shows_it_sends_everything_to_peers() {
    let mut site = serving();
    assert_eq!(
        deliver(&mut site, &report(0.3, 1, at(3)), &key(), at(3)).0,
        Ok(())
    );
    probe(&mut site, RS1, at(4), refused());
    probe(&mut site, RS2, at(4), refused());
    sample(&mut site, at(6), &stats(0, 0));
    let st = site.status(at(6), &[]);
    assert_eq!(st.local_load, None);
    assert_eq!(st.spill[0].share, 1.0, "{:?}", st.spill);
    assert!(
        st.spill[0].reason.starts_with("no healthy capacity here"),
        "{}",
        st.spill[0].reason
    );
}

#[test]
fn the_withdraw_comes_alone_before_any_data_plane_work() {
    let mut site = serving();
    let ev = |s: &str| HealthEvent {
        server: ServerId::new(s),
        at: at(3),
        source: ProbeSource::FastPath,
        outcome: refused(),
    };
    assert_eq!(site.on_health(ev(RS1)), vec![]);
    // The input returns the withdraw and nothing else: no weights, no desired state.
    assert_eq!(site.on_health(ev(RS2)), vec![Effect::Withdraw { vip: WEB }]);
    // The data-plane work follows in the settle, as targeted weight updates.
    let e = site.settle(at(3));
    assert!(
        matches!(e.first(), Some(Effect::Apply(r)) if r.len() == 4),
        "{e:?}"
    );
}

#[test]
fn nothing_changes_nothing_is_due_but_the_next_report() {
    let mut site = serving();
    assert_eq!(site.settle(at(2)), vec![]);
    let next = site
        .next_deadline(at(2))
        .expect("a report is always due some time");
    // No 200 ms tick: the next wakeup is the report schedule (interval 2 s, jittered).
    assert!(next > at(2).plus(Duration::from_millis(500)), "{next:?}");
    // Waking up for it sends a report and moves the deadline on.
    let e = tick(&mut site, next);
    assert!(
        e.iter().any(|e| matches!(e, Effect::SendReports(_))),
        "{e:?}"
    );
    assert!(site.next_deadline(next).is_some_and(|t| t > next));
}

#[test]
fn the_end_of_a_drain_and_of_a_hold_down_are_deadlines() {
    let mut site = serving();
    site.drain(at(3), Some("web")).unwrap();
    let end = at(3).plus(site.config().site.shutdown_wait);
    assert!(site.next_deadline(at(3)).is_some_and(|t| t <= end));
    let e = tick(&mut site, end);
    assert!(has(&e, &Effect::Withdraw { vip: WEB }), "{e:?}");
    site.undrain(end, None).unwrap();

    // Both servers die, then come back: the announce waits for the hold-down, and the
    // core says when that ends.
    probe(&mut site, RS1, at(20), refused());
    probe(&mut site, RS2, at(20), refused());
    for t in [at(21), at(22)] {
        for rs in [RS1, RS2] {
            let e = probe(&mut site, rs, t, ProbeOutcome::Success);
            assert!(
                !e.iter().any(|e| matches!(e, Effect::Announce { .. })),
                "{e:?}"
            );
        }
    }
    let hold = site.vips[0].hold_timer.expect("hold-down armed");
    assert!(site.next_deadline(at(22)).is_some_and(|t| t <= hold));
    assert!(!has(
        &tick(&mut site, at(23)),
        &Effect::Announce {
            vip: WEB,
            graceful_shutdown: false
        }
    ));
    let e = tick(&mut site, hold);
    assert!(
        has(
            &e,
            &Effect::Announce {
                vip: WEB,
                graceful_shutdown: false
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_spill_step_is_a_weight_update_not_a_reconcile() {
    let mut site = serving();
    deliver(&mut site, &report(0.3, 1, at(3)), &key(), at(3))
        .0
        .unwrap();
    let e = sample(&mut site, at(4), &stats(115, 0));
    assert!(
        !e.iter().any(|e| matches!(e, Effect::Reconcile(_))),
        "{e:?}"
    );
    let Some(Effect::Apply(r)) = e.iter().find(|e| matches!(e, Effect::Apply(_))) else {
        panic!("no update in {e:?}");
    };
    // The peer's weight alone: local weights do not move with the share, and the loop
    // guard serves what peers spill here at configured weights.
    assert!(
        matches!(r.as_slice(), [tf::Request::SetDest(_, d)] if d.forward == tf::Forward::Tunnel && d.weight > 0),
        "{r:?}"
    );
    // The same sample again moves nothing.
    let e = sample(&mut site, at(4), &stats(115, 0));
    assert!(!e.iter().any(|e| matches!(e, Effect::Apply(_))), "{e:?}");
}

#[test]
fn a_key_rotation_by_reload_has_no_gap_and_keeps_the_replay_window() {
    const NEW: &[u8] = b"the-new-key-of-idc1-and-idc2";
    let mut site = serving();
    assert_eq!(
        deliver(&mut site, &report(0.3, 1, at(3)), &key(), at(3)).0,
        Ok(())
    );
    // Step 1 on the receiver: the new key is accepted next to the old one.
    let mut c = config();
    c.peers[0].next_key = Some(NEW.to_vec());
    site.reload(c.clone(), at(4)).unwrap();
    assert_eq!(
        deliver(&mut site, &report(0.3, 2, at(4)), NEW, at(4)).0,
        Ok(())
    );
    assert_eq!(
        deliver(&mut site, &report(0.3, 3, at(4)), &key(), at(4)).0,
        Ok(())
    );
    // The reload did not reopen the replay window.
    let replay = deliver(&mut site, &report(0.3, 1, at(3)), &key(), at(4)).0;
    assert!(matches!(replay, Err(Reject::Replayed { .. })), "{replay:?}");
    // Step 3: the new key alone; the old one is now a forgery.
    c.peers[0].key = NEW.to_vec();
    c.peers[0].next_key = None;
    site.reload(c, at(5)).unwrap();
    let old = deliver(&mut site, &report(0.3, 4, at(5)), &key(), at(5)).0;
    assert_eq!(old.unwrap_err().http_status(), 401);
    assert_eq!(
        deliver(&mut site, &report(0.3, 5, at(5)), NEW, at(5)).0,
        Ok(())
    );
    assert_eq!(site.status(at(5), &[]).peers[0].state, PeerState::Known);
}

fn server(
    site: &mut Site,
    t: Time,
    addr: &str,
    enable: bool,
    force: bool,
) -> Result<Vec<Effect>, super::ServerError> {
    let (_, e) = site.set_server(t, "web", addr, enable, force, "uid 0 pid 1")?;
    Ok(then_settle(site, t, e))
}

#[test]
fn the_operator_drains_one_server_and_brings_it_back() {
    let mut site = serving();
    let e = server(&mut site, at(3), "10.101.5.11:80", false, false).unwrap();
    // Weight 0 in the VIP's service and in the loop guard; the VIP stays announced.
    let Some(Effect::Apply(r)) = e.iter().find(|e| matches!(e, Effect::Apply(_))) else {
        panic!("no weight update in {e:?}");
    };
    assert!(
        r.iter().any(|r| matches!(r, tf::Request::SetDest(_, d) if d.addr.to_string() == "10.101.5.11" && d.weight == 0)),
        "{r:?}"
    );
    assert!(
        !e.iter().any(|e| matches!(e, Effect::Withdraw { .. })),
        "{e:?}"
    );
    let st = site.status(at(3), &[]);
    let rs = &st.real_servers[0];
    assert_eq!(rs.state, ServerState::Disabled);
    assert_eq!(rs.disabled_by.as_deref(), Some("uid 0 pid 1"));
    assert_eq!(rs.weight, 0);
    assert_eq!(st.vips[0].servers_up, 1);
    // Its checks go on and change nothing while it is out.
    assert!(probe(&mut site, RS1, at(4), ProbeOutcome::Success).is_empty());
    assert_eq!(site.disabled_servers().len(), 1);
    // Back: the checks pass, so it is up at once with its weight.
    server(&mut site, at(5), "10.101.5.11", true, false).unwrap();
    let st = site.status(at(5), &[]);
    assert_eq!(st.real_servers[0].state, ServerState::Up);
    assert!(st.real_servers[0].weight > 0);
    assert_eq!(st.real_servers[0].disabled_by, None);
    assert!(site.disabled_servers().is_empty());
}

#[test]
fn disabling_the_last_server_needs_force_and_then_withdraws() {
    let mut site = serving();
    server(&mut site, at(3), "10.101.5.11:80", false, false).unwrap();
    let refused = server(&mut site, at(3), "10.101.5.12:80", false, false).unwrap_err();
    assert!(refused.to_string().contains("add --force"), "{refused}");
    assert_eq!(
        site.status(at(3), &[]).real_servers[1].state,
        ServerState::Up
    );
    let e = server(&mut site, at(3), "10.101.5.12:80", false, true).unwrap();
    assert_eq!(e.first(), Some(&Effect::Withdraw { vip: WEB }), "{e:?}");
}

#[test]
fn an_unknown_server_is_named_with_the_ones_there_are() {
    let mut site = serving();
    let e = server(&mut site, at(3), "10.101.5.99", false, false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "VIP `web` has no real server 10.101.5.99 (its real servers: 10.101.5.11:80, 10.101.5.12:80)"
    );
    assert!(matches!(
        server(&mut site, at(3), "not-an-address", false, false),
        Err(super::ServerError::BadAddress(_))
    ));
    assert!(matches!(
        site.set_server(at(3), "mail", "10.101.5.11", false, false, "x"),
        Err(super::ServerError::UnknownVip(_))
    ));
}

#[test]
fn a_disabled_server_stays_out_across_a_reload_and_a_restart() {
    let mut site = serving();
    server(&mut site, at(3), "10.101.5.11:80", false, false).unwrap();
    site.reload(config(), at(4)).unwrap();
    assert_eq!(
        site.status(at(4), &[]).real_servers[0].state,
        ServerState::Disabled
    );
    // A restart: a new core gets the saved list back.
    let saved = site.disabled_servers();
    let mut next = serving();
    next.restore_disabled(at(5), &saved);
    let st = next.status(at(5), &[]);
    assert_eq!(st.real_servers[0].state, ServerState::Disabled);
    assert_eq!(
        st.real_servers[0].disabled_by.as_deref(),
        Some("uid 0 pid 1")
    );
}

/// The split's requests in `e`'s data-plane update.
pub(super) fn split_update(e: &[Effect]) -> &[tf::Request] {
    match e.iter().find(|e| matches!(e, Effect::Apply(_))) {
        Some(Effect::Apply(r)) => r,
        _ => panic!("no update in {e:?}"),
    }
}

fn split_site() -> Site {
    let mut c = config();
    c.site.client_devices = vec!["eth0".into()];
    let (mut site, first) = Site::new(c, T0).unwrap();
    let Some(Effect::Reconcile(d)) = first.first() else {
        panic!("{first:?}");
    };
    let split = d.split.as_ref().expect("split in the desired state");
    assert_eq!((split.share, split.peers[0].weight), (0, 0));
    reconciled(&mut site, T0, Ok(7));
    for rs in [RS1, RS2] {
        probe(&mut site, rs, T0, ProbeOutcome::Success);
        probe(&mut site, rs, at(2), ProbeOutcome::Success);
    }
    site
}

#[test]
fn under_the_split_a_spill_step_touches_no_service() {
    let mut site = split_site();
    deliver(&mut site, &report(0.3, 1, at(3)), &key(), at(3))
        .0
        .unwrap();
    let e = sample(&mut site, at(4), &stats(115, 0));
    let r = split_update(&e);
    let mark = crate::layout::SPLIT_MARK;
    // The peer's weight in the split service, then the share chain rewritten; the
    // VIP service's own peer destination stays at 0.
    assert!(
        matches!(&r[0], tf::Request::SetDest(tf::ServiceKey::Fwmark { mark: m, .. }, d) if *m == mark && d.weight == 1000),
        "{r:?}"
    );
    assert!(matches!(&r[1], tf::Request::FlushChain { .. }), "{r:?}");
    assert!(
        r[2..]
            .iter()
            .all(|x| matches!(x, tf::Request::NewShareFilter { mark: m, .. } if *m == mark)),
        "{r:?}"
    );
    assert!(!r.is_empty() && r.len() <= 12, "{r:?}");
    assert!(
        !r.iter()
            .any(|x| matches!(x, tf::Request::SetDest(tf::ServiceKey::Addr { .. }, _))),
        "{r:?}"
    );
    // Connections through the split service count as tunnelled.
    let mut st = stats(100, 0);
    st.push(tf::ServiceStats {
        key: tf::ServiceKey::Fwmark { mark, ipv6: false },
        counters: tf::Counters::default(),
        dests: vec![tf::DestStats {
            addr: "10.101.2.2".parse().unwrap(),
            port: 0,
            forward: Some(tf::Forward::Tunnel),
            weight: 1000,
            active: 30,
            inactive: 0,
            persistent: 0,
            counters: tf::Counters::default(),
        }],
    });
    sample(&mut site, at(5), &st);
    assert_eq!(site.tunnels[0].active_conns, 30);
}

#[test]
fn under_the_split_a_service_with_no_capacity_uses_its_own_peer_destination() {
    let mut site = split_site();
    deliver(&mut site, &report(0.3, 1, at(3)), &key(), at(3))
        .0
        .unwrap();
    // Both local servers die: the VIP withdraws, and the service places what it still
    // gets (connections in flight, a router slow to converge) at the peer.
    probe(&mut site, RS1, at(4), refused());
    probe(&mut site, RS2, at(4), refused());
    let e = sample(&mut site, at(6), &stats(0, 0));
    let peer: std::net::IpAddr = "10.101.2.2".parse().unwrap();
    let r = split_update(&e);
    assert!(
        r.iter().any(|x| matches!(x, tf::Request::SetDest(tf::ServiceKey::Addr { .. }, d) if d.addr == peer && d.weight > 0)),
        "{r:?}"
    );
}

#[test]
fn the_services_that_place_their_own_share_follow_health_and_reload() {
    let mut site = split_site();
    let svc = site.servers[site.index[&ServerId::new(RS1)]].at.svc;
    let from_scratch = |site: &Site| {
        (0..site.plans.len() as u32)
            .map(crate::layout::SvcId)
            .filter(|&s| !site.split_carries(s))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert!(!site.own_share.contains(&svc));
    assert_eq!(site.own_share, from_scratch(&site));
    // No capacity up: the service places its share itself.
    for t in [3, 4] {
        probe(&mut site, RS1, at(t), refused());
        probe(&mut site, RS2, at(t), refused());
    }
    assert!(site.own_share.contains(&svc));
    // A reload carries the health over, and the set with it.
    site.reload(split_site().cfg, at(5)).unwrap();
    assert!(site.own_share.contains(&svc));
    assert_eq!(site.own_share, from_scratch(&site));
    // One server back: the split carries it again.
    probe(&mut site, RS1, at(6), ProbeOutcome::Success);
    probe(&mut site, RS1, at(7), ProbeOutcome::Success);
    assert!(!site.own_share.contains(&svc));
    assert_eq!(site.own_share, from_scratch(&site));
}
