//! Helpers for code running inside the lab kernel (a test re-executed by
//! [`super::Lab::guest_test`], or a program run by [`super::Lab::guest_exec`]).
//!
//! ```no_run
//! # fn in_guest_part() {}
//! #[test]
//! fn lab_kernel_example() {
//!     if let Some(_lab) = anycast_lab::uml::guest::active() {
//!         return in_guest_part(); // report with guest::check / guest::report
//!     }
//!     // host part: require(...), build the Lab, run, assert_passed()
//! }
//! ```

// Unsafe here: setns through libc; each block says why it is sound.
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{DIR_ENV, GUEST_ENV};

/// The lab's name when running inside the lab kernel, else `None`.
pub fn active() -> Option<String> {
    std::env::var(GUEST_ENV).ok()
}

/// The run's work dir (same path on host and guest).
pub fn work_dir() -> PathBuf {
    PathBuf::from(std::env::var(DIR_ENV).unwrap_or_else(|_| ".".into()))
}

/// Writes a `PASS`/`FAIL` line for `step` (one word) to the results file and echoes
/// it to stdout (the guest log).
pub fn report(step: &str, pass: bool, detail: &str) {
    let word = if pass { "PASS" } else { "FAIL" };
    let detail = detail.replace('\n', " | ");
    let line = format!("{word} {step} {detail}");
    println!("{line}");
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(work_dir().join("results"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Reports `step` as passed when `ok`, failed otherwise; returns `ok`.
pub fn check(step: &str, ok: bool, detail: &str) -> bool {
    report(step, ok, detail);
    ok
}

/// Runs `f` on a new thread that has entered network namespace `ns`
/// (`/run/netns/NAME`, as made by `ip netns add`). Sockets opened there stay in
/// that namespace for their whole life, whichever thread uses them later.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_netns(ns, f)
        .join()
        .expect("thread in netns panicked")
}

/// Like [`in_netns`] but does not wait: returns the thread's handle.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        enter_netns(&path);
        f()
    })
}

/// Moves the calling thread into the network namespace at `path`. Panics if that
/// fails (a test setup error).
pub fn enter_netns(path: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a valid fd with CLONE_NEWNET only changes this thread's netns.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// Runs `sh -c cmd` (root namespace) and returns its output.
pub fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("sh -c {cmd}: {e}"))
}

