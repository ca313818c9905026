//! The site core: everything the daemon knows and decides about its site, with no I/O.
//!
//! Driven by changes and by the timers it asks for, never by a periodic recompute:
//!
//! - an input method (`on_health`, `on_stats`, `on_report`, `on_reconciled`,
//!   `on_applied`, `on_timer`, operator commands) updates only what depends on it and
//!   returns the *urgent* effects at once: announces and withdraws;
//! - [`Site::settle`] then does the deferred work the inputs marked: the load and the
//!   spill decision, the weights of the services that changed (as targeted kernel
//!   requests, [`Effect::Apply`]), the load reports due;
//! - [`Site::next_deadline`] says when [`Site::on_timer`] must be called (hold-down
//!   end, drain end, reconcile retry, a peer turning stale, a report due).
//!
//! ```text
//!  HealthEvent ─> ServerHealth ─(transition)─> VipHealth of that VIP ─> Announcer ─> Withdraw/Announce  (urgent)
//!                                  └─ marks: its service's weights, the load
//!  IPVS stats ─> per-server counts ─ marks: the load
//!  peer report ─> PeerTable (auth, replay) ─ marks: the spill decision
//!  settle: load ─> SpillEngine ─(shares changed)─> the split's share filters, and weights::plan
//!          │                     of the services it does not carry (every one without it) ─> Apply(..)
//!          └─> ReportScheduler ─> SendReports
//! ```
//! The driver writes urgent effects before it calls `settle`: nothing delays the
//! withdraw of a VIP that cannot serve, not even the data-plane bookkeeping.
//!
//! Each change it makes (a VIP announced, draining or withdrawn, a real server down or
//! back, a peer lost or back, spill started or stopped) is also recorded as a
//! notification event (`events.rs`), which the driver takes after the urgent effects
//! with [`Site::take_events`] (decision 0011).

mod events;
mod guard;
mod reload;
mod servers;
mod view;

pub use servers::{DisabledBy, ServerChange, ServerError};

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::Range;

use geo_balancer::exchange::schedule::LocalState;
use geo_balancer::exchange::{PeerTable, Reject, ReportScheduler, directors};
use geo_balancer::health::{
    HealthEvent, HealthState, ProbeOutcome, ProbeSource, ServerHealth, VipHealth, VipOutput,
};
use geo_balancer::weights::{self, LocalServer, Plan};
use geo_balancer::{
    LocalView, ServerId, ServerSample, SiteId, SiteLoad, SpillDecision, SpillEngine, Time,
    TunnelSample, site_load,
};
use tunnel_forwarder as tf;

use crate::announce::{self, Announcer, Servable};
use crate::config::SiteConfig;
use crate::dataplane::DataplaneError;
use crate::layout::{Layout, SvcId, VipId};
use crate::mapping::{self, ServerAt};
use crate::metrics::Counters;

/// How long after a failed reconcile the desired state is sent again.
const RECONCILE_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Announce the VIP to every neighbor.
    Announce { vip: VipId, graceful_shutdown: bool },
    /// Withdraw the VIP now.
    Withdraw { vip: VipId },
    /// Withdraw a prefix that is no longer in the config (after a reload).
    WithdrawPrefix(ipnet::IpNet),
    /// Put this whole state into the kernel: read, diff, apply.
    Reconcile(Box<tf::DesiredState>),
    /// Apply these requests as they are: weight changes of the services they name.
    Apply(Vec<tf::Request>),
    /// Send these load reports to the peers.
    SendReports(geo_balancer::exchange::ReportRound),
}

impl Effect {
    /// Announces and withdraws: what the driver writes before anything else.
    pub fn is_urgent(&self) -> bool {
        matches!(
            self,
            Effect::Announce { .. } | Effect::Withdraw { .. } | Effect::WithdrawPrefix(_)
        )
    }
}

#[derive(Debug, Clone)]
struct Server {
    at: ServerAt,
    id: ServerId,
    health: ServerHealth,
    active: u64,
    inactive: u64,
    last_check: Option<ProbeOutcome>,
    /// The second load source's last value (1.0 = full) and when it was read.
    external: Option<(f64, Time)>,
    /// Who disabled it and when, while it is disabled.
    disabled: Option<servers::DisabledBy>,
    /// It went down after being up (failed checks, a reset), and has not been up
    /// since: while down it is out of IPVS so that its connections are expired.
    failed: bool,
}

