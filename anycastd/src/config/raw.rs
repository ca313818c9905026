//! The TOML file as written: serde structs with `deny_unknown_fields` and spans, so
//! that validation can name the line of every value it refuses. Nothing here is used
//! after validation; see [`super::SiteConfig`] for the typed result.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub site: Spanned<RawSite>,
    #[serde(default)]
    pub api: Option<Spanned<RawApi>>,
    #[serde(default)]
    pub exchange: Option<Spanned<RawExchange>>,
    #[serde(default)]
    pub spill: Option<Spanned<RawSpill>>,
    pub bgp: Spanned<RawBgp>,
    #[serde(default, rename = "peer")]
    pub peers: Vec<Spanned<RawPeer>>,
    /// `[[director]]`: this site's other directors (decision 0015).
    #[serde(default, rename = "director")]
    pub directors: Vec<Spanned<RawDirector>>,
    #[serde(default, rename = "vip")]
    pub vips: Vec<Spanned<RawVip>>,
    #[serde(default)]
    pub log: Option<Spanned<RawLog>>,
    #[serde(default)]
    pub sync: Option<Spanned<RawSync>>,
    #[serde(default)]
    pub monitor: Option<Spanned<super::monitor::RawMonitor>>,
    #[serde(default)]
    pub notify: Option<Spanned<super::notify::RawNotify>>,
}

/// `[sync]`: IPVS connection sync with the site's other directors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub interface: Spanned<String>,
    pub syncid: Spanned<i64>,
    #[serde(default)]
    pub roles: Option<Spanned<String>>,
    #[serde(default)]
    pub group: Option<Spanned<String>>,
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    #[serde(default)]
    pub ttl: Option<Spanned<i64>>,
}

