//! Issue 19 for both families in one boot of the seed topology with its IPv6 plane
//! (every link a veth at MTU 1500; IDC1 by DR with rs511 by NAT, IDC2 by TUN, both
//! dual-stack). While IDC1 spills to IDC2, with ICMP dropped in the clients' own
//! networks: 1 MiB up and 1 MiB down on spilled and on local connections, IPv4 (lb1
//! fragments, lb2 reassembles: decision 0007) and IPv6 (the real servers behind
//! ip6ip6 advertise MSS 1400: decision 0013), local ones by DR and NAT in both
//! families and by TUN in IPv6 (c32 to IDC2). Then the control: the IPv6 clamp
//! switched off on IDC2's servers, a spilled IPv6 upload stalls. Then what the clamp
//! costs with ICMP allowed (MEASURE lines). Last, c31's connections closed, IDC2
//! spills to IDC1: c32's spilled connections to a DR and a NAT server, both families.

mod e2e;

use std::time::{Duration, Instant};

use anycast_lab::Need;
use anycast_lab::real_server::Forwarding;
use anycast_lab::uml::{Lab, guest};
use anycast_lab::{seed, seed6};
use anycastd::status::PeerState;
use e2e::pmtu::*;
use e2e::v6::*;
use e2e::*;

/// Five connections per real server and family's entry: 20 per site.
const SMALL: &[(&str, &str)] = &[("capacity = 100", "capacity = 5")];

/// IDC1 as SMALL, with rs511 forwarded by NAT in both families: each IDC1 service
/// then has a DR (rs512) and a NAT (rs511) server, IDC2's two TUN servers.
const IDC1: &[(&str, &str)] = &[
    ("capacity = 100", "capacity = 5"),
    (
        "address = \"10.101.5.11\"\nmethod = \"dr\"",
        "address = \"10.101.5.11\"\nmethod = \"nat\"",
    ),
    (
        "address = \"2001:db8:5::11\"\nmethod = \"dr\"",
        "address = \"2001:db8:5::11\"\nmethod = \"nat\"",
    ),
];

#[test]
fn lab_kernel_dual_stack_bulk_without_icmp() {
    if guest::active().is_some() {
        return in_guest();
    }
    run_seed_lab(
        "lab_kernel_dual_stack_bulk_without_icmp",
        &[
            Need::Program("/usr/sbin/iptables-legacy"),
            Need::Program("/usr/sbin/ip6tables-legacy"),
        ],
        Lab::new("pmtu-dual")
            .extra_modules(&[
                "x_tables",
                "ip_tables",
                "iptable_filter",
                "xt_tcpudp",
                "ip6_tables",
                "ip6table_filter",
            ])
            .timeout(Duration::from_secs(320)),
    );
}

/// Sets a site's IPv6 servers' default route with (`Some`) or without the clamp, as
/// `real_server::setup` writes it for `ipv6_mss_clamp` on or off (the method only
/// decides the other steps, which are left as they are).
fn clamp(servers: &[&str], method: Forwarding, gateway: &str, mss6: Option<u32>) -> bool {
    let mut ok = true;
    for ns in servers {
        for cmd in seed6::server_setup6_with(method, gateway, mss6)
            .into_iter()
            .filter(|c| c.contains(" default "))
        {
            ok &= guest::sh_in(ns, &format!("{cmd} && echo ok")).contains("ok");
        }
    }
    ok
}

/// rs511 is NAT here: its gateway is the director (lb1), which rewrites its replies;
/// rs512 (DR) answers through the LAN's gateway, R11 (decision 0014).
fn idc1_clamp(mss6: Option<u32>) -> bool {
    clamp(&["rs511"], Forwarding::Nat, seed::IDC1_DIRECTOR, mss6)
        && clamp(&["rs512"], Forwarding::Dr, seed::IDC1_GATEWAY, mss6)
}

fn idc2_clamp(mss6: Option<u32>) -> bool {
    clamp(&["rs611", "rs612"], Forwarding::Tun, "10.101.6.1", mss6)
}

