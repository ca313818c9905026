//! IPVS connection sync between two directors of one site, in the lab kernel
//! (issue 15): a connection scheduled by director d1 goes on through director d2
//! when the router moves the VIP to d2, because d2's backup sync daemon learned it
//! from d1's master; without sync d2 answers the moved connection with a reset.
//!
//! ```text
//!  client -- r -- d1 ──┐ sync0 (10.4.0.0/24, the sync daemons' multicast)
//!            |\-- d2 ──┘
//!            \--- s1 (real server, VIP on lo, reached by IPIP from either director)
//! ```

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anycast_lab::uml::{Lab, Topology, guest};
use common::Director;
use tunnel_forwarder::{
    DesiredState, Dest, Forward, Protocol, ServiceConfig, SyncDaemon, SyncRole, Vip, VipDevice,
    VipService,
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 9, 9, 1);
const S1: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 2);
const SYNC_ID: u8 = 7;

fn ha_site() -> Topology {
    Topology::new()
        .router("r")
        .router("d1")
        .router("d2")
        .link("client", "eth0", "10.0.0.2/24", "r", "c0", "10.0.0.1/24")
        .link("r", "e1", "10.1.0.1/24", "d1", "eth0", "10.1.0.2/24")
        .link("r", "e2", "10.2.0.1/24", "d2", "eth0", "10.2.0.2/24")
        .link("r", "e3", "10.3.0.1/24", "s1", "eth0", "10.3.0.2/24")
        .link("d1", "sync0", "10.4.0.1/24", "d2", "sync0", "10.4.0.2/24")
        .route("client", "default via 10.0.0.1")
        .route("d1", "default via 10.1.0.1")
        .route("d2", "default via 10.2.0.1")
        .route("s1", "default via 10.3.0.1")
        .route("r", "10.9.9.1/32 via 10.1.0.2")
        .addr("s1", "lo", "10.9.9.1/32")
        .cmd("s1", "ip link set tunl0 up")
        .sysctl("s1", "net.ipv4.conf.all.rp_filter", "0")
        .sysctl("s1", "net.ipv4.conf.tunl0.rp_filter", "0")
}

/// The site's service on either director: VIP:80, `sh`, the one real server by
/// IPIP; the sync daemons of both roles when `sync`, none otherwise.
fn director_state(sync: bool) -> DesiredState {
    DesiredState {
        vips: vec![Vip {
            addr: IpAddr::V4(VIP),
            device: VipDevice::Loopback,
            services: vec![VipService {
                protocol: Protocol::Tcp,
                port: 80,
                config: ServiceConfig {
                    scheduler: "sh".into(),
                    ..ServiceConfig::default()
                },
                local: vec![Dest::new(IpAddr::V4(S1), 80, Forward::Tunnel, 1)],
                peers: vec![],
                tunnel_in: None,
            }],
        }],
        sync: if sync {
            vec![
                SyncDaemon::new(SyncRole::Master, "sync0", SYNC_ID),
                SyncDaemon::new(SyncRole::Backup, "sync0", SYNC_ID),
            ]
        } else {
            vec![]
        },
        ..DesiredState::default()
    }
}

fn vip80() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(VIP), 80)
}

/// The router sends the VIP to director `via`.
fn route_vip_to(via: &str) {
    let out = guest::sh_in(
        "r",
        &format!("ip route replace 10.9.9.1/32 via {via} && echo ok"),
    );
    assert!(out.contains("ok"), "{out}");
}

/// d2's connection table holds the client's connection to the VIP.
fn d2_knows_the_connection() -> Option<String> {
    let t = guest::sh_in("d2", "ipvsadm -Lnc");
    t.contains("10.0.0.2:").then_some(t)
}

/// One connection through d1, then the VIP moved to d2; returns what the second
/// request on the connection got.
fn move_a_connection(label: &str, sync: bool) -> String {
    route_vip_to("10.1.0.2");
    let mut conn = guest::tcp::Client::connect("client", vip80())
        .unwrap_or_else(|e| panic!("{label}: connect: {e}"));
    let first = conn.ask().unwrap_or_else(|e| format!("error:{e}"));
    guest::check(
        &format!("{label}_first_answer_through_d1"),
        first == "s1",
        &first,
    );
    if sync {
        let t0 = std::time::Instant::now();
        let seen = guest::wait_for(Duration::from_secs(8), d2_knows_the_connection);
        guest::check(
            &format!("{label}_d2_learned_the_connection"),
            seen.is_some(),
            &format!(
                "after {} ms: {}",
                t0.elapsed().as_millis(),
                guest::sh_in("d2", "ipvsadm -Lnc; ipvsadm -L --daemon")
            ),
        );
    }
    route_vip_to("10.2.0.2");
    conn.ask().unwrap_or_else(|e| format!("error:{e}"))
}

#[test]
fn lab_kernel_sync_keeps_a_connection_through_the_other_director() {
    if guest::active().is_some() {
        return in_guest();
    }
    if !anycast_lab::require(
        "lab_kernel_sync_keeps_a_connection_through_the_other_director",
        &[anycast_lab::Need::LabKernel, anycast_lab::Need::Root],
    ) {
        return;
    }
    Lab::new("tf-sync")
        .topology(ha_site())
        .timeout(Duration::from_secs(120))
        .guest_test("lab_kernel_sync_keeps_a_connection_through_the_other_director")
        .run()
        .expect("lab kernel runs")
        .assert_passed();
}

fn in_guest() {
    guest::tcp::serve("s1", vip80(), "s1");
    let d1 = Director::start("d1");
    let d2 = Director::start("d2");

    // The control: no sync, the moved connection is reset by d2.
    for d in [&d1, &d2] {
        d.reconcile(&director_state(false));
    }
    let got = move_a_connection("nosync", false);
    guest::check(
        "nosync_moved_connection_is_lost",
        got.starts_with("error:"),
        &got,
    );

    // Sync daemons on both directors, both roles.
    for (name, d) in [("d1", &d1), ("d2", &d2)] {
        let r = d.reconcile(&director_state(true));
        let starts = r
            .requests
            .iter()
            .filter(|q| matches!(q, tunnel_forwarder::Request::NewSyncDaemon(_)))
            .count();
        guest::check(
            &format!("{name}_starts_two_daemons"),
            starts == 2,
            &format!("{:?}", r.requests),
        );
        let again = d.reconcile(&director_state(true));
        guest::check(
            &format!("{name}_second_reconcile_zero_changes"),
            again.requests.is_empty(),
            &format!("{:?}", again.requests),
        );
    }
    let daemons = guest::sh_in("d1", "ipvsadm -L --daemon");
    guest::check(
        "ipvsadm_sees_both_daemons",
        daemons.contains("master sync daemon (mcast=sync0, syncid=7,")
            && daemons.contains("backup sync daemon (mcast=sync0, syncid=7,"),
        &daemons,
    );
    let got = move_a_connection("sync", true);
    guest::check("sync_moved_connection_goes_on", got == "s1", &got);

    // Sync turned off again: both daemons stop.
    let r = d1.reconcile(&director_state(false));
    let left = guest::sh_in("d1", "ipvsadm -L --daemon");
    guest::check(
        "sync_off_stops_the_daemons",
        r.requests.len() == 2 && !left.contains("sync daemon"),
        &format!("{:?}\n{left}", r.requests),
    );
}
