//! One BFD session, asynchronous mode (RFC 5880 section 6), as a state machine without
//! I/O: the caller feeds it received packets (already matched to the session, TTL
//! checked) and the times it asked for, and carries out what it returns: packets to
//! send and state changes to act on. Timers are outputs: [`Session::next_deadline`]
//! says when to call [`Session::on_timer`].
//!
//! ```text
//!            rx Down               rx Init/Up
//!   Down ────────────> Init ─────────────────> Up
//!     │  rx Init ──────────────────────────────^ │
//!     ^───────── rx Down / rx AdminDown / detection time expired ─┘
//! ```
//!
//! Intervals: while not Up the session advertises at least 1 s as its desired
//! transmit interval (6.8.3); once Up it moves to the configured one through a Poll
//! Sequence, as for any change while Up. An increase of the transmit interval or a
//! decrease of the required receive interval takes effect only when the peer has
//! answered the poll with Final.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::SmallRng};

use crate::packet::{ControlPacket, Diag, State};

/// While not Up, the desired transmit interval is at least this (RFC 5880 6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// What this end asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// bfd.DesiredMinTxInterval once Up.
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx: Duration,
    /// bfd.DetectMult.
    pub detect_mult: u8,
}

impl Default for Timers {
    /// FRR's defaults: 300 ms, 300 ms, 3.
    fn default() -> Self {
        Timers {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
        }
    }
}

/// What the caller must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Send this packet to the peer.
    Send(ControlPacket),
    /// The session changed state; `diag` says why (the local diagnostic, or the
    /// peer's when it signalled the change).
    StateChanged { from: State, to: State, diag: Diag },
}

/// Why a packet that decoded was still not taken (RFC 5880 6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    #[error("your discriminator {got} is not this session's {ours}")]
    WrongDiscriminator { got: u32, ours: u32 },
    #[error("your discriminator 0 in a packet in state {0}")]
    ZeroYourDiscr(State),
    #[error("the session is administratively down")]
    AdminDown,
}

/// One session. See the module doc.
#[derive(Debug)]
pub struct Session {
    local_discr: u32,
    state: State,
    diag: Diag,
    remote_discr: u32,
    remote_state: State,
    remote_diag: Diag,
    /// bfd.RemoteMinRxInterval (0 = the peer wants no packets).
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_mult: u8,
    config: Timers,
    /// What the packets carry.
    adv_tx: Duration,
    adv_rx: Duration,
    /// What the timers use (differs from the advertised ones during a poll).
    eff_tx: Duration,
    eff_rx: Duration,
    polling: bool,
    next_tx: Option<Instant>,
    detect_at: Option<Instant>,
    rng: SmallRng,
}

