//! The site's state changes as notification events: recorded by the core where it
//! makes each change, taken by the driver after the urgent effects are written.

use geo_balancer::Time;
use geo_balancer::health::{HealthState, Transition};
use geo_balancer::spill::SpillEvent;

use super::Site;
use crate::layout::VipId;
use crate::notify::{Event, Kind};

/// Events kept between two takes at most: the driver takes them after every input,
/// so only a driver that never takes them reaches this.
const MAX_PENDING: usize = 4096;

impl Site {
    /// The events recorded since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn record(&mut self, ev: Event) {
        self.record_at(self.events.len(), ev);
    }

    /// Records `ev` at position `at`: a cause before the effects it had.
    fn record_at(&mut self, at: usize, ev: Event) {
        if self.events.len() < MAX_PENDING {
            self.events.insert(at.min(self.events.len()), ev);
        }
    }

    /// Where the next event goes (see `Site::note_server`).
    pub(super) fn events_mark(&self) -> usize {
        self.events.len()
    }

    /// A real server's health transition: out of service after being up (failed or
    /// disabled), or back (not the first verdict of a server just configured: every
    /// server starts down until checked). `was_failed`: it had failed after being up.
    /// Recorded at `mark` (taken before its VIP's effects were computed), so that a
    /// server's event comes before the VIP change it caused.
    pub(super) fn note_server(&mut self, mark: usize, t: &Transition, was_failed: bool) {
        let kind = match (t.from, t.to) {
            (HealthState::Up, HealthState::Down | HealthState::Disabled) => Kind::ServerDown,
            (HealthState::Down, HealthState::Up) if was_failed => Kind::ServerUp,
            (HealthState::Disabled, HealthState::Up) => Kind::ServerUp,
            _ => return,
        };
        let server = t.server.to_string();
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
            let was = self.known_peers.contains(&name);
            if p.known == was {
                continue;
            }
            let (kind, reason) = if p.known {
                self.known_peers.insert(name.clone());
                (Kind::PeerBack, "a valid load report arrived".to_string())
            } else {
                self.known_peers.remove(&name);
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
