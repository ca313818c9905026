//! The site-wide spill split (decision 0006): a share of new TCP connections and UDP
//! flows is taken aside before IPVS schedules them, by tc filters on the devices clients' packets
//! arrive on, and handed to one firewall-mark service that holds only the peer sites
//! (IPIP destinations). The share is then the share of new connections whatever the
//! VIP services' schedulers do with the rest, and a spill step is a handful of
//! requests however many services there are.
//!
//! ```text
//!  client device ingress, chain 0 (static, one filter per TCP or UDP service):
//!      ip dst VIP, protocol tcp|udp, dport PORT    -> goto chain SPLIT_CHAIN
//!  chain SPLIT_CHAIN (the share, rewritten on a spill step), per block b:
//!      tcp SYN without ACK, seq's top 10 bits in b  -> skbedit mark M
//!      udp, source port's low 10 bits in b           -> skbedit mark M
//!  IPVS:  -f M -s wrr   -r PEER -i -w W ...   (a fwmark service is looked up first)
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
//! Like `tc ... match ip dport`, the offsets assume an IPv4 header without options;
//! a SYN with IP options is not split (it goes to the VIP service).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use crate::diff::{Conflict, Observed, ObservedFilter};
use crate::error::ConfigError;
use crate::model::{Dest, Peer, ServiceConfig, ServiceKey, ServiceSpec};
use crate::request::Request;

/// The share is counted in 1/1024ths of new TCP connections (10 bits of the ISN) and
/// of new UDP flows (10 bits of the source port).
pub const SHARE_UNITS: u16 = 1024;

/// The tc chain holding the share filters on each client device.
pub const SPLIT_CHAIN: u32 = 0xac01;

/// tc priority of the share filters inside [`SPLIT_CHAIN`] (the chain is ours).
pub const SHARE_PRIO: u16 = 1;

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
    /// The peer sites with their weights among themselves.
    pub peers: Vec<Peer>,
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

    fn dests(&self) -> BTreeMap<(IpAddr, u16), Dest> {
        self.peers
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
        {
            return None;
        }
        let mut out = Vec::new();
        for (a, b) in self.peers.iter().zip(&next.peers) {
            if a.addr != b.addr {
                return None;
            }
            if a.weight != b.weight || a.encap != b.encap {
                let d = b.dest(0);
                out.push(Request::SetDest(next.key(), d));
            }
        }
        if self.share != next.share {
            for dev in &next.devices {
                share_filters(dev, next.mark, next.share, &mut out);
            }
        }
        Some(out)
    }
}

fn share_filters(device: &str, mark: u32, share: u16, out: &mut Vec<Request>) {
    out.push(Request::FlushChain {
        device: device.to_string(),
        chain: SPLIT_CHAIN,
    });
    for (draw, block) in share_rules(&blocks(share)) {
        out.push(Request::NewShareFilter {
            device: device.to_string(),
            draw,
            block,
            mark,
        });
    }
}

/// Every share filter for `blocks`: each block drawn on TCP and on UDP.
fn share_rules(blocks: &[SeqBlock]) -> impl Iterator<Item = (Draw, SeqBlock)> + '_ {
    blocks
        .iter()
        .flat_map(|b| Draw::ALL.into_iter().map(move |d| (d, *b)))
}

/// What a share filter draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Draw {
    /// A TCP SYN without ACK: the top 10 bits of its initial sequence number.
    TcpIsn,
    /// A UDP datagram: the low 10 bits of its source port.
    UdpPort,
}

