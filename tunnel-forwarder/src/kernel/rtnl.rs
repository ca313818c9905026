//! rtnetlink messages for links (dummy, ipip), addresses, the ingress qdisc and the
//! u32 + skbedit mark filters. Numbers from include/uapi/linux/{rtnetlink,if_link,
//! if_addr,if_tunnel,pkt_sched,pkt_cls}.h and tc_act/tc_skbedit.h.

use std::net::{IpAddr, Ipv4Addr};

use crate::diff::{LinkInfo, ObservedFilter};
use crate::model::{MarkRule, Protocol};
use crate::netlink::wire::{self, Attrs, DecodeError, Msg, MsgBuf};

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
const TC_U32_TERMINAL: u8 = 1;
const ETH_P_IP: u16 = 0x0800;

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

/// Whether a qdisc reply is an ingress qdisc of `index`.
pub fn is_ingress_of(m: &Msg<'_>, index: u32) -> bool {
    let Some(h) = m.payload.get(..20) else {
        return false;
    };
    let ifi = u32::from_ne_bytes(h[4..8].try_into().unwrap_or_default());
    let parent = u32::from_ne_bytes(h[12..16].try_into().unwrap_or_default());
    let kind = Attrs::new(&m.payload[20..])
        .find(TCA_KIND)
        .and_then(wire::get_str);
    ifi == index && parent == TC_H_INGRESS && kind.as_deref() == Some("ingress")
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

/// Dump of the filters on `index`'s ingress.
pub fn get_filters(buf: &mut MsgBuf, seq: u32, index: u32) {
    buf.begin(RTM_GETTFILTER, wire::NLM_F_REQUEST | wire::NLM_F_DUMP, seq);
    tcmsg(buf, index, 0, INGRESS_HANDLE, 0);
    buf.end();
}

fn filter_info(prio: u16) -> u32 {
    (u32::from(prio) << 16) | u32::from(ETH_P_IP.to_be())
}

/// The three u32 keys of a mark rule: IP protocol, destination, destination port
/// (IHL 5, as `tc ... match ip dport` assumes too).
fn keys(r: &MarkRule) -> [[u8; 16]; 3] {
    let key = |mask: u32, val: u32, off: i32| {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&mask.to_be_bytes());
        k[4..8].copy_from_slice(&val.to_be_bytes());
        k[8..12].copy_from_slice(&off.to_ne_bytes());
        k
    };
    [
        key(0x00ff_0000, u32::from(r.protocol.number()) << 16, 8),
        key(u32::MAX, u32::from(r.dst), 16),
        key(0x0000_ffff, u32::from(r.port), 20),
    ]
}

fn u32_sel(r: &MarkRule) -> Vec<u8> {
    let mut s = vec![0u8; 16];
    s[0] = TC_U32_TERMINAL;
    s[2] = 3; // nkeys
    for k in keys(r) {
        s.extend_from_slice(&k);
    }
    s
}

/// `tc filter add dev DEV parent ffff: prio P protocol ip u32 match ... action
/// skbedit mark M`.
pub fn new_mark_filter(buf: &mut MsgBuf, seq: u32, index: u32, prio: u16, r: &MarkRule) {
    buf.begin(
        RTM_NEWTFILTER,
        wire::NLM_F_REQUEST | wire::NLM_F_ACK | wire::NLM_F_CREATE | wire::NLM_F_EXCL,
        seq,
    );
    tcmsg(buf, index, 0, INGRESS_HANDLE, filter_info(prio));
    buf.str(TCA_KIND, "u32");
    let opts = buf.nest(TCA_OPTIONS);
    buf.attr(TCA_U32_SEL, &u32_sel(r));
    let acts = buf.nest(TCA_U32_ACT);
    let a1 = buf.nest(1);
    buf.str(TCA_ACT_KIND, "skbedit");
    let ao = buf.nest(TCA_ACT_OPTIONS);
    let mut parms = [0u8; 20];
    parms[8..12].copy_from_slice(&TC_ACT_PIPE.to_ne_bytes());
    buf.attr(TCA_SKBEDIT_PARMS, &parms);
    buf.u32(TCA_SKBEDIT_MARK, r.mark);
    buf.nest_end(ao);
    buf.nest_end(a1);
    buf.nest_end(acts);
    buf.nest_end(opts);
    buf.end();
}

/// `tc filter del dev DEV parent ffff: prio P handle H protocol ip u32`.
pub fn del_filter(buf: &mut MsgBuf, seq: u32, index: u32, prio: u16, handle: u32) {
    buf.begin(RTM_DELTFILTER, wire::NLM_F_REQUEST | wire::NLM_F_ACK, seq);
    tcmsg(buf, index, handle, INGRESS_HANDLE, filter_info(prio));
    buf.str(TCA_KIND, "u32");
    buf.end();
}

