//! Issue 13 in the lab kernel, in the paper's topology (lab/src/seed.rs): IDC1's real
//! servers are reached by VS/DR, IDC2's by VS/TUN, each set up by
//! `anycastd::real_server::setup` (through `seed::server_setup`).
//!
//! - `lab_kernel_forwarding_methods_serve_and_take_spills`: DR and TUN each serve many
//!   requests with the replies bypassing IPVS; a mixed service (one DR, one TUN, one
//!   NAT server: a third server is plugged into IDC1's LAN at run time) serves from
//!   all three; connections IDC2 spills to that mixed site are served by each method.
//! - `lab_kernel_server_failure_schedulers_persistence`: one real server dies
//!   silently while its partner serves (new connections only to the partner, the VIP
//!   stays announced, the dead server's connections are reset, not left hanging; back
//!   after rise); every scheduler the config accepts is programmed and serves; `sh`
//!   and `mh` keep a client on one server; persistence keeps it for its timeout and
//!   lets it move after.

mod e2e;

use std::time::{Duration, Instant};

use anycast_lab::Need;
use anycast_lab::real_server::Forwarding;
use anycast_lab::seed;
use anycast_lab::uml::{Lab, guest};
use anycastd::status::{PeerState, ServerState, Status, VipState};
use e2e::*;

/// Boots the seed lab re-executing `test` (the host side).
fn boot(test: &str, lab: &str, timeout: Duration) {
    run_seed_lab(
        test,
        &[Need::Program("/usr/sbin/ipvsadm")],
        Lab::new(lab)
            .extra_modules(&[
                "ip_vs_lblc",
                "ip_vs_lblcr",
                "ip_vs_dh",
                "ip_vs_sed",
                "ip_vs_nq",
                "ip_vs_fo",
                "ip_vs_ovf",
                "ip_vs_mh",
            ])
            .timeout(timeout),
    );
}

/// Both sites started (each with its own edits) and converged: the paper's paths,
/// each site knows the other with a finite load, every real server up.
fn start(
    idc1: &[(&str, &str)],
    idc2: &[(&str, &str)],
) -> Option<(Vec<RealServer>, Anycastd, Anycastd)> {
    let servers: Vec<RealServer> = ["rs511", "rs512", "rs611", "rs612"]
        .into_iter()
        .map(RealServer::start)
        .collect();
    let lb1 = Anycastd::start("lb1", lab_config("idc1", idc1));
    let lb2 = Anycastd::start("lb2", lab_config("idc2", idc2));
    let c31 = wait_path("c31", "3 1 5", Duration::from_secs(40));
    let c32 = wait_path("c32", "3 2 5", Duration::from_secs(10));
    let known = |lb: &Anycastd, peer: &'static str| {
        lb.wait_status(Duration::from_secs(10), |s| {
            peer_state(s, peer) == Some(PeerState::Known)
                && peer_load(s, peer).is_some()
                && s.vips.iter().all(|v| v.servers_up == 2)
        })
        .is_some()
    };
    let ok = c31.is_ok() && c32.is_ok() && known(&lb1, "idc2") && known(&lb2, "idc1");
    if !guest::check("converged", ok, &format!("c31 {c31:?}, c32 {c32:?}")) {
        println!("lb1 log:\n{}\nlb2 log:\n{}", lb1.log(), lb2.log());
        return None;
    }
    Some((servers, lb1, lb2))
}

/// The forwarding column (`Route`, `Tunnel`, `Masq`) of destination `dest` in the
/// VIP's address service of `ns`'s IPVS.
fn ipvs_forward(ns: &str, dest: &str) -> Option<String> {
    let out = guest::sh_in(ns, "ipvsadm -Ln -t 10.101.4.1:80");
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&"->")
            && f.get(1).and_then(|a| a.rsplit_once(':')).map(|x| x.0) == Some(dest))
        .then(|| f.get(2).map(|s| s.to_string()))
        .flatten()
    })
}

