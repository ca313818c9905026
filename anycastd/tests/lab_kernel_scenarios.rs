//! Issue 7's scenarios 3-6 in the lab kernel, in the paper's topology (Figure 2.6,
//! lab/src/seed.rs): a director crash, spill-over between the sites and when it stops,
//! no forwarding loop when both sites are full, and a partition between the sites.
//! One lab boot per scenario; the shared pieces are in `e2e/mod.rs`.
//!
//! Loads are made small: each real server's capacity is 5 connections (10 per site),
//! so a dozen long-lived connections from one client push a site above 1.1, and the
//! exchange runs every second (lab_config), so the spill rule reacts within seconds.

mod e2e;

use std::time::{Duration, Instant};

use anycast_lab::Need;
use anycast_lab::uml::{Lab, guest};
use anycastd::status::{PeerState, SessionState, Status};
use e2e::*;

/// Five connections per real server, ten per site.
const SMALL: &[(&str, &str)] = &[("capacity = 100", "capacity = 5")];

/// The exchange period of the lab config and the configured stale_after_periods.
const PERIOD: Duration = Duration::from_secs(1);
const STALE_PERIODS: u32 = 3;

/// One scenario: inside the guest, both sites started with `edits` and, once they
/// converged, `in_guest`; on the host boots lab `lab` re-executing `test`.
fn scenario(test: &str, lab: &str, edits: &[(&str, &str)], in_guest: fn(Sites)) {
    if guest::active().is_some() {
        if let Some(sites) = start_sites(edits) {
            in_guest(sites);
        }
        return;
    }
    run_seed_lab(
        test,
        &[Need::Program("/usr/sbin/iptables-legacy")],
        Lab::new(lab)
            .extra_modules(&["x_tables", "ip_tables", "iptable_filter", "xt_tcpudp"])
            .timeout(Duration::from_secs(150)),
    );
}

/// Both sites up, converged on the paper's paths. `None` (with a FAIL line and the
/// routers' view printed) when they did not converge.
struct Sites {
    servers: Vec<RealServer>,
    lb1: Anycastd,
    lb2: Anycastd,
}

fn start_sites(edits: &[(&str, &str)]) -> Option<Sites> {
    let servers: Vec<RealServer> = ["rs511", "rs512", "rs611", "rs612"]
        .into_iter()
        .map(RealServer::start)
        .collect();
    let lb1 = Anycastd::start("lb1", lab_config("idc1", edits));
    let lb2 = Anycastd::start("lb2", lab_config("idc2", edits));
    let c31 = wait_path("c31", "3 1 5", Duration::from_secs(40));
    let c32 = wait_path("c32", "3 2 5", Duration::from_secs(10));
    // Both peers known to each other with a finite load, and nothing spilled, before
    // anything is measured: until its real servers pass their checks a site has
    // infinite load, and reports (and may spill) accordingly.
    let known = |lb: &Anycastd, peer: &'static str| {
        lb.wait_status(Duration::from_secs(10), |s| {
            peer_state(s, peer) == Some(PeerState::Known)
                && peer_load(s, peer).is_some()
                && s.spill.iter().all(|p| p.share == 0.0)
                && s.vips.iter().all(|v| v.servers_up == 2)
        })
        .is_some()
    };
    let ok = c31.is_ok() && c32.is_ok() && known(&lb1, "idc2") && known(&lb2, "idc1");
    if !guest::check("converged", ok, &format!("c31 {c31:?}, c32 {c32:?}")) {
        for ns in ["r11", "r22", "r31", "r32"] {
            println!("== {ns}\n{}", guest::vtysh(ns, "show ip bgp summary"));
        }
        println!("lb1 log:\n{}\nlb2 log:\n{}", lb1.log(), lb2.log());
        return None;
    }
    Some(Sites { servers, lb1, lb2 })
}

fn count(answers: &[String], prefix: &str) -> usize {
    answers.iter().filter(|a| a.starts_with(prefix)).count()
}

