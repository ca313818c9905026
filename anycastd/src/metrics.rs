//! Prometheus text exposition (format 0.0.4) of a status snapshot and the daemon's
//! counters. Written by hand: a few dozen series need no registry crate.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::status::{BfdState, PeerState, ServerState, SessionState, Status, VipState};

/// Monotonic counters the controller keeps besides the status snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Health transitions per (server `addr:port`, to-state).
    pub health_transitions: BTreeMap<(String, String), u64>,
    /// Rejected load reports per (peer or "unknown", reason).
    pub rejected_reports: BTreeMap<(String, String), u64>,
    /// Accepted load reports per peer.
    pub accepted_reports: BTreeMap<String, u64>,
    /// Announce and withdraw calls per (vip, kind).
    pub announcements: BTreeMap<(String, String), u64>,
    /// Data-plane reconciles and the changes they made.
    pub reconciles: u64,
    pub reconcile_changes: u64,
    pub reconcile_errors: u64,
    /// Config reloads accepted and refused.
    pub reloads: u64,
    pub reload_failures: u64,
}

/// BFD control packets over all sessions, as the bfd task counts them (from its start:
/// a reload that changes the BGP neighbors starts them again at 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BfdPackets {
    pub received: u64,
    pub sent: u64,
    /// Dropped: not a valid control packet.
    pub malformed: u64,
    /// Dropped: TTL or hop limit not 255 (RFC 5881 section 5).
    pub bad_ttl: u64,
    /// Dropped: from no configured neighbor, or for no session of ours.
    pub unknown: u64,
    /// Valid, but refused by its session (wrong discriminator, admin down).
    pub discarded: u64,
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = if value.is_infinite() {
            writeln!(self.0, " +Inf")
        } else {
            writeln!(self.0, " {value}")
        };
    }
}