#[derive(Debug, Clone)]
struct VipEntry {
    health: VipHealth,
    announcer: Announcer,
    /// Real servers of this VIP that are up.
    up: usize,
    /// When `health` asked to be woken (end of a hold-down).
    hold_timer: Option<Time>,
    /// When `announcer` asked to be woken (end of a drain).
    drain_timer: Option<Time>,
    /// The last verdict of `health` (none yet at start).
    verdict: Option<Servable>,
    /// The last-announcer guard holds it announced (`guard.rs`).
    held: bool,
    /// Its address as text, as reports name it (`vips_down`).
    text: String,
}

/// Where the data plane stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataplane {
    pub ok: bool,
    pub last_reconcile: Option<Time>,
    pub last_changes: u64,
    pub last_error: Option<String>,
}

/// What inputs marked for [`Site::settle`].
#[derive(Debug, Clone, Default)]
struct Dirty {
    /// Services whose local servers changed health.
    services: BTreeSet<SvcId>,
    /// Recompute the site load (then decide).
    load: bool,
    /// Re-run the spill rule.
    decide: bool,
    /// Offer the report scheduler the current state.
    report: bool,
    /// Send the whole desired state (a targeted update cannot say it).
    full: bool,
    /// The peers changed: re-check the last-announcer guard.
    guard: bool,
}

/// The state of one site. See the module doc.
pub struct Site {
    cfg: SiteConfig,
    layout: Layout,
    started: Time,
    servers: Vec<Server>,
    index: HashMap<ServerId, usize>,
    /// The servers of each service, by [`SvcId`] (they are contiguous, config order).
    of_service: Vec<Range<usize>>,
    /// The same servers by (service, address, port): how IPVS stats name them.
    by_dest: HashMap<(SvcId, IpAddr, u16), usize>,
    /// Peer sites by their tunnel endpoint: how IPVS stats name them.
    peer_by_addr: HashMap<IpAddr, usize>,
    peer_ids: Vec<SiteId>,
    vips: Vec<VipEntry>,
    peers: PeerTable,
    scheduler: ReportScheduler,
    spill: SpillEngine,
    decision: Option<SpillDecision>,
    /// The weight plan of each service, by [`SvcId`], as last put into `desired`.
    plans: Vec<Option<Plan>>,
    /// The services the spill split does not carry (not splittable, no capacity up,
    /// or no split): they place the spill share through their own peer destinations,
    /// so a spill step replans these and no other. Kept by [`Site::track_share`].
    own_share: BTreeSet<SvcId>,
    /// The data plane as last sent to the kernel, whole or by targeted updates.
    desired: tf::DesiredState,
    dataplane: Dataplane,
    /// Weights changed while the data plane was not in place: send it whole once it is.
    behind: bool,
    /// After a failed reconcile, when to send the desired state again.
    retry_at: Option<Time>,
    /// The earliest VIP timer (hold-down or drain end); may be early, never late.
    vip_timer: Option<Time>,
    /// The site's load: this director's figures plus its siblings' (decision 0015).
    load: SiteLoad,
    /// This director's own figures (what its reports carry).
    own_load: SiteLoad,
    /// The digest of the site-wide config, as in our reports.
    digest: String,
    tunnels: Vec<TunnelSample>,
    counters: Counters,
    dirty: Dirty,
    /// Notification events until the driver takes them, and what they depend on.
    notes: events::Notes,
}

