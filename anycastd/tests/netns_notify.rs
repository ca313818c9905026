//! Notifications from the real daemon: anycastd in a namespace under a real FRR, its
//! `[notify]` webhook an axum receiver started by this test on the namespace's
//! loopback. A real server killed -> one `server_down` notice; the second killed ->
//! the VIP withdrawn by the verdict (FRR loses the route; the withdraw latency
//! histogram has it); both back -> `server_up` twice and `vip_announced`; the VIP
//! drained over the API -> GRACEFUL_SHUTDOWN, then withdrawn, sent as one notice that
//! coalesced both steps. The daemon's /metrics counts the deliveries and passes
//! `promtool check metrics`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anycast_lab::netns::{Netns, wait_until};
use anycast_lab::uml::guest::in_netns;
use anycast_lab::{Need, require};
use serde_json::Value;

mod hook;
mod netns;
use hook::{Seen, notices};
use netns::{Daemon, SiteToml, Solo, api_get, server};

const TOKEN: &str = "notify-test-token-0123456789";

/// A webhook receiver on 127.0.0.1 in `ns`: its port, and the sender that stops it.
fn receiver(ns: &Netns, seen: Seen) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let l = in_netns(ns.name(), || std::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = l.local_addr().unwrap().port();
    (port, hook::serve(l, seen))
}

fn has_route(up: &Netns) -> bool {
    netns::has_route(up, "10.202.4.0/24")
}

/// The first notice `f` accepts, waited for (at most `limit`); panics with what came
/// and the daemon's log.
fn wait_notice(
    seen: &Seen,
    what: &str,
    limit: Duration,
    daemon: &Daemon,
    f: impl Fn(&Value) -> bool,
) -> (Instant, Value) {
    // A copy first: `f` may look at the notices itself.
    let find = || {
        let all = seen.lock().unwrap().clone();
        all.into_iter().find(|(_, v)| f(v))
    };
    wait_until(limit, Duration::from_millis(20), || find().is_some());
    find().unwrap_or_else(|| panic!("no {what} notice: {:?}\n{}", notices(seen), daemon.logs()))
}

fn notices_of(seen: &Seen, k: &str) -> usize {
    notices(seen).iter().filter(|v| v["kind"] == k).count()
}

fn kind(k: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["kind"] == k
}

fn route_is(up: &Netns, there: bool, what: &str, daemon: &Daemon) {
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(5), || {
            has_route(up) == there
        }),
        "{what}\n{}",
        daemon.logs()
    );
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
    route_is(&up, true, "the VIP prefix never reached FRR", &daemon);
    wait_notice(
        &seen,
        "vip_announced",
        Duration::from_secs(10),
        &daemon,
        kind("vip_announced"),
    );

    // A real server dies: one notice, after the coalescing window.
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    rs[0].kill();
    let (at, down) = wait_notice(
        &seen,
        "server_down",
        Duration::from_secs(15),
        &daemon,
        kind("server_down"),
    );
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

    // The last one dies: withdrawn by the verdict (timed in the histogram), one notice.
    rs[1].kill();
    route_is(
        &up,
        false,
        "the prefix stayed after both real servers died",
        &daemon,
    );
    let (_, w) = wait_notice(
        &seen,
        "vip_withdrawn",
        Duration::from_secs(10),
        &daemon,
        kind("vip_withdrawn"),
    );
    assert_eq!(
        (w["count"].as_u64(), w["reason"].as_str()),
        (Some(1), Some("0 real servers up, 1 needed")),
        "{w}"
    );
    let metrics = api_get(&site, "/metrics");
    let line = |name: &str| {
        metrics
            .body
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{}", metrics.body))
            .rsplit_once(' ')
            .map(|(_, v)| v.parse::<f64>().unwrap())
            .unwrap()
    };
    assert_eq!(
        line("anycast_withdraw_latency_seconds_count{vip=\"web\"}"),
        1.0
    );
    println!(
        "health verdict -> withdraw handed to the speaker: {:.3} ms (anycast_withdraw_latency_seconds_sum)",
        line("anycast_withdraw_latency_seconds_sum{vip=\"web\"}") * 1000.0
    );

    // Both come back: each a server_up (they had failed), the VIP announced again.
    rs = [server(&site, "10.200.1.11"), server(&site, "10.200.1.12")];
    route_is(&up, true, "the prefix did not come back", &daemon);
    wait_notice(
        &seen,
        "second vip_announced",
        Duration::from_secs(10),
        &daemon,
        |_| notices_of(&seen, "vip_announced") == 2,
    );
    // Each server's own notice (the second may come after the VIP's).
    wait_notice(
        &seen,
        "second server_up",
        Duration::from_secs(10),
        &daemon,
        |_| notices_of(&seen, "server_up") == 2,
    );

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
    route_is(&up, false, "FRR kept the route of the drained VIP", &daemon);
    let (_, w) = wait_notice(&seen, "drain", Duration::from_secs(10), &daemon, |v| {
        v["count"] == 2
    });
    assert_eq!(w["kind"], "vip_withdrawn", "{w}");
    assert_eq!(
        w["history"],
        serde_json::json!(["vip_draining", "vip_withdrawn"])
    );
    assert_eq!(
        notices_of(&seen, "vip_draining"),
        0,
        "the drain step was sent apart"
    );
    let all = notices(&seen);
    assert_eq!(all.len(), 8, "{all:?}");

    let metrics = api_get(&site, "/metrics");
    for want in [
        "anycast_notify_delivered_total{sink=\"webhook0\"} 8\n",
        "anycast_notify_dropped_total{sink=\"webhook0\"} 0\n",
        "anycast_health_transitions_total{server=\"web/tcp8080/10.200.1.11:8080\",to=\"down\"} 1\n",
        "anycast_announcements_total{vip=\"web\",kind=\"withdraw\"} 2\n",
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
