//! The TCP check under packet loss, in a network namespace of its own (root): iptables
//! drops every other SYN to the checked port, so the first connect of every check is
//! lost. A plain connect with the check's 200 ms timeout then fails (the kernel would
//! retransmit the SYN only after 1 s); the hedged connect of `tcp_connect` succeeds
//! with its second attempt, every time. With every SYN dropped (a silent failure) it
//! fails after its timeout, not before and not much later.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anycast_lab::netns::Netns;
use anycast_lab::require::{Need, require};
use geo_balancer::errors::ProbeError;
use geo_balancer::health::probe::tcp_connect;
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_millis(200);
const CHECKS: usize = 20;

fn iptables(ns: &Netns, rule: &[&str]) {
    ns.exec("iptables", rule)
        .unwrap_or_else(|e| panic!("iptables {rule:?}: {e}"));
}

#[test]
fn a_lost_syn_does_not_fail_a_check_and_a_dead_path_does() {
    if !require(
        "a_lost_syn_does_not_fail_a_check_and_a_dead_path_does",
        &[Need::Netns, Need::Program("iptables")],
    ) {
        return;
    }
    let ns = Netns::create("gb-loss").expect("netns");
    ns.enter_current_thread().expect("enter netns");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = l.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let port = addr.port().to_string();
        // Every other SYN to the port, starting with the first, is dropped.
        iptables(
            &ns,
            &[
                "-A",
                "INPUT",
                "-p",
                "tcp",
                "--dport",
                &port,
                "--syn",
                "-m",
                "statistic",
                "--mode",
                "nth",
                "--every",
                "2",
                "--packet",
                "0",
                "-j",
                "DROP",
            ],
        );

        // The control: a plain connect loses its first SYN and misses the timeout.
        let plain = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr)).await;
        assert!(plain.is_err(), "a plain connect got through: {plain:?}");

        // SYN 1 gets through, which also shows the rule alternates.
        let aligned = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr)).await;
        assert!(matches!(aligned, Ok(Ok(_))), "the second SYN: {aligned:?}");

        // From SYN 2 on, each check's first attempt loses its SYN and its second
        // attempt connects.
        for i in 0..CHECKS {
            let t = Instant::now();
            let r = tcp_connect(addr, TIMEOUT).await;
            let took = t.elapsed();
            assert!(r.is_ok(), "check {i} failed after {took:?}: {r:?}");
            assert!(
                took >= TIMEOUT / 2,
                "check {i} took {took:?}: its first SYN should have been lost"
            );
        }

        // A dead path: every SYN dropped. The check fails with a timeout, after it.
        iptables(
            &ns,
            &["-I", "INPUT", "-p", "tcp", "--dport", &port, "-j", "DROP"],
        );
        let t = Instant::now();
        let r = tcp_connect(addr, TIMEOUT).await;
        let took = t.elapsed();
        assert!(
            matches!(r, Err(ProbeError::Timeout { .. })),
            "expected a timeout, got {r:?}"
        );
        assert!(
            took >= TIMEOUT && took < TIMEOUT * 3,
            "a dead path failed after {took:?}"
        );
        server.abort();
    });
}