/// "LOCAL PEER" of the established TCP sockets on port 80 in real server `ns` whose
/// peer is a client (10.101.3.0/24; the director's health checks left out).
fn client_sockets(ns: &str) -> Vec<String> {
    guest::sh_in(ns, "ss -Htn state established '( sport = :80 )'")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, peer) = (f.get(f.len().checked_sub(2)?)?, f.last()?);
            peer.starts_with("10.101.3.")
                .then(|| format!("{local} {peer}"))
        })
        .collect()
}

fn count(answers: &[String], who: &str) -> usize {
    answers.iter().filter(|a| *a == who).count()
}

/// `n` new connections from `ns`: checks that each was answered by one of `servers`
/// and every one of them answered at least once.
fn check_serves(step: &str, ns: &str, n: usize, servers: &[&str]) -> Vec<String> {
    let a = served_n(ns, n);
    let each: Vec<String> = servers
        .iter()
        .map(|s| format!("{s} {}", count(&a, s)))
        .collect();
    let ok =
        a.iter().all(|x| servers.contains(&x.as_str())) && servers.iter().all(|s| count(&a, s) > 0);
    let errors: Vec<&String> = a
        .iter()
        .filter(|x| !servers.contains(&x.as_str()))
        .collect();
    guest::check(
        step,
        ok,
        &format!("{n} connections: {}; others {errors:?}", each.join(", ")),
    );
    a
}

// ---------------------------------------------------------------------------------
// DR, TUN, a mixed service, spills into each method.

#[test]
fn lab_kernel_forwarding_methods_serve_and_take_spills() {
    const NAME: &str = "lab_kernel_forwarding_methods_serve_and_take_spills";
    if guest::active().is_some() {
        return methods_in_guest();
    }
    boot(NAME, "rs-methods", Duration::from_secs(220));
}

/// Plugs a third real server `rs513` (10.101.5.13) into IDC1's LAN, set up for
/// `method` by the seed's own list.
fn add_rs513(method: Forwarding) -> Vec<String> {
    let mut log = Vec::new();
    for c in [
        "ip netns add rs513",
        "ip link add name eth4 netns lb1 type veth peer name eth1 netns rs513",
        "ip -n lb1 link set dev eth4 master br0",
        "ip -n lb1 link set dev eth4 up",
        "ip -n rs513 link set dev lo up",
        "ip -n rs513 addr add 10.101.5.13/24 dev eth1",
        "ip -n rs513 link set dev eth1 up",
    ] {
        let o = guest::sh(c);
        if !o.status.success() {
            log.push(format!("{c}: {}", String::from_utf8_lossy(&o.stderr)));
        }
    }
    // A NAT server's gateway is the director; DR and TUN answer through the LAN's, R11.
    let gw = match method {
        Forwarding::Nat => seed::IDC1_DIRECTOR,
        _ => seed::IDC1_GATEWAY,
    };
    for c in seed::server_setup(method, gw) {
        let o = guest::sh(&format!(
            "ip netns exec rs513 sh -c {}",
            anycast_lab::uml::shell_quote(&c)
        ));
        if !o.status.success() {
            log.push(format!("{c}: {}", String::from_utf8_lossy(&o.stderr)));
        }
    }
    log
}

