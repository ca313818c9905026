//! The notification events the core records, over a virtual clock.

use geo_balancer::health::ProbeOutcome;

use super::tests::{RS1, RS2, at, deliver, key, probe, refused, report, serving, stats, tick};
use crate::notify::{Event, Kind};

fn kinds(events: &[Event]) -> Vec<(Kind, &str)> {
    events
        .iter()
        .map(|e| (e.kind, e.subject.as_str()))
        .collect()
}

#[test]
fn servers_going_down_and_back_and_the_vip_withdrawn_are_events() {
    let mut site = serving();
    // Servers start down until checked: their first verdict is no event.
    assert_eq!(
        kinds(&site.take_events()),
        [(Kind::VipAnnounced, "vip web")]
    );
    probe(&mut site, RS1, at(3), refused());
    probe(&mut site, RS2, at(3), refused());
    let ev = site.take_events();
    assert_eq!(
        kinds(&ev),
        [
            (Kind::ServerDown, "server web/tcp80/10.101.5.11:80"),
            (Kind::ServerDown, "server web/tcp80/10.101.5.12:80"),
            (Kind::VipWithdrawn, "vip web"),
        ]
    );
    assert_eq!(ev[0].vip.as_deref(), Some("web"));
    assert_eq!(ev[0].server.as_deref(), Some(RS1));
    assert_eq!(ev[2].at_ms, at(3).as_millis());
    assert_eq!(ev[2].reason, "0 real servers up, 1 needed");
    assert!(site.take_events().is_empty(), "taken once");
    for t in [4, 5] {
        probe(&mut site, RS1, at(t), ProbeOutcome::Success);
    }
    let ev = site.take_events();
    assert_eq!(
        kinds(&ev)[0],
        (Kind::ServerUp, "server web/tcp80/10.101.5.11:80")
    );
}

#[test]
fn drain_is_draining_then_withdrawn() {
    let mut site = serving();
    site.take_events();
    let (_, _) = site.drain(at(3), Some("web")).unwrap();
    let end = at(3).plus(site.config().site.shutdown_wait);
    tick(&mut site, end);
    assert_eq!(
        kinds(&site.take_events()),
        [
            (Kind::VipDraining, "vip web"),
            (Kind::VipWithdrawn, "vip web")
        ]
    );
}

#[test]
fn a_peer_back_spill_started_then_the_peer_lost_and_the_spill_stopped() {
    let mut site = serving();
    site.take_events();
    assert_eq!(
        deliver(&mut site, &report(0.3, 1, at(3)), &key(), at(3)).0,
        Ok(())
    );
    assert_eq!(kinds(&site.take_events()), [(Kind::PeerBack, "peer idc2")]);
    super::tests::sample(&mut site, at(4), &stats(115, 0));
    let ev = site.take_events();
    assert_eq!(kinds(&ev), [(Kind::SpillStarted, "spill idc2")]);
    assert_eq!(ev[0].peer.as_deref(), Some("idc2"));
    // Stale after 3 periods of 2 s.
    tick(&mut site, at(10));
    let ev = site.take_events();
    let mut got = kinds(&ev);
    got.sort();
    assert_eq!(
        got,
        [
            (Kind::PeerLost, "peer idc2"),
            (Kind::SpillStopped, "spill idc2")
        ]
    );
    assert_eq!(
        deliver(&mut site, &report(0.3, 2, at(11)), &key(), at(11)).0,
        Ok(())
    );
    assert!(kinds(&site.take_events()).contains(&(Kind::PeerBack, "peer idc2")));
}

#[test]
fn a_server_disabled_is_down_and_enabled_is_up_once_its_checks_pass() {
    let mut site = serving();
    site.take_events();
    site.set_server(at(3), "web", "10.101.5.11", false, false, "test")
        .unwrap();
    assert_eq!(
        kinds(&site.take_events()),
        [(Kind::ServerDown, "server web/tcp80/10.101.5.11:80")]
    );
    // Enabled while its checks have not passed again: down, then up on the checks.
    site.set_server(at(4), "web", "10.101.5.11", true, false, "test")
        .unwrap();
    let enabled = site.take_events();
    for t in [5, 6] {
        probe(&mut site, RS1, at(t), ProbeOutcome::Success);
    }
    let up: Vec<_> = enabled.into_iter().chain(site.take_events()).collect();
    assert_eq!(
        kinds(&up),
        [(Kind::ServerUp, "server web/tcp80/10.101.5.11:80")]
    );
}
