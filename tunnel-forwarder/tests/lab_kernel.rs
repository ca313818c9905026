//! tunnel-forwarder driving a real kernel with IPVS and IPIP: the user-mode-Linux
//! lab kernel (see lab/README.md). Each test boots the guest, which re-executes
//! this test binary for the in-guest part; the host part asserts the results.
//!
//! Two sites A and B (directors `dira`, `dirb`, real servers a1 a2 / b1 b2 behind
//! NAT), a client behind router `r`, which routes the VIP to A.

mod common;

use std::time::Duration;

use anycast_lab::uml::{Lab, guest};
use anycast_lab::{Need, require};
use common::*;
use tunnel_forwarder::{Request, ServiceKey};

/// One test: inside the guest, its in-guest part; on the host (with the lab kernel
/// and root, see `require`) boots `lab()` re-executing this test and asserts that
/// every check passed.
fn lab_test(test: &str, in_guest: fn(), lab: impl FnOnce() -> Lab) {
    if guest::active().is_some() {
        return in_guest();
    }
    if !require(test, &[Need::LabKernel, Need::Root]) {
        return;
    }
    lab()
        .guest_test(test)
        .run()
        .expect("lab kernel runs")
        .assert_passed();
}

/// The two-site lab (`two_sites`) named `name`.
fn two_site_lab(name: &str) -> Lab {
    Lab::new(name)
        .topology(two_sites())
        .timeout(Duration::from_secs(120))
}

/// A lab without a topology.
fn bare_lab(name: &str) -> Lab {
    Lab::new(name).timeout(Duration::from_secs(120))
}

/// (1) a reconcile creates the service, the client is answered by A's real servers;
/// (6) a second reconcile changes nothing; (7) the operator's own service and
/// address on the same director are untouched, also when ours are removed.
#[test]
fn lab_kernel_reconcile_serves_locally() {
    lab_test(
        "lab_kernel_reconcile_serves_locally",
        in_guest_reconcile,
        || two_site_lab("tf-reconcile"),
    );
}

