//! Issue 18 item 6 in the lab kernel, on the seed's two sites (lab/src/seed.rs): every
//! real server of both sites fails at once (a shared dependency down everywhere).
//! With `[site] all_down = "announce"` (the default, the last-announcer guard) the
//! routers keep a route to the VIP, from one site or both, and the status says why;
//! when the servers come back each site carries the VIP on its own checks again.
//! With `all_down = "withdraw"` both sites withdraw and the routers have no route.
//! Decision 0017.

mod e2e;

use std::time::Duration;

use anycast_lab::Need;
use anycast_lab::uml::{Lab, guest};
use e2e::*;

const SERVERS: [&str; 4] = ["rs511", "rs512", "rs611", "rs612"];
const WITHDRAW: &[(&str, &str)] = &[("[site]\n", "[site]\nall_down = \"withdraw\"\n")];

#[test]
fn lab_kernel_all_sites_down_guard_holds_the_route() {
    if guest::active().is_some() {
        in_guest();
        return;
    }
    run_seed_lab(
        "lab_kernel_all_sites_down_guard_holds_the_route",
        &[Need::Program("/usr/sbin/iptables-legacy")],
        Lab::new("all-down")
            .extra_modules(&["x_tables", "ip_tables", "iptable_filter", "xt_tcpudp"])
            .timeout(Duration::from_secs(320)),
    );
}

/// Both sites started with `edits`, on the paper's paths; false (with a FAIL line)
/// when they did not converge.
fn start(edits: &[(&str, &str)]) -> Option<(Anycastd, Anycastd)> {
    let lb1 = Anycastd::start("lb1", lab_config("idc1", edits));
    let lb2 = Anycastd::start("lb2", lab_config("idc2", edits));
    let c31 = wait_path("c31", "3 1 5", Duration::from_secs(40));
    let c32 = wait_path("c32", "3 2 5", Duration::from_secs(10));
    guest::check(
        "converged",
        c31.is_ok() && c32.is_ok(),
        &format!("c31 {c31:?}, c32 {c32:?}"),
    )
    .then_some((lb1, lb2))
}

/// Whether `lb`'s VIP is announced and held by the guard.
fn held(lb: &Anycastd) -> Option<String> {
    let st = lb.status()?;
    let v = st.vips.first()?;
    v.held.then(|| v.reason.clone())
}

fn in_guest() {
    let mut servers: Vec<RealServer> = SERVERS.into_iter().map(RealServer::start).collect();
    let Some((lb1, lb2)) = start(&[]) else {
        return;
    };
    // Every real server of both sites fails: each site withdraws at once (its peer
    // still reports serving), then holds when the peer's report of null arrives.
    servers.iter_mut().for_each(RealServer::kill);
    let both = guest::wait_for(Duration::from_secs(30), || Some((held(&lb1)?, held(&lb2)?)));
    let ok = both
        .as_ref()
        .is_some_and(|(a, b)| a.starts_with("held: every peer withdrawn") && b.starts_with("held"));
    if !guest::check("both_sites_hold", ok, &format!("{both:?}")) {
        println!("lb1 log:\n{}\nlb2 log:\n{}", lb1.log(), lb2.log());
    }
    for ns in ["c31", "c32"] {
        let p = guest::wait_for(Duration::from_secs(10), || {
            best_path(ns).filter(|p| !p.is_empty())
        });
        guest::check(
            &format!("{ns}_keeps_a_route"),
            p.is_some(),
            &format!("{p:?}"),
        );
    }
    let m = lb1.metrics(&["anycast_vip_held"]);
    guest::check("metric_held", m.contains("} 1"), &m);
    // The servers come back: each site announces on its own checks, the guard lets go.
    servers.iter_mut().for_each(RealServer::restart);
    let c31 = wait_path("c31", "3 1 5", Duration::from_secs(30));
    let c32 = wait_path("c32", "3 2 5", Duration::from_secs(10));
    let released = guest::wait_for(Duration::from_secs(20), || {
        (held(&lb1).is_none() && held(&lb2).is_none()).then_some(())
    });
    guest::check(
        "servers_back_guard_released",
        c31.is_ok() && c32.is_ok() && released.is_some(),
        &format!("c31 {c31:?}, c32 {c32:?}, released {released:?}"),
    );
    drop((lb1, lb2));

    // all_down = "withdraw": both sites withdraw, the routers have no route.
    let Some((lb1, lb2)) = start(WITHDRAW) else {
        return;
    };
    servers.iter_mut().for_each(RealServer::kill);
    let c31 = wait_path("c31", "", Duration::from_secs(20));
    let c32 = wait_path("c32", "", Duration::from_secs(10));
    guest::check(
        "withdraw_everywhere_no_route",
        c31.is_ok() && c32.is_ok() && held(&lb1).is_none() && held(&lb2).is_none(),
        &format!("c31 {c31:?}, c32 {c32:?}"),
    );
    drop((lb1, lb2));
    servers.iter_mut().for_each(RealServer::restart);
    per_vip();
}

