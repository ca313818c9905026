//! The sans-IO session of one peer: `handle(input) -> Vec<Output>`, no sockets,
//! no clock, no tokio. The peer task (`peer.rs`) turns outputs into socket
//! operations and sleeps and feeds what happens back in.
//!
//! ```text
//!            Start                 Connected/Accepted        OPEN ok
//!   Idle ──────────────► Connect ─────────────────► OpenSent ───────► OpenConfirm
//!    ▲  ▲                 │   ▲ ConnectRetry            │                 │ KEEPALIVE
//!    │  │    ConnectFailed▼   │                         │                 ▼
//!    │  │               Active ◄────────────────────────┘ TCP fail    Established
//!    │  └── IdleHold (backoff+jitter, or max-prefix hold-off) ◄── any error ──┘
//!    └── Stop (Cease/Administrative Shutdown with RFC 9003 reason; no restart)
//! ```
//!
//! The RFC 4271 §8 transitions come from rustbgpd-fsm; this type adds what the
//! FSM leaves to the embedder: automatic restart with exponential backoff and
//! jitter after the FSM falls to Idle (cut short by `ConnectNow` when the embedder
//! knows the path is back; the next three connects then hang at most half a second
//! each), the RFC 9687 send hold timer, the
//! Adj-RIB-Out (sent in full on Established and on ROUTE-REFRESH, RFC 2918 §4),
//! RFC 7606 dispositions of received UPDATEs, loop detection, max-prefix, and the
//! RFC 4271 §6.8 collision decision (the driver holds the competing connection;
//! `Input::Adopt` restarts the FSM on the winner).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{MaxPrefixAction, PeerConfig, Route};
use crate::prefix_set::PrefixSet;
use crate::status::{Counters, PeerState};
use crate::wire::{
    self, Action, Afi, EXTENDED_MAX_LEN, EncodeCtx, Event, Fsm, Message, Negotiated,
    RouteRefreshSubtype, STANDARD_MAX_LEN, SessionState, TimerType, UpdateVerdict, codes,
};

/// Timers the driver runs on the session's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// RFC 4271 ConnectRetryTimer.
    ConnectRetry,
    /// RFC 4271 HoldTimer.
    Hold,
    /// RFC 4271 KeepaliveTimer.
    Keepalive,
    /// Wait in Idle before restarting (backoff or max-prefix hold-off).
    IdleHold,
    /// RFC 9687 SendHoldTimer: runs while our output cannot be written.
    SendHold,
}

impl Timer {
    pub(crate) const ALL: [Timer; 5] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::IdleHold,
        Timer::SendHold,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Everything that can happen to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// Begin (or resume) connecting.
    Start,
    /// Close for good with Cease / Administrative Shutdown and this RFC 9003 reason.
    Stop { reason: String },
    /// Close with Cease / Administrative Reset and this reason, then reconnect.
    Reset { reason: String },
    /// The path to the peer is back (its link came up, BFD came Up): connect now
    /// rather than at the end of the backoff or of ConnectRetry, and start the backoff
    /// over. Nothing while a connection exists, while stopped, or during a max-prefix
    /// hold-off.
    ConnectNow,
    /// Our outgoing connection is up; `local` is our end's address.
    Connected { local: IpAddr },
    /// A connection from the peer was accepted (passive).
    Accepted { local: IpAddr },
    /// The outgoing connection attempt failed.
    ConnectFailed,
    /// The connection was closed or broke.
    Closed,
    /// Bytes read from the connection.
    Data(Bytes),
    /// A timer armed by [`Output::Arm`] fired.
    Expired(Timer),
    /// Announce (or replace) a route.
    Announce(Route),
    /// Withdraw a prefix.
    Withdraw(IpNet),
    /// Output is queued because the socket would block (starts the send hold timer).
    WriteStalled,
    /// All queued output was written.
    WriteDrained,
    /// RFC 4271 §6.8: the peer's second connection won the collision. The current
    /// connection is already closed (with Cease/7) by the driver; our OPEN was sent
    /// on the new one; `data` starts with the peer's OPEN from it.
    Adopt { local: IpAddr, data: Bytes },
}

