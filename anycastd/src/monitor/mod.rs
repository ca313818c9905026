//! The browser monitor: an HTTPS listener serving a web UI (plain HTML/CSS/JS embedded
//! in the binary) and its JSON, for the users of `[monitor]` (docs/monitor.md,
//! decision 0010). It owns no site state: every read and every action goes to the
//! controller as a [`crate::api::Command`], like `anycastctl`'s.
//!
//! ```text
//!  browser ──TLS──> tls::serve ──> routes (session, CSRF, role) ──Command──> controller
//!                                     │ GET /api/events (SSE)
//!                                     └── watch <── feed task <── controller's change
//!                                                   │ counter (daemon loop, BGP)
//!                                                   └ Status on a change while a page
//!                                                     is open (at most 1/s) and per
//!                                                     history sample; pushed if changed
//! ```
//! Sessions, the login limiter, the history and the refusal bursts are plain types
//! without I/O (`session`, `limiter`, `history`, `counters`, `pacer`), tested on a virtual clock.

pub mod assets;
pub mod counters;
#[cfg(test)]
mod feed_tests;
pub mod history;
pub mod limiter;
pub mod pacer;
pub mod password;
mod routes;
pub mod session;
pub mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

use crate::api::{Command, ControllerHandle};
use crate::config::monitor::{Monitor as MonitorConfig, MonitorUser};
use crate::status::Status;
use pacer::Input;

/// Why the monitor could not start (the daemon then does not start either).
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
}

/// One push of the live feed: the status, and the history sample it made, if any.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedEvent {
    pub status: Status,
    pub sample: Option<history::Sample>,
}

/// What the handlers share.
pub(crate) struct Shared {
    handle: ControllerHandle,
    users: Vec<MonitorUser>,
    sessions: Mutex<session::Sessions>,
    limiter: Mutex<limiter::LoginLimiter>,
    history: Mutex<history::History>,
    feed: watch::Receiver<Option<Arc<FeedEvent>>>,
    /// How many live feeds are open ([`Page`]).
    pages: watch::Sender<usize>,
    /// Served over TLS: cookies are `Secure`, HSTS is sent.
    tls: bool,
}

/// Binds the monitor's listener and serves it until `stop` turns true; the bound
/// address (port 0 in the config picks one). `changes` is the controller's change
/// counter: bumped after each input that can change its status.
pub async fn start(
    cfg: &MonitorConfig,
    handle: ControllerHandle,
    changes: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) -> Result<SocketAddr, MonitorError> {
    let tls = cfg.tls.as_ref().map(tls::server_config).transpose()?;
    let tcp = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| MonitorError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = tcp.local_addr().map_err(|source| MonitorError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let (feed_tx, feed_rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        handle: handle.clone(),
        users: cfg.users.clone(),
        sessions: Mutex::new(session::Sessions::new(cfg.session_idle, cfg.session_max)),
        limiter: Mutex::new(limiter::LoginLimiter::default()),
        history: Mutex::new(history::History::default()),
        feed: feed_rx,
        pages: watch::Sender::new(0),
        tls: tls.is_some(),
    });
    tokio::spawn(feed(shared.clone(), feed_tx, changes, stop.clone()));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(url = %format!("{scheme}://{addr}/"), users = cfg.users.len(), "monitor listening");
    let app = routes::router(shared);
    match tls {
        Some(config) => {
            tokio::spawn(tls::serve(tcp, config, app, stop));
        }
        None => {
            let mut stop = stop;
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let app = app.into_make_service_with_connect_info::<tls::Client>();
            tokio::spawn(async move {
                let _ = axum::serve(tcp, app).with_graceful_shutdown(shutdown).await;
            });
        }
    }
    Ok(addr)
}

/// An open live feed (`GET /api/events`): counted while it lives, so the feed task
/// knows whether any page is open.
pub(crate) struct Page(Arc<Shared>);