/// Packet Too Big dropped (or counted) at `ns`: from the VIP, from elsewhere.
fn ptb(ns: &str) -> (u64, u64) {
    (
        rule_packets(ns, "ip6tables-legacy", 1),
        rule_packets(ns, "ip6tables-legacy", 2),
    )
}

fn in_guest() {
    let _servers: Vec<RealServer> = ["rs511", "rs512", "rs611", "rs612"]
        .into_iter()
        .map(RealServer::start)
        .collect();
    // rs511 by NAT: its replies must pass lb1 (the seed's DR servers use R11).
    let nat = seed::server_setup(Forwarding::Nat, seed::IDC1_DIRECTOR)
        .into_iter()
        .chain(seed6::server_setup6(Forwarding::Nat, seed::IDC1_DIRECTOR))
        .all(|c| guest::sh_in("rs511", &format!("{c} && echo ok")).contains("ok"));
    guest::check("rs511_gateway_is_lb1", nat, "");
    let lb1 = Anycastd::start("lb1", dual_stack_config("idc1", IDC1));
    let lb2 = Anycastd::start("lb2", dual_stack_config("idc2", SMALL));
    let paths = wait_path6("c31", "3 1 5", Duration::from_secs(40))
        .and(wait_path6("c32", "3 2 5", Duration::from_secs(10)))
        .and(wait_path("c31", "3 1 5", Duration::from_secs(5)))
        .and(wait_path("c32", "3 2 5", Duration::from_secs(5)));
    let known = |lb: &Anycastd, peer: &str| {
        lb.wait_status(Duration::from_secs(15), |s| {
            peer_state(s, peer) == Some(PeerState::Known)
                && peer_load(s, peer).is_some()
                && s.vips.iter().all(|v| v.servers_up == 2)
        })
        .is_some()
    };
    let ok = paths.is_ok() && known(&lb1, "idc2") && known(&lb2, "idc1");
    if !guest::check("converged", ok, &format!("{paths:?}")) {
        println!("lb1 log:\n{}\nlb2 log:\n{}", lb1.log(), lb2.log());
        return;
    }
    // What the lab's servers were set up with (seed::server_setup6: the configs'
    // defaults), and the clients' uplinks at 1500.
    let routes = guest::sh_in("rs611", "ip -6 route show default")
        + &guest::sh_in("rs511", "ip -6 route show default");
    let mtus = guest::sh_in("c31", "ip -o link show dev eth1");
    guest::check(
        "servers_advertise_mss_1400",
        routes.matches("advmss 1400").count() == 2 && mtus.contains("mtu 1500"),
        &format!("{routes}{mtus}"),
    );
    for ns in ["c31", "c32"] {
        let out = guest::sh_in(ns, &format!("{DROP_ICMP} && {DROP_ICMP6} && echo done"));
        guest::check(&format!("{ns}_drops_icmp"), out.contains("done"), &out);
    }
    from_c31(&lb1);
    // Every connection from c31 is closed: IDC1 is idle again, IDC2 spills to it.
    guest::check(
        "clamp_back_everywhere",
        idc1_clamp(Some(1400)) && idc2_clamp(Some(1400)),
        "",
    );
    from_c32(&lb2);
}

/// `client`'s site above 1.1 (12 connections of each family are 24 of the 20 it
/// takes), checked to spill more than 0.15 to `peer` within 20 s. The connections
/// are returned: they hold the load.
fn overload(lb: &Anycastd, client: &str, peer: &str) -> (Vec<Conn>, Vec<Conn>) {
    let load = (open_conns(client, 12), open_conns6(client, 12));
    let ramped = lb.wait_status(Duration::from_secs(20), |s| spill_share(s, peer) > 0.15);
    guest::check(
        &format!("spills_to_{peer}"),
        ramped.is_some(),
        &lb.status().map_or("no status".into(), |s| spill_line(&s)),
    );
    load
}

