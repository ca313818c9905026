//! Benchmark 3: BGP ingest. A generator sends N IPv4 prefixes (10-100 per UPDATE,
//! varied AS paths) to one receiver: our bgp-speaker (the `recv` subcommand), BIRD,
//! GoBGP or FRR's bgpd -n. Measured: time from the first UPDATE until the receiver
//! counts all N, its peak RSS and CPU seconds, and the longest gap between the
//! receiver's KEEPALIVEs the generator saw (does it keep its session while busy?).
//!
//! ```text
//!   ns G: generator (this process, a thread)      ns D: receiver under test
//!   10.202.0.1:179 listens, AS 65100  ── veth ──  10.202.0.2, AS 65001, connects
//!   OPEN/KEEPALIVE, then UPDATEs, then KEEPALIVEs every hold/3 until told to stop
//! ```
//! The receivers connect; the generator only listens, so every receiver starts the
//! same way. Counts are polled (ours: 5 ms, by the receiver itself; the others: their
//! CLI every 50-100 ms), which bounds the resolution of the "all counted" time.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anycast_lab::netns::{Netns, veth};

use crate::stats::{Proc, ProcUsage, proc_usage};
use crate::watch::enter;

const GEN_ASN: u16 = 65100;
const GEN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 1);

/// The receiver under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    Ours,
    Bird,
    Gobgp,
    Frr,
}

impl std::fmt::Display for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Receiver::Ours => "bgp-speaker",
            Receiver::Bird => "BIRD 2",
            Receiver::Gobgp => "GoBGP 3",
            Receiver::Frr => "FRR bgpd -n",
        })
    }
}

/// One ingest run's figures.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub receiver: Receiver,
    pub prefixes: usize,
    pub hold: u16,
    /// First UPDATE written to all counted (None: not within the limit).
    pub all_counted: Option<Duration>,
    /// The last count seen.
    pub counted: usize,
    /// Generator's own time to write every UPDATE into the socket.
    pub sent: Duration,
    pub usage: ProcUsage,
    /// CPU used from the first UPDATE to all counted.
    pub cpu: Duration,
    /// Longest gap between the receiver's KEEPALIVEs over the run (from Established
    /// until one keepalive interval after all were counted).
    pub keepalive_gap: Duration,
    /// The session closed or a NOTIFICATION came during the run.
    pub dropped: bool,
}

/// Prefix lengths in every 200 prefixes, shaped like the public IPv4 table (about
/// 60% /24, then /22, /23, /21, /20, ...).
const LENGTH_MIX: [(u8, u32); 10] = [
    (24, 121),
    (23, 20),
    (22, 24),
    (21, 10),
    (20, 10),
    (19, 6),
    (18, 3),
    (17, 2),
    (16, 3),
    (15, 1),
];

/// The most distinct prefixes [`updates`] can make (its /16s run out beyond).
pub const MAX_PREFIXES: usize = 1_000_000;

/// The `i`-th distinct prefix: its length from [`LENGTH_MIX`], its network bits spread
/// over 128.0.0.0/2 (all unicast, no martians a receiver might drop) by an odd
/// multiplier, which is a bijection within each length, so no two are the same.
fn nth_prefix(i: usize) -> (u8, u32) {
    let (round, mut slot) = (i / 200, (i % 200) as u32);
    for (len, per) in LENGTH_MIX {
        if slot < per {
            let c = round as u32 * per + slot;
            let space = 1u32 << (len - 2);
            let bits = c.wrapping_mul(0x9e37_79b1) & (space - 1);
            return (len, 0x8000_0000 | (bits << (32 - len)));
        }
        slot -= per;
    }
    unreachable!("LENGTH_MIX sums to 200")
}

