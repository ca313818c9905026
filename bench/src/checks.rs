//! Benchmark 5 at scale (issue 21): health checking N real servers from one director,
//! on this host's kernel. The director's namespace holds the checker (anycastd with
//! BGP passive and no data plane, or ExaBGP with one healthcheck process per server);
//! the servers' namespace holds N addresses and one `anycast-bench listen` process
//! accepting on all of them. Over the window: the checker's CPU (its process tree) and
//! RSS, the listener's CPU, new connections a second per server (the servers'
//! namespace's TCP PassiveOpens), TIME_WAIT sockets in the director's namespace, and
//! real servers taken down (all are up and idle: any is a false one).
//!
//! On a veth pair both kernels run on this host: the servers' kernel answering a
//! packet runs inside the checker's send, so part of the checker's CPU is theirs.
//! keepalived needs IPVS, which only the lab kernel has: `bench/examples/checks_lab.rs`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anycast_lab::netns::{Netns, veth, wait_until};

use crate::stats::{Proc, tree_usage};

/// What one side did in the window.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    pub cpu_pct: f64,
    pub server_cpu_pct: f64,
    pub rss_mib: f64,
    pub conns_per_server: f64,
    pub time_wait: usize,
    pub downs: usize,
}

/// Which checker.
#[derive(Debug, Clone)]
pub enum Checker {
    /// anycastd at its defaults (this binary).
    Anycastd(PathBuf),
    /// ExaBGP with one `healthcheck` process per server, interval 2 s (its way).
    Exabgp,
}

/// Address of real server `i` (10.160.0.0/16).
pub fn rs_addr(i: usize) -> String {
    format!("10.160.{}.{}", i / 250, i % 250 + 1)
}

/// anycastd's config: N/4 VIPs of 4 servers, tcp checks at the defaults.
pub fn anycastd_conf(n: usize, dir: &Path) -> String {
    let mut s = format!(
        "[site]\nname = \"bench\"\naddress = \"10.160.255.254\"\ndataplane = false\nstate_dir = \"{}\"\nshutdown_wait = \"0s\"\n\n\
         [api]\nlisten = \"127.0.0.1:9180\"\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n\n\
         [bgp]\nasn = 65005\nlisten = true\n\n[[bgp.neighbor]]\naddress = \"10.160.255.253\"\nremote_asn = 65001\npassive = true\n\n",
        dir.display()
    );
    for v in 0..n.div_ceil(4) {
        s += &format!(
            "[[vip]]\nname = \"v{v}\"\nprefix = \"10.161.{a}.0/24\"\naddress = \"10.161.{a}.{b}\"\nhold_down = \"0s\"\n\
             [[vip.service]]\nprotocol = \"tcp\"\nport = 80\n[vip.service.check]\ntype = \"tcp\"\n",
            a = v / 250,
            b = v % 250 + 1
        );
        for r in (v * 4)..(v * 4 + 4).min(n) {
            s += &format!(
                "[[vip.service.real_server]]\naddress = \"{}\"\ncapacity = 100\n",
                rs_addr(r)
            );
        }
    }
    s
}

fn exabgp_conf(n: usize, exe: &Path) -> String {
    let mut p = String::new();
    let mut names = Vec::new();
    for i in 0..n {
        p += &format!(
            "process hc{i} {{\n    run /usr/bin/python3 -m exabgp healthcheck --no-syslog --ip 10.161.0.0/24 --no-ip-setup --interval 2 --cmd '{} probe {}:80';\n    encoder text;\n}}\n",
            exe.display(),
            rs_addr(i)
        );
        names.push(format!("hc{i}"));
    }
    format!(
        "{p}neighbor 10.160.255.253 {{\n    router-id 10.160.255.254;\n    local-address 10.160.255.254;\n    local-as 65005;\n    peer-as 65001;\n    passive;\n    api {{\n        processes [ {} ];\n    }}\n}}\n",
        names.join(" ")
    )
}

fn passive_opens(ns: &Netns) -> u64 {
    passive_opens_in(&ns.exec("cat", &["/proc/net/snmp"]).unwrap_or_default())
}

/// TCP PassiveOpens (connections accepted by the kernel) from /proc/net/snmp's text.
pub fn passive_opens_in(snmp: &str) -> u64 {
    let mut lines = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(h), Some(v)) = (lines.next(), lines.next()) else {
        return 0;
    };
    h.split_whitespace()
        .zip(v.split_whitespace())
        .find(|(k, _)| *k == "PassiveOpens")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn downs(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("real server health changed") && l.contains("\"to\":\"down\""))
        .count()
}

