//! The diff against a model kernel: for many random pairs of (what the kernel holds,
//! what is desired), applying the diff to the model and diffing again gives nothing,
//! the operator's objects survive, and no destination that stays is deleted.
//! Deterministic (seeded xorshift), so a failure names its seed.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use common::state::add_operator_objects;
use tunnel_forwarder::diff::{LinkInfo, ObservedAddr, ObservedFilter, label_for};
use tunnel_forwarder::model::ServiceSpec;
use tunnel_forwarder::split::{SPLIT_CHAIN, SplitRule};
use tunnel_forwarder::{
    DesiredState, Dest, Encap, Forward, Observed, Owned, Peer, Protocol, Request, ServiceConfig,
    ServiceKey, Split, SyncDaemon, SyncRole, Tunnel6Device, TunnelDevice, TunnelIn, Vip, VipDevice,
    VipService, diff,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// A peer's encapsulation: IPIP, GUE (two ports, with and without checksum), GRE.
fn encap(rng: &mut Rng) -> Encap {
    match rng.below(4) {
        0 | 1 => Encap::Ipip,
        2 => Encap::Gue {
            port: [6080, 5555][rng.below(2) as usize],
            csum: rng.chance(50),
        },
        _ => Encap::Gre {
            csum: rng.chance(50),
        },
    }
}

const ME: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

fn random_state(rng: &mut Rng) -> DesiredState {
    let mut vips = Vec::new();
    for v in 0..rng.below(3) {
        let addr: IpAddr = if rng.chance(20) {
            format!("2001:db8:4::{}", v + 1).parse().unwrap()
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 101, 4, v as u8 + 1))
        };
        let mut services = Vec::new();
        let mut ports = BTreeSet::new();
        for _ in 0..rng.below(3) {
            let port = [80u16, 443, 53, 8080][rng.below(4) as usize];
            let protocol = if rng.chance(30) {
                Protocol::Udp
            } else {
                Protocol::Tcp
            };
            if !ports.insert((protocol, port)) {
                continue;
            }
            let local: Vec<Dest> = (0..rng.below(4))
                .map(|i| {
                    let a: IpAddr = if addr.is_ipv4() {
                        IpAddr::V4(Ipv4Addr::new(10, 101, 5, 10 + i as u8))
                    } else {
                        format!("2001:db8:5::{}", 10 + i).parse().unwrap()
                    };
                    let fwd = [Forward::Nat, Forward::DirectRoute, Forward::Tunnel]
                        [rng.below(3) as usize];
                    Dest::new(a, port, fwd, rng.below(4) as u32)
                })
                .collect();
            // Peers of the VIP's family: IPIP for IPv4, ip6ip6 for IPv6.
            let peers = (0..rng.below(3))
                .map(|i| Peer {
                    addr: if addr.is_ipv4() {
                        IpAddr::V4(Ipv4Addr::new(10, 2 + i as u8, 0, 2))
                    } else {
                        format!("2001:db8:{}::2", 2 + i).parse().unwrap()
                    },
                    weight: rng.below(5) as u32,
                    encap: encap(rng),
                })
                .collect();
            let guard = rng.chance(60);
            let mark = 0x40 + services.len() as u32 + 10 * v as u32;
            services.push(VipService {
                protocol,
                port,
                config: ServiceConfig {
                    scheduler: ["wrr", "rr", "wlc"][rng.below(3) as usize].into(),
                    ..ServiceConfig::default()
                },
                tunnel_in: guard.then(|| TunnelIn::like(mark, &local)),
                local,
                peers,
            });
        }
        vips.push(Vip {
            addr,
            device: if rng.chance(30) {
                VipDevice::Dummy("vip0".into())
            } else {
                VipDevice::Loopback
            },
            services,
        });
    }
    let split = rng.chance(50).then(|| {
        let peers: Vec<Peer> = (0..rng.below(3))
            .map(|i| Peer {
                addr: IpAddr::V4(Ipv4Addr::new(10, 2 + i as u8, 0, 2)),
                weight: rng.below(5) as u32,
                encap: encap(rng),
            })
            .collect();
        // Half the time the split carries IPv6 too: the same peers' ip6ip6 ends.
        let peers6 = if rng.chance(50) {
            let v6 = |(i, p): (usize, &Peer)| Peer {
                addr: format!("2001:db8:{}::2", 2 + i).parse().unwrap(),
                encap: Encap::Ipip,
                ..*p
            };
            peers.iter().enumerate().map(v6).collect()
        } else {
            vec![]
        };
        Split {
            devices: vec!["eth0".into()],
            mark: 0x4143_0000,
            share: [0, 1, 307, 512, 1024][rng.below(5) as usize],
            peers,
            peers6,
        }
    });
    // Sync daemons: unmanaged, none, or some of each role with a random id/port.
    // Sync daemons: a random set of roles, each with a random id and port.
    let mut sync = Vec::new();
    for role in [SyncRole::Master, SyncRole::Backup] {
        if rng.chance(50) {
            let id = 1 + rng.below(2) as u8;
            sync.push(SyncDaemon {
                port: rng.chance(30).then_some(8849),
                ..SyncDaemon::new(role, "eth1", id)
            });
        }
    }
    let gue_ports = match rng.below(3) {
        0 => vec![],
        1 => vec![6080],
        _ => vec![6080, 5555],
    };
    DesiredState {
        vips,
        split,
        sync,
        gue_ports,
        tunnel: Some(TunnelDevice {
            name: "acip0".into(),
            local: ME,
        }),
        tunnel6: Some(Tunnel6Device {
            name: "acip6".into(),
            local: "2001:db8:1::2".parse().unwrap(),
        }),
        ..DesiredState::default()
    }
}