/// A filter reply: its prio and handle, and the rule when it is a u32 node with
/// exactly our three keys and one skbedit mark action. `None` for non-nodes (the
/// u32 hash tables) which have no selector.
pub fn decode_filter(m: &Msg<'_>) -> Result<Option<ObservedFilter>, DecodeError> {
    let p = m.payload;
    let h = p.get(..20).ok_or(DecodeError {
        offset: 0,
        what: "short tcmsg",
    })?;
    let handle = u32::from_ne_bytes(h[8..12].try_into().unwrap_or_default());
    let info = u32::from_ne_bytes(h[16..20].try_into().unwrap_or_default());
    let prio = (info >> 16) as u16;
    let a = Attrs::new(&p[20..]);
    let kind = a.find(TCA_KIND).and_then(wire::get_str);
    let Some(opts) = a.find(TCA_OPTIONS) else {
        return Ok(None);
    };
    if kind.as_deref() != Some("u32") {
        return Ok(Some(ObservedFilter {
            prio,
            handle,
            rule: None,
        }));
    }
    let o = Attrs::new(opts);
    let Some(sel) = o.find(TCA_U32_SEL) else {
        return Ok(None);
    };
    let rule = parse_rule(sel, o.find(TCA_U32_ACT));
    Ok(Some(ObservedFilter { prio, handle, rule }))
}

fn parse_rule(sel: &[u8], act: Option<&[u8]>) -> Option<MarkRule> {
    if sel.len() < 16 + 3 * 16 || sel[2] != 3 {
        return None;
    }
    let key = |i: usize| {
        let k = &sel[16 + 16 * i..32 + 16 * i];
        (
            u32::from_be_bytes(k[..4].try_into().unwrap_or_default()),
            u32::from_be_bytes(k[4..8].try_into().unwrap_or_default()),
            i32::from_ne_bytes(k[8..12].try_into().unwrap_or_default()),
        )
    };
    let (m0, v0, o0) = key(0);
    let (m1, v1, o1) = key(1);
    let (m2, v2, o2) = key(2);
    if (m0, o0, m1, o1, m2, o2) != (0x00ff_0000, 8, u32::MAX, 16, 0x0000_ffff, 20) {
        return None;
    }
    let protocol = Protocol::from_number(((v0 >> 16) & 0xff) as u16)?;
    // Exactly one action, skbedit with a mark.
    let acts = Attrs::new(act?);
    let mut mark = None;
    for a in acts {
        let (_, body) = a.ok()?;
        if mark.is_some() {
            return None;
        }
        let b = Attrs::new(body);
        if b.find(TCA_ACT_KIND).and_then(wire::get_str).as_deref() != Some("skbedit") {
            return None;
        }
        let o = Attrs::new(b.find(TCA_ACT_OPTIONS)?);
        mark = Some(o.find(TCA_SKBEDIT_MARK).and_then(wire::get_u32)?);
    }
    Some(MarkRule {
        dst: Ipv4Addr::from(v1),
        protocol,
        port: (v2 & 0xffff) as u16,
        mark: mark?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_filter_request_parses_back_as_the_same_rule() {
        let r = MarkRule {
            dst: Ipv4Addr::new(10, 101, 4, 1),
            protocol: Protocol::Tcp,
            port: 80,
            mark: 0x41,
        };
        let mut b = MsgBuf::new();
        new_mark_filter(&mut b, 1, 5, 0xac01, &r);
        b.end();
        let m = wire::messages(b.as_bytes()).next().unwrap().unwrap();
        let f = decode_filter(&m).unwrap().unwrap();
        assert_eq!(f.prio, 0xac01);
        assert_eq!(f.rule, Some(r));
    }

    #[test]
    fn selector_bytes_match_tc_u32() {
        // tc filter add ... u32 match ip dst 10.101.4.1/32 → key mask ffffffff val 0a650401 off 16
        let r = MarkRule {
            dst: Ipv4Addr::new(10, 101, 4, 1),
            protocol: Protocol::Udp,
            port: 53,
            mark: 1,
        };
        let s = u32_sel(&r);
        assert_eq!(&s[..4], &[TC_U32_TERMINAL, 0, 3, 0]);
        assert_eq!(&s[16..24], &[0, 0xff, 0, 0, 0, 17, 0, 0]);
        assert_eq!(&s[32..40], &[0xff, 0xff, 0xff, 0xff, 10, 101, 4, 1]);
        assert_eq!(&s[48..56], &[0, 0, 0xff, 0xff, 0, 0, 0, 53]);
    }
}
