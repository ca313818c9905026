//! A dual-stack site core: one spill rule and one share per peer for both families,
//! the load over both, the IPv6 service's share split off ahead of IPVS into the
//! IPv6 split service (ip6ip6 to the peer), the MSS clamp kept for what it carries.

use std::path::Path;
use std::time::Duration;

use geo_balancer::health::ProbeOutcome;
use tunnel_forwarder as tf;

use super::tests::{T0, at, deliver, key, probe, reconciled, report, sample};
use super::{Effect, Site};

const SERVERS: [&str; 4] = [
    "web/tcp80/10.101.5.11:80",
    "web/tcp80/10.101.5.12:80",
    "web6/tcp80/[2001:db8:5::11]:80",
    "web6/tcp80/[2001:db8:5::12]:80",
];

/// configs/idc1-dual-stack.toml, the split on.
fn dual_stack() -> crate::config::SiteConfig {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/idc1-dual-stack.toml"
    ));
    let mut c = crate::config::load(path).unwrap();
    c.exchange.interval = Duration::from_secs(2);
    c
}

/// IPVS stats: `v4` and `v6` active connections on each local server of each VIP.
fn stats(v4: u32, v6: u32) -> Vec<tf::ServiceStats> {
    let dest = |addr: &str, fwd, active| tf::DestStats {
        addr: addr.parse().unwrap(),
        port: 80,
        forward: Some(fwd),
        weight: 1,
        active,
        inactive: 0,
        persistent: 0,
        counters: tf::Counters::default(),
    };
    let svc = |vip: &str, dests| tf::ServiceStats {
        key: tf::ServiceKey::Addr {
            protocol: tf::Protocol::Tcp,
            addr: vip.parse().unwrap(),
            port: 80,
        },
        counters: tf::Counters::default(),
        dests,
    };
    use tf::Forward::{DirectRoute, Tunnel};
    vec![
        svc(
            "10.101.4.1",
            vec![
                dest("10.101.5.11", DirectRoute, v4),
                dest("10.101.5.12", DirectRoute, v4),
                dest("10.101.2.2", Tunnel, 0),
            ],
        ),
        svc(
            "2001:db8:4::1",
            vec![
                dest("2001:db8:5::11", DirectRoute, v6),
                dest("2001:db8:5::12", DirectRoute, v6),
                dest("2001:db8:2::2", Tunnel, 0),
            ],
        ),
    ]
}

