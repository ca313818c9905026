//! The carrier of the host's links, for the BGP way back: when a link comes up (the
//! upstream's cable, a switch port, a VLAN back), the sessions that are down try at
//! once instead of at the end of their reconnect backoff (issue 22).
//!
//! ```text
//!  kernel ── RTM_NEWLINK (RTMGRP_LINK multicast) ──> link-watch thread (watch):
//!              parse() ─> LinkEvent ─> Carrier::on (down -> up?) ─> mpsc<link name>
//!  daemon: link up ─> PeerHandle::connect_now on every neighbor (a no-op for a
//!                     session that has a connection)
//! ```
//! Every neighbor is nudged, not only those routed through the link: which link leads
//! to a neighbor is the routing table's business (a loopback-to-loopback session may
//! move between links), and a nudge costs a session that is down one connect.
//! Read-only: nothing here changes the kernel.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
};
use tokio::sync::mpsc;

/// rtnetlink's link multicast group (`RTMGRP_LINK`).
const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFLA_IFNAME: u16 = 3;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;

/// A link's state as one rtnetlink message tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    pub index: u32,
    /// `IFLA_IFNAME`, when the message carries it.
    pub name: Option<String>,
    /// Administratively up with carrier (`IFF_UP` and `IFF_LOWER_UP`).
    pub carrier: bool,
    /// `RTM_DELLINK`: the link is gone.
    pub deleted: bool,
}

/// The link messages in one netlink datagram. Anything malformed ends the parse (what
/// came before it is kept): the kernel's framing is trusted no further than its lengths.
pub fn parse(buf: &[u8]) -> Vec<LinkEvent> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(hdr) = buf.get(at..at + NLMSG_HDRLEN) {
        let len = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        let kind = u16::from_ne_bytes([hdr[4], hdr[5]]);
        let Some(msg) = buf.get(at..at.saturating_add(len)) else {
            break;
        };
        if len < NLMSG_HDRLEN {
            break;
        }
        if matches!(kind, RTM_NEWLINK | RTM_DELLINK)
            && let Some(ev) = link(&msg[NLMSG_HDRLEN..], kind == RTM_DELLINK)
        {
            out.push(ev);
        }
        at += len.next_multiple_of(4);
    }
    out
}

/// One `ifinfomsg` and its attributes.
fn link(body: &[u8], deleted: bool) -> Option<LinkEvent> {
    let info = body.get(..IFINFOMSG_LEN)?;
    let index = i32::from_ne_bytes([info[4], info[5], info[6], info[7]]);
    let flags = u32::from_ne_bytes([info[8], info[9], info[10], info[11]]);
    let mut name = None;
    let mut attrs = &body[IFINFOMSG_LEN..];
    while let Some(a) = attrs.get(..4) {
        let len = usize::from(u16::from_ne_bytes([a[0], a[1]]));
        let kind = u16::from_ne_bytes([a[2], a[3]]);
        let Some(value) = attrs.get(4..len) else {
            break;
        };
        if kind == IFLA_IFNAME {
            let v = value.split(|&b| b == 0).next().unwrap_or_default();
            name = Some(String::from_utf8_lossy(v).into_owned());
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Some(LinkEvent {
        index: u32::try_from(index).ok()?,
        name,
        carrier: !deleted && flags & (IFF_UP | IFF_LOWER_UP) == IFF_UP | IFF_LOWER_UP,
        deleted,
    })
}

/// Which links have carrier, as the messages so far say.
#[derive(Debug, Default)]
pub struct Carrier {
    up: HashMap<u32, bool>,
}

impl Carrier {
    /// Takes one message; true when the link's carrier came up (a link not seen before
    /// counts as down: a new link with carrier is a way back too).
    pub fn on(&mut self, ev: &LinkEvent) -> bool {
        if ev.deleted {
            self.up.remove(&ev.index);
            return false;
        }
        let was = self.up.insert(ev.index, ev.carrier).unwrap_or(false);
        ev.carrier && !was
    }
}

/// Subscribes to the kernel's link messages (`RTMGRP_LINK`, no privilege needed) and
/// sends the name of each link whose carrier comes up. The socket is read by a thread
/// of its own (a blocking read: a netlink socket has no tokio type, and registering a
/// raw fd needs `unsafe`); it ends when the receiver is dropped and a message arrives.
pub fn watch() -> io::Result<mpsc::Receiver<String>> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, RTMGRP_LINK))?;
    let (tx, rx) = mpsc::channel(16);
    std::thread::Builder::new()
        .name("link-watch".into())
        .spawn(move || read(&fd, &tx))?;
    Ok(rx)
}

