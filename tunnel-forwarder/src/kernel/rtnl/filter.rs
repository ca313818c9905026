//! The u32 filters on an ingress: the loop guard's mark filters (IPv4 on the IPIP
//! device, IPv6 on the ip6ip6 device) and the spill split's class and share
//! filters; encoded as `tc` would, and read back into the rules they express.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::diff::ObservedFilter;
use crate::model::{MarkRule, Protocol};
use crate::netlink::wire::{self, Attrs, DecodeError, Msg, MsgBuf};
use crate::split::{Draw, SPLIT_CHAIN, SeqBlock, SplitClass, SplitRule};

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

/// The transport header's offset: 20 (IPv4 without options) or 40 (IPv6 without
/// extension headers).
fn l4(ipv6: bool) -> i32 {
    if ipv6 { 40 } else { 20 }
}

/// TCP flags (the word at the TCP header's byte 12): SYN set, ACK clear.
fn tcp_syn_only(ipv6: bool) -> Key {
    (0x0012_0000, 0x0002_0000, l4(ipv6) + 12)
}

/// `match ip protocol N 0xff` or `match ip6 protocol N 0xff`.
fn proto_key(p: Protocol, ipv6: bool) -> Key {
    if ipv6 {
        (0x0000_ff00, u32::from(p.number()) << 8, PROTO6_OFF)
    } else {
        (0x00ff_0000, u32::from(p.number()) << 16, PROTO_OFF)
    }
}

