//! anycastd end to end in the lab kernel, in the paper's topology (Figure 2.6):
//! FRR routers R11 (AS1), R22 (AS2), R31 and R32 (AS3), client networks behind R31
//! and R32, and two sites of AS5, each a director running anycastd over two real
//! servers. Announce; withdraw when every real server dies; announce again after
//! recovery; drain and undrain through anycastctl; SIGHUP with a bad file; SIGTERM.

mod e2e;

use std::time::{Duration, Instant};

use anycast_lab::uml::{Lab, guest};
use e2e::*;

#[test]
fn lab_kernel_two_sites_announce_fail_drain_reload_stop() {
    if guest::active().is_some() {
        return in_guest();
    }
    run_seed_lab(
        "lab_kernel_two_sites_announce_fail_drain_reload_stop",
        &[],
        Lab::new("e2e-two-sites").timeout(Duration::from_secs(200)),
    );
}

fn in_guest() {
    let mut servers: Vec<RealServer> = ["rs511", "rs512", "rs611", "rs612"]
        .into_iter()
        .map(RealServer::start)
        .collect();
    // A 6 s shutdown_wait (the lab's 2 s left a loaded guest too little time to see
    // GRACEFUL_SHUTDOWN at R11 before the withdraw).
    let wait = ("shutdown_wait = \"2s\"", "shutdown_wait = \"6s\"");
    let mut lb1 = Anycastd::start("lb1", lab_config("idc1", &[wait]));
    let mut lb2 = Anycastd::start("lb2", lab_config("idc2", &[]));

    // 1. Convergence: the paper's paths, each client served by its nearest site.
    let c31 = wait_path("c31", "3 1 5", Duration::from_secs(40));
    let c32 = wait_path("c32", "3 2 5", Duration::from_secs(10));
    let converged = guest::check(
        "converged",
        c31.is_ok() && c32.is_ok(),
        &format!("c31 {c31:?}, c32 {c32:?}"),
    );
    if !converged {
        for ns in ["r11", "r31", "c31"] {
            println!(
                "== {ns}\n{}\n{}",
                guest::vtysh(ns, "show ip bgp summary"),
                guest::vtysh(ns, "show ip bgp")
            );
        }
        println!("{}", guest::vtysh("c31", "show ip bgp 10.101.4.0/24 json"));
        println!("lb1 log:\n{}\nlb2 log:\n{}", lb1.log(), lb2.log());
        return;
    }
    let a = served("c31");
    let b = served("c32");
    guest::check(
        "nearest_site_serves",
        a.starts_with("rs5") && b.starts_with("rs6"),
        &format!("c31 -> {a}, c32 -> {b}"),
    );
    let (code, st) = lb1.ctl("status");
    guest::check(
        "status_shows_announced_and_established",
        code == 0 && st.contains("announced") && st.contains("Established") && st.contains("idc2"),
        &st,
    );
    println!("anycastctl status on lb1:\n{st}");

    // 2. Site failure: every real server of IDC2 dies; LB2 withdraws; R32's clients go
    // to IDC1.
    let t0 = Instant::now();
    servers[2].kill();
    servers[3].kill();
    let moved = guest::wait_for(Duration::from_secs(15), || {
        served("c32").starts_with("rs5").then(|| t0.elapsed())
    });
    guest::check(
        "failure_moves_clients_to_idc1",
        moved.is_some(),
        &format!("first request served by IDC1 after {moved:?}"),
    );
    let p = wait_path("c32", "3 1 5", Duration::from_secs(5));
    guest::check("failure_path_3_1_5", p.is_ok(), &format!("{p:?}"));
    let (_, st) = lb2.ctl("status");
    guest::check("status_shows_withdrawn", st.contains("WITHDRAWN"), &st);

    // Recovery brings the old path back (rise 2 x 2 s, hold-down 2 s).
    servers[2].restart();
    servers[3].restart();
    let p = wait_path("c32", "3 2 5", Duration::from_secs(20));
    guest::check("recovery_path_3_2_5", p.is_ok(), &format!("{p:?}"));

    // 3. Drain IDC1 through anycastctl: R11 sees GRACEFUL_SHUTDOWN, then the withdraw;
    // clients behind R31 are served throughout.
    let (code, out) = lb1.ctl("drain web");
    guest::check(
        "drain_accepted",
        code == 0 && out.contains("draining web"),
        &out,
    );
    // Within lb1's 6 s shutdown_wait (the withdraw follows it).
    let gshut = guest::wait_for(Duration::from_secs(5), || {
        let r = guest::vtysh("r11", "show ip bgp 10.101.4.0/24");
        (r.contains("graceful-shutdown") || r.contains("65535:0")).then_some(r)
    });
    guest::check(
        "r11_sees_graceful_shutdown",
        gshut.is_some(),
        &format!("{gshut:?}"),
    );
    let mut failures = 0;
    let drain_end = Instant::now() + Duration::from_secs(5);
    let mut last = String::new();
    while Instant::now() < drain_end {
        last = served("c31");
        if last.starts_with("error") {
            failures += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    guest::check(
        "no_request_fails_during_drain",
        failures == 0,
        &format!("{failures} failures, last answer {last}"),
    );
    let p = wait_path("c31", "3 2 5", Duration::from_secs(10));
    guest::check(
        "drained_site_withdrawn",
        p.is_ok() && last.starts_with("rs6"),
        &format!("{p:?}, served by {last}"),
    );
    let (code, out) = lb1.ctl("undrain");
    guest::check("undrain_accepted", code == 0, &out);
    let p = wait_path("c31", "3 1 5", Duration::from_secs(10));
    guest::check("undrain_announces_again", p.is_ok(), &format!("{p:?}"));
    let (code, out) = lb1.ctl("drain nosuchvip");
    guest::check(
        "drain_unknown_vip_exit_1",
        code == 1 && out.contains("no VIP named `nosuchvip`"),
        &out,
    );

    // 4. SIGHUP with a bad file: refused, the running config stays in force.
    std::fs::write(&lb2.config, "[site]\nname = \"idc2\"\nbogus = 1\n").unwrap();
    lb2.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    let (code, st) = lb2.ctl("status");
    let log = lb2.log();
    guest::check(
        "bad_reload_refused",
        lb2.running() && code == 0 && st.contains("announced") && log.contains("reload refused"),
        &format!(
            "running {}, status {code}, log has refusal {}",
            lb2.running(),
            log.contains("reload refused")
        ),
    );

    // 5. SIGTERM: graceful stop; the route goes, the data plane stays.
    lb1.signal("TERM");
    let code = lb1.wait_exit(Duration::from_secs(20));
    guest::check("sigterm_exits_0", code == Some(0), &format!("{code:?}"));
    let p = wait_path("c31", "3 2 5", Duration::from_secs(5));
    guest::check("sigterm_withdraws", p.is_ok(), &format!("{p:?}"));
    let ipvs = guest::sh_in("lb1", "ipvsadm -Ln");
    guest::check(
        "data_plane_stays_after_stop",
        ipvs.contains("10.101.4.1:80"),
        &ipvs,
    );
    let cease = guest::vtysh("r11", "show ip bgp neighbors 10.101.1.2");
    guest::check(
        "cease_admin_shutdown_seen",
        cease.contains("Administrative Shutdown") || cease.contains("Cease"),
        &cease
            .lines()
            .filter(|l| l.contains("otification") || l.contains("Last reset"))
            .collect::<Vec<_>>()
            .join(" | "),
    );
    println!("lb1 log:\n{}", lb1.log());
}