/// IDC1 spilling to IDC2 (TUN servers): c31's bulk transfers, the control, the cost.
fn from_c31(lb1: &Anycastd) {
    let _load = overload(lb1, "c31", "idc2");

    let limit = Duration::from_secs(30);
    let (mut s4, _o1) = bulk_served_by("c31", "rs6", 40);
    let (mut l4, _o2) = bulk_served_by("c31", "rs512", 20);
    let (mut m4, _o9) = bulk_served_by("c31", "rs511", 20);
    let (mut s6, _o3) = bulk6_served_by("c31", "rs6", 40);
    let (mut l6, _o4) = bulk6_served_by("c31", "rs512", 20);
    let (mut n6, _o8) = bulk6_served_by("c31", "rs511", 20);
    let (mut t6, _o5) = bulk6_served_by("c32", "rs6", 10);
    check_bulk("ipv4_spilled_1mib_up_and_down", s4.as_mut(), limit);
    check_bulk("ipv4_local_dr_1mib_up_and_down", l4.as_mut(), limit);
    check_bulk("ipv4_local_nat_1mib_up_and_down", m4.as_mut(), limit);
    check_bulk("ipv6_spilled_to_tun_1mib_up_and_down", s6.as_mut(), limit);
    check_bulk("ipv6_local_dr_1mib_up_and_down", l6.as_mut(), limit);
    check_bulk("ipv6_local_nat_1mib_up_and_down", n6.as_mut(), limit);
    check_bulk("ipv6_local_tun_1mib_up_and_down", t6.as_mut(), limit);
    let (a, b) = ptb("c31");
    let (c, d) = ptb("c32");
    guest::check(
        "no_packet_too_big_needed",
        a + b + c + d == 0,
        &format!("Packet Too Big dropped at c31: {a} from the VIP, {b} other; at c32: {c}, {d}"),
    );
    drop((s4, l4, m4, s6, l6, n6, t6));

    // The control: IDC2's servers without the clamp (ipv6_mss_clamp = false).
    // Downloads and short requests are fine; a spilled upload stalls on the
    // Packet Too Big c31's network drops.
    guest::check("idc2_clamp_off", idc2_clamp(None), "");
    let (mut s6, _o6) = bulk6_served_by("c31", "rs6", 40);
    let down = s6.as_mut().map(|c| c.download(MIB, limit));
    let up = s6.as_mut().map(|c| c.upload(MIB, Duration::from_secs(12)));
    let (a, b) = ptb("c31");
    guest::check(
        "control_ipv6_spilled_upload_stalls_without_the_clamp",
        matches!(down, Some(Ok(_))) && matches!(up, Some(Err(_))) && a > 0 && b == 0,
        &format!(
            "down {down:?}; up {up:?}; Packet Too Big dropped at c31 from the VIP: {a}, other: {b}"
        ),
    );
    drop(s6);
    guest::check("idc2_clamp_back", idc2_clamp(Some(1400)), "");
    let (mut s6, _o7) = bulk6_served_by("c31", "rs6", 40);
    check_bulk("ipv6_spilled_again_with_the_clamp", s6.as_mut(), limit);
    drop(s6);

    // The cost, ICMP allowed (and counted) in c31.
    let out = guest::sh_in(
        "c31",
        &format!(
            "iptables-legacy -F INPUT && {COUNT_ICMP6} && ip -6 route flush cache && echo done"
        ),
    );
    guest::check("c31_allows_icmp", out.contains("done"), &out);
    measure("clamp", "rs6");
    measure("clamp", "rs512");
    guest::check(
        "clamp_off_everywhere",
        idc1_clamp(None) && idc2_clamp(None),
        "",
    );
    // Local first: the Packet Too Big a spilled connection brings makes c31 cache
    // MTU 1460 for VIP6, which a local connection would then use too.
    measure("no_clamp", "rs512");
    measure("no_clamp", "rs6");
    let route = guest::sh_in("c31", "ip -6 route get 2001:db8:4::1");
    let (a, b) = ptb("c31");
    guest::check(
        "packet_too_big_from_the_vip",
        a > 0 && b == 0 && route.contains("mtu 1460"),
        &format!(
            "Packet Too Big at c31 from the VIP: {a}, other: {b}; {}",
            route.trim()
        ),
    );
}