/// `[[director]]`: another director of this site.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirector {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    /// Where it takes load reports (default: its address on our exchange port).
    #[serde(default)]
    pub url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub name: Spanned<String>,
    /// This director's name among the site's directors (decision 0015).
    #[serde(default)]
    pub director: Option<Spanned<String>>,
    /// The key the site's directors sign their reports to each other with.
    #[serde(default)]
    pub directors_key: Option<Spanned<String>>,
    #[serde(default)]
    pub directors_key_file: Option<Spanned<String>>,
    /// This director's address: the tunnel endpoint peers send to, and the default
    /// BGP router id and next hop.
    pub address: Spanned<String>,
    /// This director's IPv6 address (dual-stack site): the ip6ip6 tunnel endpoint
    /// peers send spilled IPv6 connections to, and the default IPv6 next hop.
    #[serde(default)]
    pub address_v6: Option<Spanned<String>>,
    #[serde(default)]
    pub tunnel_device: Option<Spanned<String>>,
    /// The ip6ip6 device that receives IPv6 connections peers spill here.
    #[serde(default)]
    pub tunnel6_device: Option<Spanned<String>>,
    #[serde(default)]
    pub vip_device: Option<Spanned<String>>,
    /// Devices clients' packets arrive on: where the spill split filters.
    #[serde(default)]
    pub client_devices: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub shutdown_wait: Option<Spanned<String>>,
    #[serde(default)]
    pub state_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub dataplane: Option<Spanned<bool>>,
    /// `fragment` or `discover`: IPVS's `pmtu_disc` for spilled packets.
    #[serde(default)]
    pub tunnel_pmtu: Option<Spanned<String>>,
    /// IPv6 real servers behind a tunnel advertise a smaller MSS (decision 0013).
    #[serde(default)]
    pub ipv6_mss_clamp: Option<Spanned<bool>>,
    /// The IPv6 MTU of the paths ip6ip6 takes (to peer directors, to TUN servers).
    #[serde(default)]
    pub ipv6_path_mtu: Option<Spanned<i64>>,
    /// `announce` or `withdraw`: a VIP whose checks fail while every peer's do
    /// (decision 0017).
    #[serde(default)]
    pub all_down: Option<Spanned<String>>,
    /// The site-wide tunnel endpoint every director holds (decision 0018).
    #[serde(default)]
    pub tunnel_endpoint: Option<Spanned<String>>,
    /// The site's own prefix holding `tunnel_endpoint`, announced with the VIPs.
    #[serde(default)]
    pub tunnel_prefix: Option<Spanned<String>>,
    /// The GUE port the site endpoint listens on.
    #[serde(default)]
    pub tunnel_gue_port: Option<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
    #[serde(default)]
    pub group: Option<Spanned<String>>,
    #[serde(default)]
    pub public: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    #[serde(default)]
    pub level: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExchange {
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub jitter: Option<Spanned<f64>>,
    #[serde(default)]
    pub stale_after_periods: Option<Spanned<u32>>,
    #[serde(default)]
    pub max_clock_skew: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpill {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub start_local_above: Option<Spanned<f64>>,
    #[serde(default)]
    pub stop_local_at_or_below: Option<Spanned<f64>>,
    #[serde(default)]
    pub remote_below: Option<Spanned<f64>>,
    #[serde(default)]
    pub stop_remote_above: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_share: Option<Spanned<f64>>,
    #[serde(default)]
    pub step: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBgp {
    pub asn: Spanned<u32>,
    #[serde(default)]
    pub router_id: Option<Spanned<String>>,
    #[serde(default)]
    pub listen: Option<bool>,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<Spanned<RawNeighbor>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNeighbor {
    pub address: Spanned<String>,
    pub remote_asn: Spanned<u32>,
    #[serde(default)]
    pub local_address: Option<Spanned<String>>,
    #[serde(default)]
    pub hold_time: Option<Spanned<u16>>,
    #[serde(default)]
    pub keepalive: Option<Spanned<u16>>,
    #[serde(default)]
    pub connect_retry: Option<Spanned<u16>>,
    #[serde(default)]
    pub password: Option<Spanned<String>>,
    #[serde(default)]
    pub ttl_security: Option<Spanned<u8>>,
    #[serde(default)]
    pub passive: Option<bool>,
    #[serde(default)]
    pub next_hop: Option<Spanned<String>>,
    #[serde(default)]
    pub next_hop_v6: Option<Spanned<String>>,
    #[serde(default)]
    pub prepend: Option<Spanned<u8>>,
    #[serde(default)]
    pub med: Option<u32>,
    #[serde(default)]
    pub local_pref: Option<u32>,
    #[serde(default)]
    pub communities: Vec<Spanned<String>>,
    #[serde(default)]
    pub large_communities: Vec<Spanned<String>>,
    #[serde(default)]
    pub max_prefixes: Option<u32>,
    #[serde(default)]
    pub max_prefixes_action: Option<Spanned<String>>,
    /// BFD toward this neighbor (RFC 5880/5881).
    #[serde(default)]
    pub bfd: Option<Spanned<bool>>,
    #[serde(default)]
    pub bfd_min_tx: Option<Spanned<String>>,
    #[serde(default)]
    pub bfd_min_rx: Option<Spanned<String>>,
    #[serde(default)]
    pub bfd_multiplier: Option<Spanned<u8>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    pub name: Spanned<String>,
    pub tunnel_endpoint: Spanned<String>,
    /// The peer director's `site.address_v6`: where IPv6 connections are spilled.
    #[serde(default)]
    pub tunnel_endpoint_v6: Option<Spanned<String>>,
    /// `"ipip"` (default) or `"gue"`; `"gre"` is refused with the reason.
    #[serde(default)]
    pub tunnel: Option<Spanned<String>>,
    /// The peer's GUE (fou) port, with `tunnel = "gue"`.
    #[serde(default)]
    pub gue_port: Option<Spanned<u16>>,
    /// Where its load reports go: one URL (`url`) or one per director of the peer site
    /// (`urls`); exactly one of the two.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub urls: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    #[serde(default)]
    pub key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub next_key: Option<Spanned<String>>,
    #[serde(default)]
    pub next_key_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVip {
    pub name: Spanned<String>,
    pub prefix: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default)]
    pub min_up: Option<Spanned<u32>>,
    #[serde(default)]
    pub hold_down: Option<Spanned<String>>,
    #[serde(default, rename = "service")]
    pub services: Vec<Spanned<RawService>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub protocol: Spanned<String>,
    pub port: Spanned<u16>,
    #[serde(default)]
    pub scheduler: Option<Spanned<String>>,
    #[serde(default)]
    pub persistence: Option<Spanned<String>>,
    /// IPv6 VIPs: the client prefix length persistence groups by.
    #[serde(default)]
    pub persistence_prefix_v6: Option<Spanned<u8>>,
    #[serde(default)]
    pub check: Option<Spanned<RawCheck>>,
    #[serde(default, rename = "real_server")]
    pub real_servers: Vec<Spanned<RawRealServer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRealServer {
    pub address: Spanned<String>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub weight: Option<Spanned<u32>>,
    pub capacity: Spanned<u32>,
    #[serde(default)]
    pub load_url: Option<Spanned<String>>,
    #[serde(default)]
    pub check: Option<Spanned<RawCheck>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub rise: Option<Spanned<u32>>,
    #[serde(default)]
    pub fall: Option<Spanned<u32>>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub expect_status: Option<Spanned<u16>>,
    #[serde(default)]
    pub https: Option<bool>,
    #[serde(default)]
    pub command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub fast_detect: Option<bool>,
    #[serde(default)]
    pub echo: Option<bool>,
    #[serde(default)]
    pub full_interval: Option<Spanned<String>>,
}
