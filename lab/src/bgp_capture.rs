//! Observers inside a peer's namespace: a packet socket on its veth end whose frames
//! are decoded into the UPDATEs one speaker sent about one IPv4 prefix ("wire"), and
//! an rtnetlink socket that sees the prefix enter and leave the kernel table
//! ("kernel"). Shared by the bench's watcher and the withdraw-latency example.
//!
//! ```text
//!   speaker ns ── veth ──> [packet_socket on the peer's end] ── bgp_in_frame ──┐
//!                          peer bgpd -> zebra -> kernel                        ├─> observe(each)
//!                          [route_socket: RTMGRP_IPV4_ROUTE] ── route_changes ─┘
//! ```
//!
//! Decoding never panics on what it reads: anything short or odd is skipped.

// Unsafe here: packet and netlink sockets bound through libc; each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crate::netns::{bounded_socket, enter, recv};

/// An IPv4 prefix and its length.
pub type Prefix4 = (Ipv4Addr, u8);

/// What one UPDATE said about the watched prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Listed in Withdrawn Routes.
    Withdraw,
    /// Listed in the NLRI, with the MULTI_EXIT_DISC if there was one.
    Announce(Option<u32>),
}

/// What one rtnetlink message said about the watched prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteChange {
    /// RTM_NEWROUTE: it entered the kernel table.
    Add,
    /// RTM_DELROUTE: it left the kernel table.
    Del,
}

/// A packet socket (`ETH_P_ALL`, both directions) bound to interface `ifname` of the
/// calling thread's namespace; receives are bounded like [`bounded_socket`]'s.
pub fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    let fd = bounded_socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(proto))?;
    let cname = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: `cname` is a CString (NUL-terminated) that outlives the call, which
    // only reads it.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        // Index 0 would bind to every interface and capture the wrong traffic.
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {ifname} in this namespace"),
        ));
    }
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    bind(&fd, &sll)?;
    Ok(fd)
}

/// The kernel's receive timestamp of the last packet read on `fd` (SIOCGSTAMPNS):
/// when the frame passed the interface, without the capture thread's wake-up.
pub fn kernel_stamp(fd: &OwnedFd) -> Option<SystemTime> {
    const SIOCGSTAMPNS: libc::c_ulong = 0x8907;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: SIOCGSTAMPNS writes one timespec into `ts`, which lives across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSTAMPNS, &raw mut ts) };
    if rc != 0 {
        return None;
    }
    let d = Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    );
    Some(SystemTime::UNIX_EPOCH + d)
}

/// Whether an Ethernet frame is an IPv4 TCP segment from source port `port` with FIN
/// set: a server closing a connection (a killed process closes every one it held).
pub fn tcp_fin_from(f: &[u8], port: u16) -> bool {
    let Some(ip) = f.get(14..).filter(|_| f.get(12..14) == Some(&[0x08, 0x00])) else {
        return false;
    };
    let ihl = usize::from(ip.first().map_or(0, |b| b & 0x0f)) * 4;
    if ip.get(9) != Some(&6) || ihl < 20 {
        return false;
    }
    let Some(tcp) = ip.get(ihl..ihl + 14) else {
        return false;
    };
    u16::from_be_bytes([tcp[0], tcp[1]]) == port && tcp[13] & 0x01 != 0
}

/// An rtnetlink socket subscribed to IPv4 route changes (`RTMGRP_IPV4_ROUTE`) in the
/// calling thread's namespace; receives are bounded like [`bounded_socket`]'s.
pub fn route_socket() -> io::Result<OwnedFd> {
    let fd = bounded_socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    // SAFETY: sockaddr_nl is plain data; zero is a valid start.
    let mut snl: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    snl.nl_family = libc::AF_NETLINK as u16;
    snl.nl_groups = libc::RTMGRP_IPV4_ROUTE as u32;
    bind(&fd, &snl)?;
    Ok(fd)
}

