//! Network namespaces and veth pairs on the host kernel (BGP interop tests).
//!
//! Every name is unique per process (`prefix-pid-counter`), every namespace is
//! deleted when its [`Netns`](crate::netns::Netns) is dropped, and nothing is ever configured outside
//! the namespaces created here: the test process itself joins one with
//! [`Netns::enter_current_thread`](crate::netns::Netns::enter_current_thread) instead of using the host's network.
//!
//! ```text
//!   Netns "spk-123-0"                      Netns "frr-123-1"
//!   (test thread after enter)              (peer daemon under `ip netns exec`)
//!      v123x0a 10.200.0.1/30  ─── veth ───  v123x0b 10.200.0.2/30
//!              fd00:200::1/64               fd00:200::2/64
//! ```

// Unsafe here: setns and raw sockets through libc; each block says why it is sound.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Runs a command to completion; an error carries its stderr.
pub fn run(program: &str, args: &[&str]) -> io::Result<Output> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A network namespace that is deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `PREFIX-PID-N` with its loopback up.
    pub fn create(prefix: &str) -> io::Result<Self> {
        let name = format!("{prefix}-{}-{}", std::process::id(), next_id());
        run("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// A command that runs inside the namespace (`ip netns exec NAME PROGRAM`).
    /// `ip netns exec` execs the program, so the child's PID is the program's.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program])
            .stdin(Stdio::null());
        c
    }

    /// Runs a program inside the namespace to completion.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Moves the calling thread into the namespace: sockets it opens afterwards
    /// live there. Use it from the test's own thread with a current-thread runtime.
    pub fn enter_current_thread(&self) -> io::Result<()> {
        enter(&self.name)
    }

    /// IPv4 and IPv6 routes of the main table, as `ip route` prints them.
    pub fn routes(&self) -> io::Result<String> {
        let v4 = self.ip(&["-4", "route", "show"])?;
        let v6 = self.ip(&["-6", "route", "show"])?;
        Ok(format!("{v4}{v6}"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also removes the veth ends inside it.
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Moves the calling thread into the namespace named `ns` (`/run/netns/NS`).
pub fn enter(ns: &str) -> io::Result<()> {
    let f = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns on a valid namespace fd only changes this thread's network namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A raw socket (packet capture, route monitor) whose every receive is bounded to
/// 100 ms, so capture loops can check their stop flag.
pub fn bounded_socket(
    domain: libc::c_int,
    ty: libc::c_int,
    proto: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; the fd it returns is wrapped in an OwnedFd
    // below before anything else can see it.
    let fd = unsafe { libc::socket(domain, ty, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: SO_RCVTIMEO with a valid timeval so every recv is bounded.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as u32,
        )
    };
    Ok(fd)
}

/// One receive on a [`bounded_socket`]; `None` on timeout or error.
pub fn recv(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    usize::try_from(n).ok()
}

/// The two ends of a veth pair, each in its namespace with addresses.
#[derive(Debug, Clone)]
pub struct Link {
    /// Interface name on side a.
    pub a_if: String,
    /// Interface name on side b.
    pub b_if: String,
}

/// Connects `a` and `b` with a veth pair and gives each end its addresses
/// (CIDR strings; IPv6 ones are added `nodad` so they are usable at once).
pub fn veth(a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str]) -> io::Result<Link> {
    // Interface names are at most 15 bytes.
    let tag = format!("v{}x{}", std::process::id() % 100_000, next_id() % 1000);
    let (a_if, b_if) = (format!("{tag}a"), format!("{tag}b"));
    run(
        "ip",
        &[
            "link",
            "add",
            &a_if,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            &b_if,
            "netns",
            b.name(),
        ],
    )?;
    for (ns, ifname, addrs) in [(a, &a_if, a_addrs), (b, &b_if, b_addrs)] {
        for addr in addrs {
            if addr.contains(':') {
                ns.ip(&["addr", "add", addr, "dev", ifname, "nodad"])?;
            } else {
                ns.ip(&["addr", "add", addr, "dev", ifname])?;
            }
        }
        ns.ip(&["link", "set", ifname, "up"])?;
    }
    Ok(Link { a_if, b_if })
}

/// Polls `check` every `every` until it returns true or `limit` passes (also
/// bounded to 10 000 polls). Returns whether it became true.
pub fn wait_until(limit: Duration, every: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    for _ in 0..10_000 {
        if check() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(every);
    }
    false
}
