//! `fleet-sim [--sites N] [--seed S] [--loss P] [--hours H] [--max-skew S] [--no-spill]
//! [--three-site-day] [--plots DIR] [--all-down MINUTE+MINUTES]`
//!
//! Runs the day without spill and with it, prints both side by side and each of issue
//! 18's targets as PASS or FAIL; with `--no-spill`, only the day without. `--plots DIR`
//! writes the SVG plots there. `--all-down 600+30` instead fails every site's checks
//! from minute 600 for 30 minutes and compares `[site] all_down = "withdraw"` with
//! `"announce"` (the last-announcer guard).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use fleet_sim::{Config, all_down_table, table, targets};
use geo_balancer::AllDown;

/// The report period every site uses (`ExchangeConfig::new`).
const PERIOD_S: u64 = 120;

const USAGE: &str = "usage: fleet-sim [--sites N] [--seed S] [--loss P] [--hours H] [--bursts B] \
                     [--outages O] [--max-skew SECONDS] [--no-spill] [--three-site-day] [--plots DIR] \
                     [--all-down MINUTE+MINUTES]";

struct Args {
    cfg: Config,
    no_spill: bool,
    plots: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut cfg = Config::default();
    let mut no_spill = false;
    let mut plots = None;
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
            "--plots" => plots = Some(PathBuf::from(value(a)?)),
            "--all-down" => {
                let v = value(a)?;
                let (at, len) = v
                    .split_once('+')
                    .and_then(|(x, y)| Some((x.parse::<u64>().ok()?, y.parse::<u64>().ok()?)))
                    .ok_or_else(|| bad(a, &v))?;
                cfg.all_down_event = Some((at * 60, len * 60));
            }
            "--no-spill" => no_spill = true,
            "--three-site-day" => cfg.three_site_day = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        cfg,
        no_spill,
        plots,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Args {
        cfg,
        no_spill,
        plots,
    } = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some((at, len)) = cfg.all_down_event {
        return all_down(&cfg, at, len);
    }
    let started = Instant::now();
    let without = fleet_sim::run_traced(&Config {
        spill: false,
        ..cfg.clone()
    });
    let without_wall = started.elapsed();
    let with = if no_spill {
        Ok(None)
    } else {
        fleet_sim::run_traced(&Config {
            spill: true,
            ..cfg.clone()
        })
        .map(Some)
    };
    let with_wall = started.elapsed() - without_wall;
    match (without, with) {
        (Ok((a, trace_a)), Ok(b)) => {
            let (b, trace_b) = b.map_or((None, None), |(m, t)| (Some(m), Some(t)));
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
            if let Some(b) = &b {
                let min_cut = if cfg.three_site_day { 0.9 } else { 0.8 };
                println!("targets (issue 18):");
                print!(
                    "{}",
                    targets::render(&targets::check(&a, b, min_cut, PERIOD_S))
                );
                println!();
            }
            if let Some(t) = &trace_b {
                print!("{}", long_herds(t, PERIOD_S));
            }
            println!(
                "wall time: {:.1}s without spill, {:.1}s with spill",
                without_wall.as_secs_f64(),
                with_wall.as_secs_f64()
            );
            if let Some(dir) = plots {
                let empty = fleet_sim::trace::Trace::default();
                let with = trace_b.as_ref().unwrap_or(&empty);
                match fleet_sim::plots::write_all(&dir, &trace_a, with, PERIOD_S) {
                    Ok(files) => {
                        for f in files {
                            println!("wrote {}", f.display());
                        }
                    }
                    Err(e) => {
                        eprintln!("fleet-sim: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("fleet-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every herding episode longer than one report period, longest first.
fn long_herds(t: &fleet_sim::trace::Trace, period_s: u64) -> String {
    let mut long: Vec<_> = t.herds.iter().filter(|e| e.len_s() > period_s).collect();
    if long.is_empty() {
        return String::new();
    }
    long.sort_by_key(|e| std::cmp::Reverse(e.len_s()));
    let mut out = format!("herding episodes longer than one period ({period_s} s):\n");
    for e in long {
        out += &format!(
            "  {:<8} from {:02}:{:02}:{:02} UTC for {} s, peak {:.2}\n",
            e.site,
            e.start_s / 3600,
            e.start_s / 60 % 60,
            e.start_s % 60,
            e.len_s(),
            e.peak
        );
    }
    out + "\n"
}

/// The all-down event under both policies.
fn all_down(cfg: &Config, at: u64, len: u64) -> ExitCode {
    let started = Instant::now();
    let run = |all_down| {
        fleet_sim::run(&Config {
            all_down,
            ..cfg.clone()
        })
    };
    match (run(AllDown::Withdraw), run(AllDown::Announce)) {
        (Ok(w), Ok(a)) => {
            let sites = if cfg.three_site_day { 3 } else { cfg.sites };
            println!(
                "{sites} sites, seed {}, report loss {:.0}%: every site's checks fail from {:02}:{:02} UTC for {} min",
                cfg.seed,
                cfg.loss * 100.0,
                at / 3600,
                at / 60 % 60,
                len / 60
            );
            println!();
            print!("{}", all_down_table(&w, &a));
            println!();
            println!("wall time: {:.1}s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("fleet-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
