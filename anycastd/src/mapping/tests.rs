use std::path::Path;

use geo_balancer::weights::Plan;
use tunnel_forwarder as tf;

use super::*;
use crate::layout;

#[test]
fn persistence_groups_one_ipv4_address_or_the_configured_ipv6_prefix() {
    let mut c = cfg();
    c.vips[0].services[0].persistence = Some(Duration::from_secs(300));
    let layout = Layout::new(&c);
    let v4 = vip_service(&c, layout.service(SvcId(0)), None);
    assert_eq!(v4.config.persistence.map(|p| p.netmask_len), Some(32));
    c.vips[0].address = "2001:db8:4::1".parse().unwrap();
    c.vips[0].prefix = "2001:db8:4::/48".parse().unwrap();
    let layout = Layout::new(&c);
    let v6 = vip_service(&c, layout.service(SvcId(0)), None);
    assert_eq!(v6.config.persistence.map(|p| p.netmask_len), Some(64));
    c.vips[0].services[0].persistence_prefix_v6 = 128;
    let v6 = vip_service(&c, layout.service(SvcId(0)), None);
    assert_eq!(v6.config.persistence.map(|p| p.netmask_len), Some(128));
    // Never an IPv4 tunnel destination on an IPv6 service: a peer without an
    // IPv6 endpoint (validation refuses that config) gets none.
    assert!(v6.peers.is_empty(), "{v6:?}");
    assert_eq!(v4.peers.len(), c.peers.len());
    c.peers[0].tunnel_endpoint_v6 = Some("2001:db8:2::2".parse().unwrap());
    let v6 = vip_service(&c, layout.service(SvcId(0)), None);
    assert_eq!(v6.peers[0].addr.to_string(), "2001:db8:2::2");
}

fn cfg() -> SiteConfig {
    crate::config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/idc1.toml"
    )))
    .unwrap()
}

#[test]
fn every_library_accepts_what_the_config_maps_to() {
    let c = cfg();
    speaker_config(&c).validate().unwrap();
    spill_config(&c).validate().unwrap();
    exchange_config(&c).validate().unwrap();
    for ch in checks(&c) {
        ch.validate().unwrap();
    }
    desired_state(&c, &Layout::new(&c), &[]).compile().unwrap();
}

#[test]
fn sync_runs_both_roles_unless_one_is_named() {
    let mut c = cfg();
    assert!(sync(&c).is_empty());
    c.sync = Some(config::Sync {
        interface: "eth1".into(),
        syncid: 7,
        roles: config::SyncRoles::Both,
        group: Some("239.0.0.81".parse().unwrap()),
        port: None,
        ttl: Some(2),
        line: 1,
    });
    let both = desired_state(&c, &Layout::new(&c), &[]).sync;
    assert_eq!(
        both.iter().map(|d| d.role).collect::<Vec<_>>(),
        [tf::SyncRole::Master, tf::SyncRole::Backup]
    );
    assert!(both.iter().all(|d| d.syncid == 7
        && d.interface == "eth1"
        && d.ttl == Some(2)
        && d.group == Some("239.0.0.81".parse().unwrap())));
    if let Some(s) = c.sync.as_mut() {
        s.roles = config::SyncRoles::Backup;
    }
    let roles: Vec<_> = sync(&c).iter().map(|d| d.role).collect();
    assert_eq!(roles, [tf::SyncRole::Backup]);
}

#[test]
fn tunnel_pmtu_fragments_by_default_and_can_be_turned_off() {
    let mut c = cfg();
    let sysctl = |c: &SiteConfig| {
        desired_state(c, &Layout::new(c), &[])
            .compile()
            .unwrap()
            .sysctls
            .get(tf::model::PMTU_DISC_SYSCTL)
            .cloned()
    };
    assert_eq!(sysctl(&c).as_deref(), Some("0"));
    c.site.tunnel_pmtu = config::TunnelPmtu::Discover;
    assert_eq!(sysctl(&c).as_deref(), Some("1"));
    // No peer, nothing tunnelled: not ours to set.
    c.peers.clear();
    c.site.client_devices.clear();
    assert_eq!(sysctl(&c), None);
}

#[test]
fn servers_are_named_by_vip_service_and_address() {
    let ids: Vec<String> = servers(&cfg())
        .iter()
        .map(|(_, id)| id.to_string())
        .collect();
    assert_eq!(
        ids,
        ["web/tcp80/10.101.5.11:80", "web/tcp80/10.101.5.12:80"]
    );
}

#[test]
fn without_a_plan_nothing_gets_traffic_and_peers_are_tunnels_at_weight_0() {
    let c = cfg();
    let d = desired_state(&c, &Layout::new(&c), &[]);
    let svc = &d.vips[0].services[0];
    assert!(
        svc.local
            .iter()
            .all(|x| x.weight == 0 && x.forward == tf::Forward::DirectRoute)
    );
    assert_eq!(
        svc.peers,
        vec![tf::Peer::ipip("10.101.2.2".parse().unwrap(), 0)]
    );
    assert_eq!(
        svc.tunnel_in.as_ref().map(|t| t.mark),
        Some(layout::MARK_BASE)
    );
    assert_eq!(d.tunnel.as_ref().unwrap().name, "anycast0");
}

#[test]
fn a_plan_sets_local_and_peer_weights() {
    let c = cfg();
    let plan = Plan {
        local: vec![
            (ServerId::new("web/tcp80/10.101.5.11:80"), 800),
            (ServerId::new("web/tcp80/10.101.5.12:80"), 0),
        ],
        peers: vec![(SiteId::new("idc2"), 200)],
        tunnel_in: vec![(ServerId::new("web/tcp80/10.101.5.11:80"), 1)],
        absent: vec![false, false],
    };
    let d = desired_state(&c, &Layout::new(&c), &[Some(plan.clone())]);
    let svc = &d.vips[0].services[0];
    assert_eq!(svc.local[0].weight, 800);
    assert_eq!(svc.local[1].weight, 0);
    assert_eq!(svc.peers[0].weight, 200);
    let tin = svc.tunnel_in.as_ref().unwrap();
    assert_eq!((tin.dests[0].weight, tin.dests[1].weight), (1, 0));
    // A failed server leaves both services; the other keeps its place.
    let failed = Plan {
        absent: vec![false, true],
        ..plan
    };
    let d = desired_state(&c, &Layout::new(&c), &[Some(failed)]);
    let svc = &d.vips[0].services[0];
    let addrs: Vec<String> = svc.local.iter().map(|d| d.addr.to_string()).collect();
    assert_eq!(addrs, ["10.101.5.11"]);
    assert_eq!(svc.local[0].weight, 800);
    assert_eq!(svc.tunnel_in.as_ref().unwrap().dests.len(), 1);
}

#[test]
fn graceful_shutdown_and_neighbor_attributes_go_on_the_route() {
    let c = cfg();
    let mut n = c.bgp.neighbors[0].clone();
    n.communities = vec![(65000, 100)];
    n.prepend = 2;
    let r = route(&c.vips[0], &n, true);
    assert!(r.graceful_shutdown);
    assert_eq!(r.communities, vec![(65000 << 16) | 100]);
    assert_eq!(r.as_path_prepend, 2);
    assert_eq!(r.prefix.to_string(), "10.101.4.0/24");
}