impl Draw {
    /// Both, in the order their filters are added.
    pub const ALL: [Draw; 2] = [Draw::TcpIsn, Draw::UdpPort];
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

/// A chain-0 filter of a client device: TCP or UDP to `dst:port` goes to the share
/// chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SplitClass {
    pub dst: Ipv4Addr,
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

/// Checks `split` against the services (`classes`: the TCP and UDP services of IPv4
/// VIPs) and
/// flattens it; the fwmark service goes into `services`.
pub fn compile(
    split: &Split,
    classes: BTreeSet<SplitClass>,
    tunnel: Option<&str>,
    services: &mut BTreeMap<ServiceKey, ServiceSpec>,
) -> Result<SplitTarget, ConfigError> {
    if split.mark == 0 {
        return Err(ConfigError::new("split mark 0 is no mark".to_string()));
    }
    if split.share > SHARE_UNITS {
        return Err(ConfigError::new(format!(
            "split share {} above {SHARE_UNITS}",
            split.share
        )));
    }
    let mut seen = BTreeSet::new();
    for d in &split.devices {
        crate::model::check_ifname(d)?;
        if Some(d.as_str()) == tunnel {
            return Err(ConfigError::new(format!(
                "split device {d} is the tunnel device: spilled connections would be split again"
            )));
        }
        if !seen.insert(d) {
            return Err(ConfigError::new(format!("split device {d} listed twice")));
        }
    }
    let key = split.key();
    if let Some(p) = split.peers.iter().find(|p| p.addr.is_ipv6()) {
        return Err(ConfigError::new(format!(
            "{key}: peer {} is IPv6: the split carries IPv4 connections over IPIP only",
            p.addr
        )));
    }
    let dests = split.dests();
    if dests.len() != split.peers.len() {
        return Err(ConfigError::new(format!("{key}: a peer listed twice")));
    }
    let spec = ServiceSpec {
        key,
        config: ServiceConfig {
            scheduler: SPLIT_SCHEDULER.into(),
            ..ServiceConfig::default()
        },
        dests,
    };
    if services.insert(key, spec).is_some() {
        return Err(ConfigError::new(format!(
            "split mark {} is also a loop-guard mark",
            split.mark
        )));
    }
    Ok(SplitTarget {
        devices: split.devices.clone(),
        classes,
        blocks: blocks(split.share),
        mark: split.mark,
    })
}

/// The requests that bring the client devices' filters to `t`. Filters in chain 0 at
/// other priorities, and other chains, are someone else's.
pub fn diff(
    t: &SplitTarget,
    prio: u16,
    obs: &Observed,
    out: &mut Vec<Request>,
) -> Result<(), Conflict> {
    for dev in &t.devices {
        if !obs.links.contains_key(dev) {
            return Err(Conflict::MissingDevice { name: dev.clone() });
        }
        let have = obs.split_devices.get(dev).cloned().unwrap_or_default();
        if !have.ingress {
            out.push(Request::NewIngress(dev.clone()));
        }
        let mut kept = BTreeSet::new();
        let mut stale = Vec::new();
        let mut shares = Vec::new();
        for f in &have.filters {
            match (f.chain, f.split) {
                (0, Some(SplitRule::Class(c, SPLIT_CHAIN)))
                    if f.prio == prio && t.classes.contains(&c) && kept.insert(c) => {}
                (0, _) if f.prio == prio => stale.push(f.handle),
                (SPLIT_CHAIN, Some(SplitRule::Share(d, b, m)))
                    if m == t.mark && f.prio == SHARE_PRIO =>
                {
                    shares.push(Some((d, b)))
                }
                (SPLIT_CHAIN, _) => shares.push(None),
                _ => {}
            }
        }
        // The share chain first (empty of stale blocks before traffic is sent to it).
        let mut want: Vec<Option<(Draw, SeqBlock)>> = share_rules(&t.blocks).map(Some).collect();
        want.sort();
        shares.sort();
        if want != shares {
            out.push(Request::FlushChain {
                device: dev.clone(),
                chain: SPLIT_CHAIN,
            });
            for (draw, block) in share_rules(&t.blocks) {
                out.push(Request::NewShareFilter {
                    device: dev.clone(),
                    draw,
                    block,
                    mark: t.mark,
                });
            }
        }
        for c in &t.classes {
            if !kept.contains(c) {
                out.push(Request::NewClassFilter {
                    device: dev.clone(),
                    prio,
                    class: *c,
                });
            }
        }
        for handle in stale {
            out.push(Request::DelFilter {
                device: dev.clone(),
                prio,
                handle,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(share: u16) -> u32 {
        // Count the 10-bit values matched by any block.
        (0u32..1024)
            .filter(|v| {
                let seq = v << 22;
                blocks(share).iter().any(|b| seq & b.mask == b.value)
            })
            .count() as u32
    }

    #[test]
    fn blocks_cover_exactly_the_share() {
        for share in [0u16, 1, 2, 3, 100, 276, 512, 513, 1000, 1023, 1024] {
            assert_eq!(covered(share), u32::from(share), "share {share}");
            assert!(blocks(share).len() <= 10);
        }
        assert!(blocks(0).is_empty());
    }

    #[test]
    fn blocks_do_not_overlap() {
        let b = blocks(1023);
        for v in 0u32..1024 {
            let n = b.iter().filter(|x| (v << 22) & x.mask == x.value).count();
            assert!(n <= 1, "value {v} in {n} blocks");
        }
    }

    #[test]
    fn a_udp_block_covers_the_same_share_of_source_ports() {
        for share in [1u16, 276, 512, 1023] {
            let b = blocks(share);
            let n = (0u32..65536)
                .filter(|port| {
                    let word = port << 16 | 53;
                    b.iter()
                        .any(|x| word & x.on_ports().mask == x.on_ports().value)
                })
                .count() as u32;
            assert_eq!(n, u32::from(share) * 64, "share {share}");
            for x in &b {
                assert_eq!(SeqBlock::from_ports(x.on_ports()), Some(*x));
            }
        }
        let outside = SeqBlock {
            mask: 0xffff_0000,
            value: 0,
        };
        assert_eq!(SeqBlock::from_ports(outside), None);
    }

    #[test]
    fn units_round_and_clamp() {
        assert_eq!(Split::units(0.1), 102);
        assert_eq!(Split::units(0.5), 512);
        assert_eq!(Split::units(2.0), 1024);
        assert_eq!(Split::units(f64::NAN), 0);
        assert_eq!(Split::units(-1.0), 0);
    }

    fn split(share: u16, w: u32) -> Split {
        Split {
            devices: vec!["eth0".into()],
            mark: 0x4143_0000,
            share,
            peers: vec![Peer::ipip("10.0.2.2".parse().unwrap(), w)],
        }
    }

    #[test]
    fn a_spill_step_is_a_few_requests() {
        let a = split(0, 0);
        let b = split(Split::units(0.3), 1000);
        let cmds: Vec<String> = a
            .changes(&b)
            .unwrap()
            .iter()
            .map(Request::command)
            .collect();
        assert_eq!(cmds[0], "ipvsadm -e -f 1094909952 -r 10.0.2.2:0 -i -w 1000");
        assert_eq!(cmds[1], "tc filter del dev eth0 ingress chain 44033");
        assert_eq!(cmds.len(), 2 + 2 * blocks(307).len());
        assert!(
            cmds[2].contains("match u32 0x0 0xc0000000 at 24"),
            "{}",
            cmds[2]
        );
        assert!(
            cmds[3].contains("match ip protocol 17 0xff match u32 0x0 0x3000000 at 20"),
            "{}",
            cmds[3]
        );
        assert_eq!(b.changes(&b), Some(vec![]));
        let mut c = b.clone();
        c.devices.push("eth1".into());
        assert_eq!(b.changes(&c), None);
    }

    #[test]
    fn compile_refuses_the_tunnel_device_and_mark_zero() {
        let mut services = BTreeMap::new();
        let mut s = split(10, 1);
        s.devices = vec!["anycast0".into()];
        assert!(compile(&s, BTreeSet::new(), Some("anycast0"), &mut services).is_err());
        s.devices = vec!["eth0".into()];
        s.mark = 0;
        assert!(compile(&s, BTreeSet::new(), None, &mut services).is_err());
        s.mark = 5;
        let t = compile(&s, BTreeSet::new(), None, &mut services).unwrap();
        assert_eq!(t.blocks.len(), 2);
        assert_eq!(services[&s.key()].config.scheduler, "wrr");
    }
}
