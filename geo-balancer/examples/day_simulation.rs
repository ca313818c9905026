//! A day of skewed demand across three sites on a virtual clock.
//!
//! `cargo run -p geo-balancer --example day_simulation`
//!
//! Each site's clients peak at 20:00 local time; Asia (UTC+8) peaks above its capacity
//! while America (UTC-5) sleeps and Europe (UTC+1) is mid-day. Connections arrive at a
//! rate that follows the demand curve and last 60 s on average (a fluid model, one step
//! per second). Sites run the real crate: `site_load` from per-server and per-tunnel
//! samples, `ReportScheduler` (120 s +-10 %, immediate on threshold crossing), reports
//! signed with HMAC and checked by the receiver's `PeerTable` after 1 s in flight, and
//! `SpillEngine::decide` every 5 s and on every changed report. The same day is run
//! twice, without and with spilling.

use std::collections::VecDeque;
use std::time::Duration;

use geo_balancer::exchange::client::sign_report;
use geo_balancer::exchange::{ExchangeConfig, LocalState, PeerTable, ReportScheduler};
use geo_balancer::load::{ServerSample, TunnelSample};
use geo_balancer::spill::SpillEvent;
use geo_balancer::{
    LocalView, ServerId, SiteId, SpillConfig, SpillDecision, SpillEngine, Time, site_load,
};

const MEAN_DURATION_S: f64 = 60.0;
const DAY_S: u64 = 86_400;
const DECIDE_EVERY_S: u64 = 5;
const KEY: &[u8] = b"simulation-shared-key-0123456789";

struct SiteSpec {
    name: &'static str,
    utc_offset_h: f64,
    capacity: u32,
    base: f64,
    peak: f64,
}

const SITES: [SiteSpec; 3] = [
    SiteSpec {
        name: "asia",
        utc_offset_h: 8.0,
        capacity: 10_000,
        base: 0.30,
        peak: 1.40,
    },
    SiteSpec {
        name: "europe",
        utc_offset_h: 1.0,
        capacity: 8_000,
        base: 0.25,
        peak: 1.02,
    },
    SiteSpec {
        name: "america",
        utc_offset_h: -5.0,
        capacity: 12_000,
        base: 0.25,
        peak: 0.95,
    },
];

/// Demand as a fraction of the site's capacity at a UTC second of the day.
fn demand(s: &SiteSpec, t_utc: f64) -> f64 {
    let local_h = (t_utc / 3600.0 + s.utc_offset_h).rem_euclid(24.0);
    let x = (1.0 + (2.0 * std::f64::consts::PI * (local_h - 20.0) / 24.0).cos()) / 2.0;
    s.base + (s.peak - s.base) * x * x
}

struct Site {
    id: SiteId,
    cap: f64,
    engine: SpillEngine,
    sched: ReportScheduler,
    table: PeerTable,
    shares: Vec<(usize, f64)>,
    decision: Option<SpillDecision>,
}

#[derive(Default, Clone)]
struct Stats {
    overloaded_s: u64,
    excess_conn_s: f64,
    peak_served: f64,
    spilling_s: u64,
    starts: u32,
    stops: u32,
    max_share: f64,
    reports_sent: u32,
    reports_threshold: u32,
    rejected: u64,
}

struct Hourly {
    served: Vec<f64>,
    director: Vec<f64>,
    share: Vec<f64>,
}