/// Applies requests to the model kernel as the real one would.
fn apply(obs: &mut Observed, reqs: &[Request], next_handle: &mut u32) {
    for r in reqs {
        match r {
            Request::NewService(k, c) => {
                assert!(!obs.services.contains_key(k), "EEXIST {r}");
                obs.services.insert(
                    *k,
                    ServiceSpec {
                        key: *k,
                        config: c.clone(),
                        dests: Default::default(),
                    },
                );
            }
            Request::SetService(k, c) => obs.services.get_mut(k).expect("ESRCH").config = c.clone(),
            Request::DelService(k) => {
                obs.services.remove(k).expect("ESRCH");
            }
            Request::NewDest(k, d) => {
                let s = obs.services.get_mut(k).expect("ESRCH");
                assert!(s.dests.insert(d.key(), *d).is_none(), "EEXIST {r}");
            }
            Request::SetDest(k, d) => {
                let s = obs.services.get_mut(k).expect("ESRCH");
                assert!(s.dests.insert(d.key(), *d).is_some(), "ENOENT {r}");
            }
            Request::DelDest(k, a, p) => {
                let s = obs.services.get_mut(k).expect("ESRCH");
                s.dests.remove(&(*a, *p)).expect("ENOENT");
            }
            Request::NewDummy(n)
            | Request::NewIpip { name: n, .. }
            | Request::NewIp6tnl { name: n, .. } => {
                let (kind, local, local6) = match r {
                    Request::NewIpip { local, .. } => ("ipip", Some(*local), None),
                    Request::NewIp6tnl { local, .. } => ("ip6tnl", None, Some(*local)),
                    _ => ("dummy", None, None),
                };
                assert!(!obs.links.contains_key(n), "EEXIST {r}");
                obs.links.insert(
                    n.clone(),
                    LinkInfo {
                        index: 100 + obs.links.len() as u32,
                        kind: Some(kind.into()),
                        up: false,
                        ipip_local: local,
                        ipip_remote: None,
                        ip6_local: local6,
                    },
                );
            }
            Request::LinkUp(n) => obs.links.get_mut(n).expect("ENODEV").up = true,
            Request::NewGueListener(port) => {
                assert!(!obs.fou.iter().any(|l| l.port == *port), "EEXIST {r}");
                obs.fou.push(tunnel_forwarder::kernel::fou::Listener {
                    port: *port,
                    encap: tunnel_forwarder::kernel::fou::ENCAP_GUE,
                });
            }
            Request::NewSyncDaemon(d) => {
                assert!(!obs.sync.iter().any(|o| o.role == d.role), "EEXIST {r}");
                // The kernel fills in its defaults.
                obs.sync.push(SyncDaemon {
                    group: d.group.or(Some("224.0.0.81".parse().unwrap())),
                    port: d.port.or(Some(8848)),
                    ttl: d.ttl.or(Some(1)),
                    maxlen: d.maxlen.or(Some(1472)),
                    ..d.clone()
                });
            }
            Request::DelSyncDaemon(role) => {
                let before = obs.sync.len();
                obs.sync.retain(|o| o.role != *role);
                assert!(obs.sync.len() < before, "ESRCH {r}");
            }
            Request::NewAddr(a) => {
                assert!(obs.links.contains_key(&a.device), "ENODEV {r}");
                obs.addrs.push(ObservedAddr {
                    device: a.device.clone(),
                    addr: a.addr,
                    prefix_len: a.prefix_len,
                    label: a.addr.is_ipv4().then(|| label_for(&a.device)),
                });
            }
            Request::DelAddr(a) => {
                let before = obs.addrs.len();
                obs.addrs.retain(|o| {
                    !(o.device == a.device && o.addr == a.addr && o.prefix_len == a.prefix_len)
                });
                assert!(obs.addrs.len() < before, "EADDRNOTAVAIL {r}");
            }
            Request::NewIngress(dev) if dev == "eth0" => {
                let tc = obs.split_devices.entry(dev.clone()).or_default();
                assert!(!tc.ingress, "EEXIST {r}");
                tc.ingress = true;
            }
            Request::NewIngress(dev) if dev == "acip6" => {
                assert!(!obs.ingress6, "EEXIST {r}");
                obs.ingress6 = true;
            }
            Request::NewIngress(_) => {
                assert!(!obs.ingress, "EEXIST {r}");
                obs.ingress = true;
            }
            Request::NewClassFilter {
                device,
                prio,
                class,
            } => {
                let tc = obs.split_devices.get_mut(device).expect("ENODEV");
                assert!(tc.ingress, "EINVAL no qdisc {r}");
                *next_handle += 1;
                tc.filters.push(ObservedFilter {
                    chain: 0,
                    prio: *prio,
                    handle: *next_handle,
                    rule: None,
                    split: Some(SplitRule::Class(*class, SPLIT_CHAIN)),
                });
            }
            Request::NewShareFilter {
                device,
                draw,
                block,
                mark,
            } => {
                let tc = obs.split_devices.get_mut(device).expect("ENODEV");
                assert!(tc.ingress, "EINVAL no qdisc {r}");
                *next_handle += 1;
                tc.filters.push(ObservedFilter {
                    chain: SPLIT_CHAIN,
                    prio: draw.prio(),
                    handle: *next_handle,
                    rule: None,
                    split: Some(SplitRule::Share(*draw, *block, *mark)),
                });
            }
            Request::FlushChain { device, chain } => {
                if let Some(tc) = obs.split_devices.get_mut(device) {
                    tc.filters.retain(|f| f.chain != *chain);
                }
            }
            Request::DelFilter { device, handle, .. } if device == "eth0" => {
                let tc = obs.split_devices.get_mut(device).expect("ENODEV");
                let before = tc.filters.len();
                tc.filters.retain(|f| f.handle != *handle);
                assert!(tc.filters.len() < before, "ENOENT {r}");
            }
            Request::NewMarkFilter { device, prio, rule } => {
                // Each family on its own device: the kernel refuses an IPv6 filter
                // at a priority that holds IPv4 ones.
                let v6 = device == "acip6";
                assert_eq!(v6, rule.dst.is_ipv6(), "EINVAL {r}");
                let (ingress, filters) = if v6 {
                    (obs.ingress6, &mut obs.filters6)
                } else {
                    (obs.ingress, &mut obs.filters)
                };
                assert!(ingress, "EINVAL no qdisc {r}");
                *next_handle += 1;
                filters.push(ObservedFilter {
                    chain: 0,
                    split: None,
                    prio: *prio,
                    handle: *next_handle,
                    rule: Some(*rule),
                });
            }
            Request::DelFilter { device, handle, .. } => {
                let filters = if device == "acip6" {
                    &mut obs.filters6
                } else {
                    &mut obs.filters
                };
                let before = filters.len();
                filters.retain(|f| f.handle != *handle);
                assert!(filters.len() < before, "ENOENT {r}");
            }
            Request::Sysctl { key, value } => {
                obs.sysctls.insert(key.clone(), Some(value.clone()));
            }
        }
    }
}

