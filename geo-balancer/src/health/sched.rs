//! When each real server of a site is probed, and how: the sans-IO core of the
//! checker (decision 0008). One [`Schedule`] covers every server; the driver
//! ([`crate::health::task`]) owns the sockets and arms one timer, [`Schedule::next_wake`].
//!
//! A server with a held fast-detect connection needs no new connection every
//! `interval` to prove it alive: the held connection shows a killed process at once,
//! and a dead host or path is seen by ICMP echo rounds (answered by the server's
//! kernel). The full check (TCP connect, HTTP GET) then runs only every
//! `full_interval`: it proves the service still accepts.
//!
//! An echo round starts every `W = interval x (fall + 1) / 2` (400 ms at the
//! defaults) and sends one request; only when no reply has come does it send more, at
//! W/8, W/4, 3W/8, W/2 and 3W/4, and it fails when none of the six is answered within
//! W. A silent failure is seen within 2W (800 ms, the old `fall` periodic checks' worst
//! case), a steady host costs 2.5 requests a second, and a false failure at 1% loss
//! each way takes six losses in a row (about 6e-11 a round).
//!
//! ```text
//!   full check every interval ──(rise full successes, and an echo answered)──> armed:
//!     echo rounds, full check every full_interval; a failed round reported
//!   armed ──(a full check fails, a hard failure, a failed echo round)──> unarmed
//! ```
//! Echo failures are reported from arming until one is: a server whose host never
//! answered echo (filtered ICMP) is checked the old way, a full check every
//! `interval`; one whose full check failed is still taken down by its failed round
//! (a silent host's full check often times out first). Answered
//! rounds are not reported at all, so a steady site sends the owner its full-check
//! results only, not thousands of echoes.
//!
//! An `icmp` check's echo (every interval, within its timeout) is hedged like the TCP
//! connect (a second request after half the timeout). Servers sharing an address
//! share the echo. Start times are spread
//! over the interval and rounded to [`QUANTUM`], so the driver wakes in batches.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use crate::errors::ProbeError;
use crate::health::{CheckConfig, CheckKind, ProbeOutcome, ProbeSource};

/// Timers are rounded up to a multiple of the quantum, so that the checks due within
/// it run in one wake: a twentieth of the shortest interval, at most this.
pub const QUANTUM: Duration = Duration::from_millis(10);

/// What the driver does for the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run server `server`'s full check (by its [`CheckKind`]); report the outcome
    /// to [`Schedule::on_full_done`].
    Full {
        /// Index into the configs given to [`Schedule::new`].
        server: usize,
    },
    /// Send an echo request to `addr` with sequence number `seq`; replies go to
    /// [`Schedule::on_echo_reply`].
    Echo {
        /// Destination.
        addr: IpAddr,
        /// Sequence number (the demultiplexing key).
        seq: u16,
    },
    /// Tell the owner of the health state.
    Report {
        /// Index of the server.
        server: usize,
        /// Which probe.
        source: ProbeSource,
        /// Its outcome.
        outcome: ProbeOutcome,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    // At equal times a deadline runs first: it concludes the request an echo due at
    // the same time (timeout = interval) would replace.
    Deadline(usize),
    Retry(usize),
    Full(usize),
    Echo(usize),
}

/// One server's probing state.
#[derive(Debug)]
struct Plan {
    cfg: CheckConfig,
    /// Full checks every `full_interval` (rise full successes and an echo answered).
    armed: bool,
    /// A failed echo round is reported: set with `armed`, cleared only by a report.
    /// A failing full check disarms but leaves this, so that a silent host whose full
    /// check times out first is still taken down by its round, not fall intervals
    /// later.
    watched: bool,
    full_ok: u32,
    next_full: Duration,
    full_running: bool,
}

impl Plan {
    fn period(&self) -> Duration {
        if self.armed {
            self.cfg.full_interval.max(self.cfg.interval)
        } else {
            self.cfg.interval
        }
    }
    fn disarm(&mut self) {
        self.armed = false;
    }
}

/// Retries of a liveness round, in eighths of its window.
const LIVENESS_LADDER: &[u32] = &[1, 2, 3, 4, 6];
/// The hedge of an `icmp` check's echo, in eighths of its timeout.
const HEDGE_LADDER: &[u32] = &[4];

#[derive(Debug, Clone)]
struct Pending {
    seqs: Vec<u16>,
    deadline: Duration,
    /// The retry timer armed, so that an answer can take it (and the deadline) out
    /// of the wheel: an answered round costs no further wake.
    retry_at: Option<Duration>,
}