fn run(spill: bool) -> (Vec<Stats>, Vec<Hourly>, Vec<String>, u64) {
    let n = SITES.len();
    let t0 = Time::from_secs(1_764_028_800); // 00:00 UTC
    let ids: Vec<SiteId> = SITES.iter().map(|s| SiteId::new(s.name)).collect();
    let mut sites: Vec<Site> = SITES
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut cfg = ExchangeConfig::new(ids[i].clone());
            cfg.max_clock_skew = Duration::from_secs(30);
            let peers: Vec<SiteId> = ids.iter().filter(|p| **p != ids[i]).cloned().collect();
            Site {
                id: ids[i].clone(),
                cap: f64::from(s.capacity),
                engine: SpillEngine::new(SpillConfig::default()),
                sched: ReportScheduler::new(
                    cfg.clone(),
                    SpillConfig::default(),
                    peers.clone(),
                    17 + i as u64,
                ),
                table: PeerTable::new(
                    cfg,
                    peers.iter().map(|p| (p.clone(), KEY.to_vec())).collect(),
                )
                .unwrap_or_else(|e| panic!("config: {e}")),
                shares: Vec::new(),
                decision: None,
            }
        })
        .collect();
    // conn[i][j]: connections that arrived at director i and are served at site j.
    let mut conn = vec![vec![0.0f64; n]; n];
    for (i, s) in SITES.iter().enumerate() {
        conn[i][i] = demand(s, 0.0) * f64::from(s.capacity);
    }
    let mut in_flight: VecDeque<(Time, usize, String, String, Vec<u8>)> = VecDeque::new();
    let mut stats = vec![Stats::default(); n];
    let mut hourly: Vec<Hourly> = (0..n)
        .map(|_| Hourly {
            served: vec![0.0; 24],
            director: vec![0.0; 24],
            share: vec![0.0; 24],
        })
        .collect();
    let mut explanations = Vec::new();
    let mut mutual = 0u64;

    for sec in 0..DAY_S {
        let now = t0.plus(Duration::from_secs(sec));
        // Arrivals and departures (one second).
        for (i, s) in SITES.iter().enumerate() {
            let arrivals = demand(s, sec as f64) * f64::from(s.capacity) / MEAN_DURATION_S;
            let spilled: f64 = sites[i].shares.iter().map(|(_, v)| v).sum();
            for row in conn[i].iter_mut() {
                *row *= 1.0 - 1.0 / MEAN_DURATION_S;
            }
            conn[i][i] += arrivals * (1.0 - spilled);
            for (j, v) in &sites[i].shares {
                conn[i][*j] += arrivals * v;
            }
        }
        // Loads from samples, as the daemon would build them from IPVS stats.
        let mut loads = Vec::new();
        for i in 0..n {
            let served_conns: f64 = (0..n).map(|k| conn[k][i]).sum();
            let server = ServerSample {
                server: ServerId::new(format!("{}-rs", SITES[i].name)),
                up: true,
                capacity: SITES[i].capacity,
                active_conns: served_conns.round() as u64,
                inactive_conns: 0,
                external: None,
            };
            let tunnels: Vec<TunnelSample> = (0..n)
                .filter(|j| *j != i)
                .map(|j| TunnelSample {
                    peer: ids[j].clone(),
                    active_conns: conn[i][j].round() as u64,
                })
                .collect();
            loads.push(site_load(&[server], &tunnels));
        }
        // Deliver reports that finished their 1 s flight.
        let mut changed = vec![false; n];
        while in_flight.front().is_some_and(|m| m.0 <= now) {
            let Some((_, to, sender, sig, body)) = in_flight.pop_front() else {
                break;
            };
            match sites[to]
                .table
                .receive(now, Some(&sender), Some(&sig), &body)
            {
                Ok(a) => changed[to] |= a.changed,
                Err(_) => stats[to].rejected += 1,
            }
        }
        // Decide.
        for i in 0..n {
            if spill && (sec % DECIDE_EVERY_S == 0 || changed[i]) {
                let views = sites[i].table.views(now);
                let local = LocalView {
                    load: loads[i].director,
                    capacity: loads[i].healthy_capacity,
                };
                let d = sites[i].engine.decide(now, local, &views);
                for e in &d.events {
                    match e {
                        SpillEvent::Started { .. } => stats[i].starts += 1,
                        SpillEvent::Stopped { .. } => stats[i].stops += 1,
                    }
                }
                if d.spilling() && explanations.len() < 4 && !d.events.is_empty() {
                    let text = d
                        .to_string()
                        .replace('\n', &format!("\n{} {}: ", now.hhmm_utc(), sites[i].id));
                    explanations.push(format!("{} {}: {text}", now.hhmm_utc(), sites[i].id));
                }
                sites[i].shares = d
                    .targets
                    .iter()
                    .filter_map(|t| ids.iter().position(|x| *x == t.site).map(|j| (j, t.share)))
                    .collect();
                sites[i].decision = Some(d);
            }
        }
        // Mutual spill check.
        for i in 0..n {
            for (j, _) in &sites[i].shares {
                if sites[*j].shares.iter().any(|(k, _)| *k == i) {
                    mutual += 1;
                }
            }
        }
        // Reports.
        for i in 0..n {
            let state = LocalState {
                vips_down: Vec::new(),
                load: loads[i],
                spilling_to: sites[i]
                    .shares
                    .iter()
                    .map(|(j, _)| ids[*j].clone())
                    .collect(),
                spill_share: sites[i].shares.iter().map(|(_, v)| v).sum(),
            };
            if let Some(round) = sites[i].sched.poll(now, &state) {
                stats[i].reports_sent += 1;
                if round.reason == geo_balancer::exchange::SendReason::Threshold {
                    stats[i].reports_threshold += 1;
                }
                for r in &round.reports {
                    let Some(to) = ids.iter().position(|x| *x == r.receiver) else {
                        continue;
                    };
                    let Ok(s) = sign_report(r, KEY) else { continue };
                    in_flight.push_back((
                        now.plus(Duration::from_secs(1)),
                        to,
                        s.sender,
                        s.signature,
                        s.body,
                    ));
                }
            }
        }
        // Statistics.
        for i in 0..n {
            let served = loads[i].served;
            let share: f64 = sites[i].shares.iter().map(|(_, v)| v).sum();
            let st = &mut stats[i];
            if served > 1.0 {
                st.overloaded_s += 1;
                st.excess_conn_s += (served - 1.0) * sites[i].cap;
            }
            st.peak_served = st.peak_served.max(served);
            if share > 0.0 {
                st.spilling_s += 1;
            }
            st.max_share = st.max_share.max(share);
            let h = (sec / 3600) as usize;
            hourly[i].served[h] += served / 3600.0;
            hourly[i].director[h] += loads[i].director / 3600.0;
            hourly[i].share[h] += share / 3600.0;
        }
    }
    (stats, hourly, explanations, mutual)
}

