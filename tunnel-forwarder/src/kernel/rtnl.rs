//! rtnetlink messages for links (dummy, ipip), addresses, the ingress qdisc and the
//! u32 + skbedit mark filters. Numbers from include/uapi/linux/{rtnetlink,if_link,
//! if_addr,if_tunnel,pkt_sched,pkt_cls}.h and tc_act/tc_skbedit.h.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::diff::{LinkInfo, ObservedFilter};
use crate::model::{MarkRule, Protocol};
use crate::netlink::wire::{self, Attrs, DecodeError, Msg, MsgBuf};
use crate::split::{SHARE_PRIO, SPLIT_CHAIN, SeqBlock, SplitClass, SplitRule};

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

/// Dump of the filters on `index`'s ingress.
pub fn get_filters(buf: &mut MsgBuf, seq: u32, index: u32) {
    buf.begin(RTM_GETTFILTER, wire::NLM_F_REQUEST | wire::NLM_F_DUMP, seq);
    tcmsg(buf, index, 0, INGRESS_HANDLE, 0);
    buf.end();
}

fn filter_info(prio: u16, eth_proto: u16) -> u32 {
    (u32::from(prio) << 16) | u32::from(eth_proto.to_be())
}

/// One u32 key: mask and value (host order; sent big-endian) at an offset from the
/// IP header (IHL 5 assumed, as `tc ... match ip dport` does too).
type Key = (u32, u32, i32);

/// What a filter of ours does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// `action skbedit mark M` (pipe).
    Mark(u32),
    /// `action goto chain N`.
    Goto(u32),
}

const PROTO_OFF: i32 = 8;
const TCP_SYN_ONLY: Key = (0x0012_0000, 0x0002_0000, 32);

fn proto_key(p: Protocol) -> Key {
    (0x00ff_0000, u32::from(p.number()) << 16, PROTO_OFF)
}

/// The loop guard's keys: IP protocol, destination, destination port.
fn mark_keys(protocol: Protocol, dst: Ipv4Addr, port: u16) -> [Key; 3] {
    [
        proto_key(protocol),
        (u32::MAX, u32::from(dst), 16),
        (0x0000_ffff, u32::from(port), 20),
    ]
}

/// IPv6: next header at byte 6, destination at 24..40, destination port at 42
/// (no extension headers assumed, as `tc ... match ip6 dport` does too).
const PROTO6_OFF: i32 = 4;
const PORT6_OFF: i32 = 40;

/// The IPv6 loop guard's keys: `match ip6 protocol N 0xff match ip6 dst VIP/128
/// match ip6 dport PORT 0xffff`.
fn mark_keys6(protocol: Protocol, dst: Ipv6Addr, port: u16) -> Vec<Key> {
    let mut keys = vec![(0x0000_ff00, u32::from(protocol.number()) << 8, PROTO6_OFF)];
    for (i, w) in dst.octets().chunks_exact(4).enumerate() {
        let w = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
        keys.push((u32::MAX, w, 24 + 4 * i as i32));
    }
    keys.push((0x0000_ffff, u32::from(port), PORT6_OFF));
    keys
}

/// A share block's keys: TCP, the ISN's block, SYN without ACK.
fn share_keys(b: &SeqBlock) -> [Key; 3] {
    [
        proto_key(Protocol::Tcp),
        (b.mask, b.value, 24),
        TCP_SYN_ONLY,
    ]
}

fn u32_sel(keys: &[Key]) -> Vec<u8> {
    let mut s = vec![0u8; 16];
    s[0] = TC_U32_TERMINAL;
    s[2] = keys.len() as u8; // nkeys
    for &(mask, val, off) in keys {
        s.extend_from_slice(&mask.to_be_bytes());
        s.extend_from_slice(&(val & mask).to_be_bytes());
        s.extend_from_slice(&off.to_ne_bytes());
        s.extend_from_slice(&0i32.to_ne_bytes()); // offmask
    }
    s
}