fn in_guest_reconcile() {
    start_real_servers();
    // The operator's own service on the VIP's port 8080 and an address on lo.
    let op = guest::sh_in(
        "dira",
        "ipvsadm -A -t 10.101.4.1:8080 -s rr && ipvsadm -a -t 10.101.4.1:8080 -r 10.101.5.11:8080 -m -w 3 \
         && ip addr add 192.0.2.7/32 dev lo && echo ok",
    );
    guest::check("operator_setup", op.contains("ok"), &op);
    let before_op = guest::sh_in("dira", "ipvsadm -Ln -t 10.101.4.1:8080");

    let a = Director::start("dira");
    let desired = site_a(1, 0, true);
    let r1 = a.reconcile(&desired);
    guest::check(
        "first_reconcile_applies",
        r1.changes > 0,
        &format!(
            "{} changes: {:?}",
            r1.changes,
            r1.requests.iter().map(|r| r.command()).collect::<Vec<_>>()
        ),
    );
    for r in &r1.requests {
        println!("applied: {r}");
    }
    dump(&["dira"]);

    let names = ask_many(10);
    guest::check(
        "client_answered_by_a",
        count(&names, "a") == 10 && count(&names, "a1") == 5,
        &format!("{names:?}"),
    );

    let r2 = a.reconcile(&desired);
    guest::check(
        "second_reconcile_zero_changes",
        r2.changes == 0 && r2.requests.is_empty(),
        &format!("{:?} (read {:?})", r2.requests, r2.read),
    );

    // Kernel state as ipvsadm sees it: our services, the tunnel mark service, the filter.
    let lnx = guest::sh_in("dira", "ipvsadm -Ln");
    guest::check(
        "ipvsadm_sees_services",
        lnx.contains("TCP  10.101.4.1:80 wrr")
            && lnx.contains("FWM  65 wrr")
            && lnx.contains("10.2.0.2:80")
            && lnx.contains("Tunnel"),
        &lnx,
    );
    let tc = guest::sh_in("dira", "tc filter show dev acip0 ingress");
    guest::check(
        "tc_filter_marks",
        tc.contains("skbedit") && tc.contains("mark 65") || tc.contains("0x41"),
        &tc,
    );
    let addr = guest::sh_in("dira", "ip -4 addr show dev lo");
    guest::check(
        "vip_on_lo_with_label",
        addr.contains("10.101.4.1/32") && addr.contains("lo:ac"),
        &addr,
    );
    let sysctl = guest::sh_in(
        "dira",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/acip0/rp_filter /proc/sys/net/ipv4/vs/conntrack",
    );
    guest::check(
        "sysctls",
        sysctl.split_whitespace().collect::<Vec<_>>() == ["1", "2", "1"],
        &sysctl,
    );

    // Drift: someone edits a weight behind our back; the next reconcile puts it back
    // with one in-place edit.
    guest::sh_in(
        "dira",
        "ipvsadm -e -t 10.101.4.1:80 -r 10.101.5.11:80 -m -w 9",
    );
    let r3 = a.reconcile(&desired);
    check_report(
        "drift_corrected_in_place",
        r3.changes == 1 && matches!(r3.requests[0], Request::SetDest(..)),
        &r3,
    );

    // Stats read back: the ten connections above were scheduled on VIP:80. The
    // connection counts are immediate; the counters follow the kernel's 2 s estimator.
    let is_vip80 = |s: &&tunnel_forwarder::ServiceStats| matches!(s.key, ServiceKey::Addr { port: 80, addr, .. } if addr == std::net::IpAddr::V4(VIP));
    let stats = a.with(|f| f.stats()).expect("stats");
    let conns_now = stats
        .iter()
        .find(is_vip80)
        .map(|s| s.active() + s.inactive());
    guest::check(
        "conn_counts_read_back",
        conns_now == Some(10),
        &format!("{conns_now:?}"),
    );
    let counted = guest::wait_for(Duration::from_secs(5), || {
        let stats = a.with(|f| f.stats()).ok()?;
        let s = stats.iter().find(is_vip80)?.clone();
        (s.counters.conns >= 10 && s.counters.in_packets > 0 && s.dests.len() == 3).then_some(s)
    });
    guest::check(
        "counters_read_back",
        counted.is_some(),
        &format!("{counted:?}"),
    );

    let after_op = guest::sh_in("dira", "ipvsadm -Ln -t 10.101.4.1:8080");
    guest::check(
        "operator_service_untouched",
        before_op == after_op && after_op.contains("10.101.5.11:8080"),
        &after_op,
    );

    // Remove our VIP entirely: our services and address go, the operator's stay.
    let empty = tunnel_forwarder::DesiredState {
        tunnel: desired.tunnel.clone(),
        ..Default::default()
    };
    let r4 = a.reconcile(&empty);
    let lnx = guest::sh_in("dira", "ipvsadm -Ln");
    let addr = guest::sh_in("dira", "ip -4 addr show dev lo");
    guest::check(
        "removal_keeps_operator_objects",
        !lnx.contains("10.101.4.1:80 ")
            && !lnx.contains("FWM")
            && lnx.contains("10.101.4.1:8080")
            && !addr.contains("10.101.4.1/32")
            && addr.contains("192.0.2.7/32"),
        &format!("{:?}\n{lnx}\n{addr}", r4.requests),
    );
    dump(&["dira"]);
}

/// (2) raising B's tunnel weight sends that share of new connections through IPIP
/// to B's real servers, which answer the client directly; (3) a connection opened
/// before keeps its server; (4) weight 0 stops new spill and leaves running spilled
/// connections alone.
#[test]
fn lab_kernel_spill_share() {
    lab_test("lab_kernel_spill_share", in_guest_spill, || {
        two_site_lab("tf-spill")
    });
}

