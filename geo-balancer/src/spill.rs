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

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::errors::ConfigError;
use crate::ids::SiteId;
use crate::time::{Time, human};

/// Thresholds and ramp. Defaults are the seed's thresholds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpillConfig {
    /// Start spilling when local load is above this (seed: 1.1).
    pub start_local: f64,
    /// Stop all spilling when local load is at or below this (seed: 1.0).
    pub stop_local: f64,
    /// A peer can become a target while its load is below this (seed: 0.7).
    pub start_remote: f64,
    /// Spilling to a peer stops when its load rises above this (seed: 0.7).
    pub stop_remote: f64,
    /// Largest change of the total share in one `step_period` (0.10 = ten points).
    pub max_step: f64,
    /// The period `max_step` refers to.
    pub step_period: Duration,
    /// While spilling, aim the local real servers at this load (a little below full,
    /// so the lag of a decision period does not push them over). Between `start_remote`
    /// and `stop_local`.
    pub target_local: f64,
    /// Never spill more than this share of new connections.
    pub max_share: f64,
}

impl Default for SpillConfig {
    fn default() -> Self {
        SpillConfig {
            start_local: 1.1,
            stop_local: 1.0,
            start_remote: 0.7,
            stop_remote: 0.7,
            max_step: 0.1,
            step_period: Duration::from_secs(60),
            target_local: 0.95,
            max_share: 0.5,
        }
    }
}

impl SpillConfig {
    /// Checks the order of the thresholds and the ranges of the ramp.
    ///
    /// `start_remote < stop_local` is required: a site whose load is above `start_local`
    /// keeps at least `stop_local` at home, so it never looks like a target
    /// (< start_remote) to a peer. That is half of why two sites never spill to each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let finite = [
            self.start_local,
            self.stop_local,
            self.start_remote,
            self.stop_remote,
            self.target_local,
            self.max_step,
            self.max_share,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return Err(ConfigError::Spill(
                "thresholds must be finite numbers".into(),
            ));
        }
        if !(self.start_remote > 0.0
            && self.start_remote <= self.stop_remote
            && self.start_remote < self.stop_local
            && self.stop_local <= self.start_local)
        {
            return Err(ConfigError::Spill(format!(
                "need 0 < start_remote ({}) < stop_local ({}) <= start_local ({}), \
                 start_remote <= stop_remote ({})",
                self.start_remote, self.stop_local, self.start_local, self.stop_remote
            )));
        }
        if !(self.target_local > self.start_remote && self.target_local <= self.stop_local) {
            return Err(ConfigError::Spill(format!(
                "need start_remote ({}) < target_local ({}) <= stop_local ({})",
                self.start_remote, self.target_local, self.stop_local
            )));
        }
        if !(self.max_step > 0.0 && self.max_step <= 1.0) {
            return Err(ConfigError::Spill(format!(
                "max_step {} not in (0, 1]",
                self.max_step
            )));
        }
        if !(self.max_share > 0.0 && self.max_share <= 1.0) {
            return Err(ConfigError::Spill(format!(
                "max_share {} not in (0, 1]",
                self.max_share
            )));
        }
        if self.step_period.is_zero() {
            return Err(ConfigError::Spill("step_period must be > 0".into()));
        }
        Ok(())
    }
}

/// What the local site knows of itself for one decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LocalView {
    /// Director load: (active on local real servers + active on peer tunnels) / healthy
    /// capacity. `f64::INFINITY` when there is no healthy capacity.
    pub load: f64,
    /// Healthy capacity in connections (used to size the room of peers).
    pub capacity: u64,
}

/// What a peer's last valid report says, as the exchange hands it over.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerFacts {
    /// Its reported load (served load); `f64::INFINITY` when it cannot serve.
    pub load: f64,
    /// Its healthy capacity in connections (0 = not reported).
    pub capacity: u64,
    /// Whether it reports spilling to us.
    pub spilling_to_us: bool,
    /// Age of its last valid report.
    pub age: Duration,
    /// Sequence number of that report.
    pub seq: u64,
}