fn u32_filter(
    buf: &mut MsgBuf,
    seq: u32,
    index: u32,
    (chain, prio): (u32, u16),
    (eth_proto, keys): (u16, &[Key]),
    action: Action,
) {
    buf.begin(
        RTM_NEWTFILTER,
        wire::NLM_F_REQUEST | wire::NLM_F_ACK | wire::NLM_F_CREATE | wire::NLM_F_EXCL,
        seq,
    );
    tcmsg(buf, index, 0, INGRESS_HANDLE, filter_info(prio, eth_proto));
    buf.str(TCA_KIND, "u32");
    if chain != 0 {
        buf.u32(TCA_CHAIN, chain);
    }
    let opts = buf.nest(TCA_OPTIONS);
    buf.attr(TCA_U32_SEL, &u32_sel(keys));
    let acts = buf.nest(TCA_U32_ACT);
    let a1 = buf.nest(1);
    let mut parms = [0u8; 20];
    match action {
        Action::Mark(mark) => {
            buf.str(TCA_ACT_KIND, "skbedit");
            let ao = buf.nest(TCA_ACT_OPTIONS);
            parms[8..12].copy_from_slice(&TC_ACT_PIPE.to_ne_bytes());
            buf.attr(TCA_SKBEDIT_PARMS, &parms);
            buf.u32(TCA_SKBEDIT_MARK, mark);
            buf.nest_end(ao);
        }
        Action::Goto(chain) => {
            buf.str(TCA_ACT_KIND, "gact");
            let ao = buf.nest(TCA_ACT_OPTIONS);
            let verdict = TC_ACT_GOTO_CHAIN | chain as i32;
            parms[8..12].copy_from_slice(&verdict.to_ne_bytes());
            buf.attr(TCA_GACT_PARMS, &parms);
            buf.nest_end(ao);
        }
    }
    buf.nest_end(a1);
    buf.nest_end(acts);
    buf.nest_end(opts);
    buf.end();
}

/// `tc filter add dev DEV parent ffff: prio P protocol ip u32 match ... action
/// skbedit mark M`.
pub fn new_mark_filter(buf: &mut MsgBuf, seq: u32, index: u32, prio: u16, r: &MarkRule) {
    let (eth_proto, keys) = match r.dst {
        IpAddr::V4(dst) => (ETH_P_IP, mark_keys(r.protocol, dst, r.port).to_vec()),
        IpAddr::V6(dst) => (ETH_P_IPV6, mark_keys6(r.protocol, dst, r.port)),
    };
    let keys = (eth_proto, &keys[..]);
    u32_filter(buf, seq, index, (0, prio), keys, Action::Mark(r.mark));
}

/// `tc filter add dev DEV parent ffff: prio P protocol ip u32 match ip dst VIP/32
/// match ip protocol 6 0xff match ip dport PORT 0xffff action goto chain C`.
pub fn new_class_filter(buf: &mut MsgBuf, seq: u32, index: u32, prio: u16, c: &SplitClass) {
    let keys = mark_keys(Protocol::Tcp, c.dst, c.port);
    let keys = (ETH_P_IP, &keys[..]);
    u32_filter(buf, seq, index, (0, prio), keys, Action::Goto(SPLIT_CHAIN));
}

/// `tc filter add dev DEV parent ffff: chain C prio 1 protocol ip u32 ... action
/// skbedit mark M` for one block of the share.
pub fn new_share_filter(buf: &mut MsgBuf, seq: u32, index: u32, b: &SeqBlock, mark: u32) {
    let keys = share_keys(b);
    u32_filter(
        buf,
        seq,
        index,
        (SPLIT_CHAIN, SHARE_PRIO),
        (ETH_P_IP, &keys),
        Action::Mark(mark),
    );
}

/// `tc filter del dev DEV parent ffff: prio P handle H u32`: protocol 0 matches
/// the filter whatever its protocol (the kernel only compares a non-zero one).
pub fn del_filter(buf: &mut MsgBuf, seq: u32, index: u32, prio: u16, handle: u32) {
    buf.begin(RTM_DELTFILTER, wire::NLM_F_REQUEST | wire::NLM_F_ACK, seq);
    tcmsg(buf, index, handle, INGRESS_HANDLE, filter_info(prio, 0));
    buf.str(TCA_KIND, "u32");
    buf.end();
}

/// `tc filter del dev DEV parent ffff: chain C`: prio 0 flushes the chain (a chain
/// that does not exist is nothing to flush, not an error).
pub fn flush_chain(buf: &mut MsgBuf, seq: u32, index: u32, chain: u32) {
    buf.begin(RTM_DELTFILTER, wire::NLM_F_REQUEST | wire::NLM_F_ACK, seq);
    tcmsg(buf, index, 0, INGRESS_HANDLE, 0);
    buf.u32(TCA_CHAIN, chain);
    buf.end();
}

