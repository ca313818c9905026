//! The IPVS generic netlink family ("IPVS", version 1): message encoding and
//! decoding. Attribute numbers are those of the kernel's include/uapi/linux/ip_vs.h.

use std::net::IpAddr;

use crate::model::{
    Dest, Encap, Forward, Persistence, Protocol, SVC_F_ONEPACKET, SVC_F_OURS, SVC_F_PERSISTENT,
    SVC_F_SCHED_SHIFT, ServiceConfig, ServiceKey,
};
use crate::netlink::wire::{self, Attrs, DecodeError, MsgBuf};
use crate::stats::Counters;

pub const FAMILY_NAME: &str = "IPVS";
pub const VERSION: u8 = 1;

pub const CMD_NEW_SERVICE: u8 = 1;
pub const CMD_SET_SERVICE: u8 = 2;
pub const CMD_DEL_SERVICE: u8 = 3;
pub const CMD_GET_SERVICE: u8 = 4;
pub const CMD_NEW_DEST: u8 = 5;
pub const CMD_SET_DEST: u8 = 6;
pub const CMD_DEL_DEST: u8 = 7;
pub const CMD_GET_DEST: u8 = 8;

const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;

const SVC_ATTR_AF: u16 = 1;
const SVC_ATTR_PROTOCOL: u16 = 2;
const SVC_ATTR_ADDR: u16 = 3;
const SVC_ATTR_PORT: u16 = 4;
const SVC_ATTR_FWMARK: u16 = 5;
const SVC_ATTR_SCHED_NAME: u16 = 6;
const SVC_ATTR_FLAGS: u16 = 7;
const SVC_ATTR_TIMEOUT: u16 = 8;
const SVC_ATTR_NETMASK: u16 = 9;
const SVC_ATTR_STATS: u16 = 10;
const SVC_ATTR_STATS64: u16 = 12;

const DEST_ATTR_ADDR: u16 = 1;
const DEST_ATTR_PORT: u16 = 2;
const DEST_ATTR_FWD_METHOD: u16 = 3;
const DEST_ATTR_WEIGHT: u16 = 4;
const DEST_ATTR_U_THRESH: u16 = 5;
const DEST_ATTR_L_THRESH: u16 = 6;
const DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const DEST_ATTR_INACT_CONNS: u16 = 8;
const DEST_ATTR_PERSIST_CONNS: u16 = 9;
const DEST_ATTR_STATS: u16 = 10;
const DEST_ATTR_ADDR_FAMILY: u16 = 11;
const DEST_ATTR_STATS64: u16 = 12;
/// u8, Linux 5.2.
const DEST_ATTR_TUN_TYPE: u16 = 13;
/// be16, Linux 5.2.
const DEST_ATTR_TUN_PORT: u16 = 14;
/// u16, Linux 5.3.
const DEST_ATTR_TUN_FLAGS: u16 = 15;

const STATS_CONNS: u16 = 1;
const STATS_INPKTS: u16 = 2;
const STATS_OUTPKTS: u16 = 3;
const STATS_INBYTES: u16 = 4;
const STATS_OUTBYTES: u16 = 5;
const STATS_CPS: u16 = 6;
const STATS_INPPS: u16 = 7;
const STATS_OUTPPS: u16 = 8;
const STATS_INBPS: u16 = 9;
const STATS_OUTBPS: u16 = 10;

/// Starts a genetlink message: nlmsghdr + genlmsghdr.
pub fn begin(buf: &mut MsgBuf, family: u16, cmd: u8, flags: u16, seq: u32) {
    buf.begin(family, flags, seq);
    buf.raw(&[cmd, VERSION, 0, 0]);
}

fn af(key: &ServiceKey) -> u16 {
    match key {
        ServiceKey::Addr { addr, .. } => wire::af_of(addr),
        ServiceKey::Fwmark { ipv6: false, .. } => libc::AF_INET as u16,
        ServiceKey::Fwmark { ipv6: true, .. } => libc::AF_INET6 as u16,
    }
}

