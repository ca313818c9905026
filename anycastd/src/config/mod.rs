//! Site configuration: one TOML file per site.
//!
//! Loading is all or nothing: [`load`] parses the file with `deny_unknown_fields`,
//! then validates every value and cross-reference. Every problem found is reported
//! with the file, the line and the reason; a file with any problem yields no config,
//! so nothing from it can be half-applied. See docs/configuration.md for every key.

pub mod duration;
pub mod monitor;
pub mod notify;
mod raw;
mod validate;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use validate::CONSISTENT_SCHEDULERS;
pub(crate) use validate::check_token_file;
pub use validate::parse_str;

/// A validated site configuration. Every default is filled in; nothing is optional
/// that the daemon would have to unwrap.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteConfig {
    pub site: Site,
    pub api: Api,
    pub exchange: Exchange,
    pub spill: Spill,
    pub bgp: Bgp,
    pub peers: Vec<PeerSite>,
    /// This site's other directors and the key they share (`[[director]]`,
    /// decision 0015): empty for a site of one director.
    pub directors: Directors,
    pub vips: Vec<Vip>,
    pub log: Log,
    /// IPVS connection sync with the site's other directors (`[sync]`, issue 15).
    pub sync: Option<Sync>,
    /// `[monitor]`: the browser monitor, when configured.
    pub monitor: Option<monitor::Monitor>,
    pub notify: notify::Notify,
}

/// `[sync]`: the kernel's IPVS sync daemons on this director. Every director of a
/// site runs both roles on the sync interface with the site's sync id, so a
/// connection the routers move to another director (ECMP after a failure) finds its
/// entry there.
#[derive(Debug, Clone, PartialEq)]
pub struct Sync {
    pub interface: String,
    pub syncid: u8,
    pub roles: SyncRoles,
    /// Multicast group; `None`: the kernel's 224.0.0.81.
    pub group: Option<IpAddr>,
    /// UDP port; `None`: the kernel's 8848.
    pub port: Option<u16>,
    /// Multicast TTL; `None`: the kernel's 1 (the directors share a link).
    pub ttl: Option<u8>,
    /// Line of `interface` in the file (for `check`'s host problems).
    pub line: usize,
}

/// `[sync] roles`: which sync daemons this director runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRoles {
    /// Sends its connections and takes the others' (the default).
    Both,
    /// Sends only (the seed's primary director).
    Master,
    /// Takes only (the seed's backup director).
    Backup,
}

impl SyncRoles {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncRoles::Both => "both",
            SyncRoles::Master => "master",
            SyncRoles::Backup => "backup",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub name: String,
    /// This director's name among the site's directors (`"default"` when not given;
    /// required with `[[director]]` sections).
    pub director: String,
    pub address: Ipv4Addr,
    /// This director's IPv6 address on a dual-stack site: the ip6ip6 endpoint peers
    /// spill IPv6 connections to, and the default IPv6 next hop.
    pub address_v6: Option<Ipv6Addr>,
    pub tunnel_device: String,
    /// The ip6ip6 device receiving IPv6 connections peers spill here.
    pub tunnel6_device: String,
    pub vip_device: String,
    /// Devices clients' packets arrive on. With peers, the share spilled away is
    /// split off there, ahead of IPVS (decision 0006); empty = each service spills
    /// through its own peer destinations.
    pub client_devices: Vec<String>,
    pub shutdown_wait: Duration,
    /// Where the daemon keeps state across restarts (the data plane's ownership ledger).
    pub state_dir: PathBuf,
    /// Program IPVS/IPIP (true), or run BGP and health checks only (false), for a
    /// service that runs on this host or a data plane managed elsewhere.
    pub dataplane: bool,
    /// What a spilled packet too big for the path once tunnelled becomes (decision 0007).
    pub tunnel_pmtu: TunnelPmtu,
    /// IPv6 real servers behind ip6ip6 advertise a smaller MSS (decision 0013).
    pub ipv6_mss_clamp: bool,
    /// The IPv6 MTU of the paths ip6ip6 takes: to the peers' directors and to this
    /// site's TUN servers (1500 by default; 1320 ..= 65535).
    pub ipv6_path_mtu: u32,
    /// Line of `ipv6_path_mtu` in the file (of `[site]` when not given): `check` refuses a
    /// value above the MTU of this director's IPv6 device with it.
    pub ipv6_path_mtu_line: usize,
    /// A VIP whose own checks fail while every peer reports it cannot serve either:
    /// keep announcing it (the last-announcer guard, the default) or withdraw
    /// (decision 0017).
    pub all_down: geo_balancer::AllDown,
    /// The site-wide tunnel endpoint (`tunnel_endpoint`, `tunnel_prefix`,
    /// `tunnel_gue_port`; decision 0018), when configured.
    pub endpoint: Option<SiteEndpoint>,
}

