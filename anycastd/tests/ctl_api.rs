//! anycastctl against the real anycastd (the built binary, `site.dataplane = false`,
//! no root): one VIP `web` over real servers listening on 127.0.0.1, its BGP neighbor
//! a loopback address where nobody answers, the API over TCP and over a unix socket.
//! Checks the CLI's rendering, `--json`, exit codes and the values the controller
//! really reports: withdrawn before the real servers listen, announced after, draining
//! on drain, announced again on undrain (as an operator: over TCP with the token).
//! Who may do what is tested in api_access.rs.

mod host;

use std::net::SocketAddr;
use std::time::Duration;

use host::{Api, Daemon, RealServer, ctl, free_port, free_ports};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

fn vip_state(st: &Value) -> &str {
    st["vips"][0]["state"].as_str().unwrap_or("")
}

fn announced_with_both_up(st: &Value) -> bool {
    vip_state(st) == "announced" && st["vips"][0]["servers_up"] == 2
}

#[test]
fn status_why_drain_over_tcp() {
    // Ports picked now; the real servers listen on them only once the daemon runs.
    let ports = free_ports::<2>();
    let addrs: Vec<SocketAddr> = ports.iter().map(|p| ([127, 0, 0, 1], *p).into()).collect();
    let d = Daemon::start("ctl-tcp", Api::Tcp, &addrs);
    let api = d.api().to_string();

    let st = d.status().expect("status");
    assert_eq!(
        (vip_state(&st), &st["vips"][0]["servers_up"]),
        ("withdrawn", &Value::from(0)),
        "{st:#}"
    );
    let (code, out, err) = ctl(&api, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("web  10.101.4.0/24  IPv4  WITHDRAWN"), "{out}");

    let _servers: Vec<RealServer> = ports
        .iter()
        .map(|p| RealServer::on(*p).expect("real server port still free"))
        .collect();
    d.wait_status(
        "web announced with 2 real servers up",
        WAIT,
        announced_with_both_up,
    );

    let (code, out, err) = ctl(&api, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("site idc1   up "), "{out}");
    assert!(out.contains("web  10.101.4.0/24  IPv4  announced"), "{out}");
    assert!(
        out.contains("127.0.0.2"),
        "the BGP neighbor is listed\n{out}"
    );
    assert!(!out.contains("Established"), "{out}");

    // --json is the daemon's status document, as the library's type reads it.
    let (code, out, _) = ctl(&api, &["--json", "status"]);
    assert_eq!(code, 0);
    assert!(
        serde_json::from_str::<anycastd::status::Status>(out.trim()).is_ok(),
        "{out}"
    );
    let st: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(st["site"], "idc1");
    let vip = &st["vips"][0];
    assert_eq!(
        (
            &vip["name"],
            &vip["prefix"],
            &vip["address"],
            &vip["min_up"]
        ),
        (
            &Value::from("web"),
            &Value::from("10.101.4.0/24"),
            &Value::from("10.101.4.1"),
            &Value::from(1)
        ),
        "{st:#}"
    );
    let mut servers: Vec<(u64, &str)> = st["real_servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["port"].as_u64().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    servers.sort();
    let mut want: Vec<(u64, &str)> = ports.iter().map(|p| (u64::from(*p), "up")).collect();
    want.sort();
    assert_eq!(servers, want, "{st:#}");
    let session = &st["sessions"][0];
    assert_eq!(
        (&session["neighbor"], &session["remote_asn"]),
        (&Value::from("127.0.0.2"), &Value::from(65001)),
        "{st:#}"
    );
    assert_ne!(session["state"], "Established", "{st:#}");
    assert_eq!(st["peers"], Value::Array(vec![]), "{st:#}");
    assert_eq!(st["spill"], Value::Array(vec![]), "{st:#}");

    let (code, out, err) = ctl(&api, &["why", "web"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("web: announced because ") && lines[0].contains("2 real servers up"),
        "{out}"
    );
    assert!(
        lines.len() >= 2 && lines.iter().all(|l| l.starts_with("web: ")),
        "{out}"
    );
    assert!(out.contains("web: not spilling"), "{out}");

    let (code, _, err) = ctl(&api, &["why", "mail"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "anycastctl: no VIP named `mail` (known: web)");
    let (code, out, _) = ctl(&api, &["--json", "why", "mail"]);
    assert_eq!(code, 1);
    let e: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(e["error"], "no VIP named `mail` (known: web)");

    let (code, out, err) = d.ctl_operator(&["drain", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("draining web: ") && out.contains("GRACEFUL_SHUTDOWN"),
        "{out}"
    );
    // shutdown_wait is 10 minutes: it stays draining for the rest of the test.
    d.wait_status("web draining", WAIT, |s| vip_state(s) == "draining");
    let (_, out, _) = ctl(&api, &["status"]);
    assert!(out.contains("web  10.101.4.0/24  IPv4  DRAINING"), "{out}");
    let (_, out, _) = ctl(&api, &["why", "web"]);
    assert!(out.starts_with("web: draining because "), "{out}");

    let (code, out, _) = d.ctl_operator(&["drain"]);
    assert_eq!((code, out.contains("web")), (0, true), "{out}");
    let (code, _, err) = d.ctl_operator(&["undrain", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no VIP named `nope`"), "{err}");

    let (code, out, err) = d.ctl_operator(&["undrain", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("undrained web"), "{out}");
    d.wait_status("web announced after undrain", WAIT, announced_with_both_up);

    let (code, out, _) = d.ctl_operator(&["--json", "drain", "web"]);
    assert_eq!(code, 0);
    let reply: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(reply["vips"], serde_json::json!(["web"]), "{out}");

    // Killed by PID: the same API now answers nothing.
    drop(d);
    let (code, _, err) = ctl(&api, &["status"]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn status_over_a_unix_socket_and_metrics() {
    let servers = [RealServer::start(), RealServer::start()];
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let d = Daemon::start("ctl-unix", Api::Unix, &addrs);
    assert!(d.api().starts_with("unix:"));

    let (code, out, err) = d.ctl(&["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("site idc1 "), "{out}");
    d.wait_status(
        "web announced with 2 real servers up",
        WAIT,
        announced_with_both_up,
    );

    let (code, body) = d.get_unix("/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("anycast_vip_announced{vip=\"web\",prefix=\"10.101.4.0/24\"} 1"),
        "{body}"
    );
}

#[test]
fn a_daemon_that_is_not_running_exits_3() {
    let port = free_port();
    let (code, _, err) = ctl(&format!("127.0.0.1:{port}"), &["status"]);
    assert_eq!(code, 3);
    assert!(
        err.starts_with("anycastctl: anycastd is not running"),
        "{err}"
    );
}

#[test]
fn bad_usage_exits_2() {
    let (code, _, _) = ctl("not-an-address", &["status"]);
    assert_eq!(code, 2);
}