/// A fresh kernel with lo, an operator's service, address and filter.
fn fresh_kernel() -> (Observed, ServiceKey) {
    let mut obs = Observed::default();
    obs.links.insert("eth0".into(), common::state::up_link(2));
    obs.links.insert("lo".into(), common::state::up_link(1));
    let op = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(10, 101, 4, 1)),
        port: 22,
    };
    add_operator_objects(&mut obs, op);
    (obs, op)
}

#[test]
fn random_transitions_converge_in_one_step_and_spare_the_operator() {
    // How often each kind of request came up: the test must exercise them all.
    let mut seen = std::collections::BTreeMap::<&'static str, usize>::new();
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let (mut obs, op) = fresh_kernel();
        let mut owned = Owned::default();
        let mut handle = 0x800_000;
        // A few reconciles in a row, each from the state the last one left, with
        // random drift in between (weights edited, a link down, a sysctl reset).
        for step in 0..4 {
            let d = random_state(&mut rng);
            let t = d.compile().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            if step > 0 && rng.chance(50) {
                if let Some(s) = obs.services.values_mut().next()
                    && let Some(dd) = s.dests.values_mut().next()
                {
                    dd.weight += 7;
                }
                if let Some(l) = obs.links.get_mut("acip0") {
                    l.up = rng.chance(50);
                }
                obs.sysctls
                    .insert("net/ipv4/ip_forward".into(), Some("0".into()));
            }
            let before = obs.clone();
            let reqs = diff(&t, &obs, &owned).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            for r in &reqs {
                *seen.entry(kind(r)).or_default() += 1;
            }
            owned = owned.claiming(&t, &reqs);
            apply(&mut obs, &reqs, &mut handle);
            owned = owned.after(&t, &reqs);
            let again = diff(&t, &obs, &owned).unwrap();
            assert_eq!(
                again,
                vec![],
                "seed {seed} step {step}: not converged after {reqs:#?}"
            );
            // The operator's service and address are untouched.
            assert!(
                obs.services.contains_key(&op),
                "seed {seed}: operator service gone"
            );
            assert!(
                obs.addrs.iter().any(|a| a.addr.to_string() == "192.0.2.7"),
                "seed {seed}: operator address gone"
            );
            // A destination present before and after was never deleted.
            for r in &reqs {
                if let Request::DelDest(k, a, p) = r {
                    let stays = t
                        .services
                        .get(k)
                        .is_some_and(|s| s.dests.contains_key(&(*a, *p)));
                    assert!(!stays, "seed {seed}: {r} deletes a destination that stays");
                }
                if let Request::DelService(k) = r {
                    assert!(before.services.contains_key(k) && !t.services.contains_key(k));
                }
            }
        }
        // Finally nothing desired: everything of ours goes, the operator's stays.
        let t = DesiredState {
            tunnel: Some(TunnelDevice {
                name: "acip0".into(),
                local: ME,
            }),
            ..DesiredState::default()
        }
        .compile()
        .unwrap();
        let reqs = diff(&t, &obs, &owned).unwrap();
        apply(&mut obs, &reqs, &mut handle);
        assert!(obs.sync.is_empty(), "seed {seed}: our sync daemons stop");
        assert_eq!(
            obs.services.keys().collect::<Vec<_>>(),
            vec![&op],
            "seed {seed}"
        );
        let addrs: Vec<String> = obs.addrs.iter().map(|a| a.addr.to_string()).collect();
        assert_eq!(
            addrs,
            vec!["192.0.2.7", "10.1.0.2"],
            "seed {seed}: tunnel address stays"
        );
    }
    for k in [
        "NewService",
        "SetService",
        "DelService",
        "NewDest",
        "SetDest",
        "DelDest",
        "NewDummy",
        "NewIpip",
        "NewIp6tnl",
        "LinkUp",
        "NewAddr",
        "DelAddr",
        "NewIngress",
        "NewMarkFilter",
        "DelFilter",
        "Sysctl",
        "NewSyncDaemon",
        "DelSyncDaemon",
        "NewGueListener",
    ] {
        assert!(
            seen.get(k).copied().unwrap_or(0) > 0,
            "{k} never exercised: {seen:?}"
        );
    }
}