/// A tunnel endpoint every director of the site holds (decision 0018): peers send
/// spilled connections to `address`, inside the site's own `prefix` (never a VIP
/// prefix, which every site announces), which each director announces while it
/// announces an IPv4 VIP; the upstream's ECMP spreads GUE flows over the directors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteEndpoint {
    pub address: Ipv4Addr,
    pub prefix: ipnet::Ipv4Net,
    /// GUE listener for the endpoint (`ip fou add port P gue`), default 6080.
    pub gue_port: u16,
}

impl Site {
    /// The MSS an IPv6 real server reached by `method` advertises for the VIP's
    /// connections (decision 0013): `None` when the clamp is off, when the server
    /// is behind no tunnel (a DR or NAT server of a site without peers), or when a
    /// full-size segment fits the path anyway (`ipv6_path_mtu` >= 1540).
    pub fn ipv6_mss(&self, method: Method, has_peers: bool) -> Option<u32> {
        use crate::real_server::{Forwarding, behind_tunnel, ipv6_tunnel_mss};
        let f = match method {
            Method::Nat => Forwarding::Nat,
            Method::Dr => Forwarding::Dr,
            Method::Tun => Forwarding::Tun,
        };
        if !self.ipv6_mss_clamp || !behind_tunnel(f, has_peers) {
            return None;
        }
        ipv6_tunnel_mss(self.ipv6_path_mtu)
    }
}

/// The smallest `ipv6_path_mtu`: IPv6's minimum MTU (1280) inside ip6ip6's 40 bytes.
pub const MIN_IPV6_PATH_MTU: u32 = 1320;
/// The largest: no device takes a bigger (non-jumbogram) IPv6 packet.
pub const MAX_IPV6_PATH_MTU: u32 = 65535;

/// `[site] tunnel_pmtu`: IPVS's `net.ipv4.vs.pmtu_disc` while this site tunnels
/// anything (decision 0007).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelPmtu {
    /// The director fragments the tunnelled packet, the peer's reassembles: no ICMP
    /// needs to reach the client (`pmtu_disc=0`, the default).
    Fragment,
    /// The client is sent ICMP "fragmentation needed" and must lower its segments
    /// (`pmtu_disc=1`, the kernel's default): stalls where clients drop ICMP.
    Discover,
}

impl TunnelPmtu {
    pub const ALL: [TunnelPmtu; 2] = [TunnelPmtu::Fragment, TunnelPmtu::Discover];

