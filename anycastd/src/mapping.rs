//! From the site config to the three libraries' own configs and desired states. Pure
//! functions: the controller calls them, tests check them without any I/O.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bgp_speaker::{PeerConfig, Route, SpeakerConfig};
use geo_balancer::exchange::ExchangeConfig;
use geo_balancer::health::{CheckConfig, VipConfig};
use geo_balancer::weights::{self, Plan};
use geo_balancer::{ServerId, SiteId, SpillConfig};
use tunnel_forwarder as tf;

use crate::config::{self, Method, Neighbor, PeerSite, PeerTunnel, SiteConfig, Vip};
use crate::layout::{self, Layout, ServiceSlot, SvcId, VipId};

/// Where a real server sits in the config: its VIP, its service, and its position
/// among the service's real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerAt {
    pub vip: VipId,
    pub svc: SvcId,
    /// Position of the service among its VIP's services.
    pub port_index: usize,
    /// Position among the service's real servers.
    pub server: usize,
}

impl ServerAt {
    /// The real server's config.
    pub fn config(self, cfg: &SiteConfig) -> &config::RealServer {
        &cfg.vips[self.vip.index()].services[self.port_index].real_servers[self.server]
    }
}

/// The id health checks and load samples use for a real server of a service:
/// `web/tcp80/10.101.5.11:80`.
pub fn server_id(vip: &Vip, svc: &config::Service, rs: &config::RealServer) -> ServerId {
    let addr = SocketAddr::new(rs.address, rs.port);
    ServerId::new(format!(
        "{}/{}{}/{}",
        vip.name,
        svc.protocol.as_str(),
        svc.port,
        addr
    ))
}

/// Every real server with its place and id, in config order.
pub fn servers(cfg: &SiteConfig) -> Vec<(ServerAt, ServerId)> {
    let layout = Layout::new(cfg);
    let mut out = Vec::new();
    for slot in layout.services() {
        let vip = &cfg.vips[slot.vip.index()];
        let svc = &vip.services[slot.port_index];
        for (ri, rs) in svc.real_servers.iter().enumerate() {
            out.push((
                ServerAt {
                    vip: slot.vip,
                    svc: slot.id,
                    port_index: slot.port_index,
                    server: ri,
                },
                server_id(vip, svc, rs),
            ));
        }
    }
    out
}

/// Longest wait before reconnecting a BGP session (bgp-speaker's backoff cap).
pub const RECONNECT_MAX: Duration = Duration::from_secs(4);

/// The speaker's neighbors.
pub fn speaker_config(cfg: &SiteConfig) -> SpeakerConfig {
    let peers = cfg
        .bgp
        .neighbors
        .iter()
        .map(|n| neighbor_config(cfg, n))
        .collect();
    SpeakerConfig {
        peers,
        listen: cfg
            .bgp
            .listen
            .then(|| SocketAddr::new(IpAddr::from([0u8; 16]), 179)),
    }
}

