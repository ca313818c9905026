//! The site core and the kernel together, at scale, inside the lab kernel: N services
//! (one per VIP) x 4 real servers, built from configs/idc1.toml as `site_scale` does,
//! driven through the real [`Site`] and programmed through the real
//! [`tunnel_forwarder::Forwarder`]; then the real `anycastd` binary at idle.
//!
//! For each N (default 1000 and 10000):
//! 1. `Site::new` -> the first `Reconcile` through `Forwarder::reconcile` (the full
//!    apply); every server up (two good probes each, `settle`) -> `Apply` requests.
//! 2. A spill step (a light peer report, a hot stats sample, `settle`): the core's time
//!    and the kernel's (`Forwarder::apply`), and the request count (the config's client
//!    device `eth1`, a dummy here, carries the spill split of decision 0006); the ramp's next step
//!    one `step_period` later; one real server dying (`fall` refused probes).
//! 3. A full read (`Forwarder::stats`) and a second reconcile of the current desired
//!    state (0 changes expected): what the 30 s drift check costs.
//! 4. `anycastd` itself in a fresh network namespace with the same N services, the data
//!    plane on, one passive BGP neighbor, no peers, real servers on local addresses that
//!    refuse at once, checks at the largest interval (1 h: one probe per server at
//!    start, none in the window): its utime+stime over 60 s after 20 s to settle, as a
//!    share of one core. At the smallest N it runs once more with checks every 20 s,
//!    which prices one probe, so the figure with checks excluded can be told from the
//!    one with them (and the default 200 ms checks estimated).
//!
//! As root on a machine with the lab kernel:
//! `cargo build --release -p anycastd --examples --bins && target/release/examples/scale_lab [N...]`
//! (or `SCALE_LAB_SERVICES=1000,10000`; `SCALE_LAB_IDLE_SECS` for the window). Prints
//! `BENCH name value unit` lines, one figure each.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anycast_lab::uml::guest;
use anycastd::mapping;
use anycastd::site::{Effect, Site};
use geo_balancer::health::ProbeOutcome;
use geo_balancer::{ServerId, Time};
use tunnel_forwarder as tf;

#[path = "scale/mod.rs"]
mod scale;
use scale::{deliver, event, refused, scaled, stats, vip_addr};

const T0: Time = Time(1_800_000_000_000);
/// Least time for the daemon to start, program the kernel and probe every server once;
/// it must also have finished its first reconcile and gone quiet (below
/// `QUIET_SHARE` over a `QUIET_SLICE`), within `SETTLE_MAX`.
const SETTLE: Duration = Duration::from_secs(20);
const SETTLE_MAX: Duration = Duration::from_secs(300);
const QUIET_SLICE: Duration = Duration::from_secs(5);
const QUIET_SHARE: f64 = 0.25;
/// The idle window read from /proc/PID/stat.
const IDLE_WINDOW: Duration = Duration::from_secs(60);
/// The check interval of the run that prices the checks: it divides the window, and
/// that run's window starts half an interval off the checkers' ticks, so it holds
/// exactly `IDLE_WINDOW / CHECK_INTERVAL` rounds of probes.
const CHECK_INTERVAL: Duration = Duration::from_secs(20);
/// SIGTERM, then this long before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

fn at(ms: u64) -> Time {
    T0.plus(Duration::from_millis(ms))
}

