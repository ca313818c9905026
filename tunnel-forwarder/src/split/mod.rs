//! The site-wide spill split (decision 0006): a share of new TCP connections and UDP
//! flows is taken aside before IPVS schedules them, by tc filters on the devices clients' packets
//! arrive on, and handed to a firewall-mark service that holds only the peer sites
//! (IPIP destinations; for IPv6 VIPs a second one, of the IPv6 family, with the
//! peers' ip6ip6 endpoints). The share is then the share of new connections whatever the
//! VIP services' schedulers do with the rest, and a spill step is a handful of
//! requests however many services there are.
//!
//! ```text
//!  client device ingress, chain 0 (static, one filter per TCP or UDP service):
//!      prio P    protocol ip:   ip dst VIP, protocol tcp|udp, dport PORT  -> goto chain SPLIT_CHAIN
//!      prio P+1  protocol ipv6: ip6 dst VIP6, next header tcp|udp, dport   -> goto chain SPLIT_CHAIN
//!  chain SPLIT_CHAIN (the share, rewritten on a spill step), per block b:
//!      prio 1 (ip), prio 2 (ipv6):
//!      tcp SYN without ACK, seq's top 10 bits in b  -> skbedit mark M
//!      udp, source port's low 10 bits in b           -> skbedit mark M
//!  IPVS:  -f M -s wrr      -r PEER -i -w W ...    (a fwmark service is looked up first)
//!         -f M -6 -s wrr   -r PEER6 -i -w W ...   (the same mark, the IPv6 family)
//! ```
//!
//! The client's initial sequence number is the random draw: RFC 6528 makes it a keyed
//! hash of the connection, so its top bits are uniform over connections, and every
//! retransmitted SYN carries the same number (the same verdict). A share of k/1024 is
//! the union of at most 10 aligned blocks of those 10 bits. Only the SYN matters:
//! IPVS finds a connection it already scheduled before it looks at marks.
//!
//! A UDP flow has no SYN and no sequence number; its draw is the low 10 bits of the
//! client's source port, which stacks pick at random for each socket (Linux, and
//! every DNS client since RFC 5452). Every datagram of the flow carries the same port
//! (the same verdict), and only the first one matters: IPVS finds the flow's
//! connection entry before it looks at marks. A client that sends every flow from one
//! port gets the same verdict for all of them.
//!
//! Like `tc ... match ip dport` and `match ip6 dport`, the offsets assume an IPv4
//! header without options and an IPv6 header without extension headers (the
//! transport header at byte 20 or 40); a SYN with IP options or IPv6 extension
//! headers is not split (it goes to the VIP service). Within one tc chain filters
//! of one priority share one protocol, hence a priority per family.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::diff::{Conflict, Observed, ObservedFilter};
use crate::error::ConfigError;
use crate::model::{Dest, Peer, ServiceConfig, ServiceKey, ServiceSpec};
use crate::request::Request;

/// The share is counted in 1/1024ths of new TCP connections (10 bits of the ISN) and
/// of new UDP flows (10 bits of the source port).
pub const SHARE_UNITS: u16 = 1024;

/// The tc chain holding the share filters on each client device.
pub const SPLIT_CHAIN: u32 = 0xac01;

/// tc priority of the IPv4 share filters inside [`SPLIT_CHAIN`] (the chain is ours).
pub const SHARE_PRIO: u16 = 1;

/// tc priority of the IPv6 share filters inside [`SPLIT_CHAIN`].
pub const SHARE_PRIO6: u16 = 2;

/// The chain-0 priority of a class filter: `prio` (the state's filter priority) for
/// an IPv4 VIP, the next one for an IPv6 VIP (a priority holds one protocol).
pub fn class_prio(prio: u16, dst: IpAddr) -> u16 {
    if dst.is_ipv6() {
        prio.saturating_add(1)
    } else {
        prio
    }
}

/// Scheduler of the split service: plain weighted round robin among the peers, so
/// each peer's weight is its share of what is sent away.
pub const SPLIT_SCHEDULER: &str = "wrr";

