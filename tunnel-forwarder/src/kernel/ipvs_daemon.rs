//! The sync daemon commands of the IPVS generic netlink family: start, stop, dump.
//! Attribute numbers are those of the kernel's include/uapi/linux/ip_vs.h.

use std::net::IpAddr;

use crate::netlink::wire::{self, Attrs, DecodeError, MsgBuf};
use crate::sync::{SyncDaemon, SyncRole};

pub const CMD_NEW_DAEMON: u8 = 9;
pub const CMD_DEL_DAEMON: u8 = 10;
pub const CMD_GET_DAEMON: u8 = 11;

const CMD_ATTR_DAEMON: u16 = 3;

const DAEMON_ATTR_STATE: u16 = 1;
const DAEMON_ATTR_MCAST_IFN: u16 = 2;
const DAEMON_ATTR_SYNC_ID: u16 = 3;
const DAEMON_ATTR_SYNC_MAXLEN: u16 = 4;
const DAEMON_ATTR_MCAST_GROUP: u16 = 5;
const DAEMON_ATTR_MCAST_GROUP6: u16 = 6;
const DAEMON_ATTR_MCAST_PORT: u16 = 7;
const DAEMON_ATTR_MCAST_TTL: u16 = 8;

/// The daemon attribute of NEW_DAEMON: every setting the daemon has.
pub fn daemon(buf: &mut MsgBuf, d: &SyncDaemon) {
    let n = buf.nest(CMD_ATTR_DAEMON);
    buf.u32(DAEMON_ATTR_STATE, d.role.kernel());
    buf.str(DAEMON_ATTR_MCAST_IFN, &d.interface);
    buf.u32(DAEMON_ATTR_SYNC_ID, u32::from(d.syncid));
    if let Some(m) = d.maxlen {
        buf.u16(DAEMON_ATTR_SYNC_MAXLEN, m);
    }
    match d.group {
        Some(IpAddr::V4(g)) => buf.attr(DAEMON_ATTR_MCAST_GROUP, &g.octets()),
        Some(IpAddr::V6(g)) => buf.attr(DAEMON_ATTR_MCAST_GROUP6, &g.octets()),
        None => {}
    }
    // Host order: the kernel reads it with nla_get_u16 and converts when it binds.
    if let Some(p) = d.port {
        buf.u16(DAEMON_ATTR_MCAST_PORT, p);
    }
    if let Some(t) = d.ttl {
        buf.u8(DAEMON_ATTR_MCAST_TTL, t);
    }
    buf.nest_end(n);
}

/// The daemon attribute of DEL_DAEMON: the role only.
pub fn role_only(buf: &mut MsgBuf, role: SyncRole) {
    let n = buf.nest(CMD_ATTR_DAEMON);
    buf.u32(DAEMON_ATTR_STATE, role.kernel());
    buf.nest_end(n);
}

fn bad(what: &'static str) -> DecodeError {
    DecodeError { offset: 0, what }
}

/// One GET_DAEMON reply (payload after nlmsghdr): the daemon it describes, or
/// `None` for a message without one. A role the model does not know is an error.
pub fn decode(payload: &[u8]) -> Result<Option<SyncDaemon>, DecodeError> {
    let body = payload.get(4..).ok_or(bad("short genetlink message"))?;
    let outer = Attrs::new(body);
    for a in outer.clone() {
        a?;
    }
    let Some(inner) = outer.find(CMD_ATTR_DAEMON) else {
        return Ok(None);
    };
    let a = Attrs::new(inner);
    for x in a.clone() {
        x?;
    }
    let role = a
        .find(DAEMON_ATTR_STATE)
        .and_then(wire::get_u32)
        .ok_or(bad("sync daemon without state"))?;
    let role = SyncRole::from_kernel(role).ok_or(bad("sync daemon of unknown state"))?;
    let interface = a
        .find(DAEMON_ATTR_MCAST_IFN)
        .and_then(wire::get_str)
        .ok_or(bad("sync daemon without interface"))?;
    let syncid = a
        .find(DAEMON_ATTR_SYNC_ID)
        .and_then(wire::get_u32)
        .ok_or(bad("sync daemon without sync id"))?;
    let group = a
        .find(DAEMON_ATTR_MCAST_GROUP)
        .and_then(|p| wire::get_addr(p, libc::AF_INET as u16))
        .or_else(|| {
            a.find(DAEMON_ATTR_MCAST_GROUP6)
                .and_then(|p| wire::get_addr(p, libc::AF_INET6 as u16))
        });
    Ok(Some(SyncDaemon {
        role,
        interface,
        // The kernel keeps a u32 but sends only the low byte in sync messages.
        syncid: (syncid & 0xff) as u8,
        group,
        port: a.find(DAEMON_ATTR_MCAST_PORT).and_then(wire::get_u16),
        ttl: a.find(DAEMON_ATTR_MCAST_TTL).and_then(wire::get_u8),
        maxlen: a.find(DAEMON_ATTR_SYNC_MAXLEN).and_then(wire::get_u16),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::ipvs::begin;

    fn roundtrip(d: &SyncDaemon) -> SyncDaemon {
        let mut b = MsgBuf::new();
        begin(&mut b, 0x20, CMD_NEW_DAEMON, 0, 1);
        daemon(&mut b, d);
        b.end();
        let bytes = b.as_bytes().to_vec();
        assert_eq!(bytes[16], CMD_NEW_DAEMON);
        decode(&bytes[16..]).unwrap().unwrap()
    }

    #[test]
    fn a_daemon_decodes_as_it_was_encoded() {
        let mut d = SyncDaemon::new(SyncRole::Backup, "eth1", 7);
        assert_eq!(roundtrip(&d), d);
        d.group = Some("239.1.2.3".parse().unwrap());
        d.port = Some(8849);
        d.ttl = Some(2);
        d.maxlen = Some(1400);
        assert_eq!(roundtrip(&d), d);
        d.group = Some("ff02::81".parse().unwrap());
        assert_eq!(roundtrip(&d), d);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let mut b = MsgBuf::new();
        begin(&mut b, 0x20, CMD_GET_DAEMON, 0, 1);
        role_only(&mut b, SyncRole::Master);
        b.end();
        let bytes = b.as_bytes().to_vec();
        // The role alone: no interface.
        assert!(decode(&bytes[16..]).is_err());
        for cut in 0..bytes.len() - 16 {
            let _ = decode(&bytes[16..16 + cut]);
        }
        let mut unknown = bytes[16..].to_vec();
        let at = unknown.len() - 4;
        unknown[at..].copy_from_slice(&9u32.to_ne_bytes());
        assert!(decode(&unknown).is_err());
        assert_eq!(decode(&[1, 1, 0, 0]).unwrap(), None);
    }
}
