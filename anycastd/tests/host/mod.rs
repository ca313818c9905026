//! anycastd as a plain process on the host, no root and no namespaces: a temp dir with
//! its config, real servers as TCP listeners on 127.0.0.1, the daemon killed by PID on
//! drop, and anycastctl against its local API.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anycast_lab::netns::wait_until;
use serde_json::Value;

/// The site name every config here uses.
pub const SITE: &str = "idc1";

/// A real server on 127.0.0.1: accepts every connection and holds it until the client
/// closes it (the health checker's held connection stays up). Background threads serve
/// it for the rest of the test process.
pub struct RealServer {
    pub addr: SocketAddr,
}

impl RealServer {
    /// On an ephemeral port.
    pub fn start() -> RealServer {
        RealServer::on(0).expect("bind 127.0.0.1:0")
    }

    /// On `port` (a port picked by [`free_port`] for a server that comes up later).
    pub fn on(port: u16) -> std::io::Result<RealServer> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        std::thread::spawn(move || {
            // Bounded: a test never opens more connections than this.
            for mut conn in listener.incoming().take(100_000).flatten() {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 512];
                    while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                });
            }
        });
        Ok(RealServer { addr })
    }
}

/// A loopback port nobody listens on (bound, then released).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` different loopback ports nobody listens on (all bound at once, then released).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: [TcpListener; N] =
        std::array::from_fn(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"));
    held.map(|l| l.local_addr().expect("bound address").port())
}

/// Where the daemon's local API listens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Api {
    /// 127.0.0.1 on a free port.
    Tcp,
    /// `api.sock` in the daemon's temp dir.
    Unix,
}

/// The name of this process's effective group (`id -gn`): a group that exists and
/// that a daemon started by this process may give its socket to, root or not.
pub fn own_group() -> String {
    let out = Command::new("id").arg("-gn").output().expect("run id -gn");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The site config: dataplane off, one neighbor on a loopback address where nothing
/// listens on 179 (the session stays down, retried once an hour), no peers, and VIP
/// `web` over `servers` (NAT, so each keeps its own port) with fast TCP checks. `api`
/// is the body of the `[api]` table.
pub fn config(dir: &std::path::Path, api: &str, servers: &[SocketAddr]) -> String {
    let mut text = format!(
        r#"
[site]
name = "{SITE}"
address = "127.0.0.1"
dataplane = false
shutdown_wait = "10m"
state_dir = "{dir}"

[api]
{api}

[bgp]
asn = 65005

[[bgp.neighbor]]
address = "127.0.0.2"
remote_asn = 65001
connect_retry = 3600

[[vip]]
name = "web"
prefix = "10.101.4.0/24"
address = "10.101.4.1"
min_up = 1
hold_down = "1s"

[[vip.service]]
protocol = "tcp"
port = 80

[vip.service.check]
type = "tcp"
interval = "200ms"
timeout = "200ms"
rise = 1
fall = 2
"#,
        dir = dir.display()
    );
    for s in servers {
        text.push_str(&format!(
            "\n[[vip.service.real_server]]\naddress = \"{}\"\nport = {}\nmethod = \"nat\"\ncapacity = 100\n",
            s.ip(),
            s.port()
        ));
    }
    text
}

/// The operator's token in every test daemon's `api.token` (mode 0600).
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Writes `text` to `path`, mode 0600.
pub fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    writeln!(f, "{text}").unwrap();
}

/// A running anycastd; SIGKILLed by PID and reaped on drop, its temp dir removed.
pub struct Daemon {
    dir: PathBuf,
    api: String,
    child: Option<Child>,
}

impl Daemon {
    /// Starts anycastd for `servers` and waits (10 s at most) until its API answers.
    /// A TCP port taken between picking and binding it is retried on another port.
    /// The socket belongs to this process's own group; over TCP, [`TOKEN`] in
    /// `api.token` lets changes through.
    pub fn start(test: &str, api: Api, servers: &[SocketAddr]) -> Daemon {
        let lines = match api {
            Api::Unix => format!("group = \"{}\"", own_group()),
            Api::Tcp => "token_file = \"api.token\"".to_string(),
        };
        Daemon::start_with(test, api, &lines, servers)
    }

    /// [`Daemon::start`] with more lines in `[api]` (`group`, `public`, `token_file`).
    pub fn start_with(test: &str, api: Api, api_lines: &str, servers: &[SocketAddr]) -> Daemon {
        let dir = std::env::temp_dir().join(format!("anycastd-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for _attempt in 0..3 {
            // A failed attempt's drop removed the dir.
            std::fs::create_dir_all(&dir).unwrap();
            let listen = match api {
                Api::Tcp => format!("127.0.0.1:{}", free_port()),
                Api::Unix => format!("unix:{}", dir.join("api.sock").display()),
            };
            // Relative to the config, as `token_file = "api.token"` names it.
            write_private(&dir.join("api.token"), TOKEN);
            let config = dir.join("site.toml");
            let api_table = format!("listen = \"{listen}\"\n{api_lines}");
            std::fs::write(&config, self::config(&dir, &api_table, servers)).unwrap();
            let mut d = Daemon {
                dir: dir.clone(),
                api: listen,
                child: None,
            };
            if d.run() {
                return d;
            }
            // Exited early: on TCP most likely the port was taken meanwhile.
            let log = d.log();
            assert!(
                api == Api::Tcp && !d.running(),
                "anycastd did not start\n{log}"
            );
            eprintln!("anycastd exited at start, retrying on another port:\n{log}");
        }
        panic!("anycastd found no free API port in 3 attempts");
    }

    /// Starts the process on the config in its dir (the log appended to) and waits
    /// (10 s at most) until its API answers a root status: whether it did.
    fn run(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("anycastd.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .arg("--config")
            .arg(self.config_path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start anycastd");
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            !self.running() || ctl(&self.api, &["status"]).0 == 0
        });
        up && self.running()
    }

    /// SIGKILL (a crash: the socket file stays behind), then a start on the same
    /// config; panics with the log if it does not come up.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(self.run(), "anycastd did not restart\n{}", self.log());
    }