/// IDC2 spilling to IDC1 (a DR and a NAT IPv6 server): c32's bulk transfers, with
/// every ICMP still dropped in c32.
fn from_c32(lb2: &Anycastd) {
    let _load = overload(lb2, "c32", "idc1");
    let limit = Duration::from_secs(30);
    let (mut s4, _o1) = bulk_served_by("c32", "rs512", 60);
    let (mut n4, _o4) = bulk_served_by("c32", "rs511", 60);
    let (mut dr, _o2) = bulk6_served_by("c32", "rs512", 60);
    let (mut nat, _o3) = bulk6_served_by("c32", "rs511", 60);
    check_bulk("ipv4_spilled_to_dr_1mib_up_and_down", s4.as_mut(), limit);
    check_bulk("ipv4_spilled_to_nat_1mib_up_and_down", n4.as_mut(), limit);
    check_bulk("ipv6_spilled_to_dr_1mib_up_and_down", dr.as_mut(), limit);
    check_bulk("ipv6_spilled_to_nat_1mib_up_and_down", nat.as_mut(), limit);
    let (a, b) = ptb("c32");
    guest::check(
        "no_packet_too_big_needed_either_way",
        a + b == 0,
        &format!("Packet Too Big dropped at c32: {a} from the VIP, {b} other"),
    );
}

/// Bytes per measured upload, and the paced ones' size and rate.
const COST_BYTES: usize = 32 * MIB;
const PACED_BYTES: usize = 16 * MIB;
const PACED_RATE: f64 = 8e6;

/// Three uploads of `COST_BYTES` and three paced ones on a new IPv6 connection
/// from c31 served by `prefix`: MEASURE lines with the rate and the guest's CPU (one
/// CPU for every namespace: both directors, routers, client and servers; packet
/// counters say nothing here, veth hands TSO super-packets along unsegmented).
fn measure(setting: &str, prefix: &str) {
    let what = format!(
        "ipv6 {} {setting}",
        if prefix == "rs6" { "spilled" } else { "local" }
    );
    let (mut c, _others) = bulk6_served_by("c31", prefix, 40);
    let Some(c) = c.as_mut() else {
        guest::check(&format!("{what} connection"), false, "none opened");
        return;
    };
    for (run, paced) in [
        (1, None),
        (2, None),
        (3, None),
        (1, Some(PACED_RATE)),
        (2, Some(PACED_RATE)),
        (3, Some(PACED_RATE)),
    ] {
        let (bytes, kind) = match paced {
            Some(_) => (PACED_BYTES, " paced"),
            None => (COST_BYTES, ""),
        };
        let (b0, a0) = cpu_jiffies();
        let t0 = Instant::now();
        let up = c.upload_paced(bytes, paced, Duration::from_secs(60));
        let (b1, a1) = cpu_jiffies();
        let mib = (bytes / MIB) as f64;
        let detail = match &up {
            Ok(d) => format!(
                "{what}{} run {run}: {mib} MiB up in {d:.2?} = {:.1} MB/s; guest CPU busy {:.0}%, {:.1} ms/MiB; served by {}",
                kind,
                bytes as f64 / d.as_secs_f64() / 1e6,
                (b1 - b0) as f64 * 100.0 / (a1 - a0).max(1) as f64,
                (b1 - b0) as f64 * 10.0 / mib,
                c.server
            ),
            Err(e) => format!("{what}{kind} run {run}: {e} after {:?}", t0.elapsed()),
        };
        println!("MEASURE {detail}");
        guest::check(&format!("{what}{kind} upload {run}"), up.is_ok(), &detail);
    }
}