fn hms(s: u64) -> String {
    geo_balancer::time::human(Duration::from_secs(s))
}

fn main() {
    let (without, _, _, _) = run(false);
    let (with, hourly, explanations, mutual) = run(true);

    println!("Hourly means with spilling (UTC hour: served load / director load / spill share)");
    print!("{:>4}", "UTC");
    for s in &SITES {
        print!(" | {:^22}", format!("{} (UTC{:+})", s.name, s.utc_offset_h));
    }
    println!();
    for h in 0..24 {
        print!("{h:>4}");
        for site in &hourly {
            print!(
                " | {:>5.2} {:>5.2} {:>8}",
                site.served[h],
                site.director[h],
                if site.share[h] > 0.0 {
                    format!("{:.1}%", site.share[h] * 100.0)
                } else {
                    "-".into()
                }
            );
        }
        println!();
    }
    println!();
    println!(
        "{:<8} | {:>12} {:>12} | {:>10} {:>10} | {:>13} {:>13} | {:>9} {:>6} {:>9} {:>8}",
        "site",
        "overloaded",
        "overloaded",
        "peak",
        "peak",
        "excess conn*h",
        "excess conn*h",
        "spilling",
        "starts",
        "max share",
        "reports"
    );
    println!(
        "{:<8} | {:>12} {:>12} | {:>10} {:>10} | {:>13} {:>13} | {:>9} {:>6} {:>9} {:>8}",
        "",
        "no spill",
        "spill",
        "no spill",
        "spill",
        "no spill",
        "spill",
        "time",
        "/stops",
        "",
        "(thresh)"
    );
    for (i, s) in SITES.iter().enumerate() {
        let (a, b) = (&without[i], &with[i]);
        println!(
            "{:<8} | {:>12} {:>12} | {:>10.2} {:>10.2} | {:>13.0} {:>13.0} | {:>9} {:>6} {:>8.1}% {:>8}",
            s.name,
            hms(a.overloaded_s),
            hms(b.overloaded_s),
            a.peak_served,
            b.peak_served,
            a.excess_conn_s / 3600.0,
            b.excess_conn_s / 3600.0,
            hms(b.spilling_s),
            format!("{}/{}", b.starts, b.stops),
            b.max_share * 100.0,
            format!("{}({})", b.reports_sent, b.reports_threshold),
        );
    }
    println!();
    println!("moments two sites spilled to each other: {mutual}");
    println!(
        "reports rejected: {}",
        with.iter().map(|s| s.rejected).sum::<u64>()
    );
    println!();
    println!("First decisions that started spilling:");
    for e in explanations {
        for line in e.lines() {
            println!("  {line}");
        }
    }
}