    pub fn as_str(self) -> &'static str {
        match self {
            TunnelPmtu::Fragment => "fragment",
            TunnelPmtu::Discover => "discover",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiListen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ApiListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiListen::Tcp(a) => write!(f, "{a}"),
            ApiListen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The local API and who may use it (docs/operations.md, "Who may change the site").
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    pub listen: ApiListen,
    /// The operators' group: owns the unix socket; its members may change the site.
    pub group: String,
    /// Its id, looked up when the config was validated.
    pub gid: u32,
    /// Read endpoints anyone who can connect may use, without being an operator.
    pub public: Vec<ReadEndpoint>,
    /// Over TCP: the file holding the bearer token that makes a request an operator's.
    /// Read at each request that needs it, so a new token needs no reload.
    pub token_file: Option<PathBuf>,
}

/// The default local API: a unix socket, `root:anycastd`, mode 0660.
pub const DEFAULT_API_SOCKET: &str = "/run/anycastd/api.sock";
/// The default operators' group.
pub const DEFAULT_API_GROUP: &str = "anycastd";
/// A token shorter than this is refused (by `check` and by the daemon).
pub const MIN_TOKEN_BYTES: usize = 16;
/// A token longer than this is refused, in the file and in a request.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// The endpoints that only read; every other request changes the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadEndpoint {
    Status,
    Why,
    Metrics,
}

