//! The per-server checker: a periodic probe loop plus, when configured, the idle
//! connection watcher. Both send [`HealthEvent`]s on one bounded channel to the task
//! that owns the health state. Dropping the handle stops both.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::health::probe::probe;
use crate::health::watch::watch_idle;
use crate::health::{CheckConfig, HealthEvent, ProbeSource};
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
    let mut tasks = Vec::new();
    if cfg.fast_detect {
        tasks.push(tokio::spawn(watch_idle(
            cfg.server.clone(),
            cfg.addr,
            cfg.timeout,
            cfg.interval,
            tx.clone(),
        )));
    }
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let outcome = probe(&cfg, &http).await;
            tracing::trace!(server = %cfg.server, ?outcome, "periodic check");
            let ev = HealthEvent {
                server: cfg.server.clone(),
                at: Time::now(),
                source: ProbeSource::Periodic,
                outcome,
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    }));
    CheckerHandle { tasks }
}
