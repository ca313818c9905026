//! How much each chosen peer gets: its room, and the inverse-load spread.

use std::time::Duration;

use crate::ids::SiteId;
use crate::spill::config::SpillConfig;
use crate::spill::decision::{LocalView, PeerFacts};

/// A reported load as a number the rule can compare (NaN cannot serve).
pub(crate) fn sanitize(v: f64) -> f64 {
    if v.is_nan() {
        f64::INFINITY
    } else {
        v.max(0.0)
    }
}

/// How much of our new connections a peer can take before it reaches start_remote,
/// as a share of our demand. Equal capacities are assumed when either is unknown.
///
/// The room is shared: when other sites report spilling to the same peer, each of us
/// claims an equal part of its free capacity (issue 18: fifty sites seeing one idle
/// peer must not all claim all of it). With one spiller, as on a small fleet, this is
/// the whole room.
pub(crate) fn room(cfg: &SpillConfig, local: LocalView, local_load: f64, f: &PeerFacts) -> f64 {
    let claimants = 1.0 + f64::from(f.other_spillers);
    let free = (cfg.start_remote - sanitize(f.load)).max(0.0) / claimants;
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
pub(crate) fn spread(total: f64, chosen: &[(SiteId, f64, f64, Duration)]) -> Vec<f64> {
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
