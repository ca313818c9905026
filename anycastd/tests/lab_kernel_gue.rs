//! Spill over GUE between two sites of the seed topology (issue 15, decision 0016):
//! both sites' peer entries say `tunnel = "gue"` (IDC2's for IDC1 does in the seed,
//! to IDC1's site endpoint, decision 0018). Each daemon listens for GUE (fou, port
//! 6080) into its IPIP device; IDC1, overloaded from c31, spills to IDC2 and the
//! spilled connections arrive as UDP at lb2 and are served by IDC2's real servers.

mod e2e;

use std::time::Duration;

use anycast_lab::uml::{Lab, guest};
use anycastd::status::PeerState;
use e2e::*;

/// New connections counted while IDC1 spills.
const ASKED: usize = 200;

#[test]
fn lab_kernel_spill_over_gue() {
    if guest::active().is_some() {
        return in_guest();
    }
    run_seed_lab(
        "lab_kernel_spill_over_gue",
        &[],
        Lab::new("spill-gue")
            .extra_modules(&["fou"])
            .timeout(Duration::from_secs(240)),
    );
}

/// UDP datagrams the namespace received (`Udp: InDatagrams` of /proc/net/snmp).
fn udp_in(ns: &str) -> u64 {
    let snmp = guest::sh_in(ns, "cat /proc/net/snmp");
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "InDatagrams")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn in_guest() {
    let _servers: Vec<RealServer> = ["rs511", "rs512", "rs611", "rs612"]
        .into_iter()
        .map(RealServer::start)
        .collect();
    let small = ("capacity = 100", "capacity = 5");
    let to2 = "tunnel_endpoint = \"10.101.2.2\"";
    let gue2 = format!("{to2}\ntunnel = \"gue\"");
    let lb1 = Anycastd::start("lb1", lab_config("idc1", &[small, (to2, &gue2)]));
    let lb2 = Anycastd::start("lb2", lab_config("idc2", &[small]));
    let paths = wait_path("c31", "3 1 5", Duration::from_secs(40)).and(wait_path(
        "c32",
        "3 2 5",
        Duration::from_secs(10),
    ));
    let known = |lb: &Anycastd, peer: &str| {
        lb.wait_status(Duration::from_secs(15), |s| {
            peer_state(s, peer) == Some(PeerState::Known)
                && s.vips.iter().all(|v| v.servers_up == 2)
        })
        .is_some()
    };
    let ok = paths.is_ok() && known(&lb1, "idc2") && known(&lb2, "idc1");
    if !guest::check("converged", ok, &format!("{paths:?}")) {
        println!("lb1 log:\n{}\nlb2 log:\n{}", lb1.log(), lb2.log());
        return;
    }
    for ns in ["lb1", "lb2"] {
        let fou = guest::sh_in(ns, "ip fou show");
        guest::check(
            &format!("{ns}_listens_for_gue"),
            fou.contains("port 6080 gue"),
            &fou,
        );
    }
    let _load = overload_until_spilling("c31", &lb1, "idc2", "idc1_spills_to_idc2");
    let udp0 = udp_in("lb2");
    let rx0 = tunnel_rx_packets("lb2").unwrap_or(0);
    let answers = served_n("c31", ASKED);
    let udp = udp_in("lb2") - udp0;
    let rx = tunnel_rx_packets("lb2").unwrap_or(0) - rx0;
    let idc2 = answers.iter().filter(|a| a.starts_with("rs6")).count();
    let failed = answers.iter().filter(|a| a.starts_with("error")).count();
    println!(
        "GUE spill: {ASKED} new connections from c31, {idc2} served by IDC2, {failed} failed; \
         lb2 received {udp} UDP datagrams and {rx} packets on anycast0"
    );
    guest::check(
        "spilled_connections_served_by_idc2_over_gue",
        idc2 > 0 && failed == 0 && udp >= idc2 as u64 && rx >= idc2 as u64,
        &format!("{idc2} by IDC2, {failed} failed, udp {udp}, anycast0 rx {rx}"),
    );
}