impl ReadEndpoint {
    pub const ALL: [ReadEndpoint; 3] = [
        ReadEndpoint::Status,
        ReadEndpoint::Why,
        ReadEndpoint::Metrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReadEndpoint::Status => "status",
            ReadEndpoint::Why => "why",
            ReadEndpoint::Metrics => "metrics",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub listen: SocketAddr,
    pub interval: Duration,
    pub jitter: f64,
    pub stale_after_periods: u32,
    pub max_clock_skew: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spill {
    pub enabled: bool,
    pub start_local_above: f64,
    pub stop_local_at_or_below: f64,
    pub remote_below: f64,
    pub stop_remote_above: f64,
    pub max_share: f64,
    pub step: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bgp {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Accept incoming sessions from the neighbors on port 179 (on by default, so an
    /// upstream that restarts reconnects at once).
    pub listen: bool,
    /// `listen` was given: a listener that cannot bind is then an error, else a warning.
    pub listen_set: bool,
    pub neighbors: Vec<Neighbor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxPrefixAction {
    Warn,
    Teardown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Neighbor {
    pub address: IpAddr,
    pub remote_asn: u32,
    pub local_address: Option<IpAddr>,
    pub hold_time: u16,
    pub keepalive: u16,
    pub connect_retry: u16,
    pub password: Option<String>,
    pub ttl_security: Option<u8>,
    pub passive: bool,
    pub next_hop: Option<IpAddr>,
    pub next_hop_v6: Option<IpAddr>,
    pub prepend: u8,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub communities: Vec<(u16, u16)>,
    pub large_communities: Vec<(u32, u32, u32)>,
    pub max_prefixes: Option<u32>,
    pub max_prefixes_action: MaxPrefixAction,
    /// BFD toward this neighbor; `None` = off.
    pub bfd: Option<BfdTimers>,
}

/// A neighbor's BFD timers (`bfd_min_tx`, `bfd_min_rx`, `bfd_multiplier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdTimers {
    pub min_tx: Duration,
    pub min_rx: Duration,
    pub multiplier: u8,
}

impl Neighbor {
    pub fn is_ibgp(&self, local_asn: u32) -> bool {
        self.remote_asn == local_asn
    }
}

/// This site's other directors (decision 0015).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directors {
    /// The key the site's directors sign their reports to each other with (empty
    /// without other directors).
    pub key: Vec<u8>,
    pub others: Vec<Director>,
}

/// Another director of this site.
#[derive(Debug, Clone, PartialEq)]
pub struct Director {
    pub name: String,
    pub address: Ipv4Addr,
    /// Where it takes load reports.
    pub url: String,
}

/// The UDP port of GUE when a peer's `gue_port` is not given: the port of the
/// kernel's IPVS GUE example (`--tun-port 6080`); GUE has no IANA port.
pub const DEFAULT_GUE_PORT: u16 = 6080;

/// How this site tunnels IPv4 connections to a peer site (decision 0016).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerTunnel {
    /// IP in IP (20 bytes): every flow to the peer looks alike to a router.
    #[default]
    Ipip,
    /// IPIP inside UDP to `port` (32 bytes): the outer source port varies per flow,
    /// so the upstream's ECMP spreads the flows over the peer's directors.
    Gue { port: u16 },
}

impl PeerTunnel {
    /// The name as the config writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerTunnel::Ipip => "ipip",
            PeerTunnel::Gue { .. } => "gue",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerSite {
    pub name: String,
    pub tunnel_endpoint: Ipv4Addr,
    /// The peer director's IPv6 address: where IPv6 connections are spilled (ip6ip6).
    pub tunnel_endpoint_v6: Option<Ipv6Addr>,
    /// How IPv4 connections are tunnelled to the peer (`tunnel`, `gue_port`).
    pub tunnel: PeerTunnel,
    /// Where each load report goes: the peer site's report URL (`url`), or one per
    /// director of the peer site (`urls`), so that every one of them decides on the
    /// same figures (decision 0015).
    pub urls: Vec<String>,
    pub key: Vec<u8>,
    /// During a key rotation: reports signed with this key are accepted too.
    pub next_key: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vip {
    pub name: String,
    pub prefix: IpNet,
    pub address: IpAddr,
    pub min_up: u32,
    pub hold_down: Duration,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub protocol: Protocol,
    pub port: u16,
    pub scheduler: String,
    pub persistence: Option<Duration>,
    /// IPv6 VIPs: persistence groups clients by this prefix length (default 64).
    pub persistence_prefix_v6: u8,
    pub real_servers: Vec<RealServer>,
}

/// The client prefix IPv6 persistence groups by when the service does not say: one
/// /64 is one client site (a host's temporary addresses change inside it).
pub const DEFAULT_PERSISTENCE_PREFIX_V6: u8 = 64;

/// The default ip6ip6 device name.
pub const DEFAULT_TUNNEL6_DEVICE: &str = "anycast6";
/// `site.director` when not given: a site of one director needs no name.
pub const DEFAULT_DIRECTOR: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Dr,
    Nat,
    Tun,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Dr => "dr",
            Method::Nat => "nat",
            Method::Tun => "tun",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RealServer {
    pub address: IpAddr,
    pub port: u16,
    pub method: Method,
    pub weight: u32,
    pub capacity: u32,
    pub load_url: Option<String>,
    pub check: Check,
    /// Line of its `[[vip.service.real_server]]` table in the file (for `check`'s
    /// warnings; 0 when not from a file).
    pub line: usize,
}

impl RealServer {
    /// How often its `load_url` is read, and the timeout of one read: the check's
    /// interval and timeout, but at least 1 s each (an HTTP request per 200 ms tcp
    /// check would be a load of its own). A value stays fresh for three intervals.
    pub fn load_poll(&self) -> (Duration, Duration) {
        let interval = self.check.interval.max(Duration::from_secs(1));
        let timeout = self.check.timeout.max(Duration::from_secs(1)).min(interval);
        (interval, timeout)
    }
}

/// What a health check does (geo-balancer's own type: the config adds nothing).
pub use geo_balancer::health::CheckKind;

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub kind: CheckKind,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub fast_detect: bool,
    /// With fast_detect: an ICMP echo every interval, the full check every
    /// `full_interval` while the host answers (decision 0008).
    pub echo: bool,
    pub full_interval: Duration,
}

/// A refused configuration: every problem, each with file, line and reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.reason
        )
    }
}

impl ConfigError {
    fn render(&self) -> String {
        let lines: Vec<String> = self.problems.iter().map(|p| p.to_string()).collect();
        lines.join("\n")
    }
}

/// Reads and validates a site configuration file.
pub fn load(path: &Path) -> Result<SiteConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            reason: format!("cannot read the file: {e}"),
        }],
    })?;
    parse_str(path, &text)
}