/// `n` new connections from client `ns`; checks that every one was served by a real
/// server whose name starts with `prefix`. `note` is appended to the detail.
fn check_served_by(
    step: &str,
    ns: &str,
    n: usize,
    prefix: &str,
    note: impl FnOnce() -> String,
) -> bool {
    let a = served_n(ns, n);
    guest::check(
        step,
        count(&a, prefix) == a.len(),
        &format!("{a:?}{}", note()),
    )
}

/// The spill line of a status, or "no status".
fn line_of(st: Option<&Status>) -> String {
    st.map_or("no status".into(), spill_line)
}

/// Checks `ok` on `lb`'s current status, which is the detail.
fn check_status(step: &str, lb: &Anycastd, ok: impl FnOnce(&Status) -> bool) -> bool {
    let st = lb.status();
    guest::check(step, st.as_ref().is_some_and(ok), &line_of(st.as_ref()))
}

/// The detail of a `wait_status`: how long it took and the status (`what` says
/// since when), or `lb`'s current status when it timed out.
fn waited(w: &Option<(Duration, Status)>, lb: &Anycastd, what: &str) -> String {
    w.as_ref().map_or_else(
        || line_of(lb.status().as_ref()),
        |(d, s)| format!("{d:?} {what}: {}", spill_line(s)),
    )
}

