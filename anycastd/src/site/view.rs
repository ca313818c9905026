//! What the site shows: the status document and the `why` sentences.

use geo_balancer::Time;

use geo_balancer::health::ProbeOutcome;
use geo_balancer::time::human;

use super::{Site, UnknownVip};
use crate::status::{
    DataplaneStatus, DirectorView, DirectorsStatus, PeerState, PeerStatus, ServerStatus,
    SessionStatus, SpillStatus, Status, VipState, VipStatus, WhyReply,
};

fn secs(t: Time) -> u64 {
    t.as_millis() / 1000
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Site {
    /// The status document; `sessions` comes from the BGP speaker.
    pub fn status(&self, now: Time, sessions: &[bgp_speaker::PeerStatus]) -> Status {
        let vips = self
            .cfg
            .vips
            .iter()
            .zip(&self.vips)
            .enumerate()
            .map(|(vi, (v, e))| VipStatus {
                name: v.name.clone(),
                prefix: v.prefix.to_string(),
                address: v.address.to_string(),
                state: e.announcer.state(),
                reason: self.vip_reason(vi),
                since: secs(e.announcer.since()),
                servers_up: e.up as u32,
                min_up: v.min_up,
                family: family(v.address.is_ipv6()).to_string(),
                held: e.held,
            })
            .collect();
        let sessions = sessions
            .iter()
            .map(|p| SessionStatus {
                neighbor: p.remote_addr.to_string(),
                remote_asn: self
                    .cfg
                    .bgp
                    .neighbors
                    .iter()
                    .find(|n| n.address == p.remote_addr)
                    .map_or(0, |n| n.remote_asn),
                state: p.state.into(),
                uptime_s: p.uptime.map(|d| d.as_secs()),
                prefixes_sent: p.prefixes_sent as u64,
                prefixes_received: p.prefixes_received as u64,
                last_error: p.last_error.clone(),
                bfd: None, // filled in by the daemon, which owns the BFD task
            })
            .collect();
        let real_servers = self
            .servers
            .iter()
            .map(|s| {
                let vip = &self.cfg.vips[s.at.vip.index()];
                let svc = &vip.services[s.at.port_index];
                let rs = s.at.config(&self.cfg);
                ServerStatus {
                    vip: vip.name.clone(),
                    service: format!("{}/{}", svc.protocol.as_str(), svc.port),
                    address: rs.address.to_string(),
                    port: rs.port,
                    state: s.health.state().into(),
                    active_conns: s.active,
                    capacity: rs.capacity,
                    // By address: a server that failed is absent from the list,
                    // so positions no longer line up with the config's.
                    weight: self.desired.vips[s.at.vip.index()].services[s.at.port_index]
                        .local
                        .iter()
                        .find(|d| d.addr == rs.address && d.port == rs.port)
                        .map_or(0, |d| d.weight),
                    disabled_by: s.disabled.as_ref().map(|d| d.by.clone()),
                    disabled_since: s.disabled.as_ref().map(|d| secs(d.at)),
                    last_check: s.last_check.as_ref().map(|o| match o {
                        ProbeOutcome::Success => "ok".to_string(),
                        ProbeOutcome::Failure(e) => e.to_string(),
                        ProbeOutcome::HardFailure(e) => format!("{e} (hard)"),
                    }),
                }
            })
            .collect();
        let me = self.cfg.site.name.as_str();
        let peers = self
            .peers
            .status(now)
            .into_iter()
            .map(|p| {
                let rejected = self
                    .counters
                    .rejected_reports
                    .iter()
                    .filter(|((who, _), _)| who == p.site.as_str())
                    .map(|(_, n)| *n)
                    .sum();
                PeerStatus {
                    name: p.site.to_string(),
                    load: p.last_report.as_ref().and_then(|r| r.load),
                    report_age_s: p.age.map(|a| a.as_secs()),
                    state: match (p.known, &p.last_report) {
                        (true, _) => PeerState::Known,
                        (false, Some(_)) => PeerState::Stale,
                        (false, None) => PeerState::Unknown,
                    },
                    spilling_to_us: p.known
                        && p.last_report
                            .as_ref()
                            .is_some_and(|r| r.spilling_to.iter().any(|s| s.as_str() == me)),
                    rejected_reports: rejected,
                    tunnels: self.tunnels_to(p.site.as_str()),
                    spilling_to: match (&p.last_report, p.known) {
                        (Some(r), true) => r.spilling_to.iter().map(|s| s.to_string()).collect(),
                        _ => Vec::new(),
                    },
                    spill_share: match (&p.last_report, p.known) {
                        (Some(r), true) => r.spill_share,
                        _ => 0.0,
                    },
                    vips_down: match (&p.last_report, p.known) {
                        (Some(r), true) => r.vips_down.clone(),
                        _ => Vec::new(),
                    },
                }
            })
            .collect();
        Status {
            site: self.cfg.site.name.clone(),
            uptime_s: now.since(self.started).as_secs(),
            now: secs(now),
            vips,
            sessions,
            real_servers,
            local_load: finite(self.load.director),
            peers,
            spill: self.spill_status(),
            dataplane: DataplaneStatus {
                ok: self.dataplane.ok,
                last_reconcile: self.dataplane.last_reconcile.map(secs),
                last_changes: self.dataplane.last_changes,
                last_error: self.dataplane.last_error.clone(),
            },
            sync: None,
            directors: self.directors_status(now),
        }
    }

    /// This director and the site's others (decision 0015), for a site that has some.
    fn directors_status(&self, now: Time) -> Option<DirectorsStatus> {
        let others = &self.cfg.directors.others;
        if others.is_empty() {
            return None;
        }
        let heard = self.peers.siblings(now);
        let others = others
            .iter()
            .map(|d| {
                let h = heard.iter().find(|h| h.name == d.name);
                let state = match h {
                    Some(h) if h.fresh => PeerState::Known,
                    Some(h) if h.age.is_some() => PeerState::Stale,
                    _ => PeerState::Unknown,
                };
                DirectorView {
                    name: d.name.clone(),
                    address: d.address.to_string(),
                    state,
                    load: h.and_then(|h| h.director_load),
                    report_age_s: h.and_then(|h| h.age).map(|a| a.as_secs()),
                    digest_match: h.and_then(|h| h.digest_match),
                    counted: state == PeerState::Known
                        && h.is_some_and(|h| h.digest_match == Some(true)),
                }
            })
            .collect();
        Some(DirectorsStatus {
            me: self.cfg.site.director.clone(),
            own_load: finite(self.own_load.director),
            config_digest: self.digest.clone(),
            others,
        })
    }

    fn vip_reason(&self, vi: usize) -> String {
        let e = &self.vips[vi];
        match e.announcer.state() {
            VipState::Announced if e.held => e.announcer.reason(),
            VipState::Announced | VipState::Withdrawn => e.health.reason().to_string(),
            VipState::Draining | VipState::Drained => e.announcer.reason(),
        }
    }

    fn spill_status(&self) -> Vec<SpillStatus> {
        let Some(d) = &self.decision else {
            return Vec::new();
        };
        // With no healthy capacity here, IPVS gives every new connection still arriving
        // to the peers (local weights are all 0): show the shares it really applies.
        let no_capacity = self.load.healthy_capacity == 0 && d.total_share > 0.0;
        d.verdicts
            .iter()
            .map(|v| {
                let target = d.targets.iter().find(|t| t.site == v.site);
                let rule = target.map_or(&v.rule, |t| &t.now);
                let mut reason = rule.to_string().replace("peer ", &format!("{} ", v.site));
                if no_capacity && target.is_some() {
                    reason = format!(
                        "no healthy capacity here, so all new connections go to peers; {reason}"
                    );
                }
                if let Some(t) = target {
                    reason.push_str(&format!(" (report {} old)", human(t.report_age)));
                }
                SpillStatus {
                    peer: v.site.to_string(),
                    share: if no_capacity {
                        v.share / d.total_share
                    } else {
                        v.share
                    },
                    since: target.map(|t| secs(t.since)),
                    reason,
                    families: self.families_to(v.site.as_str()),
                }
            })
            .collect()
    }

    /// Why a VIP is in its state and why the site spills or not; `Err` for an unknown VIP.
    pub fn why(&self, vip: &str) -> Result<WhyReply, UnknownVip> {
        let vi = self.vip_named(vip)?.index();
        let state = self.vips[vi].announcer.state();
        let announcement = format!("{} because {}", state.as_str(), self.vip_reason(vi));
        let spill = match &self.decision {
            None => vec!["not spilling: no load figures yet".to_string()],
            Some(d) => d.to_string().lines().map(str::to_string).collect(),
        };
        Ok(WhyReply {
            vip: vip.to_string(),
            announcement,
            spill,
        })
    }
}

fn family(ipv6: bool) -> &'static str {
    if ipv6 { "ipv6" } else { "ipv4" }
}

impl Site {
    /// The tunnels to peer `name`'s director: IPIP always, ip6ip6 when it has an
    /// IPv6 endpoint.
    fn tunnels_to(&self, name: &str) -> Vec<String> {
        let Some(p) = self.cfg.peers.iter().find(|p| p.name == name) else {
            return Vec::new();
        };
        let mut t = vec![format!("ipip {}", p.tunnel_endpoint)];
        if let Some(v6) = p.tunnel_endpoint_v6 {
            t.push(format!("ip6ip6 {v6}"));
        }
        t
    }

    /// The families of this site's VIPs that can spill to peer `name`.
    fn families_to(&self, name: &str) -> Vec<String> {
        let Some(p) = self.cfg.peers.iter().find(|p| p.name == name) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for v in &self.cfg.vips {
            let v6 = v.address.is_ipv6();
            let f = family(v6).to_string();
            if (!v6 || p.tunnel_endpoint_v6.is_some()) && !out.contains(&f) {
                out.push(f);
            }
        }
        out.sort();
        out
    }
}