fn methods_in_guest() {
    // IDC2 small (5 connections per server) so that a dozen connections make it
    // spill; IDC1 keeps 100 per server and takes what IDC2 sends.
    let Some((mut servers, lb1, lb2)) = start(&[], &[("capacity = 100", "capacity = 5")]) else {
        return;
    };

    // 1. DR at IDC1, TUN at IDC2: many requests each.
    check_serves("dr_serves_c31", "c31", 40, &["rs511", "rs512"]);
    check_serves("tun_serves_c32", "c32", 40, &["rs611", "rs612"]);
    let fwd = [
        ipvs_forward("lb1", "10.101.5.11"),
        ipvs_forward("lb1", "10.101.5.12"),
        ipvs_forward("lb2", "10.101.6.11"),
        ipvs_forward("lb2", "10.101.6.12"),
    ];
    guest::check(
        "methods_programmed",
        fwd[..2].iter().all(|f| f.as_deref() == Some("Route"))
            && fwd[2..].iter().all(|f| f.as_deref() == Some("Tunnel")),
        &format!("{fwd:?}"),
    );
    // Nothing rewrote the addresses: each server's socket is VIP <-> client, so it
    // answers the client itself with the VIP as source.
    let held1 = open_conns("c31", 4);
    let held2 = open_conns("c32", 4);
    let sockets: Vec<(String, Vec<String>)> = ["rs511", "rs512", "rs611", "rs612"]
        .iter()
        .map(|ns| (ns.to_string(), client_sockets(ns)))
        .collect();
    guest::check(
        "servers_answer_the_client_as_the_vip",
        sockets.iter().all(|(_, v)| {
            !v.is_empty() && v.iter().all(|l| l.starts_with("10.101.4.1:80 10.101.3."))
        }),
        &format!("{sockets:?}"),
    );
    drop(held1);
    drop(held2);

    // 2. A mixed service at IDC1: rs511 DR, rs512 TUN (tunl0 set up as the seed's
    // list says), rs513 NAT.
    let mut problems = add_rs513(Forwarding::Nat);
    for c in seed::server_setup(Forwarding::Tun, seed::IDC1_GATEWAY) {
        let o = guest::sh(&format!(
            "ip netns exec rs512 sh -c {}",
            anycast_lab::uml::shell_quote(&c)
        ));
        if !o.status.success() {
            problems.push(format!("rs512 {c}: {}", String::from_utf8_lossy(&o.stderr)));
        }
    }
    guest::check(
        "rs513_and_rs512_set_up",
        problems.is_empty(),
        &problems.join("; "),
    );
    servers.push(RealServer::start("rs513"));
    let text = std::fs::read_to_string(&lb1.config).unwrap_or_default();
    let mixed = text.replace(
        "address = \"10.101.5.12\"\nmethod = \"dr\"",
        "address = \"10.101.5.12\"\nmethod = \"tun\"",
    ) + "\n[[vip.service.real_server]]\naddress = \"10.101.5.13\"\nmethod = \"nat\"\ncapacity = 100\n";
    let _ = std::fs::write(&lb1.config, &mixed);
    lb1.signal("HUP");
    let three = lb1.wait_status(Duration::from_secs(10), |s| {
        s.vips.iter().all(|v| v.servers_up == 3)
    });
    guest::check(
        "mixed_service_up",
        three.is_some() && mixed.contains("method = \"tun\""),
        &lines_of(&guest::sh_in("lb1", "ipvsadm -Ln -t 10.101.4.1:80")),
    );
    let fwd = [
        ipvs_forward("lb1", "10.101.5.11"),
        ipvs_forward("lb1", "10.101.5.12"),
        ipvs_forward("lb1", "10.101.5.13"),
    ];
    guest::check(
        "mixed_methods_programmed",
        fwd == [
            Some("Route".into()),
            Some("Tunnel".into()),
            Some("Masq".into()),
        ],
        &format!("{fwd:?}"),
    );
    check_serves(
        "mixed_serves_from_all_three",
        "c31",
        60,
        &["rs511", "rs512", "rs513"],
    );
    // NAT is the one that rewrites: rs513's socket is its own address <-> client.
    let held = open_conns("c31", 6);
    let nat = client_sockets("rs513");
    guest::check(
        "nat_server_sees_its_own_address",
        !nat.is_empty()
            && nat
                .iter()
                .all(|l| l.starts_with("10.101.5.13:80 10.101.3.2:")),
        &format!("{nat:?}"),
    );
    drop(held);

    // 3. IDC2 overloaded (12 connections, 1.2): it spills to IDC1, whose loop guard
    // hands each spilled connection to a DR, a TUN or a NAT server.
    let held = open_conns("c32", 12);
    let spill = lb2.wait_status(Duration::from_secs(10), |s| spill_share(s, "idc1") > 0.0);
    guest::check(
        "idc2_spills_to_idc1",
        held.len() == 12 && spill.is_some(),
        &format!(
            "{} held; {}",
            held.len(),
            lb2.status().map_or("no status".into(), |s| spill_line(&s))
        ),
    );
    // New connections only once the share has ramped (0.1 a period): opened at the
    // first step's 2-3 %, 120 of them once found only one spilled on a busy machine.
    lb2.wait_status(Duration::from_secs(6), |s| spill_share(s, "idc1") > 0.15);
    let mut spilled: Vec<Conn> = Vec::new();
    let mut local = Vec::new();
    for _ in 0..120 {
        let have = |who: &str| spilled.iter().any(|c| c.server == who);
        if have("rs511") && have("rs512") && have("rs513") {
            break;
        }
        for c in open_conns("c32", 1) {
            if c.server.starts_with("rs51") {
                spilled.push(c);
            } else {
                local.push(c);
            }
        }
    }
    let by: Vec<String> = ["rs511", "rs512", "rs513"]
        .iter()
        .map(|s| format!("{s} {}", spilled.iter().filter(|c| c.server == *s).count()))
        .collect();
    let asked = spilled.len();
    let same = still_same_server(&mut spilled);
    let guard = ipvs_fwmark_active("lb1");
    guest::check(
        "spilled_connections_served_by_each_method",
        by.iter().all(|b| !b.ends_with(" 0")) && same == asked && guard as usize >= asked,
        &format!(
            "{asked} spilled ({}), {} kept at IDC2; {same} answered again by the same server; lb1 loop-guard service holds {guard} active",
            by.join(", "),
            local.len()
        ),
    );
    drop(held);
    drop(local);
    println!("lb1 ipvsadm:\n{}", guest::sh_in("lb1", "ipvsadm -Ln"));
}

