//! Benchmark 1: a real-server failure to the withdraw, anycastd against ExaBGP's
//! healthcheck, with one FRR upstream.
//!
//! ```text
//!  ns R (real servers)          ns S (site)                      ns U (upstream)
//!  10.101.5.11:80 listener ─┐   speaker: anycastd | exabgp    FRR zebra + bgpd
//!  10.101.5.12:80 listener ─┴── 10.101.5.1/24   10.201.0.1 ── 10.201.0.2  AS 65001
//!                  veth                          AS 65005  veth   ^ capture + rtnetlink
//! ```
//!
//! Each run: wait until 10.101.4.0/24 is in U's kernel table, wait a random 0-1 s (so the
//! failure falls anywhere in the check period), fail both real servers (SIGKILL both
//! listeners, or silently drop every packet to them in R), then time (a) the UPDATE
//! that withdraws (or, for ExaBGP's default, re-announces with MED 1000) seen on U's
//! veth and (b) the route leaving U's kernel table. Then restore the servers and wait
//! for the route to come back.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anycast_lab::netns::{Netns, veth, wait_until};
use anycast_lab::peers::Frr;

use crate::stats::{Proc, show};
use crate::watch::{Event, Watcher};

const SPEAKER: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const VIP_NET: Ipv4Addr = Ipv4Addr::new(10, 101, 4, 0);
const RS: [&str; 2] = ["10.101.5.11", "10.101.5.12"];

/// The side under test.
#[derive(Debug, Clone, PartialEq)]
pub enum Side {
    /// anycastd with `[site] dataplane = false`; `interval`, `timeout`, `rise`,
    /// `fall` of its TCP check (`None`: the defaults 200ms / 200ms / 2 / 3).
    Anycastd {
        check: Option<(&'static str, &'static str, u32, u32)>,
    },
    /// ExaBGP 4.2 with `exabgp healthcheck`: interval, fast-interval, rise, fall
    /// (`None`: its defaults 5 / 1 / 3 / 3), and whether `--withdraw-on-down`.
    Exabgp {
        timing: Option<(f64, f64, u32, u32)>,
        withdraw_on_down: bool,
    },
}

impl Side {
    /// anycastd with the checks every 2 s (timeout 1 s, rise 2, fall 3): its TCP
    /// defaults before the hedged connect, and still those of `http` checks.
    pub const ANYCASTD_2S: Side = Side::Anycastd {
        check: Some(("2s", "1s", 2, 3)),
    };
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Side::Anycastd { check: None } => {
                write!(
                    f,
                    "anycastd defaults (200ms/200ms, rise 2 fall 3, fast_detect)"
                )
            }
            Side::Anycastd {
                check: Some((i, t, r, fl)),
            } => {
                write!(f, "anycastd interval {i} timeout {t} rise {r} fall {fl}")
            }
            Side::Exabgp {
                timing,
                withdraw_on_down,
            } => {
                match timing {
                    None => write!(f, "exabgp healthcheck defaults (5s, fall 3)")?,
                    Some((i, fi, r, fl)) => write!(
                        f,
                        "exabgp healthcheck interval {i} fast {fi} rise {r} fall {fl}"
                    )?,
                }
                if *withdraw_on_down {
                    write!(f, " --withdraw-on-down")
                } else {
                    write!(f, " (MED 1000)")
                }
            }
        }
    }
}

/// How the real servers fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// SIGKILL both listener processes.
    Kill,
    /// Drop every packet to both addresses in R's INPUT chain (no RST, no ICMP).
    Silent,
}

/// How the site fails as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// SIGKILL the speaker (its kernel closes the TCP session).
    Kill,
    /// The site's uplink goes down (carrier lost on both ends).
    LinkDown,
    /// Every packet on the uplink dropped, carrier up (a cut beyond the link): only
    /// the hold timer can tell.
    PathCut,
}

