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
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::ids::ServerId;

    const MS: Duration = Duration::from_millis(1);

    fn tcp(name: &str, addr: &str) -> CheckConfig {
        let addr: SocketAddr = addr.parse().unwrap();
        CheckConfig {
            interval: 200 * MS,
            timeout: 200 * MS,
            ..CheckConfig::tcp(ServerId::new(name), addr)
        }
    }

    /// What the simulated network does: echo replies (by address) and full checks.
    struct World {
        echo_ok: bool,
        full_ok: bool,
    }

    /// Runs `s` from `from` to `to` in 1 ms steps; full checks finish at once and
    /// echoes are answered 1 ms later when the world says so. Returns every action
    /// with the time it came out.
    fn run(s: &mut Schedule, w: &World, from: Duration, to: Duration) -> Vec<(Duration, Action)> {
        let mut log = Vec::new();
        let mut answers: Vec<(Duration, IpAddr, u16)> = Vec::new();
        let mut t = from;
        while t <= to {
            let mut acts = Vec::new();
            answers.retain(|&(at, addr, seq)| {
                if at <= t {
                    acts.extend(s.on_echo_reply(t, addr, seq, Ok(())));
                    false
                } else {
                    true
                }
            });
            acts.extend(s.on_timer(t));
            while let Some(a) = acts.pop() {
                match &a {
                    Action::Full { server } => {
                        let o = if w.full_ok {
                            ProbeOutcome::Success
                        } else {
                            ProbeOutcome::Failure(ProbeError::Timeout {
                                target: "x".into(),
                                timeout_ms: 200,
                            })
                        };
                        acts.extend(s.on_full_done(t, *server, o));
                    }
                    Action::Echo { addr, seq } if w.echo_ok => answers.push((t + MS, *addr, *seq)),
                    _ => {}
                }
                log.push((t, a));
            }
            t += MS;
        }
        log
    }

    fn fulls(log: &[(Duration, Action)], i: usize) -> Vec<Duration> {
        log.iter()
            .filter(|(_, a)| *a == Action::Full { server: i })
            .map(|(t, _)| *t)
            .collect()
    }

    fn reports(log: &[(Duration, Action)], src: ProbeSource) -> Vec<(Duration, usize, bool)> {
        log.iter()
            .filter_map(|(t, a)| match a {
                Action::Report {
                    server,
                    source,
                    outcome,
                } if *source == src => Some((*t, *server, *outcome == ProbeOutcome::Success)),
                _ => None,
            })
            .collect()
    }

    fn echoes(log: &[(Duration, Action)]) -> usize {
        log.iter()
            .filter(|(_, a)| matches!(a, Action::Echo { .. }))
            .count()
    }

    #[test]
    fn first_checks_are_spread_over_the_interval() {
        let cfgs = (0..4)
            .map(|i| tcp(&format!("rs{i}"), &format!("192.0.2.{}:80", i + 1)))
            .collect();
        let mut s = Schedule::new(cfgs, Duration::ZERO, 0);
        let w = World {
            echo_ok: true,
            full_ok: true,
        };
        let log = run(&mut s, &w, Duration::ZERO, 199 * MS);
        let firsts: Vec<Duration> = (0..4).map(|i| fulls(&log, i)[0]).collect();
        assert_eq!(firsts, vec![Duration::ZERO, 50 * MS, 100 * MS, 150 * MS]);
        assert_eq!(s.echo_targets(), 4);
    }

    #[test]
    fn an_answering_host_relaxes_the_full_check_and_a_failure_tightens_it() {
        let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
        let mut w = World {
            echo_ok: true,
            full_ok: true,
        };
        let log = run(&mut s, &w, Duration::ZERO, 5000 * MS);
        // Full checks at 0 and 200 (rise 2) and the echo round at 200 answered: armed
        // at 201 ms; the full check at 400 was due already, then one every 5 s.
        assert!(s.armed(0));
        assert_eq!(fulls(&log, 0), vec![Duration::ZERO, 200 * MS, 400 * MS]);
        // An echo round every 400 ms from 200, one request each (answered), none
        // reported.
        assert_eq!(echoes(&log), 13);
        assert!(reports(&log, ProbeSource::Echo).is_empty());
        assert_eq!(reports(&log, ProbeSource::Periodic).len(), 3);
        // The service stops accepting (host alive): the full check at 5400 fails, the
        // following ones come every interval again.
        w.full_ok = false;
        let log = run(&mut s, &w, 5001 * MS, 6000 * MS);
        assert!(!s.armed(0));
        assert_eq!(
            fulls(&log, 0),
            vec![5400 * MS, 5600 * MS, 5800 * MS, 6000 * MS]
        );
    }

    #[test]
    fn a_silent_host_is_reported_by_one_failed_round_and_checked_by_full_checks_again() {
        let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
        let mut w = World {
            echo_ok: true,
            full_ok: true,
        };
        // (Past 1001: `run` drops the replies still in flight when it returns.)
        run(&mut s, &w, Duration::ZERO, 1100 * MS);
        assert!(s.armed(0));
        w.echo_ok = false;
        w.full_ok = false;
        let log = run(&mut s, &w, 1101 * MS, 2000 * MS);
        // The round of 1400 sends at 1400, 1450, 1500, 1550, 1600, 1700, fails at 1800:
        // seen 800 ms after the host went silent (the worst case, 2 x 400 ms).
        assert_eq!(
            reports(&log, ProbeSource::Echo),
            vec![(1800 * MS, 0, false)]
        );
        assert!(!s.armed(0));
        // A full check an interval later instead of at 5400.
        assert_eq!(fulls(&log, 0), vec![2000 * MS]);
        // Six requests for the failed round, five so far for the next.
        assert_eq!(echoes(&log), 11);
    }

    #[test]
    fn a_silent_host_whose_full_check_fails_first_is_still_taken_down_by_its_round() {
        let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
        let mut w = World {
            echo_ok: true,
            full_ok: true,
        };
        run(&mut s, &w, Duration::ZERO, 5300 * MS);
        assert!(s.armed(0));
        // Silent from 5300: the full check of 5400 fails at once (a timeout, here),
        // before the round of 5400 concludes.
        w.echo_ok = false;
        w.full_ok = false;
        let log = run(&mut s, &w, 5301 * MS, 6000 * MS);
        let periodic = reports(&log, ProbeSource::Periodic);
        assert_eq!(periodic.first(), Some(&(5400 * MS, 0, false)));
        assert_eq!(
            reports(&log, ProbeSource::Echo),
            vec![(5800 * MS, 0, false)]
        );
        // Reported once: the next failed round is not (the server is down already).
        let log = run(&mut s, &w, 6001 * MS, 7000 * MS);
        assert!(reports(&log, ProbeSource::Echo).is_empty());
    }

    #[test]
    fn a_host_that_never_answers_echo_keeps_full_checks_every_interval() {
        let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
        let w = World {
            echo_ok: false,
            full_ok: true,
        };
        let log = run(&mut s, &w, Duration::ZERO, 2000 * MS);
        assert!(!s.armed(0));
        assert_eq!(fulls(&log, 0).len(), 11);
        assert!(reports(&log, ProbeSource::Echo).is_empty());
    }

    #[test]
    fn a_lost_request_is_retried_within_the_round() {
        let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
        let w = World {
            echo_ok: true,
            full_ok: true,
        };
        run(&mut s, &w, Duration::ZERO, 1100 * MS);
        // The round of 1400: its first request is lost, the retry at 1450 answered.
        let mut acts = s.on_timer(1400 * MS);
        assert!(matches!(acts.pop(), Some(Action::Echo { .. })), "{acts:?}");
        let acts = s.on_timer(1450 * MS);
        let Some(Action::Echo { addr, seq }) = acts.last().cloned() else {
            panic!("{acts:?}");
        };
        assert!(s.on_echo_reply(1451 * MS, addr, seq, Ok(())).is_empty());
        assert!(s.armed(0));
        // Nothing more in that round, nothing reported at its deadline.
        assert!(s.on_timer(1799 * MS).is_empty());
        assert!(
            s.on_timer(1800 * MS)
                .iter()
                .all(|a| matches!(a, Action::Echo { .. }))
        );
    }

    #[test]
    fn servers_on_one_address_share_an_echo_and_icmp_checks_report_each_echo() {
        let mut icmp = tcp("ping", "192.0.2.1:0");
        icmp.kind = CheckKind::Icmp;
        icmp.fast_detect = false;
        let cfgs = vec![tcp("a", "192.0.2.1:80"), tcp("b", "192.0.2.1:443"), icmp];
        let mut s = Schedule::new(cfgs, Duration::ZERO, 0);
        // One liveness round for a and b, the icmp check's own echo.
        assert_eq!(s.echo_targets(), 2);
        let w = World {
            echo_ok: true,
            full_ok: true,
        };
        let log = run(&mut s, &w, Duration::ZERO, 1001 * MS);
        assert!(s.armed(0) && s.armed(1));
        assert!(fulls(&log, 2).is_empty());
        let r = reports(&log, ProbeSource::Periodic);
        assert_eq!(r.iter().filter(|x| x.1 == 2).count(), 5);
        assert_eq!(echoes(&log), 8);
    }

    #[test]
    fn an_answered_round_leaves_no_wake_behind() {
        let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
        let w = World {
            echo_ok: true,
            full_ok: true,
        };
        run(&mut s, &w, Duration::ZERO, 1100 * MS);
        let acts = s.on_timer(1400 * MS);
        let Some(Action::Echo { addr, seq }) = acts.last().cloned() else {
            panic!("{acts:?}");
        };
        assert_eq!(s.next_wake(), Some(1450 * MS), "the first retry");
        assert!(s.on_echo_reply(1401 * MS, addr, seq, Ok(())).is_empty());
        // Neither the retry nor the deadline: the next round.
        assert_eq!(s.next_wake(), Some(1800 * MS));
    }

    #[test]
    fn a_late_checker_sends_the_whole_ladder_before_a_round_fails() {
        let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
        let w = World {
            echo_ok: true,
            full_ok: true,
        };
        run(&mut s, &w, Duration::ZERO, 1100 * MS);
        assert!(s.armed(0));
        // The round of 1400 sends its first request; then this task gets no CPU
        // until 1900, past the round's deadline (1800) and its retries.
        assert!(matches!(
            s.on_timer(1400 * MS).last(),
            Some(Action::Echo { .. })
        ));
        let acts = s.on_timer(1900 * MS);
        assert!(
            !acts.iter().any(|a| matches!(a, Action::Report { .. })),
            "{acts:?}"
        );
        let Some(Action::Echo { addr, seq }) = acts
            .iter()
            .find(|a| matches!(a, Action::Echo { .. }))
            .cloned()
        else {
            panic!("no request sent late: {acts:?}");
        };
        // The late request is answered: the server stays up and armed.
        assert!(s.on_echo_reply(1901 * MS, addr, seq, Ok(())).is_empty());
        assert!(s.armed(0));
        // A silent host with a late checker: still six requests before it fails.
        let mut sent = 0;
        let mut failed = None;
        let mut t = 2000;
        while failed.is_none() && t < 6000 {
            for a in s.on_timer(t * MS) {
                match a {
                    Action::Echo { .. } => sent += 1,
                    Action::Report {
                        source: ProbeSource::Echo,
                        outcome,
                        ..
                    } => failed = Some(outcome),
                    _ => {}
                }
            }
            t += 500; // every wake half a second late
        }
        assert!(failed.is_some(), "never failed");
        assert!(sent >= 6, "failed after {sent} requests");
    }

    #[test]
    fn stray_and_forged_replies_change_nothing() {
        let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 7);
        let acts = s.on_timer(200 * MS);
        let Some(Action::Echo { seq, .. }) = acts.last().cloned() else {
            panic!("{acts:?}");
        };
        let t = 201 * MS;
        // Unknown sequence number; the right one from another address.
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(
            s.on_echo_reply(t, a, seq.wrapping_add(9), Ok(()))
                .is_empty()
        );
        assert!(s.on_echo_reply(t, b, seq, Ok(())).is_empty());
        assert_eq!(s.outstanding.len(), 1);
        // Still pending: the real reply is taken.
        assert!(s.on_echo_reply(t, a, seq, Ok(())).is_empty());
        assert!(s.outstanding.is_empty());
    }

    #[test]
    fn timeout_equal_to_interval_leaves_nothing_outstanding() {
        let mut s = Schedule::new(vec![tcp("rs", "192.0.2.1:80")], Duration::ZERO, 0);
        let w = World {
            echo_ok: false,
            full_ok: true,
        };
        run(&mut s, &w, Duration::ZERO, 10_000 * MS);
        // At most the five requests of the round in progress.
        assert!(s.outstanding.len() <= 5, "{}", s.outstanding.len());
    }
}
