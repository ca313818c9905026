//! The spill decision: the seed's rule, exactly, with a bounded ramp and an explanation.
//!
//! Seed (LVS paper, section 4.3): "当本地集群系统的综合负载大于1.1和远处集群系统的负载小于0.7时
//! ... 将新的请求转发到远处的集群系统。若远处集群系统的负载超过0.7时,停止转发请求。当本地
//! 集群系统的负载降至1.0时,也停止转发请求". As rules over one peer `P`:
//!
//! ```text
//!                 local > start_local (1.1) and P known and P < start_remote (0.7)
//!                 and P does not report spilling to us
//!   +-----------+ ----------------------------------------------------------> +----------+
//!   | idle to P |                                                            | spill to |
//!   +-----------+ <---------------------------------------------------------- |    P     |
//!                 P > stop_remote (0.7)  or  P unknown  or  P spills to us  +----------+
//!                 or local <= stop_local (1.0)  (stops every peer)
//! ```
//!
//! Between 1.0 and 1.1 nothing starts and nothing stops: that gap, and the one between
//! "< 0.7 to start" and "> 0.7 to stop", is the seed's hysteresis.
//!
//! The amount: the total share of new connections moves toward
//! `1 - target_local / local` (what brings the local real servers back to
//! `target_local`, 0.95, just under full), capped by `max_share` and by the room the
//! chosen peers have below `start_remote`; it moves by at most
//! `max_step` per `step_period`. A stop rule zeroes that peer's share at once (the seed
//! says stop). The least loaded peer is preferred; more are added, least loaded first,
//! only when the ones chosen have too little room, and the share is spread across them
//! by inverse load so every site does not herd onto the one that reported the lowest.
//!
//! `local` is the *director* load (connections kept plus connections spilled, over local
//! healthy capacity: see [`crate::load`]), so spilling does not make the input drop below
//! 1.0 and fire the stop rule: the loop this would cause is the oscillation the step
//! bound alone cannot prevent.

mod config;
mod decision;
mod rule;
mod share;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ids::SiteId;
use crate::time::Time;

pub use config::SpillConfig;
pub use decision::{
    DecisionInput, LocalView, PeerFacts, PeerVerdict, PeerView, SpillDecision, SpillEvent,
    SpillTarget,
};
pub use rule::Rule;
use share::{room, sanitize, spread};

#[derive(Debug, Clone)]
struct Active {
    since: Time,
    share: f64,
    started_by: Rule,
}

/// The spill state machine of one site. Call [`SpillEngine::decide`] whenever the local
/// load or a peer's report changes, and at least once per exchange period.
#[derive(Debug, Clone)]
pub struct SpillEngine {
    cfg: SpillConfig,
    active: BTreeMap<SiteId, Active>,
    last: Option<Time>,
}

impl SpillEngine {
    /// A new engine, spilling nowhere. Validate the config first.
    pub fn new(cfg: SpillConfig) -> SpillEngine {
        SpillEngine {
            cfg,
            active: BTreeMap::new(),
            last: None,
        }
    }

    /// The thresholds in force.
    pub fn config(&self) -> &SpillConfig {
        &self.cfg
    }

    /// Sites spilled to right now.
    pub fn spilling_to(&self) -> Vec<SiteId> {
        self.active.keys().cloned().collect()
    }

    /// Total share of new connections spilled right now.
    pub fn total_share(&self) -> f64 {
        self.active.values().map(|a| a.share).sum()
    }

