//! Benchmark: tunnel-forwarder against ipvsadm on the lab kernel.
//!
//! `cargo run -p tunnel-forwarder --example ipvs_bench` (as root, on a machine with
//! the lab kernel) boots the UML guest and runs itself inside it. Inside, it applies
//! N services x 4 destinations (default N = 1000, `TF_BENCH_SERVICES`), changes one
//! weight, reads everything back, reconciles again (zero changes expected), then does
//! the same with `ipvsadm -R`, one `ipvsadm` call per rule (a sample of 200 calls,
//! extrapolated), `ipvsadm -e` and `ipvsadm -Ln`, and prints `BENCH` lines with the
//! ratios.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tunnel_forwarder::{
    DesiredState, Dest, Forward, Forwarder, Protocol, Request, ServiceConfig, ServiceKey, Vip,
    VipDevice, VipService,
};

const PORTS_PER_VIP: usize = 100;

fn main() {
    let n: usize = std::env::var("TF_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    if anycast_lab::uml::guest::active().is_some() {
        in_guest(n);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let n_s = n.to_string();
    anycast_lab::uml::Lab::new("tf-bench")
        .guest_exec(&exe, &[], &[("TF_BENCH_SERVICES", n_s.as_str())])
        .timeout(Duration::from_secs(240))
        .run_bench();
}

fn vip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 200, (i / PORTS_PER_VIP) as u8, 1))
}

fn port(i: usize) -> u16 {
    1000 + (i % PORTS_PER_VIP) as u16
}

fn dest(i: usize, j: usize) -> Dest {
    Dest::new(
        IpAddr::V4(Ipv4Addr::new(10, 50, (i % 250) as u8, 10 + j as u8)),
        port(i),
        Forward::Nat,
        1,
    )
}

fn desired(n: usize) -> DesiredState {
    let mut vips: Vec<Vip> = Vec::new();
    for i in 0..n {
        if i % PORTS_PER_VIP == 0 {
            vips.push(Vip {
                addr: vip(i),
                device: VipDevice::Loopback,
                services: vec![],
            });
        }
        vips.last_mut().expect("vip").services.push(VipService {
            protocol: Protocol::Tcp,
            port: port(i),
            config: ServiceConfig::default(),
            local: (0..4).map(|j| dest(i, j)).collect(),
            peers: vec![],
            tunnel_in: None,
        });
    }
    DesiredState {
        vips,
        ..DesiredState::default()
    }
}

fn key(i: usize) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: vip(i),
        port: port(i),
    }
}

