//! Three anycastd of one site in network namespaces on the host kernel (decision 0015):
//! `lb1` and `lb1b` run the same site config, `lb1c` another one (a different
//! `hold_down`). Each director's real servers report their load through `load_url`
//! (0.5 behind lb1, 0.2 behind lb1b, 0.9 behind lb1c); `dataplane = false`. lb1 and
//! lb1b show the same site load, the sum of their own (0.7); lb1 shows lb1c's config
//! digest as different and leaves it out.

use std::path::Path;
use std::time::Duration;

use anycast_lab::netns::{Netns, veth, wait_until};
use anycast_lab::{Need, require};

mod netns;
use netns::{Daemon, Proc, SiteToml, status};

/// A real server on `addr`:8080 answering every GET with `load` (its load source).
const LOAD_PY: &str = r#"
import sys, http.server
addr, load = sys.argv[1], sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(load)))
        self.end_headers(); self.wfile.write(load)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer((addr, 8080), H); s.daemon_threads = True
s.handle_error = lambda *a: None  # the checker closes its idle connection with a reset
s.serve_forever()
"#;

fn load_server(ns: &Netns, addr: &str, load: &str) -> Proc {
    let c = ns
        .command("python3")
        .args(["-c", LOAD_PY, addr, load])
        .spawn()
        .expect("python3");
    let up = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        ns.exec("ss", &["-ltn", "sport = :8080"])
            .is_ok_and(|o| o.contains(addr))
    });
    assert!(up, "real server {addr} did not start");
    Proc(Some(c))
}

/// Director `me` of the namespace tests' site at `address`, its siblings `(name,
/// address)`, reports every second; each real server's load source is itself.
fn config(dir: &Path, me: &str, address: &str, hold_down: &str, others: &[(&str, &str)]) -> String {
    let servers = ["10.200.1.11", "10.200.1.12"];
    let mut text = SiteToml {
        address,
        neighbor: "10.200.0.1", // nobody: the exchange is what this test looks at
        hold_time: 9,
        connect_retry: Some(1),
        neighbor_keys: "",
        prefix: "10.201.4.0/24",
        vip: "10.201.4.1",
        servers: &servers,
        shutdown_wait: "200ms",
        tables: "\n[exchange]\nlisten = \"0.0.0.0:9181\"\ninterval = \"1s\"\n",
    }
    .render(dir)
    .replacen(
        "[site]\n",
        &format!("[site]\ndirector = \"{me}\"\ndirectors_key = \"directors-of-solo-0123\"\n"),
        1,
    )
    .replacen(
        "hold_down = \"1s\"",
        &format!("hold_down = \"{hold_down}\""),
        1,
    );
    for s in servers {
        text = text.replacen(
            &format!("address = \"{s}\"\ncapacity = 10\n"),
            &format!("address = \"{s}\"\ncapacity = 10\nload_url = \"http://{s}:8080/load\"\n"),
            1,
        );
    }
    for (name, addr) in others {
        text.push_str(&format!(
            "\n[[director]]\nname = \"{name}\"\naddress = \"{addr}\"\n"
        ));
    }
    text
}

/// A director's namespace with its two real servers reporting `load`.
fn with_servers(ns: &Netns, load: &str) -> Vec<Proc> {
    ["10.200.1.11", "10.200.1.12"]
        .iter()
        .map(|a| {
            ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"])
                .unwrap();
            load_server(ns, a, load)
        })
        .collect()
}

/// The daemon's status, `None` while its API does not answer yet.
fn try_status(ns: &Netns) -> Option<anycastd::status::Status> {
    let r = anycast_lab::uml::guest::in_netns(ns.name(), || {
        anycastd::ctl::client::request(
            &anycastd::config::ApiListen::Tcp("127.0.0.1:9180".parse().unwrap()),
            "GET",
            "/v1/status",
        )
    })
    .ok()?;
    serde_json::from_str(&r.body).ok()
}

fn near(x: Option<f64>, want: f64) -> bool {
    x.is_some_and(|x| (x - want).abs() < 1e-6)
}

#[test]
fn netns_directors_of_one_site_share_their_load() {
    if !require(
        "netns_directors_of_one_site_share_their_load",
        &[Need::Netns, Need::Program("python3")],
    ) {
        return;
    }
    let (a, b, c) = (
        Netns::create("acdira").unwrap(),
        Netns::create("acdirb").unwrap(),
        Netns::create("acdirc").unwrap(),
    );
    veth(&a, &["10.200.0.2/24"], &b, &["10.200.0.3/24"]).unwrap();
    veth(&a, &["10.200.9.2/24"], &c, &["10.200.9.4/24"]).unwrap();
    let _servers = [
        with_servers(&a, "0.5"),
        with_servers(&b, "0.2"),
        with_servers(&c, "0.9"),
    ];
    let lb1 = Daemon::with_config(&a, "dir-lb1", |d| {
        config(
            d,
            "lb1",
            "10.200.0.2",
            "1s",
            &[("lb1b", "10.200.0.3"), ("lb1c", "10.200.9.4")],
        )
    });
    let lb1b = Daemon::with_config(&b, "dir-lb1b", |d| {
        config(d, "lb1b", "10.200.0.3", "1s", &[("lb1", "10.200.0.2")])
    });
    let lb1c = Daemon::with_config(&c, "dir-lb1c", |d| {
        config(d, "lb1c", "10.200.9.4", "2s", &[("lb1", "10.200.9.2")])
    });

    let settled = wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        let (Some(s1), Some(s2)) = (try_status(&a), try_status(&b)) else {
            return false;
        };
        let Some(d1) = s1.directors.as_ref() else {
            return false;
        };
        let lb1c_seen = d1
            .others
            .iter()
            .any(|o| o.name == "lb1c" && o.digest_match.is_some());
        near(s1.local_load, 0.7) && near(s2.local_load, 0.7) && lb1c_seen
    });
    let (s1, s2, s3) = (status(&a), status(&b), status(&c));
    assert!(
        settled,
        "lb1 {:?} {:?}\nlb1b {:?} {:?}\nlb1c {:?}\n{}\n{}\n{}",
        s1.local_load,
        s1.directors,
        s2.local_load,
        s2.directors,
        s3.directors,
        lb1.logs(),
        lb1b.logs(),
        lb1c.logs()
    );
    let (d1, d2) = (s1.directors.unwrap(), s2.directors.unwrap());
    println!(
        "site load: lb1 {:?}, lb1b {:?} (own {:?} + {:?})",
        s1.local_load, s2.local_load, d1.own_load, d2.own_load
    );
    assert!(near(d1.own_load, 0.5) && near(d2.own_load, 0.2));
    assert_eq!(d1.config_digest, d2.config_digest);
    let lb1b_seen = d1.others.iter().find(|o| o.name == "lb1b").unwrap();
    assert!(lb1b_seen.counted && lb1b_seen.digest_match == Some(true));
    let lb1c_seen = d1.others.iter().find(|o| o.name == "lb1c").unwrap();
    assert_eq!(lb1c_seen.digest_match, Some(false));
    assert!(
        !lb1c_seen.counted,
        "another site config is never averaged in"
    );
    assert!(near(lb1c_seen.load, 0.9));
    // lb1c, on its side, sees lb1's digest as different too, and keeps its own load.
    let s3_d = s3.directors.unwrap();
    assert_eq!(s3_d.others[0].digest_match, Some(false));
    assert!(near(s3.local_load, 0.9));
    assert!(
        lb1.logs()
            .contains("sibling director runs another site config")
    );
}
