//! Observers inside the upstream's namespace: a packet socket on its veth end that
//! decodes the speaker's BGP UPDATEs for one prefix ("wire"), and an rtnetlink socket
//! that sees the prefix enter and leave the kernel table ("kernel").
//!
//! ```text
//!   speaker ns ── veth ──> [AF_PACKET on upstream's end] ──Event::Update──┐
//!                          upstream bgpd -> zebra -> kernel               ├─> mpsc
//!                          [rtnetlink RTMGRP_IPV4_ROUTE]  ──Event::Route──┘
//! ```
//!
//! Every event carries the `Instant` its thread woke with it, so figures are upper
//! bounds that include one scheduler wake-up. Both threads stop when `stop` is set
//! (every recv is bounded by a 100 ms receive timeout).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What the observers saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An UPDATE from the speaker that withdraws the prefix.
    Withdraw(Instant),
    /// An UPDATE from the speaker that announces the prefix, with its MED.
    Announce(Instant, Option<u32>),
    /// The prefix entered the upstream's kernel table.
    RouteAdd(Instant),
    /// The prefix left the upstream's kernel table.
    RouteDel(Instant),
}

impl Event {
    /// When the observer saw it.
    pub fn at(&self) -> Instant {
        match *self {
            Event::Withdraw(t)
            | Event::Announce(t, _)
            | Event::RouteAdd(t)
            | Event::RouteDel(t) => t,
        }
    }
}

pub use anycast_lab::netns::enter;
use anycast_lab::netns::{bounded_socket as socket, recv};

/// The running observer threads.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// Events, in the order the threads saw them.
    pub rx: mpsc::Receiver<Event>,
}

impl Watcher {
    /// Starts both observers in namespace `ns`: the capture on `ifname` for UPDATEs
    /// sent by `speaker` about `prefix/len`, and the kernel table watcher.
    pub fn start(
        ns: &str,
        ifname: &str,
        speaker: Ipv4Addr,
        prefix: Ipv4Addr,
        len: u8,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut threads = Vec::new();
        {
            let (ns, ifn, tx, stop, r) = (
                ns.to_string(),
                ifname.to_string(),
                tx.clone(),
                stop.clone(),
                ready_tx.clone(),
            );
            threads.push(thread::spawn(move || {
                capture(&ns, &ifn, speaker, (prefix, len), tx, stop, r)
            }));
        }
        {
            let (ns, stop, r) = (ns.to_string(), stop.clone(), ready_tx);
            threads.push(thread::spawn(move || {
                kernel(&ns, (prefix, len), tx, stop, r)
            }));
        }
        let w = Watcher { stop, threads, rx };
        for _ in 0..2 {
            ready_rx
                .recv_timeout(Duration::from_secs(5))
                .map_err(|_| io::Error::other("an observer thread did not start"))?;
        }
        Ok(w)
    }

    /// Drops events seen so far.
    pub fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Waits up to `limit` for the first event that `want` accepts.
    pub fn wait(&self, limit: Duration, want: impl Fn(&Event) -> bool) -> Option<Event> {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(e) if want(&e) => return Some(e),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn capture(
    ns: &str,
    ifname: &str,
    speaker: Ipv4Addr,
    prefix: (Ipv4Addr, u8),
    tx: mpsc::Sender<Event>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<()>,
) -> io::Result<()> {
    enter(ns)?;
    let proto = (libc::ETH_P_ALL as u16).to_be();
    let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(proto))?;
    let cname = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: valid NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: binding with a valid sockaddr_ll of its own size.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let _ = ready.send(());
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Some(n) = recv(&fd, &mut buf) else {
            continue;
        };
        let now = Instant::now();
        for ev in bgp_in_frame(&buf[..n], speaker, prefix, now) {
            let _ = tx.send(ev);
        }
    }
    Ok(())
}

/// BGP UPDATE events about `prefix` in one Ethernet frame sent by `speaker`.
/// Only messages whole inside the frame are decoded (ours are small).
pub fn bgp_in_frame(
    f: &[u8],
    speaker: Ipv4Addr,
    prefix: (Ipv4Addr, u8),
    now: Instant,
) -> Vec<Event> {
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
            update(&p[19..len], prefix, now, &mut out);
        }
        p = &p[len..];
    }
    out
}

/// Does an NLRI list (length-prefixed prefixes) hold `prefix`?
fn nlri_has(mut b: &[u8], prefix: (Ipv4Addr, u8)) -> bool {
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

fn update(b: &[u8], prefix: (Ipv4Addr, u8), now: Instant, out: &mut Vec<Event>) {
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
        out.push(Event::Withdraw(now));
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
    out.push(Event::Announce(now, med));
}

fn kernel(
    ns: &str,
    prefix: (Ipv4Addr, u8),
    tx: mpsc::Sender<Event>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<()>,
) -> io::Result<()> {
    enter(ns)?;
    let fd = socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    // SAFETY: sockaddr_nl is plain data.
    let mut snl: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    snl.nl_family = libc::AF_NETLINK as u16;
    snl.nl_groups = libc::RTMGRP_IPV4_ROUTE as u32;
    // SAFETY: binding with a valid sockaddr_nl of its own size.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const snl).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let _ = ready.send(());
    let want = prefix.0.octets();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Some(n) = recv(&fd, &mut buf) else {
            continue;
        };
        let now = Instant::now();
        let mut off = 0;
        while off + 16 <= n {
            let len =
                u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
            let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            if len < 16 || off + len > n {
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
                        let _ = tx.send(if ty == libc::RTM_NEWROUTE {
                            Event::RouteAdd(now)
                        } else {
                            Event::RouteDel(now)
                        });
                    }
                    a += (alen + 3) & !3;
                }
            }
            off += (len + 3) & !3;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let now = Instant::now();
        let ev = bgp_in_frame(&f, spk, (Ipv4Addr::new(10, 101, 4, 0), 24), now);
        assert_eq!(
            ev,
            vec![Event::Withdraw(now), Event::Announce(now, Some(1000))]
        );
        // Not from the speaker: nothing.
        assert!(
            bgp_in_frame(
                &f,
                Ipv4Addr::new(1, 1, 1, 1),
                (Ipv4Addr::new(10, 101, 4, 0), 24),
                now
            )
            .is_empty()
        );
    }
}