/// One variant's figures.
#[derive(Debug, Default)]
pub struct Figures {
    /// Failure to the withdraw (or MED 1000) UPDATE on the wire.
    pub wire: Vec<Duration>,
    /// Failure to the route leaving the upstream's kernel table.
    pub kernel: Vec<Duration>,
    /// Wire to kernel: what the upstream adds.
    pub upstream: Vec<Duration>,
    /// The last server's FIN to the withdraw UPDATE, both kernel-stamped (kills only):
    /// the speaker's own share, without the time the killed process takes to die.
    pub gone: Vec<Duration>,
    /// `kill()` to the last server's FIN on the wire (kills only): the servers' death.
    pub died: Vec<Duration>,
    /// `kill()` to the withdraw UPDATE's kernel stamp (kills only): `wire` without
    /// the observer thread's wake-up.
    pub stamped: Vec<Duration>,
    /// Runs where nothing came within the limit.
    pub missed: usize,
    /// Withdraws seen while nothing had failed (probe loss runs).
    pub false_withdraws: usize,
    /// Crash runs where the route had left FRR's table again before the failure.
    pub flaps: usize,
}

impl Figures {
    /// `n=.. missed=..  wire ..  kernel ..  upstream part ..` (ms p50 / p99 / max),
    /// and `server FIN -> wire ..` where it was measured.
    pub fn line(&self) -> String {
        let mut l = format!(
            "n={} missed={}  wire {}  kernel {}  upstream part {}",
            self.wire.len(),
            self.missed,
            show(&self.wire),
            show(&self.kernel),
            show(&self.upstream)
        );
        if !self.gone.is_empty() {
            l.push_str(&format!(
                "  server FIN -> wire {} (n={})",
                show(&self.gone),
                self.gone.len()
            ));
        }
        if !self.stamped.is_empty() {
            l.push_str(&format!(
                "  kill -> last FIN {}  kill -> wire, kernel stamp {} (n={})",
                show(&self.died),
                show(&self.stamped),
                self.stamped.len()
            ));
        }
        l
    }

    /// `n=.. missed=..  kernel ..`: for failures seen only in the upstream's kernel.
    pub fn kernel_line(&self) -> String {
        format!(
            "n={} missed={} flapped before the failure={}  kernel {}",
            self.kernel.len(),
            self.missed,
            self.flaps,
            show(&self.kernel)
        )
    }
}

/// Shape of the lab beyond the speaker.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// BGP hold time and keepalive on both sides.
    pub hold: (u16, u16),
    /// Real servers (10.101.5.11 upwards); more than 2 share one listener process.
    pub servers: usize,
    /// BGP sessions to the upstream (1 or 2; the second over its own veth).
    pub sessions: usize,
    /// BFD on the sessions, both sides: (interval ms, multiplier).
    pub bfd: Option<(u32, u8)>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            hold: (9, 3),
            servers: 2,
            sessions: 1,
            bfd: None,
        }
    }
}

/// The lab for one variant: namespaces, FRR, real servers, the speaker.
pub struct Lab {
    /// How long the route stays up before each failure, plus a random 0-1 s.
    pub settle: Duration,
    opts: Opts,
    up_if: String,
    s: Netns,
    r: Netns,
    _u: Netns,
    frr: Frr,
    watch: Watcher,
    servers: Vec<Proc>,
    speaker: Option<Proc>,
    dir: PathBuf,
    side: Side,
}

/// Drops `share` of the packets through `chain` (INPUT, OUTPUT) of `ns`, at random
/// (`iptables -I CHAIN -m statistic --mode random --probability SHARE -j DROP`).
pub fn drop_share(ns: &Netns, chain: &str, share: f64) -> io::Result<()> {
    let p = share.to_string();
    ns.exec(
        "iptables",
        &[
            "-I",
            chain,
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &p,
            "-j",
            "DROP",
        ],
    )
    .map(drop)
}

fn self_exe() -> io::Result<PathBuf> {
    std::env::current_exe()
}

/// A small pseudo-random source (no dependency): xorshift seeded from the clock.
pub fn jitter(max: Duration) -> Duration {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(1);
    let mut x = seed | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    max.mul_f64((x % 10_000) as f64 / 10_000.0)
}

impl Lab {
    /// Builds the namespaces and FRR, starts the real servers and the speaker, and
    /// waits for the route in FRR's kernel table.
    pub fn start(side: Side, anycastd: &Path) -> io::Result<Self> {
        Self::start_with(side, anycastd, Opts::default())
    }

