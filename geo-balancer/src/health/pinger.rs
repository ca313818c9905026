//! One ICMP socket per address family for every echo the checker sends (driver side
//! of [`crate::health::sched`]): requests carry the schedule's sequence numbers,
//! replies are demultiplexed by them. A ping socket where the kernel allows it, raw
//! otherwise (see [`crate::health::icmp`]). Sockets open on first use.
//!
//! An unconnected ping socket does not report ICMP errors (unreachable) without
//! `IP_RECVERR`: there an unreachable host shows as a timeout. A raw socket sees the
//! errors, quoting our request, and reports them at once.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::UdpSocket;

use crate::health::icmp::{SocketKind, open, parse, request};

/// Room for bursts of requests: a wake sends every echo due in one [`QUANTUM`].
///
/// [`QUANTUM`]: crate::health::sched::QUANTUM
const BUFFER: usize = 1 << 20;

#[derive(Debug)]
struct Sock {
    s: UdpSocket,
    kind: SocketKind,
}

/// The checker's ICMP sockets.
#[derive(Debug)]
pub struct Pinger {
    v4: Option<Sock>,
    v6: Option<Sock>,
    id: u16,
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
        }
    }

    fn sock(&mut self, addr: IpAddr) -> io::Result<&Sock> {
        let slot = if addr.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
        if slot.is_none() {
            let (s, kind) = open(addr)?;
            let r = socket2::SockRef::from(&s);
            // Best effort: the defaults hold a few hundred requests, enough but tight.
            let _ = r.set_send_buffer_size(BUFFER);
            let _ = r.set_recv_buffer_size(BUFFER);
            tracing::debug!(
                family = if addr.is_ipv4() { "ipv4" } else { "ipv6" },
                ?kind,
                "echo socket opened"
            );
            *slot = Some(Sock { s, kind });
        }
        slot.as_ref().ok_or_else(|| io::Error::other("no socket"))
    }

    /// Sends one echo request; an error means it did not leave.
    pub fn send(&mut self, addr: IpAddr, seq: u16) -> io::Result<()> {
        let id = self.id;
        let sock = self.sock(addr)?;
        sock.s
            .try_send_to(&request(addr, id, seq), SocketAddr::new(addr, 0))
            .map(drop)
    }

    /// Waits until a socket has something to read (forever while none is open).
    pub async fn readable(&self) {
        match (&self.v4, &self.v6) {
            (Some(a), Some(b)) => {
                tokio::select! {
                    _ = a.s.readable() => {}
                    _ = b.s.readable() => {}
                }
            }
            (Some(a), None) | (None, Some(a)) => {
                let _ = a.s.readable().await;
            }
            (None, None) => std::future::pending().await,
        }
    }

    /// Everything waiting on the sockets, without blocking. Messages that are not
    /// ours (other programs' on a raw socket, other types) are skipped.
    pub fn drain(&self, out: &mut Vec<Received>) {
        let mut buf = [0u8; 1500];
        for (sock, v4) in [(&self.v4, true), (&self.v6, false)] {
            let Some(sock) = sock else {
                continue;
            };
            // Bounded: one wake reads at most this many, the rest the next.
            for _ in 0..4096 {
                match sock.s.try_recv_from(&mut buf) {
                    Ok((n, from)) => {
                        if let Some((seq, r)) = parse(&buf[..n], v4, sock.kind, self.id) {
                            out.push((from.ip(), seq, r));
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
