//! IPv6 spill without a kernel: an IPv6 VIP's peers are ip6ip6 tunnel destinations,
//! its loop guard sits on the ip6ip6 device, and the families never mix.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tunnel_forwarder::diff::{LinkInfo, ObservedFilter};
use tunnel_forwarder::split::{Draw, SHARE_PRIO6, SPLIT_CHAIN, SplitClass, SplitRule};
use tunnel_forwarder::{
    Conflict, DesiredState, Dest, Forward, Observed, Owned, Peer, Protocol, Request, ServiceConfig,
    ServiceKey, Split, Tunnel6Device, TunnelDevice, TunnelIn, Vip, VipDevice, VipService, diff,
};

const VIP6: &str = "2001:db8:4::1";
const ME6: &str = "2001:db8:1::2";
const PEER6: &str = "2001:db8:2::2";
const MARK: u32 = 0x42;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rs6(last: u8, forward: Forward) -> Dest {
    Dest::new(ip(&format!("2001:db8:5::{last}")), 80, forward, 1)
}

/// VIP6:80 with two local real servers, one ip6ip6 peer and the guard; the IPv4
/// tunnel device too (the site is dual-stack).
fn desired6(forward: Forward, peer_w: u32) -> DesiredState {
    let local = vec![rs6(11, forward), rs6(12, forward)];
    DesiredState {
        vips: vec![Vip {
            addr: ip(VIP6),
            device: VipDevice::Loopback,
            services: vec![VipService {
                protocol: Protocol::Tcp,
                port: 80,
                config: ServiceConfig::default(),
                tunnel_in: Some(TunnelIn::like(MARK, &local)),
                local,
                peers: vec![Peer::ipip(ip(PEER6), peer_w)],
            }],
        }],
        tunnel: Some(TunnelDevice {
            name: "acip0".into(),
            local: Ipv4Addr::new(10, 1, 0, 2),
        }),
        tunnel6: Some(Tunnel6Device {
            name: "acip6".into(),
            local: ME6.parse().unwrap(),
        }),
        ..DesiredState::default()
    }
}

fn vip6_80() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip(VIP6),
        port: 80,
    }
}

/// The kernel after `d` was applied in full.
fn applied(d: &DesiredState) -> Observed {
    let t = d.compile().unwrap();
    let mut obs = Observed {
        services: t.services.clone(),
        ingress: true,
        ingress6: true,
        ..Observed::default()
    };
    obs.links.insert(
        "acip0".into(),
        LinkInfo {
            index: 5,
            kind: Some("ipip".into()),
            up: true,
            ipip_local: Some(Ipv4Addr::new(10, 1, 0, 2)),
            ..LinkInfo::default()
        },
    );
    obs.links.insert(
        "acip6".into(),
        LinkInfo {
            index: 6,
            kind: Some("ip6tnl".into()),
            up: true,
            ip6_local: Some(ME6.parse().unwrap()),
            ..LinkInfo::default()
        },
    );
    for a in &t.addrs {
        obs.addrs.push(tunnel_forwarder::diff::ObservedAddr {
            device: a.device.clone(),
            addr: a.addr,
            prefix_len: a.prefix_len,
            label: None,
        });
    }
    for (i, r) in t.marks.iter().enumerate() {
        let f = ObservedFilter {
            chain: 0,
            split: None,
            prio: t.filter_prio,
            handle: 0x800_800 + i as u32,
            rule: Some(*r),
        };
        if r.dst.is_ipv6() {
            obs.filters6.push(f);
        } else {
            obs.filters.push(f);
        }
    }
    for (k, v) in &t.sysctls {
        obs.sysctls.insert(k.clone(), Some(v.clone()));
    }
    obs
}

