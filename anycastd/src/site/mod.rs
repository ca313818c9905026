//! The site core: everything the daemon knows and decides about its site, with no I/O.
//!
//! Inputs are method calls carrying `now` (health events, IPVS stats, reconcile
//! results, peer reports, operator commands, ticks); outputs are [`Effect`]s the
//! driver (`crate::daemon`) carries out: announce, withdraw, reconcile, send reports.
//!
//! ```text
//!  HealthEvent ─> ServerHealth (rise/fall) ─┐
//!  reconcile result ─> data plane ready ────┼─> VipHealth (min_up, hold-down) ─> Announcer ─> Announce/Withdraw
//!  IPVS stats ─> ServerSample/TunnelSample ─┼─> site_load ─> SpillEngine ─> weights::plan ─> Reconcile
//!  peer report ─> PeerTable (auth, replay) ─┘                       └─> ReportScheduler ─> SendReports
//! ```
//! Withdraws are emitted before anything else in the same step, and the driver
//! carries them out first: nothing delays the withdraw of a VIP that cannot serve.

mod reload;
mod view;

use std::collections::HashMap;

use geo_balancer::exchange::schedule::LocalState;
use geo_balancer::exchange::{PeerTable, ReportRound, ReportScheduler};
use geo_balancer::health::{HealthEvent, ProbeOutcome, ServerHealth, VipHealth, VipOutput};
use geo_balancer::weights::{self, LocalServer, Plan};
use geo_balancer::{
    LocalView, ServerId, ServerSample, SiteId, SiteLoad, SpillDecision, SpillEngine, Time,
    TunnelSample, site_load,
};
use tunnel_forwarder as tf;

use crate::announce::{self, Announcer, Servable};
use crate::config::SiteConfig;
use crate::mapping::{self, MARK_BASE, ServerAt};
use crate::metrics::Counters;

/// How long after a failed reconcile the desired state is sent again.
const RECONCILE_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Announce VIP `vip` (index in the config) to every neighbor.
    Announce { vip: usize, graceful_shutdown: bool },
    /// Withdraw VIP `vip` now.
    Withdraw { vip: usize },
    /// Withdraw a prefix that is no longer in the config (after a reload).
    WithdrawPrefix(ipnet::IpNet),
    /// Put this state into the kernel.
    Reconcile(Box<tf::DesiredState>),
    /// Send these load reports to the peers.
    SendReports(ReportRound),
}

#[derive(Debug, Clone)]
struct Server {
    at: ServerAt,
    id: ServerId,
    health: ServerHealth,
    active: u64,
    inactive: u64,
    last_check: Option<String>,
    /// The second load source's last value (1.0 = full) and when it was read.
    external: Option<(f64, Time)>,
}

#[derive(Debug, Clone)]
struct VipEntry {
    health: VipHealth,
    announcer: Announcer,
}

/// Where the data plane stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataplane {
    pub ok: bool,
    pub last_reconcile: Option<Time>,
    pub last_changes: u64,
    pub last_error: Option<String>,
}

/// The state of one site. See the module doc.
pub struct Site {
    cfg: SiteConfig,
    started: Time,
    servers: Vec<Server>,
    index: HashMap<ServerId, usize>,
    /// The same servers by (VIP, service, address, port): how IPVS stats name them.
    by_dest: HashMap<(usize, usize, std::net::IpAddr, u16), usize>,
    vips: Vec<VipEntry>,
    peers: PeerTable,
    scheduler: ReportScheduler,
    spill: SpillEngine,
    decision: Option<SpillDecision>,
    plans: Vec<Vec<Option<Plan>>>,
    sent_desired: Option<tf::DesiredState>,
    dataplane: Dataplane,
    /// After a failed reconcile, when to send the desired state again.
    retry_at: Option<Time>,
    load: SiteLoad,
    tunnels: Vec<TunnelSample>,
    counters: Counters,
    /// The latest `now` seen, for freshness checks inside pure helpers.
    last_now: Time,
}

/// A refused construction: a library refused what the config maps to.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SiteError(pub String);

