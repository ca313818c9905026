//! The driver: one task owns the [`Site`] and turns its effects into BGP updates,
//! data-plane requests and load reports; everything else (health checkers, the data
//! plane worker, the HTTP listeners, signals) feeds it through channels.
//!
//! ```text
//!  checkers ──HealthEvent──┐
//!  dataplane worker ──Outcome──┤
//!  local API / reports ──Command──┼──> select! (biased: health first) ──> Site input ──> urgent effects
//!  the Site's next deadline ──┤                                             (Withdraw/Announce -> bgp-speaker)
//!  stats sample, drift check ──────┤                                   then Site::settle ──> the rest
//!  SIGTERM/SIGINT/SIGHUP ──────────┘          Apply/Reconcile/Stats -> dataplane worker
//!                                             SendReports           -> spawned HTTP posts
//! ```
//! No periodic recompute: the loop sleeps until the earliest of the Site's own
//! deadline, the next stats sample and the drift check, or until an input arrives.
//! After each input that can change the status (not the read-only commands, the
//! watchdog or the stats request) it bumps a change counter the monitor's feed
//! watches; BGP session changes arrive as the speaker's own counter.
//!
//! Files: `run` (start-up, the loop, the graceful stop), `effects` (the site's effects
//! written to BGP, the data plane and the peers), `command` (the local API and incoming
//! reports), `reload` (SIGHUP); this file holds the daemon's state and its helpers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bgp_speaker::Speaker;
use geo_balancer::exchange::client::ReportClient;
use geo_balancer::health::{CheckerHandle, HealthEvent, spawn_checkers};
use geo_balancer::{ServerId, Time};
use tokio::sync::{mpsc, watch};

use crate::api::ControllerHandle;
use crate::bfd_link::BfdLink;
use crate::config::SiteConfig;
use crate::dataplane::Worker;
use crate::mapping;
use crate::report_listener;
use crate::site::Site;

mod command;
mod effects;
mod reload;
mod run;

pub use run::run;