/// What to do with a second connection from the peer while one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collision {
    /// Close it: the existing session is Established (RFC 4271 §6.8), or we are stopping.
    Refuse,
    /// Send our OPEN on it, read the peer's OPEN, then call [`Session::collision_winner`].
    Hold,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// Open a TCP connection to the peer.
    Connect,
    /// Write these bytes (one BGP message) now.
    Send(Bytes),
    /// Close the connection (and abandon any connection attempt).
    Close,
    /// (Re)arm a timer.
    Arm(Timer, Duration),
    /// Cancel a timer.
    Cancel(Timer),
    /// The session reached Established.
    Up,
    /// The session left Established, with the reason.
    Down(String),
}

/// The sans-IO session.
pub(crate) struct Session {
    cfg: PeerConfig,
    fsm: Fsm,
    rbuf: BytesMut,
    connected: bool,
    /// The current connection was opened by the peer (for RFC 4271 §6.8).
    inbound: bool,
    /// Our last OPEN, re-sent on a second connection during a collision.
    last_open: Option<Bytes>,
    local_addr: Option<IpAddr>,
    negotiated: Option<Negotiated>,
    rib_out: BTreeMap<IpNet, Route>,
    received: PrefixSet,
    max_prefix_warned: bool,
    stopped: bool,
    failures: u32,
    hold_off_next: Option<Duration>,
    /// The IdleHold timer runs a max-prefix hold-off, not a backoff.
    holding_off: bool,
    /// Connect attempts left that wait `FAST_CONNECT_RETRY`, not ConnectRetry: set
    /// by `ConnectNow` (the path just came back; a lost SYN or SYN-ACK is the likely
    /// failure, and TCP's own retransmission waits a second, then three).
    fast_retries: u8,
    rng: StdRng,
    counters: Counters,
    last_error: Option<String>,
}

/// How long a connect after `ConnectNow` may hang before it is dropped and tried
/// again: the neighbor is a hop or two away, so a handshake not done in half a second
/// lost a packet while the path was coming up.
const FAST_CONNECT_RETRY: Duration = Duration::from_millis(500);
/// Connect attempts after `ConnectNow` that wait `FAST_CONNECT_RETRY`.
const FAST_RETRIES: u8 = 3;

impl Session {
    /// A session in Idle; `seed` drives the jitter (fixed in tests).
    pub(crate) fn new(cfg: PeerConfig, seed: u64) -> Self {
        let fsm = Fsm::new(wire::fsm_config(&cfg));
        Self {
            cfg,
            fsm,
            rbuf: BytesMut::new(),
            connected: false,
            inbound: false,
            last_open: None,
            local_addr: None,
            negotiated: None,
            rib_out: BTreeMap::new(),
            received: PrefixSet::default(),
            max_prefix_warned: false,
            stopped: true,
            failures: 0,
            hold_off_next: None,
            holding_off: false,
            fast_retries: 0,
            rng: StdRng::seed_from_u64(seed),
            counters: Counters::default(),
            last_error: None,
        }
    }

    pub(crate) fn state(&self) -> PeerState {
        match self.fsm.state() {
            SessionState::Idle => PeerState::Idle,
            SessionState::Connect => PeerState::Connect,
            SessionState::Active => PeerState::Active,
            SessionState::OpenSent => PeerState::OpenSent,
            SessionState::OpenConfirm => PeerState::OpenConfirm,
            SessionState::Established => PeerState::Established,
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }
    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
    pub(crate) fn prefixes_announced(&self) -> usize {
        self.rib_out.len()
    }
    pub(crate) fn prefixes_sent(&self) -> usize {
        if !self.established() {
            return 0;
        }
        self.rib_out
            .keys()
            .filter(|p| self.family_negotiated(p))
            .count()
    }
    pub(crate) fn prefixes_received(&self) -> usize {
        self.received.len()
    }
    pub(crate) fn remote_id(&self) -> Option<(std::net::Ipv4Addr, u32)> {
        self.negotiated
            .as_ref()
            .map(|n| (n.peer_router_id, n.peer_asn))
    }
    pub(crate) fn config(&self) -> &PeerConfig {
        &self.cfg
    }
    /// Administratively down (stopped or disabled).
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped
    }
    /// True once stopped and the connection is gone: the driver may exit.
    pub(crate) fn finished(&self) -> bool {
        self.stopped && !self.connected && self.fsm.state() == SessionState::Idle
    }

