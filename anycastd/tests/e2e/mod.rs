//! Shared pieces of the end-to-end tests in the lab kernel: the paper's topology
//! (lab/src/seed.rs), real servers as killable processes, anycastd per director.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anycast_lab::uml::guest;

pub const VIP: &str = "10.101.4.1:80";

/// A real server: answers each line with its name (like `guest::tcp::serve`), as a
/// process of its own so a test can kill it.
const SERVER_PY: &str = r#"
import socket, sys, threading
name = sys.argv[1]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(256)
def serve(c):
    f = c.makefile("rwb")
    try:
        for _ in range(10000):
            line = f.readline()
            if not line: break
            f.write((name + "\n").encode()); f.flush()
    except Exception: pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

pub struct RealServer {
    pub ns: &'static str,
    child: Option<Child>,
}

impl RealServer {
    pub fn start(ns: &'static str) -> RealServer {
        let mut rs = RealServer { ns, child: None };
        rs.restart();
        rs
    }

    pub fn restart(&mut self) {
        let child = Command::new("ip")
            .args([
                "netns", "exec", self.ns, "python3", "-c", SERVER_PY, self.ns,
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("start real server");
        self.child = Some(child);
        // Listening within 3 s (python starts slowly in the lab kernel).
        let ns = self.ns;
        guest::wait_for(Duration::from_secs(3), || {
            guest::sh_in(ns, "ss -ltn 'sport = :80'")
                .contains("LISTEN")
                .then_some(())
        });
    }

    /// SIGKILL: the process is gone, its sockets are reset.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The lab's copy of a site config: the exchange and hold-downs shortened, state in
/// the work dir, the key file by absolute path.
pub fn lab_config(site: &str, edits: &[(&str, &str)]) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(repo.join(format!("configs/{site}.toml"))).unwrap();
    let key = repo.join("configs/keys/idc1-idc2.key");
    let mut text = text
        .replace("interval = \"120s\"", "interval = \"1s\"")
        .replace("hold_down = \"10s\"", "hold_down = \"2s\"")
        .replace("shutdown_wait = \"5s\"", "shutdown_wait = \"2s\"")
        .replace(
            "key_file = \"keys/idc1-idc2.key\"",
            &format!("key_file = \"{}\"", key.display()),
        )
        .replace(
            "vip_device = \"lo\"",
            &format!(
                "vip_device = \"lo\"\nstate_dir = \"{}\"",
                guest::work_dir().join(format!("state-{site}")).display()
            ),
        );
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "lab_config: `{from}` not in {site}.toml"
        );
        text = text.replace(from, to);
    }
    let path = guest::work_dir().join(format!("{site}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

pub struct Anycastd {
    pub ns: &'static str,
    pub config: PathBuf,
    child: Option<Child>,
}

impl Anycastd {
    pub fn start(ns: &'static str, config: PathBuf) -> Anycastd {
        let log =
            std::fs::File::create(guest::work_dir().join(format!("anycastd-{ns}.log"))).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_anycastd"),
                "--config",
            ])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start anycastd");
        Anycastd {
            ns,
            config,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            guest::sh(&format!("kill -{sig} {pid}"));
        }
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits up to `t` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, t: Duration) -> Option<i32> {
        let c = self.child.as_mut()?;
        let deadline = Instant::now() + t;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(guest::work_dir().join(format!("anycastd-{}.log", self.ns)))
            .unwrap_or_default()
    }

    /// `anycastctl ARGS` inside the director's namespace: (exit code, stdout+stderr).
    pub fn ctl(&self, args: &str) -> (i32, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", self.ns, env!("CARGO_BIN_EXE_anycastctl")])
            .args(args.split_whitespace())
            .output()
            .expect("run anycastctl");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), s)
    }
}

impl Drop for Anycastd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The AS path of the best route to the VIP prefix in FRR instance `ns`, if any.
pub fn best_path(ns: &str) -> Option<String> {
    let out = guest::vtysh(ns, "show ip bgp 10.101.4.0/24 json");
    // vtysh may add a warning line about its own config file: parse the JSON only.
    let json = &out[out.find('{')?..=out.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["paths"].as_array()?.iter().find_map(|p| {
        p["bestpath"]["overall"]
            .as_bool()
            .filter(|b| *b)
            .map(|_| p["aspath"]["string"].as_str().unwrap_or("").to_string())
    })
}

/// Waits until `ns`'s best path to the VIP prefix is `want` ("" = no route).
pub fn wait_path(ns: &str, want: &str, t: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    guest::wait_for(t, || {
        (best_path(ns).unwrap_or_default() == want).then_some(())
    })
    .map(|_| start.elapsed())
    .ok_or_else(|| format!("{ns} best path is {:?}, wanted {want:?}", best_path(ns)))
}

pub fn vip() -> SocketAddr {
    VIP.parse().unwrap()
}

/// Which real server answers a new connection from client `ns`.
pub fn served(ns: &str) -> String {
    guest::tcp::ask_once(ns, vip()).unwrap_or_else(|e| format!("error: {e}"))
}