/// Builds every UPDATE up front: packing cycles through 10..=100 prefixes, AS paths
/// of 2-6 four-byte ASNs (private 64512-64911, never a receiver's own 65001) vary per
/// UPDATE, prefixes of a realistic length mix spread over the address space
/// (`nth_prefix`). At most [`MAX_PREFIXES`].
pub fn updates(n: usize) -> Vec<u8> {
    assert!(
        n <= MAX_PREFIXES,
        "at most {MAX_PREFIXES} distinct prefixes"
    );
    let mut out = Vec::with_capacity(n * 6);
    let mut next = 0usize;
    let mut left = n;
    let mut i: u32 = 0;
    while left > 0 {
        let k = (10 + (i.wrapping_mul(7919) % 91) as usize).min(left);
        let hops = 2 + (i % 5) as usize;
        let mut path = Vec::with_capacity(2 + 4 * hops);
        path.extend_from_slice(&[2, hops as u8]);
        path.extend_from_slice(&u32::from(GEN_ASN).to_be_bytes());
        for h in 1..hops as u32 {
            path.extend_from_slice(&(64_512 + (i * 31 + h * 17) % 400).to_be_bytes());
        }
        let mut attrs = vec![0x40, 1, 1, 0];
        attrs.extend_from_slice(&[0x40, 2, path.len() as u8]);
        attrs.extend_from_slice(&path);
        attrs.extend_from_slice(&[0x40, 3, 4]);
        attrs.extend_from_slice(&GEN_ADDR.octets());
        if i.is_multiple_of(3) {
            attrs.extend_from_slice(&[0x80, 4, 4]);
            attrs.extend_from_slice(&(i % 100).to_be_bytes());
        }
        let mut nlri = Vec::with_capacity(4 * k);
        for _ in 0..k {
            let (len, addr) = nth_prefix(next);
            nlri.push(len);
            nlri.extend_from_slice(&addr.to_be_bytes()[..usize::from(len).div_ceil(8)]);
            next += 1;
        }
        let body_len = 2 + 2 + attrs.len() + nlri.len();
        out.extend_from_slice(&[0xff; 16]);
        out.extend_from_slice(&((19 + body_len) as u16).to_be_bytes());
        out.push(2);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        out.extend_from_slice(&attrs);
        out.extend_from_slice(&nlri);
        left -= k;
        i += 1;
    }
    out
}

fn open_msg(hold: u16) -> Vec<u8> {
    // Capabilities: MP IPv4 unicast, 4-octet AS.
    let caps = [
        2,
        6,
        1,
        4,
        0,
        1,
        0,
        1,
        2,
        6,
        65,
        4,
        0,
        0,
        (GEN_ASN >> 8) as u8,
        GEN_ASN as u8,
    ];
    let mut m = vec![0xff; 16];
    let len = 19 + 10 + caps.len();
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.push(1);
    m.push(4);
    m.extend_from_slice(&GEN_ASN.to_be_bytes());
    m.extend_from_slice(&hold.to_be_bytes());
    m.extend_from_slice(&GEN_ADDR.octets());
    m.push(caps.len() as u8);
    m.extend_from_slice(&caps);
    m
}

fn keepalive() -> [u8; 19] {
    let mut k = [0xff; 19];
    k[16] = 0;
    k[17] = 19;
    k[18] = 4;
    k
}

/// Reads one BGP message: (type, body).
fn read_msg(s: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 19];
    s.read_exact(&mut h)?;
    let len = usize::from(u16::from_be_bytes([h[16], h[17]]));
    if len < 19 {
        return Err(io::Error::other("bad BGP length"));
    }
    let mut b = vec![0u8; len - 19];
    s.read_exact(&mut b)?;
    Ok((h[18], b))
}

/// Generator events for the bench thread.
enum GenEvent {
    /// Session up; the UPDATEs start now.
    Started(Instant),
    /// Every UPDATE written.
    Sent(Instant),
    Failed(String),
}

struct GenResult {
    keepalives: Vec<Instant>,
    dropped: bool,
}

