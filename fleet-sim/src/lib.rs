//! fleet-sim: a fleet of anycast sites running the real geo-balancer on a virtual clock.
//!
//! Owns: a model of the world around the sites (clients on five continents with their
//! time zones, demand, connection lifetimes, a lossy network for reports, outages) and
//! the measures of a simulated day. Every site runs geo-balancer's own code:
//! `site_load` from samples, `ReportScheduler`, reports signed with HMAC and checked by
//! the receiver's `PeerTable`, `SpillEngine::decide`, and `weights::plan` to split new
//! connections between local servers and peer tunnels.
//!
//! Never does: I/O, sleeping or reading a clock. Time is a second counter turned into
//! [`geo_balancer::Time`] and passed to every call, so a run is deterministic for a seed.
//!
//! ```text
//!  demand (diurnal + bursts) --> nearest up site's director --weights::plan--> local / tunnels
//!       per second:  conns[phase][director][server] decay, arrive
//!                    site_load -> ReportScheduler::poll -> sign -> Network (loss, delay)
//!                    Network -> PeerTable::receive -> SpillEngine::decide -> weights::plan
//!                    Measures (overload, herding, oscillation, forwarded twice, share away)
//!                    Recorder -> Trace (region loads, flows, herding episodes) -> plots (SVG)
//!  both days' Measures -> targets::check (issue 18's targets, PASS/FAIL)
//! ```

pub mod demand;
pub mod fleet;
pub mod measures;
pub mod network;
pub mod plots;
pub mod targets;
pub mod topology;
pub mod trace;

pub use fleet::{Config, run, run_traced};
pub use measures::{Measures, all_down_table, table};

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A geo-balancer type refused the configuration the simulator built.
    #[error("site {site}: {source}")]
    Config {
        /// The site.
        site: String,
        /// The refusal.
        source: geo_balancer::ConfigError,
    },
    /// A report could not be encoded.
    #[error("site {site}: report: {source}")]
    Sign {
        /// The sending site.
        site: String,
        /// The error.
        source: geo_balancer::SendError,
    },
    /// A parameter out of range.
    #[error("{0}")]
    Param(String),
}
