//! IPv6 in the lab kernel: an IPv6 client served by IPVS, IPv6 connections spilled
//! to the peer director through ip6ip6 and answered by it directly, and the IPv6
//! loop guard shown both ways. One boot for all of it (the two-site lab with its
//! IPv6 plane, `common::v6`).

mod common;

use std::time::Duration;

use anycast_lab::uml::{Lab, guest};
use anycast_lab::{Need, require};
use common::v6::*;
use common::*;
use tunnel_forwarder::{Request, ServiceKey};

#[test]
fn lab_kernel_ipv6_spill_and_loop_guard() {
    let test = "lab_kernel_ipv6_spill_and_loop_guard";
    if guest::active().is_some() {
        return in_guest();
    }
    if !require(test, &[Need::LabKernel, Need::Root]) {
        return;
    }
    Lab::new("tf-ipv6-spill")
        .topology(two_sites_dual_stack())
        .extra_modules(&["ipv6", "ip6_tunnel"])
        .timeout(Duration::from_secs(120))
        .guest_test(test)
        .run()
        .expect("lab kernel runs")
        .assert_passed();
}

fn in_guest() {
    start_real_servers6();
    // (1) Served at home: an IPv6 client, IPVS NAT to IPv6 real servers.
    let (a, b) = start_directors(&site6_a(1, 0, true), &site6_b(1, 0, true));
    let home = ask_many6(6);
    check_all_from("ipv6_served_at_home", &home, "a");
    let again = a.reconcile(&site6_a(1, 0, true));
    check_report("ipv6_second_reconcile_zero", again.changes == 0, &again);
    let mut long_local = guest::tcp::Client::connect("client", vip6_80()).expect("connect");
    let first = long_local.ask().unwrap_or_default();

    // (2) Spill: A sends every new connection to B through ip6ip6; B's guard hands
    // it to its own real servers, which answer the client through B, not A.
    let step = a.reconcile(&site6_a(0, 1, true));
    check_report(
        "ipv6_spill_is_weight_edits",
        step.requests
            .iter()
            .all(|r| matches!(r, Request::SetDest(..))),
        &step,
    );
    let spilled = ask_many6(10);
    check_all_from("ipv6_spilled_served_by_b", &spilled, "b");
    let b_rx = b.tunnel6_rx();
    guest::check(
        "ipv6_spill_came_through_ip6ip6",
        b_rx >= 10,
        &format!("B {TUN6} rx {b_rx}"),
    );
    let a_rx = a.tunnel6_rx();
    guest::check(
        "ipv6_answered_directly",
        a_rx == 0,
        &format!("A {TUN6} rx {a_rx}"),
    );
    check_same_server("ipv6_old_connection_stays", &mut long_local, &first);
    dump6(&["dira", "dirb"]);

    // (3) Loop guard: both sites spill everything to each other. Guarded, B serves.
    b.reconcile(&site6_b(0, 1, true));
    check_all_from("ipv6_guarded_served_by_b", &ask_many6(6), "b");
    let a_rx = a.tunnel6_rx();
    guest::check(
        "ipv6_guarded_nothing_back_to_a",
        a_rx == 0,
        &format!("A {TUN6} rx {a_rx}"),
    );

    // Without the guard (filters and fwmark services removed by the diff) the SYN
    // goes A -> B -> A ... until its hop limit runs out.
    let ra = a.reconcile(&site6_a(0, 1, false));
    let rb = b.reconcile(&site6_b(0, 1, false));
    guest::check(
        "ipv6_guard_removed",
        ra.requests
            .iter()
            .any(|r| matches!(r, Request::DelFilter { device, .. } if device == TUN6))
            && rb.requests.iter().any(|r| {
                matches!(
                    r,
                    Request::DelService(ServiceKey::Fwmark { ipv6: true, .. })
                )
            }),
        &format!("{:?} {:?}", ra.requests, rb.requests),
    );
    let r = guest::tcp::ask_once("client", vip6_80());
    let a_rx = a.tunnel6_rx();
    guest::check(
        "ipv6_unguarded_loops",
        r.is_err() && a_rx > 5,
        &format!("client got {r:?}; A {TUN6} rx {a_rx} packets (the SYN ping-pong)"),
    );
    dump6(&["dira"]);
}