fn bench(name: &str, value: impl std::fmt::Display, unit: &str) {
    println!("BENCH {name} {value} {unit}");
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty()
        && let Ok(s) = std::env::var("SCALE_LAB_SERVICES")
    {
        sizes = s.split(',').filter_map(|a| a.trim().parse().ok()).collect();
    }
    if sizes.is_empty() {
        sizes = vec![1000, 10_000];
    }
    // The addressing below has room for 40 x 256 VIPs.
    sizes.retain(|&n| (1..=10_240).contains(&n));
    if guest::active().is_some() {
        in_guest(&sizes);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let list = sizes
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut env = vec![("SCALE_LAB_SERVICES", list.as_str())];
    let idle = std::env::var("SCALE_LAB_IDLE_SECS").unwrap_or_default();
    if !idle.is_empty() {
        env.push(("SCALE_LAB_IDLE_SECS", idle.as_str()));
    }
    anycast_lab::uml::Lab::new("scale-lab")
        .guest_exec(&exe, &[], &env)
        .mem_mb(1536)
        .timeout(Duration::from_secs(1500))
        .run_bench();
}

/// The same N services as a file for the daemon: data plane on, one passive BGP
/// neighbor (the validator wants one; passive opens no connection, and needs the
/// listener, which nobody dials), no peers, cheap
/// checks that refuse at once, quiet logs.
fn daemon_toml(n: usize, state_dir: &Path, check_interval: &str) -> String {
    let mut s = format!(
        "[site]\nname = \"lab\"\naddress = \"10.101.1.2\"\ntunnel_device = \"anycast0\"\n\
         vip_device = \"lo\"\nshutdown_wait = \"0s\"\nstate_dir = \"{}\"\ndataplane = true\n\n\
         [api]\nlisten = \"127.0.0.1:9180\"\n\n[log]\nlevel = \"warn\"\n\n\
         [bgp]\nasn = 5\nlisten = true\n\n[[bgp.neighbor]]\naddress = \"10.101.1.1\"\nremote_asn = 1\npassive = true\n\n",
        state_dir.display()
    );
    for i in 0..n {
        let (hi, lo) = vip_addr(i);
        s += &format!(
            "[[vip]]\nname = \"vip{i}\"\nprefix = \"10.{a}.{lo}.0/24\"\naddress = \"10.{a}.{lo}.1\"\n\
             [[vip.service]]\nprotocol = \"tcp\"\nport = 80\nscheduler = \"wlc\"\n\
             [vip.service.check]\ntype = \"tcp\"\ninterval = \"{check_interval}\"\nfast_detect = false\n",
            a = 120 + hi
        );
        for r in 0..4 {
            s += &format!(
                "[[vip.service.real_server]]\naddress = \"10.{}.{lo}.{}\"\nmethod = \"nat\"\ncapacity = 100\n",
                160 + hi,
                10 + r
            );
        }
    }
    s
}

// ---------------------------------------------------------------- core + kernel

/// What one batch of effects cost in the kernel.
#[derive(Default)]
struct Applied {
    requests: usize,
    apply: Duration,
    reconciles: usize,
    reconcile: Duration,
    reconcile_changes: usize,
}

/// Carries out the data-plane effects of `effects` as the daemon's worker does,
/// feeding the results back; the rest (announces, reports) is dropped.
fn carry_out(site: &mut Site, fw: &mut tf::Forwarder, effects: Vec<Effect>, now: Time) -> Applied {
    let mut a = Applied::default();
    for e in effects {
        match e {
            Effect::Apply(reqs) => {
                let t = Instant::now();
                let r = fw.apply(&reqs);
                a.apply += t.elapsed();
                a.requests += reqs.len();
                let done = r.unwrap_or_else(|e| panic!("apply of {} requests: {e}", reqs.len()));
                site.on_applied(now, Ok(done));
            }
            Effect::Reconcile(d) => {
                let t = Instant::now();
                let r = fw.reconcile(&d).expect("reconcile");
                a.reconcile += t.elapsed();
                a.reconciles += 1;
                a.reconcile_changes += r.changes;
                let more = site.on_reconciled(now, Ok(r.changes));
                assert!(more.iter().all(Effect::is_urgent), "{more:?}");
            }
            _ => {}
        }
    }
    a
}

/// Prints one step: core time, then the kernel's.
fn step(n: usize, name: &str, core: Duration, a: &Applied) {
    bench(&format!("n{n}_{name}_core"), ms(core), "ms");
    bench(&format!("n{n}_{name}_kernel_apply"), ms(a.apply), "ms");
    bench(&format!("n{n}_{name}_requests"), a.requests, "requests");
    if a.reconciles > 0 {
        bench(
            &format!("n{n}_{name}_unexpected_full_reconciles"),
            a.reconciles,
            "reconciles",
        );
        bench(
            &format!("n{n}_{name}_unexpected_full_reconcile"),
            ms(a.reconcile),
            "ms",
        );
    }
}

/// Steps 1-3 for `n` services. Returns the second reconcile's time (the drift check).
fn core_and_kernel(n: usize) -> Duration {
    let cfg = scaled(n);
    let ids: Vec<ServerId> = mapping::servers(&cfg)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let fall = cfg.vips[0].services[0].real_servers[0].check.fall as usize;
    let mut fw = tf::Forwarder::open().expect("open the forwarder");
    bench(&format!("n{n}_services"), n, "services");
    bench(&format!("n{n}_real_servers"), ids.len(), "servers");

    // 1. The first reconcile: everything from an empty kernel.
    let t = Instant::now();
    let (mut site, first) = Site::new(cfg.clone(), T0).expect("site");
    let core = t.elapsed();
    let desired = first.into_iter().find_map(|e| match e {
        Effect::Reconcile(d) => Some(d),
        _ => None,
    });
    let desired = desired.expect("the first effect is a whole reconcile");
    let t = Instant::now();
    let r = fw.reconcile(&desired).expect("first reconcile");
    let full = t.elapsed();
    bench(&format!("n{n}_site_new_core"), ms(core), "ms");
    bench(&format!("n{n}_full_apply"), ms(full), "ms");
    bench(&format!("n{n}_full_apply_read"), ms(r.read), "ms");
    bench(&format!("n{n}_full_apply_write"), ms(r.apply), "ms");
    bench(&format!("n{n}_full_apply_changes"), r.changes, "requests");
    site.on_reconciled(T0, Ok(r.changes));

    // Every server up: two good probes each, then one settle.
    let t = Instant::now();
    for ms_ in [0, 200] {
        for id in &ids {
            site.on_health(event(id, at(ms_), ProbeOutcome::Success));
        }
    }
    let e = site.settle(at(200));
    let core = t.elapsed();
    let a = carry_out(&mut site, &mut fw, e, at(200));
    step(n, "all_up", core, &a);

    // A quiet sample, so that the load is known before the peer speaks.
    site.on_stats(at(300), &stats(&cfg, 7));
    let e = site.settle(at(300));
    carry_out(&mut site, &mut fw, e, at(300));

    // 2. The spill starts: a light peer, then a hot sample one step_period after the
    // last decision (a whole `max_step`); the ramp's next step one period later; then
    // the increment of a sample 1 s after that (the daemon samples every 1-60 s and
    // every decision moves the ramp by the time elapsed).
    let period = cfg.exchange.interval.as_millis() as u64;
    let mut now = 1_000;
    deliver(&mut site, &cfg, 0.3, 1, at(now));
    let e = site.settle(at(now));
    carry_out(&mut site, &mut fw, e, at(now));
    let hot = stats(&cfg, 250);
    for (name, after) in [
        ("spill_step1", period),
        ("spill_step2", period),
        ("spill_1s_later", 1_000),
    ] {
        now += after;
        let t = Instant::now();
        site.on_stats(at(now), &hot);
        let e = site.settle(at(now));
        let core = t.elapsed();
        let a = carry_out(&mut site, &mut fw, e, at(now));
        step(n, name, core, &a);
        bench(
            &format!("n{n}_{name}_share"),
            format!("{:.4}", share(&site)),
            "fraction",
        );
    }

    // One real server dies (its VIP keeps three).
    now += 100;
    let victim = &ids[ids.len() / 2];
    let t = Instant::now();
    let mut urgent = 0;
    for _ in 0..fall {
        urgent += site
            .on_health(event(victim, at(now), refused(victim)))
            .len();
    }
    let e = site.settle(at(now));
    let core = t.elapsed();
    let a = carry_out(&mut site, &mut fw, e, at(now));
    step(n, "server_death", core, &a);
    bench(
        &format!("n{n}_server_death_urgent_effects"),
        urgent,
        "effects",
    );

    // 3. A full read, and the drift check: a reconcile of what should be there.
    let t = Instant::now();
    let read = fw.stats().expect("stats");
    let took = t.elapsed();
    let dests: usize = read.iter().map(|s| s.dests.len()).sum();
    bench(&format!("n{n}_full_read"), ms(took), "ms");
    bench(&format!("n{n}_full_read_services"), read.len(), "services");
    bench(&format!("n{n}_full_read_dests"), dests, "dests");
    // The same read by another program: is the time the kernel's or ours?
    let t = Instant::now();
    let ok = guest::sh("ipvsadm -Ln > /dev/null").status.success();
    bench(&format!("n{n}_ipvsadm_list"), ms(t.elapsed()), "ms");
    guest::report(&format!("n{n}_ipvsadm_list"), ok, "");
    now += 100;
    let t = Instant::now();
    let e = site.resync(at(now));
    let core = t.elapsed();
    let desired = e.into_iter().find_map(|e| match e {
        Effect::Reconcile(d) => Some(d),
        _ => None,
    });
    let desired = desired.expect("resync asks for a whole reconcile");
    let t = Instant::now();
    let r = fw.reconcile(&desired).expect("second reconcile");
    let drift = t.elapsed();
    site.on_reconciled(at(now), Ok(r.changes));
    bench(&format!("n{n}_drift_check_core"), ms(core), "ms");
    bench(&format!("n{n}_drift_check_reconcile"), ms(drift), "ms");
    bench(&format!("n{n}_drift_check_read"), ms(r.read), "ms");
    bench(&format!("n{n}_drift_check_changes"), r.changes, "requests");
    guest::report(
        &format!("n{n}_second_reconcile_zero_changes"),
        r.changes == 0,
        &format!("{} changes", r.changes),
    );
    drift
}

fn share(site: &Site) -> f64 {
    site.decision()
        .map(|d| d.shares().iter().map(|(_, s)| *s).sum())
        .unwrap_or(0.0)
}

/// Empties the root namespace's IPVS so its estimators do not run during the idle
/// windows (the forwarder there made no ledger).
fn clear_root_ipvs() {
    let _ = guest::sh("ipvsadm -C");
}

// ---------------------------------------------------------------- the daemon

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid` in ticks, and its RSS in kB.
fn proc_cpu(pid: u32) -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime = f.get(11)?.parse().ok()?;
    let stime = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some((utime, stime, rss))
}

/// A counter from the daemon's /metrics (API on 127.0.0.1:9180 in `ns`); 0 when
/// unreadable.
fn metric(ns: &str, name: &str) -> f64 {
    use std::io::{Read as _, Write as _};
    let name = name.to_string();
    let body = guest::in_netns(ns, || {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9180));
        let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        c.read_to_string(&mut body).ok()?;
        Some(body)
    });
    body.unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(name.as_str()))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct DaemonRun {
    share: f64,
}

/// Starts `anycastd` with `n` services in namespace `ns`, waits `SETTLE`, reads its CPU
/// over `window`, stops it. `None` if it did not start.
fn daemon_idle(
    n: usize,
    ns: &str,
    label: &str,
    check_interval: &str,
    settle: Duration,
    window: Duration,
    need_quiet: bool,
) -> Option<DaemonRun> {
    let exe = std::env::current_exe().expect("own path");
    // target/<profile>/examples/scale_lab -> target/<profile>/anycastd
    let daemon: PathBuf = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("anycastd"))
        .expect("target dir");
    if !daemon.exists() {
        guest::report(
            &format!("{label}_daemon_binary"),
            false,
            &format!(
                "{} missing: cargo build --release -p anycastd --examples --bins",
                daemon.display()
            ),
        );
        return None;
    }
    let dir = guest::work_dir().join(label);
    let _ = std::fs::create_dir_all(&dir);
    let conf = dir.join("site.toml");
    std::fs::write(&conf, daemon_toml(n, &dir, check_interval)).expect("config");

    // A namespace of its own: an empty IPVS table, the real servers' addresses local
    // (a SYN gets a RST at once), the site address present.
    let setup = format!(
        "ip netns add {ns} && ip -n {ns} link set dev lo up && \
         ip -n {ns} addr add 10.101.1.2/32 dev lo && \
         ip -n {ns} route add local 10.160.0.0/11 dev lo && \
         ip -n {ns} route add local 10.192.0.0/13 dev lo"
    );
    let o = guest::sh(&setup);
    if !o.status.success() {
        guest::report(
            &format!("{label}_netns"),
            false,
            &String::from_utf8_lossy(&o.stderr),
        );
        return None;
    }
    let check = Command::new(&daemon)
        .arg("check")
        .arg("--config")
        .arg(&conf)
        .stdout(Stdio::null())
        .output()
        .expect("anycastd check");
    if !check.status.success() {
        guest::report(
            &format!("{label}_config_valid"),
            false,
            &String::from_utf8_lossy(&check.stderr),
        );
        let _ = guest::sh(&format!("ip netns del {ns}"));
        return None;
    }
    let log = std::fs::File::create(dir.join("anycastd.log")).expect("log");
    // `ip netns exec` execs the program: the child's PID is the daemon's.
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(&daemon)
        .arg("--config")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start anycastd");
    let pid = child.id();
    let started = Instant::now();
    std::thread::sleep(settle);
    let hz = clock_ticks();
    let (mut reconciled, mut quiet) = (false, false);
    while started.elapsed() < SETTLE_MAX && matches!(child.try_wait(), Ok(None)) {
        reconciled = reconciled || metric(ns, "anycast_dataplane_reconciles_total") >= 1.0;
        let a = proc_cpu(pid).unwrap_or_default();
        std::thread::sleep(QUIET_SLICE);
        let b = proc_cpu(pid).unwrap_or_default();
        let slice = (b.0 + b.1 - a.0 - a.1) as f64 / hz / QUIET_SLICE.as_secs_f64();
        quiet = slice < QUIET_SHARE || !need_quiet;
        if reconciled && quiet {
            break;
        }
    }
    bench(
        &format!("{label}_settled_after"),
        format!("{:.0}", started.elapsed().as_secs_f64()),
        "s",
    );
    bench(
        &format!("{label}_settled"),
        u8::from(reconciled && quiet),
        "bool",
    );
    let alive = matches!(child.try_wait(), Ok(None));
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let mut result = None;
    if alive && comm.trim() == "anycastd" {
        let (g0, t0) = guest::busy_jiffies();
        let a = proc_cpu(pid);
        let w0 = Instant::now();
        std::thread::sleep(window);
        let b = proc_cpu(pid);
        let wall = w0.elapsed().as_secs_f64();
        let (g1, t1) = guest::busy_jiffies();
        if let (Some(a), Some(b)) = (a, b) {
            let user_s = (b.0 - a.0) as f64 / hz;
            let sys_s = (b.1 - a.1) as f64 / hz;
            let share = (user_s + sys_s) / wall;
            bench(&format!("{label}_window"), format!("{wall:.1}"), "s");
            bench(&format!("{label}_cpu_user"), format!("{user_s:.2}"), "s");
            bench(&format!("{label}_cpu_sys"), format!("{sys_s:.2}"), "s");
            bench(
                &format!("{label}_cpu_share"),
                format!("{:.2}", share * 100.0),
                "%_of_one_core",
            );
            bench(
                &format!("{label}_guest_busy_share"),
                format!("{:.2}", (g1 - g0) as f64 * 100.0 / (t1 - t0).max(1) as f64),
                "%_of_guest_cpu",
            );
            bench(&format!("{label}_rss"), b.2 / 1024, "MB");
            result = Some(DaemonRun { share });
        }
        let svcs = guest::sh(&format!("ip netns exec {ns} ipvsadm -Ln | grep -c '^TCP'"));
        bench(
            &format!("{label}_ipvs_services"),
            String::from_utf8_lossy(&svcs.stdout).trim(),
            "services",
        );
    }
    guest::report(
        &format!("{label}_daemon_ran"),
        result.is_some(),
        &format!(
            "alive={alive} comm={} after {:?}",
            comm.trim(),
            started.elapsed()
        ),
    );
    // SIGTERM by PID; SIGKILL (Child::kill, same PID) after a bound.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + STOP_GRACE;
    let mut stopped = false;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            stopped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !stopped {
        let _ = child.kill();
        let _ = child.wait();
    }
    bench(
        &format!("{label}_stopped_by_sigterm"),
        u8::from(stopped),
        "bool",
    );
    let _ = guest::sh(&format!("ip netns del {ns}"));
    if result.is_none() {
        let tail = std::fs::read_to_string(dir.join("anycastd.log")).unwrap_or_default();
        let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().join(" | ");
        println!("{label} log tail: {tail}");
    }
    result
}

/// What a system call costs a process in the lab kernel, and where UML accounts it:
/// every guest system call is a round trip through the host, and most of that time
/// lands in the process's *user* time. Read the daemon's figures with this in mind.
fn syscall_cost() {
    const CALLS: u32 = 20_000;
    let pid = std::process::id();
    let a = proc_cpu(pid).unwrap_or_default();
    let t = Instant::now();
    for _ in 0..CALLS {
        let _ = std::hint::black_box(std::fs::metadata("/proc/self"));
    }
    let wall = t.elapsed();
    let b = proc_cpu(pid).unwrap_or_default();
    let hz = clock_ticks();
    bench(
        "uml_stat_syscall_wall",
        format!("{:.1}", wall.as_secs_f64() * 1e6 / f64::from(CALLS)),
        "us/call",
    );
    bench(
        "uml_stat_syscall_user_time",
        format!("{:.2}", (b.0 - a.0) as f64 / hz),
        "s",
    );
    bench(
        "uml_stat_syscall_sys_time",
        format!("{:.2}", (b.1 - a.1) as f64 / hz),
        "s",
    );
}

fn in_guest(sizes: &[usize]) {
    let idle = std::env::var("SCALE_LAB_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(IDLE_WINDOW, Duration::from_secs);
    syscall_cost();
    let mut drift = Vec::new();
    for &n in sizes {
        // configs/idc1.toml's client device, where the spill split filters: a fresh
        // dummy per size (its filters go with it).
        let ok = guest::sh(
            "ip link del eth1 2>/dev/null; ip link add eth1 type dummy && ip link set dev eth1 up",
        )
        .status
        .success();
        guest::report(&format!("n{n}_client_device"), ok, "");
        drift.push(core_and_kernel(n));
        clear_root_ipvs();
    }
    let mut base = Vec::new();
    for (&n, drift) in sizes.iter().zip(&drift) {
        let label = format!("n{n}_daemon_idle");
        let Some(run) = daemon_idle(n, &format!("d{n}"), &label, "1h", SETTLE, idle, true) else {
            continue;
        };
        // The drift check alone: one whole reconcile every 30 s.
        bench(
            &format!("{label}_drift_check_share_estimate"),
            format!("{:.2}", drift.as_secs_f64() / 30.0 * 100.0),
            "%_of_one_core",
        );
        base.push((n, run));
    }
    // What checks cost: the smallest N again with checks every CHECK_INTERVAL; the
    // difference from its idle run, per probe.
    let Some((n, base)) = base.into_iter().min_by_key(|(n, _)| *n) else {
        return;
    };
    let every = CHECK_INTERVAL.as_secs();
    let label = format!("n{n}_daemon_checks_{every}s");
    let Some(checked) = daemon_idle(
        n,
        &format!("c{n}"),
        &label,
        &format!("{every}s"),
        SETTLE + CHECK_INTERVAL / 2 - QUIET_SLICE,
        IDLE_WINDOW,
        false,
    ) else {
        return;
    };
    let probes_per_s = (n * 4) as f64 / CHECK_INTERVAL.as_secs_f64();
    let per_probe_s = (checked.share - base.share).max(0.0) / probes_per_s;
    bench(
        &format!("{label}_probes_per_s"),
        format!("{probes_per_s:.0}"),
        "probes/s",
    );
    bench(
        &format!("{label}_cpu_per_probe"),
        format!("{:.1}", per_probe_s * 1e6),
        "us",
    );
    // The default tcp check runs every 200 ms per server.
    for servers in [n * 4, 40_000] {
        bench(
            &format!("checks_at_default_200ms_{servers}_servers_estimate"),
            format!("{:.1}", per_probe_s * servers as f64 / 0.2 * 100.0),
            "%_of_one_core",
        );
    }
}