fn bind<T>(fd: &OwnedFd, addr: &T) -> io::Result<()> {
    // SAFETY: `addr` is a whole sockaddr_* of its own size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(addr).cast(),
            size_of::<T>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One observer thread: enters namespace `ns`, opens its socket with `open`, says so
/// on `ready`, then hands every receive to `each` with the instant the thread woke
/// with it, until `stop` is set. An error before `ready` is the thread's result.
pub fn observe(
    ns: &str,
    open: impl FnOnce() -> io::Result<OwnedFd> + Send + 'static,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<()>,
    mut each: impl FnMut(&OwnedFd, &[u8], Instant) + Send + 'static,
) -> JoinHandle<io::Result<()>> {
    let ns = ns.to_string();
    thread::spawn(move || {
        enter(&ns)?;
        let fd = open()?;
        let _ = ready.send(());
        drop(ready);
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            let Some(n) = recv(&fd, &mut buf) else {
                continue;
            };
            each(&fd, &buf[..n], Instant::now());
        }
        Ok(())
    })
}

/// What the UPDATEs in one Ethernet frame sent by `speaker` say about `prefix`.
/// Only messages whole inside the frame are decoded (ours are small).
pub fn bgp_in_frame(f: &[u8], speaker: Ipv4Addr, prefix: Prefix4) -> Vec<Update> {
    let mut out = Vec::new();
    if f.len() < 14 + 20 || f[12..14] != [0x08, 0x00] {
        return out;
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] != 6 || ip[12..16] != speaker.octets() || ip.len() < ihl + 20 {
        return out;
    }
    let tcp = &ip[ihl..];
    let doff = usize::from(tcp[12] >> 4) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    if total < ihl + doff {
        return out;
    }
    let mut p = &ip[ihl + doff..total];
    while p.len() >= 19 && p[..16].iter().all(|&b| b == 0xff) {
        let len = usize::from(u16::from_be_bytes([p[16], p[17]]));
        if len < 19 || len > p.len() {
            break;
        }
        if p[18] == 2 {
            update(&p[19..len], prefix, &mut out);
        }
        p = &p[len..];
    }
    out
}

/// Does an NLRI list (length-prefixed prefixes) hold `prefix`?
fn nlri_has(mut b: &[u8], prefix: Prefix4) -> bool {
    let want = prefix.0.octets();
    while let Some(&bits) = b.first() {
        let n = usize::from(bits).div_ceil(8);
        if b.len() < 1 + n {
            return false;
        }
        if bits == prefix.1 && b[1..1 + n] == want[..n] {
            return true;
        }
        b = &b[1 + n..];
    }
    false
}

fn update(b: &[u8], prefix: Prefix4, out: &mut Vec<Update>) {
    let Some(wl) = b
        .get(..2)
        .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
    else {
        return;
    };
    let Some(withdrawn) = b.get(2..2 + wl) else {
        return;
    };
    if nlri_has(withdrawn, prefix) {
        out.push(Update::Withdraw);
    }
    let Some(al) = b
        .get(2 + wl..4 + wl)
        .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
    else {
        return;
    };
    let Some(mut attrs) = b.get(4 + wl..4 + wl + al) else {
        return;
    };
    let nlri = &b[4 + wl + al..];
    if !nlri_has(nlri, prefix) {
        return;
    }
    let mut med = None;
    while attrs.len() >= 3 {
        let (flags, ty) = (attrs[0], attrs[1]);
        let (hl, l) = if flags & 0x10 != 0 {
            if attrs.len() < 4 {
                break;
            }
            (4, usize::from(u16::from_be_bytes([attrs[2], attrs[3]])))
        } else {
            (3, usize::from(attrs[2]))
        };
        if attrs.len() < hl + l {
            break;
        }
        if ty == 4 && l == 4 {
            let v = &attrs[hl..hl + 4];
            med = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        }
        attrs = &attrs[hl + l..];
    }
    out.push(Update::Announce(med));
}