/// A peer as the decision sees it: known (with facts) or unknown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerView {
    /// The peer site.
    pub site: SiteId,
    /// `None`: no valid report for too long (or never). Unknown is never a target.
    pub facts: Option<PeerFacts>,
}

/// The rule that fired for one peer (or for all of them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// local > start_local and peer < start_remote: spilling to it starts.
    Start {
        /// Local load.
        local: f64,
        /// start_local.
        start: f64,
        /// The peer's load.
        peer: f64,
        /// start_remote.
        start_remote: f64,
    },
    /// Spilling continues: local > stop_local and peer <= stop_remote.
    Continue {
        /// Local load.
        local: f64,
        /// stop_local.
        stop: f64,
        /// The peer's load.
        peer: f64,
        /// stop_remote.
        stop_remote: f64,
    },
    /// local <= stop_local: all spilling stops (or none starts).
    LocalAtOrBelowStop {
        /// Local load.
        local: f64,
        /// stop_local.
        stop: f64,
    },
    /// The peer's load rose above stop_remote: spilling to it stops.
    PeerAboveStopRemote {
        /// The peer's load.
        peer: f64,
        /// stop_remote.
        stop_remote: f64,
    },
    /// No valid report from the peer for too long: never a target.
    PeerUnknown,
    /// The peer reports spilling to us: never a target.
    PeerSpillsToUs,
    /// Not started: local is not above start_local.
    LocalNotAboveStart {
        /// Local load.
        local: f64,
        /// start_local.
        start: f64,
    },
    /// Not started: the peer is not below start_remote.
    PeerNotBelowStartRemote {
        /// The peer's load.
        peer: f64,
        /// start_remote.
        start_remote: f64,
    },
    /// Eligible, but less loaded peers already have room for the whole share.
    NotNeeded {
        /// The peer's load.
        peer: f64,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Start {
                local,
                start,
                peer,
                start_remote,
            } => {
                write!(
                    f,
                    "local {} > {start:.2} and peer {} < {start_remote:.2}",
                    lt(*local, *start),
                    lt(*peer, *start_remote)
                )
            }
            Rule::Continue {
                local,
                stop,
                peer,
                stop_remote,
            } => {
                write!(
                    f,
                    "local {} > {stop:.2} and peer {} <= {stop_remote:.2}",
                    lt(*local, *stop),
                    lt(*peer, *stop_remote)
                )
            }
            Rule::LocalAtOrBelowStop { local, stop } => {
                write!(f, "local {} <= {stop:.2}", lt(*local, *stop))
            }
            Rule::PeerAboveStopRemote { peer, stop_remote } => {
                write!(f, "peer {} > {stop_remote:.2}", lt(*peer, *stop_remote))
            }
            Rule::PeerUnknown => f.write_str("peer unknown (no valid report for too long)"),
            Rule::PeerSpillsToUs => f.write_str("peer reports spilling to us"),
            Rule::LocalNotAboveStart { local, start } => {
                write!(f, "local {} <= {start:.2}", lt(*local, *start))
            }
            Rule::PeerNotBelowStartRemote { peer, start_remote } => {
                write!(f, "peer {} >= {start_remote:.2}", lt(*peer, *start_remote))
            }
            Rule::NotNeeded { peer } => {
                write!(
                    f,
                    "peer {} eligible but less loaded peers have room",
                    l(*peer)
                )
            }
        }
    }
}

/// Formats a load next to the threshold it is compared with: two decimals, more when
/// two would print it equal to the threshold ("1.1003 > 1.10", not "1.10 > 1.10").
fn lt(v: f64, threshold: f64) -> String {
    let short = l(v);
    if v.is_finite() && v != threshold && short == format!("{threshold:.2}") {
        format!("{v:.4}")
    } else {
        short
    }
}

/// Formats a load, `inf` for a site that cannot serve.
fn l(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "inf".into()
    }
}

