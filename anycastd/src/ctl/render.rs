//! The status screen: everything an on-call person needs at a glance.

use super::table::{age, clock, render};
use crate::status::{PeerState, ServerState, Status, VipState};

/// `ipv4` -> `IPv4`; an older daemon that sends no family shows `-`.
fn family(f: &str) -> String {
    match f {
        "ipv4" => "IPv4".to_string(),
        "ipv6" => "IPv6".to_string(),
        "" => "-".to_string(),
        other => other.to_string(),
    }
}

fn load(l: Option<f64>) -> String {
    l.map_or("inf".to_string(), |l| format!("{l:.2}"))
}

/// The whole `anycastctl status` screen.
pub fn status(s: &Status) -> String {
    let mut out = String::new();
    let dp = &s.dataplane;
    let dataplane = match (&dp.last_error, dp.last_reconcile) {
        (Some(e), _) => format!("dataplane FAILED: {e}"),
        (None, Some(t)) => format!(
            "dataplane ok (reconciled {} ago, {} changes)",
            age(s.now.saturating_sub(t)),
            dp.last_changes
        ),
        (None, None) => "dataplane not yet reconciled".to_string(),
    };
    let local = match &s.directors {
        Some(d) => format!(
            "site load {} (director {} {})",
            load(s.local_load),
            d.me,
            load(d.own_load)
        ),
        None => format!("local load {}", load(s.local_load)),
    };
    out.push_str(&format!(
        "site {}   up {}   {local}   {}\n\n",
        s.site,
        age(s.uptime_s),
        dataplane
    ));
    if let Some(d) = &s.directors {
        out.push_str(&directors(d));
    }

    let rows: Vec<Vec<String>> = s
        .vips
        .iter()
        .map(|v| {
            let state = match v.state {
                VipState::Announced => "announced".to_string(),
                other => other.as_str().to_uppercase(),
            };
            vec![
                v.name.clone(),
                v.prefix.clone(),
                family(&v.family),
                state,
                clock(v.since),
                format!("{} up (min {})", v.servers_up, v.min_up),
                v.reason.clone(),
            ]
        })
        .collect();
    out.push_str(&render(
        &[
            "VIP",
            "PREFIX",
            "AF",
            "STATE",
            "SINCE(UTC)",
            "SERVERS",
            "WHY",
        ],
        &rows,
    ));
    out.push('\n');

    let rows: Vec<Vec<String>> = s
        .sessions
        .iter()
        .map(|b| {
            vec![
                b.neighbor.clone(),
                b.remote_asn.to_string(),
                b.state.as_str().to_string(),
                b.uptime_s.map_or("-".to_string(), age),
                b.prefixes_sent.to_string(),
                b.prefixes_received.to_string(),
                b.bfd.as_ref().map_or("-".to_string(), bfd_cell),
                b.last_error.clone().unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    out.push_str(&render(
        &[
            "BGP NEIGHBOR",
            ">AS",
            "STATE",
            ">UPTIME",
            ">SENT",
            ">RCVD",
            "BFD",
            "LAST ERROR",
        ],
        &rows,
    ));
    out.push('\n');

    let rows: Vec<Vec<String>> = s
        .real_servers
        .iter()
        .map(|r| {
            vec![
                format!("{}:{}", r.address, r.port),
                r.vip.clone(),
                r.service.clone(),
                match &r.disabled_by {
                    Some(by) => format!("DISABLED by {by}"),
                    None if r.state == ServerState::Up => r.state.as_str().to_string(),
                    None => r.state.as_str().to_uppercase(),
                },
                r.active_conns.to_string(),
                r.capacity.to_string(),
                r.last_check.clone().unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    out.push_str(&render(
        &[
            "REAL SERVER",
            "VIP",
            "SERVICE",
            "STATE",
            ">CONNS",
            ">CAPACITY",
            "LAST CHECK",
        ],
        &rows,
    ));
    out.push('\n');

    let rows: Vec<Vec<String>> = s
        .peers
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                if p.state == PeerState::Unknown {
                    "?".to_string()
                } else {
                    load(p.load)
                },
                p.report_age_s.map_or("never".to_string(), age),
                p.state.as_str().to_string(),
                if p.spilling_to_us { "yes" } else { "no" }.to_string(),
                p.rejected_reports.to_string(),
                if p.tunnels.is_empty() {
                    "-".to_string()
                } else {
                    p.tunnels.join(", ")
                },
            ]
        })
        .collect();
    out.push_str(&render(
        &[
            "PEER SITE",
            ">LOAD",
            ">REPORT AGE",
            "STATE",
            "SPILLS TO US",
            ">REJECTED",
            "TUNNELS",
        ],
        &rows,
    ));
    for p in s.peers.iter().filter(|p| !p.vips_down.is_empty()) {
        out.push_str(&format!(
            "peer {} reports VIPs down (their checks fail there): {}\n",
            p.name,
            p.vips_down.join(", ")
        ));
    }
    out.push('\n');

    if s.spill.iter().all(|sp| sp.share == 0.0) {
        out.push_str("spill: none (all new connections served locally)\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .spill
            .iter()
            .filter(|sp| sp.share > 0.0)
            .map(|sp| {
                vec![
                    sp.peer.clone(),
                    format!("{:.0}%", sp.share * 100.0),
                    if sp.families.is_empty() {
                        "-".to_string()
                    } else {
                        sp.families
                            .iter()
                            .map(|f| family(f))
                            .collect::<Vec<_>>()
                            .join("+")
                    },
                    sp.since.map_or("-".to_string(), clock),
                    sp.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&render(
            &["SPILL TO", ">SHARE", "FAMILIES", "SINCE(UTC)", "WHY"],
            &rows,
        ));
    }
    if let Some(sync) = &s.sync {
        out.push_str(&sync_line(sync));
    }
    out
}

/// The site's directors (decision 0015): this one first, then the others as configured.
fn directors(d: &crate::status::DirectorsStatus) -> String {
    let mut rows = vec![vec![
        format!("{} (this)", d.me),
        "-".to_string(),
        "known".to_string(),
        load(d.own_load),
        "-".to_string(),
        d.config_digest.chars().take(12).collect(),
        "yes".to_string(),
    ]];
    rows.extend(d.others.iter().map(|o| {
        vec![
            o.name.clone(),
            o.address.clone(),
            o.state.as_str().to_string(),
            if o.state == PeerState::Unknown {
                "?".to_string()
            } else {
                load(o.load)
            },
            o.report_age_s.map_or("never".to_string(), age),
            match o.digest_match {
                Some(true) => "same".to_string(),
                Some(false) => "DIFFERENT".to_string(),
                None => "-".to_string(),
            },
            if o.counted { "yes" } else { "no" }.to_string(),
        ]
    }));
    let mut out = render(
        &[
            "DIRECTOR",
            "ADDRESS",
            "STATE",
            ">LOAD",
            ">REPORT AGE",
            "CONFIG",
            "IN SITE LOAD",
        ],
        &rows,
    );
    out.push('\n');
    out
}

/// `sync master+backup on eth1 (id 7): ...`, or why it could not be read.
fn sync_line(s: &crate::status::SyncStatus) -> String {
    let roles = if s.roles.is_empty() {
        "NOT RUNNING".to_string()
    } else {
        s.roles.join("+")
    };
    match &s.error {
        Some(e) => format!(
            "sync {roles} on {} (id {}): cannot read the kernel: {e}\n",
            s.interface, s.syncid
        ),
        None => format!(
            "sync {roles} on {} (id {}): {} connections scheduled here, {} synced from the site's other directors\n",
            s.interface, s.syncid, s.local_conns, s.synced_conns
        ),
    }
}

/// A status snapshot for tests of everything that renders one.
/// `anycastctl server list`: every real server with its state, connections, weight and
/// last check; who disabled a disabled one, and when.
pub fn servers(s: &Status) -> String {
    let rows: Vec<Vec<String>> = s
        .real_servers
        .iter()
        .map(|r| {
            let state = match (&r.disabled_by, r.disabled_since) {
                (Some(by), Some(at)) => format!("DISABLED by {by} at {}", clock(at)),
                _ if r.state == ServerState::Up => r.state.as_str().to_string(),
                _ => r.state.as_str().to_uppercase(),
            };
            vec![
                format!("{}:{}", r.address, r.port),
                r.vip.clone(),
                r.service.clone(),
                state,
                r.active_conns.to_string(),
                r.weight.to_string(),
                r.capacity.to_string(),
                r.last_check.clone().unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    render(
        &[
            "REAL SERVER",
            "VIP",
            "SERVICE",
            "STATE",
            ">CONNS",
            ">WEIGHT",
            ">CAPACITY",
            "LAST CHECK",
        ],
        &rows,
    )
}

/// `up 300ms/900ms`, or the state and why: `down (control detection time expired;
/// holds BGP down)`.
fn bfd_cell(b: &crate::status::BfdSessionStatus) -> String {
    use crate::status::BfdState;
    if b.state == BfdState::Up {
        return format!("up {}ms/{}ms", b.tx_interval_ms, b.detection_time_ms);
    }
    let mut why = vec![b.local_diag.clone()];
    if b.remote_state == BfdState::AdminDown {
        why.push("peer admin down".into());
    }
    if b.holds_bgp_down {
        why.push("holds BGP down".into());
    }
    format!("{} ({})", b.state.as_str().to_lowercase(), why.join("; "))
}

#[cfg(test)]
pub(crate) mod tests_support {
    use crate::status::*;

    pub(crate) fn sample() -> Status {
        Status {
            site: "idc1".into(),
            uptime_s: 7980,
            now: 50_000,
            vips: vec![VipStatus {
                name: "web".into(),
                prefix: "10.101.4.0/24".into(),
                address: "10.101.4.1".into(),
                state: VipState::Announced,
                reason: "2 of 2 real servers up (min 1)".into(),
                since: 13 * 3600 + 58 * 60,
                servers_up: 2,
                min_up: 1,
                family: "ipv4".into(),
                held: false,
            }],
            sessions: vec![SessionStatus {
                neighbor: "10.101.1.1".into(),
                remote_asn: 1,
                state: SessionState::Established,
                uptime_s: Some(7970),
                prefixes_sent: 1,
                prefixes_received: 3,
                last_error: None,
                bfd: Some(crate::status::BfdSessionStatus {
                    state: BfdState::Up,
                    remote_state: BfdState::Up,
                    local_diag: "no diagnostic".into(),
                    remote_diag: "no diagnostic".into(),
                    tx_interval_ms: 300,
                    detection_time_ms: 900,
                    holds_bgp_down: false,
                }),
            }],
            real_servers: vec![ServerStatus {
                vip: "web".into(),
                service: "tcp/80".into(),
                address: "10.101.5.11".into(),
                port: 80,
                state: ServerState::Down,
                active_conns: 0,
                capacity: 100,
                last_check: Some("connect refused".into()),
                weight: 0,
                disabled_by: None,
                disabled_since: None,
            }],
            local_load: Some(1.14),
            peers: vec![PeerStatus {
                name: "idc2".into(),
                load: Some(0.62),
                report_age_s: Some(41),
                state: PeerState::Known,
                spilling_to_us: false,
                rejected_reports: 0,
                tunnels: vec!["ipip 10.101.2.2".into(), "ip6ip6 2001:db8:2::2".into()],
                spilling_to: vec![],
                spill_share: 0.0,
                vips_down: vec![],
            }],
            spill: vec![SpillStatus {
                peer: "idc2".into(),
                share: 0.2,
                since: Some(13 * 3600 + 58 * 60),
                reason: "local 1.14 > 1.10 and idc2 0.62 < 0.70 (report 41s old)".into(),
                families: vec!["ipv4".into(), "ipv6".into()],
            }],
            dataplane: DataplaneStatus {
                ok: true,
                last_reconcile: Some(49_988),
                last_changes: 0,
                last_error: None,
            },
            sync: Some(crate::status::SyncStatus {
                roles: vec!["master".into(), "backup".into()],
                interface: "eth1".into(),
                syncid: 7,
                local_conns: 1200,
                synced_conns: 830,
                error: None,
            }),
            directors: None,
        }
    }

    /// [`sample`] on director `lb1` of a site with `lb1b` (counted) and `lb1c` (another
    /// config digest).
    pub fn with_directors() -> Status {
        use crate::status::{DirectorView, DirectorsStatus};
        let other = |name: &str, digest_match: bool| DirectorView {
            name: name.into(),
            address: "10.101.3.3".into(),
            state: PeerState::Known,
            load: Some(0.74),
            report_age_s: Some(3),
            digest_match: Some(digest_match),
            counted: digest_match,
        };
        Status {
            directors: Some(DirectorsStatus {
                me: "lb1".into(),
                own_load: Some(0.40),
                config_digest: "9f86d081884c7d659a2feaa0c55ad015".into(),
                others: vec![other("lb1b", true), other("lb1c", false)],
            }),
            ..sample()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sample;
    use super::*;

    #[test]
    fn the_screen_shows_every_section() {
        let screen = status(&sample());
        for want in [
            "site idc1   up 2h13m   local load 1.14   dataplane ok (reconciled 12s ago, 0 changes)",
            "web  10.101.4.0/24  IPv4  announced  13:58:00",
            "10.101.1.1     1  Established   2h12m",
            "10.101.5.11:80  web  tcp/80   DOWN       0       100  connect refused",
            "idc2       0.62         41s  known  no",
            "idc2       0.62         41s  known  no                   0  ipip 10.101.2.2, ip6ip6 2001:db8:2::2",
            "idc2        20%  IPv4+IPv6  13:58:00    local 1.14 > 1.10 and idc2 0.62 < 0.70 (report 41s old)",
            "sync master+backup on eth1 (id 7): 1200 connections scheduled here, 830 synced from the site's other directors",
        ] {
            assert!(screen.contains(want), "missing `{want}` in\n{screen}");
        }
    }

    #[test]
    fn no_spill_says_so() {
        let mut s = sample();
        s.spill.clear();
        assert!(status(&s).contains("spill: none (all new connections served locally)"));
    }

    #[test]
    fn the_site_directors_show_next_to_the_site_load() {
        let s = super::tests_support::with_directors();
        let screen = status(&s);
        for want in [
            "site idc1   up 2h13m   site load 1.14 (director lb1 0.40)   dataplane ok",
            "lb1 (this)  -           known  0.40           -  9f86d081884c  yes",
            "lb1b        10.101.3.3  known  0.74          3s  same          yes",
            "lb1c        10.101.3.3  known  0.74          3s  DIFFERENT     no",
        ] {
            assert!(screen.contains(want), "missing {want:?} in\n{screen}");
        }
    }
}
