//! The task loop: starts the site's tasks, then feeds the [`Site`] its inputs until
//! SIGTERM or SIGINT, and stops gracefully.

use std::path::Path;
use std::time::Duration;

use geo_balancer::exchange::client::ReportClient;
use geo_balancer::health::HealthEvent;
use geo_balancer::{ServerId, Time};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use super::{
    DRIFT_MAX, DRIFT_MIN, Daemon, HEALTH_BURST, READ_SPACING, STATS_MIN, StartError, check_host,
    ledger, sleep_opt, start_speaker, stats_max, until, warn_real_servers,
};
use crate::api::{self, ControllerHandle, LocalListener};
use crate::bfd_link::BfdLink;
use crate::config::SiteConfig;
use crate::dataplane::{self, Worker};
use crate::report_listener;
use crate::site::{Effect, Site};
use crate::systemd;

/// Runs the site until SIGTERM or SIGINT.
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
