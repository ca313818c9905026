//! A director's own connections: IPVS destination counters without the connections
//! the sync daemon brought in from the site's other directors.
//!
//! With sync in both directions, every director's `ActiveConn` counts its own
//! connections plus those it learned from its siblings (a synced connection is bound
//! to its destination like a local one), so a site load summed over directors would
//! count each synced connection twice. The kernel keeps no per-destination count of
//! origins; only /proc/net/ip_vs_conn_sync tells them apart, one line per connection.
//! [`SyncedConns::parse`] counts its `SYNC` lines per service address and
//! destination, in the states the kernel counts as active or inactive, and
//! [`subtract_synced`] takes them off the netlink counters.
//!
//! ```text
//!  netlink dests (ActiveConn, InActConn) ─┐
//!                                        ├─ subtract_synced ──> own counters
//!  /proc/net/ip_vs_conn_sync ── parse ───┘
//! ```
//!
//! The walk costs time in proportion to the connections, not to the services; the
//! daemon spaces its stats reads by what they took, walk included, and reads the file
//! only while a backup daemon runs (only a backup daemon makes `SYNC` entries).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::{Protocol, ServiceKey};
use crate::stats::ServiceStats;

/// A connection's service address and destination: `(protocol, VIP, port)` and the
/// destination's address and port.
type ConnKey = (Protocol, IpAddr, u16, IpAddr, u16);

/// Synced connections bound to one destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Counted in the destination's `ActiveConn`.
    pub active: u32,
    /// Counted in its `InActConn`.
    pub inactive: u32,
}

/// The `SYNC` entries of the connection table, per service address and destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncedConns {
    by_conn: HashMap<ConnKey, Synced>,
}

impl SyncedConns {
    /// Counts the `SYNC` lines of /proc/net/ip_vs_conn_sync:
    /// `Pro FromIP FPrt ToIP TPrt DestIP DPrt State Origin Expires`, IPv4 addresses
    /// and ports in hex, IPv6 addresses written out. Persistence templates (client
    /// port 0), `LOCAL` lines, the header and anything malformed are skipped.
    pub fn parse(text: &str) -> SyncedConns {
        let mut by_conn: HashMap<ConnKey, Synced> = HashMap::new();
        for line in text.lines() {
            let Some((key, active)) = synced_line(line) else {
                continue;
            };
            let e = by_conn.entry(key).or_default();
            if active {
                e.active = e.active.saturating_add(1);
            } else {
                e.inactive = e.inactive.saturating_add(1);
            }
        }
        SyncedConns { by_conn }
    }

    /// Synced connections in all.
    pub fn total(&self) -> u64 {
        self.by_conn
            .values()
            .map(|s| u64::from(s.active) + u64::from(s.inactive))
            .sum()
    }

    /// The synced connections of service `(protocol, vip, port)` at destination
    /// `(addr, port)`.
    pub fn get(&self, key: &ConnKey) -> Synced {
        self.by_conn.get(key).copied().unwrap_or_default()
    }
}

/// One `SYNC` line: its key, and whether the kernel counts it as active. TCP and
/// SCTP connections are active when established (the sync receiver sets the inactive
/// flag otherwise); UDP ones always.
fn synced_line(line: &str) -> Option<(ConnKey, bool)> {
    let mut it = line.split_whitespace();
    let mut cols = [""; 10];
    for c in &mut cols {
        *c = it.next()?;
    }
    let [
        proto,
        _from,
        fport,
        vip,
        vport,
        dest,
        dport,
        state,
        "SYNC",
        _expires,
    ] = cols
    else {
        return None;
    };
    if it.next().is_some() {
        return None;
    }
    // A persistence template has client port 0 (and the service's protocol, or `IP`
    // for a mark service): the kernel counts it as persistent, neither active nor not.
    if port(fport)? == 0 {
        return None;
    }
    let protocol = match proto {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        _ => return None,
    };
    let active = protocol == Protocol::Udp || state == "ESTABLISHED";
    let key = (
        protocol,
        addr(vip)?,
        port(vport)?,
        addr(dest)?,
        port(dport)?,
    );
    Some((key, active))
}

/// `0A650401` (IPv4, hex) or `2001:0db8:...` (IPv6).
fn addr(s: &str) -> Option<IpAddr> {
    if s.len() == 8 && !s.contains(':') {
        return u32::from_str_radix(s, 16)
            .ok()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)));
    }
    s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn port(s: &str) -> Option<u16> {
    u16::from_str_radix(s, 16).ok()
}

/// Takes the synced connections off the destinations' counters: first from the
/// service of the connection's address (`-t VIP:PORT`); what is left, from firewall
/// mark services of the same family holding that destination (the loop guard and the
/// spill split schedule by mark, and a connection names its VIP, not the mark).
/// Counters never go below zero.
pub fn subtract_synced(stats: &mut [ServiceStats], synced: &SyncedConns) {
    let mut left = synced.by_conn.clone();
    for st in stats.iter_mut() {
        let ServiceKey::Addr {
            protocol,
            addr,
            port,
        } = st.key
        else {
            continue;
        };
        for d in &mut st.dests {
            if let Some(s) = left.get_mut(&(protocol, addr, port, d.addr, d.port)) {
                take(&mut d.active, &mut s.active);
                take(&mut d.inactive, &mut s.inactive);
            }
        }
    }
    // What is left, per family and destination.
    let mut rest: HashMap<(IpAddr, u16), Synced> = HashMap::new();
    for ((_, _, _, daddr, dport), s) in left {
        let r = rest.entry((daddr, dport)).or_default();
        r.active = r.active.saturating_add(s.active);
        r.inactive = r.inactive.saturating_add(s.inactive);
    }
    for st in stats.iter_mut() {
        let ServiceKey::Fwmark { ipv6, .. } = st.key else {
            continue;
        };
        for d in &mut st.dests {
            if d.addr.is_ipv6() != ipv6 {
                continue;
            }
            if let Some(s) = rest.get_mut(&(d.addr, d.port)) {
                take(&mut d.active, &mut s.active);
                take(&mut d.inactive, &mut s.inactive);
            }
        }
    }
}

/// Moves up to `*from` off `*counter`.
fn take(counter: &mut u32, from: &mut u32) {
    let n = (*counter).min(*from);
    *counter -= n;
    *from -= n;
}

#[cfg(test)]
mod tests;