fn kind(r: &Request) -> &'static str {
    match r {
        Request::NewService(..) => "NewService",
        Request::SetService(..) => "SetService",
        Request::DelService(..) => "DelService",
        Request::NewDest(..) => "NewDest",
        Request::SetDest(..) => "SetDest",
        Request::DelDest(..) => "DelDest",
        Request::NewDummy(..) => "NewDummy",
        Request::NewIpip { .. } => "NewIpip",
        Request::NewIp6tnl { .. } => "NewIp6tnl",
        Request::LinkUp(..) => "LinkUp",
        Request::NewAddr(..) => "NewAddr",
        Request::DelAddr(..) => "DelAddr",
        Request::NewIngress(..) => "NewIngress",
        Request::NewMarkFilter { .. } => "NewMarkFilter",
        Request::DelFilter { .. } => "DelFilter",
        Request::NewClassFilter { .. } => "NewClassFilter",
        Request::NewShareFilter { .. } => "NewShareFilter",
        Request::FlushChain { .. } => "FlushChain",
        Request::Sysctl { .. } => "Sysctl",
        Request::NewSyncDaemon(..) => "NewSyncDaemon",
        Request::DelSyncDaemon(..) => "DelSyncDaemon",
        Request::NewGueListener(..) => "NewGueListener",
    }
}