#[test]
fn an_ipv6_vip_spills_over_ip6ip6_and_is_guarded_on_its_device() {
    let d = desired6(Forward::DirectRoute, 0);
    let t = d.compile().unwrap();
    // The peer is a tunnel destination of the VIP's own family.
    let svc = &t.services[&vip6_80()];
    let peer = &svc.dests[&(ip(PEER6), 80)];
    assert_eq!((peer.forward, peer.weight), (Forward::Tunnel, 0));
    // The guard: an IPv6 fwmark service with the local servers only.
    let fkey = ServiceKey::Fwmark {
        mark: MARK,
        ipv6: true,
    };
    let guard: BTreeSet<IpAddr> = t.services[&fkey].dests.keys().map(|k| k.0).collect();
    assert_eq!(
        guard,
        BTreeSet::from([ip("2001:db8:5::11"), ip("2001:db8:5::12")])
    );
    let reqs = diff(&t, &Observed::default(), &Owned::default()).unwrap();
    let pos = |f: &dyn Fn(&Request) -> bool| reqs.iter().position(f).expect("present");
    let link = pos(
        &|r| matches!(r, Request::NewIp6tnl { name, local } if name == "acip6" && *local == ME6.parse::<Ipv6Addr>().unwrap()),
    );
    let up = pos(&|r| matches!(r, Request::LinkUp(n) if n == "acip6"));
    let fwm = pos(&|r| matches!(r, Request::NewService(k, _) if *k == fkey));
    let ingress = pos(&|r| matches!(r, Request::NewIngress(n) if n == "acip6"));
    let filter = pos(&|r| {
        matches!(r, Request::NewMarkFilter { device, rule, .. }
            if device == "acip6" && rule.dst == ip(VIP6) && rule.port == 80 && rule.mark == MARK)
    });
    assert!(
        link < up && up < fwm && fwm < filter && ingress < filter,
        "{reqs:#?}"
    );
    // Nothing of the IPv6 guard lands on the IPIP device, which holds no rule.
    assert!(
        !reqs
            .iter()
            .any(|r| matches!(r, Request::NewMarkFilter { device, .. } | Request::NewIngress(device) if device == "acip0")),
        "{reqs:#?}"
    );
    let cmd = reqs[filter].command();
    assert!(
        cmd.contains("protocol ipv6 u32 match ip6 dst 2001:db8:4::1/128"),
        "{cmd}"
    );
    // Applied: nothing more to do.
    assert_eq!(diff(&t, &applied(&d), &Owned::default()).unwrap(), vec![]);
}

#[test]
fn a_spill_step_on_an_ipv6_service_is_one_edit() {
    let before = applied(&desired6(Forward::DirectRoute, 0));
    let t = desired6(Forward::DirectRoute, 3).compile().unwrap();
    let reqs = diff(&t, &before, &Owned::default()).unwrap();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert!(
        matches!(&reqs[0], Request::SetDest(k, d) if *k == vip6_80() && d.addr == ip(PEER6) && d.weight == 3)
    );
}

#[test]
fn ipv6_nat_turns_on_ipv6_forwarding_only_then() {
    let key = "net/ipv6/conf/all/forwarding";
    let nat = desired6(Forward::Nat, 0).compile().unwrap();
    assert_eq!(nat.sysctls.get(key).map(String::as_str), Some("1"));
    for f in [Forward::DirectRoute, Forward::Tunnel] {
        let t = desired6(f, 0).compile().unwrap();
        assert_eq!(t.sysctls.get(key), None, "{f:?}");
    }
}

#[test]
fn families_never_mix_and_the_guard_needs_its_device() {
    // An IPv4 peer on the IPv6 service.
    let mut d = desired6(Forward::DirectRoute, 0);
    d.vips[0].services[0].peers[0].addr = ip("10.2.0.2");
    let e = d.compile().unwrap_err().to_string();
    assert!(e.contains("peer 10.2.0.2 is IPv4"), "{e}");
    // An IPv6 peer on an IPv4 service.
    let mut d = desired6(Forward::DirectRoute, 0);
    d.vips[0].addr = ip("10.101.4.1");
    d.vips[0].services[0].local = vec![Dest::new(ip("10.101.5.11"), 80, Forward::Nat, 1)];
    d.vips[0].services[0].tunnel_in = None;
    let e = d.compile().unwrap_err().to_string();
    assert!(e.contains("is IPv6"), "{e}");
    // The IPv6 guard without the ip6ip6 device.
    let mut d = desired6(Forward::DirectRoute, 0);
    d.tunnel6 = None;
    let e = d.compile().unwrap_err().to_string();
    assert!(e.contains("ip6ip6 tunnel device"), "{e}");
    // One name for both devices.
    let mut d = desired6(Forward::DirectRoute, 0);
    d.tunnel6.as_mut().unwrap().name = "acip0".into();
    assert!(d.compile().is_err());
}

