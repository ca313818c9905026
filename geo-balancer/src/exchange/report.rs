//! The load report: what one site tells one peer.
//!
//! ```json
//! {"version":1,"sender":"site-a","receiver":"site-b","seq":1764053000123,
//!  "timestamp":1764053000123,"load":0.62,"director_load":0.62,"capacity":2000,
//!  "active":1240,"spilling_to":[],"spill_share":0.0,"director":"lb1",
//!  "config_digest":"9f86d081884c7d65"}
//! ```
//! `timestamp` is milliseconds since the Unix epoch on the sender's clock; `load` is the
//! served load (null: the site cannot serve). `receiver` binds the report to one peer,
//! so a report cannot be replayed to another site.
//!
//! `director` and `config_digest` (decision 0015) are additive: the version stays 1, a
//! report without them is one unnamed director (`""`) of its site, and a receiver that
//! predates them ignores them. The figures are the sending director's own; the
//! receiver sums a site's directors ([`crate::exchange::directors`]).
//!
//! `vips_down` (additive too) lists the VIPs, by address, whose own checks fail at the
//! sending director (withdrawn, or held by the last-announcer guard): the guard works per
//! VIP, and a site's load says only whether it can serve anything. Absent: none (a
//! sender that predates it is judged by its load alone, site-wide).

use serde::{Deserialize, Serialize};

use crate::ids::SiteId;

/// Report format version this crate speaks.
pub const VERSION: u32 = 1;
/// Most sites a report may list in `spilling_to`.
pub const MAX_SPILLING_TO: usize = 64;
/// Longest director name.
pub const MAX_DIRECTOR_NAME: usize = 64;
/// Longest config digest.
pub const MAX_DIGEST: usize = 128;
/// Most VIPs a report may list in `vips_down`.
pub const MAX_VIPS_DOWN: usize = 256;
/// Longest VIP address text in `vips_down` (an IPv6 address is at most 45).
pub const MAX_VIP_TEXT: usize = 64;

/// Whether `name` is a valid director name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_director_name(name: &str) -> bool {
    (1..=MAX_DIRECTOR_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

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
    /// The sending director; `None` (an older sender): one unnamed director.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub director: Option<String>,
    /// Digest of the sender's site-wide config: the site's other directors compare it
    /// with their own; peer sites ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// The VIPs (addresses, as text) whose own checks fail at the sender, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips_down: Vec<String>,
}

impl LoadReport {
    /// Served load with `None` mapped to infinity (what the spill rule compares).
    pub fn load_value(&self) -> f64 {
        self.load.unwrap_or(f64::INFINITY)
    }

    /// The sending director's name (`""` for a sender without one).
    pub fn director_name(&self) -> &str {
        self.director.as_deref().unwrap_or("")
    }

    /// Checks values JSON alone cannot: version, finite non-negative loads, list size,
    /// director name and digest syntax.
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
        if let Some(d) = &self.director
            && !valid_director_name(d)
        {
            return Err(format!(
                "director {:?} is not 1-{MAX_DIRECTOR_NAME} of A-Z a-z 0-9 . _ -",
                d.chars().take(MAX_DIRECTOR_NAME).collect::<String>()
            ));
        }
        if let Some(d) = &self.config_digest
            && !(d.len() <= MAX_DIGEST && d.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(format!(
                "config_digest is not up to {MAX_DIGEST} hex digits"
            ));
        }
        if self.vips_down.len() > MAX_VIPS_DOWN {
            return Err(format!("vips_down lists {} VIPs", self.vips_down.len()));
        }
        if let Some(v) = self.vips_down.iter().find(|v| {
            !(1..=MAX_VIP_TEXT).contains(&v.len())
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':'))
        }) {
            return Err(format!(
                "vips_down entry {:?} is not an IP address's text",
                v.chars().take(MAX_VIP_TEXT).collect::<String>()
            ));
        }
        Ok(())
    }

    /// Whether the sender reports that it can serve `vip` (an address as text): a load
    /// (not `null`) and `vip` not among its `vips_down`.
    pub fn serves(&self, vip: Option<&str>) -> bool {
        self.load.is_some() && vip.is_none_or(|v| !self.vips_down.iter().any(|d| d == v))
    }
}