fn key_attrs(buf: &mut MsgBuf, key: &ServiceKey) {
    buf.u16(SVC_ATTR_AF, af(key));
    match key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            buf.u16(SVC_ATTR_PROTOCOL, u16::from(protocol.number()));
            buf.attr(SVC_ATTR_ADDR, &wire::inet_addr16(addr));
            buf.be16(SVC_ATTR_PORT, *port);
        }
        ServiceKey::Fwmark { mark, .. } => buf.u32(SVC_ATTR_FWMARK, *mark),
    }
}

/// The service attribute with only its key (for dest commands, deletes, dumps).
pub fn service_key(buf: &mut MsgBuf, key: &ServiceKey) {
    let n = buf.nest(CMD_ATTR_SERVICE);
    key_attrs(buf, key);
    buf.nest_end(n);
}

/// The full service attribute (NEW/SET_SERVICE).
pub fn service_full(buf: &mut MsgBuf, key: &ServiceKey, cfg: &ServiceConfig) {
    let n = buf.nest(CMD_ATTR_SERVICE);
    key_attrs(buf, key);
    buf.str(SVC_ATTR_SCHED_NAME, &cfg.scheduler);
    let flags = cfg.flags();
    let mut f = [0u8; 8];
    f[..4].copy_from_slice(&flags.to_ne_bytes());
    f[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
    buf.attr(SVC_ATTR_FLAGS, &f);
    buf.u32(
        SVC_ATTR_TIMEOUT,
        cfg.persistence.map(|p| p.timeout).unwrap_or(0),
    );
    buf.u32(
        SVC_ATTR_NETMASK,
        cfg.netmask_for(af(key) == libc::AF_INET6 as u16),
    );
    buf.nest_end(n);
}

/// The destination attribute; `full` adds method, weight and thresholds.
pub fn dest(buf: &mut MsgBuf, addr: &IpAddr, port: u16, d: Option<&Dest>) {
    let n = buf.nest(CMD_ATTR_DEST);
    buf.attr(DEST_ATTR_ADDR, &wire::inet_addr16(addr));
    buf.be16(DEST_ATTR_PORT, port);
    buf.u16(DEST_ATTR_ADDR_FAMILY, wire::af_of(addr));
    if let Some(d) = d {
        buf.u32(DEST_ATTR_FWD_METHOD, d.forward.kernel());
        buf.u32(DEST_ATTR_WEIGHT, d.weight);
        buf.u32(DEST_ATTR_U_THRESH, d.upper);
        buf.u32(DEST_ATTR_L_THRESH, d.lower);
        // Only when not plain IPIP: a kernel before 5.2 then still takes the request.
        if d.encap != Encap::Ipip {
            let (ty, port, flags) = d.encap.kernel();
            buf.attr(DEST_ATTR_TUN_TYPE, &[ty]);
            buf.be16(DEST_ATTR_TUN_PORT, port);
            buf.u16(DEST_ATTR_TUN_FLAGS, flags);
        }
    }
    buf.nest_end(n);
}

/// A decoded service of a GET_SERVICE dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KService {
    pub key: ServiceKey,
    pub config: ServiceConfig,
    pub stats: Counters,
}

/// A decoded destination of a GET_DEST dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KDest {
    pub dest: Dest,
    /// Forwarding method bits the model does not know (e.g. local node).
    pub raw_forward: u32,
    pub active: u32,
    pub inactive: u32,
    pub persistent: u32,
    pub stats: Counters,
}

fn bad(what: &'static str) -> DecodeError {
    DecodeError { offset: 0, what }
}

fn nested(payload: &[u8], ty: u16) -> Result<Attrs<'_>, DecodeError> {
    // Skip the 4-byte genlmsghdr.
    let body = payload.get(4..).ok_or(bad("short genetlink message"))?;
    let outer = Attrs::new(body);
    for a in outer.clone() {
        a?;
    }
    Ok(Attrs::new(
        outer.find(ty).ok_or(bad("missing nested attribute"))?,
    ))
}

