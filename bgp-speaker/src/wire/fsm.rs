//! Our peer configuration in the FSM's terms, and what negotiation produced.

use std::net::Ipv4Addr;

use rustbgpd_fsm::{NegotiatedSession, PeerConfig as FsmConfig};
use rustbgpd_wire::{Afi, Safi};

use crate::config::PeerConfig;

/// The FSM's config for one neighbor. Graceful restart stays off: it would make
/// the upstream keep a failed site's route for the restart time (bgp-notes.md).
pub(crate) fn fsm_config(cfg: &PeerConfig) -> FsmConfig {
    let mut f = FsmConfig::new(cfg.local_asn, cfg.remote_asn, cfg.router_id);
    f.hold_time = cfg.hold_time;
    f.connect_retry_secs = u32::from(cfg.connect_retry.max(1));
    // The send hold timer is ours (RFC 9687 is not in the FSM); keep the FSM's copy in step.
    f.send_hold_time = u32::try_from(cfg.effective_send_hold_time().as_secs()).unwrap_or(u32::MAX);
    f.families.clear();
    if cfg.ipv4_unicast {
        f.families.push((Afi::Ipv4, Safi::Unicast));
    }
    if cfg.ipv6_unicast {
        f.families.push((Afi::Ipv6, Safi::Unicast));
    }
    f.disable_ipv4_unicast = !cfg.ipv4_unicast;
    f.graceful_restart = false;
    f
}

/// The parts of a negotiated session the speaker acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub(crate) peer_asn: u32,
    pub(crate) peer_router_id: Ipv4Addr,
    pub(crate) hold_time: u16,
    pub(crate) four_octet_as: bool,
    pub(crate) extended_message: bool,
    pub(crate) ipv4: bool,
    pub(crate) ipv6: bool,
}

impl From<&NegotiatedSession> for Negotiated {
    fn from(n: &NegotiatedSession) -> Self {
        Self {
            peer_asn: n.peer_asn,
            peer_router_id: n.peer_router_id,
            hold_time: n.hold_time,
            four_octet_as: n.four_octet_as,
            extended_message: n.peer_extended_message,
            ipv4: n.negotiated_families.contains(&(Afi::Ipv4, Safi::Unicast)),
            ipv6: n.negotiated_families.contains(&(Afi::Ipv6, Safi::Unicast)),
        }
    }
}