impl Site {
    /// A site as the config describes it: every server down until checked, every VIP
    /// withdrawn, nothing spilled. The first effect is the initial reconcile.
    pub fn new(cfg: SiteConfig, now: Time) -> Result<(Site, Vec<Effect>), SiteError> {
        let err = |e: &dyn std::fmt::Display| SiteError(e.to_string());
        let spill_cfg = mapping::spill_config(&cfg);
        spill_cfg.validate().map_err(|e| err(&e))?;
        let exchange = mapping::exchange_config(&cfg);
        let peers =
            PeerTable::new(exchange.clone(), mapping::peer_keys(&cfg)).map_err(|e| err(&e))?;
        let seed = cfg
            .site
            .name
            .bytes()
            .fold(now.as_millis(), |h, b| h.rotate_left(5) ^ u64::from(b));
        let scheduler = ReportScheduler::new(exchange, spill_cfg.clone(), peers.sites(), seed);
        let mut servers = Vec::new();
        let mut index = HashMap::new();
        let mut by_dest = HashMap::new();
        for (at, id) in mapping::servers(&cfg) {
            let rs = &cfg.vips[at.vip].services[at.service].real_servers[at.server];
            let check = &rs.check;
            index.insert(id.clone(), servers.len());
            by_dest.insert((at.vip, at.service, rs.address, rs.port), servers.len());
            servers.push(Server {
                at,
                health: ServerHealth::new(id.clone(), check.rise, check.fall, now),
                id,
                active: 0,
                inactive: 0,
                last_check: None,
                external: None,
            });
        }
        let vips = cfg
            .vips
            .iter()
            .map(|v| VipEntry {
                health: VipHealth::new(mapping::vip_config(v)),
                announcer: Announcer::new(now, cfg.site.shutdown_wait),
            })
            .collect();
        let load = site_load(&[], &[]);
        let mut site = Site {
            started: now,
            servers,
            index,
            by_dest,
            vips,
            peers,
            scheduler,
            spill: SpillEngine::new(spill_cfg),
            decision: None,
            plans: Vec::new(),
            sent_desired: None,
            dataplane: Dataplane::default(),
            retry_at: None,
            load,
            tunnels: Vec::new(),
            counters: Counters::default(),
            last_now: now,
            cfg,
        };
        if !site.cfg.site.dataplane {
            // BGP and health only: nothing to program, nothing to wait for.
            site.dataplane.ok = true;
        }
        let effects = site.refresh(now);
        Ok((site, effects))
    }

