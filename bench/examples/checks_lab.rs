//! Benchmark 5b (issue 21): health checking N real servers on one director, inside
//! the lab kernel (one CPU, shared by the director's checker and the real servers),
//! side by side: keepalived's `TCP_CHECK` at `delay_loop 0.2`, `connect_timeout 0.2`
//! (the same detection time as anycastd's defaults), and anycastd at its defaults;
//! optionally a second anycastd binary (`CHECKS_LAB_BASELINE`, e.g. the previous
//! release) for a before/after.
//!
//! Per side, after `SETTLE` s: over `WINDOW` s, the checker's CPU (utime+stime of its
//! process tree, share of one core), its RSS, the real servers' process CPU, new
//! connections per second per real server (the servers' namespace's TCP PassiveOpens),
//! TIME_WAIT sockets in the director's namespace at the end, and the health flaps
//! (servers taken down in the window; every server is up and idle, so any is false).
//!
//! The servers: `N / 4` virtual services x 4 addresses in 10.160.0.0/16 on one
//! namespace, one process (this one, `serve`) accepting on all of them, a task per
//! connection on one thread.
//!
//! As root with the lab kernel: `cargo build --release -p anycastd -p anycast-bench
//! --bins --examples && target/release/examples/checks_lab [N...]` (default 1000;
//! `CHECKS_LAB_WINDOW` seconds, default 60). Prints `BENCH name value unit` lines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anycast_bench::checks::{passive_opens_in, rs_addr};
use anycast_lab::uml::guest;

const SETTLE: Duration = Duration::from_secs(20);
const DIR_NS: &str = "ckdir";
const RS_NS: &str = "ckrs";

fn bench(name: &str, value: impl std::fmt::Display, unit: &str) {
    println!("BENCH {name} {value} {unit}");
}

fn release(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // target/release/examples/checks_lab -> target/release/<name>
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The real servers: one task per connection on one thread (epoll), accepting on
/// every address, holding each connection until the peer closes it. A thread per
/// connection (`anycast-bench listen`) costs the lab kernel's one CPU more than the
/// checks it serves.
fn serve() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("0.0.0.0:80")
            .await
            .expect("bind :80");
        loop {
            if let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut b = [0u8; 512];
                    while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
                });
            }
        }
    });
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        serve();
        return;
    }
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty()
        && let Ok(s) = std::env::var("CHECKS_LAB_SIZES")
    {
        sizes = s.split(',').filter_map(|a| a.trim().parse().ok()).collect();
    }
    if sizes.is_empty() {
        sizes = vec![1000];
    }
    sizes.retain(|&n| (4..=4000).contains(&n));
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
    let mut env = vec![("CHECKS_LAB_SIZES".to_string(), list)];
    for k in [
        "CHECKS_LAB_WINDOW",
        "CHECKS_LAB_BASELINE",
        "CHECKS_LAB_SIDES",
    ] {
        if let Ok(v) = std::env::var(k) {
            env.push((k.to_string(), v));
        }
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    anycast_lab::uml::Lab::new("checks-lab")
        .guest_exec(&exe, &[], &env)
        .mem_mb(1536)
        .timeout(Duration::from_secs(3000))
        .run_bench();
}

