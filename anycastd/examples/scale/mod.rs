#![allow(dead_code)] // each including example uses part of it
//! What the scale examples share: configs/idc1.toml's VIP cloned to N VIPs of one
//! service and 4 real servers, and the core's inputs (health events, a signed peer
//! report, an IPVS stats sample). Included by `site_scale` (host) and `scale_lab`
//! (lab kernel) with `#[path]`; not an example itself.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anycastd::config::{self, SiteConfig};
use anycastd::site::Site;
use geo_balancer::health::{HealthEvent, ProbeOutcome, ProbeSource};
use geo_balancer::{ServerId, Time};
use tunnel_forwarder as tf;

pub fn vip_addr(i: usize) -> (u8, u8) {
    ((i / 256) as u8, (i % 256) as u8)
}

/// configs/idc1.toml with its VIP cloned to `n` VIPs of one service and 4 real
/// servers: VIP i is 10.(120+i/256).(i%256).1, its servers 10.(160+i/256).(i%256).10-13.
pub fn scaled(n: usize) -> SiteConfig {
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
            let (hi, lo) = vip_addr(i);
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

pub fn event(id: &ServerId, t: Time, outcome: ProbeOutcome) -> HealthEvent {
    HealthEvent {
        server: id.clone(),
        at: t,
        source: ProbeSource::Periodic,
        outcome,
    }
}

pub fn refused(id: &ServerId) -> ProbeOutcome {
    let s = id.to_string();
    let addr = s.rsplit('/').next().and_then(|a| a.parse().ok());
    ProbeOutcome::HardFailure(geo_balancer::ProbeError::Refused {
        addr: addr.unwrap_or_else(|| "0.0.0.0:80".parse().expect("addr")),
    })
}

/// A signed report from the peer at `load`, with twice this site's capacity (so the
/// room it has, not its size, never caps the share).
pub fn deliver(site: &mut Site, cfg: &SiteConfig, load: f64, seq: u64, t: Time) {
    let capacity = 2 * cfg
        .vips
        .iter()
        .flat_map(|v| &v.services)
        .flat_map(|s| &s.real_servers)
        .map(|r| u64::from(r.capacity))
        .sum::<u64>();
    let r = geo_balancer::exchange::LoadReport {
        version: 1,
        sender: geo_balancer::SiteId::new(cfg.peers[0].name.clone()),
        receiver: geo_balancer::SiteId::new(cfg.site.name.clone()),
        seq,
        timestamp: t.as_millis(),
        load: Some(load),
        director_load: Some(load),
        capacity,
        active: (load * capacity as f64) as u64,
        spilling_to: vec![],
        spill_share: 0.0,
        director: None,
        config_digest: None,
        vips_down: Vec::new(),
    };
    let signed = geo_balancer::exchange::client::sign_report(&r, &cfg.peers[0].key).expect("sign");
    site.on_report(
        t,
        Some(&cfg.peers[0].name),
        Some(&signed.signature),
        &signed.body,
    )
    .expect("report accepted");
}

/// What the daemon's stats sampler hands over: every service with its destinations.
pub fn stats(cfg: &SiteConfig, active: u32) -> Vec<tf::ServiceStats> {
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
                    active,
                    inactive: 1,
                    persistent: 0,
                    counters: tf::Counters::default(),
                })
                .collect(),
        })
        .collect()
}

/// The sizes given on the command line, or 10, 100, 1000 and 10,000.
pub fn sizes() -> Vec<usize> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        vec![10, 100, 1000, 10_000]
    } else {
        sizes
    }
}

/// The core for `cfg` with its data plane in place and every server up (two passing
/// checks, at `t0` and 200 ms later); and the servers' ids.
pub fn serving(cfg: &SiteConfig, t0: Time) -> (Site, Vec<ServerId>) {
    let ids: Vec<ServerId> = anycastd::mapping::servers(cfg)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let (mut site, _) = Site::new(cfg.clone(), t0).expect("site");
    site.on_reconciled(t0, Ok(0));
    for t in [t0, t0.plus(std::time::Duration::from_millis(200))] {
        for id in &ids {
            site.on_health(event(id, t, ProbeOutcome::Success));
        }
        site.settle(t);
    }
    (site, ids)
}