fn generator(
    ns: String,
    hold: u16,
    blob: Arc<Vec<u8>>,
    ev: mpsc::Sender<GenEvent>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<()>,
) -> io::Result<GenResult> {
    enter(&ns)?;
    let l = TcpListener::bind((GEN_ADDR, 179))?;
    l.set_nonblocking(true)?;
    let _ = ready.send(());
    let start = Instant::now();
    let mut s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(_)
                if start.elapsed() < Duration::from_secs(60) && !stop.load(Ordering::Relaxed) =>
            {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                let _ = ev.send(GenEvent::Failed(format!("no receiver connected: {e}")));
                return Err(e);
            }
        }
    };
    s.set_nonblocking(false)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    s.write_all(&open_msg(hold))?;
    // Their OPEN, then their KEEPALIVE.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got_open = false;
    while Instant::now() < deadline {
        match read_msg(&mut s) {
            Ok((1, _)) => {
                got_open = true;
                s.write_all(&keepalive())?;
            }
            Ok((4, _)) if got_open => break,
            Ok((3, b)) => {
                let _ = ev.send(GenEvent::Failed(format!("NOTIFICATION {b:?} during OPEN")));
                return Err(io::Error::other("notification"));
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                let _ = ev.send(GenEvent::Failed(format!("session: {e}")));
                return Err(e);
            }
        }
    }
    // Reader: the receiver's KEEPALIVEs and whether it drops us.
    let mut rd = s.try_clone()?;
    let stop_r = stop.clone();
    let reader = thread::spawn(move || {
        let mut kas = vec![Instant::now()];
        let mut dropped = false;
        let mut r = BufReader::with_capacity(1 << 16, &mut rd);
        while !stop_r.load(Ordering::Relaxed) {
            match read_msg(&mut r) {
                Ok((4, _)) => kas.push(Instant::now()),
                Ok((3, _)) => {
                    dropped = true;
                    break;
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    dropped = !stop_r.load(Ordering::Relaxed);
                    break;
                }
            }
        }
        kas.push(Instant::now());
        (kas, dropped)
    });
    let t0 = Instant::now();
    let _ = ev.send(GenEvent::Started(t0));
    let ka_every = Duration::from_secs(u64::from(hold / 3).max(1));
    let mut last_write = Instant::now();
    for chunk in blob.chunks(64 * 1024) {
        if s.write_all(chunk).is_err() {
            break;
        }
        last_write = Instant::now();
    }
    let _ = ev.send(GenEvent::Sent(Instant::now()));
    // Our own KEEPALIVEs until told to stop (bounded by the caller's limit).
    let end = Instant::now() + Duration::from_secs(600);
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        if last_write.elapsed() >= ka_every {
            let _ = s.write_all(&keepalive());
            last_write = Instant::now();
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let (keepalives, dropped) = reader.join().unwrap_or_default();
    Ok(GenResult {
        keepalives,
        dropped,
    })
}

/// Starts the receiver in `d` and returns it with a way to read its count.
struct Running {
    proc_: Proc,
    /// Ours reports counts on stdout; the others are asked.
    lines: Option<mpsc::Receiver<usize>>,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A world-readable private directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> std::io::Result<Self> {
            use std::os::unix::fs::PermissionsExt;
            let p = std::path::PathBuf::from(format!("/tmp/anycast-bench-{tag}"));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
            Ok(Dir(p))
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn start_receiver(r: Receiver, d: &Netns, hold: u16, exe: &Path) -> io::Result<Running> {
    let dir = tempdir::Dir::new(d.name())?;
    let ka = (hold / 3).max(1);
    let log = |n: &str| std::fs::File::create(dir.0.join(n));
    let (child, lines) = match r {
        Receiver::Ours => {
            let mut c = d
                .command(&exe.to_string_lossy())
                .args(["recv", &GEN_ADDR.to_string(), &hold.to_string()])
                .stdout(Stdio::piped())
                .stderr(log("recv.err")?)
                .spawn()?;
            let out = c
                .stdout
                .take()
                .ok_or_else(|| io::Error::other("no stdout"))?;
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(n) = line.strip_prefix("count ").and_then(|v| v.parse().ok())
                        && tx.send(n).is_err()
                    {
                        break;
                    }
                }
            });
            (c, Some(rx))
        }
        Receiver::Bird => {
            let conf = format!(
                "router id 10.202.0.2;\nprotocol device {{}}\n\
                 protocol bgp gen {{\n local 10.202.0.2 as 65001;\n neighbor {GEN_ADDR} as {GEN_ASN};\n \
                 hold time {hold};\n keepalive time {ka};\n connect retry time 1;\n \
                 ipv4 {{ import all; export none; }};\n}}\n"
            );
            let p = dir.0.join("bird.conf");
            std::fs::write(&p, conf)?;
            let c = d
                .command("bird")
                .args([
                    "-f",
                    "-c",
                    &p.to_string_lossy(),
                    "-s",
                    &dir.0.join("bird.ctl").to_string_lossy(),
                ])
                .stdout(log("bird.out")?)
                .stderr(log("bird.err")?)
                .spawn()?;
            (c, None)
        }
        Receiver::Gobgp => {
            let conf = format!(
                "[global.config]\n  as = 65001\n  router-id = \"10.202.0.2\"\n  port = -1\n\
                 [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{GEN_ADDR}\"\n    peer-as = {GEN_ASN}\n\
                 [neighbors.timers.config]\n    hold-time = {hold}\n    keepalive-interval = {ka}\n    connect-retry = 1\n\
                 [[neighbors.afi-safis]]\n  [neighbors.afi-safis.config]\n    afi-safi-name = \"ipv4-unicast\"\n"
            );
            let p = dir.0.join("gobgpd.toml");
            std::fs::write(&p, conf)?;
            let c = d
                .command("gobgpd")
                .args([
                    "-t",
                    "toml",
                    "-p",
                    "--pprof-disable",
                    "--api-hosts",
                    "127.0.0.1:50051",
                    "-f",
                    &p.to_string_lossy(),
                ])
                .stdout(log("gobgpd.out")?)
                .stderr(log("gobgpd.err")?)
                .spawn()?;
            (c, None)
        }
        Receiver::Frr => {
            let tag = d.name().replace('-', "");
            let run_dir = format!("/run/frr/{tag}");
            let _ = std::fs::remove_dir_all(&run_dir);
            std::fs::create_dir_all(&run_dir)?;
            anycast_lab::netns::run("chown", &["frr:frr", &run_dir])?;
            let conf = format!(
                "router bgp 65001\n bgp router-id 10.202.0.2\n no bgp ebgp-requires-policy\n \
                 neighbor {GEN_ADDR} remote-as {GEN_ASN}\n neighbor {GEN_ADDR} timers {ka} {hold}\n \
                 neighbor {GEN_ADDR} timers connect 1\n"
            );
            let p = dir.0.join("bgpd.conf");
            std::fs::write(&p, conf)?;
            let c = d
                .command("/usr/lib/frr/bgpd")
                .args([
                    "-N",
                    &tag,
                    "-f",
                    &p.to_string_lossy(),
                    "-i",
                    &format!("{run_dir}/bgpd.pid"),
                    "-n",
                    "-Z",
                ])
                .args([
                    "--log",
                    &format!("file:{}", dir.0.join("bgpd.log").display()),
                ])
                .stdout(log("bgpd.out")?)
                .stderr(log("bgpd.err")?)
                .spawn()?;
            (c, None)
        }
    };
    Ok(Running {
        proc_: Proc(child),
        lines,
        _dir: dir,
    })
}