/// What the rtnetlink messages in one receive say about `prefix` (IPv4 routes whose
/// RTA_DST and length match).
pub fn route_changes(buf: &[u8], prefix: Prefix4) -> Vec<RouteChange> {
    let want = prefix.0.octets();
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 16 || off + len > buf.len() {
            break;
        }
        let msg = &buf[off + 16..off + len];
        if (ty == libc::RTM_NEWROUTE || ty == libc::RTM_DELROUTE)
            && msg.len() >= 12
            && msg[1] == prefix.1
        {
            let mut a = 12;
            while a + 4 <= msg.len() {
                let alen = usize::from(u16::from_ne_bytes([msg[a], msg[a + 1]]));
                let aty = u16::from_ne_bytes([msg[a + 2], msg[a + 3]]);
                if alen < 4 || a + alen > msg.len() {
                    break;
                }
                if aty == libc::RTA_DST && msg[a + 4..a + alen] == want {
                    out.push(if ty == libc::RTM_NEWROUTE {
                        RouteChange::Add
                    } else {
                        RouteChange::Del
                    });
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Prefix4 = (Ipv4Addr::new(10, 101, 4, 0), 24);

    #[test]
    fn decodes_withdraw_and_med_announce() {
        let spk = Ipv4Addr::new(10, 201, 0, 1);
        let mut bgp = vec![0xff; 16];
        // Withdraw 10.101.4.0/24.
        bgp.extend_from_slice(&[0, 27, 2, 0, 4, 24, 10, 101, 4, 0, 0]);
        // Announce with ORIGIN and MED 1000.
        let attrs = [0x40, 1, 1, 0, 0x80, 4, 4, 0, 0, 3, 0xe8];
        let body_len = 19 + 2 + 2 + attrs.len() + 4;
        bgp.extend_from_slice(&[0xff; 16]);
        bgp.extend_from_slice(&[0, body_len as u8, 2, 0, 0, 0, attrs.len() as u8]);
        bgp.extend_from_slice(&attrs);
        bgp.extend_from_slice(&[24, 10, 101, 4]);
        let mut f = vec![0u8; 14];
        f[12] = 8;
        let total = 20 + 20 + bgp.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            6,
            0,
            0,
        ];
        ip.extend_from_slice(&spk.octets());
        ip.extend_from_slice(&[10, 201, 0, 2]);
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        f.extend(ip);
        f.extend(tcp);
        f.extend(bgp);
        assert_eq!(
            bgp_in_frame(&f, spk, VIP),
            vec![Update::Withdraw, Update::Announce(Some(1000))]
        );
        // Not from the speaker: nothing.
        assert!(bgp_in_frame(&f, Ipv4Addr::new(1, 1, 1, 1), VIP).is_empty());
    }

    #[test]
    fn decodes_route_add_and_del_for_the_prefix_only() {
        // nlmsghdr (16) + rtmsg (12) + RTA_DST (8), native endian like the kernel's.
        let msg = |ty: u16, len: u8, dst: [u8; 4]| {
            let mut m = Vec::new();
            m.extend_from_slice(&36u32.to_ne_bytes());
            m.extend_from_slice(&ty.to_ne_bytes());
            m.extend_from_slice(&[0; 10]);
            m.extend_from_slice(&[libc::AF_INET as u8, len, 0, 0, 254, 186, 0, 1, 0, 0, 0, 0]);
            m.extend_from_slice(&8u16.to_ne_bytes());
            m.extend_from_slice(&libc::RTA_DST.to_ne_bytes());
            m.extend_from_slice(&dst);
            m
        };
        let mut buf = msg(libc::RTM_NEWROUTE, 24, [10, 101, 4, 0]);
        buf.extend(msg(libc::RTM_NEWROUTE, 24, [10, 101, 5, 0]));
        buf.extend(msg(libc::RTM_NEWROUTE, 25, [10, 101, 4, 0]));
        buf.extend(msg(libc::RTM_DELROUTE, 24, [10, 101, 4, 0]));
        assert_eq!(
            route_changes(&buf, VIP),
            vec![RouteChange::Add, RouteChange::Del]
        );
        // Cut short: the whole message is skipped, nothing panics.
        assert!(route_changes(&buf[..30], VIP).is_empty());
    }
}
