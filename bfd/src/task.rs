//! The thin driver of every session of this system: one receive socket per address
//! family on port 3784, one send socket per session (source port 49152-65535, TTL
//! 255), and one timer: the earliest deadline the sessions ask for. Packets are taken
//! only with TTL (hop limit) 255 and from a configured peer (RFC 5881 section 5).

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use rand::Rng;
use tokio::io::Interest;
use tokio::net::UdpSocket as TokioUdp;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::packet::{ControlPacket, Diag, State};
use crate::session::{Output, Session, Timers};

/// UDP port of single-hop BFD control packets (RFC 5881).
pub const CONTROL_PORT: u16 = 3784;

/// One peer to run a session with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub peer: IpAddr,
    /// Source address of our packets (default: the kernel's choice).
    pub local: Option<IpAddr>,
    pub timers: Timers,
}

/// A session changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub peer: IpAddr,
    pub from: State,
    pub to: State,
    /// Why: ours, or the peer's when it signalled the change.
    pub diag: Diag,
    /// The peer's state as last received (AdminDown: it took the session down on
    /// purpose, which must not tear down what BFD protects, RFC 5882 3.2).
    pub remote: State,
}

/// One session as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub peer: IpAddr,
    pub state: State,
    pub remote_state: State,
    pub local_diag: Diag,
    pub remote_diag: Diag,
    pub tx_interval: Duration,
    pub detection_time: Duration,
    pub local_discr: u32,
}

/// Packets received and dropped, over all sessions.
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    /// Not a valid control packet (length, version, multiplier 0, discriminator 0, ...).
    pub malformed: AtomicU64,
    /// TTL or hop limit not 255.
    pub bad_ttl: AtomicU64,
    /// From an address that is not a configured peer, or for no session of ours.
    pub unknown: AtomicU64,
    /// Valid, but refused by the session (wrong discriminator, admin down).
    pub discarded: AtomicU64,
}

/// Could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind the BFD socket {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set {what} on the BFD socket: {source}")]
    Sockopt {
        what: &'static str,
        source: nix::Error,
    },
    #[error("no free source port in 49152-65535 for the BFD session to {peer}")]
    NoPort { peer: IpAddr },
    #[error("BFD peer {0} listed twice")]
    Duplicate(IpAddr),
}

enum Command {
    Status(oneshot::Sender<Vec<PeerStatus>>),
    AdminDown(IpAddr, bool),
    SetTimers(IpAddr, Timers),
}