/// The split as the daemon wants it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Split {
    /// Devices clients' packets arrive on (never the tunnel device).
    pub devices: Vec<String>,
    /// Firewall mark of the tunnel-only service.
    pub mark: u32,
    /// New TCP connections and UDP flows sent away, in 1/[`SHARE_UNITS`] (0 = none).
    pub share: u16,
    /// The peer sites (their IPv4 tunnel endpoints) with their weights among
    /// themselves.
    pub peers: Vec<Peer>,
    /// The same peer sites' IPv6 tunnel endpoints (ip6ip6), at the same weights: the
    /// split carries IPv6 VIPs' connections too while this is not empty.
    pub peers6: Vec<Peer>,
}

impl Split {
    /// `share` (0.0..=1.0) in units, rounded.
    pub fn units(share: f64) -> u16 {
        if share.is_finite() {
            (share.clamp(0.0, 1.0) * f64::from(SHARE_UNITS)).round() as u16
        } else {
            0
        }
    }

    /// The fwmark service's key.
    pub fn key(&self) -> ServiceKey {
        ServiceKey::Fwmark {
            mark: self.mark,
            ipv6: false,
        }
    }

    /// The IPv6 fwmark service's key (same mark, the IPv6 family).
    pub fn key6(&self) -> ServiceKey {
        ServiceKey::Fwmark {
            mark: self.mark,
            ipv6: true,
        }
    }

    /// Whether the split carries IPv6 VIPs' connections.
    pub fn carries_ipv6(&self) -> bool {
        !self.peers6.is_empty()
    }

    /// Each family's service key with its peers.
    fn families(&self) -> [(ServiceKey, &[Peer]); 2] {
        [(self.key(), &self.peers), (self.key6(), &self.peers6)]
    }

    fn dests(peers: &[Peer]) -> BTreeMap<(IpAddr, u16), Dest> {
        peers
            .iter()
            .map(|p| {
                let d = p.dest(0);
                (d.key(), d)
            })
            .collect()
    }

    /// The requests that take the split from `self` (as the kernel holds it) to
    /// `next`: peer weights on the split service, then the share filters of every
    /// device rewritten (flush the chain, add the blocks). `None` when more than the
    /// share and weights differ: a job for a reconcile.
    pub fn changes(&self, next: &Split) -> Option<Vec<Request>> {
        if self.devices != next.devices
            || self.mark != next.mark
            || self.peers.len() != next.peers.len()
            || self.peers6.len() != next.peers6.len()
        {
            return None;
        }
        let mut out = Vec::new();
        for ((_, held), (key, want)) in self.families().into_iter().zip(next.families()) {
            for (a, b) in held.iter().zip(want) {
                if a.addr != b.addr {
                    return None;
                }
                if a.weight != b.weight || a.encap != b.encap {
                    out.push(Request::SetDest(key, b.dest(0)));
                }
            }
        }
        if self.share != next.share {
            let ipv6 = next.carries_ipv6();
            for dev in &next.devices {
                share_filters(dev, (next.mark, next.share, ipv6), &mut out);
            }
        }
        Some(out)
    }
}

/// The share chain of `device` rewritten: flushed, then every block of `share` for
/// IPv4 (and IPv6 when `ipv6`).
fn share_filters(device: &str, (mark, share, ipv6): (u32, u16, bool), out: &mut Vec<Request>) {
    out.push(Request::FlushChain {
        device: device.to_string(),
        chain: SPLIT_CHAIN,
    });
    for (draw, block) in share_rules(&blocks(share), ipv6) {
        out.push(Request::NewShareFilter {
            device: device.to_string(),
            draw,
            block,
            mark,
        });
    }
}

/// Every share filter for `blocks`: each block drawn on TCP and on UDP, of IPv4
/// (and of IPv6 when `ipv6`).
fn share_rules(blocks: &[SeqBlock], ipv6: bool) -> impl Iterator<Item = (Draw, SeqBlock)> + '_ {
    let draws = if ipv6 {
        &Draw::ALL[..]
    } else {
        &Draw::ALL[..2]
    };
    blocks
        .iter()
        .flat_map(move |b| draws.iter().map(move |d| (*d, *b)))
}

/// What a share filter draws on, and in which IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Draw {
    /// An IPv4 TCP SYN without ACK: the top 10 bits of its initial sequence number.
    TcpIsn,
    /// An IPv4 UDP datagram: the low 10 bits of its source port.
    UdpPort,
    /// The same draw as [`Draw::TcpIsn`] on IPv6 (no extension headers).
    TcpIsn6,
    /// The same draw as [`Draw::UdpPort`] on IPv6 (no extension headers).
    UdpPort6,
}

