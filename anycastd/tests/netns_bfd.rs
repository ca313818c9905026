//! BFD toward the upstream, end to end on the host kernel: anycastd (BGP and checks
//! only) under FRR (bgpd with `neighbor X bfd`, bfdd) in network namespaces. A path
//! cut with the carrier up takes the VIP's route out of FRR's kernel table within
//! the BFD detection time, not the 9 s hold time; anycastd shows BFD down holding
//! BGP down; after the heal BFD comes up first and BGP follows.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anycast_lab::netns::{Netns, veth, wait_until};
use anycast_lab::peers::Frr;
use anycast_lab::uml::guest::in_netns;
use anycast_lab::{Need, require};
use anycastd::status::BfdState;

mod netns;
use netns::{Proc, server};

fn has_route(up: &Netns) -> bool {
    up.ip(&["route", "show", "10.211.4.0/24"])
        .is_ok_and(|r| r.contains("proto bgp"))
}

fn cut(site: &Netns, op: &str) {
    for (chain, dir) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
        site.exec("iptables", &[op, chain, dir, "10.210.0.1", "-j", "DROP"])
            .unwrap_or_else(|e| panic!("iptables {op} {chain}: {e}"));
    }
}

fn status(site: &Netns) -> anycastd::status::Status {
    let r = in_netns(site.name(), || {
        anycastd::ctl::client::request(
            &anycastd::config::ApiListen::Tcp("127.0.0.1:9180".parse().unwrap()),
            "GET",
            "/v1/status",
        )
    })
    .expect("status");
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

fn bfd_state(site: &Netns) -> Option<(BfdState, bool)> {
    status(site)
        .sessions
        .first()?
        .bfd
        .as_ref()
        .map(|b| (b.state, b.holds_bgp_down))
}

#[test]
fn netns_bfd_cut_path_withdraws_within_detection_time() {
    if !require(
        "netns_bfd_cut_path_withdraws_within_detection_time",
        &[
            Need::Netns,
            Need::Program("/usr/lib/frr/bgpd"),
            Need::Program("/usr/lib/frr/bfdd"),
            Need::Program("python3"),
            Need::Program("iptables"),
        ],
    ) {
        return;
    }
    let up = Netns::create("bfdup").unwrap();
    let site = Netns::create("bfdsite").unwrap();
    veth(&up, &["10.210.0.1/24"], &site, &["10.210.0.2/24"]).unwrap();
    site.ip(&["addr", "add", "10.210.1.11/32", "dev", "lo"])
        .unwrap();
    let frr = Frr::start_with_bfdd(
        &up,
        "router bgp 65001\n bgp router-id 10.210.0.1\n no bgp ebgp-requires-policy\n \
         neighbor 10.210.0.2 remote-as 65005\n neighbor 10.210.0.2 timers 3 9\n \
         neighbor 10.210.0.2 timers connect 1\n neighbor 10.210.0.2 bfd\n \
         neighbor 10.210.0.2 bfd profile fast\n",
        "bfd\n profile fast\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 5\n !\n!\n",
    )
    .unwrap();
    let _rs = server(&site, "10.210.1.11");

    let dir = std::env::temp_dir().join(format!("anycastd-bfd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("site.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[site]
name = "solo"
address = "10.210.0.2"
dataplane = false
shutdown_wait = "0s"
state_dir = "{state}"

[api]
listen = "127.0.0.1:9180"

[bgp]
asn = 65005

[[bgp.neighbor]]
address = "10.210.0.1"
remote_asn = 65001
hold_time = 9
connect_retry = 1
bfd = true
bfd_min_tx = "300ms"
bfd_min_rx = "300ms"
bfd_multiplier = 5

[[vip]]
name = "web"
prefix = "10.211.4.0/24"
address = "10.211.4.1"
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

[[vip.service.real_server]]
address = "10.210.1.11"
capacity = 10
"#,
            state = dir.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("anycastd.log")).unwrap();
    let _daemon = Proc(Some(
        site.command(env!("CARGO_BIN_EXE_anycastd"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    ));
    let logs = || std::fs::read_to_string(dir.join("anycastd.log")).unwrap_or_default();
    let frr_bfd = || frr.vtysh("show bfd peers brief").unwrap_or_default();

    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            has_route(&up)
        }),
        "the VIP prefix never reached FRR's kernel table\n{}",
        logs()
    );
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            bfd_state(&site).is_some_and(|(s, _)| s == BfdState::Up)
        }),
        "BFD never came up: ours {:?}; FRR {}\n{}",
        bfd_state(&site),
        frr_bfd(),
        logs()
    );
    // The packet counters reach /metrics.
    let metrics = in_netns(site.name(), || {
        anycastd::ctl::client::request(
            &anycastd::config::ApiListen::Tcp("127.0.0.1:9180".parse().unwrap()),
            "GET",
            "/metrics",
        )
    })
    .expect("metrics");
    assert!(
        metrics
            .body
            .contains("anycast_bfd_session_up{neighbor=\"10.210.0.1\"} 1")
            && metrics
                .body
                .contains("anycast_bfd_packets_dropped_total{reason=\"bad_ttl\"} 0")
            && !metrics
                .body
                .contains("anycast_bfd_packets_received_total 0\n"),
        "{}",
        metrics.body
    );
    // Both sides at 300 ms x 5 once the poll sequences are done (tolerant of a busy
    // CI machine; benchmark 2 has the fast timers).
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            status(&site).sessions[0]
                .bfd
                .as_ref()
                .is_some_and(|b| b.detection_time_ms == 1500)
        }
    ));

    // The path dies, the carrier stays up: the route leaves FRR's table within the
    // BFD detection time (1.5 s) and FRR's processing, far below the 9 s hold time.
    let t0 = Instant::now();
    cut(&site, "-A");
    assert!(
        wait_until(Duration::from_secs(8), Duration::from_millis(5), || {
            !has_route(&up)
        }),
        "the route stayed after the cut; FRR {}",
        frr_bfd()
    );
    let took = t0.elapsed();
    println!("BENCH bfd_path_cut_to_route_gone_ms {}", took.as_millis());
    assert!(
        took < Duration::from_secs(3),
        "route gone only after {took:?}"
    );
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
            bfd_state(&site) == Some((BfdState::Down, true))
        }),
        "ours: {:?}\n{}",
        bfd_state(&site),
        logs()
    );
    let st = status(&site);
    assert_ne!(
        st.sessions[0].state,
        anycastd::status::SessionState::Established,
        "{st:?}"
    );

    // Healed: BFD up, then BGP, then the route.
    let t1 = Instant::now();
    cut(&site, "-D");
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            has_route(&up)
        }),
        "the route did not come back; ours {:?}; FRR {}\n{}",
        bfd_state(&site),
        frr_bfd(),
        logs()
    );
    println!(
        "BENCH bfd_heal_to_route_back_ms {}",
        t1.elapsed().as_millis()
    );
    assert_eq!(bfd_state(&site), Some((BfdState::Up, false)));
    let text = logs();
    assert!(
        text.contains("BFD down: BGP session torn down"),
        "no BFD line in the log:\n{text}"
    );
}