    /// [`Lab::start`] with another shape.
    pub fn start_with(side: Side, anycastd: &Path, opts: Opts) -> io::Result<Self> {
        let s = Netns::create("bw-s")?;
        let u = Netns::create("bw-u")?;
        let r = Netns::create("bw-r")?;
        let up = veth(&s, &["10.201.0.1/30"], &u, &["10.201.0.2/30"])?;
        if opts.sessions > 1 {
            veth(&s, &["10.201.1.1/30"], &u, &["10.201.1.2/30"])?;
        }
        let rs: Vec<String> = (0..opts.servers)
            .map(|i| format!("10.101.5.{}/24", 11 + i))
            .collect();
        let rs: Vec<&str> = rs.iter().map(String::as_str).collect();
        let rlink = veth(&s, &["10.101.5.1/24"], &r, &rs)?;
        let (h, k) = opts.hold;
        let mut conf =
            "router bgp 65001\n bgp router-id 10.201.0.2\n no bgp ebgp-requires-policy\n"
                .to_string();
        for n in ["10.201.0.1", "10.201.1.1"].iter().take(opts.sessions) {
            conf.push_str(&format!(" neighbor {n} remote-as 65005\n neighbor {n} timers {k} {h}\n neighbor {n} timers connect 1\n"));
            if opts.bfd.is_some() {
                conf.push_str(&format!(
                    " neighbor {n} bfd\n neighbor {n} bfd profile bench\n"
                ));
            }
        }
        let frr = match opts.bfd {
            Some((ms, mult)) => Frr::start_with_bfdd(
                &u,
                &conf,
                &format!(
                    "bfd\n profile bench\n  receive-interval {ms}\n  transmit-interval {ms}\n  detect-multiplier {mult}\n !\n!\n"
                ),
            )?,
            None => Frr::start(&u, &conf, true)?,
        };
        let mut watch = Watcher::start(u.name(), &up.b_if, SPEAKER, VIP_NET, 24)?;
        watch.servers(r.name(), &rlink.b_if, 80)?;
        let dir = PathBuf::from(format!("/tmp/anycast-bench-{}", s.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut lab = Lab {
            settle: Duration::from_millis(200),
            opts,
            up_if: up.a_if.clone(),
            s,
            r,
            _u: u,
            frr,
            watch,
            servers: Vec::new(),
            speaker: None,
            dir,
            side,
        };
        lab.start_servers()?;
        lab.start_speaker(anycastd)?;
        if lab
            .watch
            .wait(Duration::from_secs(60), |e| matches!(e, Event::RouteAdd(_)))
            .is_none()
        {
            return Err(io::Error::other(format!(
                "{}: route never reached FRR's kernel table; speaker log: {}",
                lab.side,
                lab.speaker_log()
            )));
        }
        // With BFD, the first cut must find it Up (BGP comes up before it, at 1 s
        // packets while BFD is not Up): else the hold timer decides that run.
        if lab.opts.bfd.is_some()
            && !anycast_lab::netns::wait_until(
                Duration::from_secs(15),
                Duration::from_millis(50),
                || {
                    lab.frr
                        .vtysh("show bfd peers brief")
                        .is_ok_and(|o| o.contains(" up "))
                },
            )
        {
            return Err(io::Error::other("BFD never came up on FRR's side"));
        }
        Ok(lab)
    }

    fn speaker_log(&self) -> String {
        let s = std::fs::read_to_string(self.dir.join("speaker.log")).unwrap_or_default();
        s.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// (Re)starts the two listeners in R.
    fn start_servers(&mut self) -> io::Result<()> {
        self.servers.clear();
        let exe = self_exe()?;
        let addrs: &[&str] = if self.opts.servers > 2 {
            &["0.0.0.0"]
        } else {
            &RS
        };
        for a in addrs {
            // One process group (the first server leads it), so one kill(2) kills
            // every server at once.
            let group = self.servers.first().map_or(0, |p| p.pid());
            let c = self
                .r
                .command(&exe.to_string_lossy())
                .args(["listen", &format!("{a}:80")])
                .process_group(i32::try_from(group).unwrap_or(0))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            self.servers.push(Proc(c));
        }
        // Listening before anyone probes.
        let ok = wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
            self.r
                .exec("ss", &["-Htln", "sport", "= :80"])
                .map(|o| o.lines().count() >= addrs.len())
                .unwrap_or(false)
        });
        if ok {
            Ok(())
        } else {
            Err(io::Error::other("listeners did not start"))
        }
    }

    fn start_speaker(&mut self, anycastd: &Path) -> io::Result<()> {
        let log = std::fs::File::create(self.dir.join("speaker.log"))?;
        let log2 = log.try_clone()?;
        let child = match &self.side {
            Side::Anycastd { check } => {
                let conf = self.dir.join("site.toml");
                std::fs::write(&conf, anycastd_conf(*check, &self.dir, self.opts))?;
                self.s
                    .command(&anycastd.to_string_lossy())
                    .args(["--config", &conf.to_string_lossy()])
                    .env("RUST_LOG", "warn")
                    .stdout(log)
                    .stderr(log2)
                    .spawn()?
            }
            Side::Exabgp {
                timing,
                withdraw_on_down,
            } => {
                let conf = self.dir.join("exabgp.conf");
                let exe = self_exe()?;
                std::fs::write(
                    &conf,
                    exabgp_conf(*timing, *withdraw_on_down, &exe, self.opts),
                )?;
                self.s
                    .command("/usr/sbin/exabgp")
                    .arg(&conf)
                    .env("exabgp.daemon.user", "root")
                    .env("exabgp.daemon.drop", "false")
                    .env("exabgp.log.destination", "stdout")
                    .env("exabgp.log.level", "WARNING")
                    .env("exabgp.cli.pipe", "")
                    .env("exabgp.api.cli", "false")
                    .stdout(log)
                    .stderr(log2)
                    .spawn()?
            }
        };
        self.speaker = Some(Proc(child));
        Ok(())
    }

    fn fail(&mut self, how: Failure) -> io::Result<()> {
        match how {
            Failure::Kill => {
                if let Some(leader) = self.servers.first() {
                    leader.signal_group(libc::SIGKILL);
                }
                Ok(())
            }
            // The host or the path dead: every packet to the servers' namespace, not
            // only their port (an echo would still be answered).
            Failure::Silent => self
                .r
                .exec("iptables", &["-I", "INPUT", "-j", "DROP"])
                .map(drop),
        }
    }

    fn restore(&mut self, how: Failure) -> io::Result<()> {
        match how {
            Failure::Kill => {
                for p in &mut self.servers {
                    let _ = p.0.wait();
                }
                self.start_servers()
            }
            Failure::Silent => self
                .r
                .exec("iptables", &["-D", "INPUT", "-j", "DROP"])
                .map(drop),
        }
    }

    /// Drops a share of every packet to and from the servers in R, each way (TCP and
    /// the echoes alike: a lossy path, not a lossy port).
    pub fn probe_loss(&self, share: f64) -> io::Result<()> {
        for chain in ["INPUT", "OUTPUT"] {
            drop_share(&self.r, chain, share)?;
        }
        Ok(())
    }

    /// `runs` failures; `limit` bounds each wait.
    pub fn measure(
        &mut self,
        how: Failure,
        runs: usize,
        limit: Duration,
        mut progress: impl FnMut(usize),
    ) -> io::Result<Figures> {
        let med_mode = matches!(
            self.side,
            Side::Exabgp {
                withdraw_on_down: false,
                ..
            }
        );
        let mut fig = Figures::default();
        for i in 0..runs {
            progress(i);
            std::thread::sleep(self.settle + jitter(Duration::from_secs(1)));
            self.watch.drain();
            let t0 = Instant::now();
            let t0_clock = SystemTime::now();
            self.fail(how)?;
            let wire = self.watch.wait(limit, |e| match e {
                Event::Withdraw(..) => !med_mode,
                Event::Announce(_, med) => med_mode && *med == Some(1000),
                _ => false,
            });
            match wire {
                Some(w) => fig.wire.push(w.at().saturating_duration_since(t0)),
                None => fig.missed += 1,
            }
            if let Some(w) = wire.filter(|_| !med_mode)
                && let Some(k) = self
                    .watch
                    .wait(Duration::from_secs(5), |e| matches!(e, Event::RouteDel(_)))
            {
                fig.kernel.push(k.at().saturating_duration_since(t0));
                fig.upstream.push(k.at().saturating_duration_since(w.at()));
            }
            // The speaker's own share: the dead server's last FIN to the UPDATE, both
            // stamped by the kernel (the process's death is not the speaker's time).
            if how == Failure::Kill
                && let Some(Event::Withdraw(_, Some(upd))) = wire
                && let Some(fin) = self.watch.last_fin_before(upd)
                && let Ok(d) = upd.duration_since(fin)
            {
                fig.gone.push(d);
                if let (Ok(died), Ok(all)) =
                    (fin.duration_since(t0_clock), upd.duration_since(t0_clock))
                {
                    fig.died.push(died);
                    fig.stamped.push(all);
                }
            }
            self.restore(how)?;
            let back = if med_mode {
                self.watch.wait(
                    limit * 2,
                    |e| matches!(e, Event::Announce(_, m) if *m != Some(1000)),
                )
            } else {
                self.watch
                    .wait(limit * 2, |e| matches!(e, Event::RouteAdd(_)))
            };
            if back.is_none() {
                return Err(io::Error::other(format!(
                    "{}: run {i}: the route did not come back; log: {}",
                    self.side,
                    self.speaker_log()
                )));
            }
        }
        Ok(fig)
    }

    /// anycastd only: how many times its real servers went down so far (the sum of
    /// `anycast_health_transitions_total{to="down"}` from its `/metrics`, read inside
    /// the site's namespace). `None` for ExaBGP or when the API does not answer.
    pub fn health_downs(&self) -> Option<u64> {
        if !matches!(self.side, Side::Anycastd { .. }) {
            return None;
        }
        let ns = self.s.name().to_string();
        std::thread::spawn(move || -> Option<u64> {
            // The namespace is the thread's: a current-thread runtime opens the socket here.
            anycast_lab::netns::enter(&ns).ok()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let body = rt.block_on(async {
                let reply = reqwest::Client::new()
                    .get("http://127.0.0.1:9180/metrics")
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await?
                    .error_for_status()?;
                reply.text().await
            });
            let body = body.ok()?;
            Some(
                body.lines()
                    .filter(|l| {
                        l.starts_with("anycast_health_transitions_total{")
                            && l.contains("to=\"down\"")
                    })
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>() as u64,
            )
        })
        .join()
        .ok()
        .flatten()
    }

    /// Watches for `dur` with the servers up: every withdraw is a false one.
    pub fn count_false_withdraws(&self, dur: Duration) -> usize {
        let end = Instant::now() + dur;
        let mut n = 0;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if self
                .watch
                .wait(left, |e| matches!(e, Event::Withdraw(..)))
                .is_some()
            {
                n += 1;
            }
        }
        n
    }

