//! The last-announcer guard in the site core (`[site] all_down`, decision 0017): a VIP
//! whose own checks fail stays announced while every peer reports that it cannot serve
//! either ([`geo_balancer::all_down`] says when). No I/O, like the rest of the core.
//!
//! ```text
//!  VipHealth verdict ─┐
//!  peer reports/stale ┼─> all_down::holds ─> the announcer's input:
//!  data plane ok ─────┘     verdict ok: the verdict; held: "held: every peer withdrawn"
//! ```
//! Checked where its inputs change: a verdict (urgent, in `vip_outputs`), and a peer's
//! report or a peer no longer counted (in `settle`, whose announce or withdraw the driver
//! writes as it writes every other). Peers are judged per VIP: a peer that reports the
//! VIP in its `vips_down` cannot serve it even while its load says it serves others;
//! this site's own failing VIPs go into its reports the same way (sent at once). While
//! it holds, the VIP's failed real servers stay in IPVS at their weights (fail-open:
//! the checks may be what is broken); the site still reports load `null` (when no VIP
//! serves) and lists the VIP in `vips_down`, so peers keep seeing it as withdrawn.

use geo_balancer::Time;
use geo_balancer::all_down::{self, HELD};

use super::{Effect, Site, SvcId};
use crate::announce::Servable;
use crate::layout::VipId;

impl Site {
    /// Feeds `vip`'s announcer its verdict, or the guard's hold when the guard holds.
    pub(super) fn feed_announcer(&mut self, now: Time, vip: VipId) -> Vec<Effect> {
        let holds = self.guard_holds(now, vip);
        let v = &mut self.vips[vip.index()];
        let Some(verdict) = v.verdict.clone() else {
            return Vec::new();
        };
        let input = if holds {
            Servable {
                ok: true,
                reason: format!("{HELD} (own checks: {})", verdict.reason),
            }
        } else {
            verdict
        };
        if holds != v.held {
            v.held = holds;
            let name = &self.cfg.vips[vip.index()].name;
            if holds {
                tracing::warn!(vip = %name, reason = %input.reason, "every peer withdrawn: holding the VIP announced (all_down = announce)");
            } else {
                tracing::info!(vip = %name, "guard released: the VIP follows its own checks again");
            }
            // Fail-open data plane: the VIP's servers in or out of IPVS with the hold.
            let services = (0..self.plans.len() as u32)
                .map(SvcId)
                .filter(|s| self.layout.service(*s).vip == vip);
            self.dirty.services.extend(services);
        }
        let outs = self.vips[vip.index()].announcer.set_servable(now, input);
        self.announcer_outputs(now, vip, outs)
    }

    /// Whether the guard holds `vip` now: its own checks failed with the data plane in
    /// place, and every peer reports it cannot serve.
    fn guard_holds(&self, now: Time, vip: VipId) -> bool {
        let checks_fail = self.vips[vip.index()]
            .verdict
            .as_ref()
            .is_some_and(|v| !v.ok)
            && self.dataplane.ok;
        if !checks_fail || self.cfg.site.all_down == geo_balancer::AllDown::Withdraw {
            return false;
        }
        all_down::holds(
            self.cfg.site.all_down,
            checks_fail,
            self.peers.claims_for(now, &self.vips[vip.index()].text),
            self.peers.config().stale_after(),
            self.vips[vip.index()].held,
        )
    }

    /// While a VIP is held: when the next peer stops counting for the guard.
    pub(super) fn guard_deadline(&self, now: Time) -> Option<Time> {
        self.layout
            .vips()
            .filter(|vip| self.vips[vip.index()].held)
            .filter_map(|vip| {
                all_down::recheck_at(
                    now,
                    self.peers.claims_for(now, &self.vips[vip.index()].text),
                    self.peers.config().stale_after(),
                )
            })
            .min()
    }

    /// The VIPs whose own checks fail here (withdrawn, or held by the guard): the
    /// reports' `vips_down`, so that each peer's guard judges this site per VIP.
    pub(super) fn vips_down(&self) -> Vec<String> {
        self.layout
            .vips()
            .filter(|vip| {
                self.vips[vip.index()]
                    .verdict
                    .as_ref()
                    .is_some_and(|v| !v.ok)
            })
            .map(|vip| self.vips[vip.index()].text.clone())
            .collect()
    }

    /// The peers changed (a report, one turning stale): every VIP whose checks fail
    /// is held or let go accordingly.
    pub(super) fn recheck_guard(&mut self, now: Time) -> Vec<Effect> {
        let mut effects = Vec::new();
        for vip in self.layout.vips() {
            let v = &self.vips[vip.index()];
            if v.verdict.as_ref().is_some_and(|v| !v.ok) && self.guard_holds(now, vip) != v.held {
                effects.extend(self.feed_announcer(now, vip));
            }
        }
        effects
    }

    /// Whether the guard holds the VIP of service `svc` (its servers then stay in IPVS).
    pub(super) fn held(&self, svc: SvcId) -> bool {
        self.vips[self.layout.service(svc).vip.index()].held
    }
}
