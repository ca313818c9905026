//! The benchmark runner (issue 8). `anycast-bench help` lists the subcommands;
//! scripts/bench.sh runs them all.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anycast_bench::stats::{ratio, show};
use anycast_bench::withdraw::{Crash, Failure, Figures, Lab, Opts, Side};

type Res = Result<(), Box<dyn std::error::Error>>;

fn usage() -> ! {
    eprintln!(
        "usage: anycast-bench withdraw [--runs N] [--anycastd PATH] [--only anycastd|exabgp]\n\
         \x20      anycast-bench silent [--runs N] [--loss-secs S] [--anycastd PATH]\n\
         \x20      anycast-bench crash [--runs N] [--only kill|linkdown|pathcut|bfd] [--anycastd PATH]\n\
         \x20      anycast-bench wayback [--runs N] [--downs 10,60] [--anycastd PATH]\n\
         \x20      anycast-bench footprint [--secs S] [--anycastd PATH]\n\
         \x20      anycast-bench checks [--servers 20,200,1000] [--secs S] [--rounds R] [--anycastd PATH] [--baseline PATH] [--exabgp-max N] [--split-cpus] [--loss P] [--settle S] [--sides anycastd,baseline,exabgp]\n\
         \x20      anycast-bench ingest [--sizes 100000,1000000] [--holds 90,9] [--only ours,bird,gobgp,frr]\n\
         \x20      anycast-bench recv GEN_ADDR HOLD   (our speaker as an ingest receiver; internal)\n\
         \x20      anycast-bench listen ADDR:PORT     (a real server; internal)\n\
         \x20      anycast-bench probe ADDR:PORT...   (exit 0 when any connects within 1 s; internal)"
    );
    std::process::exit(2)
}

fn main() -> Res {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("listen") => listen(args.get(1).unwrap_or_else(|| usage())),
        Some("probe") => probe(&args[1..]),
        Some("withdraw") => withdraw(&args[1..]),
        Some("recv") => recv(&args[1..]),
        Some("silent") => silent(&args[1..]),
        Some("crash") => crash(&args[1..]),
        Some("wayback") => wayback(&args[1..]),
        Some("footprint") => footprint(&args[1..]),
        Some("checks") => checks(&args[1..]),
        Some("ingest") => ingest(&args[1..]),
        _ => usage(),
    }
}

fn opt<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// A real server (`anycast_bench::listener`): holds connections until the peer
/// closes them; exits on its own after an hour at the latest.
fn listen(addr: &str) -> Res {
    Ok(anycast_bench::listener::run(addr)?)
}

/// Exit 0 when any address accepts a TCP connection within 1 s (tried in parallel).
fn probe(addrs: &[String]) -> Res {
    let hs: Vec<_> = addrs
        .iter()
        .filter_map(|a| a.parse::<SocketAddr>().ok())
        .map(|a| {
            std::thread::spawn(move || {
                TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok()
            })
        })
        .collect();
    let any = hs.into_iter().any(|h| h.join().unwrap_or(false));
    std::process::exit(if any { 0 } else { 1 })
}

/// `ANYCAST_BENCH_SETTLE_MS`: how long the route stays up before each failure (plus
/// a random 0-1 s); default 200 ms.
fn settle() -> Duration {
    Duration::from_millis(
        std::env::var("ANYCAST_BENCH_SETTLE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200),
    )
}

fn anycastd_path(args: &[String]) -> PathBuf {
    opt(args, "--anycastd")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
            PathBuf::from(dir).join("release/anycastd")
        })
}

fn run_variant(
    side: Side,
    how: Failure,
    runs: usize,
    limit: Duration,
    anycastd: &std::path::Path,
) -> Result<Figures, Box<dyn std::error::Error>> {
    eprintln!("== {side} / {how:?}: {runs} runs");
    let mut lab = Lab::start(side, anycastd)?;
    lab.settle = settle();
    let fig = lab.measure(how, runs, limit, |i| {
        if i % 20 == 0 {
            eprint!(" {i}");
        }
    })?;
    eprintln!();
    eprintln!("    {}", fig.line());
    Ok(fig)
}

