//! `fleet-sim [--sites N] [--seed S] [--loss P] [--hours H] [--max-skew S] [--no-spill] [--three-site-day]`
//!
//! Runs the day without spill and with it and prints both side by side; with
//! `--no-spill`, only the day without.

use std::process::ExitCode;
use std::time::Instant;

use fleet_sim::{Config, table};

const USAGE: &str = "usage: fleet-sim [--sites N] [--seed S] [--loss P] [--hours H] [--bursts B] \
                     [--outages O] [--max-skew SECONDS] [--no-spill] [--three-site-day]";

fn parse(args: &[String]) -> Result<(Config, bool), String> {
    let mut cfg = Config::default();
    let mut no_spill = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value"))
                .cloned()
        };
        let bad = |name: &str, v: &str| format!("{name}: cannot read {v:?}");
        match a.as_str() {
            "--sites" => {
                let v = value(a)?;
                cfg.sites = v.parse().map_err(|_| bad(a, &v))?
            }
            "--seed" => {
                let v = value(a)?;
                cfg.seed = v.parse().map_err(|_| bad(a, &v))?
            }
            "--loss" => {
                let v = value(a)?;
                cfg.loss = v.parse().map_err(|_| bad(a, &v))?
            }
            "--hours" => {
                let v = value(a)?;
                cfg.hours = v.parse().map_err(|_| bad(a, &v))?
            }
            "--bursts" => {
                let v = value(a)?;
                cfg.bursts_per_day = v.parse().map_err(|_| bad(a, &v))?
            }
            "--outages" => {
                let v = value(a)?;
                cfg.outages_per_day = v.parse().map_err(|_| bad(a, &v))?
            }
            "--max-skew" => {
                let v = value(a)?;
                cfg.max_clock_skew_s = v.parse().map_err(|_| bad(a, &v))?
            }
            "--no-spill" => no_spill = true,
            "--three-site-day" => cfg.three_site_day = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok((cfg, no_spill))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cfg, no_spill) = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let without = fleet_sim::run(&Config {
        spill: false,
        ..cfg.clone()
    });
    let without_wall = started.elapsed();
    let with = if no_spill {
        Ok(None)
    } else {
        fleet_sim::run(&Config {
            spill: true,
            ..cfg.clone()
        })
        .map(Some)
    };
    let with_wall = started.elapsed() - without_wall;
    match (without, with) {
        (Ok(a), Ok(b)) => {
            let sites = if cfg.three_site_day { 3 } else { cfg.sites };
            println!(
                "{sites} sites, {} h from 00:00 UTC, seed {}, report loss {:.0}%",
                cfg.hours,
                cfg.seed,
                cfg.loss * 100.0
            );
            println!();
            print!("{}", table(&a, b.as_ref()));
            println!();
            println!(
                "wall time: {:.1}s without spill, {:.1}s with spill",
                without_wall.as_secs_f64(),
                with_wall.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("fleet-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