impl Session {
    /// A session in state Down, sending its first packet at `now`. `local_discr` must be
    /// non-zero and unique among this system's sessions.
    pub fn new(local_discr: u32, config: Timers, now: Instant, seed: u64) -> Session {
        let slow_tx = config.desired_min_tx.max(SLOW_TX);
        Session {
            local_discr,
            state: State::Down,
            diag: Diag::None,
            remote_discr: 0,
            remote_state: State::Down,
            remote_diag: Diag::None,
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: Duration::ZERO,
            remote_mult: 0,
            config,
            adv_tx: slow_tx,
            adv_rx: config.required_min_rx,
            eff_tx: slow_tx,
            eff_rx: config.required_min_rx,
            polling: false,
            next_tx: Some(now),
            detect_at: None,
            rng: SmallRng::seed_from_u64(seed ^ u64::from(local_discr)),
        }
    }

    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }
    pub fn state(&self) -> State {
        self.state
    }
    /// The local diagnostic: why this end last went down.
    pub fn diag(&self) -> Diag {
        self.diag
    }
    /// The peer's last diagnostic.
    pub fn remote_diag(&self) -> Diag {
        self.remote_diag
    }
    pub fn remote_state(&self) -> State {
        self.remote_state
    }
    pub fn config(&self) -> Timers {
        self.config
    }

    /// The negotiated transmit interval (before jitter).
    pub fn tx_interval(&self) -> Duration {
        self.eff_tx.max(self.remote_min_rx)
    }

    /// How long without a packet before the session goes down (0 before the peer's
    /// first packet).
    pub fn detection_time(&self) -> Duration {
        self.eff_rx.max(self.remote_desired_tx) * u32::from(self.remote_mult)
    }

    /// When [`Session::on_timer`] must next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A received packet, already decoded and matched to this session.
    pub fn on_packet(&mut self, now: Instant, p: &ControlPacket) -> Result<Vec<Output>, Discard> {
        if p.your_discr != 0 && p.your_discr != self.local_discr {
            return Err(Discard::WrongDiscriminator {
                got: p.your_discr,
                ours: self.local_discr,
            });
        }
        if p.your_discr == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return Err(Discard::ZeroYourDiscr(p.state));
        }
        if self.state == State::AdminDown {
            return Err(Discard::AdminDown);
        }
        let mut out = Vec::new();
        self.remote_discr = p.my_discr;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_min_rx = Duration::from_micros(u64::from(p.required_min_rx_us));
        self.remote_desired_tx = Duration::from_micros(u64::from(p.desired_min_tx_us));
        self.remote_mult = p.detect_mult;
        if p.final_ && self.polling {
            self.polling = false;
            self.eff_tx = self.adv_tx;
            self.eff_rx = self.adv_rx;
        }
        if self.remote_min_rx.is_zero() {
            self.next_tx = None;
        } else if self.next_tx.is_none() {
            self.next_tx = Some(now);
        } else if self.next_tx.is_some_and(|t| t > now + self.tx_interval()) {
            // The peer now wants packets sooner than the one armed (FRR leaves its
            // slow 1 s RequiredMinRx for the configured one by a Poll once Up): a
            // packet armed at the old interval would expire its detection time.
            self.schedule_tx(now);
        }
        match (self.state, p.state) {
            (State::Down | State::Init | State::Up, State::AdminDown)
                if self.state != State::Down =>
            {
                self.change(
                    State::Down,
                    Diag::NeighborSignaledSessionDown,
                    now,
                    &mut out,
                );
            }
            (_, State::AdminDown) => {}
            (State::Down, State::Down) => self.change(State::Init, Diag::None, now, &mut out),
            (State::Down, State::Init) => self.change(State::Up, Diag::None, now, &mut out),
            (State::Init, State::Init | State::Up) => {
                self.change(State::Up, Diag::None, now, &mut out)
            }
            (State::Up, State::Down) => {
                self.change(
                    State::Down,
                    Diag::NeighborSignaledSessionDown,
                    now,
                    &mut out,
                );
            }
            _ => {}
        }
        self.detect_at = match self.state {
            State::Init | State::Up => Some(now + self.detection_time()),
            _ => None,
        };
        if p.poll {
            // The Final answers at once, outside the periodic schedule (6.8.7).
            let mut f = self.packet();
            f.poll = false;
            f.final_ = true;
            out.push(Output::Send(f));
        }
        Ok(out)
    }

    /// Something this session asked for is due: a periodic packet, or the detection
    /// time has passed without a packet.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.detect_at.is_some_and(|t| t <= now) {
            self.detect_at = None;
            self.remote_discr = 0;
            self.remote_state = State::Down;
            self.remote_min_rx = Duration::from_micros(1);
            self.remote_mult = 0;
            self.change(
                State::Down,
                Diag::ControlDetectionTimeExpired,
                now,
                &mut out,
            );
        }
        if self.next_tx.is_some_and(|t| t <= now) {
            out.push(Output::Send(self.packet()));
            self.schedule_tx(now);
        }
        out
    }

    /// Takes the session administratively down (`true`) or back to Down (`false`).
    pub fn set_admin_down(&mut self, now: Instant, down: bool) -> Vec<Output> {
        let mut out = Vec::new();
        match (down, self.state) {
            (true, State::AdminDown) | (false, State::Down | State::Init | State::Up) => {}
            (true, _) => {
                self.detect_at = None;
                self.change(State::AdminDown, Diag::AdministrativelyDown, now, &mut out);
            }
            (false, State::AdminDown) => {
                self.change(State::Down, Diag::AdministrativelyDown, now, &mut out);
            }
        }
        out
    }

    /// New timers. While Up a Poll Sequence carries them (6.8.3).
    pub fn set_timers(&mut self, now: Instant, t: Timers) -> Vec<Output> {
        self.config = t;
        let tx = if self.state == State::Up {
            t.desired_min_tx
        } else {
            t.desired_min_tx.max(SLOW_TX)
        };
        self.advertise(tx, t.required_min_rx, now)
    }

    fn advertise(&mut self, tx: Duration, rx: Duration, now: Instant) -> Vec<Output> {
        if tx == self.adv_tx && rx == self.adv_rx {
            return Vec::new();
        }
        self.adv_tx = tx;
        self.adv_rx = rx;
        if self.state == State::Up {
            // A faster transmit and a slower receive are safe at once; the rest waits
            // for the peer's Final.
            self.eff_tx = self.eff_tx.min(tx);
            self.eff_rx = self.eff_rx.max(rx);
            self.polling = true;
            let p = self.packet();
            self.schedule_tx(now);
            vec![Output::Send(p)]
        } else {
            self.eff_tx = tx;
            self.eff_rx = rx;
            Vec::new()
        }
    }

    fn change(&mut self, to: State, diag: Diag, now: Instant, out: &mut Vec<Output>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        if to != State::Up {
            self.diag = diag;
        }
        out.push(Output::StateChanged {
            from,
            to,
            diag: if to == State::Up { Diag::None } else { diag },
        });
        // Fast once Up (through a poll), slow otherwise; tell the peer at once.
        let tx = if to == State::Up {
            self.config.desired_min_tx
        } else {
            self.config.desired_min_tx.max(SLOW_TX)
        };
        if to == State::Up {
            out.extend(self.advertise(tx, self.config.required_min_rx, now));
        } else {
            self.polling = false;
            self.adv_tx = tx;
            self.eff_tx = tx;
            self.adv_rx = self.config.required_min_rx;
            self.eff_rx = self.adv_rx;
        }
        if !out.iter().any(|o| matches!(o, Output::Send(_))) && !self.remote_min_rx.is_zero() {
            out.push(Output::Send(self.packet()));
            self.schedule_tx(now);
        }
    }

    fn packet(&self) -> ControlPacket {
        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        ControlPacket {
            diag: self.diag,
            state: self.state,
            poll: self.polling,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            desired_min_tx_us: us(self.adv_tx),
            required_min_rx_us: us(self.adv_rx),
            required_min_echo_rx_us: 0,
        }
    }

    /// The next periodic packet: the interval less 0-25% of jitter (10-25% with a
    /// multiplier of 1), RFC 5880 6.8.7.
    fn schedule_tx(&mut self, now: Instant) {
        if self.remote_min_rx.is_zero() {
            self.next_tx = None;
            return;
        }
        let high = if self.config.detect_mult == 1 {
            90
        } else {
            100
        };
        let pct = self.rng.random_range(75..=high);
        self.next_tx = Some(now + self.tx_interval() * pct / 100);
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
