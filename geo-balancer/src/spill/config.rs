//! Thresholds and ramp of the spill rule.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::errors::ConfigError;

/// Thresholds and ramp. Defaults are the seed's thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