fn sh(cmd: &str) -> bool {
    let o = guest::sh(cmd);
    if !o.status.success() {
        println!(
            "command failed: {cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    o.status.success()
}

fn setup(n: usize) -> bool {
    let _ = guest::sh(&format!("ip netns del {DIR_NS}; ip netns del {RS_NS}"));
    let mut ok = sh(&format!("ip netns add {DIR_NS} && ip netns add {RS_NS}"))
        && sh(&format!(
            "ip link add ckd type veth peer name ckr && ip link set ckd netns {DIR_NS} && ip link set ckr netns {RS_NS}"
        ))
        && sh(&format!(
            "ip -n {DIR_NS} addr add 10.160.255.254/16 dev ckd && ip -n {DIR_NS} link set ckd up && ip -n {DIR_NS} link set lo up"
        ))
        && sh(&format!(
            "ip -n {RS_NS} link set ckr up && ip -n {RS_NS} link set lo up"
        ));
    let batch = guest::work_dir().join("rs-addrs.batch");
    let lines: String = (0..n)
        .map(|i| format!("addr add {}/16 dev ckr\n", rs_addr(i)))
        .collect();
    ok = ok
        && std::fs::write(&batch, lines).is_ok()
        && sh(&format!("ip -n {RS_NS} -batch {}", batch.display()));
    // The checker must be able to hold a connection per server and more.
    ok && sh(&format!(
        "ip netns exec {RS_NS} sysctl -qw net.core.somaxconn=4096 && ip netns exec {RS_NS} sysctl -qw net.ipv4.ping_group_range='0 2147483647' && ip netns exec {DIR_NS} sysctl -qw net.ipv4.ping_group_range='0 2147483647'"
    ))
}

fn in_guest(sizes: &[usize]) {
    let window = Duration::from_secs(
        std::env::var("CHECKS_LAB_WINDOW")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let baseline = std::env::var("CHECKS_LAB_BASELINE").ok();
    let sides_wanted = std::env::var("CHECKS_LAB_SIDES").unwrap_or_default();
    for &n in sizes {
        if !guest::check(&format!("n{n}_setup"), setup(n), "") {
            return;
        }
        let mut sides: Vec<(&str, Side)> = vec![
            ("keepalived", Side::Keepalived),
            ("anycastd", Side::Anycastd(release("anycastd"))),
        ];
        if let Some(b) = &baseline {
            sides.push(("anycastd_before", Side::Anycastd(PathBuf::from(b))));
        }
        for (name, side) in sides {
            if !sides_wanted.is_empty() && !sides_wanted.split(',').any(|s| s == name) {
                continue;
            }
            measure(n, name, &side, window);
        }
    }
}

enum Side {
    Keepalived,
    Anycastd(PathBuf),
}

fn keepalived_conf(n: usize) -> String {
    let mut s = String::from("global_defs {\n  router_id bench\n  max_auto_priority\n}\n");
    for v in 0..n / 4 {
        s += &format!(
            "virtual_server 10.161.{}.{} 80 {{\n  delay_loop 0.2\n  lb_algo wlc\n  lb_kind NAT\n  protocol TCP\n",
            v / 250,
            v % 250 + 1
        );
        for r in 0..4 {
            s += &format!(
                "  real_server {} 80 {{\n    weight 100\n    TCP_CHECK {{\n      connect_timeout 0.2\n    }}\n  }}\n",
                rs_addr(v * 4 + r)
            );
        }
        s += "}\n";
    }
    s
}

fn anycastd_conf(n: usize, dir: &Path) -> String {
    let mut s = format!(
        "[site]\nname = \"bench\"\naddress = \"10.160.255.254\"\ndataplane = false\nstate_dir = \"{}\"\nshutdown_wait = \"0s\"\n\n\
         [api]\nlisten = \"127.0.0.1:9180\"\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n\n\
         [bgp]\nasn = 65005\nlisten = true\n\n[[bgp.neighbor]]\naddress = \"10.160.255.253\"\nremote_asn = 65001\npassive = true\n\n",
        dir.display()
    );
    for v in 0..n / 4 {
        s += &format!(
            "[[vip]]\nname = \"v{v}\"\nprefix = \"10.161.{a}.0/24\"\naddress = \"10.161.{a}.{b}\"\nhold_down = \"0s\"\n\
             [[vip.service]]\nprotocol = \"tcp\"\nport = 80\n[vip.service.check]\ntype = \"tcp\"\n",
            a = v / 250,
            b = v % 250 + 1
        );
        for r in 0..4 {
            s += &format!(
                "[[vip.service.real_server]]\naddress = \"{}\"\ncapacity = 100\n",
                rs_addr(v * 4 + r)
            );
        }
    }
    s
}

/// utime + stime in ticks and RSS in kB of `pid` and its children (one level, as
/// keepalived's checker child), plus the time of children `pid` has reaped (a
/// checker child that keepalived restarted in the window still counts).
fn tree_cpu(pid: u32) -> (u64, u64) {
    let mut pids = vec![pid];
    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        pids.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    let mut cpu = 0;
    let mut rss = 0;
    for p in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(i) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[i + 2..].split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        cpu += field(11) + field(12);
        if p == pid {
            cpu += field(13) + field(14);
        }
        rss += std::fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0);
    }
    (cpu, rss)
}

fn passive_opens() -> u64 {
    passive_opens_in(&guest::sh_in(RS_NS, "cat /proc/net/snmp"))
}

fn time_wait() -> usize {
    guest::sh_in(DIR_NS, "ss -Htan state time-wait")
        .lines()
        .count()
}

fn ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn count_downs(log: &Path, side: &Side) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| match side {
            Side::Keepalived => l.contains("Removing service"),
            Side::Anycastd(_) => {
                l.contains("real server health changed") && l.contains("\"to\":\"down\"")
            }
        })
        .count()
}