/// The loop guard's keys: IP protocol, destination, destination port.
fn mark_keys(protocol: Protocol, dst: Ipv4Addr, port: u16) -> [Key; 3] {
    [
        proto_key(protocol, false),
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
    let mut keys = vec![proto_key(protocol, true)];
    for (i, w) in dst.octets().chunks_exact(4).enumerate() {
        let w = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
        keys.push((u32::MAX, w, 24 + 4 * i as i32));
    }
    keys.push((0x0000_ffff, u32::from(port), PORT6_OFF));
    keys
}

/// The keys of a filter on `dst:port` (the loop guard's and the split's classes).
fn dst_keys(protocol: Protocol, dst: IpAddr, port: u16) -> (u16, Vec<Key>) {
    match dst {
        IpAddr::V4(dst) => (ETH_P_IP, mark_keys(protocol, dst, port).to_vec()),
        IpAddr::V6(dst) => (ETH_P_IPV6, mark_keys6(protocol, dst, port)),
    }
}

/// A share block's keys: TCP, the ISN's block (the word at the TCP header's byte 4),
/// SYN without ACK; or UDP, the source port's block (the ports word); at the offsets
/// of the draw's family.
fn share_keys(draw: Draw, b: &SeqBlock) -> Vec<Key> {
    let v6 = draw.ipv6();
    if draw.tcp() {
        vec![
            proto_key(Protocol::Tcp, v6),
            (b.mask, b.value, l4(v6) + 4),
            tcp_syn_only(v6),
        ]
    } else {
        let p = b.on_ports();
        vec![proto_key(Protocol::Udp, v6), (p.mask, p.value, l4(v6))]
    }
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
    let (eth_proto, keys) = dst_keys(r.protocol, r.dst, r.port);
    let keys = (eth_proto, &keys[..]);
    u32_filter(buf, seq, index, (0, prio), keys, Action::Mark(r.mark));
}

/// `tc filter add dev DEV parent ffff: prio P protocol ip u32 match ip dst VIP/32
/// match ip protocol 6|17 0xff match ip dport PORT 0xffff action goto chain C`
/// (`protocol ipv6 ... match ip6 dst VIP6/128 ...` for an IPv6 VIP).
pub fn new_class_filter(buf: &mut MsgBuf, seq: u32, index: u32, prio: u16, c: &SplitClass) {
    let (eth_proto, keys) = dst_keys(c.protocol, c.dst, c.port);
    let keys = (eth_proto, &keys[..]);
    u32_filter(buf, seq, index, (0, prio), keys, Action::Goto(SPLIT_CHAIN));
}

/// `tc filter add dev DEV parent ffff: chain C prio 1 protocol ip u32 ... action
/// skbedit mark M` for one block of the share, drawn on TCP or UDP (`prio 2
/// protocol ipv6` for the IPv6 draws).
pub fn new_share_filter(
    buf: &mut MsgBuf,
    seq: u32,
    index: u32,
    (draw, b): (Draw, &SeqBlock),
    mark: u32,
) {
    let keys = share_keys(draw, b);
    let eth_proto = if draw.ipv6() { ETH_P_IPV6 } else { ETH_P_IP };
    u32_filter(
        buf,
        seq,
        index,
        (SPLIT_CHAIN, draw.prio()),
        (eth_proto, &keys),
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

/// The IPv6 loop guard's or class filter's shape, if `keys` has it: (VIP6, port).
fn dst6(keys: &[Key]) -> Option<(IpAddr, u16)> {
    let [_, d0, d1, d2, d3, port] = keys else {
        return None;
    };
    let shape = [
        (d0.0, d0.2),
        (d1.0, d1.2),
        (d2.0, d2.2),
        (d3.0, d3.2),
        (port.0, port.2),
    ];
    let want = [
        (u32::MAX, 24),
        (u32::MAX, 28),
        (u32::MAX, 32),
        (u32::MAX, 36),
        (0x0000_ffff, PORT6_OFF),
    ];
    if shape != want {
        return None;
    }
    let mut dst = [0u8; 16];
    for (i, k) in [d0, d1, d2, d3].iter().enumerate() {
        dst[4 * i..4 * i + 4].copy_from_slice(&k.1.to_be_bytes());
    }
    Some((IpAddr::V6(Ipv6Addr::from(dst)), (port.1 & 0xffff) as u16))
}

/// The IPv4 loop guard's or class filter's shape, if `keys` has it: (VIP, port).
fn dst4(keys: &[Key]) -> Option<(IpAddr, u16)> {
    let shape: Vec<(u32, i32)> = keys.iter().skip(1).map(|&(m, _, o)| (m, o)).collect();
    (shape == [(u32::MAX, 16), (0x0000_ffff, 20)]).then(|| {
        (
            IpAddr::V4(Ipv4Addr::from(keys[1].1)),
            (keys[2].1 & 0xffff) as u16,
        )
    })
}

/// The family and protocol the first key matches (`match ip protocol` or `match ip6
/// protocol`).
fn family_protocol(k: &Key) -> Option<(bool, Protocol)> {
    let (ipv6, n) = match (k.0, k.2) {
        (0x00ff_0000, PROTO_OFF) => (false, k.1 >> 16),
        (0x0000_ff00, PROTO6_OFF) => (true, k.1 >> 8),
        _ => return None,
    };
    Some((ipv6, Protocol::from_number((n & 0xff) as u16)?))
}

fn interpret(keys: &[Key], action: Action) -> (Option<MarkRule>, Option<SplitRule>) {
    let Some((ipv6, protocol)) = keys.first().and_then(family_protocol) else {
        return (None, None);
    };
    let dst = if ipv6 { dst6(keys) } else { dst4(keys) };
    if let Some((dst, port)) = dst {
        return match action {
            Action::Mark(mark) => (
                Some(MarkRule {
                    dst,
                    protocol,
                    port,
                    mark,
                }),
                None,
            ),
            Action::Goto(chain) if matches!(protocol, Protocol::Tcp | Protocol::Udp) => (
                None,
                Some(SplitRule::Class(
                    SplitClass {
                        dst,
                        protocol,
                        port,
                    },
                    chain,
                )),
            ),
            Action::Goto(_) => (None, None),
        };
    }
    let Action::Mark(mark) = action else {
        return (None, None);
    };
    let (tcp, udp) = if ipv6 {
        (Draw::TcpIsn6, Draw::UdpPort6)
    } else {
        (Draw::TcpIsn, Draw::UdpPort)
    };
    let draw = match (protocol, keys) {
        (Protocol::Tcp, [_, isn, syn]) if isn.2 == l4(ipv6) + 4 && *syn == tcp_syn_only(ipv6) => {
            Some((
                tcp,
                SeqBlock {
                    mask: isn.0,
                    value: isn.1,
                },
            ))
        }
        (Protocol::Udp, [_, ports]) if ports.2 == l4(ipv6) => SeqBlock::from_ports(SeqBlock {
            mask: ports.0,
            value: ports.1,
        })
        .map(|b| (udp, b)),
        _ => None,
    };
    (None, draw.map(|(d, b)| SplitRule::Share(d, b, mark)))
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
        let block = SeqBlock {
            mask: 0xc000_0000,
            value: 0x4000_0000,
        };
        for (protocol, draw) in [
            (Protocol::Tcp, Draw::TcpIsn),
            (Protocol::Udp, Draw::UdpPort),
        ] {
            let c = SplitClass {
                dst: IpAddr::V4(Ipv4Addr::new(10, 101, 4, 1)),
                protocol,
                port: 443,
            };
            let mut b = MsgBuf::new();
            new_class_filter(&mut b, 1, 5, 0xac01, &c);
            new_share_filter(&mut b, 2, 5, (draw, &block), 9);
            let mut msgs = wire::messages(b.as_bytes());
            let f = decode_filter(&msgs.next().unwrap().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(f.split, Some(SplitRule::Class(c, SPLIT_CHAIN)));
            assert_eq!(f.rule, None);
            let g = decode_filter(&msgs.next().unwrap().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(g.split, Some(SplitRule::Share(draw, block, 9)));
            assert_eq!((g.chain, g.prio), (SPLIT_CHAIN, crate::split::SHARE_PRIO));
        }
    }

    #[test]
    fn ipv6_split_filters_parse_back_at_ipv6_offsets() {
        let block = SeqBlock {
            mask: 0xe000_0000,
            value: 0x2000_0000,
        };
        let dst: IpAddr = "2001:db8:4::1".parse().unwrap();
        for (protocol, draw) in [
            (Protocol::Tcp, Draw::TcpIsn6),
            (Protocol::Udp, Draw::UdpPort6),
        ] {
            let c = SplitClass {
                dst,
                protocol,
                port: 443,
            };
            let mut b = MsgBuf::new();
            new_class_filter(&mut b, 1, 5, 0xac02, &c);
            new_share_filter(&mut b, 2, 5, (draw, &block), 9);
            let mut msgs = wire::messages(b.as_bytes());
            let m = msgs.next().unwrap().unwrap();
            let info = u32::from_ne_bytes(m.payload[16..20].try_into().unwrap());
            assert_eq!(info, (0xac02 << 16) | u32::from(ETH_P_IPV6.to_be()));
            let f = decode_filter(&m).unwrap().unwrap();
            assert_eq!(f.split, Some(SplitRule::Class(c, SPLIT_CHAIN)));
            assert_eq!(f.rule, None);
            let m = msgs.next().unwrap().unwrap();
            let info = u32::from_ne_bytes(m.payload[16..20].try_into().unwrap());
            assert_eq!(info, (2 << 16) | u32::from(ETH_P_IPV6.to_be()));
            let g = decode_filter(&m).unwrap().unwrap();
            assert_eq!(g.split, Some(SplitRule::Share(draw, block, 9)));
            assert_eq!((g.chain, g.prio), (SPLIT_CHAIN, crate::split::SHARE_PRIO6));
        }
        // tc ... protocol ipv6 u32 match ip6 protocol 6 0xff match u32 0x20000000
        // 0xe0000000 at 44 match u32 0x20000 0x120000 at 52: next header at byte 6,
        // the ISN at 44, the flags word at 52; UDP's ports word at 40.
        let offsets = |keys: &[Key]| keys.iter().map(|k| k.2).collect::<Vec<_>>();
        let tcp = share_keys(Draw::TcpIsn6, &block);
        assert_eq!(offsets(&tcp), [4, 44, 52]);
        assert_eq!(tcp[0], (0x0000_ff00, 0x0000_0600, 4));
        assert_eq!(tcp[2], (0x0012_0000, 0x0002_0000, 52));
        let udp = share_keys(Draw::UdpPort6, &block);
        assert_eq!(offsets(&udp), [4, 40]);
        assert_eq!(udp[0], (0x0000_ff00, 0x0000_1100, 4));
        // An IPv4-offset share key inside an IPv6 filter is no share of ours.
        let odd = [
            proto_key(Protocol::Tcp, true),
            (0xe000_0000, 0, 24),
            tcp_syn_only(false),
        ];
        assert_eq!(interpret(&odd, Action::Mark(9)), (None, None));
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
}
