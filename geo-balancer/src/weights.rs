//! Spill shares turned into IPVS weights.
//!
//! IPVS's weighted schedulers (wrr, wlc) give each destination new connections in
//! proportion to its weight. A VIP's service holds the local real servers and one IPIP
//! destination per peer site; for a total share `s` spilled, the peers' weights sum to
//! `s * SCALE` and the local servers' to `(1 - s) * SCALE`, local servers keeping the
//! proportions of their configured weights. A peer not spilled to gets weight 0, which
//! gives it no new connections and leaves running ones alone.
//!
//! Connections that arrive through a tunnel are scheduled by the fwmark service that
//! holds local real servers only, at their configured weights: [`Plan::tunnel_in`].

use serde::Serialize;

use crate::ids::{ServerId, SiteId};

/// Sum of all weights of one service: 0.01 % resolution, far below IPVS's limit (65535
/// per destination would allow more, but the sum then stays readable in `ipvsadm -L`).
pub const SCALE: u32 = 10_000;

/// A local real server as the weight plan needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalServer {
    /// The server.
    pub server: ServerId,
    /// Whether health says it is up (down and disabled servers get weight 0).
    pub up: bool,
    /// Its configured weight (relative to the other local servers).
    pub weight: u32,
}

/// Weights for one VIP's IPVS services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Local real servers in the VIP's service (`ipvsadm -e -t VIP:PORT -r RS -w W`).
    pub local: Vec<(ServerId, u32)>,
    /// Peer tunnel destinations in the VIP's service (`-r PEER_DIRECTOR -i -w W`).
    pub peers: Vec<(SiteId, u32)>,
    /// Local real servers in the fwmark service for tunnelled-in connections.
    pub tunnel_in: Vec<(ServerId, u32)>,
}

/// Computes the weights. `peers` lists every peer tunnel destination (spilled to or not);
/// `shares` comes from [`crate::spill::SpillDecision::shares`].
pub fn plan(local: &[LocalServer], peers: &[SiteId], shares: &[(SiteId, f64)]) -> Plan {
    let local_sum: u64 = local
        .iter()
        .filter(|s| s.up)
        .map(|s| u64::from(s.weight))
        .sum();
    let share_of = |p: &SiteId| -> f64 {
        shares
            .iter()
            .filter(|(s, _)| s == p)
            .map(|(_, v)| {
                if v.is_finite() {
                    v.clamp(0.0, 1.0)
                } else {
                    0.0
                }
            })
            .sum()
    };
    let spilled: f64 = peers.iter().map(share_of).sum::<f64>().min(1.0);
    // No local capacity: whatever is spilled is all the service can place.
    let local_budget = if local_sum == 0 {
        0.0
    } else {
        (1.0 - spilled) * f64::from(SCALE)
    };
    let peer_weights = peers
        .iter()
        .map(|p| {
            let s = share_of(p);
            let w = if local_sum == 0 && spilled > 0.0 {
                s / spilled * f64::from(SCALE)
            } else {
                s * f64::from(SCALE)
            };
            // A peer with any share gets at least weight 1, else IPVS would skip it.
            let w = if s > 0.0 {
                (w.round() as u32).max(1)
            } else {
                0
            };
            (p.clone(), w)
        })
        .collect();
    let local_weights = local
        .iter()
        .map(|s| {
            let w = if s.up && s.weight > 0 && local_sum > 0 {
                ((local_budget * f64::from(s.weight) / local_sum as f64).round() as u32).max(1)
            } else {
                0
            };
            (s.server.clone(), w)
        })
        .collect();
    let tunnel_in = local
        .iter()
        .map(|s| (s.server.clone(), if s.up { s.weight } else { 0 }))
        .collect();
    Plan {
        local: local_weights,
        peers: peer_weights,
        tunnel_in,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, up: bool, weight: u32) -> LocalServer {
        LocalServer {
            server: ServerId::new(name),
            up,
            weight,
        }
    }

    #[test]
    fn no_spill_keeps_local_proportions_and_zeroes_peers() {
        let p = plan(
            &[rs("a", true, 1), rs("b", true, 3)],
            &[SiteId::new("b")],
            &[],
        );
        assert_eq!(
            p.local,
            vec![(ServerId::new("a"), 2500), (ServerId::new("b"), 7500)]
        );
        assert_eq!(p.peers, vec![(SiteId::new("b"), 0)]);
    }

    #[test]
    fn twenty_percent_to_one_peer() {
        let peers = [SiteId::new("b"), SiteId::new("c")];
        let p = plan(
            &[rs("a", true, 1), rs("x", false, 1)],
            &peers,
            &[(SiteId::new("b"), 0.2)],
        );
        assert_eq!(
            p.local,
            vec![(ServerId::new("a"), 8000), (ServerId::new("x"), 0)]
        );
        assert_eq!(
            p.peers,
            vec![(SiteId::new("b"), 2000), (SiteId::new("c"), 0)]
        );
        assert_eq!(
            p.tunnel_in,
            vec![(ServerId::new("a"), 1), (ServerId::new("x"), 0)]
        );
    }

    #[test]
    fn tiny_share_still_gets_weight_one() {
        let p = plan(
            &[rs("a", true, 1)],
            &[SiteId::new("b")],
            &[(SiteId::new("b"), 0.00001)],
        );
        assert_eq!(p.peers, vec![(SiteId::new("b"), 1)]);
    }

    #[test]
    fn no_local_capacity_puts_everything_on_spilled_peers() {
        let peers = [SiteId::new("b"), SiteId::new("c")];
        let p = plan(
            &[rs("a", false, 1)],
            &peers,
            &[(SiteId::new("b"), 0.3), (SiteId::new("c"), 0.1)],
        );
        assert_eq!(p.local, vec![(ServerId::new("a"), 0)]);
        assert_eq!(
            p.peers,
            vec![(SiteId::new("b"), 7500), (SiteId::new("c"), 2500)]
        );
    }
}