fn measure(n: usize, name: &str, side: &Side, window: Duration) {
    let wd = guest::work_dir().join(format!("{name}-{n}"));
    let _ = std::fs::remove_dir_all(&wd);
    let _ = std::fs::create_dir_all(&wd);
    let me = std::env::current_exe().expect("own path");
    let server = guest::spawn_in(
        RS_NS,
        Path::new("/bin/sh"),
        &[
            "-c",
            &format!("ulimit -n 65536; exec {} serve", me.display()),
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let log = wd.join("checker.log");
    let cmd = match side {
        Side::Keepalived => {
            let conf = wd.join("keepalived.conf");
            let _ = std::fs::write(&conf, keepalived_conf(n));
            format!(
                "ulimit -n 65536; exec keepalived -n -l -D -C -f {} -p {}/k.pid -c {}/c.pid > {} 2>&1",
                conf.display(),
                wd.display(),
                wd.display(),
                log.display()
            )
        }
        Side::Anycastd(bin) => {
            let conf = wd.join("site.toml");
            let _ = std::fs::write(&conf, anycastd_conf(n, &wd));
            format!(
                "ulimit -n 65536; exec {} --config {} > {} 2>&1",
                bin.display(),
                conf.display(),
                log.display()
            )
        }
    };
    let mut checker = guest::spawn_in(DIR_NS, Path::new("/bin/sh"), &["-c", &cmd]);
    std::thread::sleep(SETTLE);
    let pid = checker.id();
    // `ip netns exec` execs; `sh -c` execs the checker: the PID is the checker's.
    let (c0, _) = tree_cpu(pid);
    let (s0, _) = tree_cpu(server.id());
    let o0 = passive_opens();
    let g0 = guest::busy_jiffies();
    let downs0 = count_downs(&log, side);
    let t0 = Instant::now();
    let mut max_rss = 0;
    while t0.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1));
        max_rss = max_rss.max(tree_cpu(pid).1);
    }
    let secs = t0.elapsed().as_secs_f64();
    let (c1, _) = tree_cpu(pid);
    let (s1, _) = tree_cpu(server.id());
    let o1 = passive_opens();
    let g1 = guest::busy_jiffies();
    let tw = time_wait();
    let downs = count_downs(&log, side) - downs0;
    let running = checker.running();
    let hz = ticks();
    let p = format!("n{n}_{name}");
    bench(
        &format!("{p}_cpu"),
        format!("{:.2}", c1.saturating_sub(c0) as f64 / hz / secs * 100.0),
        "%core",
    );
    bench(
        &format!("{p}_server_cpu"),
        format!("{:.2}", s1.saturating_sub(s0) as f64 / hz / secs * 100.0),
        "%core",
    );
    bench(
        &format!("{p}_guest_busy"),
        format!(
            "{:.2}",
            (g1.0 - g0.0) as f64 * 100.0 / (g1.1 - g0.1).max(1) as f64
        ),
        "%cpu",
    );
    bench(
        &format!("{p}_rss"),
        format!("{:.1}", max_rss as f64 / 1024.0),
        "MiB",
    );
    bench(
        &format!("{p}_conns_per_server"),
        format!("{:.2}", (o1 - o0) as f64 / secs / n as f64),
        "per_s",
    );
    bench(&format!("{p}_time_wait"), tw, "sockets");
    bench(&format!("{p}_downs_in_window"), downs, "servers");
    guest::check(&format!("{p}_ran"), running, &log.display().to_string());
    // Every server is up and idle: a server taken down is a false alarm (a failed
    // run keeps the logs in lab/work).
    guest::check(
        &format!("{p}_no_false_down"),
        downs == 0,
        &format!("{downs} servers taken down"),
    );
    // SIGTERM first: keepalived stops its checker child then (a SIGKILL of the
    // parent would leave the child checking through the next side's window).
    let _ = guest::sh(&format!("kill -TERM {pid}"));
    let gone = guest::wait_for(Duration::from_secs(15), || {
        (!checker.running() && guest::sh("pgrep -x keepalived").stdout.is_empty()).then_some(())
    });
    if gone.is_none() {
        let _ = guest::sh("pkill -KILL -x keepalived");
    }
    drop(checker);
    drop(server);
    // TIME_WAIT and held connections drain before the next side.
    std::thread::sleep(Duration::from_secs(3));
}
