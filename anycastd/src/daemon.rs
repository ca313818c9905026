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

use std::path::{Path, PathBuf};
use std::time::Duration;

use bgp_speaker::Speaker;
use geo_balancer::exchange::client::{ReportClient, SignedReport, sign_report};
use geo_balancer::exchange::{SIGNATURE_HEADER, SITE_HEADER};
use geo_balancer::health::{CheckerHandle, HealthEvent, spawn_checkers};
use geo_balancer::{ServerId, Time};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::api::{self, Command, ControllerHandle, LocalListener};
use crate::bfd_link::BfdLink;
use crate::config::{self, SiteConfig};
use crate::dataplane::{self, Worker};
use crate::mapping;
use crate::report_listener;
use crate::site::{Effect, Site};
use crate::status::DrainReply;
use crate::systemd;

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

/// Runs the site until SIGTERM or SIGINT.
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

pub async fn run(config_path: &Path, cfg: SiteConfig) -> Result<(), StartError> {
    let now = Time::now();
    // Without a data plane nothing ever arrives on this channel; its sender lives
    // until the daemon ends.
    let (_idle_tx, idle_rx) = mpsc::channel(1);
    check_host(config_path, &cfg)?;
    let (worker, mut dp_rx) = if cfg.site.dataplane {
        let (w, rx) = Worker::start(ledger(&cfg))?;
        (Some(w), rx)
    } else {
        tracing::info!("site.dataplane = false: BGP and health checks only");
        (None, idle_rx)
    };
    let (site, first) = Site::new(cfg.clone(), now)?;
    warn_real_servers(config_path, &cfg);
    let speaker = start_speaker(&cfg).await?;
    let bfd = BfdLink::start(&cfg)?;
    let links = crate::links::watch()
        .inspect_err(|e| tracing::warn!(error = %e, "cannot watch link carrier; a link coming back waits for the BGP reconnect backoff"))
        .ok();
    let (health_tx, mut health_rx) = mpsc::channel(4096);
    let (load_tx, mut load_rx) = mpsc::channel::<(ServerId, Option<f64>)>(256);
    let (cmd_tx, mut cmd_rx) = mpsc::channel(256);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Bumped after each input that can change the status (the monitor's feed).
    let (changes_tx, changes_rx) = watch::channel(0u64);

    let local = LocalListener::bind(&cfg.api)
        .await
        .map_err(|source| StartError::Listen {
            what: "the local API",
            addr: cfg.api.listen.to_string(),
            source,
        })?;
    let handle = ControllerHandle::new(cmd_tx.clone());
    let mut stop = stop_rx.clone();
    let access = crate::auth::Access::new(&cfg.api);
    tokio::spawn(
        local.serve(api::local_router(handle.clone(), access), async move {
            let _ = stop.wait_for(|s| *s).await;
        }),
    );
    if let Some(m) = &cfg.monitor {
        crate::monitor::start(m, handle.clone(), changes_rx, stop_rx.clone()).await?;
    }
    // Reports come from peer sites and from this site's other directors.
    let report_listener = match report_listener::wanted(&cfg) {
        Some(addr) => Some(
            report_listener::Bound::bind(addr)
                .await
                .map_err(|source| StartError::Listen {
                    what: "the report listener",
                    addr: addr.to_string(),
                    source,
                })?
                .serve(handle.clone(), stop_rx.clone()),
        ),
        None => None,
    };
    let mut sigterm = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(StartError::Signals)?;

    let mut d = Daemon {
        config_path: config_path.to_path_buf(),
        site,
        bgp_changes: speaker.changes(),
        speaker,
        bfd,
        links,
        worker,
        checkers: Vec::new(),
        health_tx,
        load_pollers: Vec::new(),
        load_tx,
        http: geo_balancer::health::probe::http_client(),
        reports: ReportClient::new(Duration::from_secs(5)),
        unreachable: Default::default(),
        sync: Default::default(),
        notifier: crate::notify::Notifier::start(&cfg.site.name, &cfg.notify),
        latency: Default::default(),
        report_listener,
        handle,
        stop: stop_rx.clone(),
        endpoint: Default::default(),
    };
    d.spawn_checkers();
    tracing::info!(site = %cfg.site.name, vips = cfg.vips.len(), neighbors = cfg.bgp.neighbors.len(), peers = cfg.peers.len(), "anycastd started");
    // systemd: READY=1 once the first reconcile is done, the watchdog kept by this loop.
    let mut sd = systemd::Notifier::new(
        first.iter().any(|e| matches!(e, Effect::Reconcile(_))),
        format!(
            "site {}: {} VIPs, {} BGP neighbors",
            cfg.site.name,
            cfg.vips.len(),
            cfg.bgp.neighbors.len()
        ),
    );
    d.execute(first).await;
    sd.started();
    // Servers the operator took out stay out across a restart.
    let saved = crate::disabled::load(&crate::disabled::path(&cfg));
    if !saved.is_empty() {
        tracing::warn!(
            servers = saved.len(),
            "keeping real servers disabled by the operator before the restart"
        );
        let e = d.site.restore_disabled(Time::now(), &saved);
        d.execute(e).await;
    }

    let mut drift_every = DRIFT_MIN;
    let drift_at = tokio::time::sleep(drift_every);
    tokio::pin!(drift_at);
    let mut stats_every = STATS_MIN;
    let stats_at = tokio::time::sleep(stats_every);
    tokio::pin!(stats_at);
    let signal_name = loop {
        let timer_at = d.site.next_deadline(Time::now()).map(until);
        let timer = sleep_opt(timer_at);
        tokio::pin!(timer);
        // Whether this input can change the status (read-only ones cannot).
        let mut touched = true;
        tokio::select! {
            biased;
            Some(ev) = health_rx.recv() => {
                d.latency.verdict();
                let e = d.site.on_health(ev);
                d.execute(e).await;
                // A burst (many servers behind one switch): every verdict first.
                for _ in 0..HEALTH_BURST {
                    let Ok(ev) = health_rx.try_recv() else { break };
                    d.latency.verdict();
                    let e = d.site.on_health(ev);
                    d.execute(e).await;
                }
                d.latency.verdict_done();
            }
            // One datagram per half watchdog period, ahead of all but the health events.
            () = sd.watchdog_due() => {
                sd.watchdog();
                touched = false;
            }
            Some(out) = dp_rx.recv() => {
                let now = Time::now();
                match out {
                    dataplane::Outcome::Reconciled(r, took) => {
                        drift_every = (took * READ_SPACING).clamp(DRIFT_MIN, DRIFT_MAX);
                        d.latency.answered("reconcile", took);
                        let e = d.site.on_reconciled(now, r);
                        d.execute(e).await;
                        sd.reconciled();
                    }
                    dataplane::Outcome::Applied(r, took) => {
                        tracing::debug!(took_us = took.as_micros() as u64, "weights applied");
                        d.latency.answered("apply", took);
                        d.site.on_applied(now, r);
                    }
                    dataplane::Outcome::Stats(Ok(s), took) => {
                        d.site.on_stats(now, &s);
                        // Reading IPVS costs time in proportion to its services: keep
                        // it near 1% of a core however many there are.
                        stats_every = (took * READ_SPACING)
                            .clamp(STATS_MIN, stats_max(d.site.config()));
                    }
                    dataplane::Outcome::Stats(Err(e), _) => {
                        tracing::warn!(error = %e, "reading IPVS stats failed");
                    }
                }
            }
            Some(ev) = bfd_next(&mut d.bfd) => {
                if let Some(link) = &mut d.bfd {
                    link.on_event(&d.speaker, ev).await;
                }
            }
            Some(link) = link_next(&mut d.links) => d.link_up(&link).await,
            Some(cmd) = cmd_rx.recv() => {
                touched = !cmd.reads_only();
                d.command(cmd).await;
            }
            Ok(()) = d.bgp_changes.changed() => {}
            Some((server, value)) = load_rx.recv() => d.site.on_external_load(Time::now(), &server, value),
            () = &mut timer => {
                let e = d.site.on_timer(Time::now());
                d.execute(e).await;
            }
            () = &mut stats_at => {
                if let Some(w) = &d.worker {
                    w.send(dataplane::Request::Stats);
                }
                stats_at.as_mut().reset(tokio::time::Instant::now() + stats_every);
                touched = false;
            }
            () = &mut drift_at => {
                drift_at.as_mut().reset(tokio::time::Instant::now() + drift_every);
                let e = d.site.resync(Time::now());
                d.execute(e).await;
            }
            _ = sighup.recv() => {
                sd.reloading();
                d.reload().await;
                sd.reloaded();
            }
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
        }
        let e = d.site.settle(Time::now());
        d.execute(e).await;
        d.latency.settled();
        d.notify();
        if touched {
            changes_tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    };
    sd.stopping();
    d.graceful_stop(signal_name, &mut health_rx, &mut sigterm, &mut sigint)
        .await;
    let _ = stop_tx.send(true);
    Ok(())
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

/// The next BFD state change, or never without BFD.
async fn bfd_next(link: &mut Option<BfdLink>) -> Option<bfd::Event> {
    match link {
        Some(l) => l.next().await,
        None => std::future::pending().await,
    }
}

/// The next link whose carrier came up, or never without the watch.
async fn link_next(links: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match links {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
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

    async fn execute(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Withdraw { vip } => {
                    let prefix = self.site.config().vips[vip.index()].prefix;
                    // On the wire before anything else, including the log line.
                    let r = self.speaker.withdraw(prefix).await;
                    self.latency
                        .withdrawn(&self.site.config().vips[vip.index()].name);
                    tracing::warn!(vip = %self.site.config().vips[vip.index()].name, %prefix, "withdraw");
                    if let Err(e) = r {
                        tracing::error!(error = %e, "withdraw failed");
                    }
                    self.site.count_announcement(vip, "withdraw");
                }
                Effect::WithdrawPrefix(prefix) => {
                    tracing::warn!(%prefix, "withdraw (no longer configured)");
                    if let Err(e) = self.speaker.withdraw(prefix).await {
                        tracing::error!(error = %e, "withdraw failed");
                    }
                }
                Effect::Announce {
                    vip,
                    graceful_shutdown,
                } => {
                    let cfg = self.site.config();
                    let v = &cfg.vips[vip.index()];
                    tracing::info!(vip = %v.name, prefix = %v.prefix, graceful_shutdown, "announce");
                    for n in &cfg.bgp.neighbors {
                        let route = mapping::route(v, n, graceful_shutdown);
                        if let Some(p) = self.speaker.peer(&n.address.to_string())
                            && let Err(e) = p.announce(route).await
                        {
                            tracing::error!(neighbor = %n.address, error = %e, "announce failed");
                        }
                    }
                    let kind = if graceful_shutdown {
                        "announce_graceful_shutdown"
                    } else {
                        "announce"
                    };
                    self.site.count_announcement(vip, kind);
                }
                Effect::Reconcile(desired) => {
                    if let Some(w) = &self.worker {
                        w.send(dataplane::Request::Reconcile(desired));
                        self.latency.to_worker();
                    }
                }
                Effect::Apply(requests) => {
                    if let Some(w) = &self.worker {
                        w.send(dataplane::Request::Apply(requests));
                        self.latency.to_worker();
                    }
                }
                Effect::SendReports(round) => self.send_reports(round),
            }
        }
        self.endpoint_prefix().await;
    }

    /// The site endpoint's prefix follows the VIPs just announced or withdrawn.
    async fn endpoint_prefix(&mut self) {
        use crate::endpoint_route::{Change, wanted};
        let want = wanted(self.site.config(), &self.site.vip_states());
        for change in self.endpoint.update(want) {
            let cfg = self.site.config();
            match change {
                Change::Withdraw(prefix) => {
                    tracing::warn!(%prefix, "withdraw (site tunnel endpoint)");
                    if let Err(e) = self.speaker.withdraw(prefix.into()).await {
                        tracing::error!(error = %e, "withdraw failed");
                    }
                }
                Change::Announce {
                    prefix,
                    graceful_shutdown,
                } => {
                    tracing::info!(%prefix, graceful_shutdown, "announce (site tunnel endpoint)");
                    for n in &cfg.bgp.neighbors {
                        let route = mapping::prefix_route(prefix.into(), n, graceful_shutdown);
                        if let Some(p) = self.speaker.peer(&n.address.to_string())
                            && let Err(e) = p.announce(route).await
                        {
                            tracing::error!(neighbor = %n.address, error = %e, "announce failed");
                        }
                    }
                }
            }
        }
    }

    fn send_reports(&self, round: geo_balancer::exchange::ReportRound) {
        let cfg = self.site.config();
        for r in round.reports {
            // A peer site, at its url; our own site: each other director (decision 0015).
            let (key, targets): (&[u8], Vec<(String, String)>) =
                if r.receiver.as_str() == cfg.site.name {
                    let to = cfg.directors.others.iter();
                    let to = to.map(|d| (format!("{}/{}", cfg.site.name, d.name), d.url.clone()));
                    (&cfg.directors.key, to.collect())
                } else if let Some(p) = cfg.peers.iter().find(|p| p.name == r.receiver.as_str()) {
                    let to = p
                        .urls
                        .iter()
                        .map(|u| (format!("{} at {u}", p.name), u.clone()));
                    (&p.key, to.collect())
                } else {
                    continue;
                };
            let signed = match sign_report(&r, key) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(peer = %r.receiver, error = %e, "cannot sign report");
                    continue;
                }
            };
            for (name, url) in targets {
                self.post_report(name, url, signed.clone(), r.seq);
            }
        }
    }

    /// Posts one signed report; logs a receiver going unreachable and coming back once.
    fn post_report(&self, name: String, url: String, signed: SignedReport, seq: u64) {
        let client = self.reports.clone();
        let unreachable = self.unreachable.clone();
        tokio::spawn(async move {
            let result = client.send(&url, &signed).await;
            let Ok(mut down) = unreachable.lock() else {
                return;
            };
            match result {
                Ok(()) => {
                    if down.remove(&name) {
                        tracing::info!(peer = %name, "load reports delivered again");
                    }
                    tracing::debug!(peer = %name, seq, "load report sent");
                }
                Err(e) if down.insert(name.clone()) => {
                    tracing::warn!(peer = %name, error = %e, "load report not delivered (further failures are logged at debug until one succeeds)");
                }
                Err(e) => {
                    tracing::debug!(peer = %name, error = %e, "load report not delivered")
                }
            }
        });
    }

    async fn command(&mut self, cmd: Command) {
        let now = Time::now();
        match cmd {
            Command::Status(tx) => {
                let st = self.status(now).await;
                let _ = tx.send(st);
            }
            Command::Metrics(tx) => {
                let st = self.status(now).await;
                let bfd = self.bfd.as_ref().map(BfdLink::packets);
                let _ = tx.send(Box::new(crate::metrics::Snapshot {
                    status: st,
                    counters: self.site.counters().clone(),
                    bfd,
                    latency: self.latency.clone(),
                    notify: self.notifier.as_ref().map(crate::notify::Notifier::stats),
                    monitor: self
                        .site
                        .config()
                        .monitor
                        .is_some()
                        .then(crate::monitor::counters::counts),
                }));
            }
            Command::Why(vip, tx) => {
                let _ = tx.send(self.site.why(&vip));
            }
            Command::Drain(vip, tx) => {
                let r = self.site.drain(now, vip.as_deref());
                let wait = self.site.config().site.shutdown_wait;
                let reply = match r {
                    Ok((names, effects)) => {
                        tracing::warn!(vips = ?names, "drain requested");
                        self.execute(effects).await;
                        Ok(DrainReply {
                            message: format!(
                                "draining {}: announced with GRACEFUL_SHUTDOWN now, withdrawn in {}",
                                names.join(", "),
                                config::duration::show(wait)
                            ),
                            vips: names,
                        })
                    }
                    Err(e) => Err(e),
                };
                let _ = tx.send(reply);
            }
            Command::Undrain(vip, tx) => {
                let reply = match self.site.undrain(now, vip.as_deref()) {
                    Ok((names, effects)) => {
                        tracing::warn!(vips = ?names, "undrain requested");
                        self.execute(effects).await;
                        Ok(DrainReply {
                            message: format!(
                                "undrained {}: announced again while servable",
                                names.join(", ")
                            ),
                            vips: names,
                        })
                    }
                    Err(e) => Err(e),
                };
                let _ = tx.send(reply);
            }
            Command::Server(c, tx) => {
                let r = self
                    .site
                    .set_server(now, &c.vip, &c.server, c.enable, c.force, &c.by);
                let reply = match r {
                    Ok((change, effects)) => {
                        self.execute(effects).await;
                        if change.changed {
                            let path = crate::disabled::path(self.site.config());
                            if let Err(e) =
                                crate::disabled::save(&path, &self.site.disabled_servers())
                            {
                                tracing::error!(file = %path.display(), error = %e, "cannot save the disabled servers: a restart would enable them again");
                            }
                        }
                        let state = crate::status::ServerState::from(change.state);
                        let message = match (c.enable, change.changed) {
                            (false, true) => format!(
                                "{} of VIP {} disabled: weight 0, running connections finish, its capacity left the site",
                                change.server, c.vip
                            ),
                            (false, false) => {
                                format!("{} of VIP {} was already disabled", change.server, c.vip)
                            }
                            (true, true) => format!(
                                "{} of VIP {} enabled: {}",
                                change.server,
                                c.vip,
                                state.as_str()
                            ),
                            (true, false) => {
                                format!("{} of VIP {} was not disabled", change.server, c.vip)
                            }
                        };
                        Ok(crate::status::ServerReply {
                            vip: c.vip.clone(),
                            server: change.server,
                            state,
                            message,
                        })
                    }
                    Err(e) => Err(e),
                };
                let _ = tx.send(reply);
            }
            Command::Report(incoming, tx) => {
                let header = |name: &str| {
                    incoming
                        .headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str())
                };
                let r = self.site.on_report(
                    now,
                    header(SITE_HEADER),
                    header(SIGNATURE_HEADER),
                    &incoming.body,
                );
                if r.is_ok() {
                    self.latency.report_accepted();
                }
                let _ = tx.send(r);
            }
        }
    }

    async fn reload(&mut self) {
        let new = match config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                for p in &e.problems {
                    tracing::error!(file = %p.file.display(), line = p.line, reason = %p.reason, "reload refused: the running config stays in force");
                }
                self.site.count_reload(false);
                return;
            }
        };
        if &new == self.site.config() {
            tracing::info!("reload: config unchanged");
            return;
        }
        if let Err(e) = check_host(&self.config_path, &new) {
            tracing::error!(error = %e, "reload refused: the running config stays in force");
            self.site.count_reload(false);
            return;
        }
        if new.monitor != self.site.config().monitor {
            tracing::warn!("reload: [monitor] changed; it takes effect at the next start");
        }
        // A report listener the new config moves is bound before anything changes.
        let wanted = report_listener::wanted(&new);
        let rebind = match wanted {
            Some(addr) if self.report_listener.as_ref().map(|l| l.addr()) != Some(addr) => {
                match report_listener::Bound::bind(addr).await {
                    Ok(b) => Some(Some(b)),
                    Err(e) => {
                        tracing::error!(%addr, error = %e, "reload refused: cannot open the report listener; the running config stays in force");
                        self.site.count_reload(false);
                        return;
                    }
                }
            }
            None if self.report_listener.is_some() => Some(None),
            _ => None,
        };
        let bgp_changed = new.bgp != self.site.config().bgp;
        let notify_changed = new.notify != self.site.config().notify;
        let load_urls = |c: &SiteConfig| -> Vec<Option<String>> {
            c.vips
                .iter()
                .flat_map(|v| &v.services)
                .flat_map(|s| &s.real_servers)
                .map(|r| r.load_url.clone())
                .collect()
        };
        let checks_changed = mapping::checks(&new) != mapping::checks(self.site.config())
            || load_urls(&new) != load_urls(self.site.config());
        let effects = match self.site.reload(new, Time::now()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "reload refused: the running config stays in force");
                self.site.count_reload(false);
                return;
            }
        };
        self.sync.clear();
        if let Some(bound) = rebind {
            // The old one closes as it is replaced.
            self.report_listener = bound.map(|b| b.serve(self.handle.clone(), self.stop.clone()));
        }
        self.execute(effects).await;
        if bgp_changed {
            tracing::warn!("reload: BGP settings changed; restarting sessions");
            self.speaker
                .shutdown("anycastd reload: BGP settings changed")
                .await;
            match start_speaker(self.site.config()).await {
                Ok(s) => {
                    self.bgp_changes = s.changes();
                    self.speaker = s;
                }
                Err(e) => tracing::error!(error = %e, "BGP restart failed"),
            }
            // BFD follows the neighbors: the old sessions end (and free port 3784)
            // before the new ones start.
            if let Some(old) = self.bfd.take() {
                old.shutdown().await;
            }
            match BfdLink::start(self.site.config()) {
                Ok(l) => self.bfd = l,
                Err(e) => tracing::error!(error = %e, "BFD restart failed"),
            }
            let again = self.site.announced_effects();
            self.endpoint.forget();
            self.execute(again).await;
        }
        if checks_changed {
            self.spawn_checkers();
        }
        if notify_changed {
            // The old notifier gets its few seconds to deliver what it holds.
            let cfg = self.site.config();
            self.notifier = crate::notify::Notifier::start(&cfg.site.name, &cfg.notify);
        }
        self.site.count_reload(true);
        tracing::info!("reload: new config in force");
        warn_real_servers(&self.config_path, self.site.config());
    }

    async fn graceful_stop(
        &mut self,
        signal_name: &str,
        health_rx: &mut mpsc::Receiver<HealthEvent>,
        sigterm: &mut tokio::signal::unix::Signal,
        sigint: &mut tokio::signal::unix::Signal,
    ) {
        let wait = self.site.config().site.shutdown_wait;
        tracing::warn!(signal = signal_name, wait = ?wait, "stopping: announcing GRACEFUL_SHUTDOWN, then withdrawing");
        if let Ok((_, effects)) = self.site.drain(Time::now(), None) {
            self.execute(effects).await;
        }
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                biased;
                Some(ev) = health_rx.recv() => {
                    let e = self.site.on_health(ev);
                    self.execute(e).await;
                    let e = self.site.settle(Time::now());
                    self.execute(e).await;
                }
                _ = &mut deadline => break,
                _ = sigterm.recv() => { tracing::warn!("second signal: withdrawing now"); break }
                _ = sigint.recv() => { tracing::warn!("second signal: withdrawing now"); break }
            }
        }
        self.checkers.clear();
        for t in self.load_pollers.drain(..) {
            t.abort();
        }
        let e = self.site.withdraw_all(Time::now());
        self.execute(e).await;
        self.notify();
        self.speaker
            .shutdown(&format!("anycastd stopping ({signal_name})"))
            .await;
        tracing::warn!("stopped; the data plane stays in place so running connections finish");
    }
}
