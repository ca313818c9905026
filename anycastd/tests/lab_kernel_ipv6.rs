//! IPv6 end to end in the lab kernel, in the paper's topology with its IPv6 plane
//! (lab/src/seed6.rs): both sites dual-stack (VIP 10.101.4.1 and VIP6
//! 2001:db8:4::1 over the same real servers, IDC1 by DR, IDC2 by TUN over ip6ip6),
//! the FRR routers carrying both families. Scenario 1 (convergence), 2 (site
//! failure) and 4 (spill) for IPv6, in one boot.

mod e2e;

use std::time::{Duration, Instant};

use anycast_lab::uml::{Lab, guest};
use anycastd::status::{PeerState, Status};
use e2e::v6::*;
use e2e::*;

/// Each real server takes 5 connections per family's entry: 20 per site.
const SMALL: &[(&str, &str)] = &[("capacity = 100", "capacity = 5")];

#[test]
fn lab_kernel_ipv6_converge_fail_spill() {
    if guest::active().is_some() {
        return in_guest();
    }
    run_seed_lab(
        "lab_kernel_ipv6_converge_fail_spill",
        &[],
        Lab::new("e2e-ipv6").timeout(Duration::from_secs(200)),
    );
}

fn count(answers: &[String], prefix: &str) -> usize {
    answers.iter().filter(|a| a.starts_with(prefix)).count()
}

/// Peer known with a finite load, nothing spilled, every VIP's servers up.
fn settled(lb: &Anycastd, peer: &str) -> bool {
    lb.wait_status(Duration::from_secs(15), |s| {
        peer_state(s, peer) == Some(PeerState::Known)
            && peer_load(s, peer).is_some()
            && s.spill.iter().all(|p| p.share == 0.0)
            && s.vips.iter().all(|v| v.servers_up == 2)
    })
    .is_some()
}

