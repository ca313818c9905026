//! The site endpoint (issue 15 item 3, decision 0018) on the seed as configured:
//! IDC1's directors lb1 and lb1b both hold `tunnel_endpoint = 10.101.14.1` and
//! announce its prefix 10.101.14.0/24 with the VIP; R11 has both routes
//! (`maximum-paths 2`, multipath hash on addresses and ports); IDC2's peer entry for
//! IDC1 names the endpoint with `tunnel = "gue"`. IDC2, overloaded from c32, spills
//! to IDC1: the spilled connections are counted per director of IDC1 (its loop-guard
//! firewall-mark service's connection counter), each must get a real share, every
//! connection must be served, and none may be scheduled by the spillable VIP:port
//! service (the loop guard marked every one) nor arrive on the catch-all `tunl0`.
//!
//! ```text
//!   c32 ─ r32 ─ r22 ─ lb2 ══GUE to 10.101.14.1══> r11 ─┬─ lb1  (anycast0 local 10.101.14.1)
//!                                                     └─ lb1b (anycast0 local 10.101.14.1)
//! ```

mod e2e;

use std::time::Duration;

use anycast_lab::Need;
use anycast_lab::uml::{Lab, guest};
use anycastd::status::PeerState;
use e2e::*;

/// New connections asked for while IDC2 spills.
const ASKED: usize = 300;
/// The smallest share of the spilled connections each director of IDC1 must take.
const MIN_SHARE: f64 = 0.2;
const ENDPOINT_PREFIX: &str = "10.101.14.0/24";

#[test]
fn lab_kernel_spill_to_a_site_endpoint_lands_on_both_directors() {
    if guest::active().is_some() {
        return in_guest();
    }
    run_seed_lab(
        "lab_kernel_spill_to_a_site_endpoint_lands_on_both_directors",
        &[Need::Program("/usr/sbin/ipvsadm")],
        Lab::new("site-endpoint").timeout(Duration::from_secs(240)),
    );
}

/// (connections of the loop guard's firewall-mark services, connections of the
/// VIP's TCP services) since boot, from `ipvsadm -Ln --stats` (refreshed every 2 s).
fn service_conns(ns: &str) -> (u64, u64) {
    let split = anycastd::layout::SPLIT_MARK.to_string();
    let (mut fwm, mut tcp) = (0, 0);
    for l in guest::sh_in(ns, "ipvsadm -Ln --stats").lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let conns = f.get(2).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        match (f.first(), f.get(1)) {
            (Some(&"FWM"), Some(m)) if *m != split => fwm += conns,
            (Some(&"TCP"), Some(a)) if a.starts_with(VIP) => tcp += conns,
            _ => {}
        }
    }
    (fwm, tcp)
}

fn in_guest() {
    let _servers: Vec<RealServer> = ["rs511", "rs512", "rs611", "rs612"]
        .into_iter()
        .map(RealServer::start)
        .collect();
    let small = ("capacity = 100", "capacity = 5");
    let lb1 = Anycastd::start("lb1", lab_config("idc1", &[]));
    let lb1b = Anycastd::start("lb1b", lab_config("idc1b", &[]));
    let lb2 = Anycastd::start("lb2", lab_config("idc2", &[small]));
    let both = guest::wait_for(Duration::from_secs(40), || {
        let r = guest::sh_in("r11", &format!("ip route show {ENDPOINT_PREFIX}"));
        (r.contains("10.101.1.2") && r.contains("10.101.7.2")).then_some(r)
    });
    let path = wait_path("c32", "3 2 5", Duration::from_secs(20));
    let known = lb2
        .wait_status(Duration::from_secs(20), |s| {
            peer_state(s, "idc1") == Some(PeerState::Known)
                && s.vips.iter().all(|v| v.servers_up == 2)
        })
        .is_some();
    let ok = both.is_some() && path.is_ok() && known;
    if !guest::check(
        "r11_routes_the_endpoint_over_both_directors",
        ok,
        &format!(
            "{path:?}; lb2 knows idc1: {known}; r11: {}",
            guest::sh_in("r11", "ip route; vtysh -N r11 -c 'show ip bgp'")
        ),
    ) {
        println!(
            "lb1:\n{}\nlb1b:\n{}\nlb2:\n{}",
            lb1.log(),
            lb1b.log(),
            lb2.log()
        );
        return;
    }
    for ns in ["lb1", "lb1b"] {
        let dev = guest::sh_in(ns, "ip -d link show dev anycast0; ip fou show");
        guest::check(
            &format!("{ns}_receives_at_the_endpoint"),
            dev.contains("local 10.101.14.1") && dev.contains("port 6080 gue"),
            &dev,
        );
    }
    // IDC1 idle.
    let _load = overload_until_spilling("c32", &lb2, "idc1", "idc2_spills_to_idc1");
    let before: Vec<(u64, u64)> = ["lb1", "lb1b"].map(service_conns).to_vec();
    let tunl0: Vec<Option<u64>> = ["lb1", "lb1b"]
        .map(|ns| dev_rx_packets(ns, "tunl0"))
        .to_vec();
    let rx2 = tunnel_rx_packets("lb2");
    let answers = served_n("c32", ASKED);
    // IPVS refreshes its service counters every 2 s.
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<(u64, u64)> = ["lb1", "lb1b"].map(service_conns).to_vec();
    let idc1 = answers.iter().filter(|a| a.starts_with("rs5")).count();
    let failed = answers.iter().filter(|a| a.starts_with("error")).count();
    let per: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a.0 - b.0).collect();
    let unguarded: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a.1 - b.1).collect();
    let spilled = per.iter().sum::<u64>();
    println!(
        "site endpoint: {ASKED} new connections from c32, {idc1} served by IDC1, {failed} failed; \
         spilled connections per director: lb1 {}, lb1b {} ({:.0}% / {:.0}%); \
         scheduled by the spillable VIP:80 service at lb1 {}, lb1b {}",
        per[0],
        per[1],
        100.0 * per[0] as f64 / spilled.max(1) as f64,
        100.0 * per[1] as f64 / spilled.max(1) as f64,
        unguarded[0],
        unguarded[1],
    );
    guest::check(
        "every_connection_served",
        failed == 0 && idc1 > 0 && spilled == idc1 as u64,
        &format!("{idc1} by IDC1, {failed} failed, {spilled} counted by IDC1's directors"),
    );
    let fair = per
        .iter()
        .all(|&n| n as f64 >= MIN_SHARE * spilled as f64 && n > 0);
    guest::check(
        "spill_lands_on_both_directors",
        fair,
        &format!("lb1 {}, lb1b {} of {spilled}", per[0], per[1]),
    );
    let tunl0_after: Vec<Option<u64>> = ["lb1", "lb1b"]
        .map(|ns| dev_rx_packets(ns, "tunl0"))
        .to_vec();
    guest::check(
        "loop_guard_holds_at_the_endpoint",
        unguarded == [0, 0] && tunl0 == tunl0_after && tunnel_rx_packets("lb2") == rx2,
        &format!(
            "VIP:80 service took {unguarded:?}; tunl0 RX {tunl0:?} -> {tunl0_after:?}; lb2 anycast0 RX {rx2:?} -> {:?}",
            tunnel_rx_packets("lb2")
        ),
    );
}
