//! The diff logic without a kernel: desired state against observed kernel state.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use common::state::{VIP, add_operator_objects, one_service};
use tunnel_forwarder::diff::{LinkInfo, ObservedAddr, ObservedFilter, label_for};
use tunnel_forwarder::{
    Conflict, DesiredState, Dest, Encap, Forward, Observed, Owned, Protocol, Request, ServiceKey,
    TunnelIn, diff,
};

const ME: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);

fn rs(last: u8, w: u32) -> Dest {
    Dest::new(
        IpAddr::V4(Ipv4Addr::new(10, 101, 5, last)),
        80,
        Forward::Nat,
        w,
    )
}

fn desired(peer_w: u32) -> DesiredState {
    let local = vec![rs(11, 1), rs(12, 1)];
    let tunnel_in = Some(TunnelIn::like(65, &local));
    one_service(local, tunnel_in, ME, PEER, peer_w)
}

fn vip80() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: 80,
    }
}

/// What the kernel would report after applying `d` completely.
fn applied(d: &DesiredState) -> Observed {
    let t = d.compile().unwrap();
    let mut obs = Observed {
        services: t.services.clone(),
        ingress: true,
        ..Observed::default()
    };
    obs.links.insert(
        "lo".into(),
        LinkInfo {
            index: 1,
            kind: None,
            up: true,
            ..LinkInfo::default()
        },
    );
    obs.links.insert(
        "acip0".into(),
        LinkInfo {
            index: 5,
            kind: Some("ipip".into()),
            up: true,
            ipip_local: Some(ME),
            ipip_remote: Some(Ipv4Addr::UNSPECIFIED),
            ip6_local: None,
        },
    );
    for a in &t.addrs {
        obs.addrs.push(ObservedAddr {
            device: a.device.clone(),
            addr: a.addr,
            prefix_len: a.prefix_len,
            label: Some(label_for(&a.device)),
        });
    }
    for (i, r) in t.marks.iter().enumerate() {
        obs.filters.push(ObservedFilter {
            chain: 0,
            split: None,
            prio: t.filter_prio,
            handle: 0x800_800 + i as u32,
            rule: Some(*r),
        });
    }
    for (k, v) in &t.sysctls {
        obs.sysctls.insert(k.clone(), Some(v.clone()));
    }
    obs
}

fn owned(d: &DesiredState) -> Owned {
    Owned {
        services: d.compile().unwrap().services.keys().copied().collect(),
        addrs: BTreeSet::new(),
        sync: BTreeSet::new(),
    }
}

#[test]
fn empty_kernel_gets_everything_in_a_safe_order() {
    let d = desired(0);
    let t = d.compile().unwrap();
    let reqs = diff(&t, &Observed::default(), &Owned::default()).unwrap();
    let pos = |f: &dyn Fn(&Request) -> bool| reqs.iter().position(f).expect("present");
    let link = pos(&|r| matches!(r, Request::NewIpip { .. }));
    let up = pos(&|r| matches!(r, Request::LinkUp(n) if n == "acip0"));
    let fwm = pos(&|r| {
        matches!(
            r,
            Request::NewService(ServiceKey::Fwmark { mark: 65, .. }, _)
        )
    });
    let filter = pos(&|r| matches!(r, Request::NewMarkFilter { .. }));
    let ingress = pos(&|r| matches!(r, Request::NewIngress(_)));
    assert!(link < up && up < fwm, "{reqs:#?}");
    // The fwmark service exists before packets get its mark.
    assert!(fwm < filter && ingress < filter, "{reqs:#?}");
    assert_eq!(
        reqs.iter()
            .filter(|r| matches!(r, Request::NewDest(..)))
            .count(),
        3 + 2,
        "VIP:80 has 2 local + 1 peer, the fwmark service 2 local"
    );
    assert!(
        reqs.iter()
            .any(|r| matches!(r, Request::NewAddr(a) if a.device == "lo"))
    );
    assert!(
        reqs.iter()
            .any(|r| matches!(r, Request::NewAddr(a) if a.device == "acip0"))
    );
    assert!(reqs.iter().any(
        |r| matches!(r, Request::Sysctl { key, value } if key == "net/ipv4/vs/conntrack" && value == "1")
    ));
}

