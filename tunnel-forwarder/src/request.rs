//! Kernel operations as values. The diff produces them, the kernel module executes
//! them; each variant's doc gives the `ipvsadm` / `ip` / `tc` command it equals, and
//! [`Request::command`] prints that command for logs and errors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::{AddrSpec, Dest, MarkRule, ServiceConfig, ServiceKey, SockFmt};
use crate::split::{Draw, SPLIT_CHAIN, SeqBlock, SplitClass};
use crate::sync::{SyncDaemon, SyncRole};

/// One change to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `ipvsadm -A -t VIP:PORT -s SCHED [-p T -M MASK] [-o]` (IPVS_CMD_NEW_SERVICE).
    NewService(ServiceKey, ServiceConfig),
    /// `ipvsadm -E -t VIP:PORT -s SCHED ...` (IPVS_CMD_SET_SERVICE).
    SetService(ServiceKey, ServiceConfig),
    /// `ipvsadm -D -t VIP:PORT` (IPVS_CMD_DEL_SERVICE).
    DelService(ServiceKey),
    /// `ipvsadm -a -t VIP:PORT -r RIP:PORT -m|-g|-i -w W` (IPVS_CMD_NEW_DEST).
    NewDest(ServiceKey, Dest),
    /// `ipvsadm -e -t VIP:PORT -r RIP:PORT -m|-g|-i -w W` (IPVS_CMD_SET_DEST): in
    /// place, existing connections stay.
    SetDest(ServiceKey, Dest),
    /// `ipvsadm -d -t VIP:PORT -r RIP:PORT` (IPVS_CMD_DEL_DEST).
    DelDest(ServiceKey, IpAddr, u16),
    /// `ip link add NAME type dummy` (RTM_NEWLINK).
    NewDummy(String),
    /// `ip link add NAME type ipip local LOCAL` (remote any; RTM_NEWLINK).
    NewIpip { name: String, local: Ipv4Addr },
    /// `ip link add NAME type ip6tnl mode ip6ip6 local LOCAL remote any`
    /// (RTM_NEWLINK).
    NewIp6tnl { name: String, local: Ipv6Addr },
    /// `ip link set dev NAME up` (RTM_NEWLINK with IFF_UP).
    LinkUp(String),
    /// `ip addr add ADDR/LEN dev DEV label DEV:ac` (RTM_NEWADDR).
    NewAddr(AddrSpec),
    /// `ip addr del ADDR/LEN dev DEV` (RTM_DELADDR).
    DelAddr(AddrSpec),
    /// `tc qdisc add dev DEV ingress` (RTM_NEWQDISC).
    NewIngress(String),
    /// `tc filter add dev DEV parent ffff: prio P protocol ip u32 match ip dst VIP/32
    /// match ip protocol N 0xff match ip dport PORT 0xffff action skbedit mark M`
    /// (RTM_NEWTFILTER); for an IPv6 VIP `protocol ipv6 u32 match ip6 dst VIP/128
    /// match ip6 protocol N 0xff match ip6 dport PORT 0xffff ...`.
    NewMarkFilter {
        device: String,
        prio: u16,
        rule: MarkRule,
    },
    /// `tc filter del dev DEV parent ffff: prio P handle H u32` (RTM_DELTFILTER; any
    /// protocol: the IPIP device holds IPv4 filters, the ip6ip6 device IPv6 ones).
    DelFilter {
        device: String,
        prio: u16,
        handle: u32,
    },
    /// `tc filter add dev DEV parent ffff: prio P protocol ip u32 match ip dst VIP/32
    /// match ip protocol 6|17 0xff match ip dport PORT 0xffff action goto chain C`
    /// (`protocol ipv6 u32 match ip6 dst VIP6/128 ...` at the next priority for an
    /// IPv6 VIP): the split's static part, one per TCP or UDP service
    /// (RTM_NEWTFILTER).
    NewClassFilter {
        device: String,
        prio: u16,
        class: SplitClass,
    },
    /// `tc filter add dev DEV parent ffff: chain C prio 1 protocol ip u32 match ip
    /// protocol 6 0xff match u8 0x02 0x12 at 33 match u32 V M at 24 action skbedit
    /// mark M` (TCP), or `... match ip protocol 17 0xff match u32 V M at 20 ...` (UDP,
    /// the block on the source port's low bits): one block of the share
    /// (RTM_NEWTFILTER). IPv6 (prio 2, `protocol ipv6`): the same at the offsets of a
    /// 40-byte header, `match u8 0x02 0x12 at 53`, `match u32 V M at 44`; UDP at 40.
    NewShareFilter {
        device: String,
        draw: Draw,
        block: SeqBlock,
        mark: u32,
    },
    /// `tc filter del dev DEV parent ffff: chain C`: every filter of the chain
    /// (RTM_DELTFILTER with prio 0).
    FlushChain { device: String, chain: u32 },
    /// `sysctl -w KEY=VALUE` (a write to /proc/sys; not netlink).
    Sysctl { key: String, value: String },
    /// `ipvsadm --start-daemon ROLE --mcast-interface IF --syncid N ...`
    /// (IPVS_CMD_NEW_DAEMON).
    NewSyncDaemon(SyncDaemon),
    /// `ipvsadm --stop-daemon ROLE` (IPVS_CMD_DEL_DAEMON).
    DelSyncDaemon(SyncRole),
    /// `ip fou add port PORT gue` (FOU_CMD_ADD): GUE from peers, decapsulated into
    /// the IPIP device.
    NewGueListener(u16),
}