/// The lines of `text` that contain one of `keys`, trimmed and joined by " | ".
fn lines_with(text: &str, keys: &[&str]) -> String {
    text.lines()
        .filter(|l| keys.iter().any(|k| l.contains(k)))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Drives `lb`'s site to `n` long-lived connections from client `ns` (opened while
/// nothing spills, so all served locally) and waits until its status shows spilling
/// to `peer`.
fn overload_until_spill(
    lb: &Anycastd,
    ns: &str,
    n: usize,
    peer: &str,
) -> (Vec<Conn>, Option<(Duration, Status)>) {
    let conns = open_conns(ns, n);
    let spill = lb.wait_status(Duration::from_secs(10), |s| spill_share(s, peer) > 0.0);
    (conns, spill)
}

/// `overload_until_spill` from c31 with 12 connections (IDC1 at 1.2), checked as
/// `step`: IDC1 spills to IDC2.
fn overload_idc1(step: &str, lb1: &Anycastd) -> Vec<Conn> {
    let (conns, spill) = overload_until_spill(lb1, "c31", 12, "idc2");
    guest::check(
        step,
        spill.is_some(),
        &spill.as_ref().map_or("no".into(), |(_, s)| spill_line(s)),
    );
    conns
}

// ---------------------------------------------------------------------------------
// 3. Director crash.

#[test]
fn lab_kernel_director_crash_fails_over_through_bgp() {
    scenario(
        "lab_kernel_director_crash_fails_over_through_bgp",
        "sc-crash",
        &[],
        crash_in_guest,
    );
}

fn crash_in_guest(
    Sites {
        servers: _servers,
        lb1,
        mut lb2,
    }: Sites,
) {
    let before = served("c32");
    guest::check("c32_served_by_idc2", before.starts_with("rs6"), &before);

    // SIGKILL: no GRACEFUL_SHUTDOWN, no withdraw, no Cease. The kernel closes the
    // dead process's BGP socket, so R22 sees the session end (or its hold timer, 9 s,
    // expires if the close were lost) and withdraws LB2's route.
    let t0 = Instant::now();
    lb2.crash();
    let moved = guest::wait_for(Duration::from_secs(20), || {
        served("c32").starts_with("rs5").then(|| t0.elapsed())
    });
    guest::check(
        "crash_moves_c32_to_idc1",
        moved.is_some_and(|d| d < Duration::from_secs(12)),
        &format!("kill to first request from c32 served by IDC1: {moved:?}"),
    );
    let p = wait_path("c32", "3 1 5", Duration::from_secs(5));
    guest::check("crash_path_3_1_5", p.is_ok(), &format!("{p:?}"));
    let r22 = guest::vtysh("r22", "show ip bgp neighbors 10.101.2.2");
    guest::check(
        "r22_session_to_lb2_down",
        !r22.contains("BGP state = Established"),
        &lines_with(&r22, &["Last reset", "BGP state"]),
    );
    // IDC1 sees its peer go stale (no reports) and never spills to it.
    let stale = lb1.wait_status(Duration::from_secs(8), |s| {
        peer_state(s, "idc2") != Some(PeerState::Known)
    });
    guest::check(
        "idc1_sees_idc2_stale",
        stale
            .as_ref()
            .is_some_and(|(_, s)| spill_share(s, "idc2") == 0.0),
        &stale.map_or("still known".into(), |(d, s)| {
            format!("after {d:?}: {}", spill_line(&s))
        }),
    );
    check_served_by(
        "c32_served_by_idc1_after_crash",
        "c32",
        5,
        "rs5",
        String::new,
    );

    // A restarted anycastd takes over the data plane it left and announces again.
    let t1 = Instant::now();
    let lb2 = Anycastd::start("lb2", lb2.config.clone());
    let p = wait_path("c32", "3 2 5", Duration::from_secs(30));
    let back = served("c32");
    guest::check(
        "restart_brings_idc2_back",
        p.is_ok() && back.starts_with("rs6"),
        &format!(
            "{p:?} ({:?} after restart), c32 served by {back}",
            t1.elapsed()
        ),
    );

    // A hung director (SIGSTOP: the process lives, its socket stays open, no
    // keepalives) is the crash whose close never reaches R22: only the hold timer
    // (9 s, keepalive 3 s) ends the session. The kernel keeps serving meanwhile.
    let t2 = Instant::now();
    lb2.signal("STOP");
    let moved = guest::wait_for(Duration::from_secs(20), || {
        served("c32").starts_with("rs5").then(|| t2.elapsed())
    });
    let r22 = guest::vtysh("r22", "show ip bgp neighbors 10.101.2.2");
    guest::check(
        "hang_fails_over_by_hold_timer",
        moved.is_some_and(|d| d >= Duration::from_secs(5) && d < Duration::from_secs(15))
            && r22.contains("Hold Timer Expired"),
        &format!(
            "SIGSTOP to first request from c32 served by IDC1: {moved:?}; {}",
            lines_with(&r22, &["Last reset"])
        ),
    );
    lb2.signal("CONT");
    let p = wait_path("c32", "3 2 5", Duration::from_secs(30));
    guest::check(
        "resumed_director_announces_again",
        p.is_ok(),
        &format!("{p:?} after SIGCONT"),
    );
    println!("lb2 log after restart:\n{}", lb2.log());
}

// ---------------------------------------------------------------------------------
// 4. Spill-over: start, stop when local falls to 1.0, stop when the peer fills.

#[test]
fn lab_kernel_spill_over_starts_and_stops() {
    scenario(
        "lab_kernel_spill_over_starts_and_stops",
        "sc-spill",
        SMALL,
        spill_in_guest,
    );
}

fn spill_in_guest(
    Sites {
        servers: _servers,
        lb1,
        lb2,
    }: Sites,
) {
    let rx0 = tunnel_rx_packets("lb2").unwrap_or(0);

    // IDC1 above 1.1 (12 connections over 10), IDC2 idle: spilling starts.
    let t0 = Instant::now();
    let (mut conns, spill) = overload_until_spill(&lb1, "c31", 12, "idc2");
    let home = count(
        &conns.iter().map(|c| c.server.clone()).collect::<Vec<_>>(),
        "rs5",
    );
    guest::check(
        "idc1_above_1_1",
        conns.len() == 12 && home == 12,
        &format!("{} connections open, {home} on IDC1", conns.len()),
    );
    let Some((took, st)) = spill else {
        guest::check("spill_starts", false, &line_of(lb1.status().as_ref()));
        println!("lb1 log:\n{}", lb1.log());
        return;
    };
    guest::check(
        "spill_starts",
        st.local_load.is_some_and(|l| l > 1.1),
        &format!("{:?} after the 12th connection: {}", took, spill_line(&st)),
    );
    // The ramp: up by at most `step` (0.1) per period toward 1 - 0.95 / 1.2 = 0.208,
    // and the kernel holds what the daemon shows: the spill split's chain on eth1
    // marks share x 1024 of the ISN space (decision 0006).
    let ramped = lb1.wait_status(Duration::from_secs(6), |s| spill_share(s, "idc2") > 0.2);
    let weights = guest::wait_for(Duration::from_secs(3), || {
        let share = lb1.status().map(|s| spill_share(&s, "idc2"))?;
        let units = split_units("lb1", "eth1");
        (units == u32::from(tunnel_forwarder::Split::units(share))).then_some((share, units))
    });
    guest::check(
        "share_ramps_and_kernel_weight_matches",
        ramped.as_ref().is_some_and(|(d, s)| {
            *d >= Duration::from_millis(500) && spill_share(s, "idc2") < 0.21
        }) && weights.is_some(),
        &format!(
            "{}; share and tunnel weight {weights:?}",
            ramped
                .as_ref()
                .map_or("share never above 0.2".into(), |(d, s)| format!(
                    "{d:?} after the first step: {}",
                    spill_line(s)
                ))
        ),
    );

    // New connections from c31 go to IDC2 through the tunnel, the share of them
    // (about 0.21 x 40 = 8.3, sd 2.6), not a burst.
    let a = served_n("c31", 40);
    let rx1 = tunnel_rx_packets("lb2").unwrap_or(0);
    let tunnelled = ipvs_conns_to("lb1", "10.101.2.2");
    guest::check(
        "new_connections_served_by_idc2",
        (2..=17).contains(&count(&a, "rs6")) && count(&a, "error") == 0,
        &format!("{} of 40 on IDC2: {a:?}", count(&a, "rs6")),
    );
    guest::check(
        "through_the_tunnel",
        rx1 > rx0 && tunnelled > 0,
        &format!(
            "lb2 anycast0 RX +{} packets; lb1 IPVS entries to 10.101.2.2: {tunnelled}",
            rx1 - rx0
        ),
    );
    let kept = still_same_server(&mut conns);
    guest::check(
        "old_connections_keep_their_server",
        kept == conns.len(),
        &format!("{kept} of {} answered by the same real server", conns.len()),
    );
    println!(
        "lb1 ipvsadm while spilling:\n{}",
        guest::sh_in("lb1", "ipvsadm -Ln")
    );

    // Lower the demand to 0.9 (<= 1.0): spilling stops; new connections stay home.
    conns.truncate(9);
    let t1 = Instant::now();
    let stopped = lb1.wait_status(Duration::from_secs(5), |s| {
        s.local_load.is_some_and(|l| l <= 1.0) && s.spill.iter().all(|p| p.share == 0.0)
    });
    guest::check(
        "local_at_or_below_1_0_stops_spill",
        stopped.is_some(),
        &waited(&stopped, &lb1, "after closing"),
    );
    check_served_by("served_locally_after_stop", "c31", 5, "rs5", || {
        format!(" ({:?} after closing)", t1.elapsed())
    });

    // Start again, then fill IDC2 above 0.7 from c32: spilling stops.
    conns.extend(open_conns("c31", 3));
    let again = lb1.wait_status(Duration::from_secs(10), |s| spill_share(s, "idc2") > 0.0);
    guest::check(
        "spill_starts_again",
        conns.len() == 12 && again.is_some(),
        &again
            .as_ref()
            .map_or("no".into(), |(d, s)| format!("{d:?}: {}", spill_line(s))),
    );
    let c32 = open_conns("c32", 8);
    let t2 = Instant::now();
    let stopped = lb1.wait_status(Duration::from_secs(8), |s| {
        s.spill.iter().all(|p| p.share == 0.0) && peer_load(s, "idc2").is_some_and(|l| l > 0.7)
    });
    guest::check(
        "peer_above_0_7_stops_spill",
        c32.len() == 8 && c32.iter().all(|c| c.server.starts_with("rs6")) && stopped.is_some(),
        &waited(&stopped, &lb1, "after IDC2 filled"),
    );
    check_served_by("served_locally_when_peer_full", "c31", 5, "rs5", || {
        format!(" ({:?} after IDC2 filled)", t2.elapsed())
    });
    check_status("idc2_never_spills", &lb2, |s| {
        s.spill.iter().all(|p| p.share == 0.0)
    });
    println!("scenario 4 took {:?}", t0.elapsed());
    println!("lb1 log:\n{}", lb1.log());
}

// ---------------------------------------------------------------------------------
// 5. No loop: both sites full, neither spills, nothing is forwarded twice.

#[test]
fn lab_kernel_both_sites_full_no_loop() {
    scenario(
        "lab_kernel_both_sites_full_no_loop",
        "sc-noloop",
        SMALL,
        no_loop_in_guest,
    );
}

fn no_loop_in_guest(
    Sites {
        servers: _servers,
        lb1,
        lb2,
    }: Sites,
) {
    // IDC1 spills to IDC2 first, so that IDC2 holds tunnelled connections when it
    // fills up itself: the case where a loop could start.
    let mut c31 = overload_idc1("idc1_spills", &lb1);
    // Under the split each new connection leaves with the share's probability: let the
    // share ramp, then open connections until 3 went through the tunnel.
    lb1.wait_status(Duration::from_secs(6), |s| spill_share(s, "idc2") > 0.15);
    let (mut via_tunnel, home) = open_until_served_by("c31", "rs6", 3, 30);
    c31.extend(home);
    guest::check(
        "long_lived_connections_through_tunnel",
        !via_tunnel.is_empty(),
        &format!("{} new long-lived connections on IDC2", via_tunnel.len()),
    );

    // IDC2 above 1.1 too (12 connections from c32 plus the tunnelled ones).
    let _c32 = open_conns("c32", 12);
    let calm = |lb: &Anycastd, peer: &'static str| {
        lb.wait_status(Duration::from_secs(10), |s| {
            s.local_load.is_some_and(|l| l > 1.1)
                && s.spill.iter().all(|p| p.share == 0.0)
                && peer_load(s, peer).is_some_and(|l| l > 0.7)
        })
    };
    let s1 = calm(&lb1, "idc2");
    let s2 = calm(&lb2, "idc1");
    guest::check(
        "both_full_neither_spills",
        s1.is_some() && s2.is_some(),
        &format!(
            "{} || {}",
            line_of(lb1.status().as_ref()),
            line_of(lb2.status().as_ref())
        ),
    );

    // A burst of new connections from both sides: all served at home, nothing enters
    // either tunnel, no IPVS entry points back at the other director.
    let (rx1, rx2) = (tunnel_rx_packets("lb1"), tunnel_rx_packets("lb2"));
    let to2 = ipvs_conns_to("lb1", "10.101.2.2");
    let a = served_n("c31", 8);
    let b = served_n("c32", 8);
    let (rx1b, rx2b) = (tunnel_rx_packets("lb1"), tunnel_rx_packets("lb2"));
    guest::check(
        "burst_served_at_home",
        count(&a, "rs5") == a.len() && count(&b, "rs6") == b.len(),
        &format!("c31 {a:?}, c32 {b:?}"),
    );
    guest::check(
        "burst_not_tunnelled",
        rx1.is_some() && rx1 == rx1b && rx2 == rx2b && ipvs_conns_to("lb1", "10.101.2.2") <= to2,
        &format!(
            "anycast0 RX lb1 {rx1:?} -> {rx1b:?}, lb2 {rx2:?} -> {rx2b:?}; lb1 entries to 10.101.2.2 {to2} -> {}",
            ipvs_conns_to("lb1", "10.101.2.2")
        ),
    );
    // The connections spilled before are still served by IDC2, which never sent
    // anything back: LB1's tunnel device received nothing in the whole run, and LB2
    // has no connection towards LB1.
    let kept = still_same_server(&mut via_tunnel);
    let back = ipvs_conns_to("lb2", "10.101.1.2");
    let rx1c = tunnel_rx_packets("lb1");
    guest::check(
        "forwarded_at_most_once",
        kept == via_tunnel.len() && back == 0 && rx1c == Some(0),
        &format!(
            "{kept} of {} tunnelled connections kept rs6xx; lb2 entries to 10.101.1.2: {back}; lb1 anycast0 RX {rx1c:?}",
            via_tunnel.len()
        ),
    );
    let fwm2 = ipvs_fwmark_active("lb2");
    guest::check(
        "tunnelled_connections_held_by_the_loop_guard",
        fwm2 == via_tunnel.len() as u64,
        &format!(
            "lb2 firewall-mark service holds {fwm2} active connections, {} were tunnelled",
            via_tunnel.len()
        ),
    );

    // The direction turns: IDC1's own demand falls to 0.4 (its tunnelled connections
    // stay), IDC2 is still above 1.1, so IDC2 now spills to IDC1 while IDC1's earlier
    // spilled connections still run through the other tunnel. Each connection is
    // tunnelled once, whichever way.
    c31.truncate(4);
    let turned = lb2.wait_status(Duration::from_secs(10), |s| spill_share(s, "idc1") > 0.0);
    guest::check(
        "idc2_spills_to_idc1",
        turned.is_some(),
        &waited(&turned, &lb2, "after IDC1 fell"),
    );
    check_status("idc1_does_not_spill_back", &lb1, |s| {
        s.spill.iter().all(|p| p.share == 0.0)
    });
    lb2.wait_status(Duration::from_secs(6), |s| spill_share(s, "idc1") > 0.15);
    let (mut c32_via, _c32_home) = open_until_served_by("c32", "rs5", 3, 30);
    let kept_old = still_same_server(&mut via_tunnel);
    let kept_new = still_same_server(&mut c32_via);
    let (rx1d, rx2d) = (tunnel_rx_packets("lb1"), tunnel_rx_packets("lb2"));
    let c31_back = ipvs_conns_from_to("lb2", "10.101.3.2", "10.101.1.2");
    let c32_back = ipvs_conns_from_to("lb1", "10.101.3.10", "10.101.2.2");
    let fwm1 = ipvs_fwmark_active("lb1");
    guest::check(
        "both_tunnels_carry_each_connection_once",
        !c32_via.is_empty()
            && kept_old == via_tunnel.len()
            && kept_new == c32_via.len()
            && rx1d.unwrap_or(0) > 0
            && c31_back == 0
            && c32_back == 0
            && fwm1 == c32_via.len() as u64,
        &format!(
            "{} new c32 connections on IDC1 ({kept_new} kept it), {kept_old} of {} old c31 ones kept IDC2; \
             anycast0 RX lb1 {rx1d:?} lb2 {rx2d:?}; c31 entries lb2->lb1 {c31_back}, c32 entries lb1->lb2 {c32_back}; \
             lb1 firewall-mark service active {fwm1}",
            c32_via.len(),
            via_tunnel.len()
        ),
    );
    for cmd in ["ipvsadm -Lnc", "ipvsadm -Ln"] {
        for lb in ["lb1", "lb2"] {
            println!("{lb} {cmd}:\n{}", guest::sh_in(lb, cmd));
        }
    }
}

