//! Client demand: a diurnal curve with the regional peak, random bursts, and connection
//! lifetimes from a heavy-tailed distribution.
//!
//! The model is fluid (connections are real numbers, one step per second), so a
//! lifetime distribution is carried as phases: a mixture of exponentials
//! (hyperexponential) fitted to a Pareto tail. Most connections last seconds, a few
//! last an hour, and those few hold most of the standing load: load falls slowly after
//! spilling stops, as with real long-lived clients.

use rand::Rng;
use rand::rngs::StdRng;

use crate::topology::SiteSpec;

/// Lifetime phases: (mean seconds, share of new connections). Pareto-like: each tenfold
/// longer phase has about a quarter of the connections of the one before.
pub const LIFETIME_PHASES: [(f64, f64); 4] =
    [(5.0, 0.60), (30.0, 0.28), (300.0, 0.10), (3_000.0, 0.02)];

/// Mean lifetime over the phases, seconds.
pub fn mean_lifetime_s() -> f64 {
    LIFETIME_PHASES.iter().map(|(m, p)| m * p).sum()
}

/// A burst of extra demand at one site.
#[derive(Debug, Clone, PartialEq)]
pub struct Burst {
    /// First second.
    pub start: u64,
    /// Length in seconds.
    pub len: u64,
    /// Extra demand at the burst's height, as a share of the site's capacity.
    pub height: f64,
}

/// Random bursts: on average `per_day` per site, 5 to 40 minutes, +10 % to +50 %.
pub fn bursts(run_s: u64, per_day: f64, rng: &mut StdRng) -> Vec<Burst> {
    let mut out = Vec::new();
    let mut k = per_day * run_s as f64 / 86_400.0;
    while k > 0.0 {
        if rng.random_range(0.0..1.0) < k.min(1.0) {
            out.push(Burst {
                start: rng.random_range(0..run_s.max(1)),
                len: rng.random_range(300..=2_400u64),
                height: rng.random_range(0.1..0.5),
            });
        }
        k -= 1.0;
    }
    out
}

/// Demand of a site's clients (share of its capacity) at second `sec` of a run that
/// starts at 00:00 UTC: the diurnal curve peaking at the site's local `peak_hour`, plus
/// bursts (ramping up and down over a tenth of their length each way).
pub fn demand(s: &SiteSpec, bursts: &[Burst], sec: u64) -> f64 {
    let local_h = (sec as f64 / 3600.0 + s.utc_offset_h).rem_euclid(24.0);
    let x = (1.0 + (2.0 * std::f64::consts::PI * (local_h - s.peak_hour) / 24.0).cos()) / 2.0;
    let mut d = s.base + (s.peak - s.base) * x * x;
    for b in bursts {
        if (b.start..b.start + b.len).contains(&sec) {
            let into = (sec - b.start) as f64;
            let ramp = (b.len as f64 / 10.0).max(1.0);
            let edge = (into / ramp).min((b.len as f64 - into) / ramp).min(1.0);
            d += b.height * edge;
        }
    }
    d
}