/// Listens on port 81 in `ns` and holds every connection (the health checks' held
/// one too, so a kill is seen at once), until killed.
const LISTEN_81: &str = "import socket\ns=socket.socket()\n\
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',81))\ns.listen(64)\n\
held=[]\nwhile True:\n    held.append(s.accept()[0])\n";

/// A second VIP, `web2` on port 81 of the same real servers: its listeners die on
/// every server of both sites (a dependency of that service down everywhere) while
/// `web` serves. Each site still reports a load, so only the reports' `vips_down` tells
/// the other that `web2` is down there too: both sites hold `web2` announced.
fn per_vip() {
    let mut listeners: Vec<std::process::Child> = SERVERS
        .iter()
        .map(|ns| {
            std::process::Command::new("ip")
                .args(["netns", "exec", ns, "python3", "-c", LISTEN_81])
                .stdin(std::process::Stdio::null())
                .spawn()
                .expect("port 81 listener")
        })
        .collect();
    let web2 = |servers: [&str; 2], method: &str| {
        let mut b = String::from(
            "[[vip]]\nname = \"web2\"\nprefix = \"10.101.9.0/24\"\naddress = \"10.101.9.1\"\n\
             min_up = 1\nhold_down = \"10s\"\n\n[[vip.service]]\nprotocol = \"tcp\"\nport = 81\n\
             scheduler = \"wlc\"\n",
        );
        for rs in servers {
            b += &format!(
                "\n[[vip.service.real_server]]\naddress = \"{rs}\"\nmethod = \"{method}\"\ncapacity = 100\n"
            );
        }
        b + "\n[[vip]]\nname = \"web\""
    };
    const ANCHOR: &str = "[[vip]]\nname = \"web\"";
    let idc1 = web2(["10.101.5.11", "10.101.5.12"], "dr");
    let idc2 = web2(["10.101.6.11", "10.101.6.12"], "tun");
    let lb1 = Anycastd::start("lb1", lab_config("idc1", &[(ANCHOR, &idc1)]));
    let lb2 = Anycastd::start("lb2", lab_config("idc2", &[(ANCHOR, &idc2)]));
    let c31 = wait_path("c31", "3 1 5", Duration::from_secs(40));
    let c32 = wait_path("c32", "3 2 5", Duration::from_secs(10));
    if !guest::check(
        "per_vip_web_serves",
        c31.is_ok() && c32.is_ok(),
        &format!("c31 {c31:?}, c32 {c32:?}"),
    ) {
        return;
    }
    let web2_up = guest::wait_for(Duration::from_secs(30), || {
        let p1 = best_path_to("c31", "10.101.9.0/24")?;
        let p2 = best_path_to("c32", "10.101.9.0/24")?;
        (p1 == "3 1 5" && p2 == "3 2 5").then_some(())
    });
    if !guest::check("per_vip_web2_announced", web2_up.is_some(), "") {
        return;
    }
    for l in &mut listeners {
        let _ = l.kill();
        let _ = l.wait();
    }
    let web2_held = |lb: &Anycastd| {
        let st = lb.status()?;
        let v = st.vips.iter().find(|v| v.name == "web2")?;
        v.held.then(|| v.reason.clone())
    };
    let both = guest::wait_for(Duration::from_secs(30), || {
        Some((web2_held(&lb1)?, web2_held(&lb2)?))
    });
    if !guest::check(
        "per_vip_both_hold_web2",
        both.is_some(),
        &format!("{both:?}"),
    ) {
        println!("lb1 log:\n{}\nlb2 log:\n{}", lb1.log(), lb2.log());
    }
    let peer_says = lb1
        .status()
        .and_then(|st| st.peers.into_iter().find(|p| p.name == "idc2"))
        .map(|p| p.vips_down);
    guest::check(
        "per_vip_lb1_sees_idc2_web2_down",
        peer_says.as_deref() == Some(&["10.101.9.1".to_string()][..]),
        &format!("{peer_says:?}"),
    );
    for ns in ["c31", "c32"] {
        let p = guest::wait_for(Duration::from_secs(10), || {
            best_path_to(ns, "10.101.9.0/24").filter(|p| !p.is_empty())
        });
        guest::check(
            &format!("per_vip_{ns}_has_a_route_to_web2"),
            p.is_some(),
            &format!("{p:?}"),
        );
    }
    // `web` was never touched: still each site's own.
    let c31 = wait_path("c31", "3 1 5", Duration::from_secs(5));
    guest::check("per_vip_web_unchanged", c31.is_ok(), &format!("{c31:?}"));
}
