//! SIGHUP: a new, already validated config replaces the old one, keeping every piece
//! of state that still means the same thing (server health, VIP announcements and
//! drains, peer reports and the spill ramp) so a reload never flaps anything.

use geo_balancer::Time;

use super::{Effect, Site, SiteError, order};
use crate::status::VipState;

impl Site {
    /// Applies `cfg`. Effects: withdraws of prefixes no longer configured, then what the
    /// new state needs (a reconcile at least).
    pub fn reload(
        &mut self,
        cfg: crate::config::SiteConfig,
        now: Time,
    ) -> Result<Vec<Effect>, SiteError> {
        let (mut next, _) = Site::new(cfg, now)?;
        let mut effects = Vec::new();
        for (oi, old) in self.cfg.vips.iter().enumerate() {
            let announced = matches!(
                self.vips[oi].announcer.state(),
                VipState::Announced | VipState::Draining
            );
            let same = next
                .cfg
                .vips
                .iter()
                .position(|v| v.name == old.name && v.prefix == old.prefix);
            match same {
                Some(ni) => {
                    let new = &next.cfg.vips[ni];
                    next.vips[ni].announcer = self.vips[oi].announcer.clone();
                    if new.min_up == old.min_up && new.hold_down == old.hold_down {
                        next.vips[ni].health = self.vips[oi].health.clone();
                    }
                }
                None if announced => effects.push(Effect::WithdrawPrefix(old.prefix)),
                None => {}
            }
        }
        for s in &self.servers {
            if let Some(&i) = next.index.get(&s.id) {
                // Same id: same VIP, service and address; keep its verdict and counters.
                let n = &mut next.servers[i];
                n.health = s.health.clone();
                n.active = s.active;
                n.inactive = s.inactive;
                n.last_check = s.last_check.clone();
                n.external = s.external;
            }
        }
        let same_peers = next.cfg.peers == self.cfg.peers;
        if same_peers && next.cfg.exchange == self.cfg.exchange {
            next.peers = self.peers.clone();
            next.scheduler = self.scheduler.clone();
        }
        if same_peers && next.cfg.spill == self.cfg.spill && next.cfg.exchange == self.cfg.exchange
        {
            next.spill = self.spill.clone();
            next.decision = self.decision.clone();
            next.tunnels = self.tunnels.clone();
        }
        next.dataplane = self.dataplane.clone();
        next.counters = self.counters.clone();
        next.started = self.started;
        *self = next;
        effects.extend(self.refresh(now));
        Ok(order(effects))
    }
}