/// PMTU on a spilled IPv6 connection: ip6ip6 adds 40 bytes, so a client's full-size
/// segment (1500 bytes on these 1500-byte links) no longer fits between the
/// directors. IPVS answers it with Packet Too Big (IPv6 routers never fragment; there
/// is no `pmtu_disc` for IPv6): a client that receives it lowers its segments and
/// the upload completes; one whose network drops Packet Too Big stalls.
///
/// The same boot then runs the spill split for IPv6 (decision 0006, `in_guest_split6`):
/// the share of new IPv6 connections and UDP flows under `wlc`, the read-back, share
/// 0, and the clamped MSS (decision 0013) on a split-carried upload.
#[test]
fn lab_kernel_ipv6_spilled_upload_pmtu() {
    let test = "lab_kernel_ipv6_spilled_upload_pmtu";
    if guest::active().is_some() {
        return in_guest_pmtu();
    }
    if !require(test, &[Need::LabKernel, Need::Root]) {
        return;
    }
    Lab::new("tf-ipv6-pmtu")
        .topology(two_sites_dual_stack())
        .extra_modules(&["ipv6", "ip6_tunnel"])
        .timeout(Duration::from_secs(240))
        .guest_test(test)
        .run()
        .expect("lab kernel runs")
        .assert_passed();
}

/// Uploads `bytes` on a new IPv6 connection from the client and waits for the
/// server's name, all within `deadline`: the name, or what went wrong, and the time.
fn upload6(bytes: usize, deadline: Duration) -> (Result<String, String>, Duration) {
    use std::io::{BufRead, BufReader, Write};
    let start = std::time::Instant::now();
    let r = guest::in_netns("client", move || -> Result<String, String> {
        let s = std::net::TcpStream::connect_timeout(&vip6_80(), Duration::from_secs(2))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_write_timeout(Some(deadline))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(deadline))
            .map_err(|e| e.to_string())?;
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let mut body = vec![b'x'; bytes];
        body.push(b'\n');
        w.write_all(&body).map_err(|e| format!("write: {e}"))?;
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        Ok(line.trim().to_string())
    });
    (r, start.elapsed())
}

fn in_guest_pmtu() {
    start_real_servers6();
    // A spills every new IPv6 connection to B.
    let (a, b) = start_directors(&site6_a(0, 1, true), &site6_b(1, 0, true));
    let (r, took) = upload6(1 << 20, Duration::from_secs(10));
    let route = guest::sh_in("client", &format!("ip -6 route get {VIP6}"));
    guest::check(
        "ipv6_spilled_upload_completes_with_packet_too_big",
        r.as_ref().is_ok_and(|n| n.starts_with('b')) && route.contains("mtu 1460"),
        &format!(
            "1 MiB up: {r:?} in {took:?}; client's route to the VIP: {}",
            route.trim()
        ),
    );
    // The client's network drops Packet Too Big (ICMPv6 type 2; neighbour discovery
    // still passes), and the learnt MTU is forgotten.
    let drop = "tc qdisc add dev eth0 ingress && tc filter add dev eth0 ingress protocol ipv6 u32 \
                match ip6 protocol 58 0xff match u8 2 0xff at 40 action drop && ip -6 route flush cache";
    let out = guest::sh_in("client", drop);
    let (r, took) = upload6(1 << 20, Duration::from_secs(3));
    let shown = guest::sh_in("client", "tc -s filter show dev eth0 ingress");
    // `(rule hit N success M)`: M Packet Too Big dropped.
    let dropped: u64 = shown
        .split("success ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    guest::check(
        "ipv6_spilled_upload_stalls_without_packet_too_big",
        r.is_err() && dropped > 0,
        &format!("{out}1 MiB up: {r:?} after {took:?}; {dropped} Packet Too Big dropped"),
    );
    // Short requests are fine either way (they fit).
    let small = ask_many6(3);
    check_all_from("ipv6_short_requests_still_served", &small, "b");
    in_guest_split6(&a, &b);
}

