//! The rules that fire, and how they read.

use std::fmt;

use serde::Serialize;

use crate::spill::config::SpillConfig;
use crate::spill::decision::PeerFacts;
use crate::spill::share::sanitize;

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

impl Rule {
    /// The seed's rule for one peer, given whether we spill to it now. `Start` and
    /// `Continue` mean it may carry share; every other rule means it does not.
    pub fn judge(
        cfg: &SpillConfig,
        local: f64,
        spilling_to_it: bool,
        facts: Option<&PeerFacts>,
    ) -> Rule {
        let Some(f) = facts else {
            return Rule::PeerUnknown;
        };
        if f.spilling_to_us {
            return Rule::PeerSpillsToUs;
        }
        let peer = sanitize(f.load);
        if local <= cfg.stop_local {
            // 当本地集群系统的负载降至1.0时,也停止转发请求
            Rule::LocalAtOrBelowStop {
                local,
                stop: cfg.stop_local,
            }
        } else if spilling_to_it {
            if peer > cfg.stop_remote {
                // 若远处集群系统的负载超过0.7时,停止转发请求
                Rule::PeerAboveStopRemote {
                    peer,
                    stop_remote: cfg.stop_remote,
                }
            } else {
                Rule::Continue {
                    local,
                    stop: cfg.stop_local,
                    peer,
                    stop_remote: cfg.stop_remote,
                }
            }
        } else if local <= cfg.start_local {
            Rule::LocalNotAboveStart {
                local,
                start: cfg.start_local,
            }
        } else if peer < cfg.start_remote {
            // 当本地集群系统的综合负载大于1.1和远处集群系统的负载小于0.7时 ... 转发
            Rule::Start {
                local,
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
pub(crate) fn lt(v: f64, threshold: f64) -> String {
    let short = l(v);
    if v.is_finite() && v != threshold && short == format!("{threshold:.2}") {
        format!("{v:.4}")
    } else {
        short
    }
}

/// Formats a load, `inf` for a site that cannot serve.
pub(crate) fn l(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "inf".into()
    }
}