/// `s` without ANSI colour sequences (the daemon's text log has them).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

fn lines_of(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join(" | ")
}

// ---------------------------------------------------------------------------------
// A real server dies while its partner serves; schedulers; persistence.

#[test]
fn lab_kernel_server_failure_schedulers_persistence() {
    const NAME: &str = "lab_kernel_server_failure_schedulers_persistence";
    if guest::active().is_some() {
        return failure_in_guest();
    }
    boot(NAME, "rs-failure", Duration::from_secs(240));
}

/// The state of real server `addr` in a status document.
fn server_state(st: &Status, addr: &str) -> Option<ServerState> {
    st.real_servers
        .iter()
        .find(|s| s.address == addr)
        .map(|s| s.state)
}

/// One connection from `ns` that asks once and closes with a reset (SO_LINGER 0), so
/// that its IPVS entry is in CLOSE (10 s) rather than TIME_WAIT (2 min): the
/// persistence template it holds can then expire within a test.
fn ask_reset(ns: &str) -> String {
    const PY: &str = "import socket,struct\n\
c=socket.create_connection(('10.101.4.1',80),timeout=2)\n\
c.sendall(b'who\\n');print(c.makefile().readline().strip(),flush=True)\n\
c.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,struct.pack('ii',1,0));c.close()";
    let out = guest::sh(&format!(
        "ip netns exec {ns} python3 -c {}",
        anycast_lab::uml::shell_quote(PY)
    ));
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if s.is_empty() { "error".into() } else { s }
}

/// Persistence templates of client `src` (`ipvsadm -Lnc` entries from `src:0`; the
/// lab kernel shows their state as ASSURED).
fn templates_from(ns: &str, src: &str) -> usize {
    let want = format!("{src}:0");
    guest::sh_in(ns, "ipvsadm -Lnc")
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some(want.as_str()))
        .count()
}

