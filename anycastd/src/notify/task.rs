//! The notifier's thin driver: feeds the [`Outbox`] events and results, sleeps until
//! the deadline it asks for, and carries out its deliveries (a POST, or the command).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use geo_balancer::Time;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Event;
use super::outbox::{Delivery, Notice, Outbox, Policy, SinkStats};
use crate::config::notify::{Command, Notify};

/// Where notices go.
#[derive(Debug, Clone)]
enum Sink {
    Webhook(String),
    Command(Command),
}

impl Sink {
    /// The `sink` label: the URL may hold a secret, so webhooks are numbered.
    fn label(&self, n: usize) -> String {
        match self {
            Sink::Webhook(_) => format!("webhook{n}"),
            Sink::Command(_) => "command".to_string(),
        }
    }
}

/// Why one delivery failed.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("POST {url}: {source}")]
    Post {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("POST {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("command {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("command {program}: still running after {timeout:?}; killed")]
    Timeout { program: String, timeout: Duration },
    #[error("command {program}: exited with {status}")]
    Exit { program: String, status: String },
    #[error("cannot encode the notice: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Counts for metrics, per sink (`sink` label, counts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub sinks: Vec<(String, SinkStats)>,
    /// Events the daemon could not hand over (the task's channel was full).
    pub refused: u64,
}

/// The handle the daemon keeps: sending never waits. Dropping it ends the task once
/// what is queued has had one more try (bounded).
pub struct Notifier {
    tx: mpsc::Sender<Event>,
    stats: Arc<Mutex<Stats>>,
    refused: Arc<AtomicU64>,
}

/// How long a stopping notifier still tries what it holds.
const FLUSH_FOR: Duration = Duration::from_secs(3);

impl Notifier {
    /// Starts the task for `cfg`, or `None` when it names nowhere to send.
    pub fn start(site: &str, cfg: &Notify) -> Option<Notifier> {
        if !cfg.enabled() {
            return None;
        }
        let mut sinks: Vec<Sink> = cfg.webhooks.iter().cloned().map(Sink::Webhook).collect();
        sinks.extend(cfg.command.clone().map(Sink::Command));
        let policy = Policy {
            coalesce: cfg.coalesce,
            queue: cfg.queue,
            retry_initial: cfg.retry_initial,
            retry_max: cfg.retry_max,
            attempts: cfg.attempts,
        };
        let outbox = Outbox::new(site.to_string(), policy, sinks.len());
        let (tx, rx) = mpsc::channel(cfg.queue.max(16));
        let stats = Arc::new(Mutex::new(Stats {
            sinks: sinks
                .iter()
                .enumerate()
                .map(|(n, s)| (s.label(n), SinkStats::default()))
                .collect(),
            refused: 0,
        }));
        let refused = Arc::new(AtomicU64::new(0));
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot build the webhook client with its timeout; using the default client");
                reqwest::Client::new()
            });
        let t = Task {
            outbox,
            sinks: Arc::new(sinks),
            http,
            stats: stats.clone(),
        };
        tokio::spawn(t.run(rx));
        Some(Notifier { tx, stats, refused })
    }

    /// Hands `ev` to the task; when its channel is full the event is counted and lost.
    pub fn send(&self, ev: Event) {
        if self.tx.try_send(ev).is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts as of the task's last step.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        s.refused = self.refused.load(Ordering::Relaxed);
        s
    }
}