    /// Drops (`op` "-I") or passes again ("-D") every packet in and out of `ifn`,
    /// both directions in one `iptables-restore` commit: with two calls one direction
    /// was cut first, and the side still heard could tell the other (a BFD Down)
    /// before its own detection time.
    fn cut_path(&self, ifn: &str, op: &str) -> io::Result<()> {
        use std::io::Write;
        let mut child = self
            .s
            .command("iptables-restore")
            .arg("--noflush")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let rules =
            format!("*filter\n{op} INPUT -i {ifn} -j DROP\n{op} OUTPUT -o {ifn} -j DROP\nCOMMIT\n");
        child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("iptables-restore: no stdin"))?
            .write_all(rules.as_bytes())?;
        let st = child.wait()?;
        if st.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("iptables-restore {op}: {st}")))
        }
    }

    /// `runs` site crashes: time until the route leaves the upstream's kernel table.
    pub fn crash(
        &mut self,
        how: Crash,
        runs: usize,
        limit: Duration,
        anycastd: &Path,
    ) -> io::Result<Figures> {
        let mut fig = Figures::default();
        let ifn = self.up_if.clone();
        for i in 0..runs {
            std::thread::sleep(Duration::from_millis(500) + jitter(Duration::from_secs(1)));
            // The route must be there when the failure starts: one that left again
            // after its return (a flap) would make this run a miss. Counted, logged,
            // and waited for.
            if self
                ._u
                .ip(&["route", "show", "10.101.4.0/24"])?
                .trim()
                .is_empty()
            {
                fig.flaps += 1;
                eprintln!(
                    "    run {i}: the route left FRR's table again after its return; speaker log:\n{}",
                    self.speaker_log()
                );
                if self
                    .watch
                    .wait(Duration::from_secs(90), |e| matches!(e, Event::RouteAdd(_)))
                    .is_none()
                {
                    return Err(io::Error::other(format!(
                        "crash run {i}: the route did not come back after a flap"
                    )));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            self.watch.drain();
            let t0 = Instant::now();
            match how {
                Crash::Kill => {
                    if let Some(p) = &self.speaker {
                        p.signal(libc::SIGKILL);
                    }
                }
                Crash::LinkDown => drop(self.s.ip(&["link", "set", "dev", &ifn, "down"])?),
                Crash::PathCut => self.cut_path(&ifn, "-I")?,
            }
            // A carrier loss makes the kernel flush routes through the link without an
            // RTM_DELROUTE, so that case is polled (`ip route`, ~3 ms resolution).
            let gone = if how == Crash::LinkDown {
                let end = t0 + limit;
                let mut at = None;
                while Instant::now() < end {
                    if self
                        ._u
                        .ip(&["route", "show", "10.101.4.0/24"])?
                        .trim()
                        .is_empty()
                    {
                        at = Some(Instant::now());
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                at
            } else {
                self.watch
                    .wait(limit, |e| matches!(e, Event::RouteDel(_)))
                    .map(|e| e.at())
            };
            match gone {
                Some(k) => fig.kernel.push(k.saturating_duration_since(t0)),
                None => fig.missed += 1,
            }
            match how {
                Crash::Kill => {
                    if let Some(mut p) = self.speaker.take() {
                        let _ = p.0.wait();
                    }
                    self.start_speaker(anycastd)?;
                }
                Crash::LinkDown => drop(self.s.ip(&["link", "set", "dev", &ifn, "up"])?),
                Crash::PathCut => self.cut_path(&ifn, "-D")?,
            }
            if self
                .watch
                .wait(Duration::from_secs(90), |e| matches!(e, Event::RouteAdd(_)))
                .is_none()
            {
                return Err(io::Error::other(format!(
                    "{}: crash run {i}: the route did not come back; log: {}",
                    self.side,
                    self.speaker_log()
                )));
            }
        }
        Ok(fig)
    }

    /// The upstream's BGP (FRR) killed, down for `down`, started again: time from its
    /// start to our route back in its kernel table.
    pub fn upstream_restart(
        &mut self,
        down: Duration,
        limit: Duration,
    ) -> io::Result<Option<Duration>> {
        self.frr.stop();
        if self
            .watch
            .wait(Duration::from_secs(10), |e| matches!(e, Event::RouteDel(_)))
            .is_none()
        {
            return Err(io::Error::other(
                "the route stayed in FRR's table after it was killed",
            ));
        }
        std::thread::sleep(down);
        self.watch.drain();
        let t0 = Instant::now();
        self.frr.restart()?;
        Ok(self
            .watch
            .wait(limit, |e| matches!(e, Event::RouteAdd(_)))
            .map(|e| e.at().saturating_duration_since(t0)))
    }

    /// Our end of the link to the upstream down for `down` (the carrier lost: a
    /// cable, a switch port), then up: time from the carrier back to our route back
    /// in the upstream's kernel table.
    pub fn link_back(&mut self, down: Duration, limit: Duration) -> io::Result<Option<Duration>> {
        let ifn = self.up_if.clone();
        self.s.ip(&["link", "set", "dev", &ifn, "down"])?;
        // The carrier's loss flushes the upstream's route without an RTM_DELROUTE.
        let end = Instant::now() + Duration::from_secs(10);
        while !self
            ._u
            .ip(&["route", "show", "10.101.4.0/24"])?
            .trim()
            .is_empty()
        {
            if Instant::now() > end {
                return Err(io::Error::other(
                    "the route stayed in FRR's table with the link down",
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(down);
        self.watch.drain();
        let t0 = Instant::now();
        self.s.ip(&["link", "set", "dev", &ifn, "up"])?;
        Ok(self
            .watch
            .wait(limit, |e| matches!(e, Event::RouteAdd(_)))
            .map(|e| e.at().saturating_duration_since(t0)))
    }

    /// The speaker's PID (for footprint sampling).
    pub fn speaker_pid(&self) -> Option<u32> {
        self.speaker.as_ref().map(Proc::pid)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut p) = self.speaker.take() {
            p.stop(Duration::from_secs(2));
        }
        self.servers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// anycastd's config: BGP + health only.
pub fn anycastd_conf(check: Option<(&str, &str, u32, u32)>, dir: &Path, opts: Opts) -> String {
    let (h, k) = opts.hold;
    let mut neighbors = String::new();
    for (n, l) in [("10.201.0.2", "10.201.0.1"), ("10.201.1.2", "10.201.1.1")]
        .iter()
        .take(opts.sessions)
    {
        neighbors.push_str(&format!(
            "[[bgp.neighbor]]\naddress = \"{n}\"\nlocal_address = \"{l}\"\nremote_asn = 65001\nhold_time = {h}\nkeepalive = {k}\nconnect_retry = 1\n"
        ));
        if let Some((ms, mult)) = opts.bfd {
            neighbors.push_str(&format!(
                "bfd = true\nbfd_min_tx = \"{ms}ms\"\nbfd_min_rx = \"{ms}ms\"\nbfd_multiplier = {mult}\n"
            ));
        }
        neighbors.push('\n');
    }
    let mut servers = String::new();
    for i in 0..opts.servers {
        servers.push_str(&format!(
            "[[vip.service.real_server]]\naddress = \"10.101.5.{}\"\ncapacity = 100\n\n",
            11 + i
        ));
    }
    let check = match check {
        None => String::new(),
        Some((i, t, r, f)) => {
            format!("interval = \"{i}\"\ntimeout = \"{t}\"\nrise = {r}\nfall = {f}\n")
        }
    };
    format!(
        r#"[site]
name = "bench"
address = "10.201.0.1"
dataplane = false
state_dir = "{dir}"
shutdown_wait = "0s"

[api]
listen = "127.0.0.1:9180"

[log]
level = "warn"

[bgp]
asn = 65005

{neighbors}[[vip]]
name = "web"
prefix = "10.101.4.0/24"
address = "10.101.4.1"
hold_down = "0s"

[[vip.service]]
protocol = "tcp"
port = 80

[vip.service.check]
type = "tcp"
{check}
{servers}"#,
        dir = dir.display()
    )
}

/// ExaBGP's config: one neighbor, the healthcheck as its process. The check command
/// connects to either real server (our `probe` subcommand: one process per check,
/// as with any command ExaBGP's healthcheck runs).
pub fn exabgp_conf(
    timing: Option<(f64, f64, u32, u32)>,
    withdraw_on_down: bool,
    exe: &Path,
    opts: Opts,
) -> String {
    let targets: Vec<String> = (0..opts.servers.min(2))
        .map(|i| format!("10.101.5.{}:80", 11 + i))
        .collect();
    let mut args = format!(
        "--no-syslog --ip 10.101.4.0/24 --no-ip-setup --cmd '{} probe {}'",
        exe.display(),
        targets.join(" ")
    );
    if let Some((i, fi, r, f)) = timing {
        args.push_str(&format!(
            " --interval {i} --fast-interval {fi} --rise {r} --fall {f}"
        ));
    }
    if withdraw_on_down {
        args.push_str(" --withdraw-on-down");
    }
    let h = opts.hold.0;
    // More than 2 servers (footprint): one healthcheck process per server, ExaBGP's way.
    let (procs, names) = if opts.servers > 2 {
        let mut p = String::new();
        let mut n = Vec::new();
        for i in 0..opts.servers {
            p.push_str(&format!(
                "process hc{i} {{\n    run /usr/bin/python3 -m exabgp healthcheck --no-syslog --ip 10.101.4.0/24 --no-ip-setup --interval 2 --cmd '{} probe 10.101.5.{}:80';\n    encoder text;\n}}\n",
                exe.display(),
                11 + i
            ));
            n.push(format!("hc{i}"));
        }
        (p, n.join(" "))
    } else {
        (
            format!(
                "process hc {{\n    run /usr/bin/python3 -m exabgp healthcheck {args};\n    encoder text;\n}}\n"
            ),
            "hc".to_string(),
        )
    };
    let mut neighbors = String::new();
    for (n, l) in [("10.201.0.2", "10.201.0.1"), ("10.201.1.2", "10.201.1.1")]
        .iter()
        .take(opts.sessions)
    {
        neighbors.push_str(&format!(
            "neighbor {n} {{\n    router-id 10.201.0.1;\n    local-address {l};\n    local-as 65005;\n    peer-as 65001;\n    hold-time {h};\n    api {{\n        processes [ {names} ];\n    }}\n}}\n"
        ));
    }
    format!("{procs}{neighbors}")
}
