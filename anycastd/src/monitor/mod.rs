//! The browser monitor: an HTTPS listener serving a web UI (plain HTML/CSS/JS embedded
//! in the binary) and its JSON, for the users of `[monitor]` (docs/monitor.md,
//! decision 0010). It owns no site state: every read and every action goes to the
//! controller as a [`crate::api::Command`], like `anycastctl`'s.
//!
//! ```text
//!  browser ──TLS──> tls::serve ──> routes (session, CSRF, role) ──Command──> controller
//!                                     │ GET /api/events (SSE)
//!                                     └── watch <── feed task: Status each second,
//!                                                   pushed when it changed; History
//! ```
//! Sessions, the login limiter, the history and the refusal bursts are plain types
//! without I/O (`session`, `limiter`, `history`, `counters`), tested on a virtual clock.

pub mod assets;
pub mod counters;
pub mod history;
pub mod limiter;
pub mod password;
mod routes;
pub mod session;
pub mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::api::{Command, ControllerHandle};
use crate::config::monitor::{Monitor as MonitorConfig, MonitorUser};
use crate::status::Status;

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

/// How often the feed asks the controller for its status.
const FEED_EVERY: Duration = Duration::from_secs(1);

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
    /// Served over TLS: cookies are `Secure`, HSTS is sent.
    tls: bool,
}

/// Binds the monitor's listener and serves it until `stop` turns true; the bound
/// address (port 0 in the config picks one).
pub async fn start(
    cfg: &MonitorConfig,
    handle: ControllerHandle,
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
        tls: tls.is_some(),
    });
    tokio::spawn(feed(shared.clone(), feed_tx, stop.clone()));
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

/// The feed task: the controller's status each [`FEED_EVERY`] while a page is open
/// (each `history::SAMPLE_EVERY` seconds otherwise), pushed to the live pages when it
/// changed (the clock fields aside), sampled into the history.
async fn feed(
    shared: Arc<Shared>,
    tx: watch::Sender<Option<Arc<FeedEvent>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(FEED_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Status> = None;
    let mut asked: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // No page open (the only receiver is the handlers' own): ask only as often as
        // the history samples.
        let idle = tx.receiver_count() <= 1;
        let sample_every = Duration::from_secs(history::SAMPLE_EVERY);
        if idle && asked.is_some_and(|t| t.elapsed() < sample_every) {
            continue;
        }
        asked = Some(tokio::time::Instant::now());
        let Ok(st) = shared.handle.ask(Command::Status).await else {
            continue;
        };
        let sample = match shared.history.lock() {
            Ok(mut h) => h.offer(&st),
            Err(_) => None,
        };
        if sample.is_none() && last.as_ref().is_some_and(|l| same_but_clock(l, &st)) {
            continue;
        }
        last = Some(st.clone());
        tx.send_replace(Some(Arc::new(FeedEvent { status: st, sample })));
    }
}

/// Equal but for the fields that move with the clock alone.
fn same_but_clock(a: &Status, b: &Status) -> bool {
    let strip = |s: &Status| {
        let mut s = s.clone();
        s.now = 0;
        s.uptime_s = 0;
        for p in &mut s.peers {
            p.report_age_s = p.report_age_s.map(|a| a / 10);
        }
        for x in &mut s.sessions {
            x.uptime_s = None;
        }
        s
    };
    strip(a) == strip(b)
}
