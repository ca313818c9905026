//! The operator takes one real server out and back (`anycastctl server disable|enable`).
//!
//! Disable drains: the server's weight goes to 0 (IPVS gives it no new connections and
//! lets running ones finish), its capacity leaves the site's load and its VIP's `min_up`
//! count at once, and health checks go on so that `enable` knows whether it may serve.
//! Disabling the last server a VIP needs would withdraw the VIP: that takes `force`.
//! Who disabled it and when is kept, shown by status, and saved by the driver in the
//! state directory so that a restart keeps it (a reload keeps it like any verdict).

use std::net::{IpAddr, SocketAddr};

use geo_balancer::health::HealthState;
use geo_balancer::{ServerId, Time};

use super::{Effect, Site, UnknownVip, order};

/// Who took a server out, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledBy {
    pub by: String,
    pub at: Time,
}

/// A refused server command. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    UnknownVip(#[from] UnknownVip),
    #[error("`{0}` is not a real server address (write ADDR or ADDR:PORT, [IPv6]:PORT)")]
    BadAddress(String),
    #[error("VIP `{vip}` has no real server {wanted} (its real servers: {known})")]
    UnknownServer {
        vip: String,
        wanted: String,
        known: String,
    },
    #[error("{wanted} matches several real servers of VIP `{vip}` ({matches}): give the port")]
    Ambiguous {
        vip: String,
        wanted: String,
        matches: String,
    },
    #[error(
        "disabling {server} leaves VIP `{vip}` with {left} real servers up where it needs {min_up}: the VIP would be withdrawn; add --force to do that"
    )]
    WouldWithdraw {
        vip: String,
        server: String,
        left: usize,
        min_up: u32,
    },
}

/// What a server command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerChange {
    /// The server, as `ADDR:PORT`.
    pub server: String,
    /// Its health state now.
    pub state: HealthState,
    /// False when it already was in the asked state.
    pub changed: bool,
}

fn parse_server(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some((a.ip(), Some(a.port())));
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse().ok().map(|ip| (ip, None))
}

impl Site {
    /// Disables (`enable` false) or enables one real server of `vip`, named by
    /// `ADDR[:PORT]` (every service of the VIP on that address and port). Urgent
    /// effects only (a forced withdraw, an announce); call [`Site::settle`] after.
    pub fn set_server(
        &mut self,
        now: Time,
        vip: &str,
        server: &str,
        enable: bool,
        force: bool,
        by: &str,
    ) -> Result<(ServerChange, Vec<Effect>), ServerError> {
        let vid = self.vip_named(vip)?;
        let (ip, port) =
            parse_server(server).ok_or_else(|| ServerError::BadAddress(server.to_string()))?;
        let of_vip: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.servers[i].at.vip == vid)
            .collect();
        let addr_of = |i: usize| {
            let rs = self.servers[i].at.config(&self.cfg);
            SocketAddr::new(rs.address, rs.port)
        };
        let picked: Vec<usize> = of_vip
            .iter()
            .copied()
            .filter(|&i| addr_of(i).ip() == ip && port.is_none_or(|p| addr_of(i).port() == p))
            .collect();
        let mut addrs: Vec<SocketAddr> = picked.iter().map(|&i| addr_of(i)).collect();
        addrs.dedup();
        let name = match addrs.as_slice() {
            [] => {
                let mut known: Vec<String> =
                    of_vip.iter().map(|&i| addr_of(i).to_string()).collect();
                known.dedup();
                return Err(ServerError::UnknownServer {
                    vip: vip.to_string(),
                    wanted: server.to_string(),
                    known: known.join(", "),
                });
            }
            [one] => one.to_string(),
            many => {
                return Err(ServerError::Ambiguous {
                    vip: vip.to_string(),
                    wanted: server.to_string(),
                    matches: many
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        };
        let v = &self.vips[vid.index()];
        let min_up = self.cfg.vips[vid.index()].min_up;
        let going = picked
            .iter()
            .filter(|&&i| self.servers[i].health.is_up())
            .count();
        if !enable && !force && v.announcer.state() == crate::status::VipState::Announced {
            let left = v.up.saturating_sub(going);
            if going > 0 && left < min_up as usize {
                return Err(ServerError::WouldWithdraw {
                    vip: vip.to_string(),
                    server: name,
                    left,
                    min_up,
                });
            }
        }
        let mut effects = Vec::new();
        let mut changed = false;
        for &i in &picked {
            let s = &mut self.servers[i];
            let was_up = s.health.is_up();
            s.disabled = (!enable).then(|| DisabledBy {
                by: by.to_string(),
                at: now,
            });
            if let Some(t) = s.health.set_disabled(now, !enable) {
                changed = true;
                effects.extend(self.server_changed(i, was_up, &t, now));
            }
        }
        let state = self.servers[picked[0]].health.state();
        if changed {
            tracing::warn!(vip, server = %name, %state, by, "real server {} by the operator", if enable { "enabled" } else { "disabled" });
        }
        Ok((
            ServerChange {
                server: name,
                state,
                changed,
            },
            order(effects),
        ))
    }

    /// Servers the operator disabled, for the driver to save: id, who, when.
    pub fn disabled_servers(&self) -> Vec<(ServerId, DisabledBy)> {
        self.servers
            .iter()
            .filter(|s| s.health.state() == HealthState::Disabled)
            .filter_map(|s| Some((s.id.clone(), s.disabled.clone()?)))
            .collect()
    }

    /// Disables again what a previous run saved (at start). Unknown ids (a server
    /// removed from the config meanwhile) are skipped. Urgent effects only.
    pub fn restore_disabled(&mut self, now: Time, saved: &[(ServerId, DisabledBy)]) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (id, by) in saved {
            let Some(&i) = self.index.get(id) else {
                continue;
            };
            let s = &mut self.servers[i];
            let was_up = s.health.is_up();
            s.disabled = Some(by.clone());
            if let Some(t) = s.health.set_disabled(now, true) {
                effects.extend(self.server_changed(i, was_up, &t, now));
            }
        }
        order(effects)
    }
}
