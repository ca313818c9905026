//! The ICMP echo check against a real kernel, in namespaces of its own (root): a host
//! that answers (IPv4 and IPv6), through a raw socket and through an unprivileged ping
//! socket (`net.ipv4.ping_group_range` opened in the checker's namespace), and a host
//! whose firewall drops echo requests: a timeout, after the timeout and not much later.

use std::time::{Duration, Instant};

use anycast_lab::netns::{Netns, veth};
use anycast_lab::require::{Need, require};
use geo_balancer::errors::ProbeError;
use geo_balancer::health::icmp::{SocketKind, echo};

const TIMEOUT: Duration = Duration::from_millis(200);

#[test]
fn icmp_check_raw_and_ping_sockets_v4_v6_and_a_host_that_drops_echo() {
    if !require(
        "icmp_check_raw_and_ping_sockets_v4_v6_and_a_host_that_drops_echo",
        &[
            Need::Netns,
            Need::Program("iptables"),
            Need::Program("ip6tables"),
        ],
    ) {
        return;
    }
    let checker = Netns::create("gb-icmpc").expect("netns");
    let target = Netns::create("gb-icmpt").expect("netns");
    veth(
        &checker,
        &["10.66.0.1/24", "fd66::1/64"],
        &target,
        &["10.66.0.2/24", "fd66::2/64"],
    )
    .expect("veth");
    // Nobody may open ping sockets in the checker's namespace: the raw fallback.
    checker
        .exec("sysctl", &["-qw", "net.ipv4.ping_group_range=1 0"])
        .expect("sysctl");
    checker.enter_current_thread().expect("enter netns");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // IPv6 neighbour discovery waits for the fresh link-local addresses' DAD
        // (about a second): the path first, then the figures.
        let t0 = Instant::now();
        while echo("fd66::2".parse().unwrap(), TIMEOUT).await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "IPv6 path never came up"
            );
        }
        for addr in ["10.66.0.2", "fd66::2"] {
            let r = echo(addr.parse().unwrap(), TIMEOUT).await;
            assert_eq!(r, Ok(SocketKind::Raw), "{addr}");
        }
        // Ping sockets allowed for every group: the unprivileged path.
        std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")
            .expect("open ping sockets");
        for addr in ["10.66.0.2", "fd66::2"] {
            let r = echo(addr.parse().unwrap(), TIMEOUT).await;
            assert_eq!(r, Ok(SocketKind::Datagram), "{addr}");
        }
        // Many in a row: no stray reply is taken for another probe's.
        for _ in 0..20 {
            assert!(echo("10.66.0.2".parse().unwrap(), TIMEOUT).await.is_ok());
        }

        // The host drops echo requests: a timeout, not before it and not much after.
        echo_requests(&target, Family::V4, "-A", &["DROP"]);
        echo_requests(&target, Family::V6, "-A", &["DROP"]);
        for addr in ["10.66.0.2", "fd66::2"] {
            let t0 = Instant::now();
            let r = echo(addr.parse().unwrap(), TIMEOUT).await;
            let took = t0.elapsed();
            assert!(
                matches!(r, Err(ProbeError::Timeout { .. })),
                "{addr}: {r:?}"
            );
            assert!(
                took >= TIMEOUT && took < TIMEOUT + Duration::from_millis(150),
                "{addr}: {took:?}"
            );
        }
        // A destination the router refuses (an ICMP error comes back): a failure at
        // once, named.
        echo_requests(
            &target,
            Family::V4,
            "-I",
            &["REJECT", "--reject-with", "icmp-host-prohibited"],
        );
        let t0 = Instant::now();
        let r = echo("10.66.0.2".parse().unwrap(), TIMEOUT).await;
        assert!(
            matches!(&r, Err(ProbeError::Icmp { reason, .. }) if reason.to_lowercase().contains("unreachable")),
            "{r:?}"
        );
        assert!(t0.elapsed() < TIMEOUT, "{:?}", t0.elapsed());
    });
}

enum Family {
    V4,
    V6,
}

/// Adds (`op` `-A`) or inserts (`-I`) a rule in `ns`'s INPUT chain that sends echo
/// requests of `family` to `target` (`DROP`, `REJECT --reject-with ...`).
fn echo_requests(ns: &Netns, family: Family, op: &str, target: &[&str]) {
    let (tool, proto, type_opt) = match family {
        Family::V4 => ("iptables", "icmp", "--icmp-type"),
        Family::V6 => ("ip6tables", "icmpv6", "--icmpv6-type"),
    };
    let mut args = vec![op, "INPUT", "-p", proto, type_opt, "echo-request", "-j"];
    args.extend_from_slice(target);
    ns.exec(tool, &args)
        .unwrap_or_else(|e| panic!("{tool} {args:?}: {e}"));
}