fn failure_in_guest() {
    let Some((_servers, lb1, _lb2)) = start(&[], &[]) else {
        return;
    };

    // 1. Long-lived connections on both of IDC1's servers, then rs511 dies silently:
    // its link goes down, nothing answers, nothing is reset. Checks time out (fall 3
    // x 200 ms).
    let mut conns = open_conns("c31", 8);
    let on = |conns: &[Conn], who: &str| conns.iter().filter(|c| c.server == who).count();
    guest::check(
        "connections_on_both",
        on(&conns, "rs511") > 0 && on(&conns, "rs512") > 0,
        &format!(
            "rs511 {}, rs512 {}",
            on(&conns, "rs511"),
            on(&conns, "rs512")
        ),
    );
    let t0 = Instant::now();
    guest::sh_in("rs511", "ip link set dev eth1 down");
    let down = lb1.wait_status(Duration::from_secs(5), |s| {
        server_state(s, "10.101.5.11") == Some(ServerState::Down)
    });
    let detect = down.as_ref().map(|(d, _)| *d);
    guest::check(
        "failure_detected",
        // About 0.8 s (an echo round's two windows); the bound leaves room for a
        // loaded guest (2 s failed once under load).
        detect.is_some_and(|d| d < Duration::from_secs(4)),
        &format!("rs511 down in the status {detect:?} after the cut"),
    );
    let a = served_n("c31", 20);
    guest::check(
        "new_connections_only_to_the_partner",
        count(&a, "rs512") == a.len(),
        &format!("{:?} after the cut: {a:?}", t0.elapsed()),
    );
    let path = best_path("c31");
    let st = lb1.status();
    guest::check(
        "vip_stays_announced",
        path.as_deref() == Some("3 1 5")
            && st
                .as_ref()
                .is_some_and(|s| s.vips.iter().all(|v| v.state == VipState::Announced)),
        &format!(
            "c31 path {path:?}; VIP states {:?}",
            st.map(|s| s.vips.iter().map(|v| v.state).collect::<Vec<_>>())
        ),
    );
    // The dead server's destination is gone and its connections with it: the next
    // packet of each is answered by a reset, not retransmitted into the void.
    std::thread::sleep(Duration::from_millis(300));
    let entries = ipvs_conns_to("lb1", "10.101.5.11");
    let mut outcomes = Vec::new();
    for c in conns.iter_mut() {
        let t = Instant::now();
        let r = c.client.ask();
        outcomes.push((c.server.clone(), r.map_err(|e| e.kind()), t.elapsed()));
    }
    let dead_reset = outcomes
        .iter()
        .filter(|(s, _, _)| s == "rs511")
        .all(|(_, r, t)| {
            matches!(r, Err(std::io::ErrorKind::ConnectionReset)) && *t < Duration::from_secs(1)
        });
    let partner_fine = outcomes
        .iter()
        .filter(|(s, _, _)| s == "rs512")
        .all(|(s, r, _)| r.as_ref().ok() == Some(s));
    guest::check(
        "dead_servers_connections_reset_not_hanging",
        entries == 0 && dead_reset && partner_fine,
        &format!("{entries} IPVS entries left to rs511; {outcomes:?}"),
    );
    guest::check(
        "dead_server_out_of_ipvs",
        ipvs_forward("lb1", "10.101.5.11").is_none(),
        &lines_of(&guest::sh_in("lb1", "ipvsadm -Ln")),
    );
    drop(conns);

    // Back: rise 2 checks, then in IPVS again and taking new connections.
    let t1 = Instant::now();
    guest::sh_in("rs511", "ip link set dev eth1 up");
    guest::sh_in(
        "rs511",
        &format!("ip route replace default via {}", seed::IDC1_GATEWAY),
    );
    let up = lb1.wait_status(Duration::from_secs(10), |s| {
        server_state(s, "10.101.5.11") == Some(ServerState::Up)
    });
    let back = guest::wait_for(Duration::from_secs(5), || {
        (served("c31") == "rs511").then(|| t1.elapsed())
    });
    // Rise, not a single check: the log's reason for the recovery.
    let rises = strip_ansi(&lb1.log())
        .lines()
        .filter(|l| {
            l.contains("anycastd::site")
                && l.contains(
                    "10.101.5.11:80 from=down to=up reason=2 consecutive successful checks",
                )
        })
        .count();
    guest::check(
        "recovery_after_rise",
        up.is_some() && back.is_some() && rises >= 2,
        &format!(
            "up in the status {:?} after the link came back ({rises} rises of 2 checks logged, the start's and this one); first new connection on rs511 {back:?}",
            up.map(|(d, _)| d)
        ),
    );

    // 2. Every scheduler the config accepts, by reload: programmed and serving.
    let base = std::fs::read_to_string(&lb1.config).unwrap_or_default();
    let mut current = "wlc".to_string();
    for sched in [
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
    ] {
        let text = base.replace("scheduler = \"wlc\"", &format!("scheduler = \"{sched}\""));
        let _ = std::fs::write(&lb1.config, &text);
        lb1.signal("HUP");
        let programmed = guest::wait_for(Duration::from_secs(5), || {
            guest::sh_in("lb1", "ipvsadm -Ln -t 10.101.4.1:80")
                .lines()
                .any(|l| l.starts_with("TCP") && l.split_whitespace().nth(2) == Some(sched))
                .then_some(())
        });
        let a = served_n("c31", 10);
        let served_all = a.iter().all(|x| x.starts_with("rs51"));
        let sticky = matches!(sched, "sh" | "mh");
        let one = a.iter().all(|x| Some(x) == a.first());
        guest::check(
            &format!("scheduler_{sched}_serves"),
            programmed.is_some() && served_all && (!sticky || one),
            &format!(
                "{} (from {current}); 10 connections: rs511 {}, rs512 {}{}{}",
                if programmed.is_some() {
                    "programmed"
                } else {
                    "NOT programmed"
                },
                count(&a, "rs511"),
                count(&a, "rs512"),
                if sticky {
                    ": one client, one server"
                } else {
                    ""
                },
                if served_all {
                    String::new()
                } else {
                    format!("; {a:?}; {}", lines_of(&guest::sh_in("lb1", "ipvsadm -Ln")))
                }
            ),
        );
        current = sched.to_string();
    }

    // 3. Persistence: rr with a 12 s timeout (longer than the 10 s a reset
    // connection's entry stays in CLOSE: a template that still controls entries when
    // it times out is kept 60 s more). One client stays on one server while its
    // template lives, also across a pause with no connection, and moves once it is
    // gone (rr's next server).
    let text = base.replace(
        "scheduler = \"wlc\"",
        "scheduler = \"rr\"\npersistence = \"12s\"",
    );
    let _ = std::fs::write(&lb1.config, &text);
    lb1.signal("HUP");
    let persistent = guest::wait_for(Duration::from_secs(5), || {
        guest::sh_in("lb1", "ipvsadm -Ln -t 10.101.4.1:80")
            .contains("persistent 12")
            .then_some(())
    });
    let first: Vec<String> = (0..8).map(|_| ask_reset("c31")).collect();
    std::thread::sleep(Duration::from_secs(5));
    let later = ask_reset("c31");
    let t2 = Instant::now();
    let stays = first.iter().all(|x| x == &first[0]) && first[0].starts_with("rs51");
    guest::check(
        "persistence_keeps_the_client",
        persistent.is_some() && stays && later == first[0],
        &format!("{first:?}; 5 s after the last one ended: {later}"),
    );
    let expired = guest::wait_for(Duration::from_secs(40), || {
        (templates_from("lb1", "10.101.3.2") == 0).then(|| t2.elapsed())
    });
    let next = ask_reset("c31");
    guest::check(
        "persistence_lets_it_move_after",
        expired.is_some() && next != first[0] && next.starts_with("rs51"),
        &format!(
            "template gone {expired:?} after the last connection (timeout 12 s); then served by {next} (was {})",
            first[0]
        ),
    );
}