fn in_guest_spill() {
    start_real_servers();
    let (a, b) = start_directors(&site_a(1, 0, true), &site_b(1, 0, true));

    check_all_from("not_spilling_all_local", &ask_many(8), "a");

    // A long-lived connection opened before spilling.
    let mut long_local = guest::tcp::Client::connect("client", vip80()).expect("connect");
    let first = long_local.ask().expect("ask");

    // Spill: peer weight 2 against two local servers of weight 1 = half of new conns.
    let r = a.reconcile(&site_a(1, 2, true));
    check_report(
        "weight_change_is_one_in_place_edit",
        r.changes == 1 && matches!(&r.requests[0], Request::SetDest(_, d) if d.weight == 2),
        &r,
    );
    let names = ask_many(40);
    let to_b = count(&names, "b");
    guest::check(
        "spill_share_half",
        (18..=22).contains(&to_b) && count(&names, "error") == 0,
        &format!("{to_b} of 40 to B: {names:?}"),
    );
    // B's real servers answered directly: A's tunnel device saw nothing come back.
    check_no_tunnel_rx("replies_not_via_a", "A", &a);
    let b_rx = b.tunnel_rx();
    guest::check("spilled_via_ipip", b_rx > 0, &format!("B {TUN} rx {b_rx}"));
    // B scheduled them through its fwmark (tunnel-in) service, not its VIP service.
    let b_stats = b.with(|f| f.stats()).expect("stats");
    let conns = |fwmark: bool| {
        b_stats
            .iter()
            .filter(|s| matches!(s.key, ServiceKey::Fwmark { .. }) == fwmark)
            .map(|s| s.active() + s.inactive())
            .sum::<u64>()
    };
    guest::check(
        "b_scheduled_by_mark_service",
        conns(true) as usize == to_b && conns(false) == 0,
        &format!("fwmark {} vip {} of {to_b}", conns(true), conns(false)),
    );

    check_same_server("long_lived_keeps_server", &mut long_local, &first);

    // A spilled connection kept open across the weight going back to 0.
    let mut long_spilled = None;
    for _ in 0..20 {
        let mut c = guest::tcp::Client::connect("client", vip80()).expect("connect");
        let n = c.ask().expect("ask");
        if n.starts_with('b') {
            long_spilled = Some((c, n));
            break;
        }
    }
    let (mut spilled, spilled_name) = long_spilled.expect("one connection spilled to B");

    let r = a.reconcile(&site_a(1, 0, true));
    check_report("weight_back_to_zero", r.changes == 1, &r);
    check_all_from("no_new_spill_at_zero", &ask_many(10), "a");
    check_same_server(
        "running_spilled_conn_untouched",
        &mut spilled,
        &spilled_name,
    );
    check_same_server("long_lived_still_same", &mut long_local, &first);
    dump(&["dira", "dirb"]);
}

/// (5) a connection tunnelled to B is never sent back to A, even with B configured
/// to spill everything to A; the same without the mark shows the loop.
#[test]
fn lab_kernel_loop_guard() {
    lab_test("lab_kernel_loop_guard", in_guest_loop, || {
        two_site_lab("tf-loop")
    });
}

fn in_guest_loop() {
    start_real_servers();
    // Both sites spill everything to each other.
    let (a, b) = start_directors(&site_a(0, 1, true), &site_b(0, 1, true));
    check_all_from("guarded_served_by_b", &ask_many(6), "b");
    check_no_tunnel_rx("guarded_nothing_back_to_a", "A", &a);
    dump(&["dira", "dirb"]);

    // Without the mark (filters and fwmark services removed by reconcile).
    let ra = a.reconcile(&site_a(0, 1, false));
    let rb = b.reconcile(&site_b(0, 1, false));
    guest::check(
        "guard_removed",
        ra.requests
            .iter()
            .any(|r| matches!(r, Request::DelFilter { .. }))
            && rb
                .requests
                .iter()
                .any(|r| matches!(r, Request::DelService(ServiceKey::Fwmark { .. }))),
        &format!("{:?} {:?}", ra.requests, rb.requests),
    );
    let r = guest::tcp::ask_once("client", vip80());
    let a_rx2 = a.tunnel_rx();
    guest::check(
        "unguarded_loops",
        r.is_err() && a_rx2 > 5,
        &format!("client got {r:?}; A {TUN} rx {a_rx2} packets (the SYN ping-pong)"),
    );
    dump(&["dira"]);
}