    /// Sends SIGHUP (reload) and waits until the daemon logged the reload.
    pub fn sighup(&self) {
        let before = self.log().matches("reload").count();
        let pid = self.pid().expect("running").to_string();
        let ok = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(ok.success());
        assert!(
            wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
                self.log().matches("reload").count() > before
            }),
            "no reload logged after SIGHUP\n{}",
            self.log()
        );
    }

    /// The daemon's temp dir (its config, log, state and, on a unix API, socket).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("site.toml")
    }

    /// The `--api` argument for anycastctl.
    pub fn api(&self) -> &str {
        &self.api
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("anycastd.log")).unwrap_or_default()
    }

    /// `anycastctl --api API ARGS`: exit code, stdout, stderr.
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        ctl(&self.api, args)
    }

    /// `anycastctl --api API --token-file DIR/api.token ARGS`, as root or the user
    /// running the tests: an operator on either kind of API.
    pub fn ctl_operator(&self, args: &[&str]) -> (i32, String, String) {
        let token = self.dir.join("api.token");
        let mut all = vec!["--token-file", token.to_str().unwrap()];
        all.extend_from_slice(args);
        ctl(&self.api, &all)
    }

    /// `anycastctl --json status`, parsed; `None` while it fails.
    pub fn status(&self) -> Option<Value> {
        let (code, out, _) = self.ctl(&["--json", "status"]);
        if code != 0 {
            return None;
        }
        serde_json::from_str(out.trim()).ok()
    }

    /// Polls the status until `f` holds (bounded by `t`); the status that satisfied
    /// it, or a panic with the last status and the daemon's log.
    pub fn wait_status(&self, what: &str, t: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let mut last = None;
        let ok = wait_until(t, Duration::from_millis(50), || {
            last = self.status();
            last.as_ref().is_some_and(&f)
        });
        assert!(
            ok,
            "waited {t:?} for {what}; last status {last:#?}\n{}",
            self.log()
        );
        last.unwrap_or_default()
    }

    /// `GET path` over the unix-socket API (HTTP/1.1, connection closed after): the
    /// status code and the body.
    pub fn get_unix(&self, path: &str) -> (u16, String) {
        let sock = self.api.strip_prefix("unix:").expect("a unix-socket API");
        let mut s = UnixStream::connect(sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let (code, body) = parse_reply(&reply);
        let body = body.to_string();
        (code, body)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `anycastctl --api API ARGS`: exit code, stdout, stderr.
pub fn ctl(api: &str, args: &[&str]) -> (i32, String, String) {
    ctl_as(None, api, args)
}

/// [`ctl`] as `uid:gid` (no supplementary groups) when given; needs root for that.
pub fn ctl_as(who: Option<(u32, u32)>, api: &str, args: &[&str]) -> (i32, String, String) {
    use std::os::unix::process::CommandExt;
    let built = PathBuf::from(env!("CARGO_BIN_EXE_anycastctl"));
    // Another user may not be able to reach the build tree (a checkout under a 0700
    // `mktemp -d`): run a copy from a world-readable temp dir, removed after.
    let copy = who.map(|_| world_readable_copy(&built));
    let mut cmd = Command::new(copy.as_ref().map_or(&built, |c| &c.1));
    cmd.arg("--api").arg(api).args(args);
    if let Some((uid, gid)) = who {
        // std drops the supplementary groups when root changes uid.
        cmd.uid(uid).gid(gid);
    }
    // A copy just written can be busy for a moment (ETXTBSY): a child forked by
    // another thread of this process (the daemon's start) holds the write descriptor
    // until its own exec. Bounded retries.
    let mut tries = 0;
    let out = loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => break r.expect("run anycastctl"),
        }
    };
    if let Some((dir, _)) = copy {
        let _ = std::fs::remove_dir_all(dir);
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Copies `bin` into a fresh 0755 temp dir: (the dir, the copy).
fn world_readable_copy(bin: &std::path::Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("anycastctl-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("anycastctl");
    std::fs::copy(bin, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, copy)
}

/// The status code and body of a raw HTTP/1.1 reply (0 and "" for garbage).
pub fn parse_reply(reply: &str) -> (u16, &str) {
    let code = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, reply.split_once("\r\n\r\n").map_or("", |(_, b)| b))
}
