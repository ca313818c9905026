//! The site's services as the kernel knows them, laid out once per config: small typed
//! ids for VIPs and services, each service's IPVS key and its loop-guard firewall
//! mark. Everything that needs a service's key or mark (the desired data plane, the
//! reading of IPVS stats, the targeted weight updates) takes it from here, so the
//! numbering exists in one place.
//!
//! ```text
//!  config order:  vip 0 ── service 0 ── mark MARK_BASE + 0
//!                       └─ service 1 ── mark MARK_BASE + 1
//!                 vip 1 ── service 0 ── mark MARK_BASE + 2     (counted over all VIPs)
//! ```

use std::collections::HashMap;
use std::fmt;

use tunnel_forwarder as tf;

use crate::config::{Protocol, SiteConfig};

/// First firewall mark of the loop guard; service `n` (counted over all VIPs, from 0,
/// in config order) gets `MARK_BASE + n`. Documented in docs/configuration.md.
pub const MARK_BASE: u32 = 0x4143_0001;

/// Firewall mark of the spill split's tunnel-only service (decision 0006), just
/// below the loop guard's range.
pub const SPLIT_MARK: u32 = MARK_BASE - 1;

/// A VIP of the config in force (its position in `[[vip]]` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VipId(pub u32);

/// A service (one port of a VIP) of the config in force, counted over all VIPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SvcId(pub u32);

impl VipId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl SvcId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for VipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vip#{}", self.0)
    }
}

/// One service: where it sits in the config and how the kernel names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSlot {
    pub id: SvcId,
    pub vip: VipId,
    /// Position among its VIP's services.
    pub port_index: usize,
    /// `-t/-u VIP:PORT`.
    pub key: tf::ServiceKey,
    /// The loop guard's mark: connections tunnelled in for this service.
    pub mark: u32,
}

impl ServiceSlot {
    /// Whether `split` can carry this service's new connections: TCP (the split
    /// draws on the SYN's sequence number) or UDP (on the source port) on an IPv4
    /// VIP (IPIP), or on an IPv6 VIP when the split has the peers' IPv6 tunnel
    /// endpoints (ip6ip6; the same rule as the service's own IPv6 peer
    /// destinations).
    pub fn splittable(&self, split: &tf::Split) -> bool {
        match self.key {
            tf::ServiceKey::Addr {
                protocol: tf::Protocol::Tcp | tf::Protocol::Udp,
                addr,
                ..
            } => addr.is_ipv4() || split.carries_ipv6(),
            _ => false,
        }
    }
}

/// Every service of a config, in config order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    services: Vec<ServiceSlot>,
    /// Per VIP, the range of its services in `services`.
    by_vip: Vec<std::ops::Range<usize>>,
    by_key: HashMap<tf::ServiceKey, SvcId>,
}

pub fn protocol(p: Protocol) -> tf::Protocol {
    match p {
        Protocol::Tcp => tf::Protocol::Tcp,
        Protocol::Udp => tf::Protocol::Udp,
    }
}

impl Layout {
    pub fn new(cfg: &SiteConfig) -> Layout {
        let mut services = Vec::new();
        let mut by_vip = Vec::new();
        for (vi, vip) in cfg.vips.iter().enumerate() {
            let start = services.len();
            for (si, svc) in vip.services.iter().enumerate() {
                let n = services.len() as u32;
                services.push(ServiceSlot {
                    id: SvcId(n),
                    vip: VipId(vi as u32),
                    port_index: si,
                    key: tf::ServiceKey::Addr {
                        protocol: protocol(svc.protocol),
                        addr: vip.address,
                        port: svc.port,
                    },
                    mark: MARK_BASE + n,
                });
            }
            by_vip.push(start..services.len());
        }
        let by_key = services.iter().map(|s| (s.key, s.id)).collect();
        Layout {
            services,
            by_vip,
            by_key,
        }
    }

    pub fn services(&self) -> &[ServiceSlot] {
        &self.services
    }

    pub fn service(&self, id: SvcId) -> &ServiceSlot {
        &self.services[id.index()]
    }

    /// The services of one VIP.
    pub fn of_vip(&self, vip: VipId) -> &[ServiceSlot] {
        &self.services[self.by_vip[vip.index()].clone()]
    }

    /// The VIPs, in config order.
    pub fn vips(&self) -> impl Iterator<Item = VipId> + use<> {
        (0..self.by_vip.len() as u32).map(VipId)
    }

    /// The service an IPVS stats entry belongs to, by its address key or its guard mark.
    pub fn find(&self, key: &tf::ServiceKey) -> Option<SvcId> {
        match key {
            // The guard of an IPv6 VIP's service is an IPv6 fwmark service: its
            // connections (spilled here by peers) count in the load like the rest.
            tf::ServiceKey::Fwmark { mark, ipv6 } => {
                let n = mark.checked_sub(MARK_BASE)?;
                self.services
                    .get(n as usize)
                    .filter(|s| s.key.is_ipv6() == *ipv6)
                    .map(|s| s.id)
            }
            tf::ServiceKey::Addr { .. } => self.by_key.get(key).copied(),
        }
    }
}