/// The ownership ledger survives a restart: a service removed from the desired state
/// while no forwarder ran is still removed, and only that one.
#[test]
fn lab_kernel_ledger_survives_restart() {
    lab_test(
        "lab_kernel_ledger_survives_restart",
        in_guest_ledger,
        || bare_lab("tf-ledger"),
    );
}

fn in_guest_ledger() {
    use tunnel_forwarder::{Forwarder, VipService};
    let ledger = guest::work_dir().join("ledger");
    let mut two = site_a(1, 0, false);
    two.tunnel = None;
    let mut s443 = two.vips[0].services[0].clone();
    s443.port = 443;
    two.vips[0].services.push(s443);
    {
        let mut fw = Forwarder::open_with_ledger(&ledger).expect("open");
        let r = fw.reconcile(&two).expect("reconcile");
        guest::check("created_two", r.changes > 0, "");
    }
    guest::sh("ipvsadm -A -t 10.101.4.1:22 -s rr");
    let text = std::fs::read_to_string(&ledger).unwrap_or_default();
    guest::check(
        "ledger_written",
        text.contains("tcp 10.101.4.1 80") && text.contains("tcp 10.101.4.1 443"),
        &text,
    );
    // "Restart" with port 443 gone from the desired state.
    let mut one = two.clone();
    one.vips[0].services.retain(|s: &VipService| s.port == 80);
    let mut fw = Forwarder::open_with_ledger(&ledger).expect("reopen");
    let r = fw.reconcile(&one).expect("reconcile");
    let lnx = sh_stdout("ipvsadm -Ln");
    guest::check(
        "stale_service_removed_operator_kept",
        r.changes == 1
            && matches!(
                r.requests[0],
                Request::DelService(ServiceKey::Addr { port: 443, .. })
            )
            && lnx.contains("10.101.4.1:80")
            && lnx.contains("10.101.4.1:22")
            && !lnx.contains("10.101.4.1:443"),
        &format!("{:?}\n{lnx}", r.requests),
    );
}

/// IPv6 VIPs: services and destinations of the other family are programmed and
/// read back (second reconcile zero changes), with and without persistence.
#[test]
fn lab_kernel_ipv6_services() {
    lab_test("lab_kernel_ipv6_services", in_guest_ipv6, || {
        bare_lab("tf-ipv6")
    });
}

fn in_guest_ipv6() {
    use std::net::IpAddr;
    use tunnel_forwarder::{
        DesiredState, Dest, Forward, Forwarder, Persistence, Protocol, ServiceConfig, Vip,
        VipDevice, VipService,
    };
    let vip: IpAddr = "2001:db8:4::1".parse().unwrap();
    let rs = |s: &str| Dest::new(s.parse().unwrap(), 80, Forward::DirectRoute, 1);
    let svc = |protocol, port, persistence| VipService {
        protocol,
        port,
        config: ServiceConfig {
            persistence,
            ..ServiceConfig::default()
        },
        local: vec![rs("2001:db8:5::11"), rs("2001:db8:5::12")],
        peers: vec![],
        tunnel_in: None,
    };
    let d = DesiredState {
        vips: vec![Vip {
            addr: vip,
            device: VipDevice::Dummy("vip0".into()),
            services: vec![
                svc(Protocol::Tcp, 80, None),
                svc(
                    Protocol::Udp,
                    53,
                    Some(Persistence {
                        timeout: 60,
                        netmask_len: 64,
                    }),
                ),
            ],
        }],
        ..DesiredState::default()
    };
    let mut fw = Forwarder::open().expect("open");
    let r1 = fw.reconcile(&d);
    guest::check(
        "ipv6_applied",
        r1.as_ref().is_ok_and(|r| r.changes > 0),
        &format!("{r1:?}"),
    );
    let r2 = fw.reconcile(&d);
    guest::check(
        "ipv6_second_reconcile_zero",
        r2.as_ref().is_ok_and(|r| r.changes == 0),
        &format!("{r2:?}"),
    );
    let lnx = sh_stdout("ipvsadm -Ln; ip -6 addr show dev vip0");
    guest::check(
        "ipv6_seen_by_ipvsadm",
        lnx.contains("TCP  [2001:db8:4::1]:80")
            && lnx.contains("UDP  [2001:db8:4::1]:53")
            && lnx.contains("persistent 60 mask 64")
            && lnx.contains("[2001:db8:5::12]:80")
            && lnx.contains("2001:db8:4::1/128"),
        &lnx,
    );
    // Removing the VIP removes its IPv6 address too (recorded as ours: no labels).
    let r = fw.reconcile(&DesiredState::default());
    let addr = sh_stdout("ip -6 addr show dev vip0");
    guest::check(
        "ipv6_vip_removed",
        r.is_ok() && !addr.contains("2001:db8:4::1") && !sh_stdout("ipvsadm -Ln").contains("2001"),
        &format!("{r:?}\n{addr}"),
    );
}