struct Task {
    outbox: Outbox,
    sinks: Arc<Vec<Sink>>,
    http: reqwest::Client,
    stats: Arc<Mutex<Stats>>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        let mut running: JoinSet<(usize, bool)> = JoinSet::new();
        // Which sink each delivery serves, should one end without its answer.
        let mut sink_of: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut stop_at: Option<tokio::time::Instant> = None;
        loop {
            for d in self.outbox.poll(Time::now()) {
                let sink = d.sink;
                let h = running.spawn(deliver(self.http.clone(), self.sinks.clone(), d));
                sink_of.insert(h.id(), sink);
            }
            self.publish();
            if stop_at.is_some_and(|t| tokio::time::Instant::now() >= t)
                || (stop_at.is_some() && self.outbox.is_idle())
            {
                break;
            }
            let wake = self
                .outbox
                .next_deadline()
                .map(|t| tokio::time::Instant::now() + Time::now().until(t));
            let wake = match (wake, stop_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                ev = rx.recv(), if stop_at.is_none() => match ev {
                    Some(ev) => self.outbox.push(Time::now(), ev),
                    None => {
                        self.outbox.flush();
                        stop_at = Some(tokio::time::Instant::now() + FLUSH_FOR);
                    }
                },
                Some(r) = running.join_next_with_id() => {
                    let (id, sink, ok) = match r {
                        Ok((id, (sink, ok))) => (id, sink, ok),
                        Err(e) => {
                            tracing::error!(error = %e, "a notice delivery ended without an answer; counted as failed");
                            (e.id(), sink_of.get(&e.id()).copied().unwrap_or(usize::MAX), false)
                        }
                    };
                    sink_of.remove(&id);
                    self.outbox.done(Time::now(), sink, ok);
                }
                () = sleep_opt(wake) => {}
            }
        }
    }

    fn publish(&self) {
        let sinks = self
            .outbox
            .stats()
            .into_iter()
            .enumerate()
            .map(|(n, s)| (self.sinks[n].label(n), s))
            .collect();
        if let Ok(mut st) = self.stats.lock() {
            st.sinks = sinks;
        }
    }
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One try of one notice on one sink; logs a failure once per try.
async fn deliver(http: reqwest::Client, sinks: Arc<Vec<Sink>>, d: Delivery) -> (usize, bool) {
    let sink = &sinks[d.sink];
    let r = match sink {
        Sink::Webhook(url) => post(&http, url, &d.notice).await,
        Sink::Command(c) => run_command(c, &d.notice).await,
    };
    match r {
        Ok(()) => {
            tracing::debug!(sink = %sink.label(d.sink), kind = d.notice.event.kind.as_str(), subject = %d.notice.event.subject, "notice delivered");
            (d.sink, true)
        }
        Err(e) => {
            tracing::warn!(sink = %sink.label(d.sink), kind = d.notice.event.kind.as_str(), subject = %d.notice.event.subject, error = %e, "notice not delivered");
            (d.sink, false)
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, n: &Notice) -> Result<(), DeliveryError> {
    let body = serde_json::to_vec(n)?;
    let resp = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|source| DeliveryError::Post {
            url: url.to_string(),
            source,
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        })
    }
}

/// Runs the hook: the notice as JSON on stdin, its kind and subject in the
/// environment; killed at its timeout.
async fn run_command(c: &Command, n: &Notice) -> Result<(), DeliveryError> {
    let program = c.program.display().to_string();
    let body = serde_json::to_vec(n)?;
    let mut child = tokio::process::Command::new(&c.program)
        .args(&c.args)
        .env("ANYCASTD_EVENT_KIND", n.event.kind.as_str())
        .env("ANYCASTD_EVENT_SUBJECT", &n.event.subject)
        .env("ANYCASTD_EVENT_COUNT", n.count.to_string())
        .env("ANYCASTD_SITE", &n.site)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| DeliveryError::Spawn {
            program: program.clone(),
            source,
        })?;
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its input is its own business.
            let _ = stdin.write_all(&body).await;
        }
        child.wait().await
    };
    match tokio::time::timeout(c.timeout, run).await {
        Err(_) => Err(DeliveryError::Timeout {
            program,
            timeout: c.timeout,
        }),
        Ok(Err(source)) => Err(DeliveryError::Spawn { program, source }),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(DeliveryError::Exit {
            program,
            status: status.to_string(),
        }),
    }
}