/// One peer that receives part of the new connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpillTarget {
    /// The peer site.
    pub site: SiteId,
    /// Its share of all new connections arriving at this director (0..=1).
    pub share: f64,
    /// When spilling to it started.
    pub since: Time,
    /// The rule that started it, with the values of that moment.
    pub started_by: Rule,
    /// The rule that keeps it going now.
    pub now: Rule,
    /// Age of the peer's report this decision used.
    pub report_age: Duration,
}

/// The verdict on one peer in one decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerVerdict {
    /// The peer site.
    pub site: SiteId,
    /// Share given to it (0 when not a target).
    pub share: f64,
    /// The rule that decided.
    pub rule: Rule,
}

/// A change this decision made (for logs and the immediate report).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SpillEvent {
    /// Spilling to a peer started.
    Started {
        /// The peer.
        site: SiteId,
        /// Why.
        rule: Rule,
    },
    /// Spilling to a peer stopped.
    Stopped {
        /// The peer.
        site: SiteId,
        /// Why.
        rule: Rule,
    },
}

/// One decision with everything it was made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpillDecision {
    /// When.
    pub at: Time,
    /// The local view used.
    pub local: LocalView,
    /// The thresholds used.
    pub config: SpillConfig,
    /// Total share of new connections sent to peers (0..=max_share).
    pub total_share: f64,
    /// The share the rule aims at before the step bound.
    pub target_share: f64,
    /// Peers receiving new connections, with why.
    pub targets: Vec<SpillTarget>,
    /// Every peer of the input with its verdict.
    pub verdicts: Vec<PeerVerdict>,
    /// Starts and stops made by this decision.
    pub events: Vec<SpillEvent>,
}

impl SpillDecision {
    /// Whether any peer receives new connections.
    pub fn spilling(&self) -> bool {
        !self.targets.is_empty()
    }

    /// The sites spilled to (what our own report's `spilling_to` carries).
    pub fn spilling_to(&self) -> Vec<SiteId> {
        self.targets.iter().map(|t| t.site.clone()).collect()
    }

    /// `(peer, share)` pairs for [`crate::weights::plan`].
    pub fn shares(&self) -> Vec<(SiteId, f64)> {
        self.targets
            .iter()
            .map(|t| (t.site.clone(), t.share))
            .collect()
    }
}

impl fmt::Display for SpillDecision {
    /// One line per target, or why nothing is spilled, e.g.
    /// `spilling 20% of new connections to site-b since 13:58 because local 1.14 > 1.10
    /// and site-b 0.62 < 0.70 (report 41 s old)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.targets.is_empty() {
            write!(f, "not spilling: local load {}", l(self.local.load))?;
            for v in &self.verdicts {
                write!(f, "; {}: {}", v.site, v.rule)?;
            }
            if self.verdicts.is_empty() {
                f.write_str("; no peers")?;
            }
            return Ok(());
        }
        for (i, t) in self.targets.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let why = match &t.now {
                Rule::Start {
                    local,
                    start,
                    peer,
                    start_remote,
                } => format!(
                    "local {} > {start:.2} and {} {} < {start_remote:.2}",
                    lt(*local, *start),
                    t.site,
                    lt(*peer, *start_remote)
                ),
                Rule::Continue {
                    local,
                    stop,
                    peer,
                    stop_remote,
                } => format!(
                    "local {} > {stop:.2} and {} {} <= {stop_remote:.2} (started because {})",
                    lt(*local, *stop),
                    t.site,
                    lt(*peer, *stop_remote),
                    t.started_by
                ),
                other => other.to_string(),
            };
            write!(
                f,
                "spilling {:.0}% of new connections to {} since {} because {} (report {} old)",
                t.share * 100.0,
                t.site,
                t.since.hhmm_utc(),
                why,
                human(t.report_age)
            )?;
        }
        Ok(())
    }
}

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
            let rule = match &view.facts {
                None => Rule::PeerUnknown,
                Some(f) if f.spilling_to_us => Rule::PeerSpillsToUs,
                Some(f) => {
                    let peer = sanitize(f.load);
                    if local_stop {
                        Rule::LocalAtOrBelowStop {
                            local: local_load,
                            stop: cfg.stop_local,
                        }
                    } else if is_active {
                        if peer > cfg.stop_remote {
                            Rule::PeerAboveStopRemote {
                                peer,
                                stop_remote: cfg.stop_remote,
                            }
                        } else {
                            // Its current share is already placed: room only limits growth.
                            let have = self.active.get(&site).map_or(0.0, |a| a.share);
                            kept.push((
                                site.clone(),
                                peer,
                                room(&cfg, local, local_load, f).max(have),
                                f.age,
                            ));
                            Rule::Continue {
                                local: local_load,
                                stop: cfg.stop_local,
                                peer,
                                stop_remote: cfg.stop_remote,
                            }
                        }
                    } else if local_load <= cfg.start_local {
                        Rule::LocalNotAboveStart {
                            local: local_load,
                            start: cfg.start_local,
                        }
                    } else if peer < cfg.start_remote {
                        candidates.push((
                            site.clone(),
                            peer,
                            room(&cfg, local, local_load, f),
                            f.age,
                        ));
                        Rule::Start {
                            local: local_load,
                            start: cfg.start_local,
                            peer,
                            start_remote: cfg.start_remote,
                        }
                    } else {
                        Rule::PeerNotBelowStartRemote {
                            peer,
                            start_remote: cfg.start_remote,
                        }
                    }
                }
            };
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

        // What the rule aims at: bring the local real servers back to stop_local.
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
            total_share: targets.iter().map(|t| t.share).sum(),
            target_share: target,
            targets,
            verdicts,
            events,
        }
    }
}