fn sh(cmd: &str) -> Duration {
    let t = Instant::now();
    let ok = Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{cmd} failed");
    t.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(step: &str, ok: bool, detail: &str) {
    anycast_lab::uml::guest::report(step, ok, detail);
}

fn in_guest(n: usize) {
    let mut fw = Forwarder::open().expect("open");
    let d = desired(n);
    let rules = n * 5;

    // 1. Full apply from an empty kernel.
    let t = Instant::now();
    let r1 = fw.reconcile(&d).expect("reconcile");
    let apply = t.elapsed();
    println!(
        "BENCH tf_apply services={n} dests={} changes={} total_ms={:.1} (read {:.1} + apply {:.1})",
        n * 4,
        r1.changes,
        ms(apply),
        ms(r1.read),
        ms(r1.apply)
    );

    // 2. Second reconcile: zero changes.
    let t = Instant::now();
    let r2 = fw.reconcile(&d).expect("reconcile");
    let second = t.elapsed();
    println!(
        "BENCH tf_second_reconcile changes={} ms={:.1}",
        r2.changes,
        ms(second)
    );
    report(
        "second_reconcile_zero_changes",
        r2.changes == 0,
        &format!("{}", r2.changes),
    );

    // 3. One weight change, as the kernel request alone and as a full reconcile.
    let mut samples = Vec::new();
    for w in 2..12u32 {
        let mut dd = dest(n / 2, 1);
        dd.weight = w;
        let req = [Request::SetDest(key(n / 2), dd)];
        let t = Instant::now();
        fw.apply(&req).expect("set dest");
        samples.push(t.elapsed());
    }
    samples.sort();
    let weight = samples[samples.len() / 2];
    let mut d2 = d.clone();
    d2.vips[(n / 2) / PORTS_PER_VIP].services[(n / 2) % PORTS_PER_VIP].local[1].weight = 42;
    let t = Instant::now();
    let r3 = fw.reconcile(&d2).expect("reconcile");
    let weight_reconcile = t.elapsed();
    println!(
        "BENCH tf_weight_change median_ms={:.3} (10 samples) reconcile_ms={:.1} changes={}",
        ms(weight),
        ms(weight_reconcile),
        r3.changes
    );
    report(
        "weight_change_is_one_edit",
        r3.changes == 1 && matches!(r3.requests[0], Request::SetDest(..)),
        "",
    );

    // 4. Full read (what a reconcile does first).
    let t = Instant::now();
    let stats = fw.stats().expect("stats");
    let read = t.elapsed();
    let dests: usize = stats.iter().map(|s| s.dests.len()).sum();
    println!(
        "BENCH tf_full_read services={} dests={dests} ms={:.1}",
        stats.len(),
        ms(read)
    );

    // ipvsadm: the same rules with -R.
    let mut rules_txt = String::new();
    for i in 0..n {
        let v = vip(i);
        rules_txt += &format!("-A -t {v}:{} -s wrr\n", port(i));
        for j in 0..4 {
            rules_txt += &format!(
                "-a -t {v}:{} -r {}:{} -m -w 1\n",
                port(i),
                dest(i, j).addr,
                port(i)
            );
        }
    }
    let path = anycast_lab::uml::guest::work_dir().join("rules.txt");
    std::fs::write(&path, &rules_txt).expect("rules");
    sh("ipvsadm -C");
    let restore = sh(&format!("ipvsadm -R < {}", path.display()));
    println!("BENCH ipvsadm_restore rules={rules} ms={:.1}", ms(restore));
    let list = sh("ipvsadm -Ln");
    println!("BENCH ipvsadm_list ms={:.1}", ms(list));
    let mut samples = Vec::new();
    for w in 2..7u32 {
        samples.push(sh(&format!(
            "ipvsadm -e -t {}:{} -r {}:{} -m -w {w}",
            vip(n / 2),
            port(n / 2),
            dest(n / 2, 1).addr,
            port(n / 2)
        )));
    }
    samples.sort();
    let ipvsadm_weight = samples[samples.len() / 2];
    println!(
        "BENCH ipvsadm_weight_change median_ms={:.2}",
        ms(ipvsadm_weight)
    );

    // One call per rule: a sample of 200 calls (40 services x 5), extrapolated.
    sh("ipvsadm -C");
    let sample_services = 40.min(n);
    let mut calls = 0usize;
    let t = Instant::now();
    for line in rules_txt.lines().take(sample_services * 5) {
        let mut c = Command::new("ipvsadm");
        c.args(line.split_whitespace()).stdout(Stdio::null());
        assert!(c.status().map(|s| s.success()).unwrap_or(false), "{line}");
        calls += 1;
    }
    let per_call = t.elapsed() / calls as u32;
    let per_rule_total = per_call * rules as u32;
    println!(
        "BENCH ipvsadm_per_rule sampled_calls={calls} per_call_ms={:.2} extrapolated_total_ms={:.0}",
        ms(per_call),
        ms(per_rule_total)
    );

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "BENCH ratios apply_vs_restore={:.1}x apply_vs_per_rule={:.0}x weight_vs_ipvsadm={:.0}x read_vs_list={:.1}x",
        ratio(restore, apply),
        ratio(per_rule_total, apply),
        ratio(ipvsadm_weight, weight),
        ratio(list, read)
    );
    let _ = std::io::stdout().flush();
    report(
        "apply_5x_faster_than_restore",
        ratio(restore, apply) >= 5.0,
        &format!("{:.1}x", ratio(restore, apply)),
    );
    report(
        "weight_change_under_1ms",
        weight < Duration::from_millis(1),
        &format!("{:.3} ms", ms(weight)),
    );
    report(
        "full_read_under_100ms",
        read < Duration::from_millis(100),
        &format!("{:.1} ms", ms(read)),
    );
}