/// One run: `n` servers, `checker`, `settle` then `window`.
pub fn run(
    n: usize,
    checker: &Checker,
    settle: Duration,
    window: Duration,
    split: bool,
    loss: Option<f64>,
) -> io::Result<Footprint> {
    let d = Netns::create("bck-d")?;
    let r = Netns::create("bck-r")?;
    let mut rs: Vec<String> = Vec::new();
    let link = veth(&d, &["10.160.255.254/16"], &r, &[])?;
    let rif = link.b_if.clone();
    // `split`: the checker on CPU 0; everything a packet does after it left the
    // checker's send (the servers' kernel, their answers, their arrival here) on CPU
    // 1, by RPS on both ends, as on a real network where the servers are other
    // machines and the NIC's interrupts land where they land. Without it a veth pair
    // runs the servers' kernel inside the checker's system calls.
    let (pin_checker, pin_server) = if split {
        for (ns, ifname) in [(&d, &link.a_if), (&r, &link.b_if)] {
            ns.exec(
                "sh",
                &[
                    "-c",
                    &format!("echo 2 > /sys/class/net/{ifname}/queues/rx-0/rps_cpus"),
                ],
            )?;
        }
        ("taskset -c 0 ", "taskset -c 1 ")
    } else {
        ("", "")
    };
    let dir = PathBuf::from(format!("/tmp/anycast-bench-checks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let batch = dir.join("addrs");
    for i in 0..n {
        rs.push(format!("addr add {}/16 dev {rif}\n", rs_addr(i)));
    }
    std::fs::write(&batch, rs.concat())?;
    r.ip(&["-batch", &batch.to_string_lossy()])?;
    r.exec("sysctl", &["-qw", "net.core.somaxconn=4096"])?;
    if let Some(p) = loss {
        // Each way: every packet into either namespace dropped with probability `p`.
        for ns in [&d, &r] {
            crate::withdraw::drop_share(ns, "INPUT", p)?;
        }
    }
    let exe = std::env::current_exe()?;
    let server = Proc(
        r.command("/bin/sh")
            .args([
                "-c",
                &format!(
                    "ulimit -n 65536; exec {pin_server}{} listen 0.0.0.0:80",
                    exe.display()
                ),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    if !wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        r.exec("ss", &["-Htln", "sport", "= :80"])
            .is_ok_and(|o| !o.trim().is_empty())
    }) {
        return Err(io::Error::other("the listener did not start"));
    }
    let log = dir.join("checker.log");
    let cmd = match checker {
        Checker::Anycastd(bin) => {
            let conf = dir.join("site.toml");
            std::fs::write(&conf, anycastd_conf(n, &dir))?;
            format!(
                "ulimit -n 65536; exec {pin_checker}{} --config {} > {} 2>&1",
                bin.display(),
                conf.display(),
                log.display()
            )
        }
        Checker::Exabgp => {
            let conf = dir.join("exabgp.conf");
            std::fs::write(&conf, exabgp_conf(n, &exe))?;
            format!(
                "ulimit -n 65536; exec {pin_checker}env exabgp.daemon.user=root exabgp.daemon.drop=false exabgp.log.destination=stdout exabgp.log.level=WARNING exabgp.cli.pipe= exabgp.api.cli=false /usr/sbin/exabgp {} > {} 2>&1",
                conf.display(),
                log.display()
            )
        }
    };
    let checker = Proc(
        d.command("/bin/sh")
            .args(["-c", &cmd])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    std::thread::sleep(settle);
    let pid = checker.pid();
    let c0 = tree_usage(pid).ok_or_else(|| io::Error::other("checker gone"))?;
    let s0 = tree_usage(server.pid()).ok_or_else(|| io::Error::other("listener gone"))?;
    let o0 = passive_opens(&r);
    let d0 = downs(&log);
    let t0 = Instant::now();
    let mut max_rss = 0;
    while t0.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1));
        max_rss = max_rss.max(tree_usage(pid).map_or(0, |u| u.rss_kib));
    }
    let secs = t0.elapsed().as_secs_f64();
    let c1 = tree_usage(pid).ok_or_else(|| io::Error::other("checker gone"))?;
    let s1 = tree_usage(server.pid()).ok_or_else(|| io::Error::other("listener gone"))?;
    let o1 = passive_opens(&r);
    let tw = d
        .exec("ss", &["-Htan", "state", "time-wait"])
        .map(|o| o.lines().count())
        .unwrap_or(0);
    let f = Footprint {
        cpu_pct: c1.cpu.saturating_sub(c0.cpu).as_secs_f64() * 100.0 / secs,
        server_cpu_pct: s1.cpu.saturating_sub(s0.cpu).as_secs_f64() * 100.0 / secs,
        rss_mib: max_rss as f64 / 1024.0,
        conns_per_server: (o1.saturating_sub(o0)) as f64 / secs / n.max(1) as f64,
        time_wait: tw,
        downs: downs(&log).saturating_sub(d0),
    };
    let mut checker = checker;
    checker.stop(Duration::from_secs(5));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(f)
}
