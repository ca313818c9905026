//! What a `/metrics` scrape costs as the site grows: configs/idc1.toml's VIP cloned to
//! N VIPs of one service and 4 real servers each, all up, with counters in every
//! family; the time to render the exposition from the status snapshot
//! (prometheus-client, text format 0.0.4), its series and its size.
//!
//! Prints numbers only. `cargo run --release -p anycastd --example metrics_scale [N...]`
//! (default 10 100 1000 10000)

use std::time::{Duration, Instant};

use anycastd::mapping;
use anycastd::metrics::{Latency, Scrape, render};
use anycastd::site::Site;
use geo_balancer::Time;
use geo_balancer::health::ProbeOutcome;

#[path = "scale/mod.rs"]
mod scale;
use scale::{event, refused, scaled, stats};

const T0: Time = Time(1_800_000_000_000);

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 1000, 10_000]
    } else {
        sizes
    };
    println!(
        "{:>9} {:>8} {:>8} {:>10} {:>11}",
        "services", "servers", "series", "bytes", "scrape ms"
    );
    for n in sizes {
        let cfg = scaled(n);
        let ids: Vec<_> = mapping::servers(&cfg)
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let (mut site, _) = Site::new(cfg.clone(), T0).expect("site");
        site.on_reconciled(T0, Ok(0));
        for t in [0, 200] {
            let t = T0.plus(Duration::from_millis(t));
            for id in &ids {
                site.on_health(event(id, t, ProbeOutcome::Success));
            }
            site.settle(t);
        }
        // One server of each VIP down once: every VIP has a transition series.
        let t = T0.plus(Duration::from_millis(400));
        for id in ids.iter().step_by(4) {
            site.on_health(event(id, t, refused(id)));
        }
        site.settle(t);
        site.on_stats(t, &stats(&cfg, 7));
        site.settle(t);
        let status = site.status(t, &[]);
        let latency = Latency::default();
        let scrape = Scrape {
            status: &status,
            counters: site.counters(),
            bfd: None,
            latency: Some(&latency),
            notify: None,
        };
        let text = render(&scrape);
        let reps = (20_000 / n).clamp(3, 200) as u32;
        let start = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(render(&scrape));
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(reps);
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        println!(
            "{n:>9} {:>8} {series:>8} {:>10} {ms:>11.2}",
            ids.len(),
            text.len()
        );
    }
}
