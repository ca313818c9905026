//! The site's state changes as notification events: recorded by the core where it
//! makes each change, taken by the driver after the urgent effects are written.

use geo_balancer::Time;
use std::collections::BTreeSet;

use geo_balancer::health::{HealthState, Transition};
use geo_balancer::spill::SpillEvent;

use super::Site;
use crate::layout::VipId;
use crate::notify::{Event, Kind};

/// Events kept between two takes at most: the driver takes them after every input,
/// so only a driver that never takes them reaches this.
const MAX_PENDING: usize = 4096;

/// What the core keeps for notifications (carried over by a reload).
#[derive(Debug, Clone, Default)]
pub(super) struct Notes {
    /// Recorded, not yet taken by the driver.
    events: Vec<Event>,
    /// Peers whose reports were fresh at the last look.
    known_peers: BTreeSet<String>,
    /// Servers told down and not told up since: each `server_down` gets its
    /// `server_up`, whether the server failed or the operator took it out.
    down: BTreeSet<String>,
}

impl Site {
    /// The events recorded since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.notes.events)
    }

    fn record(&mut self, ev: Event) {
        self.record_at(self.notes.events.len(), ev);
    }

    /// Records `ev` at position `at`: a cause before the effects it had.
    fn record_at(&mut self, at: usize, ev: Event) {
        let events = &mut self.notes.events;
        if events.len() < MAX_PENDING {
            events.insert(at.min(events.len()), ev);
        }
    }

    /// Where the next event goes (see `Site::note_server`).
    pub(super) fn events_mark(&self) -> usize {
        self.notes.events.len()
    }

    /// A real server's health transition: out of service after being up (failed or
    /// disabled), or up again after that (not the first verdict of a server just
    /// configured: every server starts down until checked). Recorded at `mark` (taken
    /// before its VIP's effects were computed), so that a server's event comes before
    /// the VIP change it caused.
    pub(super) fn note_server(&mut self, mark: usize, t: &Transition) {
        let server = t.server.to_string();
        let kind = match (t.from, t.to) {
            (HealthState::Up, HealthState::Down | HealthState::Disabled) => {
                self.notes.down.insert(server.clone());
                Kind::ServerDown
            }
            (_, HealthState::Up) if self.notes.down.remove(&server) => Kind::ServerUp,
            _ => return,
        };
        let mut ev = Event::new(kind, format!("server {server}"), t.reason.clone(), t.at);
        ev.vip = server.split('/').next().map(str::to_string);
        ev.server = Some(server);
        self.record_at(mark, ev);
    }

    /// The VIP's announcer made a BGP change: announced, announced for draining, or
    /// withdrawn.
    pub(super) fn note_vip(&mut self, now: Time, vip: VipId, kind: Kind) {
        let name = self.cfg.vips[vip.index()].name.clone();
        let reason = self.vips[vip.index()].announcer.reason();
        let mut ev = Event::new(kind, format!("vip {name}"), reason, now);
        ev.vip = Some(name);
        self.record(ev);
    }

    /// Spill to a peer started or stopped.
    pub(super) fn note_spill(&mut self, now: Time, events: &[SpillEvent]) {
        for e in events {
            let (kind, site, rule) = match e {
                SpillEvent::Started { site, rule } => (Kind::SpillStarted, site, rule),
                SpillEvent::Stopped { site, rule } => (Kind::SpillStopped, site, rule),
            };
            let mut ev = Event::new(kind, format!("spill {site}"), rule.to_string(), now);
            ev.peer = Some(site.to_string());
            self.record(ev);
        }
    }

    /// Peers whose reports turned fresh (back) or stale (lost) since the last look.
    pub(super) fn note_peers(&mut self, now: Time) {
        let stale_after = self.peers.config().stale_after();
        for p in self.peers.status(now) {
            let name = p.site.to_string();
            let was = self.notes.known_peers.contains(&name);
            if p.known == was {
                continue;
            }
            let (kind, reason) = if p.known {
                self.notes.known_peers.insert(name.clone());
                (Kind::PeerBack, "a valid load report arrived".to_string())
            } else {
                self.notes.known_peers.remove(&name);
                (
                    Kind::PeerLost,
                    format!(
                        "no valid load report for {}s: never a spill target until one arrives",
                        stale_after.as_secs()
                    ),
                )
            };
            let mut ev = Event::new(kind, format!("peer {name}"), reason, now);
            ev.peer = Some(name);
            self.record(ev);
        }
    }
}
