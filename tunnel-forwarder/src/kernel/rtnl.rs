//! rtnetlink messages for links (dummy, ipip, ip6tnl), addresses and the ingress
//! qdisc; the u32 filters (loop guard, spill split) are in `filter`
//! (kernel/rtnl/filter.rs). Numbers from include/uapi/linux/{rtnetlink,if_link,
//! if_addr,if_tunnel,pkt_sched,pkt_cls}.h and tc_act/tc_skbedit.h.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::diff::LinkInfo;
use crate::netlink::wire::{self, Attrs, DecodeError, Msg, MsgBuf};

mod filter;
pub use filter::*;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWQDISC: u16 = 36;
pub const RTM_GETQDISC: u16 = 38;
pub const RTM_NEWTFILTER: u16 = 44;
pub const RTM_DELTFILTER: u16 = 45;
pub const RTM_GETTFILTER: u16 = 46;

const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_STATS64: u16 = 23;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_IPTUN_LOCAL: u16 = 2;
const IFLA_IPTUN_REMOTE: u16 = 3;
const IFLA_IPTUN_PROTO: u16 = 9;
/// ip6tnl mode ip6ip6: the inner packet is IPv6 (next header 41).
const IPPROTO_IPV6: u8 = 41;
const IFF_UP: u32 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;

const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_U32_SEL: u16 = 5;
const TCA_U32_ACT: u16 = 7;
const TCA_ACT_KIND: u16 = 1;
const TCA_ACT_OPTIONS: u16 = 2;
const TCA_SKBEDIT_PARMS: u16 = 2;
const TCA_SKBEDIT_MARK: u16 = 5;
const TC_ACT_PIPE: i32 = 3;
const TCA_CHAIN: u16 = 11;
const TCA_GACT_PARMS: u16 = 2;
const TC_ACT_GOTO_CHAIN: i32 = 0x2000_0000;
const TC_ACT_EXT_VAL_MASK: i32 = 0x0fff_ffff;
const TC_U32_TERMINAL: u8 = 1;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// `tc qdisc add dev X ingress`: handle ffff:0, parent ffff:fff1.
pub const INGRESS_HANDLE: u32 = 0xffff_0000;
pub const TC_H_INGRESS: u32 = 0xffff_fff1;

/// Our label on VIP addresses.
pub fn our_label(dev: &str) -> String {
    crate::diff::label_for(dev)
}

fn ifinfomsg(buf: &mut MsgBuf, index: i32, flags: u32, change: u32) {
    let mut h = [0u8; 16];
    h[0] = libc::AF_UNSPEC as u8;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    buf.raw(&h);
}

/// Dump of all links.
pub fn get_links(buf: &mut MsgBuf, seq: u32) {
    buf.begin(RTM_GETLINK, wire::NLM_F_REQUEST | wire::NLM_F_DUMP, seq);
    ifinfomsg(buf, 0, 0, 0);
    buf.end();
}

/// A link reply: name, info, and rx/tx packet counters.
pub fn decode_link(m: &Msg<'_>) -> Result<(String, LinkInfo, [u64; 2]), DecodeError> {
    let p = m.payload;
    let hdr = p.get(..16).ok_or(DecodeError {
        offset: 0,
        what: "short ifinfomsg",
    })?;
    let index = u32::from_ne_bytes(hdr[4..8].try_into().unwrap_or_default());
    let flags = u32::from_ne_bytes(hdr[8..12].try_into().unwrap_or_default());
    let attrs = Attrs::new(&p[16..]);
    let name = attrs
        .find(IFLA_IFNAME)
        .and_then(wire::get_str)
        .unwrap_or_default();
    let mut info = LinkInfo {
        index,
        up: flags & IFF_UP != 0,
        ..LinkInfo::default()
    };
    if let Some(li) = attrs.find(IFLA_LINKINFO) {
        let li = Attrs::new(li);
        info.kind = li.find(IFLA_INFO_KIND).and_then(wire::get_str);
        if let Some(data) = li.find(IFLA_INFO_DATA) {
            let d = Attrs::new(data);
            let v4 = |t| {
                d.find(t)
                    .and_then(|p| wire::get_addr(p, libc::AF_INET as u16))
            };
            if let Some(IpAddr::V4(a)) = v4(IFLA_IPTUN_LOCAL) {
                info.ipip_local = Some(a);
            }
            if let Some(IpAddr::V4(a)) = v4(IFLA_IPTUN_REMOTE) {
                info.ipip_remote = Some(a);
            }
            if info.kind.as_deref() == Some("ip6tnl")
                && let Some(IpAddr::V6(a)) = d
                    .find(IFLA_IPTUN_LOCAL)
                    .and_then(|p| wire::get_addr(p, libc::AF_INET6 as u16))
            {
                info.ip6_local = Some(a);
            }
        }
    }
    let mut counts = [0u64; 2];
    if let Some(s) = attrs.find(IFLA_STATS64) {
        counts[0] = wire::get_u64(s).unwrap_or(0);
        counts[1] = s.get(8..).and_then(wire::get_u64).unwrap_or(0);
    }
    Ok((name, info, counts))
}

