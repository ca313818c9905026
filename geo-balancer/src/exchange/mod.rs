//! The load exchange between sites: report format, HMAC authentication, the receiving
//! side's checks and peer table, the sending schedule, and the HTTP client.
//!
//! Pure: [`report`], [`auth`], [`peers`] (the daemon's listener hands it the raw
//! headers and body and gets Accept or a typed [`Reject`]), [`schedule`]. I/O:
//! [`client`] (reqwest).
//!
//! ```text
//!  sender site                                         receiver site (daemon listener)
//!  ReportScheduler::poll(now, state)                   POST /v1/report
//!    -> reports (one per peer, seq, timestamp)          X-Anycast-Site: site-a
//!  auth::sign(key_ab, body) --HTTP POST--------------->  X-Anycast-Signature: sha256=<hex>
//!                                                      PeerTable::receive(now, site, sig, body)
//!                                                        size -> headers -> key -> HMAC ->
//!                                                        JSON -> sender/receiver -> seq -> time
//!                                                        -> Accepted | Reject(reason)+counter
//! ```

pub mod auth;
pub mod client;
pub mod directors;
pub mod peers;
mod reject;
pub mod report;
pub mod schedule;
mod siblings;

use std::time::Duration;

use serde::Serialize;

use crate::errors::ConfigError;
use crate::ids::SiteId;

pub use directors::DirectorStatus;
pub use peers::{Accepted, PeerClaim, PeerStatus, PeerTable, Reject, RejectKind};
pub use report::LoadReport;
pub use schedule::{LocalState, ReportRound, ReportScheduler, SendReason};

/// Header naming the sending site (selects the key).
pub const SITE_HEADER: &str = "x-anycast-site";
/// Header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-anycast-signature";
/// Path the daemon serves reports on (suggested).
pub const REPORT_PATH: &str = "/v1/report";

/// Exchange parameters (docs/configuration.md `[exchange]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExchangeConfig {
    /// This site.
    pub local: SiteId,
    /// Report period (the paper's 2 minutes).
    pub interval: Duration,
    /// Each period is stretched or shrunk by up to this fraction (0..=0.5).
    pub jitter: f64,
    /// A peer with no valid report for this many periods is unknown.
    pub stale_after_periods: u32,
    /// How far a sender's clock may be from ours: reports stamped further ahead are
    /// refused, and reports older than one `interval` plus this are refused as stale
    /// ([`ExchangeConfig::max_age`]).
    pub max_clock_skew: Duration,
    /// Largest body accepted.
    pub max_body: usize,
    /// Least time between two reports to the same peers (bounds threshold-crossing bursts).
    pub min_gap: Duration,
}

impl ExchangeConfig {
    /// Defaults for a site: 120 s, 10 % jitter, 3 periods, 30 s skew, 8 KiB, 1 s gap.
    pub fn new(local: SiteId) -> ExchangeConfig {
        ExchangeConfig {
            local,
            interval: Duration::from_secs(120),
            jitter: 0.1,
            stale_after_periods: 3,
            max_clock_skew: Duration::from_secs(30),
            max_body: 8 * 1024,
            min_gap: Duration::from_secs(1),
        }
    }

    /// How long a peer stays known after its last valid report.
    pub fn stale_after(&self) -> Duration {
        self.interval.saturating_mul(self.stale_after_periods)
    }

    /// The oldest report accepted: one report period (a report may be delayed that long
    /// on its way) plus `max_clock_skew`. Replays are refused by `seq`, not by age.
    pub fn max_age(&self) -> Duration {
        self.interval.saturating_add(self.max_clock_skew)
    }

    /// Rejects values that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: String| Err(ConfigError::Exchange(s));
        if self.interval < Duration::from_millis(100) {
            return bad(format!("interval {:?} below 100ms", self.interval));
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return bad(format!("jitter {} not in 0..=0.5", self.jitter));
        }
        if self.stale_after_periods == 0 {
            return bad("stale_after_periods must be at least 1".into());
        }
        if self.max_body < 512 {
            return bad(format!("max_body {} below 512 bytes", self.max_body));
        }
        Ok(())
    }
}