    /// Applies the rule to the current inputs and returns the decision with its reasons.
    pub fn decide(&mut self, now: Time, local: LocalView, peers: &[PeerView]) -> SpillDecision {
        let cfg = self.cfg.clone();
        // NaN never comes from crate::load; treat it as "no reason to spill".
        let local_load = if local.load.is_nan() { 0.0 } else { local.load };
        let elapsed = match self.last {
            Some(t) => now.since(t),
            None => cfg.step_period,
        };
        self.last = Some(now);
        let step = cfg.max_step * (elapsed.as_secs_f64() / cfg.step_period.as_secs_f64()).min(1.0);

        let mut events = Vec::new();
        let mut verdict_rule: BTreeMap<SiteId, Rule> = BTreeMap::new();
        // Peers that may carry share in this decision: (site, load, room, report age).
        let mut kept: Vec<(SiteId, f64, f64, Duration)> = Vec::new();
        let mut candidates: Vec<(SiteId, f64, f64, Duration)> = Vec::new();

        let local_stop = local_load <= cfg.stop_local;
        let by_site: BTreeMap<&SiteId, &PeerView> = peers.iter().map(|p| (&p.site, p)).collect();

        // Active peers missing from the input are unknown.
        let gone: Vec<SiteId> = self
            .active
            .keys()
            .filter(|s| !by_site.contains_key(s))
            .cloned()
            .collect();
        for s in gone {
            self.active.remove(&s);
            events.push(SpillEvent::Stopped {
                site: s,
                rule: Rule::PeerUnknown,
            });
        }

        for (site, view) in &by_site {
            let site = (*site).clone();
            let is_active = self.active.contains_key(&site);
            let rule = Rule::judge(&cfg, local_load, is_active, view.facts.as_ref());
            if let Some(f) = &view.facts {
                let peer = sanitize(f.load);
                let r = room(&cfg, local, local_load, f);
                match rule {
                    Rule::Continue { .. } => {
                        // Its current share is already placed: room only limits growth.
                        let have = self.active.get(&site).map_or(0.0, |a| a.share);
                        kept.push((site.clone(), peer, r.max(have), f.age));
                    }
                    Rule::Start { .. } => candidates.push((site.clone(), peer, r, f.age)),
                    _ => {}
                }
            }
            let continuing = matches!(rule, Rule::Continue { .. } | Rule::Start { .. });
            if is_active && !continuing {
                self.active.remove(&site);
                events.push(SpillEvent::Stopped {
                    site: site.clone(),
                    rule: rule.clone(),
                });
            }
            verdict_rule.insert(site, rule);
        }

        // What the rule aims at: bring the local real servers back to target_local.
        let target = if local_stop || (kept.is_empty() && candidates.is_empty()) {
            0.0
        } else if local_load.is_finite() {
            (1.0 - cfg.target_local / local_load).clamp(0.0, cfg.max_share)
        } else {
            cfg.max_share
        };

        // Kept peers stay; new candidates join least loaded first while room is short.
        candidates.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let mut chosen = kept;
        for c in candidates {
            let room_sum: f64 = chosen.iter().map(|c| c.2).sum();
            if !chosen.is_empty() && room_sum >= target {
                verdict_rule.insert(c.0.clone(), Rule::NotNeeded { peer: c.1 });
                continue;
            }
            chosen.push(c);
        }
        let room_sum: f64 = chosen.iter().map(|c| c.2).sum();

        // Share already committed to the peers that stay; stops above removed theirs.
        // Growth is bounded by the step and by the peers' room; shrinking only by the step
        // (the peers' own stop rule is what ends spilling to a filling peer).
        let current: f64 = self.active.values().map(|a| a.share).sum();
        let mut total = if target > current {
            (current + step).min(target.min(room_sum).max(current))
        } else {
            (current - step).max(target)
        };
        if chosen.is_empty() {
            total = 0.0;
        }
        let shares = spread(total, &chosen);

        let mut targets = Vec::new();
        for ((site, _, _, age), share) in chosen.iter().zip(shares) {
            if share <= 0.0 {
                continue;
            }
            let rule = verdict_rule.get(site).cloned().unwrap_or(Rule::PeerUnknown);
            let entry = self.active.entry(site.clone()).or_insert_with(|| {
                events.push(SpillEvent::Started {
                    site: site.clone(),
                    rule: rule.clone(),
                });
                Active {
                    since: now,
                    share: 0.0,
                    started_by: rule.clone(),
                }
            });
            entry.share = share;
            targets.push(SpillTarget {
                site: site.clone(),
                share,
                since: entry.since,
                started_by: entry.started_by.clone(),
                now: rule,
                report_age: *age,
            });
        }
        targets.sort_by(|a, b| a.site.cmp(&b.site));
        // A chosen peer that ended with no share (total ramped to 0) is not spilled to.
        let with_share: Vec<SiteId> = targets.iter().map(|t| t.site.clone()).collect();
        let idle: Vec<SiteId> = self
            .active
            .keys()
            .filter(|s| !with_share.contains(s))
            .cloned()
            .collect();
        for s in idle {
            self.active.remove(&s);
            let rule = verdict_rule.get(&s).cloned().unwrap_or(Rule::PeerUnknown);
            events.push(SpillEvent::Stopped { site: s, rule });
        }

        let verdicts = verdict_rule
            .into_iter()
            .map(|(site, rule)| {
                let share = targets
                    .iter()
                    .find(|t| t.site == site)
                    .map_or(0.0, |t| t.share);
                PeerVerdict { site, share, rule }
            })
            .collect();
        for e in &events {
            match e {
                SpillEvent::Started { site, rule } => {
                    tracing::info!(peer = %site, local = local_load, %rule, "spill started")
                }
                SpillEvent::Stopped { site, rule } => {
                    tracing::info!(peer = %site, local = local_load, %rule, "spill stopped")
                }
            }
        }
        SpillDecision {
            at: now,
            local: LocalView {
                load: local_load,
                capacity: local.capacity,
            },
            config: cfg,
            // `+ 0.0` turns the empty sum (-0.0) into 0.0 for display and JSON.
            total_share: targets.iter().map(|t| t.share).sum::<f64>() + 0.0,
            target_share: target,
            targets,
            verdicts,
            events,
        }
    }
}

/// Replays a recorded timeline through a fresh engine: the same inputs give the same
/// decisions, so a production incident can be re-run on a laptop.
pub fn replay(cfg: SpillConfig, inputs: &[DecisionInput]) -> Vec<SpillDecision> {
    let mut engine = SpillEngine::new(cfg);
    inputs
        .iter()
        .map(|i| engine.decide(i.now, i.local, &i.peers))
        .collect()
}