/// The loop guard for a UDP service next to the TCP one: its own mark, matched on
/// protocol 17 and its port; both sites spill everything, B's real servers answer.
#[test]
fn lab_kernel_udp_loop_guard() {
    lab_test("lab_kernel_udp_loop_guard", in_guest_udp, || {
        two_site_lab("tf-udp")
    });
}

/// A UDP server on port 53 of every real server, answering with its name.
fn start_udp_servers() {
    for rs in ["a1", "a2", "b1", "b2"] {
        let addr = std::net::SocketAddr::new(std::net::IpAddr::V4(rs_addr(rs)), 53);
        guest::udp::serve(rs, addr, rs);
    }
}

/// `n` UDP flows to the VIP, each from a fresh socket (a fresh source port): who
/// answered each.
fn ask_many_udp(n: usize) -> Vec<String> {
    let vip53 = std::net::SocketAddr::new(std::net::IpAddr::V4(VIP), 53);
    ask_n(n, || guest::udp::ask_once("client", vip53))
}

fn ask_udp_new_ports(n: usize) -> Vec<String> {
    ask_udp_unused_ports(n, std::net::SocketAddr::new(std::net::IpAddr::V4(VIP), 53))
}

fn in_guest_udp() {
    start_udp_servers();
    let (a, _b) = start_directors(&with_udp(site_a(0, 1, true)), &with_udp(site_b(0, 1, true)));
    let names = ask_many_udp(6);
    check_all_from("udp_guarded_served_by_b", &names, "b");
    check_no_tunnel_rx("udp_nothing_back_to_a", "A", &a);
    let tc = guest::sh_in("dirb", "tc filter show dev acip0 ingress");
    guest::check(
        "two_marks_one_per_service",
        tc.contains("mark 65") && tc.contains("mark 66") && tc.contains("00110000/00ff0000"),
        &tc,
    );
    dump(&["dirb"]);
}

/// Missing module and missing privilege are clear errors naming the fix.
#[test]
fn lab_kernel_clear_errors() {
    lab_test("lab_kernel_clear_errors", in_guest_errors, || {
        bare_lab("tf-errors").modules(&["veth"])
    });
}