/// `ip link add NAME type KIND [local L]`.
pub fn new_link(buf: &mut MsgBuf, seq: u32, name: &str, kind: &str, ipip_local: Option<Ipv4Addr>) {
    buf.begin(
        RTM_NEWLINK,
        wire::NLM_F_REQUEST | wire::NLM_F_ACK | wire::NLM_F_CREATE | wire::NLM_F_EXCL,
        seq,
    );
    ifinfomsg(buf, 0, 0, 0);
    buf.str(IFLA_IFNAME, name);
    let li = buf.nest(IFLA_LINKINFO);
    buf.str(IFLA_INFO_KIND, kind);
    if let Some(local) = ipip_local {
        let d = buf.nest(IFLA_INFO_DATA);
        buf.attr(IFLA_IPTUN_LOCAL, &local.octets());
        buf.attr(IFLA_IPTUN_REMOTE, &[0, 0, 0, 0]);
        buf.nest_end(d);
    }
    buf.nest_end(li);
    buf.end();
}

/// `ip link set dev NAME up`.
pub fn link_up(buf: &mut MsgBuf, seq: u32, index: u32) {
    buf.begin(RTM_NEWLINK, wire::NLM_F_REQUEST | wire::NLM_F_ACK, seq);
    ifinfomsg(buf, index as i32, IFF_UP, IFF_UP);
    buf.end();
}

fn ifaddrmsg(buf: &mut MsgBuf, af: u8, prefix_len: u8, index: u32) {
    let mut h = [0u8; 8];
    h[0] = af;
    h[1] = prefix_len;
    h[3] = 0; // RT_SCOPE_UNIVERSE
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    buf.raw(&h);
}

/// Dump of all addresses.
pub fn get_addrs(buf: &mut MsgBuf, seq: u32) {
    buf.begin(RTM_GETADDR, wire::NLM_F_REQUEST | wire::NLM_F_DUMP, seq);
    ifaddrmsg(buf, libc::AF_UNSPEC as u8, 0, 0);
    buf.end();
}

/// An address as RTM_NEWADDR reports it: (ifindex, addr, prefix length, label).
pub type KAddr = (u32, IpAddr, u8, Option<String>);

/// An address reply.
pub fn decode_addr(m: &Msg<'_>) -> Result<Option<KAddr>, DecodeError> {
    let p = m.payload;
    let h = p.get(..8).ok_or(DecodeError {
        offset: 0,
        what: "short ifaddrmsg",
    })?;
    let af = u16::from(h[0]);
    let prefix = h[1];
    let index = u32::from_ne_bytes(h[4..8].try_into().unwrap_or_default());
    let a = Attrs::new(&p[8..]);
    let addr = a
        .find(IFA_LOCAL)
        .or_else(|| a.find(IFA_ADDRESS))
        .and_then(|b| wire::get_addr(b, af));
    let label = a.find(IFA_LABEL).and_then(wire::get_str);
    Ok(addr.map(|addr| (index, addr, prefix, label)))
}

/// `ip addr add|del ADDR/LEN dev DEV [label L]`.
pub fn addr(
    buf: &mut MsgBuf,
    seq: u32,
    add: bool,
    index: u32,
    a: &IpAddr,
    prefix: u8,
    label: Option<&str>,
) {
    let (ty, flags) = if add {
        (
            RTM_NEWADDR,
            wire::NLM_F_REQUEST | wire::NLM_F_ACK | wire::NLM_F_CREATE | wire::NLM_F_EXCL,
        )
    } else {
        (RTM_DELADDR, wire::NLM_F_REQUEST | wire::NLM_F_ACK)
    };
    buf.begin(ty, flags, seq);
    ifaddrmsg(buf, wire::af_of(a) as u8, prefix, index);
    let bytes = wire::addr_bytes(a);
    buf.attr(IFA_LOCAL, &bytes);
    buf.attr(IFA_ADDRESS, &bytes);
    if let Some(l) = label {
        buf.str(IFA_LABEL, l);
    }
    buf.end();
}