/// One address echoed for one or more servers: a round every `period`, failed when
/// nothing answered within `window`.
#[derive(Debug)]
struct EchoTarget {
    addr: IpAddr,
    period: Duration,
    window: Duration,
    ladder: &'static [u32],
    servers: Vec<usize>,
    next: Duration,
    pending: Option<Pending>,
}

/// The round of a liveness echo: period and window `interval x (fall + 1) / 2`.
pub fn liveness_window(cfg: &CheckConfig) -> Duration {
    cfg.interval * cfg.fall.saturating_add(1) / 2
}

/// The timers: one list per quantum slot (times are multiples of the quantum), and
/// the slots in order. Adding a timer is a push onto its slot's list; only the first
/// timer of a slot touches the ordered set, so a thousand servers' timers cost a few
/// hundred ordered operations a second, not one per timer.
#[derive(Debug, Default)]
struct Wheel {
    slots: HashMap<u64, Vec<Timer>>,
    order: BinaryHeap<Reverse<u64>>,
    q: u64,
    spare: Vec<Vec<Timer>>,
}

impl Wheel {
    fn new(q: u64) -> Wheel {
        Wheel {
            q: q.max(1),
            ..Wheel::default()
        }
    }

    fn slot(&self, t: Duration) -> u64 {
        u64::try_from(t.as_micros()).unwrap_or(u64::MAX) / self.q
    }

    fn push(&mut self, t: Duration, timer: Timer) {
        let slot = self.slot(t);
        let spare = &mut self.spare;
        let v = self.slots.entry(slot).or_insert_with(|| {
            self.order.push(Reverse(slot));
            spare.pop().unwrap_or_default()
        });
        v.push(timer);
    }

    /// Takes `timer` due at `t` out, if it is there.
    fn remove(&mut self, t: Duration, timer: Timer) {
        let slot = self.slot(t);
        let Some(v) = self.slots.get_mut(&slot) else {
            return;
        };
        if let Some(i) = v.iter().position(|x| *x == timer) {
            v.swap_remove(i);
        }
        if v.is_empty()
            && let Some(v) = self.slots.remove(&slot)
        {
            // Its number stays in `order` until `next` or `pop_due` passes it.
            self.recycle(v);
        }
    }

    fn next(&mut self) -> Option<Duration> {
        while let Some(&Reverse(s)) = self.order.peek() {
            if self.slots.contains_key(&s) {
                return Some(Duration::from_micros(s.saturating_mul(self.q)));
            }
            self.order.pop();
        }
        None
    }

    /// The timers of the earliest slot due at `now`, in [`Timer`] order, with its time.
    fn pop_due(&mut self, now: Duration) -> Option<(Duration, Vec<Timer>)> {
        loop {
            let &Reverse(slot) = self.order.peek()?;
            if slot > self.slot(now) {
                return None;
            }
            self.order.pop();
            // Emptied by `remove`: nothing due there.
            if let Some(mut v) = self.slots.remove(&slot) {
                v.sort_unstable();
                return Some((Duration::from_micros(slot.saturating_mul(self.q)), v));
            }
        }
    }

    fn recycle(&mut self, mut v: Vec<Timer>) {
        v.clear();
        if self.spare.len() < 64 {
            self.spare.push(v);
        }
    }
}

/// The schedule of every server's probes.
#[derive(Debug)]
pub struct Schedule {
    plans: Vec<Plan>,
    targets: Vec<EchoTarget>,
    timers: Wheel,
    outstanding: HashMap<u16, usize>,
    seq: u16,
    quantum: u64,
}

