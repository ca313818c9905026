//! Counters read back from IPVS, for the load model.

use std::net::IpAddr;

use crate::model::{Forward, ServiceKey};

/// IPVS counters of a service or destination. Totals since creation; the rates
/// (`cps`, `*_pps`, `*_bps`) are the kernel's estimates, refreshed about every 2 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Connections per second.
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    /// Bytes per second.
    pub in_bps: u64,
    pub out_bps: u64,
}

/// One destination's load: connection table counts (immediate) and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestStats {
    pub addr: IpAddr,
    pub port: u16,
    /// `None` for a method the model does not know (local node).
    pub forward: Option<Forward>,
    pub weight: u32,
    /// Established connections.
    pub active: u32,
    /// Other states (SYN_RECV, TIME_WAIT, ...).
    pub inactive: u32,
    /// Persistence templates.
    pub persistent: u32,
    pub counters: Counters,
}

/// One service's load with its destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStats {
    pub key: ServiceKey,
    pub counters: Counters,
    pub dests: Vec<DestStats>,
}

impl ServiceStats {
    /// Active connections summed over destinations.
    pub fn active(&self) -> u64 {
        self.dests.iter().map(|d| u64::from(d.active)).sum()
    }

    /// Inactive connections summed over destinations.
    pub fn inactive(&self) -> u64 {
        self.dests.iter().map(|d| u64::from(d.inactive)).sum()
    }
}