/// Asks a third-party receiver how many prefixes it holds from the generator.
fn ask_count(r: Receiver, d: &Netns, dir: &Path) -> Option<usize> {
    let num_before = |s: &str, pat: &str| -> Option<usize> {
        let i = s.find(pat)?;
        s[..i].split_whitespace().last()?.parse().ok()
    };
    match r {
        Receiver::Ours => None,
        Receiver::Bird => {
            let out = anycast_lab::netns::run(
                "birdc",
                &[
                    "-s",
                    &dir.join("bird.ctl").to_string_lossy(),
                    "show",
                    "route",
                    "count",
                ],
            )
            .ok()?;
            num_before(&String::from_utf8_lossy(&out.stdout), "of ")
        }
        Receiver::Gobgp => {
            let out = d
                .exec(
                    "gobgp",
                    &[
                        "-u",
                        "127.0.0.1",
                        "-p",
                        "50051",
                        "global",
                        "rib",
                        "summary",
                        "-a",
                        "ipv4",
                    ],
                )
                .ok()?;
            let s = out;
            let i = s.find("Destination:")?;
            s[i + 12..]
                .split(|c: char| c == ',' || c.is_whitespace())
                .find(|t| !t.is_empty())?
                .parse()
                .ok()
        }
        Receiver::Frr => {
            let tag = d.name().replace('-', "");
            let out = anycast_lab::netns::run(
                "vtysh",
                &["-N", &tag, "-c", "show bgp ipv4 unicast summary json"],
            )
            .ok()?;
            let s = String::from_utf8_lossy(&out.stdout).into_owned();
            let i = s.find("\"pfxRcd\":")?;
            s[i + 9..]
                .split(|c: char| !c.is_ascii_digit())
                .find(|t| !t.is_empty())?
                .parse()
                .ok()
        }
    }
}

