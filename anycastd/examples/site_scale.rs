//! How the site core scales with the number of services: configs/idc1.toml with its one
//! VIP cloned to N VIPs of one service and 4 real servers each, all up, then the time of
//! the calls the daemon makes all the time: a tick (every 200 ms), one health event
//! that changes nothing, and one IPVS stats sample (every second). Prints numbers only.
//!
//! `cargo run --release -p anycastd --example site_scale [N...]` (default 10 100 1000)

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use anycastd::config::{self, SiteConfig};
use anycastd::mapping;
use anycastd::site::Site;
use geo_balancer::Time;
use geo_balancer::health::{HealthEvent, ProbeOutcome, ProbeSource};
use tunnel_forwarder as tf;

const T0: Time = Time(1_800_000_000_000);

fn at(ms: u64) -> Time {
    T0.plus(Duration::from_millis(ms))
}

fn scaled(n: usize) -> SiteConfig {
    let mut cfg = config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/idc1.toml"
    )))
    .expect("configs/idc1.toml");
    let template = cfg.vips[0].clone();
    let rs = template.services[0].real_servers[0].clone();
    cfg.vips = (0..n)
        .map(|i| {
            let mut v = template.clone();
            let (hi, lo) = ((i / 256) as u8, (i % 256) as u8);
            v.name = format!("vip{i}");
            v.address = IpAddr::V4(Ipv4Addr::new(10, 120 + hi, lo, 1));
            v.prefix = format!("10.{}.{lo}.0/24", 120 + hi)
                .parse()
                .expect("prefix");
            v.services.truncate(1);
            v.services[0].real_servers = (0..4u8)
                .map(|r| {
                    let mut s = rs.clone();
                    s.address = IpAddr::V4(Ipv4Addr::new(10, 160 + hi, lo, 10 + r));
                    s
                })
                .collect();
            v
        })
        .collect();
    cfg
}

fn up(site: &mut Site, ids: &[geo_balancer::ServerId], t: Time) {
    for id in ids {
        site.on_health(HealthEvent {
            server: id.clone(),
            at: t,
            source: ProbeSource::Periodic,
            outcome: ProbeOutcome::Success,
        });
    }
}

/// What the daemon's stats sampler hands over: every service with its destinations.
fn stats(cfg: &SiteConfig) -> Vec<tf::ServiceStats> {
    cfg.vips
        .iter()
        .map(|v| tf::ServiceStats {
            key: tf::ServiceKey::Addr {
                protocol: tf::Protocol::Tcp,
                addr: v.address,
                port: 80,
            },
            counters: tf::Counters::default(),
            dests: v.services[0]
                .real_servers
                .iter()
                .map(|r| tf::DestStats {
                    addr: r.address,
                    port: r.port,
                    forward: Some(tf::Forward::Nat),
                    weight: 1,
                    active: 7,
                    inactive: 1,
                    persistent: 0,
                    counters: tf::Counters::default(),
                })
                .collect(),
        })
        .collect()
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 1000]
    } else {
        sizes
    };
    println!(
        "{:>9} {:>8} {:>12} {:>14} {:>12}",
        "services", "servers", "tick ms", "health ev ms", "stats ms"
    );
    for n in sizes {
        let cfg = scaled(n);
        let ids: Vec<_> = mapping::servers(&cfg)
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let st = stats(&cfg);
        let (mut site, _) = Site::new(cfg, T0).expect("site");
        site.on_reconciled(T0, Ok(0));
        up(&mut site, &ids, at(0));
        up(&mut site, &ids, at(200));
        let reps = (20_000 / n).clamp(5, 2_000) as u64;
        let mut t_ms = 400;
        let timed = |site: &mut Site, t_ms: &mut u64, f: &dyn Fn(&mut Site, Time)| {
            let start = Instant::now();
            for _ in 0..reps {
                *t_ms += 200;
                f(site, at(*t_ms));
            }
            start.elapsed().as_secs_f64() * 1000.0 / reps as f64
        };
        let tick = timed(&mut site, &mut t_ms, &|s, t| drop(s.on_tick(t)));
        let health = timed(&mut site, &mut t_ms, &|s, t| up(s, &ids[..1], t));
        let stats_ms = timed(&mut site, &mut t_ms, &|s, t| drop(s.on_stats(t, &st)));
        println!(
            "{n:>9} {:>8} {tick:>12.3} {health:>14.4} {stats_ms:>12.3}",
            ids.len()
        );
    }
}