#[test]
fn one_rule_for_both_families_the_ipv6_share_goes_over_ip6ip6() {
    let (mut site, first) = Site::new(dual_stack(), T0).unwrap();
    let Some(Effect::Reconcile(d)) = first.first() else {
        panic!("{first:?}");
    };
    // The desired state: the ip6ip6 device and the IPv6 service's peer.
    assert_eq!(
        d.tunnel6.as_ref().map(|t| t.local.to_string()).as_deref(),
        Some("2001:db8:1::2")
    );
    assert_eq!(
        d.vips[1].services[0].peers[0].addr.to_string(),
        "2001:db8:2::2"
    );
    // The split carries both families: the peer's ip6ip6 endpoint in the IPv6 split
    // service, the IPv6 VIP's class filter beside the IPv4 one.
    let split = d.split.as_ref().expect("split");
    assert_eq!(split.peers6[0].addr.to_string(), "2001:db8:2::2");
    let t = d.compile().unwrap();
    let classes = &t.split.as_ref().unwrap().classes;
    assert!(classes.iter().any(|c| c.dst.is_ipv6()) && classes.iter().any(|c| c.dst.is_ipv4()));
    assert_eq!(t.services[&split.key6()].dests.len(), 1);
    reconciled(&mut site, T0, Ok(9));
    for rs in SERVERS {
        probe(&mut site, rs, T0, ProbeOutcome::Success);
        probe(&mut site, rs, at(2), ProbeOutcome::Success);
    }
    deliver(&mut site, &report(0.3, 1, at(3)), &key(), at(3))
        .0
        .unwrap();
    // IPv4 alone: 2 x 115 over the 400 of both families' servers, 0.575: no spill.
    let e = sample(&mut site, at(4), &stats(115, 0));
    let st = site.status(at(4), &[]);
    assert!(
        st.local_load.is_some_and(|l| (l - 0.575).abs() < 1e-6),
        "{:?} {e:?}",
        st.local_load
    );
    assert!(st.spill.iter().all(|s| s.share == 0.0), "{:?}", st.spill);
    // Both: 460 over 400, 1.15: the one rule spills, and the same step gives the
    // peer its weight in both split services and writes both families' share
    // filters; no VIP service is touched (its own peer destination stays at 0).
    let e = sample(&mut site, at(6), &stats(115, 115));
    let st = site.status(at(6), &[]);
    assert!(st.spill[0].share > 0.0, "{:?}", st.spill);
    assert_eq!(st.spill[0].families, ["ipv4", "ipv6"]);
    let peer6: std::net::IpAddr = "2001:db8:2::2".parse().unwrap();
    let Some(Effect::Apply(r)) = e.iter().find(|e| matches!(e, Effect::Apply(_))) else {
        panic!("{e:?}");
    };
    assert!(
        r.iter().any(|r| matches!(r,
            tf::Request::SetDest(tf::ServiceKey::Fwmark { ipv6: true, .. }, d)
                if d.addr == peer6 && d.weight > 0)),
        "{r:?}"
    );
    let draws: std::collections::BTreeSet<_> = r
        .iter()
        .filter_map(|r| match r {
            tf::Request::NewShareFilter { draw, .. } => Some(*draw),
            _ => None,
        })
        .collect();
    assert_eq!(
        draws,
        std::collections::BTreeSet::from(tf::split::Draw::ALL)
    );
    assert!(
        !r.iter()
            .any(|r| matches!(r, tf::Request::SetDest(tf::ServiceKey::Addr { .. }, _))),
        "{r:?}"
    );
    assert!(site.desired.vips[1].services[0].peers[0].weight == 0);
    // Connections through both split services count as tunnelled to the peer.
    let split_svc = |ipv6: bool, addr: &str, active| tf::ServiceStats {
        key: tf::ServiceKey::Fwmark {
            mark: crate::layout::SPLIT_MARK,
            ipv6,
        },
        counters: tf::Counters::default(),
        dests: vec![tf::DestStats {
            addr: addr.parse().unwrap(),
            port: 0,
            forward: Some(tf::Forward::Tunnel),
            weight: 1000,
            active,
            inactive: 0,
            persistent: 0,
            counters: tf::Counters::default(),
        }],
    };
    let mut st = stats(115, 115);
    st.push(split_svc(false, "10.101.2.2", 20));
    st.push(split_svc(true, "2001:db8:2::2", 12));
    sample(&mut site, at(8), &st);
    assert_eq!(site.tunnels[0].active_conns, 32);
    // Nothing IPv4 is ever aimed at an IPv6 address, nor the reverse.
    for e in &e {
        if let Effect::Apply(r) = e {
            for r in r {
                if let tf::Request::SetDest(k, d) = r {
                    assert_eq!(k.is_ipv6(), d.addr.is_ipv6(), "{r:?}");
                }
            }
        }
    }
}

/// Decision 0013's clamp rides the receiving site's real servers: a connection the
/// split sends away reaches the peer through its ip6ip6 device and loop guard like
/// one a service's own peer destination sends, so the peer's servers (every IPv6
/// server of a site with peers) still advertise the smaller MSS with the split on.
#[test]
fn the_split_carrying_ipv6_keeps_the_mss_clamp_on_every_ipv6_server() {
    let cfg = dual_stack();
    assert!(!cfg.site.client_devices.is_empty() && cfg.site.ipv6_mss_clamp);
    let plan = crate::plan::render(&cfg);
    assert!(
        plan.contains("(IPv4 and IPv6 VIPs; IPv6 over the peers' tunnel_endpoint_v6)"),
        "{plan}"
    );
    assert!(
        plan.contains("protocol ipv6 u32 match ip6 dst 2001:db8:4::1/128"),
        "{plan}"
    );
    assert!(plan.contains("advmss 1400"), "{plan}");
    // Every IPv6 server the split can send connections to (a site with peers: DR
    // and NAT servers too) advertises the clamped MSS.
    let methods: Vec<_> = cfg
        .vips
        .iter()
        .filter(|v| v.address.is_ipv6())
        .flat_map(|v| v.services.iter().flat_map(|s| s.real_servers.iter()))
        .map(|rs| cfg.site.ipv6_mss(rs.method, !cfg.peers.is_empty()))
        .collect();
    assert!(!methods.is_empty());
    assert!(methods.iter().all(|m| *m == Some(1400)), "{methods:?}");
}