/// Why the daemon could not start (it exits 1 with this message).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data plane: {0}")]
    Dataplane(#[from] crate::dataplane::DataplaneError),
    #[error("BGP: {0}")]
    Bgp(#[from] bgp_speaker::SpeakerError),
    #[error("{0}")]
    Site(#[from] crate::site::SiteError),
    #[error("cannot listen on {what} {addr}: {source}")]
    Listen {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("signals: {0}")]
    Signals(std::io::Error),
    #[error("BFD: {0}")]
    Bfd(#[from] bfd::task::Error),
    #[error("{file}:{line}: {reason}")]
    Host {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("monitor: {0}")]
    Monitor(#[from] crate::monitor::MonitorError),
}

/// Refuses a config this host cannot run (`host::problems`); logs its warnings.
fn check_host(path: &Path, cfg: &SiteConfig) -> Result<(), StartError> {
    let host = crate::host::Facts::read(cfg);
    if let Some((line, reason)) = crate::host::problems(cfg, &host).into_iter().next() {
        return Err(StartError::Host {
            file: path.display().to_string(),
            line,
            reason,
        });
    }
    for (line, reason) in crate::host::sync_warnings(cfg) {
        tracing::warn!(file = %path.display(), line, %reason, "scheduler not consistent across directors");
    }
    Ok(())
}

struct Daemon {
    config_path: PathBuf,
    site: Site,
    speaker: Speaker,
    /// BFD toward the neighbors that have it.
    bfd: Option<BfdLink>,
    /// Names of links whose carrier came up (`None`: the watch could not start).
    links: Option<mpsc::Receiver<String>>,
    worker: Option<Worker>,
    checkers: Vec<CheckerHandle>,
    health_tx: mpsc::Sender<HealthEvent>,
    load_pollers: Vec<tokio::task::JoinHandle<()>>,
    load_tx: mpsc::Sender<(ServerId, Option<f64>)>,
    http: reqwest::Client,
    reports: ReportClient,
    /// Peers whose last report could not be delivered (warned once, then debug).
    unreachable: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// The last reading of the sync daemons, for the status.
    sync: crate::sync_status::Cache,
    /// Where the site's events go (`[notify]`), if anywhere.
    notifier: Option<crate::notify::Notifier>,
    latency: crate::metrics::Latency,
    /// Peer sites' and sibling directors' reports arrive here (while there are any).
    report_listener: Option<report_listener::ReportListener>,
    /// What the HTTP listeners hand their requests to, and the daemon's stop signal.
    handle: ControllerHandle,
    stop: watch::Receiver<bool>,
    /// The BGP sessions' change counter (the speaker's, renewed with it).
    bgp_changes: watch::Receiver<u64>,
    /// What was sent of the site endpoint's prefix (decision 0018).
    endpoint: crate::endpoint_route::EndpointRoute,
}

/// The slow full read of the kernel that corrects drift made behind our back: at most
/// this often...
const DRIFT_MIN: Duration = Duration::from_secs(30);
/// ... and at least this often, however long a reconcile takes.
const DRIFT_MAX: Duration = Duration::from_secs(1800);
/// IPVS stats are sampled at most this often...
const STATS_MIN: Duration = Duration::from_secs(1);
/// ... and at least this often, however long a read takes; never less often than the
/// load exchange's interval either (`stats_max`), so a report never carries a load older
/// than one period.
const STATS_MAX: Duration = Duration::from_secs(300);

/// The longest gap between two IPVS stats samples for this config: [`STATS_MAX`], or
/// the report interval when that is shorter. (A slow read on a busy machine must not
/// leave the site load, and so the spill rule and the reports, minutes old: seen in the
/// lab kernel, where two guests on one host made the read slow enough to space it 8 s.)
fn stats_max(cfg: &SiteConfig) -> Duration {
    STATS_MAX.min(cfg.exchange.interval).max(STATS_MIN)
}
/// Periodic kernel reads are spaced to this many times their own duration, so that
/// together they stay near 2% of a core however many services there are (a full read of
/// 10,000 services takes seconds in a slow kernel).
const READ_SPACING: u32 = 100;
/// Health events handled back to back before anything else gets a turn.
const HEALTH_BURST: usize = 256;

/// A tokio instant for a core deadline. Core time has millisecond resolution: a
/// deadline is rounded up so that the core sees it as due when woken.
fn until(t: Time) -> tokio::time::Instant {
    let left = Time::now().until(t) + Duration::from_millis(1);
    tokio::time::Instant::now() + left
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn ledger(cfg: &SiteConfig) -> PathBuf {
    cfg.site
        .state_dir
        .join(format!("{}.services", cfg.site.name))
}

/// `anycastd check`'s warnings, logged: a DR real server on no network of this
/// director cannot be reached by MAC (it is still configured: the operator may be
/// about to add the address).
fn warn_real_servers(path: &Path, cfg: &SiteConfig) {
    if !cfg.site.dataplane {
        return;
    }
    match crate::plan::connected_networks() {
        Ok(nets) => {
            for w in crate::plan::warnings(cfg, &nets) {
                tracing::warn!(
                    file = %path.display(),
                    line = w.line,
                    server = %w.server,
                    reason = %w.reason,
                    "DR real server on no network of this director"
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read this host's addresses: DR real servers not checked against its networks")
        }
    }
}

/// The BGP speaker. The listener is on by default; when the config did not ask for it
/// and port 179 cannot be bound (another BGP daemon on the host), the sessions still
/// start, connecting out only, with a warning.
async fn start_speaker(cfg: &SiteConfig) -> Result<Speaker, bgp_speaker::SpeakerError> {
    let sc = mapping::speaker_config(cfg);
    match Speaker::start(sc.clone()).await {
        Err(bgp_speaker::SpeakerError::Listen { addr, reason }) if !cfg.bgp.listen_set => {
            tracing::warn!(%addr, %reason, "cannot accept BGP sessions; connecting out only (set [bgp] listen = false to silence this)");
            Speaker::start(bgp_speaker::SpeakerConfig { listen: None, ..sc }).await
        }
        r => r,
    }
}

impl Daemon {
    /// Hands the site's recorded state changes to the notifier (after the urgent
    /// effects are written).
    fn notify(&mut self) {
        let events = self.site.take_events();
        if let Some(n) = &self.notifier {
            for ev in events {
                n.send(ev);
            }
        }
    }

    /// A link's carrier came up: every BGP session that is down connects now instead
    /// of at the end of its backoff (a no-op for one with a connection).
    async fn link_up(&self, link: &str) {
        tracing::info!(%link, "link up: BGP sessions that are down connect now");
        for p in self.speaker.peers() {
            if let Err(e) = p.connect_now().await {
                tracing::warn!(neighbor = %p.name(), error = %e, "connect_now failed");
            }
        }
    }

    /// The site's status with the BGP sessions and their BFD sessions.
    async fn status(&mut self, now: Time) -> crate::status::Status {
        let sessions = self.speaker.status().await;
        let mut st = self.site.status(now, &sessions);
        st.sync = self
            .sync
            .get(self.site.config(), self.worker.as_ref())
            .await;
        if let Some(link) = &self.bfd {
            let bfd = link.status().await;
            for s in &mut st.sessions {
                s.bfd = s.neighbor.parse().ok().and_then(|a| bfd.get(&a).cloned());
            }
        }
        st
    }

    fn spawn_checkers(&mut self) {
        self.checkers = vec![spawn_checkers(
            mapping::checks(self.site.config()),
            self.http.clone(),
            self.health_tx.clone(),
        )];
        for t in self.load_pollers.drain(..) {
            t.abort();
        }
        // The second load source: read each `load_url` (RealServer::load_poll).
        let cfg = self.site.config();
        for (at, id) in mapping::servers(cfg) {
            let rs = at.config(cfg);
            let Some(url) = rs.load_url.clone() else {
                continue;
            };
            let (interval, timeout) = rs.load_poll();
            let (http, tx) = (self.http.clone(), self.load_tx.clone());
            self.load_pollers.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                loop {
                    tick.tick().await;
                    let v =
                        match geo_balancer::load::fetch_external_load(&http, &url, timeout).await {
                            Ok(v) => Some(v),
                            Err(e) => {
                                tracing::debug!(server = %id, error = %e, "load_url read failed");
                                None
                            }
                        };
                    if tx.send((id.clone(), v)).await.is_err() {
                        return;
                    }
                }
            }));
        }
    }
}