/// A filter reply: its chain, prio and handle, and what it does when it is a u32
/// node of one of our shapes (`None` for the u32 hash tables, which have no selector).
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
    let chain = a.find(TCA_CHAIN).and_then(wire::get_u32).unwrap_or(0);
    let Some(opts) = a.find(TCA_OPTIONS) else {
        return Ok(None);
    };
    let mut f = ObservedFilter {
        chain,
        prio,
        handle,
        rule: None,
        split: None,
    };
    if kind.as_deref() != Some("u32") {
        return Ok(Some(f));
    }
    let o = Attrs::new(opts);
    let Some(sel) = o.find(TCA_U32_SEL) else {
        return Ok(None);
    };
    if let (Some(keys), Some(action)) =
        (parse_keys(sel), o.find(TCA_U32_ACT).and_then(parse_action))
    {
        (f.rule, f.split) = interpret(&keys, action);
    }
    Ok(Some(f))
}

fn parse_keys(sel: &[u8]) -> Option<Vec<Key>> {
    let n = usize::from(*sel.get(2)?);
    (0..n)
        .map(|i| {
            let k = sel.get(16 + 16 * i..32 + 16 * i)?;
            let offmask = i32::from_ne_bytes(k[12..16].try_into().ok()?);
            (offmask == 0).then_some(())?;
            Some((
                u32::from_be_bytes(k[..4].try_into().ok()?),
                u32::from_be_bytes(k[4..8].try_into().ok()?),
                i32::from_ne_bytes(k[8..12].try_into().ok()?),
            ))
        })
        .collect()
}

/// Exactly one action: skbedit with a mark, or gact with a goto-chain verdict.
fn parse_action(act: &[u8]) -> Option<Action> {
    let mut found = None;
    for a in Attrs::new(act) {
        let (_, body) = a.ok()?;
        if found.is_some() {
            return None;
        }
        let b = Attrs::new(body);
        let o = Attrs::new(b.find(TCA_ACT_OPTIONS)?);
        found = match b.find(TCA_ACT_KIND).and_then(wire::get_str).as_deref() {
            Some("skbedit") => Some(Action::Mark(
                o.find(TCA_SKBEDIT_MARK).and_then(wire::get_u32)?,
            )),
            Some("gact") => {
                let parms = o.find(TCA_GACT_PARMS)?;
                let verdict = i32::from_ne_bytes(parms.get(8..12)?.try_into().ok()?);
                (verdict & !TC_ACT_EXT_VAL_MASK == TC_ACT_GOTO_CHAIN)
                    .then_some(Action::Goto((verdict & TC_ACT_EXT_VAL_MASK) as u32))
            }
            _ => None,
        };
        found?;
    }
    found
}

/// The IPv6 loop guard's shape, if `keys` has it.
fn interpret6(keys: &[Key], action: Action) -> Option<MarkRule> {
    let Action::Mark(mark) = action else {
        return None;
    };
    let [proto, d0, d1, d2, d3, port] = keys else {
        return None;
    };
    let shape = [
        (proto.0, proto.2),
        (d0.0, d0.2),
        (d1.0, d1.2),
        (d2.0, d2.2),
        (d3.0, d3.2),
        (port.0, port.2),
    ];
    let want = [
        (0x0000_ff00, PROTO6_OFF),
        (u32::MAX, 24),
        (u32::MAX, 28),
        (u32::MAX, 32),
        (u32::MAX, 36),
        (0x0000_ffff, PORT6_OFF),
    ];
    if shape != want {
        return None;
    }
    let protocol = Protocol::from_number(((proto.1 >> 8) & 0xff) as u16)?;
    let mut dst = [0u8; 16];
    for (i, k) in [d0, d1, d2, d3].iter().enumerate() {
        dst[4 * i..4 * i + 4].copy_from_slice(&k.1.to_be_bytes());
    }
    Some(MarkRule {
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        protocol,
        port: (port.1 & 0xffff) as u16,
        mark,
    })
}

