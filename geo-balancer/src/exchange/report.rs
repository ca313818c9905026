//! The load report: what one site tells one peer.
//!
//! ```json
//! {"version":1,"sender":"site-a","receiver":"site-b","seq":1764053000123,
//!  "timestamp":1764053000123,"load":0.62,"director_load":0.62,"capacity":2000,
//!  "active":1240,"spilling_to":[],"spill_share":0.0}
//! ```
//! `timestamp` is milliseconds since the Unix epoch on the sender's clock; `load` is the
//! served load (null: the site cannot serve). `receiver` binds the report to one peer,
//! so a report cannot be replayed to another site.

use serde::{Deserialize, Serialize};

use crate::ids::SiteId;

/// Report format version this crate speaks.
pub const VERSION: u32 = 1;
/// Most sites a report may list in `spilling_to`.
pub const MAX_SPILLING_TO: usize = 64;

/// One load report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The sending site.
    pub sender: SiteId,
    /// The site it is meant for.
    pub receiver: SiteId,
    /// Strictly increasing per sender (milliseconds-based, so it survives restarts).
    pub seq: u64,
    /// Sender's clock, ms since the epoch.
    pub timestamp: u64,
    /// Served load, 1.0 = full; `None`: no healthy capacity.
    pub load: Option<f64>,
    /// Director load (served + spilled out), for the operator.
    pub director_load: Option<f64>,
    /// Healthy capacity, connections.
    pub capacity: u64,
    /// Active connections served locally.
    pub active: u64,
    /// Sites this sender spills new connections to.
    pub spilling_to: Vec<SiteId>,
    /// Share of its new connections it spills.
    pub spill_share: f64,
}

impl LoadReport {
    /// Served load with `None` mapped to infinity (what the spill rule compares).
    pub fn load_value(&self) -> f64 {
        self.load.unwrap_or(f64::INFINITY)
    }

    /// Checks values JSON alone cannot: version, finite non-negative loads, list size.
    pub fn check(&self) -> Result<(), String> {
        if self.version != VERSION {
            return Err(format!("version {} (speaking {VERSION})", self.version));
        }
        for (name, v) in [("load", self.load), ("director_load", self.director_load)] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!("{name} {v} is not a finite non-negative number"));
            }
        }
        if !(self.spill_share.is_finite() && (0.0..=1.0).contains(&self.spill_share)) {
            return Err(format!("spill_share {} not in 0..=1", self.spill_share));
        }
        if self.spilling_to.len() > MAX_SPILLING_TO {
            return Err(format!(
                "spilling_to lists {} sites",
                self.spilling_to.len()
            ));
        }
        Ok(())
    }
}