/// A reported load as a number the rule can compare (NaN cannot serve).
fn sanitize(v: f64) -> f64 {
    if v.is_nan() {
        f64::INFINITY
    } else {
        v.max(0.0)
    }
}

/// How much of our new connections a peer can take before it reaches start_remote,
/// as a share of our demand. Equal capacities are assumed when either is unknown.
fn room(cfg: &SpillConfig, local: LocalView, local_load: f64, f: &PeerFacts) -> f64 {
    let free = (cfg.start_remote - sanitize(f.load)).max(0.0);
    if !local_load.is_finite() || local_load <= 0.0 {
        return 1.0;
    }
    if f.capacity == 0 || local.capacity == 0 {
        return free / local_load;
    }
    free * f.capacity as f64 / (local_load * local.capacity as f64)
}

/// Spreads `total` over the chosen peers by inverse load, never above a peer's room
/// unless every peer is at its room (then proportionally to inverse load).
fn spread(total: f64, chosen: &[(SiteId, f64, f64, Duration)]) -> Vec<f64> {
    let n = chosen.len();
    let mut shares = vec![0.0; n];
    if n == 0 || total <= 0.0 {
        return shares;
    }
    let inv: Vec<f64> = chosen.iter().map(|c| 1.0 / c.1.max(0.05)).collect();
    let mut capped = vec![false; n];
    let mut left = total;
    // Water-filling: each round caps at least one peer or finishes; at most n rounds.
    for _ in 0..n {
        let w: f64 = (0..n).filter(|&i| !capped[i]).map(|i| inv[i]).sum();
        if w <= 0.0 || left <= 1e-12 {
            break;
        }
        let mut newly_capped = false;
        for i in 0..n {
            if !capped[i] && shares[i] + left * inv[i] / w > chosen[i].2 {
                newly_capped = true;
            }
        }
        if !newly_capped {
            for i in 0..n {
                if !capped[i] {
                    shares[i] += left * inv[i] / w;
                }
            }
            left = 0.0;
            break;
        }
        for i in 0..n {
            if !capped[i] && shares[i] + left * inv[i] / w > chosen[i].2 {
                let add = (chosen[i].2 - shares[i]).max(0.0);
                shares[i] += add;
                left -= add;
                capped[i] = true;
            }
        }
    }
    // Every peer at its room but the step bound keeps more: spread the rest by inverse
    // load anyway (room is an estimate; the hard limit is the peer's stop_remote stop).
    if left > 1e-12 {
        let w: f64 = inv.iter().sum();
        for i in 0..n {
            shares[i] += left * inv[i] / w;
        }
    }
    shares
}