    /// The config in force.
    pub fn config(&self) -> &SiteConfig {
        &self.cfg
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts an announce or withdraw handed to the speaker.
    pub fn count_announcement(&mut self, vip: &str, kind: &str) {
        *self
            .counters
            .announcements
            .entry((vip.to_string(), kind.to_string()))
            .or_default() += 1;
    }

    /// Counts a reload, accepted or refused.
    pub fn count_reload(&mut self, ok: bool) {
        if ok {
            self.counters.reloads += 1;
        } else {
            self.counters.reload_failures += 1;
        }
    }

    /// Announce effects for every VIP currently announced (after a BGP restart).
    pub fn announced_effects(&self) -> Vec<Effect> {
        self.vips
            .iter()
            .enumerate()
            .filter_map(|(vi, v)| match v.announcer.state() {
                crate::status::VipState::Announced => Some(Effect::Announce {
                    vip: vi,
                    graceful_shutdown: false,
                }),
                crate::status::VipState::Draining => Some(Effect::Announce {
                    vip: vi,
                    graceful_shutdown: true,
                }),
                _ => None,
            })
            .collect()
    }

    /// The last spill decision.
    pub fn decision(&self) -> Option<&SpillDecision> {
        self.decision.as_ref()
    }

    /// A health check finished.
    pub fn on_health(&mut self, ev: HealthEvent) -> Vec<Effect> {
        let Some(&i) = self.index.get(&ev.server) else {
            return Vec::new(); // a checker of a server removed by a reload
        };
        let s = &mut self.servers[i];
        s.last_check = Some(match &ev.outcome {
            ProbeOutcome::Success => "ok".to_string(),
            ProbeOutcome::Failure(e) => e.to_string(),
            ProbeOutcome::HardFailure(e) => format!("{e} (hard)"),
        });
        if let Some(t) = s.health.on_probe(ev.at, &ev.outcome) {
            tracing::info!(server = %t.server, from = %t.from, to = %t.to, reason = %t.reason, "real server health changed");
            *self
                .counters
                .health_transitions
                .entry((s.id.to_string(), t.to.to_string()))
                .or_default() += 1;
            // Healthy capacity changed, so did the load: decide on spilling in the
            // same step as the announce or withdraw, not at the next IPVS stats (a
            // site whose servers just came up must not tunnel its first connections).
            self.decide(ev.at);
            return self.refresh(ev.at);
        }
        Vec::new()
    }

    /// A reading of a real server's second load source (`None`: the read failed).
    pub fn on_external_load(&mut self, now: Time, server: &ServerId, value: Option<f64>) {
        self.last_now = now;
        if let Some(&i) = self.index.get(server) {
            self.servers[i].external = value.map(|v| (v, now));
        }
    }

    /// A reconcile finished.
    pub fn on_reconciled(&mut self, now: Time, result: Result<usize, String>) -> Vec<Effect> {
        self.counters.reconciles += 1;
        match result {
            Ok(changes) => {
                self.counters.reconcile_changes += changes as u64;
                self.dataplane = Dataplane {
                    ok: true,
                    last_reconcile: Some(now),
                    last_changes: changes as u64,
                    last_error: None,
                };
            }
            Err(e) => {
                self.counters.reconcile_errors += 1;
                if self.dataplane.last_error.as_deref() != Some(e.as_str()) {
                    tracing::error!(error = %e, "data plane reconcile failed; retrying every 2s");
                }
                self.dataplane.ok = false;
                self.dataplane.last_reconcile = Some(now);
                self.dataplane.last_error = Some(e);
                self.retry_at = Some(now.plus(RECONCILE_RETRY));
            }
        }
        self.refresh(now)
    }

    /// Fresh IPVS stats: update the load, decide on spilling, adjust weights.
    pub fn on_stats(&mut self, now: Time, stats: &[tf::ServiceStats]) -> Vec<Effect> {
        for s in &mut self.servers {
            s.active = 0;
            s.inactive = 0;
        }
        let mut tunnels: HashMap<String, u64> = HashMap::new();
        // Linear in services and destinations (thousands of services are sampled every
        // second): the samples by key; our servers through `by_dest`.
        let by_key: HashMap<&tf::ServiceKey, Vec<&tf::ServiceStats>> =
            stats.iter().fold(HashMap::new(), |mut m, st| {
                m.entry(&st.key).or_default().push(st);
                m
            });
        let mut mark = MARK_BASE;
        for (vi, vip) in self.cfg.vips.iter().enumerate() {
            for (si, svc) in vip.services.iter().enumerate() {
                let keys = [
                    tf::ServiceKey::Addr {
                        protocol: match svc.protocol {
                            crate::config::Protocol::Tcp => tf::Protocol::Tcp,
                            crate::config::Protocol::Udp => tf::Protocol::Udp,
                        },
                        addr: vip.address,
                        port: svc.port,
                    },
                    tf::ServiceKey::Fwmark { mark, ipv6: false },
                ];
                mark += 1;
                for st in keys.iter().filter_map(|k| by_key.get(k)).flatten() {
                    for d in &st.dests {
                        if d.forward == Some(tf::Forward::Tunnel)
                            && let Some(p) = self
                                .cfg
                                .peers
                                .iter()
                                .find(|p| std::net::IpAddr::V4(p.tunnel_endpoint) == d.addr)
                        {
                            *tunnels.entry(p.name.clone()).or_default() += u64::from(d.active);
                            continue;
                        }
                        if let Some(&i) = self.by_dest.get(&(vi, si, d.addr, d.port)) {
                            let s = &mut self.servers[i];
                            s.active += u64::from(d.active);
                            s.inactive += u64::from(d.inactive);
                        }
                    }
                }
            }
        }
        self.tunnels = self
            .cfg
            .peers
            .iter()
            .map(|p| TunnelSample {
                peer: SiteId::new(p.name.clone()),
                active_conns: tunnels.get(&p.name).copied().unwrap_or(0),
            })
            .collect();
        self.decide(now);
        self.refresh(now)
    }

    /// A load report arrived from a peer. `Err` is the HTTP status and the reason it
    /// was refused (and nothing changed but a counter).
    pub fn on_report(
        &mut self,
        now: Time,
        site_header: Option<&str>,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> (Result<(), (u16, String)>, Vec<Effect>) {
        match self.peers.receive(now, site_header, signature_header, body) {
            Ok(acc) => {
                *self
                    .counters
                    .accepted_reports
                    .entry(acc.sender.to_string())
                    .or_default() += 1;
                let effects = if acc.changed {
                    self.decide(now);
                    self.refresh(now)
                } else {
                    Vec::new()
                };
                (Ok(()), effects)
            }
            Err(rej) => {
                let who = site_header
                    .filter(|h| self.cfg.peers.iter().any(|p| p.name == *h))
                    .unwrap_or("unknown")
                    .to_string();
                *self
                    .counters
                    .rejected_reports
                    .entry((who, rej.kind().as_str().to_string()))
                    .or_default() += 1;
                (Err((rej.http_status(), rej.to_string())), Vec::new())
            }
        }
    }

    /// Time passed: hold-downs, drain timers, report schedule, stale peers.
    pub fn on_tick(&mut self, now: Time) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            self.sent_desired = None;
        }
        for vi in 0..self.vips.len() {
            let outs = self.vips[vi].health.timer(now);
            effects.extend(self.vip_outputs(now, vi, outs));
            let outs = self.vips[vi].announcer.timer_expired(now);
            effects.extend(announce_effects(vi, outs));
        }
        if self.decision.as_ref().is_some_and(|d| {
            d.spilling()
                && self
                    .peers
                    .views(now)
                    .iter()
                    .any(|v| v.facts.is_none() && d.spilling_to().contains(&v.site))
        }) {
            // A peer we spill to went stale: stop at once, not at the next stats.
            self.decide(now);
        }
        effects.extend(self.refresh(now));
        order(effects)
    }