#[test]
fn applied_state_gives_no_changes() {
    let d = desired(3);
    let reqs = diff(&d.compile().unwrap(), &applied(&d), &owned(&d)).unwrap();
    assert_eq!(reqs, vec![]);
}

#[test]
fn weight_change_is_one_edit_in_place() {
    let obs = applied(&desired(0));
    let d = desired(7);
    let reqs = diff(&d.compile().unwrap(), &obs, &owned(&d)).unwrap();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    match &reqs[0] {
        Request::SetDest(k, dest) => {
            assert_eq!(*k, vip80());
            assert_eq!(dest.addr, IpAddr::V4(PEER));
            assert_eq!(dest.weight, 7);
            assert_eq!(dest.forward, Forward::Tunnel);
        }
        other => panic!("expected SetDest, got {other:?}"),
    }
    assert!(
        reqs[0]
            .command()
            .starts_with("ipvsadm -e -t 10.101.4.1:80 -r 10.2.0.2:80 -i -w 7")
    );
}

#[test]
fn tunnel_type_and_port_changes_are_one_edit_in_place() {
    let with = |e: Encap| {
        let mut d = desired(0);
        d.vips[0].services[0].peers[0].encap = e;
        d
    };
    let gue = |port| Encap::Gue { port, csum: false };
    let mut last = applied(&desired(0));
    for (next, ipvsadm) in [
        (
            gue(6080),
            "-i -w 0 --tun-type gue --tun-port 6080 --tun-nocsum",
        ),
        (
            gue(5555),
            "-i -w 0 --tun-type gue --tun-port 5555 --tun-nocsum",
        ),
        (
            Encap::Gre { csum: true },
            "-i -w 0 --tun-type gre --tun-csum",
        ),
        (Encap::Ipip, "-i -w 0"),
    ] {
        let d = with(next);
        let reqs = diff(&d.compile().unwrap(), &last, &owned(&d)).unwrap();
        assert_eq!(reqs.len(), 1, "{next}: {reqs:?}");
        assert!(
            matches!(reqs[0], Request::SetDest(k, dest) if k == vip80() && dest.encap == next),
            "{reqs:?}"
        );
        assert!(
            reqs[0].command().ends_with(ipvsadm),
            "{}",
            reqs[0].command()
        );
        last = applied(&d);
        assert!(
            diff(&d.compile().unwrap(), &last, &owned(&d))
                .unwrap()
                .is_empty()
        );
    }
    // GUE needs a port, and only a tunnel destination has an encapsulation.
    let err = with(gue(0)).compile().unwrap_err().to_string();
    assert!(err.contains("GUE to port 0"), "{err}");
    let mut d = desired(0);
    let rs = &mut d.vips[0].services[0].local[0];
    *rs = rs.with_encap(gue(6080));
    let err = d.compile().unwrap_err().to_string();
    assert!(err.contains("is not a tunnel (-i) destination"), "{err}");
}

#[test]
fn forward_method_and_scheduler_changes_are_edits_too() {
    let mut obs = applied(&desired(0));
    let s = obs.services.get_mut(&vip80()).unwrap();
    s.config.scheduler = "rr".into();
    s.dests.values_mut().next().unwrap().forward = Forward::DirectRoute;
    let d = desired(0);
    let reqs = diff(&d.compile().unwrap(), &obs, &owned(&d)).unwrap();
    assert!(
        matches!(reqs[0], Request::SetService(k, ref c) if k == vip80() && c.scheduler == "wrr")
    );
    assert!(matches!(reqs[1], Request::SetDest(..)));
    assert_eq!(reqs.len(), 2);
}

