//! Inputs and outputs of one decision, and the sentence the CLI prints.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::SiteId;
use crate::spill::config::SpillConfig;
use crate::spill::rule::{Rule, l, lt};
use crate::time::{Time, human};

/// What the local site knows of itself for one decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LocalView {
    /// Director load: (active on local real servers + active on peer tunnels) / healthy
    /// capacity. `f64::INFINITY` when there is no healthy capacity (`null` in JSON).
    #[serde(with = "crate::time::load_or_null")]
    pub load: f64,
    /// Healthy capacity in connections (used to size the room of peers).
    pub capacity: u64,
}

/// What a peer's last valid report says, as the exchange hands it over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerFacts {
    /// Its reported load (served load); `f64::INFINITY` when it cannot serve (`null`).
    #[serde(with = "crate::time::load_or_null")]
    pub load: f64,
    /// Its healthy capacity in connections (0 = not reported).
    pub capacity: u64,
    /// Whether it reports spilling to us.
    pub spilling_to_us: bool,
    /// Age of its last valid report.
    pub age: Duration,
    /// Sequence number of that report.
    pub seq: u64,
    /// How many other known peers report spilling to this one: they share its room
    /// with us (0 in inputs recorded before this field existed).
    #[serde(default)]
    pub other_spillers: u32,
}

/// A peer as the decision sees it: known (with facts) or unknown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    /// The peer site.
    pub site: SiteId,
    /// `None`: no valid report for too long (or never). Unknown is never a target.
    pub facts: Option<PeerFacts>,
}

/// Everything one decision depends on besides the engine's own state: record these
/// (JSON lines) and [`crate::spill::replay`] gives the same decisions again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInput {
    /// When.
    pub now: Time,
    /// The local view.
    pub local: LocalView,
    /// Every peer.
    pub peers: Vec<PeerView>,
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
    /// and site-b 0.62 < 0.70 (report 41s old)`.
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