/// Renders every series; the BFD packet counters when BFD runs.
pub fn render(s: &Status, c: &Counters, bfd: Option<&BfdPackets>) -> String {
    let mut o = Out(String::new());
    let site = s.site.as_str();

    o.head(
        "anycast_up",
        "gauge",
        "1 while the daemon runs; labels name the site",
    );
    o.sample("anycast_up", &[("site", site)], 1.0);

    o.head(
        "anycast_vip_announced",
        "gauge",
        "1 when the VIP prefix is announced (draining counts as announced)",
    );
    o.head(
        "anycast_vip_state",
        "gauge",
        "1 for the VIP's current state",
    );
    for v in &s.vips {
        let announced = matches!(v.state, VipState::Announced | VipState::Draining);
        o.sample(
            "anycast_vip_announced",
            &[("vip", &v.name), ("prefix", &v.prefix)],
            f64::from(u8::from(announced)),
        );
        for st in [
            VipState::Announced,
            VipState::Withdrawn,
            VipState::Draining,
            VipState::Drained,
        ] {
            o.sample(
                "anycast_vip_state",
                &[("vip", &v.name), ("state", st.as_str())],
                f64::from(u8::from(v.state == st)),
            );
        }
    }

    o.head(
        "anycast_bgp_session_state",
        "gauge",
        "1 for the session's current FSM state",
    );
    o.head(
        "anycast_bgp_session_established",
        "gauge",
        "1 while the session is Established",
    );
    o.head(
        "anycast_bgp_prefixes_sent",
        "gauge",
        "prefixes currently advertised to the neighbor",
    );
    o.head(
        "anycast_bgp_prefixes_received",
        "gauge",
        "prefixes the neighbor advertised to us (discarded)",
    );
    for b in &s.sessions {
        let n = b.neighbor.as_str();
        for st in SessionState::ALL {
            o.sample(
                "anycast_bgp_session_state",
                &[("neighbor", n), ("state", st.as_str())],
                f64::from(u8::from(b.state == st)),
            );
        }
        o.sample(
            "anycast_bgp_session_established",
            &[("neighbor", n)],
            f64::from(u8::from(b.state == SessionState::Established)),
        );
        o.sample(
            "anycast_bgp_prefixes_sent",
            &[("neighbor", n)],
            b.prefixes_sent as f64,
        );
        o.sample(
            "anycast_bgp_prefixes_received",
            &[("neighbor", n)],
            b.prefixes_received as f64,
        );
    }

    o.head(
        "anycast_bfd_session_up",
        "gauge",
        "1 while the BFD session toward the neighbor is Up",
    );
    o.head(
        "anycast_bfd_detection_time_seconds",
        "gauge",
        "negotiated BFD detection time (0 before the neighbor's first packet)",
    );
    o.head(
        "anycast_bfd_holds_bgp_down",
        "gauge",
        "1 while the BGP session is held down because BFD went down",
    );
    for b in &s.sessions {
        let Some(f) = &b.bfd else { continue };
        let l = [("neighbor", b.neighbor.as_str())];
        o.sample(
            "anycast_bfd_session_up",
            &l,
            f64::from(u8::from(f.state == BfdState::Up)),
        );
        o.sample(
            "anycast_bfd_detection_time_seconds",
            &l,
            f.detection_time_ms as f64 / 1000.0,
        );
        o.sample(
            "anycast_bfd_holds_bgp_down",
            &l,
            f64::from(u8::from(f.holds_bgp_down)),
        );
    }
    if let Some(p) = bfd {
        o.head(
            "anycast_bfd_packets_received_total",
            "counter",
            "BFD control packets received, every session and the dropped ones included",
        );
        o.sample("anycast_bfd_packets_received_total", &[], p.received as f64);
        o.head(
            "anycast_bfd_packets_sent_total",
            "counter",
            "BFD control packets sent, every session",
        );
        o.sample("anycast_bfd_packets_sent_total", &[], p.sent as f64);
        o.head(
            "anycast_bfd_packets_dropped_total",
            "counter",
            "BFD control packets dropped: malformed, TTL not 255, from no configured neighbor (unknown), refused by the session (discarded)",
        );
        for (reason, n) in [
            ("malformed", p.malformed),
            ("bad_ttl", p.bad_ttl),
            ("unknown", p.unknown),
            ("discarded", p.discarded),
        ] {
            o.sample(
                "anycast_bfd_packets_dropped_total",
                &[("reason", reason)],
                n as f64,
            );
        }
    }

    o.head(
        "anycast_real_server_up",
        "gauge",
        "1 when the real server passes its health checks",
    );
    o.head(
        "anycast_real_server_active_connections",
        "gauge",
        "active connections from IPVS",
    );
    for r in &s.real_servers {
        let addr = format!("{}:{}", r.address, r.port);
        let l = [
            ("vip", r.vip.as_str()),
            ("service", r.service.as_str()),
            ("server", addr.as_str()),
        ];
        o.sample(
            "anycast_real_server_up",
            &l,
            f64::from(u8::from(r.state == ServerState::Up)),
        );
        o.sample(
            "anycast_real_server_active_connections",
            &l,
            r.active_conns as f64,
        );
    }
    o.head(
        "anycast_health_transitions_total",
        "counter",
        "real server health state changes",
    );
    for ((server, to), n) in &c.health_transitions {
        o.sample(
            "anycast_health_transitions_total",
            &[("server", server), ("to", to)],
            *n as f64,
        );
    }

    o.head(
        "anycast_local_load",
        "gauge",
        "active connections over healthy capacity; +Inf with no healthy capacity",
    );
    o.sample(
        "anycast_local_load",
        &[("site", site)],
        s.local_load.unwrap_or(f64::INFINITY),
    );

    o.head(
        "anycast_peer_load",
        "gauge",
        "last load a peer site reported",
    );
    o.head(
        "anycast_peer_report_age_seconds",
        "gauge",
        "age of the peer's last valid report",
    );
    o.head(
        "anycast_peer_known",
        "gauge",
        "1 while the peer's reports are fresh enough to spill to it",
    );
    for p in &s.peers {
        let l = [("peer", p.name.as_str())];
        if let Some(load) = p.load {
            o.sample("anycast_peer_load", &l, load);
        }
        if let Some(age) = p.report_age_s {
            o.sample("anycast_peer_report_age_seconds", &l, age as f64);
        }
        o.sample(
            "anycast_peer_known",
            &l,
            f64::from(u8::from(p.state == PeerState::Known)),
        );
    }
    o.head(
        "anycast_reports_accepted_total",
        "counter",
        "valid load reports received",
    );
    for (peer, n) in &c.accepted_reports {
        o.sample(
            "anycast_reports_accepted_total",
            &[("peer", peer)],
            *n as f64,
        );
    }
    o.head(
        "anycast_reports_rejected_total",
        "counter",
        "load reports refused (forged, replayed, stale, oversize, malformed)",
    );
    for ((peer, reason), n) in &c.rejected_reports {
        o.sample(
            "anycast_reports_rejected_total",
            &[("peer", peer), ("reason", reason)],
            *n as f64,
        );
    }

    o.head(
        "anycast_spill_share",
        "gauge",
        "share of new connections sent to a peer site",
    );
    for sp in &s.spill {
        o.sample("anycast_spill_share", &[("peer", &sp.peer)], sp.share);
    }

    o.head(
        "anycast_announcements_total",
        "counter",
        "announce and withdraw requests given to the BGP speaker",
    );
    for ((vip, kind), n) in &c.announcements {
        o.sample(
            "anycast_announcements_total",
            &[("vip", vip), ("kind", kind)],
            *n as f64,
        );
    }
    o.head(
        "anycast_dataplane_reconciles_total",
        "counter",
        "data-plane reconciles run",
    );
    o.sample(
        "anycast_dataplane_reconciles_total",
        &[],
        c.reconciles as f64,
    );
    o.head(
        "anycast_dataplane_changes_total",
        "counter",
        "netlink changes made by reconciles",
    );
    o.sample(
        "anycast_dataplane_changes_total",
        &[],
        c.reconcile_changes as f64,
    );
    o.head(
        "anycast_dataplane_errors_total",
        "counter",
        "reconciles that failed",
    );
    o.sample(
        "anycast_dataplane_errors_total",
        &[],
        c.reconcile_errors as f64,
    );
    o.head(
        "anycast_dataplane_ok",
        "gauge",
        "1 when the last reconcile succeeded",
    );
    o.sample(
        "anycast_dataplane_ok",
        &[],
        f64::from(u8::from(s.dataplane.ok)),
    );
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::render::tests_support::sample;

    #[test]
    fn series_are_well_formed() {
        let mut c = Counters::default();
        c.rejected_reports
            .insert(("idc2".into(), "replayed".into()), 3);
        let bfd = BfdPackets {
            received: 120,
            sent: 118,
            bad_ttl: 2,
            ..BfdPackets::default()
        };
        let text = render(&sample(), &c, Some(&bfd));
        for want in [
            "anycast_vip_announced{vip=\"web\",prefix=\"10.101.4.0/24\"} 1\n",
            "anycast_bgp_session_established{neighbor=\"10.101.1.1\"} 1\n",
            "anycast_real_server_up{vip=\"web\",service=\"tcp/80\",server=\"10.101.5.11:80\"} 0\n",
            "anycast_local_load{site=\"idc1\"} 1.14\n",
            "anycast_peer_report_age_seconds{peer=\"idc2\"} 41\n",
            "anycast_reports_rejected_total{peer=\"idc2\",reason=\"replayed\"} 3\n",
            "anycast_spill_share{peer=\"idc2\"} 0.2\n",
            "anycast_bfd_session_up{neighbor=\"10.101.1.1\"} 1\n",
            "anycast_bfd_packets_received_total 120\n",
            "anycast_bfd_packets_dropped_total{reason=\"bad_ttl\"} 2\n",
            "anycast_bfd_packets_dropped_total{reason=\"unknown\"} 0\n",
        ] {
            assert!(text.contains(want), "missing {want:?}");
        }
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value == "+Inf" || value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn no_healthy_capacity_is_infinite_load() {
        let mut s = sample();
        s.local_load = None;
        assert!(
            render(&s, &Counters::default(), None)
                .contains("anycast_local_load{site=\"idc1\"} +Inf\n")
        );
    }
}