#[test]
fn an_ip6tnl_device_with_another_local_is_a_conflict() {
    let d = desired6(Forward::DirectRoute, 0);
    let mut obs = applied(&d);
    obs.links.get_mut("acip6").unwrap().ip6_local = Some("2001:db8:9::9".parse().unwrap());
    let e = diff(&d.compile().unwrap(), &obs, &Owned::default()).unwrap_err();
    assert!(
        matches!(e, Conflict::TunnelLocal { ref name, .. } if name == "acip6"),
        "{e}"
    );
    // An ipip device of the ip6ip6 device's name: another kind.
    obs.links.get_mut("acip6").unwrap().kind = Some("ipip".into());
    let e = diff(&d.compile().unwrap(), &obs, &Owned::default()).unwrap_err();
    assert!(matches!(e, Conflict::LinkKind { .. }), "{e}");
}

#[test]
fn removing_the_ipv6_guard_deletes_its_filter_on_the_ip6ip6_device() {
    let with = desired6(Forward::DirectRoute, 0);
    let obs = applied(&with);
    let mut without = with.clone();
    without.vips[0].services[0].tunnel_in = None;
    let owned = Owned {
        services: with.compile().unwrap().services.keys().copied().collect(),
        addrs: BTreeSet::new(),
        sync: BTreeSet::new(),
    };
    let reqs = diff(&without.compile().unwrap(), &obs, &owned).unwrap();
    assert!(
        reqs.iter()
            .any(|r| matches!(r, Request::DelFilter { device, .. } if device == "acip6")),
        "{reqs:#?}"
    );
    assert!(reqs.iter().any(|r| matches!(
        r,
        Request::DelService(ServiceKey::Fwmark { ipv6: true, .. })
    )));
}

/// `desired6` with the site-wide split carrying IPv6 (decision 0006): the peer's
/// IPv4 and IPv6 tunnel endpoints at weight `w`, `share`/1024 split off on eth0.
fn split6(share: u16, w: u32) -> DesiredState {
    let mut d = desired6(Forward::DirectRoute, 0);
    d.split = Some(Split {
        devices: vec!["eth0".into()],
        mark: SPLIT_MARK,
        share,
        peers: vec![Peer::ipip(ip("10.2.0.2"), w)],
        peers6: vec![Peer::ipip(ip(PEER6), w)],
    });
    d
}

const SPLIT_MARK: u32 = 0x4143_0000;

/// What the kernel reads back after `reqs` landed on eth0's ingress and IPVS.
fn land(obs: &mut Observed, reqs: &[Request]) {
    let tc = obs.split_devices.entry("eth0".into()).or_default();
    for (i, r) in reqs.iter().enumerate() {
        let handle = 0x800_900 + i as u32;
        match r {
            Request::NewIngress(dev) if dev == "eth0" => tc.ingress = true,
            Request::NewClassFilter { prio, class, .. } => tc.filters.push(ObservedFilter {
                chain: 0,
                prio: *prio,
                handle,
                rule: None,
                split: Some(SplitRule::Class(*class, SPLIT_CHAIN)),
            }),
            Request::NewShareFilter {
                draw, block, mark, ..
            } => tc.filters.push(ObservedFilter {
                chain: SPLIT_CHAIN,
                prio: draw.prio(),
                handle,
                rule: None,
                split: Some(SplitRule::Share(*draw, *block, *mark)),
            }),
            Request::FlushChain { chain, .. } => tc.filters.retain(|f| f.chain != *chain),
            Request::DelFilter { prio, handle, .. } => tc
                .filters
                .retain(|f| (f.prio, f.handle) != (*prio, *handle)),
            _ => {}
        }
    }
}

