//! Real BGP peers started inside a [`Netns`](crate::netns::Netns): FRR 8.4 (zebra + bgpd), BIRD 2 and
//! GoBGP 3. Each daemon runs in the foreground as a child of the test (through
//! `ip netns exec`, which execs it, so the child PID is the daemon's), with its
//! config, sockets and logs in a private directory; dropping the value kills
//! exactly those PIDs and removes the directory. Never `pkill`: other tests and
//! other people run the same daemons on the same machine.
//!
//! FRR facts (../shared/bgp-notes.md): `-N NAME` gives private pid/socket paths
//! under /run/frr/NAME (owned by frr), configs must be readable by user frr, and
//! eBGP needs `no bgp ebgp-requires-policy`.

// Unsafe here: kill(2) on a peer daemon's pid; each block says why it is sound.
#![allow(unsafe_code)]

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::netns::{Netns, run, wait_until};

/// A private, world-readable directory for one daemon's files.
fn daemon_dir(tag: &str) -> io::Result<PathBuf> {
    let dir = PathBuf::from(format!("/tmp/anycast-lab-{tag}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

fn write_conf(path: &Path, text: &str) -> io::Result<()> {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
}

fn log_file(path: &Path) -> io::Result<Stdio> {
    Ok(Stdio::from(fs::File::create(path)?))
}

/// Stops one child: SIGTERM, a bounded wait, then SIGKILL. By PID only.
fn stop_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's PID; the child is not yet reaped so the PID is still ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let exited = wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// FRR zebra + bgpd in a namespace.
#[derive(Debug)]
pub struct Frr {
    ns_name: String,
    tag: String,
    dir: PathBuf,
    run_dir: PathBuf,
    kernel: bool,
    /// Also runs bfdd (with zebra).
    bfdd: bool,
    children: Vec<Child>,
}

impl Frr {
    /// Starts zebra, bfdd (with `bfdd_conf`) and bgpd (with `bgpd_conf`) in `ns`.
    pub fn start_with_bfdd(ns: &Netns, bgpd_conf: &str, bfdd_conf: &str) -> io::Result<Self> {
        Self::start_inner(ns, bgpd_conf, true, Some(bfdd_conf))
    }

    /// Starts zebra and bgpd in `ns` with `bgpd_conf`. With `kernel` false, bgpd
    /// runs with `-n` (no kernel install) and no zebra.
    pub fn start(ns: &Netns, bgpd_conf: &str, kernel: bool) -> io::Result<Self> {
        Self::start_inner(ns, bgpd_conf, kernel, None)
    }

    fn start_inner(
        ns: &Netns,
        bgpd_conf: &str,
        kernel: bool,
        bfdd_conf: Option<&str>,
    ) -> io::Result<Self> {
        let tag = ns.name().replace('-', "");
        let dir = daemon_dir(&tag)?;
        let run_dir = PathBuf::from(format!("/run/frr/{tag}"));
        let _ = fs::remove_dir_all(&run_dir);
        fs::create_dir_all(&run_dir)?;
        run("chown", &["frr:frr", &run_dir.to_string_lossy()])?;
        write_conf(&dir.join("zebra.conf"), "hostname zebra\n")?;
        write_conf(&dir.join("bgpd.conf"), bgpd_conf)?;
        if let Some(c) = bfdd_conf {
            write_conf(&dir.join("bfdd.conf"), c)?;
        }
        let mut frr = Self {
            ns_name: ns.name().to_string(),
            tag,
            dir,
            run_dir,
            kernel,
            bfdd: bfdd_conf.is_some(),
            children: Vec::new(),
        };
        frr.spawn_daemons()?;
        Ok(frr)
    }

    fn daemon(&self, name: &str, extra: &[&str]) -> io::Result<Child> {
        let conf = self.dir.join(format!("{name}.conf"));
        let pid = self.run_dir.join(format!("{name}.pid"));
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.ns_name,
            &format!("/usr/lib/frr/{name}"),
        ])
        .args([
            "-N",
            &self.tag,
            "-f",
            &conf.to_string_lossy(),
            "-i",
            &pid.to_string_lossy(),
        ])
        .args([
            "--log",
            &format!("file:{}", self.dir.join(format!("{name}.log")).display()),
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log_file(&self.dir.join(format!("{name}.out")))?)
        .stderr(log_file(&self.dir.join(format!("{name}.err")))?);
        c.spawn()
    }

    fn spawn_daemons(&mut self) -> io::Result<()> {
        if self.kernel {
            let z = self.daemon("zebra", &[])?;
            self.children.push(z);
            let api = self.run_dir.join("zserv.api");
            if !wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
                api.exists()
            }) {
                return Err(io::Error::other(
                    "zebra did not create its zserv socket in 10 s",
                ));
            }
            if self.bfdd {
                let d = self.daemon("bfdd", &[])?;
                self.children.push(d);
                let vty = self.run_dir.join("bfdd.vty");
                if !wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
                    vty.exists()
                }) {
                    return Err(io::Error::other(format!(
                        "bfdd did not start; see {}",
                        self.dir.display()
                    )));
                }
            }
            let b = self.daemon("bgpd", &[])?;
            self.children.push(b);
        } else {
            let b = self.daemon("bgpd", &["-n", "-Z"])?;
            self.children.push(b);
        }
        let vty = self.run_dir.join("bgpd.vty");
        if !wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            vty.exists()
        }) {
            return Err(io::Error::other(format!(
                "bgpd did not start; see {}",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// `vtysh -N TAG -c CMD` output.
    pub fn vtysh(&self, cmd: &str) -> io::Result<String> {
        // vtysh only warns that /etc/frr/TAG/vtysh.conf is missing.
        run("vtysh", &["-N", &self.tag, "-c", cmd])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// True when the neighbor shows Established.
    pub fn established(&self, neighbor: &str) -> bool {
        self.vtysh(&format!("show bgp neighbors {neighbor} json"))
            .map(|s| s.contains("\"bgpState\":\"Established\""))
            .unwrap_or(false)
    }

    /// Kills zebra and bgpd (by PID). The namespace and config stay.
    pub fn stop(&mut self) {
        for c in self.children.iter_mut().rev() {
            stop_child(c);
        }
        self.children.clear();
    }

    /// Stops and starts the daemons again with the same config.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        for f in ["zserv.api", "bgpd.vty", "zebra.vty", "bfdd.vty"] {
            let _ = fs::remove_file(self.run_dir.join(f));
        }
        self.spawn_daemons()
    }

    /// bgpd's log (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("bgpd.log")).unwrap_or_default()
    }

    /// The PIDs of the running daemons.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.run_dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One daemon in the foreground in a namespace, what BIRD and GoBGP share: its
/// config and logs in a private directory, the child's PID (`ip netns exec` execs
/// the daemon). Dropping it stops exactly that PID and removes the directory.
#[derive(Debug)]
struct Daemon {
    ns_name: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// The directory for `ns`'s daemon, with `conf` written to `conf_name` in it.
    fn new(ns: &Netns, conf_name: &str, conf: &str) -> io::Result<Self> {
        let dir = daemon_dir(&ns.name().replace('-', ""))?;
        write_conf(&dir.join(conf_name), conf)?;
        Ok(Self {
            ns_name: ns.name().to_string(),
            dir,
            child: None,
        })
    }

    /// Writes the config, wraps the daemon's files in `wrap` (`Bird`, `Gobgp`), and
    /// starts it with `spawn`, which returns once the daemon is up.
    fn start<T>(
        ns: &Netns,
        conf_name: &str,
        conf: &str,
        wrap: fn(Daemon) -> T,
        spawn: fn(&mut T) -> io::Result<()>,
    ) -> io::Result<T> {
        let mut peer = wrap(Self::new(ns, conf_name, conf)?);
        spawn(&mut peer)?;
        Ok(peer)
    }

    /// Starts `program ARGS` in the namespace, stdin closed, stdout and stderr into
    /// `PROGRAM.out` and `PROGRAM.err` in the directory.
    fn spawn(&mut self, program: &str, args: &[&str]) -> io::Result<()> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns_name, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file(&self.dir.join(format!("{program}.out")))?)
            .stderr(log_file(&self.dir.join(format!("{program}.err")))?)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// The path of `file` in the directory, as an argument.
    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the daemon (by PID).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c);
        }
    }

    /// The `files` of the directory, one after the other (a missing one is empty).
    fn read(&self, files: &[&str]) -> String {
        files
            .iter()
            .map(|f| fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// BIRD 2 in a namespace (foreground, private control socket).
#[derive(Debug)]
pub struct Bird {
    d: Daemon,
}

impl Bird {
    /// Starts `bird -f -c CONF -s SOCK` in `ns`.
    pub fn start(ns: &Netns, conf: &str) -> io::Result<Self> {
        Daemon::start(ns, "bird.conf", conf, |d| Self { d }, Self::spawn)
    }

    fn sock(&self) -> PathBuf {
        self.d.dir.join("bird.ctl")
    }

    fn spawn(&mut self) -> io::Result<()> {
        let _ = fs::remove_file(self.sock());
        let (conf, sock) = (self.d.path("bird.conf"), self.d.path("bird.ctl"));
        self.d.spawn("bird", &["-f", "-c", &conf, "-s", &sock])?;
        // Up means: still running and answering on its control socket (a config
        // error makes bird exit, sometimes after the socket appeared).
        let mut up = false;
        for _ in 0..500 {
            if !self.d.running() {
                break;
            }
            if self
                .birdc("show status")
                .is_ok_and(|s| s.contains("Daemon is up"))
            {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !up {
            self.stop();
            return Err(io::Error::other(format!(
                "bird did not start: {}",
                self.log()
            )));
        }
        Ok(())
    }

    /// `birdc -s SOCK CMD` output.
    pub fn birdc(&self, cmd: &str) -> io::Result<String> {
        let sock = self.sock();
        let mut args = vec!["-s", sock.to_str().unwrap_or_default()];
        args.extend(cmd.split_whitespace());
        run("birdc", &args).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Kills bird (by PID).
    pub fn stop(&mut self) {
        self.d.stop();
    }

    /// Stops and starts bird with the same config.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// bird's stderr and log.
    pub fn log(&self) -> String {
        self.d.read(&["bird.err", "bird.log"])
    }

    /// Where bird's files live (a config may log to `dir/bird.log`).
    pub fn dir(&self) -> &Path {
        &self.d.dir
    }
}

/// GoBGP 3 in a namespace; its gRPC API listens on the namespace's own loopback.
#[derive(Debug)]
pub struct Gobgp {
    d: Daemon,
}

impl Gobgp {
    /// Starts `gobgpd -f CONF` (TOML) in `ns`.
    pub fn start(ns: &Netns, toml: &str) -> io::Result<Self> {
        Daemon::start(ns, "gobgpd.toml", toml, |d| Self { d }, Self::spawn)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let conf = self.d.path("gobgpd.toml");
        self.d.spawn(
            "gobgpd",
            &[
                "-t",
                "toml",
                "-p",
                "--pprof-disable",
                "--api-hosts",
                "127.0.0.1:50051",
                "-f",
                &conf,
            ],
        )?;
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            self.gobgp(&["global"]).is_ok()
        });
        if !up {
            return Err(io::Error::other(format!(
                "gobgpd did not start: {}",
                self.log()
            )));
        }
        Ok(())
    }

    /// `gobgp ARGS...` inside the namespace.
    pub fn gobgp(&self, args: &[&str]) -> io::Result<String> {
        let mut all = vec![
            "netns",
            "exec",
            self.d.ns_name.as_str(),
            "gobgp",
            "-u",
            "127.0.0.1",
            "-p",
            "50051",
        ];
        all.extend_from_slice(args);
        run("ip", &all).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// The global RIB of one family ("ipv4" or "ipv6"), as `gobgp global rib` prints it.
    pub fn rib(&self, family: &str) -> String {
        self.gobgp(&["global", "rib", "-a", family])
            .unwrap_or_default()
    }

    /// Kills gobgpd (by PID).
    pub fn stop(&mut self) {
        self.d.stop();
    }

    /// Stops and starts gobgpd with the same config.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// gobgpd's output.
    pub fn log(&self) -> String {
        self.d.read(&["gobgpd.out", "gobgpd.err"])
    }
}
