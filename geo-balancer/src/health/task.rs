//! The checker: one task drives the [`Schedule`] of every real server of a site (one
//! timer, one ICMP socket per family read when the timer fires, the full checks as
//! short-lived tasks), plus one idle task per fast-detect connection
//! ([`watch_idle`]), which sends its hard failure to the owner itself and then tells
//! the schedule. It sends [`HealthEvent`]s on one bounded channel to the task that
//! owns the health state. Dropping the handle stops them all.

use std::collections::HashMap;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::health::pinger::{Pinger, Received};
use crate::health::probe::probe;
use crate::health::sched::{Action, Schedule};
use crate::health::watch::watch_idle;
use crate::health::{CheckConfig, HealthEvent, ProbeOutcome};
use crate::ids::ServerId;
use crate::time::Time;

/// Stops the checker's tasks when dropped.
#[derive(Debug)]
pub struct CheckerHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for CheckerHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts checking one real server. Must be called inside a tokio runtime.
pub fn spawn_checker(
    cfg: CheckConfig,
    http: reqwest::Client,
    tx: mpsc::Sender<HealthEvent>,
) -> CheckerHandle {
    spawn_checkers(vec![cfg], http, tx)
}

/// Starts checking every server of `cfgs`. Must be called inside a tokio runtime.
pub fn spawn_checkers(
    cfgs: Vec<CheckConfig>,
    http: reqwest::Client,
    tx: mpsc::Sender<HealthEvent>,
) -> CheckerHandle {
    let (hard_tx, hard_rx) = mpsc::channel(64);
    let mut tasks = Vec::new();
    for c in cfgs.iter().filter(|c| c.fast_detect) {
        tasks.push(tokio::spawn(watch_idle(
            c.server.clone(),
            c.addr,
            c.timeout,
            c.interval,
            tx.clone(),
            Some(hard_tx.clone()),
        )));
    }
    drop(hard_tx);
    tasks.push(tokio::spawn(drive(cfgs, http, tx, hard_rx)));
    CheckerHandle { tasks }
}

/// The schedule's driver: runs until the owner's receiver is dropped.
async fn drive(
    cfgs: Vec<CheckConfig>,
    http: reqwest::Client,
    tx: mpsc::Sender<HealthEvent>,
    mut hard_rx: mpsc::Receiver<HealthEvent>,
) {
    let index: HashMap<ServerId, usize> = cfgs
        .iter()
        .enumerate()
        .map(|(i, c)| (c.server.clone(), i))
        .collect();
    let start = Instant::now();
    let mut sched = Schedule::new(cfgs, start.elapsed(), rand::random());
    let mut pinger = Pinger::new(rand::random());
    let mut fulls: JoinSet<(usize, ProbeOutcome)> = JoinSet::new();
    let mut got = Vec::new();
    let (mut echoes, mut failed) = (Vec::new(), Vec::new());
    loop {
        let wake = sched.next_wake().map_or_else(
            || start + std::time::Duration::from_secs(3600),
            |t| start + t,
        );
        let actions = tokio::select! {
            biased;
            // The watcher told the owner itself (the withdraw waits for nobody); the
            // schedule only goes back to short full checks.
            Some(ev) = hard_rx.recv() => {
                if let Some(&i) = index.get(&ev.server) {
                    sched.on_hard_failure(start.elapsed(), i);
                }
                Vec::new()
            }
            Some(done) = fulls.join_next() => match done {
                Ok((i, outcome)) => sched.on_full_done(start.elapsed(), i, outcome),
                Err(e) => {
                    tracing::error!(error = %e, "health check task failed");
                    Vec::new()
                }
            },
            // Replies are read here, not when they arrive: every request still
            // unanswered has a timer (its next retry, its round's deadline), so a
            // reply is seen before anything depends on it, and costs no wake of its
            // own (at scale the driver wakes every quantum anyway). Replies that came
            // while this task waited for a CPU count too: read before any deadline
            // is judged.
            () = tokio::time::sleep_until(wake) => {
                let mut a = received(start.elapsed(), &mut sched, &mut pinger, &mut got);
                a.extend(sched.on_timer(start.elapsed()));
                a
            }
        };
        // Echo requests due together leave together, after the rest.
        echoes.clear();
        for a in actions {
            if !act(a, &sched, &mut echoes, &mut fulls, &http, &tx).await {
                return;
            }
        }
        failed.clear();
        pinger.send_many(&echoes, &mut failed);
        for (addr, seq, e) in failed.drain(..) {
            if !unsent(addr, seq, e, start.elapsed(), &mut sched, &tx).await {
                return;
            }
        }
    }
}

/// Feeds whatever the pinger has received to the schedule.
fn received(
    now: std::time::Duration,
    sched: &mut Schedule,
    pinger: &mut Pinger,
    got: &mut Vec<Received>,
) -> Vec<Action> {
    got.clear();
    pinger.drain(got);
    let mut out = Vec::new();
    for (from, seq, r) in got.drain(..) {
        out.extend(sched.on_echo_reply(now, from, seq, r));
    }
    out
}

/// Carries out one action (an echo request joins the wake's batch, `echoes`); false
/// when the owner is gone.
async fn act(
    a: Action,
    sched: &Schedule,
    echoes: &mut Vec<(std::net::IpAddr, u16)>,
    fulls: &mut JoinSet<(usize, ProbeOutcome)>,
    http: &reqwest::Client,
    tx: &mpsc::Sender<HealthEvent>,
) -> bool {
    match a {
        Action::Full { server } => {
            if let Some(cfg) = sched.config(server).cloned() {
                let http = http.clone();
                fulls.spawn(async move { (server, probe(&cfg, &http).await) });
            }
        }
        Action::Echo { addr, seq } => echoes.push((addr, seq)),
        Action::Report { .. } => return report(a, sched, tx).await,
    }
    true
}

/// An echo request that did not leave fails its round's request at once.
async fn unsent(
    addr: std::net::IpAddr,
    seq: u16,
    e: std::io::Error,
    now: std::time::Duration,
    sched: &mut Schedule,
    tx: &mpsc::Sender<HealthEvent>,
) -> bool {
    tracing::debug!(%addr, error = %e, "echo not sent");
    for f in sched.on_echo_send_error(now, seq, format!("send: {e}")) {
        if let Action::Report { .. } = f
            && !report(f, sched, tx).await
        {
            return false;
        }
    }
    true
}

async fn report(a: Action, sched: &Schedule, tx: &mpsc::Sender<HealthEvent>) -> bool {
    let Action::Report {
        server,
        source,
        outcome,
    } = a
    else {
        return true;
    };
    let Some(cfg) = sched.config(server) else {
        return true;
    };
    tracing::trace!(server = %cfg.server, ?source, ?outcome, "check");
    let ev = HealthEvent {
        server: cfg.server.clone(),
        at: Time::now(),
        source,
        outcome,
    };
    tx.send(ev).await.is_ok()
}
