//! Spill shares turned into IPVS weights.
//!
//! IPVS's weighted schedulers (wrr, wlc) give each destination new connections in
//! proportion to its weight. A VIP's service holds the local real servers and one IPIP
//! destination per peer site. The local servers' weights always sum to [`LOCAL_SCALE`]
//! in the proportions of their configured weights, whatever is spilled; for a total share
//! `s` spilled, peer `p` with share `s_p` gets `s_p / (1 - s) * LOCAL_SCALE`, so that the
//! peers hold `s` of the total weight. A spill step therefore changes the peers'
//! weights only: one kernel request per service and peer, not one per destination. A
//! peer not spilled to gets weight 0, which gives it no new connections and leaves
//! running ones alone.
//!
//! Connections that arrive through a tunnel are scheduled by the fwmark service that
//! holds local real servers only, at their configured weights: [`Plan::tunnel_in`].

use serde::Serialize;

use crate::ids::{ServerId, SiteId};

/// Sum of the local servers' weights of one service (0.1 % resolution of their
/// proportions), and of the peers' when no local server is up.
pub const LOCAL_SCALE: u32 = 1_000;

/// The largest weight IPVS takes for a destination (`ipvsadm -w`): with local servers
/// up, a total share above about 98.5 % is capped there.
pub const MAX_WEIGHT: u32 = 65_535;

/// A local real server as the weight plan needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalServer {
    /// The server.
    pub server: ServerId,
    /// Whether health says it is up (down and disabled servers get weight 0).
    pub up: bool,
    /// Its configured weight (relative to the other local servers).
    pub weight: u32,
    /// It failed its checks after being up (not merely disabled, nor not yet
    /// checked): it leaves the IPVS services, so that the kernel expires its
    /// connections (`expire_nodest_conn`) instead of leaving their clients hanging.
    pub failed: bool,
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
    /// Per local server (same order): `true` when it is out of both services
    /// ([`LocalServer::failed`]); its weight above is 0 then.
    pub absent: Vec<bool>,
}

/// The share of new connections `shares` gives peer `name` (0..=1; a non-finite
/// value counts as 0).
pub fn share_of(shares: &[(SiteId, f64)], name: &str) -> f64 {
    shares
        .iter()
        .filter(|(s, _)| s.as_str() == name)
        .map(|(_, v)| {
            if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .sum()
}

/// Computes the weights. `peers` lists every peer tunnel destination (spilled to or not);
/// `shares` comes from [`crate::spill::SpillDecision::shares`].
pub fn plan(local: &[LocalServer], peers: &[SiteId], shares: &[(SiteId, f64)]) -> Plan {
    let local_sum: u64 = local
        .iter()
        .filter(|s| s.up)
        .map(|s| u64::from(s.weight))
        .sum();
    let share_of = |p: &SiteId| share_of(shares, p.as_str());
    let spilled: f64 = peers.iter().map(share_of).sum::<f64>().min(1.0);
    let scale = f64::from(LOCAL_SCALE);
    let peer_weights = peers
        .iter()
        .map(|p| {
            let s = share_of(p);
            let w = if local_sum == 0 {
                // No local capacity: whatever is spilled is all the service can place.
                if spilled > 0.0 {
                    s / spilled * scale
                } else {
                    0.0
                }
            } else if spilled < 1.0 {
                s / (1.0 - spilled) * scale
            } else {
                f64::from(MAX_WEIGHT)
            };
            // A peer with any share gets at least weight 1, else IPVS would skip it.
            let w = if s > 0.0 {
                (w.round().min(f64::from(MAX_WEIGHT)) as u32).max(1)
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
                ((scale * f64::from(s.weight) / local_sum as f64).round() as u32).max(1)
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
        absent: local.iter().map(|s| s.failed && !s.up).collect(),
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
            failed: false,
        }
    }

    #[test]
    fn a_failed_server_is_absent_a_disabled_or_unchecked_one_at_weight_0() {
        let failed = LocalServer {
            failed: true,
            ..rs("b", false, 1)
        };
        let p = plan(&[rs("a", true, 1), failed, rs("c", false, 1)], &[], &[]);
        assert_eq!(p.absent, vec![false, true, false]);
        assert_eq!(p.local[1].1, 0);
        assert_eq!(p.local[2].1, 0);
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
            vec![(ServerId::new("a"), 250), (ServerId::new("b"), 750)]
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
        // Local weights do not move with the share; the peer holds 250 / 1250 = 20 %.
        assert_eq!(
            p.local,
            vec![(ServerId::new("a"), 1000), (ServerId::new("x"), 0)]
        );
        assert_eq!(
            p.peers,
            vec![(SiteId::new("b"), 250), (SiteId::new("c"), 0)]
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
            vec![(SiteId::new("b"), 750), (SiteId::new("c"), 250)]
        );
    }

    #[test]
    fn a_spill_step_moves_the_peers_weights_only() {
        let local = [rs("a", true, 1), rs("b", true, 3)];
        let peers = [SiteId::new("p"), SiteId::new("q")];
        let mut last: Option<Plan> = None;
        for share in [0.0, 0.05, 0.1, 0.3, 0.5, 0.9] {
            let p = plan(
                &local,
                &peers,
                &[
                    (SiteId::new("p"), share * 0.75),
                    (SiteId::new("q"), share * 0.25),
                ],
            );
            let peer: u32 = p.peers.iter().map(|(_, w)| w).sum();
            let total = peer + p.local.iter().map(|(_, w)| w).sum::<u32>();
            let got = f64::from(peer) / f64::from(total);
            assert!(
                (got - share).abs() < 0.002,
                "share {share}: peers hold {got}"
            );
            if let Some(l) = &last {
                assert_eq!(l.local, p.local, "local weights moved at share {share}");
            }
            last = Some(p);
        }
    }

    #[test]
    fn nearly_everything_spilled_is_capped_at_the_largest_weight() {
        let p = plan(
            &[rs("a", true, 1)],
            &[SiteId::new("p")],
            &[(SiteId::new("p"), 1.0)],
        );
        assert_eq!(p.peers, vec![(SiteId::new("p"), MAX_WEIGHT)]);
        assert_eq!(p.local, vec![(ServerId::new("a"), LOCAL_SCALE)]);
    }
}