/// The split for IPv6 (decision 0006), after `in_guest_pmtu` (the client still drops
/// Packet Too Big): A's VIP6 services on `wlc` with no peer destination of their own,
/// 276/1024 of new TCP connections and UDP flows split off on A's uplink into the
/// IPv6 fwmark service holding B's ip6ip6 endpoint.
fn in_guest_split6(a: &Director, b: &Director) {
    start_udp_servers6();
    b.reconcile(&with_udp(site6_b(1, 0, true)));
    let first = a.reconcile(&split6_a(SPLIT_SHARE));
    let again = a.reconcile(&split6_a(SPLIT_SHARE));
    check_report("split6_read_back_unchanged", again.changes == 0, &again);
    // 276/1024 is three blocks: a TCP and a UDP filter each, for each family.
    let tc = guest::sh_in("dira", "tc filter show dev eth0 ingress chain 44033");
    let isn6 = tc.matches("at 44").count();
    let share6 = tc.matches("/0000ff00 at 4").count();
    guest::check(
        "split6_filters_in_the_kernel",
        first.changes > 0 && isn6 == 3 && share6 == 6,
        &format!("{isn6} IPv6 ISN blocks, {share6} IPv6 share filters in chain 44033"),
    );
    for (what, answers) in [
        ("ipv6_connections", ask_many6(SPLIT_N)),
        ("ipv6_udp_flows", ask_many_udp6(SPLIT_N)),
    ] {
        check_split_counts(what, &answers);
    }

    // Decision 0013 on a split-carried connection: B's real servers advertise MSS
    // 1400 (`advmss`, as anycastd check prints it), so a 1 MiB upload from the client
    // that drops Packet Too Big fits through ip6ip6 and completes.
    a.reconcile(&split6_a(1.0));
    for rs in ["b1", "b2"] {
        let net = rs_net6(rs);
        guest::sh_in(
            rs,
            &format!("ip -6 route replace default via {net}::1 advmss 1400"),
        );
    }
    // The client has no smaller MTU cached (Packet Too Big is dropped): only the
    // MSS the server advertised keeps its segments within ip6ip6's 1460.
    let route = guest::sh_in("client", &format!("ip -6 route get {VIP6}"));
    let (r, took) = upload6(1 << 20, Duration::from_secs(10));
    guest::check(
        "split6_upload_clamped_completes_without_packet_too_big",
        r.as_ref().is_ok_and(|n| n.starts_with('b')) && !route.contains("mtu 1460"),
        &format!(
            "1 MiB up through the split: {r:?} in {took:?}; client's route: {}",
            route.trim()
        ),
    );

    // A spill step to 0: a targeted step, nothing sent away, read back unchanged.
    let (from, to) = (split6_a(1.0), split6_a(0.0));
    check_split_to_zero("split6", a, (&from, &to), [ask_many6, ask_udp6_new_ports]);
}

/// One IPv6 request from the client bound to `src`: the server's name.
fn ask_from6(src: &str) -> String {
    let py = "import socket,sys\n\
              s=socket.socket(socket.AF_INET6); s.bind((sys.argv[1],0)); s.settimeout(2)\n\
              s.connect((sys.argv[2],80)); s.sendall(b'who\\n'); print(s.recv(100).decode().strip())";
    guest::sh_in("client", &format!("python3 -c \"{py}\" {src} {VIP6}"))
        .trim()
        .to_string()
}

/// IPv6 persistence groups clients by a prefix (here /64, anycastd's default): two
/// addresses of one /64 stay on one real server, another /64 is scheduled anew.
#[test]
fn lab_kernel_ipv6_persistence_by_prefix() {
    let test = "lab_kernel_ipv6_persistence_by_prefix";
    if guest::active().is_some() {
        return in_guest_persistence();
    }
    if !require(
        test,
        &[Need::LabKernel, Need::Root, Need::Program("python3")],
    ) {
        return;
    }
    let topo = two_sites_dual_stack()
        .cmd("client", "ip addr add 2001:db8:c::3/64 dev eth0 nodad")
        .cmd("client", "ip addr add 2001:db8:c:1::2/64 dev eth0 nodad")
        .cmd("r", "ip -6 route add 2001:db8:c:1::/64 via 2001:db8:c::2");
    Lab::new("tf-ipv6-persist")
        .topology(topo)
        .extra_modules(&["ipv6", "ip6_tunnel"])
        .timeout(Duration::from_secs(120))
        .guest_test(test)
        .run()
        .expect("lab kernel runs")
        .assert_passed();
}

fn in_guest_persistence() {
    use tunnel_forwarder::Persistence;
    start_real_servers6();
    let mut a = site6_a(1, 0, true);
    let svc = &mut a.vips[0].services[0];
    svc.config.scheduler = "rr".into();
    svc.config.persistence = Some(Persistence {
        timeout: 60,
        netmask_len: 64,
    });
    let (da, _db) = start_directors(&a, &site6_b(1, 0, true));
    let first = ask_from6("2001:db8:c::2");
    let same64 = [ask_from6("2001:db8:c::3"), ask_from6("2001:db8:c::2")];
    let other64 = ask_from6("2001:db8:c:1::2");
    let lnx = guest::sh_in("dira", "ipvsadm -Ln; ipvsadm -Lnc | grep -i none | head");
    guest::check(
        "ipv6_persistence_groups_a_64",
        first.starts_with('a')
            && same64.iter().all(|n| *n == first)
            && other64.starts_with('a')
            && other64 != first
            && lnx.contains("persistent 60 mask 64"),
        &format!(
            "c::2 -> {first}, c::3 and c::2 -> {same64:?}, c:1::2 -> {other64}; {}",
            lnx.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
    );
    let again = da.reconcile(&a);
    check_report("ipv6_persistence_reads_back", again.changes == 0, &again);
}