fn interpret(keys: &[Key], action: Action) -> (Option<MarkRule>, Option<SplitRule>) {
    if let Some(rule) = interpret6(keys, action) {
        return (Some(rule), None);
    }
    let offsets: Vec<(u32, i32)> = keys.iter().map(|&(m, _, o)| (m, o)).collect();
    let protocol = keys
        .first()
        .filter(|k| k.2 == PROTO_OFF)
        .and_then(|k| Protocol::from_number(((k.1 >> 16) & 0xff) as u16));
    let Some(protocol) = protocol else {
        return (None, None);
    };
    if offsets == [(0x00ff_0000, 8), (u32::MAX, 16), (0x0000_ffff, 20)] {
        let dst = Ipv4Addr::from(keys[1].1);
        let port = (keys[2].1 & 0xffff) as u16;
        return match action {
            Action::Mark(mark) => (
                Some(MarkRule {
                    dst: IpAddr::V4(dst),
                    protocol,
                    port,
                    mark,
                }),
                None,
            ),
            Action::Goto(chain) if protocol == Protocol::Tcp => (
                None,
                Some(SplitRule::Class(SplitClass { dst, port }, chain)),
            ),
            Action::Goto(_) => (None, None),
        };
    }
    if protocol == Protocol::Tcp
        && keys.len() == 3
        && keys[1].2 == 24
        && keys[2] == TCP_SYN_ONLY
        && let Action::Mark(mark) = action
    {
        let block = SeqBlock {
            mask: keys[1].0,
            value: keys[1].1,
        };
        return (None, Some(SplitRule::Share(block, mark)));
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_filter_request_parses_back_as_the_same_rule() {
        let r = MarkRule {
            dst: IpAddr::V4(Ipv4Addr::new(10, 101, 4, 1)),
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
        assert_eq!(f.chain, 0);
    }

    #[test]
    fn split_filters_parse_back() {
        let c = SplitClass {
            dst: Ipv4Addr::new(10, 101, 4, 1),
            port: 443,
        };
        let mut b = MsgBuf::new();
        new_class_filter(&mut b, 1, 5, 0xac01, &c);
        let block = SeqBlock {
            mask: 0xc000_0000,
            value: 0x4000_0000,
        };
        new_share_filter(&mut b, 2, 5, &block, 9);
        let mut msgs = wire::messages(b.as_bytes());
        let f = decode_filter(&msgs.next().unwrap().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(f.split, Some(SplitRule::Class(c, SPLIT_CHAIN)));
        assert_eq!(f.rule, None);
        let g = decode_filter(&msgs.next().unwrap().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(g.split, Some(SplitRule::Share(block, 9)));
        assert_eq!((g.chain, g.prio), (SPLIT_CHAIN, SHARE_PRIO));
    }

    #[test]
    fn selector_bytes_match_tc_u32() {
        // tc filter add ... u32 match ip dst 10.101.4.1/32 → key mask ffffffff val 0a650401 off 16
        let s = u32_sel(&mark_keys(Protocol::Udp, Ipv4Addr::new(10, 101, 4, 1), 53));
        assert_eq!(&s[..4], &[TC_U32_TERMINAL, 0, 3, 0]);
        assert_eq!(&s[16..24], &[0, 0xff, 0, 0, 0, 17, 0, 0]);
        assert_eq!(&s[32..40], &[0xff, 0xff, 0xff, 0xff, 10, 101, 4, 1]);
        assert_eq!(&s[48..56], &[0, 0, 0xff, 0xff, 0, 0, 0, 53]);
    }

    #[test]
    fn ipv6_mark_filter_matches_tc_u32_ip6_and_parses_back() {
        // tc filter add dev acip6 parent ffff: protocol ipv6 u32 match ip6 protocol 6
        // 0xff match ip6 dst 2001:db8:4::1/128 match ip6 dport 80 0xffff: keys
        // 0000ff00/00000600 at 4, the address at 24..36, 0000ffff/00000050 at 40.
        let dst: Ipv6Addr = "2001:db8:4::1".parse().unwrap();
        let s = u32_sel(&mark_keys6(Protocol::Tcp, dst, 80));
        assert_eq!(&s[..4], &[TC_U32_TERMINAL, 0, 6, 0]);
        assert_eq!(&s[16..24], &[0, 0, 0xff, 0, 0, 0, 6, 0]);
        assert_eq!(i32::from_ne_bytes(s[24..28].try_into().unwrap()), 4);
        assert_eq!(
            &s[32..40],
            &[0xff, 0xff, 0xff, 0xff, 0x20, 0x01, 0x0d, 0xb8]
        );
        assert_eq!(i32::from_ne_bytes(s[40..44].try_into().unwrap()), 24);
        assert_eq!(&s[80..88], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]);
        assert_eq!(&s[96..104], &[0, 0, 0xff, 0xff, 0, 0, 0, 80]);
        assert_eq!(i32::from_ne_bytes(s[104..108].try_into().unwrap()), 40);
        let r = MarkRule {
            dst: IpAddr::V6(dst),
            protocol: Protocol::Udp,
            port: 53,
            mark: 0x42,
        };
        let mut b = MsgBuf::new();
        new_mark_filter(&mut b, 1, 5, 0xac01, &r);
        let m = wire::messages(b.as_bytes()).next().unwrap().unwrap();
        // protocol ipv6 in tcm_info's low half (network order).
        let info = u32::from_ne_bytes(m.payload[16..20].try_into().unwrap());
        assert_eq!(info, (0xac01 << 16) | u32::from(ETH_P_IPV6.to_be()));
        let f = decode_filter(&m).unwrap().unwrap();
        assert_eq!(f.rule, Some(r));
    }

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