/// `t` rounded up to a multiple of `q` microseconds.
fn round_up_to(q: u64, t: Duration) -> Duration {
    let us = u64::try_from(t.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(us.div_ceil(q.max(1)).saturating_mul(q.max(1)))
}

/// `interval * i / n`: the i-th of n start offsets spread evenly over `interval`.
fn spread(interval: Duration, i: usize, n: usize) -> Duration {
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let i = u32::try_from(i).unwrap_or(0);
    interval / n * i
}

impl Schedule {
    /// A schedule for `cfgs` starting at `now` (the driver's monotonic clock), with
    /// `seq0` as the first echo sequence number. Every full check starts within its
    /// first interval, spread evenly; so do the echoes.
    pub fn new(cfgs: Vec<CheckConfig>, now: Duration, seq0: u16) -> Schedule {
        let shortest = cfgs.iter().map(|c| c.interval).min().unwrap_or(QUANTUM);
        let quantum = (shortest / 20).clamp(Duration::from_millis(1), QUANTUM);
        let mut s = Schedule {
            plans: Vec::with_capacity(cfgs.len()),
            targets: Vec::new(),
            timers: Wheel::new(u64::try_from(quantum.as_micros()).unwrap_or(u64::MAX)),
            outstanding: HashMap::new(),
            seq: seq0,
            quantum: u64::try_from(quantum.as_micros()).unwrap_or(u64::MAX),
        };
        let q = s.quantum;
        let mut by_key: HashMap<(IpAddr, Duration, Duration, bool), usize> = HashMap::new();
        let n = cfgs.len();
        for (i, cfg) in cfgs.into_iter().enumerate() {
            let echoed = match cfg.kind {
                CheckKind::Icmp => true,
                CheckKind::Tcp | CheckKind::Http { .. } => cfg.fast_detect && cfg.echo,
                CheckKind::Command { .. } => false,
            };
            if echoed {
                let icmp = cfg.kind == CheckKind::Icmp;
                let (period, window) = if icmp {
                    (cfg.interval, cfg.timeout)
                } else {
                    (liveness_window(&cfg), liveness_window(&cfg))
                };
                let key = (cfg.addr.ip(), period, window, icmp);
                let t = *by_key.entry(key).or_insert_with(|| {
                    s.targets.push(EchoTarget {
                        addr: key.0,
                        period,
                        window,
                        ladder: if icmp { HEDGE_LADDER } else { LIVENESS_LADDER },
                        servers: Vec::new(),
                        next: Duration::ZERO,
                        pending: None,
                    });
                    s.targets.len() - 1
                });
                s.targets[t].servers.push(i);
            }
            let icmp_only = cfg.kind == CheckKind::Icmp;
            let next_full = round_up_to(q, now + spread(cfg.interval, i, n));
            s.plans.push(Plan {
                cfg,
                armed: false,
                watched: false,
                full_ok: 0,
                next_full,
                full_running: false,
            });
            if !icmp_only {
                s.timers.push(next_full, Timer::Full(i));
            }
        }
        let m = s.targets.len();
        for (t, target) in s.targets.iter_mut().enumerate() {
            // Echoes sit half a slot after the full checks, so the two don't coincide.
            target.next = round_up_to(q, now + spread(target.period, t, m) + target.period / 2);
            s.timers.push(target.next, Timer::Echo(t));
        }
        s
    }

    /// When the driver must call [`Schedule::on_timer`] next.
    pub fn next_wake(&mut self) -> Option<Duration> {
        self.timers.next()
    }

    /// Whether server `i`'s echo liveness is armed (its full check relaxed).
    pub fn armed(&self, i: usize) -> bool {
        self.plans.get(i).is_some_and(|p| p.armed)
    }

    /// The number of echo targets (addresses echoed).
    pub fn echo_targets(&self) -> usize {
        self.targets.len()
    }

    /// The configuration of server `i`.
    pub fn config(&self, i: usize) -> Option<&CheckConfig> {
        self.plans.get(i).map(|p| &p.cfg)
    }

    /// Runs every timer due at `now`.
    pub fn on_timer(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some((t, due)) = self.timers.pop_due(now) {
            for &timer in &due {
                match timer {
                    Timer::Full(i) => self.full_due(i, t, now, &mut out),
                    Timer::Echo(e) => self.echo_due(e, t, now, &mut out),
                    Timer::Retry(e) => self.retry_due(e, now, &mut out),
                    Timer::Deadline(e) => self.deadline_due(e, t, now, &mut out),
                }
            }
            self.timers.recycle(due);
        }
        out
    }

    fn full_due(&mut self, i: usize, t: Duration, now: Duration, out: &mut Vec<Action>) {
        let q = self.quantum;
        let Some(p) = self.plans.get_mut(i) else {
            return;
        };
        if t != p.next_full {
            return; // superseded by an earlier one
        }
        let period = p.period();
        // The next one a period after this one was due; a late wake does not pile up.
        p.next_full = round_up_to(
            q,
            if t + period > now {
                t + period
            } else {
                now + period
            },
        );
        self.timers.push(p.next_full, Timer::Full(i));
        if !p.full_running {
            p.full_running = true;
            out.push(Action::Full { server: i });
        }
    }

    fn echo_due(&mut self, e: usize, t: Duration, now: Duration, out: &mut Vec<Action>) {
        let q = self.quantum;
        if self.targets.get(e).is_none_or(|x| x.next != t) {
            return;
        }
        if let Some(d) = self.targets[e].pending.as_ref().map(|p| p.deadline)
            && d <= now
        {
            self.deadline_due(e, d, now, out);
        }
        if self.targets[e].pending.is_some() {
            // A round this task was late for is still running (see `deadline_due`):
            // this one starts a period later.
            let target = &mut self.targets[e];
            target.next = round_up_to(q, now + target.period);
            let next = target.next;
            self.timers.push(next, Timer::Echo(e));
            return;
        }
        let seq = self.next_seq(e);
        let Some(target) = self.targets.get_mut(e) else {
            return;
        };
        let period = target.period;
        target.next = round_up_to(
            q,
            if t + period > now {
                t + period
            } else {
                now + period
            },
        );
        let deadline = round_up_to(q, now + target.window);
        // A round still pending (window = period) was concluded above: its deadline
        // sorts first at equal times anyway.
        target.pending = Some(Pending {
            seqs: vec![seq],
            deadline,
            retry_at: None,
        });
        let addr = target.addr;
        let next = target.next;
        // The first retry only; each arms the next while the round is unanswered.
        // Retries of earlier rounds all came before this round's start (window <=
        // period), so a retry timer always belongs to the pending round.
        let first = target
            .ladder
            .first()
            .map(|&k| round_up_to(q, now + target.window * k / 8))
            .filter(|at| *at < deadline);
        if let Some(p) = target.pending.as_mut() {
            p.retry_at = first;
        }
        self.timers.push(next, Timer::Echo(e));
        self.timers.push(deadline, Timer::Deadline(e));
        if let Some(at) = first {
            self.timers.push(at, Timer::Retry(e));
        }
        out.push(Action::Echo { addr, seq });
    }

    fn retry_due(&mut self, e: usize, now: Duration, out: &mut Vec<Action>) {
        let still = self
            .targets
            .get(e)
            .and_then(|t| t.pending.as_ref())
            .is_some_and(|p| p.deadline > now);
        if !still {
            return;
        }
        let q = self.quantum;
        let seq = self.next_seq(e);
        let Some(target) = self.targets.get_mut(e) else {
            return;
        };
        let Some(p) = target.pending.as_mut() else {
            return;
        };
        p.seqs.push(seq);
        // The round began at deadline - window; the next rung of the ladder.
        let began = p.deadline.saturating_sub(target.window);
        let next = target
            .ladder
            .get(p.seqs.len() - 1)
            .map(|&k| round_up_to(q, began + target.window * k / 8))
            .filter(|at| *at < p.deadline && *at > now);
        p.retry_at = next;
        if let Some(at) = next {
            self.timers.push(at, Timer::Retry(e));
        }
        out.push(Action::Echo {
            addr: target.addr,
            seq,
        });
    }

    fn deadline_due(&mut self, e: usize, t: Duration, now: Duration, out: &mut Vec<Action>) {
        let q = self.quantum;
        let Some(target) = self.targets.get(e) else {
            return;
        };
        let Some(sent) = target
            .pending
            .as_ref()
            .filter(|p| p.deadline == t)
            .map(|p| p.seqs.len())
        else {
            return; // answered, or another round's
        };
        if sent < 1 + target.ladder.len() {
            // This task got the CPU too late to send the whole ladder (a starved
            // director, not a silent host): send the next request now and give it a
            // quarter window. A round fails only after all its requests had their
            // time, so the checker's own lateness never fails a server.
            let (addr, extra) = (target.addr, round_up_to(q, now + target.window / 4));
            let seq = self.next_seq(e);
            if let Some(p) = self.targets[e].pending.as_mut() {
                p.seqs.push(seq);
                p.deadline = extra;
            }
            self.timers.push(extra, Timer::Deadline(e));
            out.push(Action::Echo { addr, seq });
            return;
        }
        let Some(target) = self.targets.get_mut(e) else {
            return;
        };
        let Some(p) = target.pending.take() else {
            return;
        };
        for s in &p.seqs {
            self.outstanding.remove(s);
        }
        let err = ProbeError::Timeout {
            target: format!("{} echo requests to {}", p.seqs.len(), target.addr),
            timeout_ms: u64::try_from(target.window.as_millis()).unwrap_or(u64::MAX),
        };
        self.echo_result(t, e, Err(err), out);
    }

    fn next_seq(&mut self, e: usize) -> u16 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.outstanding.insert(s, e);
        s
    }

    /// An echo reply (`Ok`) or an ICMP error quoting our request (`Err(reason)`) from
    /// `from` for sequence `seq`. Anything not outstanding is ignored (a late reply, a
    /// forged one, another program's).
    pub fn on_echo_reply(
        &mut self,
        now: Duration,
        from: IpAddr,
        seq: u16,
        result: Result<(), String>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(&e) = self.outstanding.get(&seq) else {
            return out;
        };
        let Some(target) = self.targets.get_mut(e) else {
            return out;
        };
        // An error comes from a router on the path, a reply only from the target.
        if result.is_ok() && from != target.addr {
            return out;
        }
        let Some(p) = target.pending.take() else {
            return out;
        };
        self.timers.remove(p.deadline, Timer::Deadline(e));
        if let Some(at) = p.retry_at {
            self.timers.remove(at, Timer::Retry(e));
        }
        for s in &p.seqs {
            self.outstanding.remove(s);
        }
        let addr = target.addr;
        let result = result.map_err(|reason| ProbeError::Icmp { addr, reason });
        self.echo_result(now, e, result, &mut out);
        out
    }

    /// Sending the echo failed (no route, no socket): a failed echo.
    pub fn on_echo_send_error(&mut self, now: Duration, seq: u16, reason: String) -> Vec<Action> {
        let Some(&e) = self.outstanding.get(&seq) else {
            return Vec::new();
        };
        let Some(addr) = self.targets.get(e).map(|t| t.addr) else {
            return Vec::new();
        };
        self.on_echo_reply(now, addr, seq, Err(reason))
    }

    fn echo_result(
        &mut self,
        now: Duration,
        e: usize,
        result: Result<(), ProbeError>,
        out: &mut Vec<Action>,
    ) {
        let Some(target) = self.targets.get(e) else {
            return;
        };
        for &i in &target.servers {
            let Some(p) = self.plans.get_mut(i) else {
                continue;
            };
            if p.cfg.kind == CheckKind::Icmp {
                // The echo is this server's check.
                let outcome = match &result {
                    Ok(()) => ProbeOutcome::Success,
                    Err(err) => ProbeOutcome::Failure(err.clone()),
                };
                out.push(Action::Report {
                    server: i,
                    source: ProbeSource::Periodic,
                    outcome,
                });
                continue;
            }
            match &result {
                Ok(()) => {
                    if !p.armed && p.full_ok >= p.cfg.rise {
                        p.armed = true;
                        p.watched = true;
                    }
                }
                Err(err) if p.watched => {
                    // A whole round unanswered: the owner takes the server down, and
                    // recovery needs full checks again.
                    out.push(Action::Report {
                        server: i,
                        source: ProbeSource::Echo,
                        outcome: ProbeOutcome::Failure(err.clone()),
                    });
                    p.disarm();
                    p.watched = false;
                    p.full_ok = 0;
                    Self::hurry(self.quantum, &mut self.timers, p, i, now);
                }
                Err(_) => {}
            }
        }
    }

    /// Brings server `i`'s next full check forward to `now + its interval`.
    fn hurry(q: u64, timers: &mut Wheel, p: &mut Plan, i: usize, now: Duration) {
        let sooner = round_up_to(q, now + p.cfg.interval);
        if !p.armed && sooner < p.next_full && p.cfg.kind != CheckKind::Icmp {
            timers.remove(p.next_full, Timer::Full(i));
            p.next_full = sooner;
            timers.push(sooner, Timer::Full(i));
        }
    }

    /// Server `i`'s full check finished at `now` with `outcome`.
    pub fn on_full_done(&mut self, now: Duration, i: usize, outcome: ProbeOutcome) -> Vec<Action> {
        let Some(p) = self.plans.get_mut(i) else {
            return Vec::new();
        };
        p.full_running = false;
        if outcome == ProbeOutcome::Success {
            p.full_ok = p.full_ok.saturating_add(1);
        } else {
            // Confirm (or clear) a failing full check at the short interval.
            p.full_ok = 0;
            p.disarm();
            Self::hurry(self.quantum, &mut self.timers, p, i, now);
        }
        vec![Action::Report {
            server: i,
            source: ProbeSource::Periodic,
            outcome,
        }]
    }

    /// The fast-detect watcher of server `i` saw its process gone (and told the
    /// owner itself): back to full checks every interval.
    pub fn on_hard_failure(&mut self, now: Duration, i: usize) {
        let Some(p) = self.plans.get_mut(i) else {
            return;
        };
        p.full_ok = 0;
        p.disarm();
        Self::hurry(self.quantum, &mut self.timers, p, i, now);
    }
}

#[cfg(test)]
mod tests;
