//! What a `/metrics` scrape costs as the site grows: configs/idc1.toml's VIP cloned to
//! N VIPs of one service and 4 real servers each, all up, with counters in every
//! family. `core ms`: the part on the controller task (the status snapshot and the
//! counters' copy); `render ms`: the exposition from it (prometheus-client, text format
//! 0.0.4), which the API does on a blocking thread; the series and the size.
//!
//! Prints numbers only. `cargo run --release -p anycastd --example metrics_scale [N...]`
//! (default 10 100 1000 10000)

use std::time::{Duration, Instant};

use anycastd::metrics::{Latency, Snapshot};
use geo_balancer::Time;

#[path = "scale/mod.rs"]
mod scale;
use scale::{event, refused, scaled, stats};

const T0: Time = Time(1_800_000_000_000);

fn main() {
    let sizes = scale::sizes();
    println!(
        "{:>9} {:>8} {:>8} {:>10} {:>8} {:>10}",
        "services", "servers", "series", "bytes", "core ms", "render ms"
    );
    for n in sizes {
        let cfg = scaled(n);
        let (mut site, ids) = scale::serving(&cfg, T0);
        // One server of each VIP down once: every VIP has a transition series.
        let t = T0.plus(Duration::from_millis(400));
        for id in ids.iter().step_by(4) {
            site.on_health(event(id, t, refused(id)));
        }
        site.settle(t);
        site.on_stats(t, &stats(&cfg, 7));
        site.settle(t);
        let reps = (20_000 / n).clamp(3, 200) as u32;
        let snap = || Snapshot {
            status: site.status(t, &[]),
            counters: site.counters().clone(),
            bfd: None,
            latency: Latency::default(),
            notify: None,
            monitor: None,
        };
        let start = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(snap());
        }
        let core = start.elapsed().as_secs_f64() * 1000.0 / f64::from(reps);
        let s = snap();
        let text = s.render();
        let start = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(s.render());
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(reps);
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        println!(
            "{n:>9} {:>8} {series:>8} {:>10} {core:>8.2} {ms:>10.2}",
            ids.len(),
            text.len()
        );
    }
}