/// Talks to the BFD task; dropping it stops the task.
#[derive(Debug)]
pub struct BfdHandle {
    tx: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Drop for BfdHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BfdHandle {
    /// Stops the task and waits until it is gone, its sockets closed: a new
    /// [`spawn`] can bind port 3784 again right after.
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Every session's state.
    pub async fn status(&self) -> Vec<PeerStatus> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Status(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Takes the session with `peer` administratively down, or back.
    pub async fn set_admin_down(&self, peer: IpAddr, down: bool) {
        let _ = self.tx.send(Command::AdminDown(peer, down)).await;
    }

    /// New timers for the session with `peer` (a Poll Sequence while Up).
    pub async fn set_timers(&self, peer: IpAddr, t: Timers) {
        let _ = self.tx.send(Command::SetTimers(peer, t)).await;
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

struct Peer {
    session: Session,
    addr: IpAddr,
    send: tokio::net::UdpSocket,
}

/// Starts sessions with `peers`; state changes arrive on `events`. Needs a tokio
/// runtime.
pub fn spawn(peers: &[PeerSpec], events: mpsc::Sender<Event>) -> Result<BfdHandle, Error> {
    let now = Instant::now();
    let mut rng = rand::rng();
    let mut sessions: Vec<Peer> = Vec::new();
    for spec in peers {
        if sessions.iter().any(|p| p.addr == spec.peer) {
            return Err(Error::Duplicate(spec.peer));
        }
        let discr = loop {
            let d: u32 = rng.random();
            if d != 0 && !sessions.iter().any(|p| p.session.local_discr() == d) {
                break d;
            }
        };
        sessions.push(Peer {
            session: Session::new(discr, spec.timers, now, rng.random()),
            addr: spec.peer,
            send: send_socket(spec)?,
        });
    }
    let rx4 = sessions
        .iter()
        .any(|p| p.addr.is_ipv4())
        .then(|| recv_socket(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
        .transpose()?;
    let rx6 = sessions
        .iter()
        .any(|p| p.addr.is_ipv6())
        .then(|| recv_socket(IpAddr::V6(Ipv6Addr::UNSPECIFIED)))
        .transpose()?;
    let counters = Arc::new(Counters::default());
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(run(sessions, rx4, rx6, rx, events, counters.clone()));
    Ok(BfdHandle { tx, counters, task })
}

fn recv_socket(any: IpAddr) -> Result<TokioUdp, Error> {
    let addr = SocketAddr::new(any, CONTROL_PORT);
    let bind = |source| Error::Bind { addr, source };
    let s = match any {
        IpAddr::V4(_) => UdpSocket::bind(addr).map_err(bind)?,
        IpAddr::V6(_) => {
            // Only IPv6: IPv4 has its own socket.
            let s = nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Inet6,
                nix::sys::socket::SockType::Datagram,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(|e| bind(e.into()))?;
            setsockopt(&s, sockopt::Ipv6V6Only, &true).map_err(|source| Error::Sockopt {
                what: "IPV6_V6ONLY",
                source,
            })?;
            let sa = SockaddrStorage::from(addr);
            nix::sys::socket::bind(s.as_raw_fd(), &sa).map_err(|e| bind(e.into()))?;
            UdpSocket::from(s)
        }
    };
    match any {
        IpAddr::V4(_) => {
            setsockopt(&s, sockopt::Ipv4RecvTtl, &true).map_err(|source| Error::Sockopt {
                what: "IP_RECVTTL",
                source,
            })?
        }
        IpAddr::V6(_) => {
            setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).map_err(|source| Error::Sockopt {
                what: "IPV6_RECVHOPLIMIT",
                source,
            })?
        }
    }
    s.set_nonblocking(true).map_err(bind)?;
    TokioUdp::from_std(s).map_err(bind)
}

fn send_socket(spec: &PeerSpec) -> Result<tokio::net::UdpSocket, Error> {
    let local = spec.local.unwrap_or(match spec.peer {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let mut rng = rand::rng();
    for _ in 0..64 {
        let port = rng.random_range(49152..=65535);
        let addr = SocketAddr::new(local, port);
        let Ok(s) = UdpSocket::bind(addr) else {
            continue;
        };
        let set = match local {
            IpAddr::V4(_) => setsockopt(&s, sockopt::Ipv4Ttl, &255),
            IpAddr::V6(_) => setsockopt(&s, sockopt::Ipv6Ttl, &255),
        };
        set.map_err(|source| Error::Sockopt {
            what: "the TTL (255)",
            source,
        })?;
        s.set_nonblocking(true)
            .map_err(|source| Error::Bind { addr, source })?;
        return tokio::net::UdpSocket::from_std(s).map_err(|source| Error::Bind { addr, source });
    }
    Err(Error::NoPort { peer: spec.peer })
}

async fn readable(sock: &Option<TokioUdp>) -> Option<&TokioUdp> {
    match sock {
        Some(s) => {
            s.readable().await.ok()?;
            Some(s)
        }
        None => std::future::pending().await,
    }
}

async fn run(
    mut peers: Vec<Peer>,
    rx4: Option<TokioUdp>,
    rx6: Option<TokioUdp>,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    counters: Arc<Counters>,
) {
    let by_addr: HashMap<IpAddr, usize> =
        peers.iter().enumerate().map(|(i, p)| (p.addr, i)).collect();
    let by_discr: HashMap<u32, usize> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.session.local_discr(), i))
        .collect();
    let mut buf = [0u8; 128];
    loop {
        let deadline = peers.iter().filter_map(|p| p.session.next_deadline()).min();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        let mut outputs: Vec<(usize, Vec<Output>)> = Vec::new();
        let mut got: Vec<Datagram> = Vec::new();
        tokio::select! {
            Some(fd) = readable(&rx4) => drain(fd, &mut buf, &mut got),
            Some(fd) = readable(&rx6) => drain(fd, &mut buf, &mut got),
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { return };
                let now = Instant::now();
                match cmd {
                    Command::Status(reply) => {
                        let _ = reply.send(peers.iter().map(status).collect());
                    }
                    Command::AdminDown(addr, down) => {
                        if let Some(&i) = by_addr.get(&addr) {
                            outputs.push((i, peers[i].session.set_admin_down(now, down)));
                        }
                    }
                    Command::SetTimers(addr, t) => {
                        if let Some(&i) = by_addr.get(&addr) {
                            outputs.push((i, peers[i].session.set_timers(now, t)));
                        }
                    }
                }
            }
            () = sleep => {
                let now = Instant::now();
                for (i, p) in peers.iter_mut().enumerate() {
                    if p.session.next_deadline().is_some_and(|d| d <= now) {
                        outputs.push((i, p.session.on_timer(now)));
                    }
                }
            }
        }
        let now = Instant::now();
        for d in got {
            counters.received.fetch_add(1, Ordering::Relaxed);
            if let Some((i, outs)) = accept(&mut peers, &by_addr, &by_discr, &d, now, &counters) {
                outputs.push((i, outs));
            }
        }
        for (i, outs) in outputs {
            carry_out(&peers[i], outs, &events, &counters).await;
        }
    }
}

/// One received datagram: source, TTL or hop limit (None when the kernel gave none),
/// the bytes.
struct Datagram {
    from: IpAddr,
    ttl: Option<i32>,
    bytes: Vec<u8>,
}

/// Reads every datagram waiting on `sock` (through tokio's readiness: a read that
/// would block clears it).
fn drain(sock: &TokioUdp, buf: &mut [u8], out: &mut Vec<Datagram>) {
    // Bounded: a flood cannot starve the timers.
    for _ in 0..256 {
        let r = sock.try_io(Interest::READABLE, || {
            recv_one(sock.as_raw_fd(), buf).map_err(std::io::Error::from)
        });
        match r {
            Ok(Some(d)) => out.push(d),
            Ok(None) => {}
            Err(_) => return, // WouldBlock, or an error the next readiness shows again
        }
    }
}

fn recv_one(fd: std::os::fd::RawFd, buf: &mut [u8]) -> nix::Result<Option<Datagram>> {
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)?;
    let from = msg.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|v4| IpAddr::V4(v4.ip()))
            .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
    });
    let mut ttl = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) = c {
                ttl = Some(t);
            }
        }
    }
    let n = msg.bytes;
    Ok(from.map(|from| Datagram {
        from: canonical(from),
        ttl,
        bytes: buf[..n.min(buf.len())].to_vec(),
    }))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// Checks one datagram and hands it to its session.
