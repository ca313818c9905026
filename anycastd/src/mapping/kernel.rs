//! The kernel's desired state for tunnel-forwarder: each service's real servers and
//! peer tunnels, the site-wide spill split, the tunnel devices, GUE ports and sync
//! daemons.

use std::net::IpAddr;

use geo_balancer::weights::{self, Plan};
use geo_balancer::{ServerId, SiteId};
use tunnel_forwarder as tf;

use crate::config::{self, Method, PeerSite, PeerTunnel, SiteConfig};
use crate::layout::{self, Layout, ServiceSlot};

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

/// The site-wide spill split (decision 0006) for the spill decision's `shares`
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
