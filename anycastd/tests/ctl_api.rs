//! anycastctl against the real local API server (HTTP over TCP and a unix socket).
//! The controller side is a scripted task answering commands: this tests the API
//! layer and the CLI (rendering, --json, exit codes), not the controller.

use std::process::Command as Proc;

use anycastd::api::{Command, ControllerHandle, LocalListener, local_router};
use anycastd::config::ApiListen;
use anycastd::status::*;
use tokio::sync::mpsc;

fn status() -> Status {
    Status {
        site: "idc1".into(),
        uptime_s: 65,
        now: 1000,
        vips: vec![VipStatus {
            name: "web".into(),
            prefix: "10.101.4.0/24".into(),
            address: "10.101.4.1".into(),
            state: VipState::Announced,
            reason: "2 of 2 real servers up (min 1)".into(),
            since: 990,
            servers_up: 2,
            min_up: 1,
        }],
        sessions: vec![],
        real_servers: vec![],
        local_load: Some(0.5),
        peers: vec![],
        spill: vec![],
        dataplane: DataplaneStatus {
            ok: true,
            last_reconcile: Some(999),
            last_changes: 0,
            last_error: None,
        },
    }
}

/// Answers commands like a controller with one VIP named `web`.
async fn responder(mut rx: mpsc::Receiver<Command>) {
    while let Some(cmd) = rx.recv().await {
        let known = |v: &Option<String>| v.as_deref().is_none_or(|v| v == "web");
        match cmd {
            Command::Status(tx) => {
                let _ = tx.send(status());
            }
            Command::Metrics(tx) => {
                let _ = tx.send("anycast_up 1\n".into());
            }
            Command::Why(vip, tx) => {
                let _ = tx.send(if vip == "web" {
                    Ok(WhyReply {
                        vip,
                        announcement: "announced because 2 of 2 real servers are up (min 1)".into(),
                        spill: vec!["not spilling: local 0.50 <= 1.10".into()],
                    })
                } else {
                    Err(format!("no VIP named `{vip}` (known: web)"))
                });
            }
            Command::Drain(v, tx) | Command::Undrain(v, tx) => {
                let _ = tx.send(if known(&v) {
                    Ok(DrainReply {
                        vips: vec!["web".into()],
                        message: "draining web: GRACEFUL_SHUTDOWN now, withdraw in 5s".into(),
                    })
                } else {
                    Err(format!(
                        "no VIP named `{}` (known: web)",
                        v.unwrap_or_default()
                    ))
                });
            }
            Command::Report(_, tx) => {
                let _ = tx.send(Err((400, "not here".into())));
            }
        }
    }
}

fn start(listen: ApiListen) -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let arg = rt.block_on(async {
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(responder(rx));
        let l = LocalListener::bind(&listen).await.unwrap();
        let arg = match l.local_addr() {
            Some(a) => a.to_string(),
            None => match &listen {
                ApiListen::Unix(p) => format!("unix:{}", p.display()),
                ApiListen::Tcp(_) => unreachable!(),
            },
        };
        tokio::spawn(l.serve(
            local_router(ControllerHandle::new(tx)),
            std::future::pending(),
        ));
        arg
    });
    (rt, arg)
}

fn ctl(api: &str, args: &[&str]) -> (i32, String, String) {
    let out = Proc::new(env!("CARGO_BIN_EXE_anycastctl"))
        .arg("--api")
        .arg(api)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn status_why_drain_over_tcp() {
    let (_rt, api) = start(ApiListen::Tcp("127.0.0.1:0".parse().unwrap()));

    let (code, out, err) = ctl(&api, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("site idc1   up 1m05s   local load 0.50"),
        "{out}"
    );
    assert!(out.contains("web  10.101.4.0/24  announced"), "{out}");

    let (code, out, _) = ctl(&api, &["--json", "status"]);
    assert_eq!(code, 0);
    let parsed: Status = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(parsed, status());

    let (code, out, _) = ctl(&api, &["why", "web"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "web: announced because 2 of 2 real servers are up (min 1)\nweb: not spilling: local 0.50 <= 1.10\n"
    );

    let (code, _, err) = ctl(&api, &["why", "mail"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "anycastctl: no VIP named `mail` (known: web)");

    let (code, out, _) = ctl(&api, &["drain", "web"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        "draining web: GRACEFUL_SHUTDOWN now, withdraw in 5s"
    );
    let (code, out, _) = ctl(&api, &["drain"]);
    assert_eq!((code, out.is_empty()), (0, false));
    let (code, _, err) = ctl(&api, &["undrain", "nope"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn status_over_a_unix_socket_and_metrics() {
    let dir = std::env::temp_dir().join(format!("anycastctl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("api.sock");
    let (_rt, api) = start(ApiListen::Unix(sock.clone()));
    let (code, out, err) = ctl(&api, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("idc1"));

    let reply = anycastd::ctl::client::request(&ApiListen::Unix(sock), "GET", "/metrics").unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "anycast_up 1\n"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_daemon_that_is_not_running_exits_3() {
    // Bind and drop to get a loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