impl Draw {
    /// Every draw, in the order their filters are added (IPv4 first).
    pub const ALL: [Draw; 4] = [Draw::TcpIsn, Draw::UdpPort, Draw::TcpIsn6, Draw::UdpPort6];

    /// Whether the draw is on IPv6 packets.
    pub fn ipv6(self) -> bool {
        matches!(self, Draw::TcpIsn6 | Draw::UdpPort6)
    }

    /// Whether the draw is on TCP (the ISN) rather than UDP (the source port).
    pub fn tcp(self) -> bool {
        matches!(self, Draw::TcpIsn | Draw::TcpIsn6)
    }

    /// The draw's filter priority in [`SPLIT_CHAIN`].
    pub fn prio(self) -> u16 {
        if self.ipv6() { SHARE_PRIO6 } else { SHARE_PRIO }
    }
}

/// The draws `(draw & mask) == value`: for a TCP ISN, the top 10 bits of the sequence
/// number as they are; a UDP source port's low 10 bits are placed at the same bits
/// (see [`Draw`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeqBlock {
    pub mask: u32,
    pub value: u32,
}

/// Where a UDP draw sits in the ports word (source port in its top half, the word at
/// offset 20 of an IPv4 packet without options): the port's low 10 bits, bits 25..16.
const PORT_DRAW_SHIFT: u32 = 6;
const PORT_DRAW_BITS: u32 = 0x03ff_0000;

impl SeqBlock {
    /// The block as a match on the UDP ports word.
    pub fn on_ports(self) -> SeqBlock {
        SeqBlock {
            mask: self.mask >> PORT_DRAW_SHIFT,
            value: self.value >> PORT_DRAW_SHIFT,
        }
    }

    /// The block a match on the UDP ports word expresses ([`SeqBlock::on_ports`]
    /// undone); `None` when it looks at other bits than the draw's.
    pub fn from_ports(on_ports: SeqBlock) -> Option<SeqBlock> {
        (on_ports.mask & !PORT_DRAW_BITS == 0).then_some(SeqBlock {
            mask: on_ports.mask << PORT_DRAW_SHIFT,
            value: on_ports.value << PORT_DRAW_SHIFT,
        })
    }
}

/// The aligned blocks of the ISN's top 10 bits whose union is `share`/1024 of all
/// values: one per set bit of `share` (at most 10; 1024 is one block matching all).
pub fn blocks(share: u16) -> Vec<SeqBlock> {
    let share = u32::from(share.min(SHARE_UNITS));
    if share == u32::from(SHARE_UNITS) {
        return vec![SeqBlock { mask: 0, value: 0 }];
    }
    let mut out = Vec::new();
    let mut start = 0u32;
    for bit in (0..10).rev() {
        let size = 1u32 << bit;
        if share & size != 0 {
            // Values start..start+size of the top 10 bits: the top (10 - bit) bits fixed.
            let mask = (!0u32 << (22 + bit)) & 0xffc0_0000;
            out.push(SeqBlock {
                mask,
                value: start << 22,
            });
            start += size;
        }
    }
    out
}

/// A chain-0 filter of a client device: TCP or UDP to `dst:port` (an IPv4 or IPv6
/// VIP) goes to the share chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SplitClass {
    pub dst: IpAddr,
    pub protocol: crate::model::Protocol,
    pub port: u16,
}

/// The flat kernel objects of a [`Split`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SplitTarget {
    pub devices: Vec<String>,
    pub classes: BTreeSet<SplitClass>,
    pub blocks: Vec<SeqBlock>,
    pub mark: u32,
    /// Share filters for IPv6 too ([`Split::carries_ipv6`]).
    pub ipv6: bool,
}

/// What the kernel holds on one client device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceTc {
    pub ingress: bool,
    pub filters: Vec<ObservedFilter>,
}

/// One of our split filters, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitRule {
    /// Chain 0: TCP or UDP to dst:port, `goto chain N`.
    Class(SplitClass, u32),
    /// The share chain: a SYN or a datagram whose draw is in the block, `skbedit mark
    /// M`.
    Share(Draw, SeqBlock, u32),
}

mod reconcile;
pub use reconcile::{compile, diff};

#[cfg(test)]
mod tests;