fn in_guest() {
    let mut servers: Vec<RealServer> = ["rs511", "rs512", "rs611", "rs612"]
        .into_iter()
        .map(RealServer::start)
        .collect();
    let lb1 = Anycastd::start("lb1", dual_stack_config("idc1", SMALL));
    let lb2 = Anycastd::start("lb2", dual_stack_config("idc2", SMALL));

    // 1. Convergence: the paper's paths in both families, each client served over
    // IPv6 by its nearest site.
    let t0 = Instant::now();
    let c31 = wait_path6("c31", "3 1 5", Duration::from_secs(40));
    let c32 = wait_path6("c32", "3 2 5", Duration::from_secs(10));
    let v4 = wait_path("c31", "3 1 5", Duration::from_secs(5)).and(wait_path(
        "c32",
        "3 2 5",
        Duration::from_secs(5),
    ));
    let converged = guest::check(
        "ipv6_converged",
        c31.is_ok() && c32.is_ok() && v4.is_ok(),
        &format!(
            "c31 {c31:?}, c32 {c32:?}, IPv4 {v4:?} ({:?} after start)",
            t0.elapsed()
        ),
    );
    if !converged {
        for ns in ["r11", "r31", "c31"] {
            println!(
                "== {ns}\n{}\n{}",
                guest::vtysh(ns, "show bgp ipv6 unicast summary"),
                guest::vtysh(ns, "show bgp ipv6 unicast")
            );
        }
        println!("lb1 log:\n{}\nlb2 log:\n{}", lb1.log(), lb2.log());
        return;
    }
    let ok = settled(&lb1, "idc2") && settled(&lb2, "idc1");
    guest::check(
        "both_sites_settled",
        ok,
        &lb1.status().map_or("no status".into(), |s| spill_line(&s)),
    );
    let a = served6_n("c31", 6);
    let b = served6_n("c32", 6);
    guest::check(
        "ipv6_nearest_site_serves",
        count(&a, "rs5") == 6 && count(&b, "rs6") == 6,
        &format!("c31 -> {a:?}, c32 -> {b:?}"),
    );
    // DR and TUN: the real server answers the client itself, from the VIP.
    let mut c31_conn = open_conns6("c31", 1);
    let mut c32_conn = open_conns6("c32", 1);
    let sockets: Vec<String> = ["rs511", "rs512", "rs611", "rs612"]
        .into_iter()
        .flat_map(client_sockets6)
        .collect();
    guest::check(
        "ipv6_servers_answer_from_the_vip",
        sockets.len() >= 2 && sockets.iter().all(|s| s.starts_with("[2001:db8:4::1]:80 ")),
        &format!("{sockets:?}"),
    );
    let (code, st) = lb1.ctl("status");
    let row = |words: &[&str]| {
        st.lines()
            .any(|l| words.iter().all(|w| l.split_whitespace().any(|x| x == *w)))
    };
    guest::check(
        "status_shows_families",
        code == 0
            && row(&["web6", "2001:db8:4::/48", "IPv6", "announced"])
            && row(&["web", "10.101.4.0/24", "IPv4", "announced"])
            && st.contains("ipip 10.101.2.2, ip6ip6 2001:db8:2::2"),
        &st,
    );
    println!("anycastctl status on lb1:\n{st}");
    println!(
        "lb1 ipvsadm:\n{}\nlb2 ipvsadm:\n{}",
        guest::sh_in("lb1", "ipvsadm -Ln"),
        guest::sh_in("lb2", "ipvsadm -Ln")
    );

    // 2. Site failure: IDC2's real servers die; LB2 withdraws both prefixes; R32's
    // IPv6 clients go to IDC1.
    drop(c32_conn.drain(..));
    let t0 = Instant::now();
    servers[2].kill();
    servers[3].kill();
    let moved = guest::wait_for(Duration::from_secs(15), || {
        served6("c32").starts_with("rs5").then(|| t0.elapsed())
    });
    guest::check(
        "ipv6_failure_moves_clients_to_idc1",
        moved.is_some(),
        &format!("first IPv6 request served by IDC1 after {moved:?}"),
    );
    let p = wait_path6("c32", "3 1 5", Duration::from_secs(5));
    guest::check("ipv6_failure_path_3_1_5", p.is_ok(), &format!("{p:?}"));
    let withdrawn = lb2.status().is_some_and(|s: Status| {
        s.vips
            .iter()
            .all(|v| v.state == anycastd::status::VipState::Withdrawn)
    });
    guest::check(
        "ipv6_status_shows_withdrawn",
        withdrawn,
        &lb2.ctl("status").1,
    );
    servers[2].restart();
    servers[3].restart();
    let p = wait_path6("c32", "3 2 5", Duration::from_secs(20));
    guest::check("ipv6_recovery_path_3_2_5", p.is_ok(), &format!("{p:?}"));
    let ok = settled(&lb1, "idc2") && settled(&lb2, "idc1");
    guest::check("settled_after_recovery", ok, "");

    // 4. Spill: the load counts both families. 12 IPv4 connections are 12 of the 20
    // the site takes (0.6): no spill. 12 IPv6 ones on top make 1.2: IDC1 spills to
    // IDC2, and new IPv6 connections are tunnelled there over ip6ip6.
    let rx0 = tunnel6_rx_packets("lb2").unwrap_or(0);
    let mut v4conns = open_conns("c31", 12);
    let early = lb1.wait_status(Duration::from_secs(3), |s| spill_share(s, "idc2") > 0.0);
    let half = lb1.status().and_then(|s| s.local_load);
    guest::check(
        "ipv4_alone_is_0_6_no_spill",
        v4conns.len() == 12 && early.is_none() && half.is_some_and(|l| (0.5..0.7).contains(&l)),
        &format!("{} IPv4 connections, local load {half:?}", v4conns.len()),
    );
    let mut v6conns = open_conns6("c31", 12);
    v6conns.append(&mut c31_conn);
    let spill = lb1.wait_status(Duration::from_secs(10), |s| spill_share(s, "idc2") > 0.0);
    guest::check(
        "both_families_make_1_2_and_spill",
        spill.as_ref().is_some_and(|(_, s)| {
            s.local_load.is_some_and(|l| l > 1.1)
                && s.spill
                    .iter()
                    .any(|p| p.share > 0.0 && p.families.iter().any(|f| f == "ipv6"))
        }),
        &spill.as_ref().map_or("no spill".into(), |(d, s)| {
            format!("{d:?}: {}", spill_line(s))
        }),
    );
    // The share ramps (0.1 a period) toward 1 - 0.95 / 1.25 = 0.24; the spill
    // split on eth1 sends that share of new IPv6 connections to its IPv6 fwmark
    // service, whose only destination is IDC2's ip6ip6 endpoint (decision 0006).
    let ramped = lb1.wait_status(Duration::from_secs(6), |s| spill_share(s, "idc2") > 0.2);
    guest::check(
        "share_ramps",
        ramped.is_some(),
        &lb1.status().map_or("no status".into(), |s| spill_line(&s)),
    );
    // New IPv6 connections until a few were served by IDC2.
    let mut spilled = Vec::new();
    let mut home = 0;
    for _ in 0..60 {
        if spilled.len() >= 3 {
            break;
        }
        for c in open_conns6("c31", 1) {
            if c.server.starts_with("rs6") {
                spilled.push(c);
            } else {
                home += 1;
            }
        }
    }
    let rx1 = tunnel6_rx_packets("lb2").unwrap_or(0);
    let tunnelled = ipvs_conns_to("lb1", "[2001:db8:2::2]");
    guest::check(
        "new_ipv6_connections_served_by_idc2",
        spilled.len() >= 3,
        &format!("{} on IDC2, {home} at home", spilled.len()),
    );
    guest::check(
        "ipv6_through_ip6ip6",
        rx1 > rx0 && tunnelled > 0,
        &format!(
            "lb2 anycast6 RX +{} packets; lb1 IPVS entries to [2001:db8:2::2]: {tunnelled}",
            rx1.saturating_sub(rx0)
        ),
    );
    let held = guard6_active("lb2");
    guest::check(
        "ipv6_spilled_held_by_the_guard_at_idc2",
        held >= spilled.len() as u32,
        &format!(
            "lb2's IPv6 loop-guard service holds {held} active connections for {} spilled",
            spilled.len()
        ),
    );
    let direct: Vec<String> = ["rs611", "rs612"]
        .into_iter()
        .flat_map(client_sockets6)
        .filter(|s| s.contains("[2001:db8:3::2]"))
        .collect();
    guest::check(
        "ipv6_spilled_answered_directly",
        !direct.is_empty() && direct.iter().all(|s| s.starts_with("[2001:db8:4::1]:80 ")),
        &format!("IDC2 servers' sockets to c31: {direct:?}"),
    );
    let kept4 = still_same_server(&mut v4conns);
    let kept6 = still_same_server(&mut v6conns);
    guest::check(
        "old_connections_keep_their_server",
        kept4 == v4conns.len() && kept6 == v6conns.len(),
        &format!(
            "IPv4 {kept4}/{}, IPv6 {kept6}/{}",
            v4conns.len(),
            v6conns.len()
        ),
    );
    println!(
        "lb1 ipvsadm while spilling:\n{}",
        guest::sh_in("lb1", "ipvsadm -Ln")
    );

    // Closing the IPv6 connections (and the spilled ones) brings the load to 0.6:
    // spilling stops, new IPv6 connections stay home.
    drop(spilled);
    drop(v6conns);
    let stopped = lb1.wait_status(Duration::from_secs(5), |s| {
        s.local_load.is_some_and(|l| l <= 1.0) && s.spill.iter().all(|p| p.share == 0.0)
    });
    guest::check(
        "ipv6_spill_stops",
        stopped.is_some(),
        &lb1.status().map_or("no status".into(), |s| spill_line(&s)),
    );
    let after = served6_n("c31", 5);
    guest::check(
        "ipv6_served_locally_after_stop",
        count(&after, "rs5") == 5,
        &format!("{after:?}"),
    );
}
