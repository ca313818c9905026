//! One ICMP socket per address family for every echo the checker sends (driver side
//! of [`crate::health::sched`]): requests carry the schedule's sequence numbers,
//! replies are demultiplexed by them. A ping socket where the kernel allows it, raw
//! otherwise (see [`crate::health::icmp`]). Sockets open on first use.
//!
//! Requests due together leave in one `sendmmsg`, replies are read by `recvmmsg`: a
//! thousand servers' echo rounds cost a few system calls per wake, not two per server
//! (where system calls are dear, as in a virtual machine, that was most of the cost).
//!
//! An unconnected ping socket does not report ICMP errors (unreachable) without
//! `IP_RECVERR`: there an unreachable host shows as a timeout. A raw socket sees the
//! errors, quoting our request, and reports them at once.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use socket2::Socket;

use crate::health::icmp::{SocketKind, open_plain, parse, request};

/// Room for bursts of requests: a wake sends every echo due in one [`QUANTUM`].
///
/// [`QUANTUM`]: crate::health::sched::QUANTUM
const BUFFER: usize = 1 << 20;

/// Most messages one system call sends or receives.
const BATCH: usize = 64;

/// Room for one received message: an echo reply, or on a raw socket an ICMP error
/// quoting our request (longer messages are truncated; their headers are enough).
const MESSAGE: usize = 576;

#[derive(Debug)]
struct Sock {
    /// Non-blocking and not registered with the runtime: an arriving reply wakes
    /// nobody; the driver reads when its timer fires.
    s: Socket,
    kind: SocketKind,
}

/// The checker's ICMP sockets.
#[derive(Debug)]
pub struct Pinger {
    v4: Option<Sock>,
    v6: Option<Sock>,
    id: u16,
    /// Receive buffers, kept: a wake reads into them without allocating.
    bufs: Vec<[u8; MESSAGE]>,
}

/// One message received: from, sequence number, reply (`Ok`) or error (`Err`).
pub type Received = (IpAddr, u16, Result<(), String>);

impl Pinger {
    /// No socket yet; `id` is the identifier raw sockets put in requests.
    pub fn new(id: u16) -> Pinger {
        Pinger {
            v4: None,
            v6: None,
            id,
            bufs: vec![[0u8; MESSAGE]; BATCH],
        }
    }

    fn sock(&mut self, addr: IpAddr) -> io::Result<&Sock> {
        let slot = if addr.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
        if slot.is_none() {
            let (s, kind) = open_plain(addr)?;
            // Best effort: the defaults hold a few hundred requests, enough but tight.
            let _ = s.set_send_buffer_size(BUFFER);
            let _ = s.set_recv_buffer_size(BUFFER);
            tracing::debug!(
                family = if addr.is_ipv4() { "ipv4" } else { "ipv6" },
                ?kind,
                "echo socket opened"
            );
            *slot = Some(Sock { s, kind });
        }
        slot.as_ref().ok_or_else(|| io::Error::other("no socket"))
    }

    /// Sends echo requests (address, sequence number), as few system calls as it
    /// takes; each one that did not leave is pushed to `failed` with its error.
    pub fn send_many(
        &mut self,
        reqs: &[(IpAddr, u16)],
        failed: &mut Vec<(IpAddr, u16, io::Error)>,
    ) {
        for v4 in [true, false] {
            let family: Vec<(IpAddr, u16)> = reqs
                .iter()
                .copied()
                .filter(|(a, _)| a.is_ipv4() == v4)
                .collect();
            let Some(&(first, _)) = family.first() else {
                continue;
            };
            let id = self.id;
            let sock = match self.sock(first) {
                Ok(s) => s,
                Err(e) => {
                    let (kind, why) = (e.kind(), e.to_string());
                    failed.extend(
                        family
                            .iter()
                            .map(|&(a, q)| (a, q, io::Error::new(kind, why.clone()))),
                    );
                    continue;
                }
            };
            for chunk in family.chunks(BATCH) {
                let packets: Vec<[u8; 16]> =
                    chunk.iter().map(|&(a, q)| request(a, id, q)).collect();
                let mut i = 0;
                while i < chunk.len() {
                    let fd = sock.s.as_raw_fd();
                    match send_batch(fd, &packets[i..], &chunk[i..]) {
                        Ok(n) if n > 0 => i += n,
                        Ok(_) => {
                            failed.push((chunk[i].0, chunk[i].1, io::Error::other("nothing sent")));
                            i += 1;
                        }
                        // The first message of the rest failed: it alone, go on after it.
                        Err(e) => {
                            failed.push((chunk[i].0, chunk[i].1, e));
                            i += 1;
                        }
                    }
                }
            }
        }
    }

    /// Everything waiting on the sockets, without blocking. Messages that are not
    /// ours (other programs' on a raw socket, other types) are skipped.
    pub fn drain(&mut self, out: &mut Vec<Received>) {
        let (id, bufs) = (self.id, &mut self.bufs);
        for (sock, v4) in [(&self.v4, true), (&self.v6, false)] {
            let Some(sock) = sock else {
                continue;
            };
            let fd = sock.s.as_raw_fd();
            // Bounded: one wake reads at most this many batches, the rest the next.
            for _ in 0..4096 / BATCH {
                match recv_batch(fd, bufs) {
                    Ok(got) => {
                        for (buf, (n, from)) in bufs.iter().zip(&got) {
                            let Some(from) = from else { continue };
                            if let Some((seq, r)) = parse(&buf[..*n], v4, sock.kind, id) {
                                out.push((*from, seq, r));
                            }
                        }
                        if got.len() < BATCH {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // An error queued by the kernel is read once; go on.
                    Err(e) => tracing::trace!(error = %e, "echo socket receive error"),
                }
            }
        }
    }
}

/// One `sendmmsg`: how many of `packets` (to `dests`, in order) left. An error is
/// the first message's.
fn send_batch(fd: RawFd, packets: &[[u8; 16]], dests: &[(IpAddr, u16)]) -> io::Result<usize> {
    let iovs: Vec<[IoSlice<'_>; 1]> = packets.iter().map(|p| [IoSlice::new(p)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = dests
        .iter()
        .map(|&(a, _)| Some(SockaddrStorage::from(SocketAddr::new(a, 0))))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(iovs.len(), None);
    let sent = sendmmsg(fd, &mut headers, &iovs, &addrs, [], MsgFlags::MSG_DONTWAIT)?;
    Ok(sent.count())
}

/// One `recvmmsg` into `bufs`: each message's length and sender, in order.
fn recv_batch(fd: RawFd, bufs: &mut [[u8; MESSAGE]]) -> io::Result<Vec<(usize, Option<IpAddr>)>> {
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(&mut b[..])])
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(iovs.len(), None);
    let got = recvmmsg(
        fd,
        &mut headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )?;
    Ok(got
        .map(|m| (m.bytes.min(MESSAGE), m.address.and_then(|a| ip_of(&a))))
        .collect())
}

fn ip_of(a: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        Some(IpAddr::V4(v4.ip()))
    } else {
        a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
    }
}