fn tcmsg(buf: &mut MsgBuf, index: u32, handle: u32, parent: u32, info: u32) {
    let mut h = [0u8; 20];
    h[0] = libc::AF_UNSPEC as u8;
    h[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
    h[8..12].copy_from_slice(&handle.to_ne_bytes());
    h[12..16].copy_from_slice(&parent.to_ne_bytes());
    h[16..20].copy_from_slice(&info.to_ne_bytes());
    buf.raw(&h);
}

/// Dump of qdiscs (all devices).
pub fn get_qdiscs(buf: &mut MsgBuf, seq: u32) {
    buf.begin(RTM_GETQDISC, wire::NLM_F_REQUEST | wire::NLM_F_DUMP, seq);
    tcmsg(buf, 0, 0, 0, 0);
    buf.end();
}

/// The device index when a qdisc reply is an ingress qdisc.
pub fn ingress_of(m: &Msg<'_>) -> Option<u32> {
    let h = m.payload.get(..20)?;
    let ifi = u32::from_ne_bytes(h[4..8].try_into().unwrap_or_default());
    let parent = u32::from_ne_bytes(h[12..16].try_into().unwrap_or_default());
    let kind = Attrs::new(&m.payload[20..])
        .find(TCA_KIND)
        .and_then(wire::get_str);
    (parent == TC_H_INGRESS && kind.as_deref() == Some("ingress")).then_some(ifi)
}

/// `tc qdisc add dev DEV ingress`.
pub fn new_ingress(buf: &mut MsgBuf, seq: u32, index: u32) {
    buf.begin(
        RTM_NEWQDISC,
        wire::NLM_F_REQUEST | wire::NLM_F_ACK | wire::NLM_F_CREATE | wire::NLM_F_EXCL,
        seq,
    );
    tcmsg(buf, index, INGRESS_HANDLE, TC_H_INGRESS, 0);
    buf.str(TCA_KIND, "ingress");
    buf.end();
}

/// `ip link add NAME type ip6tnl mode ip6ip6 local LOCAL remote any`.
pub fn new_ip6tnl(buf: &mut MsgBuf, seq: u32, name: &str, local: Ipv6Addr) {
    buf.begin(
        RTM_NEWLINK,
        wire::NLM_F_REQUEST | wire::NLM_F_ACK | wire::NLM_F_CREATE | wire::NLM_F_EXCL,
        seq,
    );
    ifinfomsg(buf, 0, 0, 0);
    buf.str(IFLA_IFNAME, name);
    let li = buf.nest(IFLA_LINKINFO);
    buf.str(IFLA_INFO_KIND, "ip6tnl");
    let d = buf.nest(IFLA_INFO_DATA);
    buf.attr(IFLA_IPTUN_LOCAL, &local.octets());
    buf.attr(IFLA_IPTUN_REMOTE, &[0u8; 16]);
    buf.attr(IFLA_IPTUN_PROTO, &[IPPROTO_IPV6]);
    buf.nest_end(d);
    buf.nest_end(li);
    buf.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip6tnl_link_carries_its_local_address_and_mode() {
        let local: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let mut b = MsgBuf::new();
        new_ip6tnl(&mut b, 1, "acip6", local);
        let m = wire::messages(b.as_bytes()).next().unwrap().unwrap();
        let a = Attrs::new(&m.payload[16..]);
        let li = Attrs::new(a.find(IFLA_LINKINFO).unwrap());
        assert_eq!(
            li.find(IFLA_INFO_KIND).and_then(wire::get_str).as_deref(),
            Some("ip6tnl")
        );
        let d = Attrs::new(li.find(IFLA_INFO_DATA).unwrap());
        assert_eq!(d.find(IFLA_IPTUN_LOCAL), Some(&local.octets()[..]));
        assert_eq!(d.find(IFLA_IPTUN_PROTO), Some(&[IPPROTO_IPV6][..]));
        // A reply of the same shape reads back as an ip6tnl link with that local.
        let (_, info, _) = decode_link(&m).unwrap();
        assert_eq!(info.kind.as_deref(), Some("ip6tnl"));
        assert_eq!(info.ip6_local, Some(local));
    }
}
