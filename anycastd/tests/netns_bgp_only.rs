//! anycastd with `site.dataplane = false` (BGP and health checks only) on the host
//! kernel, under a real FRR upstream in network namespaces: the VIP prefix reaches
//! FRR's kernel table while a real server is up, leaves it when both die, comes back
//! after recovery, and leaves again on SIGTERM with a clean exit.

use std::process::Command;
use std::time::{Duration, Instant};

use anycast_lab::netns::{Netns, wait_until};
use anycast_lab::{Need, require};

mod netns;
use netns::{Daemon, SiteToml, Solo, api_get, server};

fn has_route(up: &Netns) -> bool {
    netns::has_route(up, "10.201.4.0/24")
}

#[test]
fn netns_bgp_only_announce_withdraw_recover_stop() {
    if !require(
        "netns_bgp_only_announce_withdraw_recover_stop",
        &[
            Need::Netns,
            Need::Program("/usr/lib/frr/bgpd"),
            Need::Program("python3"),
        ],
    ) {
        return;
    }
    // FRR is dropped first (the last binding), then the namespaces.
    let Solo {
        up,
        site,
        frr: _frr,
    } = Solo::start("acup", "acsite");
    let mut rs = [server(&site, "10.200.1.11"), server(&site, "10.200.1.12")];

    let mut daemon = Daemon::start(
        &site,
        "netns",
        &SiteToml {
            address: "10.200.0.2",
            neighbor: "10.200.0.1",
            hold_time: 9,
            connect_retry: Some(1),
            neighbor_keys: "",
            prefix: "10.201.4.0/24",
            vip: "10.201.4.1",
            servers: &["10.200.1.11", "10.200.1.12"],
            shutdown_wait: "500ms",
            tables: "\n[log]\nformat = \"json\"\n",
        },
    );

    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            has_route(&up)
        }),
        "the VIP prefix never reached FRR's kernel table\n{}",
        daemon.logs()
    );

    // Steady state first: both idle fast-detect connections held, FRR settled.
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    rs[0].kill();
    rs[1].kill();
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
            !has_route(&up)
        }),
        "the prefix stayed after both real servers died\n{}",
        daemon.logs()
    );
    println!(
        "both real servers killed -> route gone from FRR's kernel table in {:?}",
        t0.elapsed()
    );

    rs = [server(&site, "10.200.1.11"), server(&site, "10.200.1.12")];
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(20), || {
            has_route(&up)
        }),
        "the prefix did not come back after recovery\n{}",
        daemon.logs()
    );

    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            site.name(),
            env!("CARGO_BIN_EXE_anycastctl"),
            "--api",
            "127.0.0.1:9180",
            "status",
        ])
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&status.stdout);
    assert!(
        screen.contains("announced") && screen.contains("Established"),
        "{screen}"
    );

    // Metrics from the real daemon, through the same client anycastctl uses.
    let metrics = api_get(&site, "/metrics");
    assert_eq!(metrics.status, 200);
    for want in [
        "anycast_vip_announced{vip=\"web\",prefix=\"10.201.4.0/24\"} 1",
        "anycast_bgp_session_established{neighbor=\"10.200.0.1\"} 1",
        "anycast_health_transitions_total{server=\"web/tcp8080/10.200.1.11:8080\",to=\"down\"} 1",
    ] {
        assert!(
            metrics.body.contains(want),
            "missing {want} in\n{}",
            metrics.body
        );
    }

    // SIGHUP with a new VIP: applied without touching the running one.
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    let second = text[text.find("[[vip]]").unwrap()..]
        .replace("name = \"web\"", "name = \"mail\"")
        .replace("10.201.4.", "10.201.5.");
    std::fs::write(&daemon.config, format!("{text}\n{second}")).unwrap();
    let pid = daemon.pid();
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            up.ip(&["route", "show", "10.201.5.0/24"])
                .is_ok_and(|r| r.contains("proto bgp"))
        }),
        "the VIP added by a reload was not announced\n{}",
        daemon.logs()
    );
    assert!(has_route(&up), "the reload disturbed the running VIP");

    // Every log line is one JSON object ([log] format = "json").
    let log_text = daemon.logs();
    assert!(log_text.lines().count() > 3);
    for line in log_text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }

    let pid = daemon.pid();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let exited = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        matches!(
            daemon.proc.0.as_mut().map(|c| c.try_wait()),
            Some(Ok(Some(_)))
        )
    });
    assert!(
        exited,
        "anycastd did not stop on SIGTERM\n{}",
        daemon.logs()
    );
    let code = daemon.proc.0.take().unwrap().wait().unwrap().code();
    assert_eq!(code, Some(0), "{}", daemon.logs());
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            !has_route(&up)
        }),
        "the prefix stayed after SIGTERM"
    );
    drop(rs);
    let _ = std::fs::remove_dir_all(&daemon.dir);
}
