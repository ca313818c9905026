//! The local API's and the report listener's commands, answered from the site.

use geo_balancer::Time;
use geo_balancer::exchange::{SIGNATURE_HEADER, SITE_HEADER};

use super::Daemon;
use crate::api::Command;
use crate::bfd_link::BfdLink;
use crate::config;
use crate::status::DrainReply;

impl Daemon {
    pub(super) async fn command(&mut self, cmd: Command) {
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
}
