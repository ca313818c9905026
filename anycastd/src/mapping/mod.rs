//! From the site config to the three libraries' own configs and desired states. Pure
//! functions: the controller calls them, tests check them without any I/O.
//!
//! This file maps to the BGP speaker, the health checkers and the exchange; `kernel`
//! maps to tunnel-forwarder's desired state (services, the spill split, tunnels, sync).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bgp_speaker::{PeerConfig, Route, SpeakerConfig};
use geo_balancer::exchange::ExchangeConfig;
use geo_balancer::health::{CheckConfig, VipConfig};
use geo_balancer::{ServerId, SiteId, SpillConfig};

use crate::config::{self, Neighbor, SiteConfig, Vip};
use crate::layout::{Layout, SvcId, VipId};

mod kernel;
#[cfg(test)]
mod tests;

pub use kernel::{desired_state, gue_ports, receives, split, sync, tunnel, tunnel6, vip_service};

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