    /// Drain one VIP or all. `Err` names an unknown VIP.
    pub fn drain(
        &mut self,
        now: Time,
        vip: Option<&str>,
    ) -> Result<(Vec<String>, Vec<Effect>), String> {
        self.each_vip(vip, |a| a.drain(now))
    }

    /// Undo a drain.
    pub fn undrain(
        &mut self,
        now: Time,
        vip: Option<&str>,
    ) -> Result<(Vec<String>, Vec<Effect>), String> {
        self.each_vip(vip, |a| a.undrain(now))
    }

    /// Withdraw everything still announced (the end of a graceful shutdown).
    pub fn withdraw_all(&mut self, now: Time) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (vi, v) in self.vips.iter_mut().enumerate() {
            effects.extend(announce_effects(vi, v.announcer.stop(now)));
        }
        effects
    }

    fn each_vip(
        &mut self,
        vip: Option<&str>,
        mut f: impl FnMut(&mut Announcer) -> Vec<announce::Output>,
    ) -> Result<(Vec<String>, Vec<Effect>), String> {
        let picked: Vec<usize> = match vip {
            None => (0..self.vips.len()).collect(),
            Some(name) => match self.cfg.vips.iter().position(|v| v.name == name) {
                Some(i) => vec![i],
                None => {
                    let known: Vec<&str> = self.cfg.vips.iter().map(|v| v.name.as_str()).collect();
                    return Err(format!(
                        "no VIP named `{name}` (known: {})",
                        known.join(", ")
                    ));
                }
            },
        };
        let mut effects = Vec::new();
        for &i in &picked {
            effects.extend(announce_effects(i, f(&mut self.vips[i].announcer)));
        }
        let names = picked
            .iter()
            .map(|&i| self.cfg.vips[i].name.clone())
            .collect();
        Ok((names, order(effects)))
    }

    fn decide(&mut self, now: Time) {
        self.last_now = now;
        let spill_allowed = self.cfg.spill.enabled;
        self.load = site_load(&self.samples(), &self.tunnels);
        let local = LocalView {
            load: self.load.director,
            capacity: self.load.healthy_capacity,
        };
        let views = if spill_allowed {
            self.peers.views(now)
        } else {
            Vec::new()
        };
        let d = self.spill.decide(now, local, &views);
        for ev in &d.events {
            tracing::info!(event = ?ev, "spill decision changed");
        }
        self.decision = Some(d);
    }

    fn samples(&self) -> Vec<ServerSample> {
        self.servers
            .iter()
            .map(|s| ServerSample {
                server: s.id.clone(),
                up: s.health.is_up(),
                capacity: self.rs(s.at).capacity,
                active_conns: s.active,
                inactive_conns: s.inactive,
                external: s.external.and_then(|(v, at)| {
                    // Fresh for three polls; then connections count again.
                    let fresh = self.rs(s.at).load_poll().0 * 3;
                    (self.last_now.since(at) <= fresh).then_some(v)
                }),
            })
            .collect()
    }

    fn rs(&self, at: ServerAt) -> &crate::config::RealServer {
        &self.cfg.vips[at.vip].services[at.service].real_servers[at.server]
    }

    fn vip_outputs(&mut self, now: Time, vi: usize, outs: Vec<VipOutput>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for o in outs {
            let servable = match o {
                VipOutput::Announce { reason } => Servable { ok: true, reason },
                VipOutput::Withdraw { reason } => Servable { ok: false, reason },
                VipOutput::ArmTimer(_) => continue, // ticks poll the timer
            };
            tracing::info!(vip = %self.cfg.vips[vi].name, servable = servable.ok, reason = %servable.reason, "VIP servability changed");
            effects.extend(announce_effects(
                vi,
                self.vips[vi].announcer.set_servable(now, servable),
            ));
        }
        effects
    }

    /// Recomputes what follows from the current inputs: servability, weights, the
    /// desired data plane, reports due.
    fn refresh(&mut self, now: Time) -> Vec<Effect> {
        self.last_now = now;
        let mut effects = Vec::new();
        // One pass over the servers (not one per VIP): this runs on every tick.
        let mut up_per_vip = vec![0usize; self.vips.len()];
        let mut local: Vec<Vec<Vec<LocalServer>>> = self
            .cfg
            .vips
            .iter()
            .map(|v| vec![Vec::new(); v.services.len()])
            .collect();
        for s in &self.servers {
            let up = s.health.is_up();
            up_per_vip[s.at.vip] += usize::from(up);
            local[s.at.vip][s.at.service].push(LocalServer {
                server: s.id.clone(),
                up,
                weight: self.rs(s.at).weight,
            });
        }
        for (vi, up) in up_per_vip.into_iter().enumerate() {
            let outs = self.vips[vi].health.update(now, up, self.dataplane.ok);
            effects.extend(self.vip_outputs(now, vi, outs));
        }
        self.load = site_load(&self.samples(), &self.tunnels);
        let shares = self
            .decision
            .as_ref()
            .map(|d| d.shares())
            .unwrap_or_default();
        let peer_ids: Vec<SiteId> = self
            .cfg
            .peers
            .iter()
            .map(|p| SiteId::new(p.name.clone()))
            .collect();
        self.plans = local
            .iter()
            .map(|services| {
                services
                    .iter()
                    .map(|servers| Some(weights::plan(servers, &peer_ids, &shares)))
                    .collect()
            })
            .collect();
        let desired = mapping::desired_state(&self.cfg, &self.plans);
        if self.cfg.site.dataplane && self.sent_desired.as_ref() != Some(&desired) {
            self.sent_desired = Some(desired.clone());
            effects.push(Effect::Reconcile(Box::new(desired)));
        }
        let state = LocalState {
            load: self.load,
            spilling_to: self
                .decision
                .as_ref()
                .map(|d| d.spilling_to())
                .unwrap_or_default(),
            spill_share: self.decision.as_ref().map_or(0.0, |d| d.total_share),
        };
        if let Some(round) = self.scheduler.poll(now, &state)
            && !round.reports.is_empty()
        {
            effects.push(Effect::SendReports(round));
        }
        order(effects)
    }

    /// Forces the next refresh to send the desired state again (periodic resync).
    pub fn resync(&mut self, now: Time) -> Vec<Effect> {
        self.sent_desired = None;
        self.refresh(now)
    }
}

fn announce_effects(vip: usize, outs: Vec<announce::Output>) -> Vec<Effect> {
    outs.into_iter()
        .filter_map(|o| match o {
            announce::Output::Announce { graceful_shutdown } => Some(Effect::Announce {
                vip,
                graceful_shutdown,
            }),
            announce::Output::Withdraw => Some(Effect::Withdraw { vip }),
            announce::Output::ArmTimer(_) => None, // ticks poll the timer
        })
        .collect()
}

/// Withdraws first: nothing may delay them.
fn order(mut effects: Vec<Effect>) -> Vec<Effect> {
    effects.sort_by_key(|e| !matches!(e, Effect::Withdraw { .. } | Effect::WithdrawPrefix(_)));
    effects
}

#[cfg(test)]
mod tests;