fn read(fd: &OwnedFd, tx: &mpsc::Sender<String>) {
    let mut carrier = Carrier::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let up = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => parse(&buf[..n])
                .into_iter()
                .filter(|ev| carrier.on(ev))
                .map(|ev| ev.name.unwrap_or_else(|| format!("ifindex {}", ev.index)))
                .collect(),
            Err(Errno::EINTR) => continue,
            // The socket's buffer overflowed: a link may have come up unseen.
            Err(Errno::ENOBUFS) => vec!["(link messages lost)".to_string()],
            Err(e) => {
                tracing::error!(error = %e, "reading link messages failed; links coming up no longer cut the BGP reconnect backoff short");
                return;
            }
        };
        for name in up {
            if tx.blocking_send(name).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTM_NEWLINK as the kernel sends it (host order), with an IFLA_IFNAME.
    fn newlink(kind: u16, index: i32, flags: u32, name: Option<&str>) -> Vec<u8> {
        let mut body = vec![0u8, 0, 1, 0]; // AF_UNSPEC, pad, ARPHRD_ETHER
        body.extend_from_slice(&index.to_ne_bytes());
        body.extend_from_slice(&flags.to_ne_bytes());
        body.extend_from_slice(&u32::MAX.to_ne_bytes()); // change
        if let Some(n) = name {
            let v = [n.as_bytes(), &[0]].concat();
            body.extend_from_slice(&u16::try_from(4 + v.len()).unwrap().to_ne_bytes());
            body.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
            body.extend_from_slice(&v);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        // IFLA_MTU, to skip over.
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&4u16.to_ne_bytes());
        body.extend_from_slice(&1500u32.to_ne_bytes());
        let mut m = u32::try_from(NLMSG_HDRLEN + body.len())
            .unwrap()
            .to_ne_bytes()
            .to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]); // flags, seq, pid
        m.extend_from_slice(&body);
        m
    }

    const UP: u32 = IFF_UP | IFF_LOWER_UP | 0x40;

    #[test]
    fn messages_parse_with_name_and_carrier() {
        let mut buf = newlink(RTM_NEWLINK, 7, UP, Some("veth0"));
        buf.extend(newlink(RTM_NEWLINK, 8, IFF_UP, Some("eth1")));
        buf.extend(newlink(RTM_DELLINK, 9, UP, None));
        buf.extend(newlink(18, 10, UP, None)); // RTM_GETLINK: not ours
        assert_eq!(
            parse(&buf),
            vec![
                LinkEvent {
                    index: 7,
                    name: Some("veth0".into()),
                    carrier: true,
                    deleted: false,
                },
                LinkEvent {
                    index: 8,
                    name: Some("eth1".into()),
                    carrier: false,
                    deleted: false,
                },
                LinkEvent {
                    index: 9,
                    name: None,
                    carrier: false,
                    deleted: true,
                },
            ]
        );
    }

    #[test]
    fn garbage_never_panics_and_keeps_what_came_before() {
        let good = newlink(RTM_NEWLINK, 7, UP, Some("veth0"));
        for cut in 0..good.len() {
            let mut buf = good.clone();
            buf.extend_from_slice(&good[..cut]);
            assert_eq!(parse(&buf).len(), 1, "cut at {cut}");
        }
        let mut zero = good.clone();
        zero.extend_from_slice(&[0; 16]); // nlmsg_len 0: would loop forever
        assert_eq!(parse(&zero).len(), 1);
        let mut attr = good.clone();
        attr[NLMSG_HDRLEN + IFINFOMSG_LEN] = 0xff; // attribute longer than the message
        let evs = parse(&attr);
        assert_eq!(evs.len(), 1);
        for b in 0..=255u8 {
            let _ = parse(&[b; 40]);
        }
    }

    #[test]
    fn only_a_carrier_coming_up_counts() {
        let ev = |index, carrier| LinkEvent {
            index,
            name: Some("x".into()),
            carrier,
            deleted: false,
        };
        let mut c = Carrier::default();
        assert!(!c.on(&ev(7, false)));
        assert!(c.on(&ev(7, true)), "down -> up");
        assert!(!c.on(&ev(7, true)), "up again (an address or MTU change)");
        assert!(!c.on(&ev(7, false)));
        assert!(c.on(&ev(7, true)));
        assert!(c.on(&ev(8, true)), "a new link with carrier");
        c.on(&LinkEvent {
            index: 8,
            name: None,
            carrier: false,
            deleted: true,
        });
        assert!(c.on(&ev(8, true)), "deleted, then created again");
    }
}
