//! SIGHUP: the new config checked, then put in force with the listeners, BGP sessions,
//! checkers and notifier that it changes.

use geo_balancer::Time;

use super::{Daemon, check_host, start_speaker, warn_real_servers};
use crate::bfd_link::BfdLink;
use crate::config::{self, SiteConfig};
use crate::mapping;
use crate::report_listener;

/// What a reload does to the report listener, decided (and a new socket bound) before
/// anything else changes, so that a port that cannot be opened refuses the reload.
enum ListenerMove {
    /// The new config moves it: this socket, already bound, replaces the old listener.
    Rebind(report_listener::Bound),
    /// The new config wants none (no peers, no other directors): the old one closes.
    Close,
    /// Same address as before, or none before and none now: nothing to do.
    Keep,
}

impl Daemon {
    pub(super) async fn reload(&mut self) {
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
        let listener = match wanted {
            Some(addr) if self.report_listener.as_ref().map(|l| l.addr()) != Some(addr) => {
                match report_listener::Bound::bind(addr).await {
                    Ok(b) => ListenerMove::Rebind(b),
                    Err(e) => {
                        tracing::error!(%addr, error = %e, "reload refused: cannot open the report listener; the running config stays in force");
                        self.site.count_reload(false);
                        return;
                    }
                }
            }
            None if self.report_listener.is_some() => ListenerMove::Close,
            _ => ListenerMove::Keep,
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
        // The old one closes as it is replaced.
        match listener {
            ListenerMove::Rebind(b) => {
                self.report_listener = Some(b.serve(self.handle.clone(), self.stop.clone()));
            }
            ListenerMove::Close => self.report_listener = None,
            ListenerMove::Keep => {}
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
}