// ---------------------------------------------------------------------------------
// 6. Partition between the sites during spill.

#[test]
fn lab_kernel_partition_stops_spill_to_stale_peer() {
    scenario(
        "lab_kernel_partition_stops_spill_to_stale_peer",
        "sc-partition",
        SMALL,
        partition_in_guest,
    );
}

/// Drops the load exchange (TCP port 9181) both ways in LB1's namespace; BGP (179)
/// and the tunnel are untouched.
const CUT: &str = "iptables-legacy -I INPUT -p tcp --dport 9181 -j DROP && \
                   iptables-legacy -I OUTPUT -p tcp --dport 9181 -j DROP";
const HEAL: &str = "iptables-legacy -D INPUT -p tcp --dport 9181 -j DROP && \
                    iptables-legacy -D OUTPUT -p tcp --dport 9181 -j DROP";

fn partition_in_guest(
    Sites {
        servers: _servers,
        lb1,
        lb2,
    }: Sites,
) {
    let _conns = overload_idc1("spilling_before_partition", &lb1);

    let out = guest::sh_in("lb1", &format!("{CUT} && echo cut"));
    let t0 = Instant::now();
    guest::check("partition", out.contains("cut"), &out);
    let stale_after = PERIOD * STALE_PERIODS;
    let stopped = lb1.wait_status(Duration::from_secs(10), |s| {
        peer_state(s, "idc2") != Some(PeerState::Known) && spill_share(s, "idc2") == 0.0
    });
    // The last report before the cut is at most one period (+10 % jitter) old; the
    // peer is unknown `stale_after` after it, seen at the next 200 ms tick.
    guest::check(
        "spill_stops_within_stale_periods",
        stopped
            .as_ref()
            .is_some_and(|(d, _)| *d <= stale_after + Duration::from_millis(1500)),
        &waited(
            &stopped,
            &lb1,
            &format!("after the cut (stale after {STALE_PERIODS} x {PERIOD:?})"),
        ),
    );
    guest::check(
        "peer_shown_stale",
        stopped
            .as_ref()
            .is_some_and(|(_, s)| peer_state(s, "idc2") == Some(PeerState::Stale)),
        "",
    );
    let st = lb1.status();
    guest::check(
        "bgp_stays_up",
        st.as_ref().is_some_and(|s| {
            s.sessions
                .iter()
                .all(|b| b.state == SessionState::Established)
        }) && best_path("c31").as_deref() == Some("3 1 5"),
        &format!(
            "sessions {:?}, c31 path {:?}",
            st.map(|s| s.sessions.iter().map(|b| b.state).collect::<Vec<_>>()),
            best_path("c31")
        ),
    );
    check_served_by(
        "served_locally_during_partition",
        "c31",
        5,
        "rs5",
        String::new,
    );
    let st2 = lb2.wait_status(Duration::from_secs(5), |s| {
        peer_state(s, "idc1") != Some(PeerState::Known)
    });
    guest::check(
        "idc2_sees_idc1_stale",
        st2.is_some(),
        &st2.map_or("still known".into(), |(_, s)| spill_line(&s)),
    );
    // Held for a few more periods: the stale peer is never picked again.
    std::thread::sleep(PERIOD * 3);
    check_status("no_spill_while_partitioned", &lb1, |s| {
        spill_share(s, "idc2") == 0.0
    });

    // Healed: reports flow again, IDC1 is still above 1.1, spilling resumes.
    let out = guest::sh_in("lb1", &format!("{HEAL} && echo healed"));
    let t1 = Instant::now();
    let again = lb1.wait_status(Duration::from_secs(10), |s| {
        peer_state(s, "idc2") == Some(PeerState::Known) && spill_share(s, "idc2") > 0.0
    });
    guest::check(
        "heal_resumes_spill",
        out.contains("healed") && again.is_some(),
        &again.map_or("no".into(), |(d, s)| {
            format!("{d:?} after healing: {}", spill_line(&s))
        }),
    );
    println!(
        "scenario 6: {:?} from cut to heal, {:?} since heal",
        t1 - t0,
        t1.elapsed()
    );
}