fn withdraw(args: &[String]) -> Res {
    let runs: usize = opt(args, "--runs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    // ExaBGP at its defaults takes ~12 s per run (5 s checks, rise 3): fewer runs.
    let slow_runs: usize = opt(args, "--slow-runs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(runs);
    let only = opt(args, "--only");
    let anycastd = anycastd_path(args);
    let mut rows: Vec<(String, Figures)> = Vec::new();
    let ours_def = Side::Anycastd { check: None };
    let ours_fast = Side::Anycastd {
        check: Some(("200ms", "100ms", 1, 1)),
    };
    let mut variants: Vec<(Side, usize, Duration)> = Vec::new();
    if only != Some("exabgp") {
        variants.push((ours_def.clone(), runs, Duration::from_secs(15)));
        if only != Some("ours-defaults") {
            variants.push((ours_fast.clone(), runs, Duration::from_secs(5)));
        }
    }
    if only != Some("anycastd") && only != Some("ours-defaults") {
        for wod in [false, true] {
            variants.push((
                Side::Exabgp {
                    timing: None,
                    withdraw_on_down: wod,
                },
                slow_runs,
                Duration::from_secs(40),
            ));
        }
        variants.push((
            Side::Exabgp {
                timing: Some((1.0, 1.0, 1, 1)),
                withdraw_on_down: true,
            },
            runs,
            Duration::from_secs(10),
        ));
        variants.push((
            Side::Exabgp {
                timing: Some((0.2, 0.2, 1, 1)),
                withdraw_on_down: true,
            },
            runs,
            Duration::from_secs(10),
        ));
    }
    for (side, n, limit) in variants {
        let label = format!("{side} / Kill");
        match run_variant(side, Failure::Kill, n, limit, &anycastd) {
            Ok(f) => rows.push((label, f)),
            Err(e) => eprintln!("{label}: FAILED: {e}"),
        }
    }
    print_table("Benchmark 1: real servers killed -> withdraw", &rows);
    Ok(())
}

fn print_table(title: &str, rows: &[(String, Figures)]) {
    println!("\n{title} (ms: p50 / p99 / max; ratio = p50 theirs / p50 ours defaults)");
    let ours = rows.first().map(|(_, f)| f);
    for (label, f) in rows {
        let wire_ratio = ours.map(|o| ratio(&f.wire, &o.wire)).unwrap_or_default();
        let kern_ratio = ours
            .map(|o| ratio(&f.kernel, &o.kernel))
            .unwrap_or_default();
        println!("{label}");
        println!(
            "    n={} missed={}  wire {}  [{wire_ratio}]  kernel {}  [{kern_ratio}]  upstream part {}",
            f.wire.len(),
            f.missed,
            show(&f.wire),
            show(&f.kernel),
            show(&f.upstream)
        );
        if !f.stamped.is_empty() {
            println!(
                "    server FIN -> wire {}  kill -> last FIN {}  kill -> wire, kernel stamp {}",
                show(&f.gone),
                show(&f.died),
                show(&f.stamped)
            );
        }
    }
}

/// Our speaker as an ingest receiver: one peer, prints `count N` whenever its
/// received-prefix count changes (polled every 5 ms); ends after 15 minutes.
fn recv(args: &[String]) -> Res {
    use bgp_speaker::{PeerConfig, Speaker, SpeakerConfig};
    let peer: std::net::IpAddr = args.first().unwrap_or_else(|| usage()).parse()?;
    let hold: u16 = args.get(1).unwrap_or_else(|| usage()).parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut p = PeerConfig::new("gen", peer, 65001, 65100, "10.202.0.2".parse()?);
        p.hold_time = hold;
        p.connect_retry = 1;
        let speaker = Speaker::start(SpeakerConfig {
            peers: vec![p],
            listen: None,
        })
        .await?;
        let start = Instant::now();
        let mut last = usize::MAX;
        while start.elapsed() < Duration::from_secs(900) {
            let n = speaker
                .status()
                .await
                .first()
                .map(|s| s.prefixes_received)
                .unwrap_or(0);
            if n != last {
                println!("count {n}");
                last = n;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        speaker.shutdown("done").await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

fn ingest(args: &[String]) -> Res {
    use anycast_bench::ingest::{self, Receiver};
    let list = |name: &str, def: &str| -> Vec<String> {
        opt(args, name)
            .unwrap_or(def)
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let sizes: Vec<usize> = list("--sizes", "100000,1000000")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let holds: Vec<u16> = list("--holds", "90,9")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let recvs: Vec<Receiver> = list("--only", "ours,bird,frr,gobgp")
        .iter()
        .filter_map(|s| match s.as_str() {
            "ours" => Some(Receiver::Ours),
            "bird" => Some(Receiver::Bird),
            "frr" => Some(Receiver::Frr),
            "gobgp" => Some(Receiver::Gobgp),
            _ => None,
        })
        .collect();
    let limit = Duration::from_secs(
        opt(args, "--limit")
            .and_then(|s| s.parse().ok())
            .unwrap_or(120),
    );
    if let Some(n) = sizes.iter().find(|&&n| n > ingest::MAX_PREFIXES) {
        return Err(format!(
            "--sizes {n}: the generator makes at most {} distinct prefixes",
            ingest::MAX_PREFIXES
        )
        .into());
    }
    let exe = std::env::current_exe()?;
    println!(
        "\nBenchmark 3: BGP ingest (time = first UPDATE to all counted; ratio = theirs / ours)"
    );
    println!(
        "{:<12} {:>8} {:>4} {:>10} {:>8} {:>10} {:>8} {:>9} {:>7}",
        "receiver",
        "prefixes",
        "hold",
        "time s",
        "ratio",
        "peak MiB",
        "cpu s",
        "ka gap s",
        "dropped"
    );
    for &n in &sizes {
        let blob = std::sync::Arc::new(ingest::updates(n));
        for &hold in &holds {
            let mut ours: Option<Duration> = None;
            for &r in &recvs {
                let res = ingest::run(r, n, hold, limit, &exe, blob.clone());
                match res {
                    Ok(i) => {
                        if r == Receiver::Ours {
                            ours = i.all_counted;
                        }
                        let t = i
                            .all_counted
                            .map_or(format!(">{}s ({})", limit.as_secs(), i.counted), |d| {
                                format!("{:.3}", d.as_secs_f64())
                            });
                        let ratio = match (i.all_counted, ours) {
                            (Some(a), Some(o)) if !o.is_zero() => {
                                format!("{:.1}x", a.as_secs_f64() / o.as_secs_f64())
                            }
                            _ => "-".into(),
                        };
                        println!(
                            "{:<12} {:>8} {:>4} {:>10} {:>8} {:>10.1} {:>8.2} {:>9.2} {:>7}",
                            r.to_string(),
                            n,
                            hold,
                            t,
                            ratio,
                            i.usage.peak_rss_kib as f64 / 1024.0,
                            i.cpu.as_secs_f64(),
                            i.keepalive_gap.as_secs_f64(),
                            i.dropped
                        );
                    }
                    Err(e) => println!("{:<12} {:>8} {:>4} FAILED: {e}", r.to_string(), n, hold),
                }
            }
        }
    }
    Ok(())
}

/// The silent failure (every packet to the real servers dropped), and false withdraws
/// under 1% probe loss.
fn silent(args: &[String]) -> Res {
    let runs: usize = opt(args, "--runs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let loss_secs: u64 = opt(args, "--loss-secs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let anycastd = anycastd_path(args);
    // For reference, checks every 2 s (Side::ANYCASTD_2S): 3 misses of 2 s probes plus
    // the 1 s timeout, about 6-7 s.
    let exabgp_fast = Side::Exabgp {
        timing: Some((0.2, 0.2, 1, 1)),
        withdraw_on_down: true,
    };
    let variants = [
        (Side::Anycastd { check: None }, Duration::from_secs(5)),
        (Side::ANYCASTD_2S, Duration::from_secs(20)),
        (exabgp_fast.clone(), Duration::from_secs(10)),
    ];
    let mut rows = Vec::new();
    for (side, limit) in variants {
        let label = format!("{side} / Silent");
        match run_variant(side, Failure::Silent, runs, limit, &anycastd) {
            Ok(f) => rows.push((label, f)),
            Err(e) => eprintln!("{label}: FAILED: {e}"),
        }
    }
    print_table(
        "Benchmark 1b: real servers silently black-holed -> withdraw",
        &rows,
    );
    println!(
        "\n1% of packets to the real servers dropped (iptables statistic), servers up, {loss_secs} s each:"
    );
    for side in [Side::Anycastd { check: None }, exabgp_fast] {
        let r = (|| -> Result<(usize, String), Box<dyn std::error::Error>> {
            let lab = Lab::start(side.clone(), &anycastd)?;
            let downs0 = lab.health_downs();
            lab.probe_loss(0.01)?;
            let n = lab.count_false_withdraws(Duration::from_secs(loss_secs));
            let downs = match (downs0, lab.health_downs()) {
                (Some(a), Some(b)) => format!(", {} real-server downs", b.saturating_sub(a)),
                _ => String::new(),
            };
            Ok((n, downs))
        })();
        match r {
            Ok((n, downs)) => println!("    {side}: {n} false withdraws{downs}"),
            Err(e) => println!("    {side}: FAILED: {e}"),
        }
    }
    Ok(())
}

/// Site crash: the speaker SIGKILLed, the uplink down, the path cut; hold 9/3 and 3/1.
fn crash(args: &[String]) -> Res {
    let runs: usize = opt(args, "--runs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let anycastd = anycastd_path(args);
    let mut rows = Vec::new();
    let bfd_only = opt(args, "--only").is_some_and(|o| o.eq_ignore_ascii_case("bfd"));
    for hold in [(9, 3), (3, 1)] {
        if bfd_only {
            break;
        }
        let sides = [
            Side::Anycastd { check: None },
            Side::Exabgp {
                timing: Some((1.0, 1.0, 1, 1)),
                withdraw_on_down: true,
            },
        ];
        for side in sides {
            for how in [Crash::Kill, Crash::LinkDown, Crash::PathCut] {
                if opt(args, "--only").is_some_and(|o| !format!("{how:?}").eq_ignore_ascii_case(o))
                {
                    continue;
                }
                let label = format!("{side} / {how:?} / hold {}/{}", hold.0, hold.1);
                eprintln!("== {label}: {runs} runs");
                let r = Lab::start_with(
                    side.clone(),
                    &anycastd,
                    Opts {
                        hold,
                        ..Opts::default()
                    },
                )
                .and_then(|mut lab| {
                    lab.crash(
                        how,
                        runs,
                        Duration::from_secs(u64::from(hold.0) * 2 + 5),
                        &anycastd,
                    )
                });
                match r {
                    Ok(f) => {
                        // As it goes: a long run cut short keeps what it measured.
                        eprintln!("    {}", f.kernel_line());
                        rows.push((label, f));
                    }
                    Err(e) => eprintln!("{label}: FAILED: {e}"),
                }
            }
        }
    }
    // BFD on both sides (FRR's bfdd, ours): the cut path again, hold 9/3.
    for bfd in [(100u32, 3u8), (300, 3)] {
        if opt(args, "--only")
            .is_some_and(|o| !o.eq_ignore_ascii_case("pathcut") && !o.eq_ignore_ascii_case("bfd"))
        {
            continue;
        }
        let side = Side::Anycastd { check: None };
        let label = format!("{side} / PathCut / hold 9/3, BFD {} ms x {}", bfd.0, bfd.1);
        eprintln!("== {label}: {runs} runs");
        let r = Lab::start_with(
            side,
            &anycastd,
            Opts {
                bfd: Some(bfd),
                ..Opts::default()
            },
        )
        .and_then(|mut lab| lab.crash(Crash::PathCut, runs, Duration::from_secs(23), &anycastd));
        match r {
            Ok(f) => {
                eprintln!("    {}", f.kernel_line());
                rows.push((label, f));
            }
            Err(e) => eprintln!("{label}: FAILED: {e}"),
        }
    }
    println!(
        "\nBenchmark 2: site crash -> route gone from FRR's kernel table (ms: p50 / p99 / max)"
    );
    for (label, f) in &rows {
        println!("{label}\n    {}", f.kernel_line());
    }
    Ok(())
}

/// The way back: the upstream's BGP (FRR) killed, down 10 s or 60 s, started again;
/// time from its start to our route back in its kernel table. Then our link to it
/// down as long and up again: time from the carrier back to the route back.
fn wayback(args: &[String]) -> Res {
    let runs: usize = opt(args, "--runs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let downs: Vec<u64> = opt(args, "--downs")
        .unwrap_or("10,60")
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let anycastd = anycastd_path(args);
    let mut lines = Vec::new();
    for down in downs {
        let mut lab = Lab::start_with(Side::Anycastd { check: None }, &anycastd, Opts::default())?;
        let d = Duration::from_secs(down);
        let limit = Duration::from_secs(120);
        for (what, link) in [
            (
                format!("upstream down {down} s -> route back after its restart"),
                false,
            ),
            (
                format!("link down {down} s -> route back after the carrier"),
                true,
            ),
        ] {
            let mut took = Vec::new();
            for _ in 0..runs {
                let back = if link {
                    lab.link_back(d, limit)?
                } else {
                    lab.upstream_restart(d, limit)?
                };
                match back {
                    Some(t) => took.push(t),
                    None => eprintln!("{what}: not back in 120 s"),
                }
            }
            took.sort();
            let ms: Vec<String> = took
                .iter()
                .map(|t| format!("{:.0}", t.as_secs_f64() * 1000.0))
                .collect();
            let line = format!("{what} (ms): {}", ms.join(" "));
            eprintln!("{line}");
            lines.push(line);
        }
    }
    println!("\nBenchmark 2b: the way back");
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

/// anycastd with 2 BGP sessions and 20 TCP checks (at its defaults, every 200 ms, and
/// every 2 s), against ExaBGP with 20 healthcheck processes at interval 2: RSS and CPU
/// sampled every second.
fn footprint(args: &[String]) -> Res {
    use anycast_bench::stats::tree_usage;
    let secs: u64 = opt(args, "--secs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let anycastd = anycastd_path(args);
    let opts = Opts {
        servers: 20,
        sessions: 2,
        ..Opts::default()
    };
    println!("\nBenchmark 5: footprint over {secs} s, 2 BGP sessions, 20 TCP health checks");
    println!(
        "{:<46} {:>10} {:>10} {:>10} {:>8}",
        "side", "RSS MiB", "max MiB", "cpu s", "cpu %"
    );
    for side in [
        Side::Anycastd { check: None },
        Side::ANYCASTD_2S,
        Side::Exabgp {
            timing: None,
            withdraw_on_down: true,
        },
    ] {
        let r = (|| -> Result<(f64, f64, f64), Box<dyn std::error::Error>> {
            let lab = Lab::start_with(side.clone(), &anycastd, opts)?;
            let pid = lab.speaker_pid().ok_or("no speaker")?;
            // Let start-up settle, then measure the steady state.
            std::thread::sleep(Duration::from_secs(5));
            let u0 = tree_usage(pid).ok_or("speaker gone")?;
            let mut max_rss = u0.rss_kib;
            let mut last = u0;
            for _ in 0..secs {
                std::thread::sleep(Duration::from_secs(1));
                last = tree_usage(pid).ok_or("speaker gone")?;
                max_rss = max_rss.max(last.rss_kib);
            }
            Ok((
                last.rss_kib as f64 / 1024.0,
                max_rss as f64 / 1024.0,
                (last.cpu - u0.cpu.min(last.cpu)).as_secs_f64(),
            ))
        })();
        match r {
            Ok((rss, max, cpu)) => println!(
                "{:<46} {:>10.1} {:>10.1} {:>10.2} {:>8.3}",
                match side {
                    // Its processes get `--interval 2` whatever `timing` says.
                    Side::Exabgp { .. } => "exabgp + 20 healthcheck processes every 2 s".into(),
                    _ => side.to_string(),
                },
                rss,
                max,
                cpu,
                cpu * 100.0 / secs.max(1) as f64
            ),
            Err(e) => println!("{side}: FAILED: {e}"),
        }
    }
    Ok(())
}

/// Benchmark 5 at scale: N real servers checked by anycastd (and a baseline build of
/// it, and ExaBGP up to `--exabgp-max` servers), rounds interleaved A B A B.
fn checks(args: &[String]) -> Res {
    use anycast_bench::checks::{Checker, run};
    let sizes: Vec<usize> = opt(args, "--servers")
        .unwrap_or("20,200,1000")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&n| (1..=10_000).contains(&n))
        .collect();
    let secs: u64 = opt(args, "--secs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rounds: usize = opt(args, "--rounds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let exabgp_max: usize = opt(args, "--exabgp-max")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut sides = vec![("anycastd", Checker::Anycastd(anycastd_path(args)))];
    if let Some(b) = opt(args, "--baseline") {
        sides.push(("baseline", Checker::Anycastd(b.into())));
    }
    sides.push(("exabgp", Checker::Exabgp));
    let split = args.iter().any(|a| a == "--split-cpus");
    // ExaBGP starts a Python process per server: at 1000 that takes minutes.
    let settle = Duration::from_secs(
        opt(args, "--settle")
            .and_then(|s| s.parse().ok())
            .unwrap_or(15),
    );
    let only: Option<Vec<&str>> = opt(args, "--sides").map(|s| s.split(',').collect());
    sides.retain(|(name, _)| only.as_ref().is_none_or(|o| o.contains(name)));
    let loss: Option<f64> = opt(args, "--loss")
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|p| (0.0..1.0).contains(p));
    println!(
        "\nBenchmark 5 at scale: {secs} s windows after {settle:?}, {rounds} rounds interleaved{}{}",
        if split {
            ", checker on CPU 0, the servers' kernel and every packet's arrival on CPU 1"
        } else {
            ""
        },
        loss.map_or(String::new(), |p| format!(
            ", {}% of packets lost each way",
            p * 100.0
        ))
    );
    println!(
        "{:>6} {:<10} {:>8} {:>10} {:>8} {:>12} {:>9} {:>6}",
        "n", "side", "cpu %", "server %", "RSS MiB", "conn/s/srv", "TIME_WAIT", "downs"
    );
    for &n in &sizes {
        for round in 0..rounds {
            for (name, side) in &sides {
                if matches!(side, Checker::Exabgp) && (n > exabgp_max || round > 0) {
                    continue;
                }
                match run(n, side, settle, Duration::from_secs(secs), split, loss) {
                    Ok(f) => println!(
                        "{n:>6} {name:<10} {:>8.2} {:>10.2} {:>8.1} {:>12.3} {:>9} {:>6}",
                        f.cpu_pct,
                        f.server_cpu_pct,
                        f.rss_mib,
                        f.conns_per_server,
                        f.time_wait,
                        f.downs
                    ),
                    Err(e) => println!("{n:>6} {name:<10} FAILED: {e}"),
                }
            }
        }
    }
    Ok(())
}
