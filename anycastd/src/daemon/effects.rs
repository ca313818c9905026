//! The site's effects written out: BGP announcements and withdrawals (the site
//! endpoint's prefix with them), data-plane requests and signed load reports.

use geo_balancer::exchange::client::{SignedReport, sign_report};

use super::Daemon;
use crate::dataplane;
use crate::mapping;
use crate::site::Effect;

impl Daemon {
    pub(super) async fn execute(&mut self, effects: Vec<Effect>) {
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
}