fn with_eth0(mut obs: Observed) -> Observed {
    obs.links.insert("eth0".into(), common::state::up_link(2));
    obs
}

#[test]
fn the_split_carries_an_ipv6_vip_through_an_ipv6_fwmark_service() {
    let d = split6(276, 1);
    let t = d.compile().unwrap();
    let key6 = ServiceKey::Fwmark {
        mark: SPLIT_MARK,
        ipv6: true,
    };
    let v6 = &t.services[&key6];
    assert_eq!(v6.config.scheduler, "wrr");
    let peer = &v6.dests[&(ip(PEER6), 0)];
    assert_eq!((peer.forward, peer.weight), (Forward::Tunnel, 1));
    // The IPv6 VIP's class filter, at the priority after the IPv4 classes'.
    let split = t.split.as_ref().unwrap();
    assert!(split.ipv6);
    let class6 = SplitClass {
        dst: ip(VIP6),
        protocol: Protocol::Tcp,
        port: 80,
    };
    assert!(split.classes.contains(&class6));
    let mut obs = with_eth0(applied(&split6(0, 0)));
    obs.services.remove(&key6);
    let reqs = diff(&t, &obs, &Owned::default()).unwrap();
    let class = reqs
        .iter()
        .find_map(|r| match r {
            Request::NewClassFilter { prio, class, .. } => Some((*prio, *class)),
            _ => None,
        })
        .expect("class filter");
    assert_eq!(class, (t.filter_prio + 1, class6));
    let cmd = reqs
        .iter()
        .find(|r| matches!(r, Request::NewClassFilter { .. }))
        .unwrap()
        .command();
    assert!(
        cmd.contains("prio 44034 protocol ipv6 u32 match ip6 dst 2001:db8:4::1/128"),
        "{cmd}"
    );
    let draws: BTreeSet<Draw> = reqs
        .iter()
        .filter_map(|r| match r {
            Request::NewShareFilter { draw, .. } => Some(*draw),
            _ => None,
        })
        .collect();
    assert_eq!(draws, BTreeSet::from(Draw::ALL));
    assert!(
        reqs.iter()
            .any(|r| matches!(r, Request::NewService(k, _) if *k == key6))
    );
    // Landed and read back: nothing left to do.
    land(&mut obs, &reqs);
    obs.services = t.services.clone();
    assert_eq!(diff(&t, &obs, &Owned::default()).unwrap(), vec![]);

    // A step to share 0: both families' share filters go, the classes stay.
    let zero = split6(0, 0).compile().unwrap();
    let mut obs0 = obs.clone();
    obs0.services = zero.services.clone();
    let reqs = diff(&zero, &obs0, &Owned::default()).unwrap();
    assert_eq!(
        reqs,
        vec![Request::FlushChain {
            device: "eth0".into(),
            chain: SPLIT_CHAIN
        }]
    );
    // The split no longer carrying IPv6: the IPv6 class filter deleted at its own
    // priority, the IPv6 share filters gone with the chain's rewrite.
    let mut v4only = split6(276, 1);
    v4only.split.as_mut().unwrap().peers6.clear();
    let t4 = v4only.compile().unwrap();
    let reqs = diff(&t4, &obs, &Owned::default()).unwrap();
    assert!(
        reqs.iter()
            .any(|r| matches!(r, Request::DelFilter { prio, .. } if *prio == t.filter_prio + 1)),
        "{reqs:#?}"
    );
    assert!(
        !reqs
            .iter()
            .any(|r| matches!(r, Request::NewShareFilter { draw, .. } if draw.ipv6())),
        "{reqs:#?}"
    );
    land(&mut obs, &reqs);
    assert!(
        obs.split_devices["eth0"]
            .filters
            .iter()
            .all(|f| f.prio != t.filter_prio + 1 && f.prio != SHARE_PRIO6)
    );
}