#[test]
fn operator_objects_are_left_alone() {
    let d = desired(0);
    let mut obs = applied(&d);
    let op = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: 8080,
    };
    add_operator_objects(&mut obs, op);
    obs.filters.push(ObservedFilter {
        chain: 0,
        split: None,
        prio: 1,
        handle: 0x800_800,
        rule: None,
    });
    let reqs = diff(&d.compile().unwrap(), &obs, &owned(&d)).unwrap();
    assert_eq!(reqs, vec![]);
    // Even with nothing desired, only our objects go.
    let empty = DesiredState {
        tunnel: d.tunnel.clone(),
        ..DesiredState::default()
    };
    let reqs = diff(&empty.compile().unwrap(), &obs, &owned(&d)).unwrap();
    assert!(
        reqs.iter()
            .all(|r| !matches!(r, Request::DelService(k) if *k == op))
    );
    assert!(
        reqs.iter()
            .any(|r| matches!(r, Request::DelService(k) if *k == vip80()))
    );
    assert!(reqs.iter().any(|r| matches!(r, Request::DelFilter { prio, .. } if *prio == tunnel_forwarder::DEFAULT_FILTER_PRIO)));
    assert!(
        !reqs
            .iter()
            .any(|r| matches!(r, Request::DelFilter { prio: 1, .. }))
    );
    assert!(
        reqs.iter()
            .any(|r| matches!(r, Request::DelAddr(a) if a.addr == IpAddr::V4(VIP)))
    );
    assert!(
        !reqs
            .iter()
            .any(|r| matches!(r, Request::DelAddr(a) if a.addr.to_string() == "192.0.2.7"))
    );
}

#[test]
fn removed_peer_is_deleted_after_additions() {
    let obs = applied(&desired(0));
    let mut d = desired(0);
    d.vips[0].services[0].peers.clear();
    d.vips[0].services[0].local.push(rs(13, 1));
    let reqs = diff(&d.compile().unwrap(), &obs, &owned(&d)).unwrap();
    let add = reqs
        .iter()
        .position(|r| matches!(r, Request::NewDest(_, x) if x.addr.to_string() == "10.101.5.13"));
    let del = reqs
        .iter()
        .position(|r| matches!(r, Request::DelDest(_, a, _) if *a == IpAddr::V4(PEER)));
    assert!(add.unwrap() < del.unwrap(), "{reqs:?}");
}

#[test]
fn stale_or_foreign_shaped_filters_at_our_prio_are_replaced() {
    let d = desired(0);
    let mut obs = applied(&d);
    let mut wrong = obs.filters[0].rule.unwrap();
    wrong.mark = 99;
    obs.filters[0].rule = Some(wrong);
    let reqs = diff(&d.compile().unwrap(), &obs, &owned(&d)).unwrap();
    assert!(matches!(reqs[0], Request::NewMarkFilter { rule, .. } if rule.mark == 65));
    assert!(matches!(reqs[1], Request::DelFilter { .. }));
    assert_eq!(reqs.len(), 2);
}

#[test]
fn a_device_of_another_kind_is_a_conflict_not_a_takeover() {
    let d = desired(0);
    let mut obs = applied(&d);
    obs.links.get_mut("acip0").unwrap().kind = Some("gre".into());
    let e = diff(&d.compile().unwrap(), &obs, &owned(&d)).unwrap_err();
    assert!(matches!(e, Conflict::LinkKind { .. }));
    assert!(e.to_string().contains("acip0"));
    let mut obs = applied(&d);
    obs.links.get_mut("acip0").unwrap().ipip_local = Some(Ipv4Addr::new(10, 9, 9, 9));
    assert!(matches!(
        diff(&d.compile().unwrap(), &obs, &owned(&d)),
        Err(Conflict::TunnelLocal { .. })
    ));
}