fn counters(a: Option<&[u8]>, wide: bool) -> Counters {
    let Some(a) = a else {
        return Counters::default();
    };
    let at = Attrs::new(a);
    let g = |t| {
        at.find(t)
            .and_then(|p| {
                if wide {
                    wire::get_u64(p)
                } else {
                    wire::get_u32(p).map(u64::from).or_else(|| wire::get_u64(p))
                }
            })
            .unwrap_or(0)
    };
    Counters {
        conns: g(STATS_CONNS),
        in_packets: g(STATS_INPKTS),
        out_packets: g(STATS_OUTPKTS),
        in_bytes: g(STATS_INBYTES),
        out_bytes: g(STATS_OUTBYTES),
        cps: g(STATS_CPS),
        in_pps: g(STATS_INPPS),
        out_pps: g(STATS_OUTPPS),
        in_bps: g(STATS_INBPS),
        out_bps: g(STATS_OUTBPS),
    }
}

/// Decodes one GET_SERVICE reply message payload (after nlmsghdr).
pub fn decode_service(payload: &[u8]) -> Result<KService, DecodeError> {
    let a = nested(payload, CMD_ATTR_SERVICE)?;
    let af = a
        .find(SVC_ATTR_AF)
        .and_then(wire::get_u16)
        .ok_or(bad("service without af"))?;
    let key = if let Some(mark) = a
        .find(SVC_ATTR_FWMARK)
        .and_then(wire::get_u32)
        .filter(|m| *m != 0)
    {
        ServiceKey::Fwmark {
            mark,
            ipv6: af == libc::AF_INET6 as u16,
        }
    } else {
        let protocol = a
            .find(SVC_ATTR_PROTOCOL)
            .and_then(wire::get_u16)
            .and_then(Protocol::from_number)
            .ok_or(bad("service with unknown protocol"))?;
        let addr = a
            .find(SVC_ATTR_ADDR)
            .and_then(|p| wire::get_addr(p, af))
            .ok_or(bad("service without address"))?;
        let port = a
            .find(SVC_ATTR_PORT)
            .and_then(wire::get_be16)
            .ok_or(bad("service without port"))?;
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        }
    };
    let scheduler = a
        .find(SVC_ATTR_SCHED_NAME)
        .and_then(wire::get_str)
        .unwrap_or_default();
    let flags = a.find(SVC_ATTR_FLAGS).and_then(wire::get_u32).unwrap_or(0) & SVC_F_OURS;
    let timeout = a
        .find(SVC_ATTR_TIMEOUT)
        .and_then(wire::get_u32)
        .unwrap_or(0);
    let netmask = a
        .find(SVC_ATTR_NETMASK)
        .and_then(wire::get_u32)
        .unwrap_or(u32::MAX);
    let persistence = (flags & SVC_F_PERSISTENT != 0).then(|| Persistence {
        timeout,
        netmask_len: if af == libc::AF_INET6 as u16 {
            netmask.min(128) as u8
        } else {
            u32::from_be(netmask).leading_ones() as u8
        },
    });
    let stats = match a.find(SVC_ATTR_STATS64) {
        Some(s) => counters(Some(s), true),
        None => counters(a.find(SVC_ATTR_STATS), false),
    };
    Ok(KService {
        key,
        config: ServiceConfig {
            scheduler,
            persistence,
            one_packet: flags & SVC_F_ONEPACKET != 0,
            sched_flags: ((flags >> SVC_F_SCHED_SHIFT) & 0x7) as u8,
        },
        stats,
    })
}