    /// Feeds one input; returns what to do, in order.
    pub(crate) fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                if self.stopped {
                    self.stopped = false;
                    if self.fsm.state() == SessionState::Idle {
                        self.fsm_event(Event::ManualStart, &mut out);
                    }
                }
            }
            Input::Stop { reason } => {
                self.stopped = true;
                self.holding_off = false;
                out.push(Output::Cancel(Timer::IdleHold));
                self.last_error = Some(format!("administrative shutdown: {reason}"));
                let reason = Some(wire::shutdown_communication(&reason));
                self.fsm_event(Event::ManualStop { reason }, &mut out);
                // A stop in Idle or Connect leaves nothing open; make sure of it.
                if !out.contains(&Output::Close) {
                    out.push(Output::Close);
                }
                self.connected = false;
            }
            Input::Reset { reason } => {
                if !self.stopped {
                    if self.fsm.state() != SessionState::Idle {
                        self.last_error = Some(format!("administrative reset: {reason}"));
                        let reason = Some(wire::shutdown_communication(&reason));
                        self.fsm_event(Event::AdministrativeReset { reason }, &mut out);
                    }
                    // A reset was asked for: come back after the shortest wait.
                    self.failures = 0;
                    self.holding_off = false;
                    out.retain(|o| !matches!(o, Output::Arm(Timer::IdleHold, _)));
                    out.push(Output::Arm(Timer::IdleHold, Duration::from_millis(100)));
                }
            }
            Input::ConnectNow => {
                if self.stopped || self.connected || self.holding_off {
                    return out;
                }
                match self.fsm.state() {
                    SessionState::Idle => {
                        self.failures = 0;
                        self.fast_retries = FAST_RETRIES;
                        out.push(Output::Cancel(Timer::IdleHold));
                        self.fsm_event(Event::ManualStart, &mut out);
                    }
                    // RFC 4271 8.2.2: ConnectRetryTimer_Expires in Connect or Active
                    // drops a pending attempt and initiates a new TCP connection.
                    SessionState::Connect | SessionState::Active => {
                        self.failures = 0;
                        self.fast_retries = FAST_RETRIES;
                        self.fsm_event(Event::ConnectRetryTimerExpires, &mut out);
                    }
                    _ => {}
                }
            }
            Input::Connected { local } | Input::Accepted { local } => {
                let inbound = matches!(input, Input::Accepted { .. });
                if matches!(
                    self.fsm.state(),
                    SessionState::Connect | SessionState::Active
                ) && !self.connected
                {
                    self.connected = true;
                    self.fast_retries = 0;
                    self.inbound = inbound;
                    self.local_addr = Some(local);
                    self.rbuf.clear();
                    let ev = if inbound {
                        Event::TcpConnectionAcknowledged
                    } else {
                        Event::TcpConnectionConfirmed
                    };
                    self.fsm_event(ev, &mut out);
                } else {
                    // Stopped meanwhile. (A second connection while one exists never
                    // gets here: the driver runs it through `collision`/`Adopt`.)
                    out.push(Output::Close);
                }
            }
            Input::ConnectFailed => {
                if !self.connected {
                    self.fsm_event(Event::TcpConnectionFails, &mut out);
                }
            }
            Input::Closed => {
                if self.connected {
                    self.connected = false;
                    self.set_error_if_none("connection closed by peer");
                    self.fsm_event(Event::TcpConnectionFails, &mut out);
                }
            }
            Input::Data(bytes) => {
                if self.connected {
                    self.rbuf.extend_from_slice(&bytes);
                    self.read_frames(&mut out);
                }
            }
            Input::Expired(t) => self.expired(t, &mut out),
            Input::Announce(route) => {
                let route = Route {
                    prefix: route.prefix.trunc(),
                    ..route
                };
                if self.established() {
                    self.send_route(&route, &mut out);
                }
                self.rib_out.insert(route.prefix, route);
            }
            Input::Withdraw(prefix) => {
                if self.rib_out.remove(&prefix.trunc()).is_some() && self.established() {
                    self.send_withdraw(&[prefix.trunc()], &mut out);
                }
            }
            Input::WriteStalled => {
                if self.connected {
                    out.push(Output::Arm(
                        Timer::SendHold,
                        self.cfg.effective_send_hold_time(),
                    ));
                }
            }
            Input::WriteDrained => out.push(Output::Cancel(Timer::SendHold)),
            Input::Adopt { local, data } => self.adopt(local, data, &mut out),
        }
        out
    }

    /// RFC 4271 §6.8, first half: may a second connection compete with the current one?
    pub(crate) fn collision(&self) -> Collision {
        if self.stopped || !self.connected || self.fsm.state() == SessionState::Established {
            Collision::Refuse
        } else {
            Collision::Hold
        }
    }

    /// RFC 4271 §6.8, second half, once the new connection's OPEN carried the peer's
    /// BGP Identifier: `true` keeps the new connection. The connection opened by the
    /// side with the higher identifier survives. Two connections opened by the peer
    /// (it restarted while the old one lingers) keep the newer one.
    pub(crate) fn collision_winner_is_new(&self, peer_id: std::net::Ipv4Addr) -> bool {
        if self.fsm.state() == SessionState::Established {
            return false;
        }
        // The new connection is always inbound (the peer opened it).
        self.inbound || u32::from(self.cfg.router_id) < u32::from(peer_id)
    }

    /// Our last OPEN, to send on a competing connection.
    pub(crate) fn last_open(&self) -> Option<Bytes> {
        self.last_open.clone()
    }

    /// Restarts the FSM on the winning inbound connection: Connect -> OpenSent (our
    /// OPEN is already on that wire, so not sent again), then feeds its data.
    fn adopt(&mut self, local: IpAddr, data: Bytes, out: &mut Vec<Output>) {
        if self.stopped {
            out.push(Output::Close);
            return;
        }
        for t in Timer::ALL {
            out.push(Output::Cancel(t));
        }
        self.fsm = Fsm::new(wire::fsm_config(&self.cfg));
        self.negotiated = None;
        self.received.clear();
        let mut tmp = Vec::new();
        self.fsm_event(Event::ManualStart, &mut tmp);
        self.fsm_event(Event::TcpConnectionAcknowledged, &mut tmp);
        out.extend(
            tmp.into_iter()
                .filter(|o| matches!(o, Output::Arm(..) | Output::Cancel(_))),
        );
        self.connected = true;
        self.inbound = true;
        self.local_addr = Some(local);
        self.rbuf.clear();
        self.rbuf.extend_from_slice(&data);
        self.read_frames(out);
    }

    fn established(&self) -> bool {
        self.fsm.state() == SessionState::Established && self.negotiated.is_some()
    }

    fn set_error_if_none(&mut self, why: &str) {
        if self.last_error.is_none() {
            self.last_error = Some(why.to_string());
        }
    }

    fn expired(&mut self, t: Timer, out: &mut Vec<Output>) {
        match t {
            Timer::ConnectRetry => self.fsm_event(Event::ConnectRetryTimerExpires, out),
            Timer::Hold => {
                self.last_error = Some("hold timer expired".into());
                self.fsm_event(Event::HoldTimerExpires, out);
            }
            Timer::Keepalive => self.fsm_event(Event::KeepaliveTimerExpires, out),
            Timer::IdleHold => {
                self.holding_off = false;
                if !self.stopped && self.fsm.state() == SessionState::Idle {
                    self.fsm_event(Event::ManualStart, out);
                }
            }
            Timer::SendHold => {
                if self.connected {
                    // RFC 9687 §4: send the NOTIFICATION if possible, but do not wait for it.
                    self.last_error = Some("send hold timer expired (RFC 9687)".into());
                    let n = wire::notification(codes::SEND_HOLD_TIMER_EXPIRED, 0, Bytes::new());
                    self.send(wire::encode_notification(&n), out);
                    self.counters.notifications_sent += 1;
                    self.connected = false;
                    self.fsm_event(Event::TcpConnectionFails, out);
                    if !out.contains(&Output::Close) {
                        out.push(Output::Close);
                    }
                }
            }
        }
    }

    fn read_frames(&mut self, out: &mut Vec<Output>) {
        while self.connected {
            let max = match &self.negotiated {
                Some(n) if n.extended_message => EXTENDED_MAX_LEN,
                _ => STANDARD_MAX_LEN,
            };
            match wire::next_frame(&mut self.rbuf, max) {
                Ok(None) => break,
                Ok(Some(msg)) => {
                    self.counters.messages_received += 1;
                    self.on_message(msg, out);
                }
                Err(e) => {
                    tracing::warn!(peer = %self.cfg.name, error = %e, "undecodable message");
                    self.last_error = Some(format!("decode error: {e}"));
                    self.rbuf.clear();
                    self.fsm_event(Event::DecodeError(e), out);
                    break;
                }
            }
        }
    }

    fn on_message(&mut self, msg: Message, out: &mut Vec<Output>) {
        match msg {
            Message::Open(open) => self.fsm_event(Event::OpenReceived(open), out),
            Message::Keepalive => self.fsm_event(Event::KeepaliveReceived, out),
            Message::Notification(n) => {
                self.counters.notifications_received += 1;
                let why = format!("received NOTIFICATION {}", wire::describe_notification(&n));
                tracing::warn!(peer = %self.cfg.name, notification = %why, "peer closed the session");
                self.last_error = Some(why);
                self.fsm_event(Event::NotificationReceived(n), out);
            }
            Message::RouteRefresh(rr) => {
                let (Some(afi), Some(safi)) = (rr.afi(), rr.safi()) else {
                    return;
                };
                let refresh = rr.subtype() == RouteRefreshSubtype::Normal;
                self.fsm_event(Event::RouteRefreshReceived { afi, safi }, out);
                if refresh && self.established() {
                    // RFC 2918 §4: re-advertise the Adj-RIB-Out of that family.
                    let routes: Vec<Route> = self
                        .rib_out
                        .values()
                        .filter(|r| {
                            matches!(
                                (r.prefix, afi),
                                (IpNet::V4(_), Afi::Ipv4) | (IpNet::V6(_), Afi::Ipv6)
                            )
                        })
                        .cloned()
                        .collect();
                    for r in &routes {
                        self.send_route(r, out);
                    }
                }
            }
            Message::Update(update) => {
                self.counters.updates_received += 1;
                let Some(neg) = self.negotiated.clone() else {
                    self.fsm_event(Event::UpdateReceived, out);
                    return;
                };
                match wire::classify_update(
                    &update,
                    neg.four_octet_as,
                    self.cfg.is_ibgp(),
                    self.cfg.local_asn,
                ) {
                    UpdateVerdict::Reset(n, why) => {
                        tracing::warn!(peer = %self.cfg.name, error = %why, "malformed UPDATE, resetting session");
                        self.last_error = Some(format!("malformed UPDATE: {why}"));
                        self.fsm_event(Event::UpdateValidationError(n), out);
                    }
                    UpdateVerdict::Routes {
                        announced,
                        withdrawn,
                        discarded,
                        treat_as_withdraw,
                        looped,
                    } => {
                        if looped {
                            self.counters.looped_updates += 1;
                        }
                        if treat_as_withdraw {
                            self.counters.treat_as_withdraw += 1;
                            tracing::warn!(peer = %self.cfg.name, "RFC 7606 treat-as-withdraw");
                        }
                        if discarded > 0 {
                            self.counters.attributes_discarded += discarded as u64;
                            tracing::warn!(peer = %self.cfg.name, discarded, "RFC 7606 attribute discard");
                        }
                        for p in &withdrawn {
                            self.received.remove(p);
                        }
                        for p in &announced {
                            self.received.insert(p);
                        }
                        self.fsm_event(Event::UpdateReceived, out);
                        self.check_max_prefix(out);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_max_prefix(&mut self, out: &mut Vec<Output>) {
        let Some(mp) = self.cfg.max_prefix else {
            return;
        };
        let count = self.received.len();
        if count <= mp.limit as usize {
            return;
        }
        match mp.action {
            MaxPrefixAction::Warn => {
                if !self.max_prefix_warned {
                    self.max_prefix_warned = true;
                    tracing::warn!(peer = %self.cfg.name, count, limit = mp.limit, "max-prefix exceeded");
                }
            }
            MaxPrefixAction::Teardown { hold_off } => {
                tracing::warn!(peer = %self.cfg.name, count, limit = mp.limit, "max-prefix exceeded, tearing down");
                self.last_error = Some(format!(
                    "max-prefix {} exceeded ({count} received)",
                    mp.limit
                ));
                self.hold_off_next = Some(hold_off);
                // RFC 4486 §4: AFI, SAFI and the limit as data.
                let mut data = vec![0, 1, 1];
                data.extend_from_slice(&mp.limit.to_be_bytes());
                let n = wire::notification(
                    codes::CEASE,
                    codes::cease_subcode::MAX_PREFIXES,
                    Bytes::from(data),
                );
                self.fsm_event(Event::UpdateValidationError(n), out);
            }
        }
    }

    fn encode_ctx(&self) -> Option<EncodeCtx> {
        let neg = self.negotiated.as_ref()?;
        let (local_v4, local_v6) = match self.local_addr {
            Some(IpAddr::V4(a)) => (Some(a), None),
            Some(IpAddr::V6(a)) => (a.to_ipv4_mapped(), Some(a)),
            None => (None, None),
        };
        Some(EncodeCtx {
            local_asn: self.cfg.local_asn,
            ibgp: self.cfg.is_ibgp(),
            four_octet_as: neg.four_octet_as,
            next_hop_v4: self.cfg.next_hop_v4.or(local_v4),
            next_hop_v6: self.cfg.next_hop_v6.or(local_v6),
            max_len: if neg.extended_message {
                EXTENDED_MAX_LEN
            } else {
                STANDARD_MAX_LEN
            },
        })
    }

    fn family_negotiated(&self, prefix: &IpNet) -> bool {
        match (&self.negotiated, prefix) {
            (Some(n), IpNet::V4(_)) => n.ipv4,
            (Some(n), IpNet::V6(_)) => n.ipv6,
            (None, _) => false,
        }
    }

    fn send_route(&mut self, route: &Route, out: &mut Vec<Output>) {
        if !self.family_negotiated(&route.prefix) {
            tracing::debug!(peer = %self.cfg.name, prefix = %route.prefix, "family not negotiated, not sent");
            return;
        }
        let Some(ctx) = self.encode_ctx() else { return };
        match wire::encode_announce(route, &ctx) {
            Ok(bytes) => {
                self.counters.updates_sent += 1;
                self.send(bytes, out);
            }
            Err(why) => {
                tracing::warn!(peer = %self.cfg.name, prefix = %route.prefix, why, "route not sent")
            }
        }
    }

    /// RFC 4724 §2: End-of-RIB for each negotiated family after the initial dump.
    fn send_end_of_rib(&mut self, out: &mut Vec<Output>) {
        let Some(ctx) = self.encode_ctx() else { return };
        let Some(n) = self.negotiated.clone() else {
            return;
        };
        for (on, ipv6) in [(n.ipv4, false), (n.ipv6, true)] {
            if on && let Ok(b) = wire::encode_end_of_rib(ipv6, &ctx) {
                self.counters.updates_sent += 1;
                self.send(b, out);
            }
        }
    }

    fn send_withdraw(&mut self, prefixes: &[IpNet], out: &mut Vec<Output>) {
        let prefixes: Vec<IpNet> = prefixes
            .iter()
            .copied()
            .filter(|p| self.family_negotiated(p))
            .collect();
        let Some(ctx) = self.encode_ctx() else { return };
        match wire::encode_withdraw(&prefixes, &ctx) {
            Ok(msgs) => {
                for m in msgs {
                    self.counters.updates_sent += 1;
                    self.send(m, out);
                }
            }
            Err(why) => tracing::warn!(peer = %self.cfg.name, why, "withdraw not encoded"),
        }
    }

    fn send(&mut self, bytes: Bytes, out: &mut Vec<Output>) {
        self.counters.messages_sent += 1;
        out.push(Output::Send(bytes));
    }

    fn fsm_event(&mut self, event: Event, out: &mut Vec<Output>) {
        for action in self.fsm.handle_event(event) {
            self.fsm_action(action, out);
        }
    }

    fn fsm_action(&mut self, action: Action, out: &mut Vec<Output>) {
        match action {
            Action::SendOpen(open) => match wire::encode(&Message::Open(open), STANDARD_MAX_LEN) {
                Some(b) => {
                    self.last_open = Some(b.clone());
                    self.send(b, out);
                }
                None => tracing::error!(peer = %self.cfg.name, "OPEN does not encode"),
            },
            Action::SendKeepalive => self.send(wire::encode_keepalive(), out),
            Action::SendNotification(n) => {
                let why = format!("sent NOTIFICATION {}", wire::describe_notification(&n));
                tracing::info!(peer = %self.cfg.name, notification = %why, "closing session");
                // Keep the cause set just before this event, add what we sent.
                self.last_error = Some(match self.last_error.take() {
                    Some(e) if e.starts_with("administrative") => e,
                    Some(e) if !e.contains("NOTIFICATION") && !e.starts_with("connection") => {
                        format!("{e}; {why}")
                    }
                    _ => why,
                });
                self.counters.notifications_sent += 1;
                self.send(wire::encode_notification(&n), out);
            }
            Action::StartTimer(t, secs) => {
                let timer = map_timer(t);
                let secs = match (timer, self.cfg.keepalive) {
                    // A configured keepalive may only shorten the negotiated hold / 3.
                    (Timer::Keepalive, Some(k)) => secs.min(u32::from(k)).max(1),
                    _ => secs,
                };
                let mut d = Duration::from_secs(u64::from(secs));
                if timer == Timer::ConnectRetry {
                    // The FSM doubles ConnectRetry with each failed connect, up to
                    // 300 s: a router back from a long outage would wait minutes for
                    // us. Capped at the configured base or the restart backoff's cap,
                    // whichever is longer (issue 22).
                    let cap = Duration::from_secs(u64::from(self.cfg.connect_retry))
                        .max(self.cfg.idle_hold_max);
                    // RFC 4271 §10: jitter ConnectRetry to 75-100 % of its value.
                    d = d.min(cap).mul_f64(self.rng.random_range(0.75..=1.0));
                    if self.fast_retries > 0 {
                        self.fast_retries -= 1;
                        d = d.min(FAST_CONNECT_RETRY);
                    }
                }
                out.push(Output::Arm(timer, d));
            }
            Action::StopTimer(t) => out.push(Output::Cancel(map_timer(t))),
            Action::InitiateTcpConnection if !self.cfg.passive => out.push(Output::Connect),
            Action::CloseTcpConnection => {
                self.connected = false;
                self.rbuf.clear();
                out.push(Output::Close);
            }
            Action::StateChanged { old, new } => {
                tracing::info!(peer = %self.cfg.name, from = %old, to = %new, "state change");
                if new == SessionState::Idle {
                    self.enter_idle(out);
                }
            }
            Action::SessionEstablished(neg) => {
                self.negotiated = Some(Negotiated::from(neg.as_ref()));
                self.failures = 0;
                self.hold_off_next = None;
                self.max_prefix_warned = false;
                self.last_error = None;
                self.counters.established_transitions += 1;
                out.push(Output::Up);
                let routes: Vec<Route> = self.rib_out.values().cloned().collect();
                for r in &routes {
                    self.send_route(r, out);
                }
                self.send_end_of_rib(out);
            }
            Action::SessionDown => {
                // The FSM also says this when leaving Connect/Active; only a session
                // that was up goes down.
                if self.negotiated.take().is_some() {
                    let why = self
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "session down".into());
                    out.push(Output::Down(why));
                }
                self.received.clear();
            }
            _ => {}
        }
    }

    fn enter_idle(&mut self, out: &mut Vec<Output>) {
        self.negotiated = None;
        self.received.clear();
        out.push(Output::Cancel(Timer::ConnectRetry));
        out.push(Output::Cancel(Timer::SendHold));
        if self.stopped {
            return;
        }
        self.holding_off = self.hold_off_next.is_some();
        let delay = match self.hold_off_next.take() {
            Some(d) => d,
            None => {
                self.failures = self.failures.saturating_add(1);
                let exp = self.failures.saturating_sub(1).min(16);
                let base = Duration::from_secs(1u64 << exp).min(self.cfg.idle_hold_max);
                base.mul_f64(self.rng.random_range(0.75..=1.0))
            }
        };
        out.push(Output::Arm(Timer::IdleHold, delay));
    }
}

fn map_timer(t: TimerType) -> Timer {
    match t {
        TimerType::ConnectRetry => Timer::ConnectRetry,
        TimerType::Hold => Timer::Hold,
        TimerType::Keepalive => Timer::Keepalive,
        _ => Timer::IdleHold,
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
