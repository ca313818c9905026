//! BFD toward the upstream, end to end on the host kernel: anycastd (BGP and checks
//! only) under FRR (bgpd with `neighbor X bfd`, bfdd) in network namespaces. A path
//! cut with the carrier up takes the VIP's route out of FRR's kernel table within
//! the BFD detection time, not the 9 s hold time; anycastd shows BFD down holding
//! BGP down; after the heal BFD comes up first and BGP follows.

use std::time::{Duration, Instant};

use anycast_lab::netns::{Netns, veth, wait_until};
use anycast_lab::peers::Frr;
use anycast_lab::{Need, require};
use anycastd::status::BfdState;

mod netns;
use netns::{Daemon, SiteToml, api_get, server, status};

const PREFIX: &str = "10.211.4.0/24";

fn has_route(up: &Netns) -> bool {
    netns::has_route(up, PREFIX)
}

fn cut(site: &Netns, op: &str) {
    for (chain, dir) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
        site.exec("iptables", &[op, chain, dir, "10.210.0.1", "-j", "DROP"])
            .unwrap_or_else(|e| panic!("iptables {op} {chain}: {e}"));
    }
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

    let daemon = Daemon::start(
        &site,
        "bfd",
        &SiteToml {
            address: "10.210.0.2",
            neighbor: "10.210.0.1",
            hold_time: 9,
            connect_retry: Some(1),
            neighbor_keys: "bfd = true\nbfd_min_tx = \"300ms\"\nbfd_min_rx = \"300ms\"\nbfd_multiplier = 5\n",
            prefix: PREFIX,
            vip: "10.211.4.1",
            servers: &["10.210.1.11"],
            shutdown_wait: "0s",
            tables: "",
        },
    );
    let frr_bfd = || frr.vtysh("show bfd peers brief").unwrap_or_default();

    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            has_route(&up)
        }),
        "the VIP prefix never reached FRR's kernel table\n{}",
        daemon.logs()
    );
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            bfd_state(&site).is_some_and(|(s, _)| s == BfdState::Up)
        }),
        "BFD never came up: ours {:?}; FRR {}\n{}",
        bfd_state(&site),
        frr_bfd(),
        daemon.logs()
    );
    // The packet counters reach /metrics.
    let metrics = api_get(&site, "/metrics");
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
        daemon.logs()
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
        daemon.logs()
    );
    println!(
        "BENCH bfd_heal_to_route_back_ms {}",
        t1.elapsed().as_millis()
    );
    assert_eq!(bfd_state(&site), Some((BfdState::Up, false)));
    let text = daemon.logs();
    assert!(
        text.contains("BFD down: BGP session torn down"),
        "no BFD line in the log:\n{text}"
    );
}