/// Decodes one GET_DEST reply; `svc_af` is the service's family (used when the dest
/// carries no family of its own, kernels before 4.x).
pub fn decode_dest(payload: &[u8], svc_af: u16) -> Result<KDest, DecodeError> {
    let a = nested(payload, CMD_ATTR_DEST)?;
    let af = a
        .find(DEST_ATTR_ADDR_FAMILY)
        .and_then(wire::get_u16)
        .unwrap_or(svc_af);
    let addr = a
        .find(DEST_ATTR_ADDR)
        .and_then(|p| wire::get_addr(p, af))
        .ok_or(bad("dest without address"))?;
    let port = a
        .find(DEST_ATTR_PORT)
        .and_then(wire::get_be16)
        .ok_or(bad("dest without port"))?;
    let raw_forward = a
        .find(DEST_ATTR_FWD_METHOD)
        .and_then(wire::get_u32)
        .unwrap_or(0);
    let g = |t| a.find(t).and_then(wire::get_u32).unwrap_or(0);
    let forward = Forward::from_kernel(raw_forward).unwrap_or(Forward::Nat);
    // The tunnel attributes mean something for a tunnel destination only; an unknown
    // type reads as a GUE to port 0, which no desired destination is, so the diff
    // rewrites it.
    let encap = if forward == Forward::Tunnel {
        let ty = a
            .find(DEST_ATTR_TUN_TYPE)
            .and_then(|p| p.first().copied())
            .unwrap_or(0);
        let port = a
            .find(DEST_ATTR_TUN_PORT)
            .and_then(wire::get_be16)
            .unwrap_or(0);
        let flags = a
            .find(DEST_ATTR_TUN_FLAGS)
            .and_then(wire::get_u16)
            .unwrap_or(0);
        Encap::from_kernel(ty, port, flags).unwrap_or(Encap::Gue {
            port: 0,
            csum: false,
        })
    } else {
        Encap::Ipip
    };
    let stats = match a.find(DEST_ATTR_STATS64) {
        Some(s) => counters(Some(s), true),
        None => counters(a.find(DEST_ATTR_STATS), false),
    };
    Ok(KDest {
        dest: Dest {
            addr,
            port,
            // A method we do not model (local node) never equals a desired one, so the
            // diff rewrites it.
            forward,
            weight: g(DEST_ATTR_WEIGHT),
            upper: g(DEST_ATTR_U_THRESH),
            lower: g(DEST_ATTR_L_THRESH),
            encap,
        },
        raw_forward: raw_forward & 0x7,
        active: g(DEST_ATTR_ACTIVE_CONNS),
        inactive: g(DEST_ATTR_INACT_CONNS),
        persistent: g(DEST_ATTR_PERSIST_CONNS),
        stats,
    })
}