/// A refused construction: a library refused what the config maps to.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("spill settings: {0}")]
    Spill(#[source] geo_balancer::ConfigError),
    #[error("load exchange: {0}")]
    Exchange(#[source] geo_balancer::ConfigError),
}

/// An operator named a VIP the config does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no VIP named `{name}` (known: {known})")]
pub struct UnknownVip {
    pub name: String,
    /// The VIPs there are, comma-separated.
    pub known: String,
}

impl Site {
    /// A site as the config describes it: every server down until checked, every VIP
    /// withdrawn, nothing spilled. The first effect is the initial reconcile.
    pub fn new(cfg: SiteConfig, now: Time) -> Result<(Site, Vec<Effect>), SiteError> {
        let mut site = Site::build(cfg, now)?;
        if !site.cfg.site.dataplane {
            // BGP and health only: nothing to program, nothing to wait for.
            site.dataplane.ok = true;
        }
        site.dirty.full = true;
        let effects = site.settle(now);
        Ok((site, effects))
    }

    /// The state for `cfg` with nothing carried over and nothing sent.
    fn build(cfg: SiteConfig, now: Time) -> Result<Site, SiteError> {
        let spill_cfg = mapping::spill_config(&cfg);
        spill_cfg.validate().map_err(SiteError::Spill)?;
        let exchange = mapping::exchange_config(&cfg);
        let mut peers = PeerTable::new(exchange.clone(), mapping::peer_keys(&cfg))
            .map_err(SiteError::Exchange)?;
        for p in &cfg.peers {
            if p.next_key.is_some() {
                peers
                    .set_next_key(&SiteId::new(p.name.clone()), p.next_key.clone())
                    .map_err(SiteError::Exchange)?;
            }
        }
        let seed = cfg
            .site
            .name
            .bytes()
            .fold(now.as_millis(), |h, b| h.rotate_left(5) ^ u64::from(b));
        let digest = mapping::config_digest(&cfg);
        let mut receivers = peers.sites();
        if !cfg.directors.others.is_empty() {
            let names = cfg
                .directors
                .others
                .iter()
                .map(|d| d.name.clone())
                .collect();
            peers
                .set_siblings(
                    &cfg.site.director,
                    names,
                    cfg.directors.key.clone(),
                    digest.clone(),
                )
                .map_err(SiteError::Exchange)?;
            // Our own site: the other directors.
            receivers.push(SiteId::new(cfg.site.name.clone()));
        }
        let scheduler = ReportScheduler::new(exchange, spill_cfg.clone(), receivers, seed)
            .with_identity(cfg.site.director.clone(), digest.clone());
        let layout = Layout::new(&cfg);
        let mut servers = Vec::new();
        let mut index = HashMap::new();
        let mut by_dest = HashMap::new();
        let mut of_service = vec![0..0; layout.services().len()];
        for (at, id) in mapping::servers(&cfg) {
            let rs = at.config(&cfg);
            let n = servers.len();
            index.insert(id.clone(), n);
            by_dest.insert((at.svc, rs.address, rs.port), n);
            let r = &mut of_service[at.svc.index()];
            *r = if r.start == r.end {
                n..n + 1
            } else {
                r.start..n + 1
            };
            servers.push(Server {
                at,
                health: ServerHealth::new(id.clone(), rs.check.rise, rs.check.fall, now),
                id,
                active: 0,
                inactive: 0,
                last_check: None,
                external: None,
                disabled: None,
                failed: false,
            });
        }
        let vips = cfg
            .vips
            .iter()
            .map(|v| VipEntry {
                health: VipHealth::new(mapping::vip_config(v)),
                announcer: Announcer::new(now, cfg.site.shutdown_wait),
                up: 0,
                hold_timer: None,
                drain_timer: None,
                verdict: None,
                held: false,
                text: v.address.to_string(),
            })
            .collect();
        // Both tunnel endpoints of a peer (IPIP and ip6ip6) name it.
        let peer_by_addr = cfg
            .peers
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                let v6 = p.tunnel_endpoint_v6.map(|a| (IpAddr::V6(a), i));
                std::iter::once((IpAddr::V4(p.tunnel_endpoint), i)).chain(v6)
            })
            .collect();
        let peer_ids = cfg
            .peers
            .iter()
            .map(|p| SiteId::new(p.name.clone()))
            .collect();
        let plans = vec![None; layout.services().len()];
        let desired = mapping::desired_state(&cfg, &layout, &plans);
        let mut site = Site {
            started: now,
            layout,
            servers,
            index,
            of_service,
            by_dest,
            peer_by_addr,
            peer_ids,
            vips,
            peers,
            scheduler,
            spill: SpillEngine::new(spill_cfg),
            decision: None,
            plans,
            own_share: BTreeSet::new(),
            desired,
            dataplane: Dataplane::default(),
            behind: false,
            retry_at: None,
            vip_timer: None,
            load: site_load(&[], &[]),
            own_load: site_load(&[], &[]),
            digest,
            tunnels: Vec::new(),
            counters: Counters::default(),
            notes: events::Notes::default(),
            // The first report goes out at start; the spill rule first runs on the
            // first input (a decision now would only start its ramp at zero).
            dirty: Dirty {
                report: true,
                ..Dirty::default()
            },
            cfg,
        };
        site.track_all_shares();
        Ok(site)
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
    pub fn count_announcement(&mut self, vip: VipId, kind: &'static str) {
        let name = self.cfg.vips[vip.index()].name.clone();
        *self
            .counters
            .announcements
            .entry((name, kind.to_string()))
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

    /// Each VIP's announcement state, in config order.
    pub fn vip_states(&self) -> Vec<crate::status::VipState> {
        self.vips.iter().map(|v| v.announcer.state()).collect()
    }

    /// Announce effects for every VIP currently announced (after a BGP restart).
    pub fn announced_effects(&self) -> Vec<Effect> {
        self.layout
            .vips()
            .filter_map(|vip| match self.vips[vip.index()].announcer.state() {
                crate::status::VipState::Announced => Some(Effect::Announce {
                    vip,
                    graceful_shutdown: false,
                }),
                crate::status::VipState::Draining => Some(Effect::Announce {
                    vip,
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

    /// A health check finished. Urgent effects only; call [`Site::settle`] after.
    pub fn on_health(&mut self, ev: HealthEvent) -> Vec<Effect> {
        let Some(&i) = self.index.get(&ev.server) else {
            return Vec::new(); // a checker of a server removed by a reload
        };
        let s = &mut self.servers[i];
        let was_up = s.health.is_up();
        let transition = match ev.source {
            ProbeSource::Echo => s.health.on_echo(ev.at, &ev.outcome),
            ProbeSource::Periodic | ProbeSource::FastPath => s.health.on_probe(ev.at, &ev.outcome),
        };
        s.last_check = Some(ev.outcome);
        let Some(t) = transition else {
            return Vec::new();
        };
        self.server_changed(i, was_up, &t, ev.at)
    }

    /// Server `i` went through transition `t`: its VIP's up count, its servability
    /// (the urgent effects, returned), then the log line and counter; its service's
    /// weights and the load are marked for the settle.
    fn server_changed(
        &mut self,
        i: usize,
        was_up: bool,
        t: &geo_balancer::health::Transition,
        now: Time,
    ) -> Vec<Effect> {
        let (at, is_up) = (self.servers[i].at, self.servers[i].health.is_up());
        // A server that fails after being up leaves IPVS (its connections expire);
        // one disabled or never checked stays at weight 0 (its connections finish).
        match (t.from, t.to) {
            (HealthState::Up, HealthState::Down) => self.servers[i].failed = true,
            (_, HealthState::Up) => self.servers[i].failed = false,
            _ => {}
        }
        let v = &mut self.vips[at.vip.index()];
        match (was_up, is_up) {
            (false, true) => v.up += 1,
            (true, false) => v.up -= 1,
            _ => {}
        }
        // The withdraw (or announce) first; the log line and the counter after it.
        let mark = self.events_mark();
        let effects = self.servability(now, at.vip);
        tracing::info!(server = %t.server, from = %t.from, to = %t.to, reason = %t.reason, "real server health changed");
        *self
            .counters
            .health_transitions
            .entry((t.server.to_string(), t.to.to_string()))
            .or_default() += 1;
        self.note_server(mark, t);
        self.track_share(at.svc);
        // Healthy capacity changed, so did the load: the spill decision follows in
        // the same settle as the weights (a site whose servers just came up must not
        // tunnel its first connections).
        self.dirty.services.insert(at.svc);
        self.dirty.load = true;
        effects
    }

    /// A reading of a real server's second load source (`None`: the read failed).
    pub fn on_external_load(&mut self, now: Time, server: &ServerId, value: Option<f64>) {
        if let Some(&i) = self.index.get(server) {
            self.servers[i].external = value.map(|v| (v, now));
            self.dirty.load = true;
        }
    }

    /// A whole reconcile finished.
    pub fn on_reconciled(
        &mut self,
        now: Time,
        result: Result<usize, DataplaneError>,
    ) -> Vec<Effect> {
        self.counters.reconciles += 1;
        let was_ok = self.dataplane.ok;
        match result {
            Ok(changes) => {
                self.counters.reconcile_changes += changes as u64;
                self.dataplane = Dataplane {
                    ok: true,
                    last_reconcile: Some(now),
                    last_changes: changes as u64,
                    last_error: None,
                };
                if std::mem::take(&mut self.behind) {
                    self.dirty.full = true;
                }
            }
            Err(e) => {
                self.counters.reconcile_errors += 1;
                let e = e.to_string();
                if self.dataplane.last_error.as_deref() != Some(e.as_str()) {
                    tracing::error!(error = %e, "data plane reconcile failed; retrying every 2s");
                }
                self.dataplane.ok = false;
                self.dataplane.last_reconcile = Some(now);
                self.dataplane.last_error = Some(e);
                self.retry_at = Some(now.plus(RECONCILE_RETRY));
            }
        }
        if was_ok == self.dataplane.ok {
            return Vec::new();
        }
        let mut effects = Vec::new();
        for vip in self.layout.vips() {
            effects.extend(self.servability(now, vip));
        }
        order(effects)
    }

    /// A targeted apply finished. An error means the kernel is not what we think: a
    /// whole reconcile follows at once.
    pub fn on_applied(&mut self, _now: Time, result: Result<usize, DataplaneError>) {
        match result {
            Ok(n) => self.counters.reconcile_changes += n as u64,
            Err(e) => {
                self.counters.reconcile_errors += 1;
                tracing::warn!(error = %e, "weight update failed; reconciling the whole data plane");
                self.dirty.full = true;
            }
        }
    }

    /// Fresh IPVS stats: connection counts per real server and per peer tunnel.
    pub fn on_stats(&mut self, _now: Time, stats: &[tf::ServiceStats]) {
        for s in &mut self.servers {
            s.active = 0;
            s.inactive = 0;
        }
        let mut tunnelled = vec![0u64; self.cfg.peers.len()];
        for st in stats {
            if self
                .desired
                .split
                .as_ref()
                .is_some_and(|s| s.key() == st.key || s.key6() == st.key)
            {
                for d in &st.dests {
                    if let Some(&p) = self.peer_by_addr.get(&d.addr) {
                        tunnelled[p] += u64::from(d.active);
                    }
                }
                continue;
            }
            let Some(svc) = self.layout.find(&st.key) else {
                continue; // not ours
            };
            for d in &st.dests {
                if d.forward == Some(tf::Forward::Tunnel)
                    && let Some(&p) = self.peer_by_addr.get(&d.addr)
                {
                    tunnelled[p] += u64::from(d.active);
                } else if let Some(&i) = self.by_dest.get(&(svc, d.addr, d.port)) {
                    let s = &mut self.servers[i];
                    s.active += u64::from(d.active);
                    s.inactive += u64::from(d.inactive);
                }
            }
        }
        self.tunnels = self
            .peer_ids
            .iter()
            .zip(tunnelled)
            .map(|(peer, active_conns)| TunnelSample {
                peer: peer.clone(),
                active_conns,
            })
            .collect();
        self.dirty.load = true;
    }

    /// A load report arrived from a peer. `Err`: it was refused, and nothing changed
    /// but a counter.
    pub fn on_report(
        &mut self,
        now: Time,
        site_header: Option<&str>,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<(), Reject> {
        match self.peers.receive(now, site_header, signature_header, body) {
            Ok(acc) => {
                *self
                    .counters
                    .accepted_reports
                    .entry(acc.sender.to_string())
                    .or_default() += 1;
                self.dirty.decide |= acc.changed;
                // A sibling's figures are part of the site load.
                self.dirty.load |= acc.sender.as_str() == self.cfg.site.name;
                self.dirty.guard = true;
                Ok(())
            }
            Err(rej) => {
                let who = site_header
                    .filter(|h| {
                        *h == self.cfg.site.name || self.cfg.peers.iter().any(|p| p.name == *h)
                    })
                    .unwrap_or("unknown")
                    .to_string();
                *self
                    .counters
                    .rejected_reports
                    .entry((who, rej.kind().as_str().to_string()))
                    .or_default() += 1;
                Err(rej)
            }
        }
    }

    /// When [`Site::on_timer`] must be called next, if ever.
    pub fn next_deadline(&self, now: Time) -> Option<Time> {
        [
            self.vip_timer,
            self.retry_at,
            self.scheduler.next_wakeup(),
            self.peers.next_expiry(now),
            self.guard_deadline(now),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A deadline from [`Site::next_deadline`] came: hold-downs and drains that end,
    /// the reconcile retry, peers turning stale, reports due. Urgent effects only.
    pub fn on_timer(&mut self, now: Time) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            self.dirty.full = true;
        }
        if self.vip_timer.is_some_and(|t| now >= t) {
            self.vip_timer = None;
            for vip in self.layout.vips() {
                let v = &mut self.vips[vip.index()];
                if v.hold_timer.is_some_and(|t| now >= t) {
                    v.hold_timer = None;
                    let outs = v.health.timer(now);
                    effects.extend(self.vip_outputs(now, vip, outs));
                }
                let v = &mut self.vips[vip.index()];
                if v.drain_timer.is_some_and(|t| now >= t) {
                    v.drain_timer = None;
                    let outs = v.announcer.timer_expired(now);
                    effects.extend(self.announcer_outputs(now, vip, outs));
                }
                let v = &self.vips[vip.index()];
                for t in [v.hold_timer, v.drain_timer].into_iter().flatten() {
                    self.arm_vip_timer(t);
                }
            }
        }
        // A peer we spill to may have gone stale: the rule stops it at once (and the
        // guard lets go of a VIP it held). A sibling gone stale leaves the site load.
        self.dirty.decide = true;
        self.dirty.load |= !self.cfg.directors.others.is_empty();
        self.dirty.report = true;
        self.dirty.guard = true;
        order(effects)
    }

    /// The deferred work the inputs marked: load, spill decision, the weights of the
    /// services that changed, reports due. Call after carrying out urgent effects.
    pub fn settle(&mut self, now: Time) -> Vec<Effect> {
        let mut effects = if std::mem::take(&mut self.dirty.guard) {
            order(self.recheck_guard(now))
        } else {
            Vec::new()
        };
        let mut dirty = std::mem::take(&mut self.dirty);
        if dirty.load {
            self.own_load = site_load(&self.samples(now), &self.tunnels);
            self.load = directors::site_load(&self.own_load, &self.peers.sibling_reports(now));
            dirty.decide = true;
            dirty.report = true;
        }
        let mut all_services = dirty.full;
        let mut requests = Vec::new();
        if dirty.decide {
            let before = self.decision.as_ref().map(SpillDecision::shares);
            self.decide(now);
            let after = self.decision.as_ref().map(SpillDecision::shares);
            if before != after {
                dirty.report = true;
                match self.resplit(&after.unwrap_or_default(), &mut dirty) {
                    Some(r) => requests = r,
                    None => all_services = true,
                }
            }
        }
        if all_services {
            requests.extend(self.replan((0..self.plans.len() as u32).map(SvcId), &mut dirty));
        } else {
            let services = std::mem::take(&mut dirty.services);
            requests.extend(self.replan(services.into_iter(), &mut dirty));
        }
        if self.cfg.site.dataplane {
            if dirty.full {
                self.behind = false;
                effects.push(Effect::Reconcile(Box::new(self.desired.clone())));
            } else if !requests.is_empty() {
                if self.dataplane.ok {
                    effects.push(Effect::Apply(requests));
                } else {
                    self.behind = true;
                }
            }
        }
        if dirty.report {
            let state = LocalState {
                load: self.own_load,
                spilling_to: self
                    .decision
                    .as_ref()
                    .map(|d| d.spilling_to())
                    .unwrap_or_default(),
                spill_share: self.decision.as_ref().map_or(0.0, |d| d.total_share),
                vips_down: self.vips_down(),
            };
            if let Some(round) = self.scheduler.poll(now, &state)
                && !round.reports.is_empty()
            {
                effects.push(Effect::SendReports(round));
            }
        }
        effects
    }

    /// New weight plans for `services`; updates `desired` in place and returns the
    /// kernel requests for what changed (marks `full` where a targeted update cannot
    /// say it).
    fn replan(
        &mut self,
        services: impl Iterator<Item = SvcId>,
        dirty: &mut Dirty,
    ) -> Vec<tf::Request> {
        let shares = self
            .decision
            .as_ref()
            .map(SpillDecision::shares)
            .unwrap_or_default();
        let mut requests = Vec::new();
        for svc in services {
            let local = self.local_servers(svc);
            debug_assert_eq!(self.split_carries(svc), !self.own_share.contains(&svc));
            let shares = if self.own_share.contains(&svc) {
                &shares[..]
            } else {
                &[][..]
            };
            let plan = weights::plan(&local, &self.peer_ids, shares);
            if self.plans[svc.index()].as_ref() == Some(&plan) {
                continue;
            }
            let slot = self.layout.service(svc);
            let next = mapping::vip_service(&self.cfg, slot, Some(&plan));
            let vip = &mut self.desired.vips[slot.vip.index()];
            let held = &mut vip.services[slot.port_index];
            match held.weight_changes(vip.addr, &next) {
                Some(r) => requests.extend(r),
                None => dirty.full = true,
            }
            *held = next;
            self.plans[svc.index()] = Some(plan);
        }
        requests
    }

    fn local_servers(&self, svc: SvcId) -> Vec<LocalServer> {
        self.servers[self.of_service[svc.index()].clone()]
            .iter()
            .map(|s| {
                // Held by the last-announcer guard: fail-open, every enabled server in.
                let held = self.held(svc) && s.disabled.is_none();
                LocalServer {
                    server: s.id.clone(),
                    up: s.health.is_up() || held,
                    weight: s.at.config(&self.cfg).weight,
                    failed: s.failed && s.health.state() == HealthState::Down && !held,
                }
            })
            .collect()
    }

    /// Whether the spill split carries `svc`'s share (then its own peer destinations
    /// stay at 0): split on, a TCP or UDP service of an IPv4 VIP (or of an IPv6 one
    /// when the peers have IPv6 tunnel endpoints), and some local capacity up (a
    /// service with none places everything through its own peer destinations).
    fn split_carries(&self, svc: SvcId) -> bool {
        self.desired
            .split
            .as_ref()
            .is_some_and(|s| self.layout.service(svc).splittable(s))
            && self.servers[self.of_service[svc.index()].clone()]
                .iter()
                .any(|s| s.health.is_up() && s.at.config(&self.cfg).weight > 0)
    }

    /// Puts `svc` in or out of `own_share` after its servers' health changed.
    fn track_share(&mut self, svc: SvcId) {
        if self.split_carries(svc) {
            self.own_share.remove(&svc);
        } else {
            self.own_share.insert(svc);
        }
    }

    /// `own_share` from scratch (a new state, or health carried over by a reload).
    fn track_all_shares(&mut self) {
        for svc in (0..self.plans.len() as u32).map(SvcId) {
            self.track_share(svc);
        }
    }

    /// A spill step under the split: the split's requests, and the services that
    /// still place the share themselves marked for a replan. `None` without a split
    /// (every service's weights change) or when a targeted change cannot say it.
    fn resplit(&mut self, shares: &[(SiteId, f64)], dirty: &mut Dirty) -> Option<Vec<tf::Request>> {
        let held = self.desired.split.as_ref()?;
        let next = mapping::split(&self.cfg, shares)?;
        let requests = held.changes(&next);
        self.desired.split = Some(next);
        dirty.services.extend(self.own_share.iter().copied());
        if requests.is_none() {
            dirty.full = true;
        }
        Some(requests.unwrap_or_default())
    }

    /// Drain one VIP or all.
    pub fn drain(
        &mut self,
        now: Time,
        vip: Option<&str>,
    ) -> Result<(Vec<String>, Vec<Effect>), UnknownVip> {
        self.each_vip(now, vip, |a| a.drain(now))
    }

    /// Undo a drain.
    pub fn undrain(
        &mut self,
        now: Time,
        vip: Option<&str>,
    ) -> Result<(Vec<String>, Vec<Effect>), UnknownVip> {
        self.each_vip(now, vip, |a| a.undrain(now))
    }

    /// Withdraw everything still announced (the end of a graceful shutdown).
    pub fn withdraw_all(&mut self, now: Time) -> Vec<Effect> {
        let mut effects = Vec::new();
        for vip in self.layout.vips() {
            let outs = self.vips[vip.index()].announcer.stop(now);
            effects.extend(self.announcer_outputs(now, vip, outs));
        }
        effects
    }

    /// The VIP named `name`.
    pub fn vip_named(&self, name: &str) -> Result<VipId, UnknownVip> {
        match self.cfg.vips.iter().position(|v| v.name == name) {
            Some(i) => Ok(VipId(i as u32)),
            None => Err(UnknownVip {
                name: name.to_string(),
                known: self
                    .cfg
                    .vips
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn each_vip(
        &mut self,
        now: Time,
        vip: Option<&str>,
        mut f: impl FnMut(&mut Announcer) -> Vec<announce::Output>,
    ) -> Result<(Vec<String>, Vec<Effect>), UnknownVip> {
        let picked: Vec<VipId> = match vip {
            None => self.layout.vips().collect(),
            Some(name) => vec![self.vip_named(name)?],
        };
        let mut effects = Vec::new();
        for &vip in &picked {
            let outs = f(&mut self.vips[vip.index()].announcer);
            effects.extend(self.announcer_outputs(now, vip, outs));
        }
        let names = picked
            .iter()
            .map(|v| self.cfg.vips[v.index()].name.clone())
            .collect();
        Ok((names, order(effects)))
    }

    fn decide(&mut self, now: Time) {
        let spill_allowed = self.cfg.spill.enabled;
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
        self.note_spill(now, &d.events);
        self.note_peers(now);
        self.decision = Some(d);
    }

    fn samples(&self, now: Time) -> Vec<ServerSample> {
        self.servers
            .iter()
            .map(|s| {
                let rs = s.at.config(&self.cfg);
                ServerSample {
                    server: s.id.clone(),
                    up: s.health.is_up(),
                    capacity: rs.capacity,
                    active_conns: s.active,
                    inactive_conns: s.inactive,
                    external: s.external.and_then(|(v, at)| {
                        // Fresh for three polls; then connections count again.
                        let fresh = rs.load_poll().0 * 3;
                        (now.since(at) <= fresh).then_some(v)
                    }),
                }
            })
            .collect()
    }

    /// Feeds the VIP's servability (servers up, data plane) to its health and on to
    /// its announcer.
    fn servability(&mut self, now: Time, vip: VipId) -> Vec<Effect> {
        let v = &mut self.vips[vip.index()];
        let outs = v.health.update(now, v.up, self.dataplane.ok);
        self.vip_outputs(now, vip, outs)
    }

    fn vip_outputs(&mut self, now: Time, vip: VipId, outs: Vec<VipOutput>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for o in outs {
            let servable = match o {
                VipOutput::Announce { reason } => Servable { ok: true, reason },
                VipOutput::Withdraw { reason } => Servable { ok: false, reason },
                VipOutput::ArmTimer(t) => {
                    self.vips[vip.index()].hold_timer = Some(t);
                    self.arm_vip_timer(t);
                    continue;
                }
            };
            let ok = servable.ok;
            let v = &mut self.vips[vip.index()];
            // The reports' `vips_down` changes with the verdict (sent on the settle).
            self.dirty.report |= v.verdict.as_ref().is_none_or(|old| old.ok != ok);
            v.verdict = Some(servable);
            effects.extend(self.feed_announcer(now, vip));
            tracing::info!(vip = %self.cfg.vips[vip.index()].name, servable = ok, "VIP servability changed");
        }
        effects
    }

    fn announcer_outputs(
        &mut self,
        now: Time,
        vip: VipId,
        outs: Vec<announce::Output>,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        for o in outs {
            match o {
                announce::Output::Announce { graceful_shutdown } => {
                    effects.push(Effect::Announce {
                        vip,
                        graceful_shutdown,
                    });
                    let kind = if graceful_shutdown {
                        crate::notify::Kind::VipDraining
                    } else {
                        crate::notify::Kind::VipAnnounced
                    };
                    self.note_vip(now, vip, kind);
                }
                announce::Output::Withdraw => {
                    effects.push(Effect::Withdraw { vip });
                    self.note_vip(now, vip, crate::notify::Kind::VipWithdrawn);
                }
                announce::Output::ArmTimer(t) => {
                    self.vips[vip.index()].drain_timer = Some(t);
                    self.arm_vip_timer(t);
                }
            }
        }
        effects
    }

    fn arm_vip_timer(&mut self, t: Time) {
        self.vip_timer = Some(self.vip_timer.map_or(t, |x| x.min(t)));
    }

    /// Sends the whole desired state again on the next settle (the drift check).
    pub fn resync(&mut self, now: Time) -> Vec<Effect> {
        self.dirty.full = true;
        self.settle(now)
    }
}

/// Withdraws first: nothing may delay them.
fn order(mut effects: Vec<Effect>) -> Vec<Effect> {
    effects.sort_by_key(|e| !matches!(e, Effect::Withdraw { .. } | Effect::WithdrawPrefix(_)));
    effects
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_all_down;
#[cfg(test)]
mod tests_directors;
#[cfg(test)]
mod tests_events;
#[cfg(test)]
mod tests_ipv6;
