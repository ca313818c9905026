//! How the site core scales with the number of services: configs/idc1.toml with its one
//! VIP cloned to N VIPs of one service and 4 real servers each, all up, then the time of
//! what the daemon does, each as the driver does it (the input, then `settle`):
//!
//! - `idle`: `next_deadline` and a `settle` with nothing to do (after every input);
//! - `health ev`: a check that changes nothing (thousands a second);
//! - `stats`: one IPVS stats sample (the load; at most once a second);
//! - `withdraw`: the last server of a VIP dies: the input alone, which returns the
//!   withdraw, and then its `settle` (the weights of that one service);
//! - `spill step`: a sample that moves the spill share, and the number of kernel
//!   requests it makes: with idc1.toml's `client_devices` the spill split's few
//!   (decision 0006), plus the weights of the services left with no local capacity by
//!   the withdraws above (those place their share through their own peer
//!   destinations).
//!
//! Prints numbers only. `cargo run --release -p anycastd --example site_scale [N...]`
//! (default 10 100 1000 10000)

use std::time::{Duration, Instant};

use geo_balancer::Time;
use geo_balancer::health::ProbeOutcome;

#[path = "scale/mod.rs"]
mod scale;
use scale::{deliver, event, refused, scaled, stats};

const T0: Time = Time(1_800_000_000_000);

fn at(ms: u64) -> Time {
    T0.plus(Duration::from_millis(ms))
}

fn per_call(reps: u64, start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0 / reps as f64
}

fn main() {
    let sizes = scale::sizes();
    println!(
        "{:>9} {:>8} {:>9} {:>11} {:>9} {:>16} {:>10} {:>12} {:>9}",
        "services",
        "servers",
        "idle us",
        "health us",
        "stats ms",
        "withdraw us",
        "settle us",
        "spill ms",
        "requests"
    );
    for n in sizes {
        let cfg = scaled(n);
        let quiet = stats(&cfg, 7);
        let (mut site, ids) = scale::serving(&cfg, T0);
        site.on_stats(at(300), &quiet);
        site.settle(at(300));
        let reps = (200_000 / n).clamp(20, 20_000) as u64;
        let mut t = 400;

        let start = Instant::now();
        for _ in 0..reps {
            t += 1;
            std::hint::black_box(site.next_deadline(at(t)));
            std::hint::black_box(site.settle(at(t)));
        }
        let idle = per_call(reps, start) * 1000.0;

        let start = Instant::now();
        for i in 0..reps {
            t += 1;
            let id = &ids[i as usize % ids.len()];
            std::hint::black_box(site.on_health(event(id, at(t), ProbeOutcome::Success)));
            std::hint::black_box(site.settle(at(t)));
        }
        let health = per_call(reps, start) * 1000.0;

        let sample_reps = reps.min(200);
        let start = Instant::now();
        for _ in 0..sample_reps {
            t += 1000;
            site.on_stats(at(t), &quiet);
            std::hint::black_box(site.settle(at(t)));
        }
        let stats_ms = per_call(sample_reps, start);

        // The last server of a VIP dies (the first three already went): the input
        // that returns the withdraw, then the settle after it. One VIP per rep.
        let vips = (n as u64 / 2).min(reps).max(1);
        let (mut urgent, mut settle) = (Duration::ZERO, Duration::ZERO);
        for v in 0..vips as usize {
            t += 1;
            for id in &ids[v * 4..v * 4 + 3] {
                for _ in 0..3 {
                    site.on_health(event(id, at(t), refused(id)));
                }
            }
            site.settle(at(t));
            let last = &ids[v * 4 + 3];
            let s0 = Instant::now();
            let e = site.on_health(event(last, at(t), refused(last)));
            let s1 = Instant::now();
            std::hint::black_box(site.settle(at(t)));
            settle += s1.elapsed();
            urgent += s1 - s0;
            assert!(
                matches!(e.first(), Some(anycastd::site::Effect::Withdraw { .. })),
                "{e:?}"
            );
        }
        let withdraw = urgent.as_secs_f64() * 1e6 / vips as f64;
        let settle_us = settle.as_secs_f64() * 1e6 / vips as f64;

        // A light peer, then a hot sample: the spill starts.
        t += 1000;
        deliver(&mut site, &cfg, 0.3, 1, at(t));
        site.settle(at(t));
        t += 1000;
        let hot = stats(&cfg, 250); // well above 1.1 whatever died above
        let s0 = Instant::now();
        site.on_stats(at(t), &hot);
        let e = site.settle(at(t));
        let spill = per_call(1, s0);
        let requests: usize = e
            .iter()
            .map(|e| match e {
                anycastd::site::Effect::Apply(r) => r.len(),
                _ => 0,
            })
            .sum();
        println!(
            "{n:>9} {:>8} {idle:>9.2} {health:>11.2} {stats_ms:>9.3} {withdraw:>16.2} {settle_us:>10.1} {spill:>12.2} {requests:>9}",
            ids.len()
        );
    }
}
