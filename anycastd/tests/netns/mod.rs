//! What the namespace tests of anycastd share: a real server in a namespace, a
//! process killed by PID on drop, the site's config under one upstream, the daemon
//! and its API.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anycast_lab::netns::{Netns, veth, wait_until};
use anycast_lab::peers::Frr;
use anycast_lab::uml::guest::in_netns;

/// A real server that keeps connections open until the client closes them, like an
/// HTTP server with keep-alive: the health checker's idle connection stays up.
pub const SERVER_PY: &str = r#"
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8080)); s.listen(64)
def hold(c):
    try:
        while c.recv(1024): pass
    except OSError: pass  # the checker closes with a reset
    c.close()
for _ in range(100000):
    c, _ = s.accept(); threading.Thread(target=hold, args=(c,), daemon=True).start()
"#;

pub struct Proc(pub Option<Child>);

impl Proc {
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real server on `addr`:8080 in `ns` (python3), up when this returns.
pub fn server(ns: &Netns, addr: &str) -> Proc {
    let c = ns
        .command("python3")
        .args(["-c", SERVER_PY, addr])
        .spawn()
        .expect("python3 server");
    let up = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        ns.exec("ss", &["-ltn", "sport = :8080"])
            .is_ok_and(|o| o.contains(addr))
    });
    assert!(up, "real server {addr} did not start");
    Proc(Some(c))
}

/// A site under one upstream router, as the namespace tests configure it: BGP and
/// checks only (`dataplane = false`), the API on 127.0.0.1:9180 in the site's
/// namespace, one VIP `web` with a TCP service on 8080 checked every 500 ms.
pub struct SiteToml<'a> {
    /// The site's address on the link; the upstream (AS 65001) is `neighbor`.
    pub address: &'a str,
    pub neighbor: &'a str,
    pub hold_time: u16,
    /// `None`: the default (5 s).
    pub connect_retry: Option<u16>,
    /// More keys of the neighbor's table (`bfd = true` ...).
    pub neighbor_keys: &'a str,
    pub prefix: &'a str,
    pub vip: &'a str,
    pub servers: &'a [&'a str],
    pub shutdown_wait: &'a str,
    /// More tables (`[log]` ...).
    pub tables: &'a str,
}

impl SiteToml<'_> {
    /// The config text, with state kept in `state_dir`.
    pub fn render(&self, state_dir: &Path) -> String {
        let mut text = format!(
            r#"
[site]
name = "solo"
address = "{address}"
dataplane = false
shutdown_wait = "{shutdown_wait}"
state_dir = "{state}"

[api]
listen = "127.0.0.1:9180"   # in the namespace: read-only without a token_file
{tables}
[bgp]
asn = 65005

[[bgp.neighbor]]
address = "{neighbor}"
remote_asn = 65001
hold_time = {hold_time}
{connect_retry}{neighbor_keys}
[[vip]]
name = "web"
prefix = "{prefix}"
address = "{vip}"
hold_down = "1s"

[[vip.service]]
protocol = "tcp"
port = 8080

[vip.service.check]
type = "tcp"
interval = "500ms"
timeout = "250ms"
rise = 1
fall = 2
"#,
            address = self.address,
            shutdown_wait = self.shutdown_wait,
            state = state_dir.display(),
            tables = self.tables,
            neighbor = self.neighbor,
            hold_time = self.hold_time,
            connect_retry = self
                .connect_retry
                .map(|c| format!("connect_retry = {c}\n"))
                .unwrap_or_default(),
            neighbor_keys = self.neighbor_keys,
            prefix = self.prefix,
            vip = self.vip,
        );
        for s in self.servers {
            text.push_str(&format!(
                "\n[[vip.service.real_server]]\naddress = \"{s}\"\ncapacity = 10\n"
            ));
        }
        text
    }
}

/// anycastd running in a namespace, its config and log in a directory of its own.
pub struct Daemon {
    pub proc: Proc,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Daemon {
    /// Writes `site` to `<tmp>/anycastd-<tag>-<pid>/site.toml` and starts anycastd on it in `ns`.
    pub fn start(ns: &Netns, tag: &str, site: &SiteToml<'_>) -> Daemon {
        Daemon::with_config(ns, tag, |dir| site.render(dir))
    }

    /// Starts anycastd in `ns` on the config `render` writes for the state directory.
    pub fn with_config(ns: &Netns, tag: &str, render: impl FnOnce(&Path) -> String) -> Daemon {
        let dir = std::env::temp_dir().join(format!("anycastd-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("state dir");
        let config = dir.join("site.toml");
        std::fs::write(&config, render(&dir)).expect("config");
        let log = std::fs::File::create(dir.join("anycastd.log")).expect("log");
        let proc = Proc(Some(
            ns.command(env!("CARGO_BIN_EXE_anycastd"))
                .arg("--config")
                .arg(&config)
                .stdout(Stdio::from(log.try_clone().expect("log")))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("anycastd"),
        ));
        Daemon { proc, dir, config }
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("anycastd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.proc.0.as_ref().expect("anycastd running").id()
    }
}

/// `GET path` from the daemon's API in `ns`.
pub fn api_get(ns: &Netns, path: &'static str) -> anycastd::ctl::client::Reply {
    in_netns(ns.name(), move || {
        anycastd::ctl::client::request(
            &anycastd::config::ApiListen::Tcp("127.0.0.1:9180".parse().unwrap()),
            "GET",
            path,
        )
    })
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The daemon's status.
pub fn status(ns: &Netns) -> anycastd::status::Status {
    let r = api_get(ns, "/v1/status");
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

/// `prefix` is in `up`'s kernel table, from BGP.
pub fn has_route(up: &Netns, prefix: &str) -> bool {
    up.ip(&["route", "show", prefix])
        .is_ok_and(|r| r.contains("proto bgp"))
}

/// One site under one upstream: `up` runs FRR (AS 65001, 10.200.0.1, accepting the
/// site at 10.200.0.2 as AS 65005, connect retry 1 s); `site` holds the real servers'
/// addresses 10.200.1.11 and .12 on its loopback. The namespaces are named from the
/// prefixes (`acup`, `acsite` ...). Dropped in field order: FRR first.
pub struct Solo {
    pub frr: Frr,
    pub up: Netns,
    pub site: Netns,
}

impl Solo {
    pub fn start(up_prefix: &str, site_prefix: &str) -> Solo {
        let up = Netns::create(up_prefix).unwrap();
        let site = Netns::create(site_prefix).unwrap();
        veth(&up, &["10.200.0.1/24"], &site, &["10.200.0.2/24"]).unwrap();
        for a in ["10.200.1.11/32", "10.200.1.12/32"] {
            site.ip(&["addr", "add", a, "dev", "lo"]).unwrap();
        }
        let frr = Frr::start(
            &up,
            "router bgp 65001\n bgp router-id 10.200.0.1\n no bgp ebgp-requires-policy\n \
             neighbor 10.200.0.2 remote-as 65005\n neighbor 10.200.0.2 timers connect 1\n",
            true,
        )
        .unwrap();
        Solo { frr, up, site }
    }
}