#[test]
fn down_links_and_drifted_sysctls_are_fixed() {
    let d = desired(0);
    let mut obs = applied(&d);
    obs.links.get_mut("acip0").unwrap().up = false;
    obs.sysctls
        .insert("net/ipv4/ip_forward".into(), Some("0".into()));
    let reqs = diff(&d.compile().unwrap(), &obs, &owned(&d)).unwrap();
    assert_eq!(
        reqs,
        vec![
            Request::LinkUp("acip0".into()),
            Request::Sysctl {
                key: "net/ipv4/ip_forward".into(),
                value: "1".into()
            }
        ]
    );
}

#[test]
fn invalid_states_are_refused_with_the_reason() {
    let mut d = desired(0);
    d.vips[0].addr = "2001:db8:4::1".parse().unwrap();
    d.vips[0].services[0].tunnel_in = None;
    assert!(
        d.compile()
            .unwrap_err()
            .to_string()
            .contains("peer 10.2.0.2 is IPv4: IPv6 connections are tunnelled to a peer address of their own family")
    );

    let mut d = desired(0);
    d.tunnel = None;
    assert!(
        d.compile()
            .unwrap_err()
            .to_string()
            .contains("tunnel device")
    );

    let mut d = desired(0);
    let s = d.vips[0].services[0].clone();
    d.vips[0].services.push(s);
    assert!(
        d.compile()
            .unwrap_err()
            .to_string()
            .contains("defined twice")
    );

    let mut d = desired(0);
    d.vips[0].services[0].local.push(rs(11, 5));
    assert!(
        d.compile()
            .unwrap_err()
            .to_string()
            .contains("listed twice")
    );

    let mut d = desired(0);
    let mut s = d.vips[0].services[0].clone();
    s.port = 443;
    d.vips[0].services.push(s);
    assert!(
        d.compile()
            .unwrap_err()
            .to_string()
            .contains("tunnel mark 65 used by both")
    );

    let mut d = desired(0);
    d.tunnel.as_mut().unwrap().name = "a-very-long-name".into();
    assert!(d.compile().is_err());
}

#[test]
fn persistence_and_udp_services_compile() {
    let mut d = desired(0);
    d.vips[0].services[0].config.persistence = Some(tunnel_forwarder::Persistence {
        timeout: 300,
        netmask_len: 24,
    });
    d.vips[0].services[0].protocol = Protocol::Udp;
    let t = d.compile().unwrap();
    let k = ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: IpAddr::V4(VIP),
        port: 80,
    };
    let spec = &t.services[&k];
    assert_eq!(spec.config.flags() & 1, 1);
    assert_eq!(u32::from_be(spec.config.netmask()), 0xffff_ff00);
    assert_eq!(
        spec.ipvsadm_args(),
        "-u 10.101.4.1:80 -s wrr -p 300 -M 255.255.255.0"
    );
    assert_eq!(t.marks[0].protocol, Protocol::Udp);
}

#[test]
fn ipv6_addresses_we_added_are_removed_from_the_ledger_not_by_label() {
    let v6: IpAddr = "2001:db8:4::1".parse().unwrap();
    let ours = tunnel_forwarder::model::AddrSpec {
        device: "vip0".into(),
        addr: v6,
        prefix_len: 128,
    };
    let mut obs = Observed::default();
    for addr in [v6, "2001:db8:4::99".parse().unwrap()] {
        obs.addrs.push(ObservedAddr {
            device: "vip0".into(),
            addr,
            prefix_len: 128,
            label: None,
        });
    }
    let t = DesiredState::default().compile().unwrap();
    let mut owned = Owned::default();
    assert_eq!(
        diff(&t, &obs, &owned).unwrap(),
        vec![],
        "not ours: left alone"
    );
    owned.addrs.insert(ours.clone());
    assert_eq!(
        diff(&t, &obs, &owned).unwrap(),
        vec![Request::DelAddr(ours.clone())]
    );
    // The ledger after: added now = ours; dropped from the target = no longer ours.
    let added = [Request::NewAddr(ours.clone())];
    assert!(Owned::default().after(&t, &added).addrs.contains(&ours));
    assert!(owned.after(&t, &[]).addrs.is_empty());
}
