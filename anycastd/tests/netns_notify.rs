//! Notifications from the real daemon: anycastd in a namespace under a real FRR, its
//! `[notify]` webhook an axum receiver started by this test on the namespace's
//! loopback. A real server killed -> one `server_down` notice; the VIP drained over
//! the API -> GRACEFUL_SHUTDOWN, then withdrawn (FRR loses the route), sent as one
//! notice that coalesced both steps. The daemon's /metrics counts the deliveries and
//! passes `promtool check metrics`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anycast_lab::netns::{Netns, wait_until};
use anycast_lab::uml::guest::{in_netns, spawn_in_netns};
use anycast_lab::{Need, require};
use serde_json::Value;

mod netns;
use netns::{Daemon, SiteToml, Solo, api_get, server};

const TOKEN: &str = "notify-test-token-0123456789";

type Seen = Arc<Mutex<Vec<(Instant, Value)>>>;

/// A webhook receiver on 127.0.0.1 in `ns`: its port, and the sender that stops it.
fn receiver(ns: &Netns, seen: Seen) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    spawn_in_netns(ns.name(), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            port_tx.send(l.local_addr().unwrap().port()).unwrap();
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let seen = seen.clone();
                    async move {
                        let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        seen.lock().unwrap().push((Instant::now(), v));
                        axum::http::StatusCode::NO_CONTENT
                    }
                }),
            );
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("receiver port");
    (port, stop_tx)
}

fn has_route(up: &Netns) -> bool {
    netns::has_route(up, "10.202.4.0/24")
}

fn notices(seen: &Seen) -> Vec<Value> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(_, v)| v.clone())
        .collect()
}

fn find(seen: &Seen, kind: &str) -> Option<(Instant, Value)> {
    seen.lock()
        .unwrap()
        .iter()
        .find(|(_, v)| v["kind"] == kind)
        .cloned()
}

/// The first notice of `kind`, waited for (at most `limit`); panics with what came and
/// the daemon's log.
fn wait_notice(seen: &Seen, kind: &str, limit: Duration, daemon: &Daemon) -> (Instant, Value) {
    wait_until(limit, Duration::from_millis(20), || {
        find(seen, kind).is_some()
    });
    find(seen, kind)
        .unwrap_or_else(|| panic!("no {kind} notice: {:?}\n{}", notices(seen), daemon.logs()))
}

#[test]
fn netns_notify_server_killed_and_vip_drained_reach_the_webhook() {
    if !require(
        "netns_notify_server_killed_and_vip_drained_reach_the_webhook",
        &[
            Need::Netns,
            Need::Program("/usr/lib/frr/bgpd"),
            Need::Program("python3"),
            Need::Program("promtool"),
        ],
    ) {
        return;
    }
    // FRR is dropped first (the last binding), then the namespaces.
    let Solo {
        up,
        site,
        frr: _frr,
    } = Solo::start("acnup", "acnsite");
    let mut rs = [server(&site, "10.200.1.11"), server(&site, "10.200.1.12")];
    let seen: Seen = Arc::default();
    let (port, stop) = receiver(&site, seen.clone());

    // The operator's token, where `token_file` names it (next to the config).
    let dir = std::env::temp_dir().join(format!("anycastd-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join("api.token"))
        .unwrap();
    writeln!(f, "{TOKEN}").unwrap();
    let tables = format!(
        "token_file = \"api.token\"\n\n[notify]\nwebhooks = [\"http://127.0.0.1:{port}/hook\"]\n\
         coalesce = \"2s\"\nretry_initial = \"200ms\"\ntimeout = \"2s\"\n"
    );
    let daemon = Daemon::start(
        &site,
        "notify",
        &SiteToml {
            address: "10.200.0.2",
            neighbor: "10.200.0.1",
            hold_time: 9,
            connect_retry: Some(1),
            neighbor_keys: "",
            prefix: "10.202.4.0/24",
            vip: "10.202.4.1",
            servers: &["10.200.1.11", "10.200.1.12"],
            shutdown_wait: "500ms",
            tables: &tables,
        },
    );
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            has_route(&up)
        }),
        "the VIP prefix never reached FRR\n{}",
        daemon.logs()
    );
    let _announced = wait_notice(&seen, "vip_announced", Duration::from_secs(10), &daemon);

    // A real server dies: one notice, after the coalescing window.
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    rs[0].kill();
    let (at, down) = wait_notice(&seen, "server_down", Duration::from_secs(15), &daemon);
    println!(
        "real server killed -> server_down notice received in {:?} (2 s of it the coalescing window)",
        at - killed
    );
    assert_eq!(down["server"], "web/tcp8080/10.200.1.11:8080", "{down}");
    assert_eq!(
        (down["vip"].as_str(), down["site"].as_str()),
        (Some("web"), Some("solo"))
    );
    assert_eq!(down["count"], 1);
    assert!(has_route(&up), "one server of two down must not withdraw");

    // Drain: GRACEFUL_SHUTDOWN, then withdrawn 500 ms later: one notice of both.
    let r = in_netns(site.name(), || {
        anycastd::ctl::client::request_with_token(
            &anycastd::config::ApiListen::Tcp("127.0.0.1:9180".parse().unwrap()),
            "POST",
            "/v1/drain/web",
            TOKEN.as_bytes(),
        )
    })
    .expect("drain");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            !has_route(&up)
        }),
        "FRR kept the route of the drained VIP\n{}",
        daemon.logs()
    );
    let (_, w) = wait_notice(&seen, "vip_withdrawn", Duration::from_secs(10), &daemon);
    assert_eq!(w["count"], 2, "{w}");
    assert_eq!(
        w["history"],
        serde_json::json!(["vip_draining", "vip_withdrawn"])
    );
    assert!(
        find(&seen, "vip_draining").is_none(),
        "the drain step was sent apart"
    );
    let all = notices(&seen);
    assert_eq!(all.len(), 3, "{all:?}");

    let metrics = api_get(&site, "/metrics");
    for want in [
        "anycast_notify_delivered_total{sink=\"webhook0\"} 3\n",
        "anycast_notify_dropped_total{sink=\"webhook0\"} 0\n",
        "anycast_health_transitions_total{server=\"web/tcp8080/10.200.1.11:8080\",to=\"down\"} 1\n",
        "anycast_announcements_total{vip=\"web\",kind=\"withdraw\"} 1\n",
    ] {
        assert!(
            metrics.body.contains(want),
            "missing {want} in\n{}",
            metrics.body
        );
    }
    if let Err(e) = anycast_lab::promtool::check_metrics(&metrics.body) {
        panic!("{e}\n{}", metrics.body);
    }
    let _ = stop.send(());
    drop(rs);
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}
