//! The per-peer tokio task: owns one [`Session`], its TCP connection and its
//! timers, and does nothing but turn session outputs into I/O and I/O into inputs.

use std::collections::VecDeque;
use std::future::{Future, pending};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::Instrument;

use crate::config::{PeerConfig, Route};
use crate::security;
use crate::session::{Collision, Input, Output, Session, Timer};
use crate::status::{PeerState, PeerStatus};
use crate::wire::{self, Message};

/// What the handle asks of a peer task.
#[derive(Debug)]
pub(crate) enum Command {
    Announce(Route),
    Withdraw(IpNet),
    Status(oneshot::Sender<PeerStatus>),
    Shutdown {
        reason: String,
        done: oneshot::Sender<()>,
    },
    /// Cease / Administrative Reset, then reconnect.
    Reset {
        reason: String,
    },
    /// Cease / Administrative Shutdown, stay down, keep the task and the routes.
    Disable {
        reason: String,
    },
    /// Undo `Disable`.
    Enable,
    /// The path is back: connect now, backoff from the start.
    ConnectNow,
    /// A connection the listener accepted from this peer's address.
    Inbound(TcpStream),
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

/// Longest time a closing connection may take to flush its last message (a NOTIFICATION).
const LINGER: Duration = Duration::from_secs(1);

/// Starts the task; it ends after a shutdown or when every sender is dropped.
pub(crate) fn spawn(
    cfg: PeerConfig,
    rx: mpsc::Receiver<Command>,
    changes: Arc<watch::Sender<u64>>,
) -> JoinHandle<()> {
    let span = tracing::info_span!("bgp_peer", peer = %cfg.name, remote = %cfg.remote_addr);
    let seed = rand::random::<u64>();
    let driver = Driver {
        session: Session::new(cfg, seed),
        reader: None,
        writer: None,
        pending: VecDeque::new(),
        connecting: None,
        deadlines: [None; 5],
        up_since: None,
        rbuf: BytesMut::with_capacity(65536),
        lingering: Vec::new(),
        candidate: None,
        changes,
        shown: None,
    };
    tokio::spawn(driver.run(rx).instrument(span))
}

struct Driver {
    session: Session,
    reader: Option<OwnedReadHalf>,
    writer: Option<OwnedWriteHalf>,
    pending: VecDeque<Bytes>,
    connecting: Option<ConnectFuture>,
    deadlines: [Option<Instant>; 5],
    up_since: Option<Instant>,
    rbuf: BytesMut,
    lingering: Vec<JoinHandle<()>>,
    /// A second connection from the peer, held until its OPEN names the peer's
    /// BGP Identifier (RFC 4271 §6.8).
    candidate: Option<Candidate>,
    /// Bumped when [`Shown`] changes (`PeerHandle::changes`).
    changes: Arc<watch::Sender<u64>>,
    shown: Option<Shown>,
}

/// What the status shows of a peer beyond the clock and the message counters.
#[derive(PartialEq)]
struct Shown {
    state: PeerState,
    disabled: bool,
    last_error: Option<String>,
    prefixes: (usize, usize, usize),
}

struct Candidate {
    stream: TcpStream,
    buf: BytesMut,
    deadline: Instant,
}

/// How long a competing connection may take to send its OPEN.
const CANDIDATE_OPEN_WAIT: Duration = Duration::from_secs(30);

fn cease_collision() -> Bytes {
    wire::encode_notification(&wire::notification(
        wire::codes::CEASE,
        wire::codes::cease_subcode::CONNECTION_COLLISION_RESOLUTION,
        Bytes::new(),
    ))
}

async fn read_candidate(c: &mut Option<Candidate>) -> io::Result<usize> {
    match c {
        Some(c) => {
            c.buf.reserve(4096);
            c.stream.read_buf(&mut c.buf).await
        }
        None => pending().await,
    }
}

async fn read_some(reader: &mut Option<OwnedReadHalf>, buf: &mut BytesMut) -> io::Result<usize> {
    match reader {
        Some(r) => {
            buf.reserve(16384);
            r.read_buf(buf).await
        }
        None => pending().await,
    }
}

async fn connected(c: &mut Option<ConnectFuture>) -> io::Result<TcpStream> {
    match c {
        Some(f) => f.as_mut().await,
        None => pending().await,
    }
}

async fn writable(w: &Option<OwnedWriteHalf>) -> io::Result<()> {
    match w {
        Some(w) => w.writable().await,
        None => pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

/// Opens the outgoing connection with MD5 and GTSM applied before the SYN.
async fn connect(cfg: PeerConfig) -> io::Result<TcpStream> {
    let remote = cfg.remote_socket();
    let v6 = remote.is_ipv6();
    let socket = if v6 {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    if let Some(key) = &cfg.md5_password {
        security::set_md5(&socket, v6, cfg.remote_addr, Some(key))
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    if let Some(hops) = cfg.ttl_security_hops {
        security::set_gtsm(&socket, v6, cfg.remote_addr, hops)
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    if let Some(local) = cfg.local_addr {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    let limit = Duration::from_secs(u64::from(cfg.connect_retry.max(1)));
    timeout(limit, socket.connect(remote))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

/// Writes what is left, sends FIN, and reads until the peer closes, so a final
/// NOTIFICATION is not lost to a reset. Bounded by [`LINGER`].
async fn linger(
    reader: Option<OwnedReadHalf>,
    writer: Option<OwnedWriteHalf>,
    pending: VecDeque<Bytes>,
) {
    let _ = timeout(LINGER, async move {
        if let Some(mut w) = writer {
            for b in pending {
                if w.write_all(&b).await.is_err() {
                    return;
                }
            }
            let _ = w.shutdown().await;
            if let Some(mut r) = reader {
                let mut sink = [0u8; 4096];
                for _ in 0..1024 {
                    match r.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
        }
    })
    .await;
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
        self.feed(Input::Start);
        loop {
            if self.session.finished() && (!waiters.is_empty() || rx.is_closed()) {
                break;
            }
            let cand_deadline = self.candidate.as_ref().map(|c| c.deadline);
            let next = self
                .deadlines
                .iter()
                .flatten()
                .copied()
                .chain(cand_deadline)
                .min();
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    Some(Command::Shutdown { reason, done }) => {
                        waiters.push(done);
                        self.feed(Input::Stop { reason });
                    }
                    Some(cmd) => self.command(cmd),
                    None => {
                        // Every handle is gone: close with Cease and end.
                        self.feed(Input::Stop { reason: "speaker stopped".into() });
                        break;
                    }
                },
                r = read_some(&mut self.reader, &mut self.rbuf) => match r {
                    Ok(0) | Err(_) => {
                        self.feed(Input::Closed);
                        // Never poll a dead socket again, whatever the session made of it.
                        if self.reader.is_some() {
                            self.apply(Output::Close);
                        }
                    }
                    Ok(_) => {
                        let data = self.rbuf.split().freeze();
                        self.feed(Input::Data(data));
                    }
                },
                r = connected(&mut self.connecting) => {
                    self.connecting = None;
                    match r {
                        Ok(stream) => self.attach(stream, false),
                        Err(e) => {
                            tracing::debug!(error = %e, "connect failed");
                            self.feed(Input::ConnectFailed);
                        }
                    }
                }
                r = read_candidate(&mut self.candidate) => match r {
                    Ok(0) | Err(_) => self.candidate = None,
                    Ok(_) => self.check_candidate(),
                },
                r = writable(&self.writer), if !self.pending.is_empty() => match r {
                    Ok(()) => self.flush(),
                    Err(_) => self.feed(Input::Closed),
                },
                () = sleep_opt(next) => {
                    let now = Instant::now();
                    if self.candidate.as_ref().is_some_and(|c| c.deadline <= now) {
                        tracing::info!("competing connection sent no OPEN in time, closed");
                        self.candidate = None;
                    }
                    for t in Timer::ALL {
                        if self.deadlines[t.index()].is_some_and(|d| d <= now) {
                            self.deadlines[t.index()] = None;
                            self.feed(Input::Expired(t));
                        }
                    }
                }
            }
            self.publish();
        }
        self.publish();
        for l in self.lingering.drain(..) {
            let _ = l.await;
        }
        for w in waiters {
            let _ = w.send(());
        }
        tracing::info!("peer task stopped");
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Announce(r) => self.feed(Input::Announce(r)),
            Command::Withdraw(p) => self.feed(Input::Withdraw(p)),
            Command::Status(tx) => {
                let _ = tx.send(self.status());
            }
            Command::Inbound(stream) => {
                if self.reader.is_none() {
                    // Only connecting so far: the peer's connection is as good as ours.
                    self.connecting = None;
                    self.attach(stream, true);
                } else {
                    self.compete(stream);
                }
            }
            Command::Reset { reason } => self.feed(Input::Reset { reason }),
            Command::Disable { reason } => self.feed(Input::Stop { reason }),
            Command::Enable => self.feed(Input::Start),
            Command::ConnectNow => self.feed(Input::ConnectNow),
            Command::Shutdown { .. } => {}
        }
    }

    /// RFC 4271 §6.8: a second connection while one exists.
    fn compete(&mut self, stream: TcpStream) {
        let open = self.session.last_open();
        if self.session.collision() == Collision::Refuse
            || self.candidate.is_some()
            || open.is_none()
        {
            tracing::info!("collision: keeping the existing connection, closing the new one");
            self.refuse(stream);
            return;
        }
        let _ = stream.set_nodelay(true);
        let cfg = self.session.config();
        if let Some(hops) = cfg.ttl_security_hops
            && let Ok(local) = stream.local_addr()
            && let Err(e) = security::set_gtsm(&stream, local.is_ipv6(), cfg.remote_addr, hops)
        {
            tracing::warn!(error = %e, "GTSM on competing connection");
        }
        if let Some(open) = open
            && stream.try_write(&open).ok() != Some(open.len())
        {
            return;
        }
        tracing::info!("collision: second connection from the peer, waiting for its OPEN");
        self.candidate = Some(Candidate {
            stream,
            buf: BytesMut::new(),
            deadline: Instant::now() + CANDIDATE_OPEN_WAIT,
        });
    }

    /// Closes a losing connection with Cease / Connection Collision Resolution.
    fn refuse(&mut self, stream: TcpStream) {
        let (r, w) = stream.into_split();
        self.lingering.retain(|h| !h.is_finished());
        self.lingering.push(tokio::spawn(linger(
            Some(r),
            Some(w),
            VecDeque::from([cease_collision()]),
        )));
    }

    /// Once the competing connection's OPEN is in, keep one of the two.
    fn check_candidate(&mut self) {
        let Some(c) = self.candidate.as_ref() else {
            return;
        };
        let mut probe = c.buf.clone();
        let peer_id = match wire::next_frame(&mut probe, wire::STANDARD_MAX_LEN) {
            Ok(None) => return,
            Ok(Some(Message::Open(o))) => o.bgp_identifier,
            _ => {
                tracing::info!("competing connection did not start with an OPEN, closed");
                self.candidate = None;
                return;
            }
        };
        let Some(c) = self.candidate.take() else {
            return;
        };
        if !self.session.collision_winner_is_new(peer_id) {
            tracing::info!(%peer_id, "collision: existing connection wins");
            self.refuse(c.stream);
            return;
        }
        tracing::info!(%peer_id, "collision: the peer's new connection wins");
        let _ = self.write(cease_collision());
        self.apply(Output::Close);
        let Ok(local) = c.stream.local_addr() else {
            return;
        };
        let (r, w) = c.stream.into_split();
        self.reader = Some(r);
        self.writer = Some(w);
        self.pending.clear();
        self.rbuf.clear();
        self.feed(Input::Adopt {
            local: local.ip(),
            data: c.buf.freeze(),
        });
    }

    /// Bumps the change counter when what the status shows has changed.
    fn publish(&mut self) {
        let s = &self.session;
        let now = Shown {
            state: s.state(),
            disabled: s.is_stopped(),
            last_error: s.last_error().map(str::to_string),
            prefixes: (
                s.prefixes_announced(),
                s.prefixes_sent(),
                s.prefixes_received(),
            ),
        };
        if self.shown.as_ref() != Some(&now) {
            self.shown = Some(now);
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn status(&self) -> PeerStatus {
        let cfg = self.session.config();
        PeerStatus {
            name: cfg.name.clone(),
            remote_addr: cfg.remote_addr,
            state: self.session.state(),
            uptime: self.up_since.map(|t| t.elapsed()),
            remote_id: self.session.remote_id(),
            last_error: self.session.last_error().map(str::to_string),
            prefixes_announced: self.session.prefixes_announced(),
            prefixes_sent: self.session.prefixes_sent(),
            disabled: self.session.is_stopped(),
            prefixes_received: self.session.prefixes_received(),
            counters: self.session.counters(),
        }
    }

    fn attach(&mut self, stream: TcpStream, inbound: bool) {
        let local = match stream.local_addr() {
            Ok(a) => a.ip(),
            Err(_) => {
                self.feed(if inbound {
                    Input::Closed
                } else {
                    Input::ConnectFailed
                });
                return;
            }
        };
        // Every message is written the moment it exists; Nagle would hold a withdraw back.
        let _ = stream.set_nodelay(true);
        if inbound {
            let cfg = self.session.config();
            if let Some(hops) = cfg.ttl_security_hops
                && let Err(e) = security::set_gtsm(&stream, local.is_ipv6(), cfg.remote_addr, hops)
            {
                tracing::warn!(error = %e, "GTSM on accepted connection");
            }
        }
        let (r, w) = stream.into_split();
        self.reader = Some(r);
        self.writer = Some(w);
        self.pending.clear();
        self.rbuf.clear();
        self.feed(if inbound {
            Input::Accepted { local }
        } else {
            Input::Connected { local }
        });
    }

    /// Feeds an input and carries out every output, including those caused by
    /// carrying out outputs (a write error becomes `Closed`, and so on).
    fn feed(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        let mut rounds = 0;
        while let Some(input) = inputs.pop_front() {
            rounds += 1;
            if rounds > 64 {
                tracing::error!("input loop did not settle; dropping the rest");
                break;
            }
            for out in self.session.handle(input) {
                if let Some(next) = self.apply(out) {
                    inputs.push_back(next);
                }
            }
        }
    }

    fn apply(&mut self, out: Output) -> Option<Input> {
        match out {
            Output::Connect => {
                self.connecting = Some(Box::pin(connect(self.session.config().clone())));
                None
            }
            Output::Send(bytes) => self.write(bytes),
            Output::Close => {
                self.connecting = None;
                let (r, w) = (self.reader.take(), self.writer.take());
                if w.is_some() {
                    let pending = std::mem::take(&mut self.pending);
                    self.lingering.retain(|h| !h.is_finished());
                    self.lingering.push(tokio::spawn(linger(r, w, pending)));
                }
                None
            }
            Output::Arm(t, d) => {
                self.deadlines[t.index()] = Some(Instant::now() + d);
                None
            }
            Output::Cancel(t) => {
                self.deadlines[t.index()] = None;
                None
            }
            Output::Up => {
                self.up_since = Some(Instant::now());
                tracing::info!("session established");
                None
            }
            Output::Down(reason) => {
                self.up_since = None;
                tracing::warn!(%reason, "session down");
                None
            }
        }
    }

    /// Writes at once when nothing is queued; otherwise queues behind the backlog.
    fn write(&mut self, bytes: Bytes) -> Option<Input> {
        let w = self.writer.as_ref()?;
        if !self.pending.is_empty() {
            self.pending.push_back(bytes);
            return None;
        }
        let mut off = 0;
        while off < bytes.len() {
            match w.try_write(&bytes[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.pending.push_back(bytes.slice(off..));
                    return Some(Input::WriteStalled);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(Input::Closed),
            }
        }
        None
    }

    fn flush(&mut self) {
        let Some(w) = self.writer.as_ref() else {
            return;
        };
        while let Some(front) = self.pending.front_mut() {
            match w.try_write(front) {
                Ok(n) if n == front.len() => {
                    self.pending.pop_front();
                }
                Ok(n) => {
                    let rest = front.slice(n..);
                    *front = rest;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.feed(Input::Closed);
                    return;
                }
            }
        }
        self.feed(Input::WriteDrained);
    }
}