fn in_guest_errors() {
    // The kernel would load ip_vs on demand; make that impossible for this check.
    std::fs::write("/proc/sys/kernel/modprobe", "/bin/false").expect("disable module autoload");
    let e = tunnel_forwarder::Forwarder::open()
        .map(|_| ())
        .expect_err("no ip_vs loaded");
    let s = e.to_string();
    guest::check(
        "missing_ip_vs_named",
        matches!(&e, tunnel_forwarder::Error::ModuleMissing { module, .. } if module == "ip_vs")
            && s.contains("modprobe ip_vs"),
        &s,
    );
    // Load ip_vs by hand; the kernel still cannot load anything itself.
    let out = guest::sh("/sbin/modprobe -a ip_vs ip_vs_wrr veth");
    guest::check("modprobe", out.status.success(), "");
    let mut fw = tunnel_forwarder::Forwarder::open().expect("ip_vs is there now");
    // A tunnel needs ipip.
    let e = fw.reconcile(&site_a(1, 0, true)).map(|_| ()).unwrap_err();
    let s = e.to_string();
    guest::check(
        "missing_ipip_named",
        matches!(&e, tunnel_forwarder::Error::ModuleMissing { module, .. } if module == "ipip")
            && s.contains("modprobe ipip"),
        &s,
    );
    // A scheduler that is not loaded.
    let mut d = site_a(1, 0, false);
    d.tunnel = None;
    d.vips[0].services[0].config.scheduler = "mh".into();
    let e = fw.reconcile(&d).map(|_| ()).unwrap_err();
    let s = e.to_string();
    guest::check(
        "missing_scheduler_named",
        matches!(&e, tunnel_forwarder::Error::ModuleMissing { module, .. } if module == "ip_vs_mh"),
        &s,
    );
    std::fs::write("/proc/sys/kernel/modprobe", "/sbin/modprobe").expect("restore modprobe");
    // With autoload back, the same state goes through.
    let r = fw.reconcile(&d).map(|r| r.changes);
    guest::check(
        "autoload_then_ok",
        matches!(r, Ok(n) if n > 0),
        &format!("{r:?}"),
    );
    // A thread without CAP_NET_ADMIN (capabilities are per thread).
    let r = std::thread::spawn(|| {
        drop_net_admin();
        tunnel_forwarder::Forwarder::open().map(|_| ())
    })
    .join()
    .expect("thread");
    let s = r.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
    guest::check(
        "missing_privilege_named",
        matches!(r, Err(tunnel_forwarder::Error::Permission { .. })) && s.contains("CAP_NET_ADMIN"),
        &s,
    );
}

/// `sh -c cmd` in the guest's root namespace: its stdout as text.
fn sh_stdout(cmd: &str) -> String {
    String::from_utf8_lossy(&guest::sh(cmd).stdout).into_owned()
}

/// Clears CAP_NET_ADMIN from the calling thread's effective set.
#[allow(unsafe_code)] // capget/capset have no safe wrapper in libc
fn drop_net_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget with a v3 header and room for the two data structs that v3
    // writes, as capget(2) says; both live across the call.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget");
    d[0].effective &= !(1 << 12); // CAP_NET_ADMIN
    // SAFETY: capset reads the same v3 header and two data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) };
    assert_eq!(rc, 0, "capset");
}

/// The site-wide split (decision 0006): with A's VIP service on `wlc` and no peer
/// destination of its own, a share of 27% of new connections goes to B whatever the
/// scheduler does; a second reconcile reads the filters back and changes nothing; a
/// spill step is a handful of requests; share 0 sends nothing away.
#[test]
fn lab_kernel_split_share() {
    lab_test("lab_kernel_split_share", in_guest_split, || {
        two_site_lab("tf-split").timeout(Duration::from_secs(90))
    });
}

/// Site A with a TCP and a UDP service, both carried by the split (no peer
/// destinations of their own), at `share`.
fn split_a(share: f64) -> tunnel_forwarder::DesiredState {
    let mut d = with_udp(site_a(1, 0, true));
    for svc in &mut d.vips[0].services {
        svc.peers.clear();
        svc.config.scheduler = "wlc".into();
    }
    d.split = Some(tunnel_forwarder::Split {
        devices: vec!["eth0".into()],
        mark: 0x4143_0000,
        share: tunnel_forwarder::Split::units(share),
        peers: vec![tunnel_forwarder::Peer::ipip(std::net::IpAddr::V4(DIR_B), 1)],
        peers6: vec![],
    });
    d
}

fn in_guest_split() {
    start_real_servers();
    start_udp_servers();
    let (a, _b) = start_directors(&split_a(SPLIT_SHARE), &with_udp(site_b(1, 0, true)));
    let again = a.reconcile(&split_a(SPLIT_SHARE));
    check_report("split_read_back_unchanged", again.changes == 0, &again);

    // New TCP connections (the draw is the SYN's sequence number) and UDP flows (the
    // source port's low bits, a fresh socket each): the same share of each.
    for (what, answers) in [
        ("connections", ask_many(SPLIT_N)),
        ("udp_flows", ask_many_udp(SPLIT_N)),
    ] {
        check_split_counts(what, &answers);
    }

    // A spill step to 0, as targeted requests.
    let (from, to) = (split_a(SPLIT_SHARE), split_a(0.0));
    check_split_to_zero("split", &a, (&from, &to), [ask_many, ask_udp_new_ports]);
}