fn neighbor_config(cfg: &SiteConfig, n: &Neighbor) -> PeerConfig {
    let mut p = PeerConfig::new(
        n.address.to_string(),
        n.address,
        cfg.bgp.asn,
        n.remote_asn,
        cfg.bgp.router_id,
    );
    p.local_addr = n.local_address;
    p.hold_time = n.hold_time;
    p.keepalive = Some(n.keepalive);
    p.connect_retry = n.connect_retry;
    // A session that went down is retried after 1, 2, 4, 4... s (75-100% jitter): an
    // upstream back from a restart has our route within seconds however long it was
    // away, and a router still down sees one SYN every few seconds. Failed connects
    // are retried at most connect_retry (default 5 s) apart: bgp-speaker caps the FSM's
    // doubling there.
    p.idle_hold_max = RECONNECT_MAX;
    p.md5_password = n.password.clone();
    p.ttl_security_hops = n.ttl_security;
    p.passive = n.passive;
    p.ipv6_unicast = cfg.vips.iter().any(|v| v.prefix.addr().is_ipv6()) || n.address.is_ipv6();
    p.ipv4_unicast = cfg.vips.iter().any(|v| v.prefix.addr().is_ipv4()) || n.address.is_ipv4();
    p.next_hop_v4 = match n.next_hop {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    // A dual-stack site announces its IPv6 VIPs with its own IPv6 address as next
    // hop unless the neighbor says otherwise.
    p.next_hop_v6 = match n.next_hop_v6 {
        Some(IpAddr::V6(a)) => Some(a),
        _ => cfg.site.address_v6,
    };
    p.max_prefix = n.max_prefixes.map(|limit| bgp_speaker::MaxPrefix {
        limit,
        action: match n.max_prefixes_action {
            config::MaxPrefixAction::Warn => bgp_speaker::MaxPrefixAction::Warn,
            config::MaxPrefixAction::Teardown => bgp_speaker::MaxPrefixAction::Teardown {
                hold_off: Duration::from_secs(300),
            },
        },
    });
    p
}

/// The route a VIP is announced with to one neighbor.
pub fn route(vip: &Vip, n: &Neighbor, graceful_shutdown: bool) -> Route {
    prefix_route(vip.prefix, n, graceful_shutdown)
}

/// The route `prefix` is announced with to one neighbor: its attributes are the
/// neighbor's (a VIP's prefix, the site endpoint's prefix).
pub fn prefix_route(prefix: ipnet::IpNet, n: &Neighbor, graceful_shutdown: bool) -> Route {
    let mut r = Route::new(prefix);
    r.med = n.med;
    r.local_pref = n.local_pref;
    r.as_path_prepend = n.prepend;
    r.communities = n
        .communities
        .iter()
        .map(|(a, v)| (u32::from(*a) << 16) | u32::from(*v))
        .collect();
    r.large_communities = n.large_communities.clone();
    r.graceful_shutdown = graceful_shutdown;
    r
}

/// The health check of each real server.
pub fn checks(cfg: &SiteConfig) -> Vec<CheckConfig> {
    servers(cfg)
        .into_iter()
        .map(|(at, id)| {
            let rs = at.config(cfg);
            let c = &rs.check;
            CheckConfig {
                server: id,
                kind: c.kind.clone(),
                addr: SocketAddr::new(rs.address, c.port),
                interval: c.interval,
                timeout: c.timeout,
                rise: c.rise,
                fall: c.fall,
                fast_detect: c.fast_detect,
                echo: c.echo,
                full_interval: c.full_interval,
            }
        })
        .collect()
}

/// Servability parameters of a VIP.
pub fn vip_config(vip: &Vip) -> VipConfig {
    VipConfig {
        min_up: vip.min_up as usize,
        hold_down: vip.hold_down,
        ..VipConfig::default()
    }
}

/// The spill rule's thresholds; the ramp's period is the exchange interval.
pub fn spill_config(cfg: &SiteConfig) -> SpillConfig {
    let s = &cfg.spill;
    let mut c = SpillConfig {
        start_local: s.start_local_above,
        stop_local: s.stop_local_at_or_below,
        start_remote: s.remote_below,
        stop_remote: s.stop_remote_above,
        max_step: s.step,
        step_period: cfg.exchange.interval,
        max_share: s.max_share,
        ..SpillConfig::default()
    };
    // Aim a little below full, but always between the thresholds.
    c.target_local = (0.95 * c.stop_local).clamp(c.start_remote + f64::EPSILON, c.stop_local);
    c
}

/// The exchange parameters.
pub fn exchange_config(cfg: &SiteConfig) -> ExchangeConfig {
    let e = &cfg.exchange;
    ExchangeConfig {
        interval: e.interval,
        jitter: e.jitter,
        stale_after_periods: e.stale_after_periods,
        max_clock_skew: e.max_clock_skew,
        ..ExchangeConfig::new(SiteId::new(cfg.site.name.clone()))
    }
}

/// The digest of the site-wide part of the config (decision 0015): what every director
/// of the site must agree on (VIPs with their services, real servers and checks; the
/// spill thresholds; the exchange timing; the peer sites, keys left out), and not what
/// is each director's own (its name, address, devices, BGP neighbors, the `[[director]]`
/// list, sync interface). Config line numbers are zeroed, so two files that say the same
/// thing in another order of sections still match. It hashes the validated config's
/// text: directors running different anycastd versions may differ where a config type
/// changed.
pub fn config_digest(cfg: &SiteConfig) -> String {
    let mut vips = cfg.vips.clone();
    for rs in vips
        .iter_mut()
        .flat_map(|v| v.services.iter_mut())
        .flat_map(|s| s.real_servers.iter_mut())
    {
        rs.line = 0;
    }
    let e = &cfg.exchange;
    let peers: Vec<_> = cfg
        .peers
        .iter()
        .map(|p| (&p.name, p.tunnel_endpoint, p.tunnel_endpoint_v6, &p.urls))
        .collect();
    // The site endpoint only when set: digests of configs without one stay as they were.
    let endpoint = cfg
        .site
        .endpoint
        .map_or(String::new(), |e| format!(" endpoint={e:?}"));
    let text = format!(
        "site={} vips={vips:?} spill={:?} exchange={:?} peers={peers:?}{endpoint}",
        cfg.site.name,
        cfg.spill,
        (
            e.interval,
            e.jitter,
            e.stale_after_periods,
            e.max_clock_skew
        ),
    );
    geo_balancer::exchange::auth::digest(text.as_bytes())
}

/// Peer sites with their keys, for the exchange.
pub fn peer_keys(cfg: &SiteConfig) -> Vec<(SiteId, Vec<u8>)> {
    cfg.peers
        .iter()
        .map(|p| (SiteId::new(p.name.clone()), p.key.clone()))
        .collect()
}

fn forward(m: Method) -> tf::Forward {
    match m {
        Method::Dr => tf::Forward::DirectRoute,
        Method::Nat => tf::Forward::Nat,
        Method::Tun => tf::Forward::Tunnel,
    }
}

/// The kernel's view of one service: its real servers and peer tunnels at the weights
/// of `plan` (see [`geo_balancer::weights::plan`]); without a plan (none computed yet)
/// nothing gets traffic.
pub fn vip_service(cfg: &SiteConfig, slot: &ServiceSlot, plan: Option<&Plan>) -> tf::VipService {
    let vip = &cfg.vips[slot.vip.index()];
    let svc = &vip.services[slot.port_index];
    // Plans list the service's real servers in config order (see `servers`): weights
    // go by position, no ids to build or look up (this runs for every service of a
    // spill step).
    // A server that failed after being up is left out of both services (the kernel
    // expires its connections, net.ipv4.vs.expire_nodest_conn); every other one is
    // there, at weight 0 when it must take no new connections.
    let absent = |i: usize| plan.is_some_and(|p| p.absent.get(i).copied().unwrap_or(false));
    let dests = |list: Option<&Vec<(ServerId, u32)>>| -> Vec<tf::Dest> {
        svc.real_servers
            .iter()
            .enumerate()
            .filter(|(i, _)| !absent(*i))
            .map(|(i, rs)| {
                let w = list.and_then(|l| l.get(i)).map_or(0, |(_, w)| *w);
                tf::Dest::new(rs.address, rs.port, forward(rs.method), w)
            })
            .collect()
    };
    // Peers are tunnel destinations of the VIP's family: IPIP to their IPv4
    // address, ip6ip6 to their IPv6 one (validation made sure every peer has one
    // when an IPv6 VIP and peers are configured).
    let peers = cfg
        .peers
        .iter()
        .filter_map(|p| {
            let addr = if vip.address.is_ipv4() {
                IpAddr::V4(p.tunnel_endpoint)
            } else {
                IpAddr::V6(p.tunnel_endpoint_v6?)
            };
            let weight = plan
                .and_then(|pl| pl.peers.iter().find(|(s, _)| s.as_str() == p.name))
                .map_or(0, |(_, w)| *w);
            Some(peer(p, addr, weight))
        })
        .collect();
    let tunnel_in = receives(cfg).then(|| tf::TunnelIn {
        mark: slot.mark,
        dests: dests(plan.map(|p| &p.tunnel_in)),
    });
    tf::VipService {
        protocol: layout::protocol(svc.protocol),
        port: svc.port,
        config: tf::ServiceConfig {
            scheduler: svc.scheduler.clone(),
            persistence: svc.persistence.map(|d| tf::Persistence {
                timeout: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
                // IPv4: one client address. IPv6: the configured client prefix
                // (default /64; IPVS takes the prefix length for IPv6 services).
                netmask_len: if vip.address.is_ipv6() {
                    svc.persistence_prefix_v6
                } else {
                    32
                },
            }),
            ..tf::ServiceConfig::default()
        },
        local: dests(plan.map(|p| &p.local)),
        peers,
        tunnel_in,
    }
}

/// The site-wide spill split (decision 0006) for the spill decision's `shares`
/// The tunnel destination of peer `p` at `addr`: its configured tunnel for IPv4
/// (validation keeps GUE off IPv6), IPIP/ip6ip6 otherwise.
fn peer(p: &PeerSite, addr: IpAddr, weight: u32) -> tf::Peer {
    let encap = match p.tunnel {
        PeerTunnel::Gue { port } if addr.is_ipv4() => tf::Encap::Gue { port, csum: false },
        _ => tf::Encap::Ipip,
    };
    tf::Peer {
        encap,
        ..tf::Peer::ipip(addr, weight)
    }
}

/// (peer, share of new connections): the total share split off on the client
/// devices, and each peer's part of it as its weight in the split service (the IPv4
/// one, and the IPv6 one over the peers' `tunnel_endpoint_v6` when the site has an
/// IPv6 VIP and every peer has one). `None` without peers or without client
/// devices.
pub fn split(cfg: &SiteConfig, shares: &[(SiteId, f64)]) -> Option<tf::Split> {
    if cfg.peers.is_empty() || cfg.site.client_devices.is_empty() {
        return None;
    }
    let share_of = |name: &str| weights::share_of(shares, name);
    let total = cfg
        .peers
        .iter()
        .map(|p| share_of(&p.name))
        .sum::<f64>()
        .min(1.0);
    let weight = |p: &PeerSite| {
        let s = share_of(&p.name);
        if s > 0.0 && total > 0.0 {
            ((s / total * f64::from(weights::LOCAL_SCALE)).round() as u32).max(1)
        } else {
            0
        }
    };
    let peers = cfg
        .peers
        .iter()
        .map(|p| peer(p, p.tunnel_endpoint.into(), weight(p)))
        .collect();
    // IPv6 VIPs ride the split when every peer has an ip6ip6 endpoint (validation
    // asks for one on every peer of a site with an IPv6 VIP).
    let any_v6 = cfg.vips.iter().any(|v| v.address.is_ipv6());
    let peers6 = cfg
        .peers
        .iter()
        .map(|p| Some(peer(p, p.tunnel_endpoint_v6?.into(), weight(p))))
        .collect::<Option<Vec<_>>>()
        .filter(|_| any_v6)
        .unwrap_or_default();
    Some(tf::Split {
        devices: cfg.site.client_devices.clone(),
        mark: layout::SPLIT_MARK,
        share: tf::Split::units(total),
        peers,
        peers6,
    })
}

/// Whether peers may spill to this director: it has peers (the tunnel is the same
/// both ways) or holds the site endpoint (decision 0018).
pub fn receives(cfg: &SiteConfig) -> bool {
    !cfg.peers.is_empty() || cfg.site.endpoint.is_some()
}

/// The receiving IPIP device: local = the site endpoint when there is one, else this
/// director's address. The kernel hands a tunnelled packet to the device whose local
/// address is its outer destination (a packet for another address goes to the
/// catch-all `tunl0`, past the loop guard); tunnel-forwarder puts the local address
/// on the device too, which makes the endpoint an address of this director.
pub fn tunnel(cfg: &SiteConfig) -> Option<tf::TunnelDevice> {
    receives(cfg).then(|| tf::TunnelDevice {
        name: cfg.site.tunnel_device.clone(),
        local: cfg.site.endpoint.map_or(cfg.site.address, |e| e.address),
    })
}

/// The ip6ip6 device receiving IPv6 connections peers spill here: with peers, an
/// IPv6 VIP and this site's `address_v6`.
pub fn tunnel6(cfg: &SiteConfig) -> Option<tf::Tunnel6Device> {
    let any_v6 = cfg.vips.iter().any(|v| v.address.is_ipv6());
    let local = cfg.site.address_v6?;
    (any_v6 && !cfg.peers.is_empty()).then(|| tf::Tunnel6Device {
        name: cfg.site.tunnel6_device.clone(),
        local,
    })
}

/// What the kernel of this director should hold. `plans[n]` are the weights of
/// service `SvcId(n)` (missing: no plan yet).
pub fn desired_state(
    cfg: &SiteConfig,
    layout: &Layout,
    plans: &[Option<Plan>],
) -> tf::DesiredState {
    let vips = layout
        .vips()
        .map(|vid| {
            let vip = &cfg.vips[vid.index()];
            tf::Vip {
                addr: vip.address,
                device: if cfg.site.vip_device == "lo" {
                    tf::VipDevice::Loopback
                } else {
                    tf::VipDevice::Dummy(cfg.site.vip_device.clone())
                },
                services: layout
                    .of_vip(vid)
                    .iter()
                    .map(|slot| {
                        let plan = plans.get(slot.id.index()).and_then(Option::as_ref);
                        vip_service(cfg, slot, plan)
                    })
                    .collect(),
            }
        })
        .collect();
    tf::DesiredState {
        vips,
        tunnel: tunnel(cfg),
        tunnel6: tunnel6(cfg),
        split: split(cfg, &[]),
        tunnel_pmtu: Some(match cfg.site.tunnel_pmtu {
            config::TunnelPmtu::Fragment => tf::model::TunnelPmtu::Fragment,
            config::TunnelPmtu::Discover => tf::model::TunnelPmtu::Discover,
        }),
        sync: sync(cfg),
        gue_ports: gue_ports(cfg),
        ..tf::DesiredState::default()
    }
}

/// The GUE listeners: the ports this site's peer entries name (the tunnel between
/// two sites is the same both ways, so a site that sends GUE to a peer on a port
/// listens on it too, decision 0016), and the site endpoint's (decision 0018).
pub fn gue_ports(cfg: &SiteConfig) -> Vec<u16> {
    let ports: std::collections::BTreeSet<u16> = cfg
        .peers
        .iter()
        .filter_map(|p| match p.tunnel {
            PeerTunnel::Gue { port } => Some(port),
            PeerTunnel::Ipip => None,
        })
        .chain(cfg.site.endpoint.map(|e| e.gue_port))
        .collect();
    ports.into_iter().collect()
}

/// `[sync]` as the sync daemons to run: both roles unless the config names one.
pub fn sync(cfg: &SiteConfig) -> Vec<tf::SyncDaemon> {
    let Some(s) = &cfg.sync else {
        return Vec::new();
    };
    let roles: &[tf::SyncRole] = match s.roles {
        config::SyncRoles::Both => &[tf::SyncRole::Master, tf::SyncRole::Backup],
        config::SyncRoles::Master => &[tf::SyncRole::Master],
        config::SyncRoles::Backup => &[tf::SyncRole::Backup],
    };
    roles
        .iter()
        .map(|&role| tf::SyncDaemon {
            group: s.group,
            port: s.port,
            ttl: s.ttl,
            ..tf::SyncDaemon::new(role, &s.interface, s.syncid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
}