impl Page {
    pub(crate) fn open(shared: Arc<Shared>) -> Self {
        shared.pages.send_modify(|n| *n += 1);
        Page(shared)
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.0.pages.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The feed task: asks the controller for its status when [`pacer::Pacer`] says so
/// (a change while a page is open, at most once per [`pacer::FEED_EVERY`]; the history's
/// sample), pushes it to the open pages when it changed (the clock fields aside),
/// and samples it into the history. It sleeps until the next input otherwise.
async fn feed(
    shared: Arc<Shared>,
    tx: watch::Sender<Option<Arc<FeedEvent>>>,
    mut changes: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut pages = shared.pages.subscribe();
    let mut pacer = pacer::Pacer::default();
    let mut last: Option<Status> = None;
    let mut open = false;
    loop {
        let now = || tokio::time::Instant::now().into_std();
        let wake = tokio::time::Instant::from_std(pacer.next_wake(now()));
        let input = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            r = pages.changed() => {
                if r.is_err() {
                    return;
                }
                let any = *pages.borrow_and_update() > 0;
                if any == open {
                    continue;
                }
                open = any;
                // The ask for the new page covers the changes seen so far.
                changes.borrow_and_update();
                Input::Pages(open)
            }
            r = changes.changed(), if open => {
                if r.is_err() {
                    return;
                }
                changes.borrow_and_update();
                Input::Change
            }
            () = tokio::time::sleep_until(wake) => Input::Wake,
        };
        if pacer.handle(now(), input) {
            let sampled = ask(&shared, &tx, &mut last).await;
            pacer.handle(now(), Input::Answered { sampled });
        }
    }
}

/// One status ask: sampled into the history, pushed when it changed; whether the
/// history kept a sample.
async fn ask(
    shared: &Shared,
    tx: &watch::Sender<Option<Arc<FeedEvent>>>,
    last: &mut Option<Status>,
) -> bool {
    counters::status_asked();
    let Ok(st) = shared.handle.ask(Command::Status).await else {
        return false;
    };
    let sample = match shared.history.lock() {
        Ok(mut h) => h.offer(&st),
        Err(_) => None,
    };
    let sampled = sample.is_some();
    if !sampled && last.as_ref().is_some_and(|l| same_but_clock(l, &st)) {
        return false;
    }
    *last = Some(st.clone());
    tx.send_replace(Some(Arc::new(FeedEvent { status: st, sample })));
    sampled
}

/// Equal but for the fields that move with the clock alone, which the page counts
/// on from the snapshot (`now`). The times they count from (a report received, a
/// session established) are compared, within the second either side that whole
/// seconds lose.
fn same_but_clock(a: &Status, b: &Status) -> bool {
    let (sa, sb) = (clock_starts(a), clock_starts(b));
    strip(a) == strip(b)
        && sa.len() == sb.len()
        && sa.iter().zip(&sb).all(|(x, y)| x.abs_diff(*y) <= 2)
}

/// `s` with its clock fields zeroed (present or not kept).
fn strip(s: &Status) -> Status {
    let mut s = s.clone();
    s.now = 0;
    s.uptime_s = 0;
    for p in &mut s.peers {
        p.report_age_s = p.report_age_s.map(|_| 0);
    }
    for x in &mut s.sessions {
        x.uptime_s = x.uptime_s.map(|_| 0);
    }
    for d in s.directors.iter_mut().flat_map(|d| &mut d.others) {
        d.report_age_s = d.report_age_s.map(|_| 0);
    }
    s
}

/// The Unix times the clock fields count from: each report received, each session
/// established.
fn clock_starts(s: &Status) -> Vec<u64> {
    let ages = s.peers.iter().map(|p| p.report_age_s);
    let ages = ages.chain(s.sessions.iter().map(|x| x.uptime_s));
    let ages = ages.chain(
        s.directors
            .iter()
            .flat_map(|d| &d.others)
            .map(|o| o.report_age_s),
    );
    ages.flatten().map(|a| s.now.saturating_sub(a)).collect()
}