/// One receiver, one table size, one hold time.
pub fn run(
    r: Receiver,
    n: usize,
    hold: u16,
    limit: Duration,
    exe: &Path,
    blob: Arc<Vec<u8>>,
) -> io::Result<Ingest> {
    let g = Netns::create("bi-g")?;
    let d = Netns::create("bi-d")?;
    veth(&g, &["10.202.0.1/30"], &d, &["10.202.0.2/30"])?;
    let (ev_tx, ev_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let gen_thread = {
        let (ns, stop, blob) = (g.name().to_string(), stop.clone(), blob);
        thread::spawn(move || generator(ns, hold, blob, ev_tx, stop, ready_tx))
    };
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| io::Error::other("generator did not start"))?;
    let mut rec = start_receiver(r, &d, hold, exe)?;
    let dir = rec._dir.0.clone();
    let pid = rec.proc_.pid();
    // Session up.
    let t0 = match ev_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(GenEvent::Started(t)) => t,
        Ok(GenEvent::Failed(e)) => return Err(io::Error::other(format!("{r}: {e}"))),
        _ => return Err(io::Error::other(format!("{r}: session never came up"))),
    };
    let cpu0 = proc_usage(pid).map(|u| u.cpu).unwrap_or_default();
    let mut sent = None;
    let mut counted = 0;
    let mut all = None;
    let every = if r == Receiver::Ours {
        Duration::from_millis(5)
    } else {
        Duration::from_millis(50)
    };
    let mut peak = ProcUsage::default();
    while t0.elapsed() < limit {
        if let Ok(GenEvent::Sent(t)) = ev_rx.try_recv() {
            sent = Some(t - t0);
        }
        let c = match &rec.lines {
            Some(rx) => {
                let mut last = None;
                while let Ok(n) = rx.recv_timeout(if last.is_none() {
                    every
                } else {
                    Duration::ZERO
                }) {
                    last = Some(n);
                }
                last
            }
            None => {
                let c = ask_count(r, &d, &dir);
                if c.is_none_or(|c| c < n) {
                    thread::sleep(every);
                }
                c
            }
        };
        if let Some(u) = proc_usage(pid) {
            peak = u;
        }
        if let Some(c) = c {
            counted = c;
            if c >= n {
                all = Some(t0.elapsed());
                break;
            }
        }
        if !rec.proc_.alive() {
            break;
        }
    }
    let usage = proc_usage(pid).unwrap_or(peak);
    // One more keepalive interval so a stalled receiver shows in the gap.
    let ka = Duration::from_secs(u64::from(hold / 3).max(1));
    thread::sleep(ka + Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let gres = gen_thread
        .join()
        .map_err(|_| io::Error::other("generator panicked"))??;
    rec.proc_.stop(Duration::from_secs(3));
    if r == Receiver::Frr {
        let _ = std::fs::remove_dir_all(format!("/run/frr/{}", d.name().replace('-', "")));
    }
    let keepalive_gap = gres
        .keepalives
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    Ok(Ingest {
        receiver: r,
        prefixes: n,
        hold,
        all_counted: all,
        counted,
        sent: sent.unwrap_or_default(),
        usage,
        cpu: usage.cpu.saturating_sub(cpu0),
        keepalive_gap,
        dropped: gres.dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_hold_exactly_n_prefixes() {
        let b = updates(1234);
        let (mut off, mut total, mut msgs) = (0, 0, 0);
        let mut seen = std::collections::HashSet::new();
        while off < b.len() {
            let len = usize::from(u16::from_be_bytes([b[off + 16], b[off + 17]]));
            let body = &b[off + 19..off + len];
            let al = usize::from(u16::from_be_bytes([body[2], body[3]]));
            let mut nlri = &body[4 + al..];
            let mut k = 0;
            while let Some((&plen, rest)) = nlri.split_first() {
                let bytes = usize::from(plen).div_ceil(8);
                let mut a = [0u8; 4];
                a[..bytes].copy_from_slice(&rest[..bytes]);
                assert!(seen.insert((plen, a)), "duplicate {a:?}/{plen}");
                nlri = &rest[bytes..];
                k += 1;
            }
            assert!((1..=100).contains(&k));
            total += k;
            msgs += 1;
            off += len;
        }
        assert_eq!(total, 1234);
        assert!(msgs >= 1234 / 100);
    }

    #[test]
    fn a_million_prefixes_are_distinct_unicast_and_mostly_24s() {
        let mut seen = std::collections::HashSet::new();
        let mut by_len = [0usize; 33];
        for i in 0..MAX_PREFIXES {
            let (len, addr) = nth_prefix(i);
            assert_eq!(addr & !(u32::MAX << (32 - len)), 0, "host bits");
            assert!((128..192).contains(&(addr >> 24)), "{addr:#x}");
            assert!(seen.insert((len, addr)), "duplicate at {i}");
            by_len[usize::from(len)] += 1;
        }
        assert_eq!(by_len[24], 605_000);
    }
}