/// Family of a service key (for decode_dest).
pub fn key_af(key: &ServiceKey) -> u16 {
    af(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Wraps the attributes of a request as the kernel's reply would carry them.
    fn reply_of(buf: &MsgBuf) -> Vec<u8> {
        // Strip the nlmsghdr: payload starts at the genlmsghdr.
        buf.as_bytes()[16..].to_vec()
    }

    #[test]
    fn service_round_trips_through_the_codec() {
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(10, 101, 4, 1)),
            port: 80,
        };
        let cfg = ServiceConfig {
            scheduler: "wlc".into(),
            persistence: Some(Persistence {
                timeout: 300,
                netmask_len: 24,
            }),
            one_packet: false,
            sched_flags: 0,
        };
        let mut b = MsgBuf::new();
        begin(&mut b, 0x20, CMD_NEW_SERVICE, 0, 1);
        service_full(&mut b, &key, &cfg);
        b.end();
        let s = decode_service(&reply_of(&b)).unwrap();
        assert_eq!(s.key, key);
        assert_eq!(s.config, cfg);
    }

    #[test]
    fn ipv6_service_with_persistence_round_trips() {
        let key = ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: "2001:db8::1".parse().unwrap(),
            port: 53,
        };
        let cfg = ServiceConfig {
            persistence: Some(Persistence {
                timeout: 60,
                netmask_len: 64,
            }),
            ..ServiceConfig::default()
        };
        let mut b = MsgBuf::new();
        begin(&mut b, 0x20, CMD_NEW_SERVICE, 0, 1);
        service_full(&mut b, &key, &cfg);
        b.end();
        let s = decode_service(&reply_of(&b)).unwrap();
        assert_eq!((s.key, s.config), (key, cfg));
        // Without persistence the kernel still wants a prefix length in 1..=128.
        assert_eq!(ServiceConfig::default().netmask_for(true), 128);
    }

    #[test]
    fn fwmark_service_and_dest_round_trip() {
        let key = ServiceKey::Fwmark {
            mark: 7,
            ipv6: false,
        };
        let mut b = MsgBuf::new();
        begin(&mut b, 0x20, CMD_NEW_SERVICE, 0, 1);
        service_full(&mut b, &key, &ServiceConfig::default());
        b.end();
        assert_eq!(decode_service(&reply_of(&b)).unwrap().key, key);

        let d = Dest::new(
            IpAddr::V4(Ipv4Addr::new(10, 2, 0, 2)),
            80,
            Forward::Tunnel,
            3,
        );
        let mut b = MsgBuf::new();
        begin(&mut b, 0x20, CMD_NEW_DEST, 0, 1);
        dest(&mut b, &d.addr, d.port, Some(&d));
        b.end();
        let k = decode_dest(&reply_of(&b), libc::AF_INET as u16).unwrap();
        assert_eq!(k.dest, d);
    }

    #[test]
    fn tunnel_encapsulations_round_trip_and_ipip_sends_no_tunnel_attrs() {
        let base = Dest::new(
            IpAddr::V4(Ipv4Addr::new(10, 2, 0, 2)),
            80,
            Forward::Tunnel,
            3,
        );
        let encode = |d: &Dest| {
            let mut b = MsgBuf::new();
            begin(&mut b, 0x20, CMD_NEW_DEST, 0, 1);
            dest(&mut b, &d.addr, d.port, Some(d));
            b.end();
            b
        };
        for e in Encap::SAMPLES {
            let d = base.with_encap(e);
            let k = decode_dest(&reply_of(&encode(&d)), libc::AF_INET as u16).unwrap();
            assert_eq!(k.dest, d);
        }
        // GUE to 6080 with checksum: type 13 (u8) = 1, port 14 (be16) = 0x17c0,
        // flags 15 (u16) = 1, each padded to 4 bytes.
        let b = encode(&base.with_encap(Encap::Gue {
            port: 6080,
            csum: true,
        }));
        let bytes = b.as_bytes();
        let tail = &bytes[bytes.len() - 24..];
        assert_eq!(
            tail,
            &[
                5, 0, 13, 0, 1, 0, 0, 0, //
                6, 0, 14, 0, 0x17, 0xc0, 0, 0, //
                6, 0, 15, 0, 1, 0, 0, 0,
            ][..]
        );
        // Plain IPIP sends no tunnel attribute (kernels before 5.2 take it).
        let ipip = encode(&base);
        assert_eq!(ipip.as_bytes().len(), bytes.len() - 24);
        // A NAT destination never reads as tunnelled, whatever the kernel says.
        let nat = Dest::new(base.addr, 80, Forward::Nat, 1);
        let mut b = MsgBuf::new();
        begin(&mut b, 0x20, CMD_NEW_DEST, 0, 1);
        dest(
            &mut b,
            &nat.addr,
            80,
            Some(&nat.with_encap(Encap::Gre { csum: true })),
        );
        b.end();
        let k = decode_dest(&reply_of(&b), libc::AF_INET as u16).unwrap();
        assert_eq!(k.dest, nat);
    }

    #[test]
    fn known_bytes_of_a_weight_change() {
        // ipvsadm -e -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 5, laid out as ip_vs.h
        // defines it (genl family id 0x1c, seq 9).
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 80,
        };
        let d = Dest::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80, Forward::Nat, 5);
        let mut b = MsgBuf::new();
        begin(&mut b, 0x1c, CMD_SET_DEST, 5, 9);
        service_key(&mut b, &key);
        dest(&mut b, &d.addr, d.port, Some(&d));
        b.end();
        let bytes = b.as_bytes();
        assert_eq!(&bytes[4..6], &0x1cu16.to_ne_bytes());
        assert_eq!(bytes[16], CMD_SET_DEST);
        assert_eq!(bytes[17], VERSION);
        // Service nest: type 1 | NESTED, then AF=2 (AF_INET).
        assert_eq!(&bytes[22..24], &(1u16 | 0x8000).to_ne_bytes());
        assert_eq!(&bytes[24..28], &[6, 0, 1, 0]);
        assert_eq!(&bytes[28..30], &2u16.to_ne_bytes());
        // Port in network order.
        let port_at = bytes
            .windows(4)
            .position(|w| w == [6, 0, 4, 0])
            .expect("port attr");
        assert_eq!(&bytes[port_at + 4..port_at + 6], &[0, 80]);
        let total = u32::from_ne_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(total, bytes.len());
    }

    #[test]
    fn garbage_replies_are_errors() {
        assert!(decode_service(&[]).is_err());
        assert!(decode_service(&[4, 1, 0, 0, 200, 0, 1, 0]).is_err());
        assert!(decode_dest(&[4, 1, 0, 0], 2).is_err());
    }
}