fn accept(
    peers: &mut [Peer],
    by_addr: &HashMap<IpAddr, usize>,
    by_discr: &HashMap<u32, usize>,
    d: &Datagram,
    now: Instant,
    counters: &Counters,
) -> Option<(usize, Vec<Output>)> {
    if d.ttl != Some(255) {
        counters.bad_ttl.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(from = %d.from, ttl = ?d.ttl, "BFD packet dropped: TTL not 255");
        return None;
    }
    let p = match ControlPacket::decode(&d.bytes) {
        Ok(p) => p,
        Err(e) => {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(from = %d.from, error = %e, "BFD packet dropped");
            return None;
        }
    };
    // By our discriminator when the peer knows it, else by the source address; either
    // way the source must be the session's peer.
    let i = if p.your_discr != 0 {
        by_discr.get(&p.your_discr).copied()
    } else {
        by_addr.get(&d.from).copied()
    };
    let Some(i) = i.filter(|&i| peers[i].addr == d.from) else {
        counters.unknown.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(from = %d.from, your_discr = p.your_discr, "BFD packet for no session of ours");
        return None;
    };
    match peers[i].session.on_packet(now, &p) {
        Ok(outs) => Some((i, outs)),
        Err(e) => {
            counters.discarded.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %d.from, error = %e, "BFD packet discarded");
            None
        }
    }
}

fn status(p: &Peer) -> PeerStatus {
    let s = &p.session;
    PeerStatus {
        peer: p.addr,
        state: s.state(),
        remote_state: s.remote_state(),
        local_diag: s.diag(),
        remote_diag: s.remote_diag(),
        tx_interval: s.tx_interval(),
        detection_time: s.detection_time(),
        local_discr: s.local_discr(),
    }
}

async fn carry_out(p: &Peer, outs: Vec<Output>, events: &mpsc::Sender<Event>, counters: &Counters) {
    for o in outs {
        match o {
            Output::Send(pkt) => {
                let dst = SocketAddr::new(p.addr, CONTROL_PORT);
                match p.send.try_send_to(&pkt.encode(), dst) {
                    Ok(_) => {
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::debug!(peer = %p.addr, error = %e, "BFD packet not sent"),
                }
            }
            Output::StateChanged { from, to, diag } => {
                let _ = events
                    .send(Event {
                        peer: p.addr,
                        from,
                        to,
                        diag,
                        remote: p.session.remote_state(),
                    })
                    .await;
                tracing::info!(peer = %p.addr, %from, %to, %diag, "BFD session state changed");
            }
        }
    }
}
