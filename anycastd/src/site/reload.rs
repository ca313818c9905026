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
        let mut next = Site::build(cfg, now)?;
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
                    next.vips[ni].drain_timer = self.vips[oi].drain_timer;
                    next.vips[ni].verdict = self.vips[oi].verdict.clone();
                    next.vips[ni].held = self.vips[oi].held;
                    if new.min_up == old.min_up && new.hold_down == old.hold_down {
                        next.vips[ni].health = self.vips[oi].health.clone();
                        next.vips[ni].hold_timer = self.vips[oi].hold_timer;
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
                n.disabled = s.disabled.clone();
                n.failed = s.failed;
                if n.health.is_up() {
                    next.vips[n.at.vip.index()].up += 1;
                }
            }
        }
        next.track_all_shares();
        for vip in next.layout.vips() {
            let v = &next.vips[vip.index()];
            for t in [v.hold_timer, v.drain_timer].into_iter().flatten() {
                next.arm_vip_timer(t);
            }
        }
        // Keys may change (a rotation): the new table has them, and keeps what the old
        // one learned, the replay window included.
        let same_sites = |a: &crate::config::SiteConfig, b: &crate::config::SiteConfig| {
            a.peers.len() == b.peers.len()
                && a.peers.iter().zip(&b.peers).all(|(x, y)| {
                    (&x.name, x.tunnel_endpoint, &x.urls) == (&y.name, y.tunnel_endpoint, &y.urls)
                })
        };
        let same_peers = same_sites(&next.cfg, &self.cfg);
        next.peers.carry_over(&self.peers);
        if same_peers
            && next.cfg.exchange == self.cfg.exchange
            && next.cfg.directors == self.cfg.directors
        {
            // The schedule carries on under the new config's identity: its digest moves
            // with the VIPs, services and thresholds (the old one would have the other
            // directors leave this one out of the site load for good).
            next.scheduler = self
                .scheduler
                .clone()
                .with_identity(next.cfg.site.director.clone(), next.digest.clone());
        }
        if same_peers && next.cfg.spill == self.cfg.spill && next.cfg.exchange == self.cfg.exchange
        {
            next.spill = self.spill.clone();
            next.decision = self.decision.clone();
            next.tunnels = self.tunnels.clone();
        }
        next.dataplane = self.dataplane.clone();
        next.retry_at = self.retry_at;
        next.counters = self.counters.clone();
        next.notes = std::mem::take(&mut self.notes);
        next.started = self.started;
        *self = next;
        // Servers kept their verdicts: each VIP's servability follows from them now,
        // and the new data plane is sent whole.
        for vip in self.layout.vips() {
            effects.extend(self.servability(now, vip));
        }
        self.dirty.full = true;
        // The guard's policy or peers may have changed.
        self.dirty.guard = true;
        // The load too: `build` left it infinite (no server checked yet), and the
        // spill rule must not see that (it started spilling everything for the half
        // second until the next stats sample).
        self.dirty.load = true;
        effects = order(effects);
        effects.extend(self.settle(now));
        Ok(effects)
    }
}