impl Request {
    /// The equivalent command line.
    pub fn command(&self) -> String {
        match self {
            Request::NewService(k, c) => format!(
                "ipvsadm -A {}",
                crate::model::ServiceSpec {
                    key: *k,
                    config: c.clone(),
                    dests: Default::default()
                }
                .ipvsadm_args()
            ),
            Request::SetService(k, c) => format!(
                "ipvsadm -E {}",
                crate::model::ServiceSpec {
                    key: *k,
                    config: c.clone(),
                    dests: Default::default()
                }
                .ipvsadm_args()
            ),
            Request::DelService(k) => format!("ipvsadm -D {k}"),
            Request::NewDest(k, d) => format!("ipvsadm -a {k} {}", d.ipvsadm_args()),
            Request::SetDest(k, d) => format!("ipvsadm -e {k} {}", d.ipvsadm_args()),
            Request::DelDest(k, a, p) => format!("ipvsadm -d {k} -r {}", SockFmt(*a, *p)),
            Request::NewDummy(n) => format!("ip link add {n} type dummy"),
            Request::NewIpip { name, local } => {
                format!("ip link add {name} type ipip local {local}")
            }
            Request::NewIp6tnl { name, local } => {
                format!("ip link add {name} type ip6tnl mode ip6ip6 local {local} remote any")
            }
            Request::LinkUp(n) => format!("ip link set dev {n} up"),
            Request::NewAddr(a) => format!(
                "ip addr add {}/{} dev {} label {}",
                a.addr,
                a.prefix_len,
                a.device,
                crate::kernel::rtnl::our_label(&a.device)
            ),
            Request::DelAddr(a) => {
                format!("ip addr del {}/{} dev {}", a.addr, a.prefix_len, a.device)
            }
            Request::NewIngress(d) => format!("tc qdisc add dev {d} ingress"),
            Request::NewMarkFilter { device, prio, rule } => format!(
                "{} action skbedit mark {}",
                dst_filter(device, *prio, (rule.dst, rule.protocol, rule.port)),
                rule.mark
            ),
            Request::DelFilter {
                device,
                prio,
                handle,
            } => format!(
                "tc filter del dev {device} parent ffff: prio {prio} handle {:x}:{:x}:{:x} u32",
                handle >> 20,
                (handle >> 12) & 0xff,
                handle & 0xfff
            ),
            Request::NewClassFilter {
                device,
                prio,
                class,
            } => format!(
                "{} action goto chain {SPLIT_CHAIN}",
                dst_filter(device, *prio, (class.dst, class.protocol, class.port))
            ),
            Request::NewShareFilter {
                device,
                draw,
                block,
                mark,
            } => {
                let (proto, ip, l4) = if draw.ipv6() {
                    ("ipv6", "ip6", 40)
                } else {
                    ("ip", "ip", 20)
                };
                let draw_match = if draw.tcp() {
                    format!(
                        "match {ip} protocol 6 0xff match u8 0x02 0x12 at {} \
                         match u32 {:#x} {:#x} at {}",
                        l4 + 13,
                        block.value,
                        block.mask,
                        l4 + 4
                    )
                } else {
                    let p = block.on_ports();
                    format!(
                        "match {ip} protocol 17 0xff match u32 {:#x} {:#x} at {l4}",
                        p.value, p.mask
                    )
                };
                format!(
                    "tc filter add dev {device} parent ffff: chain {SPLIT_CHAIN} prio {} \
                     protocol {proto} u32 {draw_match} action skbedit mark {mark}",
                    draw.prio()
                )
            }
            Request::FlushChain { device, chain } => {
                format!("tc filter del dev {device} ingress chain {chain}")
            }
            Request::Sysctl { key, value } => {
                format!("sysctl -w {}={value}", key.replace('/', "."))
            }
            Request::NewSyncDaemon(d) => format!("ipvsadm {}", d.ipvsadm_args()),
            Request::DelSyncDaemon(role) => format!("ipvsadm --stop-daemon {}", role.as_str()),
            Request::NewGueListener(port) => format!("ip fou add port {port} gue"),
        }
    }

    /// True for IPVS (generic netlink) requests.
    pub fn is_ipvs(&self) -> bool {
        matches!(
            self,
            Request::NewService(..)
                | Request::SetService(..)
                | Request::DelService(..)
                | Request::NewDest(..)
                | Request::SetDest(..)
                | Request::DelDest(..)
                | Request::NewSyncDaemon(..)
                | Request::DelSyncDaemon(..)
        )
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.command())
    }
}

/// `tc filter add dev DEV parent ffff: prio P protocol ip|ipv6 u32 match ip|ip6 dst
/// VIP/32|128 match ... protocol N 0xff match ... dport PORT 0xffff` (the action
/// follows).
fn dst_filter(
    device: &str,
    prio: u16,
    (dst, protocol, port): (std::net::IpAddr, crate::model::Protocol, u16),
) -> String {
    let (proto, m, len) = if dst.is_ipv6() {
        ("ipv6", "ip6", 128)
    } else {
        ("ip", "ip", 32)
    };
    format!(
        "tc filter add dev {device} parent ffff: prio {prio} protocol {proto} u32 \
         match {m} dst {dst}/{len} match {m} protocol {} 0xff match {m} dport {port} 0xffff",
        protocol.number()
    )
}