/// Runs `cmd` inside namespace `ns` (`ip netns exec NS sh -c CMD`); stdout as text
/// (stderr appended), for looking at state with `ip`, `ipvsadm`, `tc`.
pub fn sh_in(ns: &str, cmd: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .output()
        .unwrap_or_else(|e| panic!("ip netns exec {ns} {cmd}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

/// A background process started in the guest; killed (by its PID) and reaped when
/// dropped, so a failing test leaves nothing running.
#[derive(Debug)]
pub struct Background {
    child: std::process::Child,
}

impl Background {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program args` inside namespace `ns` (`ip netns exec`), output appended to
/// `<work dir>/<ns>-<program name>.log`. E.g. the daemon under test.
pub fn spawn_in(ns: &str, program: &std::path::Path, args: &[&str]) -> Background {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".into());
    let log_path = work_dir().join(format!("{ns}-{name}.log"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
    let err = log.try_clone().expect("log fd");
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {} in {ns}: {e}", program.display()));
    Background { child }
}

/// Busy and total jiffies of the whole guest (/proc/stat's first line): the share of
/// the guest's CPU something took is the busy delta over the total delta.
pub fn busy_jiffies() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// `vtysh -N NS -c CMD` for an FRR instance started by [`super::Topology::frr`].
pub fn vtysh(ns: &str, cmd: &str) -> String {
    let out = Command::new("vtysh")
        .args(["-N", ns, "-c", cmd])
        .output()
        .unwrap_or_else(|e| panic!("vtysh -N {ns} -c {cmd}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Tiny TCP servers and clients for scenarios: each server answers every line it
/// receives with its own name, so a client learns which real server it reached, and a
/// long-lived connection can ask again later.
pub mod tcp {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::time::Duration;

    /// Starts a server named `name` listening on `addr` inside namespace `ns`; it
    /// runs on background threads until the process exits.
    pub fn serve(ns: &str, addr: SocketAddr, name: &str) {
        let name = name.to_string();
        let listener = super::in_netns(ns, move || TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        std::thread::spawn(move || {
            // Bounded: a scenario never needs more connections than this.
            for conn in listener.incoming().take(100_000).flatten() {
                let name = name.clone();
                std::thread::spawn(move || answer(conn, &name));
            }
        });
    }

    fn answer(conn: TcpStream, name: &str) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
        let mut w = match conn.try_clone() {
            Ok(w) => w,
            Err(_) => return,
        };
        let mut r = BufReader::new(conn);
        let mut line = String::new();
        // Bounded: at most 10_000 requests per connection.
        for _ in 0..10_000 {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if writeln!(w, "{name}").is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// A client connection opened from a namespace; ask it who serves it.
    pub struct Client {
        r: BufReader<TcpStream>,
        w: TcpStream,
    }

    impl Client {
        /// Connects from namespace `ns` to `addr` (2 s timeout).
        pub fn connect(ns: &str, addr: SocketAddr) -> std::io::Result<Client> {
            let s = super::in_netns(ns, move || {
                TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            })?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.set_write_timeout(Some(Duration::from_secs(2)))?;
            Ok(Client {
                w: s.try_clone()?,
                r: BufReader::new(s),
            })
        }

        /// Sends one request line and returns the server's name.
        pub fn ask(&mut self) -> std::io::Result<String> {
            self.w.write_all(b"who\n")?;
            let mut line = String::new();
            if self.r.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(line.trim().to_string())
        }
    }

    /// One short connection from `ns` to `addr`: connect, ask, close.
    pub fn ask_once(ns: &str, addr: SocketAddr) -> std::io::Result<String> {
        Client::connect(ns, addr)?.ask()
    }
}

/// Tiny UDP servers and clients: each server answers every datagram with its name.
pub mod udp {
    use std::net::{SocketAddr, UdpSocket};
    use std::time::Duration;

    /// Starts a server named `name` on `addr` inside namespace `ns` (background
    /// thread, lives until the process exits).
    pub fn serve(ns: &str, addr: SocketAddr, name: &str) {
        let name = name.to_string();
        let sock = super::in_netns(ns, move || UdpSocket::bind(addr))
            .unwrap_or_else(|e| panic!("bind udp {addr}: {e}"));
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            // Bounded like the TCP server.
            for _ in 0..100_000 {
                let Ok((_, peer)) = sock.recv_from(&mut buf) else {
                    return;
                };
                let _ = sock.send_to(name.as_bytes(), peer);
            }
        });
    }

    /// Sends one datagram from a fresh socket in `ns` and returns the answer (1 s
    /// timeout). A fresh socket means a fresh source port (random, from the ephemeral
    /// range): a new IPVS connection, unless the port repeats one whose connection
    /// entry still lives (5 minutes for UDP).
    pub fn ask_once(ns: &str, addr: SocketAddr) -> std::io::Result<String> {
        ask_from(ns, addr, 0)
    }

    /// [`ask_once`] from source port `port` (0: any). A port below the ephemeral range
    /// that no other ask used is sure to be a new IPVS connection.
    pub fn ask_from(ns: &str, addr: SocketAddr, port: u16) -> std::io::Result<String> {
        let any: SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, port).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, port).into()
        };
        let sock = super::in_netns(ns, move || UdpSocket::bind(any))?;
        sock.set_read_timeout(Some(Duration::from_secs(1)))?;
        sock.send_to(b"who", addr)?;
        let mut buf = [0u8; 1500];
        let (n, _) = sock.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}
