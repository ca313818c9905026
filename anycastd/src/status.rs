//! The status document the daemon serves at `GET /v1/status` and `anycastctl` renders.
//! Versioned by its path; fields are only ever added.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub site: String,
    /// Seconds since the daemon started.
    pub uptime_s: u64,
    /// Unix time of this snapshot, seconds.
    pub now: u64,
    pub vips: Vec<VipStatus>,
    pub sessions: Vec<SessionStatus>,
    pub real_servers: Vec<ServerStatus>,
    /// Local aggregate load; `None` when no real server is up (infinite).
    pub local_load: Option<f64>,
    pub peers: Vec<PeerStatus>,
    pub spill: Vec<SpillStatus>,
    pub dataplane: DataplaneStatus,
    /// IPVS connection sync with the site's other directors; `None` without `[sync]`.
    #[serde(default)]
    pub sync: Option<SyncStatus>,
    /// The site's directors (decision 0015); `None` for a site of one director.
    #[serde(default)]
    pub directors: Option<DirectorsStatus>,
}

/// This director and the site's others: `local_load` is the site's load, their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectorsStatus {
    /// This director's name.
    pub me: String,
    /// This director's own load (served plus spilled out, over its healthy capacity).
    pub own_load: Option<f64>,
    /// The digest of the site-wide config, as in this director's reports.
    pub config_digest: String,
    /// The site's other directors, as configured.
    pub others: Vec<DirectorView>,
}

/// Another director of this site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectorView {
    pub name: String,
    pub address: String,
    /// `known` (up): a fresh report; `stale`: none within the stale time (counted as
    /// down); `unknown`: never heard.
    pub state: PeerState,
    /// Its own load, from its last report.
    pub load: Option<f64>,
    pub report_age_s: Option<u64>,
    /// Whether its config digest equals ours (`None`: never heard).
    pub digest_match: Option<bool>,
    /// Whether its figures are in the site load (fresh and the same digest).
    pub counted: bool,
}

/// The kernel's sync daemons on this director and its connections by origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Roles running, `master` and/or `backup`.
    pub roles: Vec<String>,
    pub interface: String,
    pub syncid: u8,
    /// Connections this director scheduled.
    pub local_conns: u64,
    /// Connections learned from the site's other directors.
    pub synced_conns: u64,
    /// Why the kernel could not be read, if it could not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VipState {
    Announced,
    Withdrawn,
    /// Announced with GRACEFUL_SHUTDOWN, withdraw pending.
    Draining,
    /// Withdrawn on the operator's request.
    Drained,
}

impl VipState {
    pub fn as_str(self) -> &'static str {
        match self {
            VipState::Announced => "announced",
            VipState::Withdrawn => "withdrawn",
            VipState::Draining => "draining",
            VipState::Drained => "drained",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VipStatus {
    pub name: String,
    pub prefix: String,
    pub address: String,
    pub state: VipState,
    /// Why it is in that state, one sentence.
    pub reason: String,
    /// Unix time of the last state change.
    pub since: u64,
    pub servers_up: u32,
    pub min_up: u32,
    /// `ipv4` or `ipv6`: which tunnel its spilled connections take (IPIP, ip6ip6).
    #[serde(default)]
    pub family: String,
    /// Announced only because the last-announcer guard holds it: its own checks fail
    /// and every peer reports it cannot serve (`[site] all_down`, decision 0017).
    #[serde(default)]
    pub held: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub neighbor: String,
    pub remote_asn: u32,
    pub state: SessionState,
    /// Seconds in Established, when it is.
    pub uptime_s: Option<u64>,
    pub prefixes_sent: u64,
    pub prefixes_received: u64,
    pub last_error: Option<String>,
    /// BFD toward this neighbor, when configured.
    #[serde(default)]
    pub bfd: Option<BfdSessionStatus>,
}

/// One BFD session (RFC 5880) as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfdSessionStatus {
    pub state: BfdState,
    /// The neighbor's state as last received.
    pub remote_state: BfdState,
    /// Why this end last went down.
    pub local_diag: String,
    pub remote_diag: String,
    /// Negotiated transmit interval.
    pub tx_interval_ms: u64,
    /// No packet for this long: down.
    pub detection_time_ms: u64,
    /// The BGP session is held down until BFD is up again.
    pub holds_bgp_down: bool,
}

/// A BFD session's state (RFC 5880 section 4.1), `AdminDown`, `Down`, `Init` or `Up` on
/// the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BfdState {
    AdminDown,
    Down,
    Init,
    Up,
}

impl BfdState {
    pub fn as_str(self) -> &'static str {
        match self {
            BfdState::AdminDown => "AdminDown",
            BfdState::Down => "Down",
            BfdState::Init => "Init",
            BfdState::Up => "Up",
        }
    }
}

impl From<bfd::State> for BfdState {
    fn from(s: bfd::State) -> Self {
        match s {
            bfd::State::AdminDown => BfdState::AdminDown,
            bfd::State::Down => BfdState::Down,
            bfd::State::Init => BfdState::Init,
            bfd::State::Up => BfdState::Up,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub vip: String,
    /// `tcp/80`
    pub service: String,
    pub address: String,
    pub port: u16,
    pub state: ServerState,
    pub active_conns: u64,
    pub capacity: u32,
    pub last_check: Option<String>,
    /// Its IPVS weight in the VIP's service now (0: no new connections).
    #[serde(default)]
    pub weight: u32,
    /// Who disabled it, while it is disabled.
    #[serde(default)]
    pub disabled_by: Option<String>,
    /// Unix time it was disabled, while it is.
    #[serde(default)]
    pub disabled_since: Option<u64>,
}

/// Answer of `POST /v1/server/disable` and `/v1/server/enable`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerReply {
    pub vip: String,
    pub server: String,
    pub state: ServerState,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub name: String,
    /// Last reported load; `None` while unknown or when the peer reports infinite load.
    pub load: Option<f64>,
    /// Seconds since the last valid report; `None` if none yet.
    pub report_age_s: Option<u64>,
    pub state: PeerState,
    /// The peer says it spills to us (so we never spill to it).
    pub spilling_to_us: bool,
    pub rejected_reports: u64,
    /// The tunnels to this peer's director, one per family: `ipip 10.101.2.2`,
    /// `ip6ip6 2001:db8:2::2`.
    #[serde(default)]
    pub tunnels: Vec<String>,
    /// The sites its last fresh report says it spills to, and the share of its new
    /// connections it sends away (the monitor's fleet arrows).
    #[serde(default)]
    pub spilling_to: Vec<String>,
    #[serde(default)]
    pub spill_share: f64,
    /// The VIPs (addresses) its last fresh report says fail their checks there: the
    /// last-announcer guard counts it withdrawn for those.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips_down: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpillStatus {
    pub peer: String,
    /// Share of new connections sent to this peer, 0..=1.
    pub share: f64,
    /// Unix time spilling to this peer started.
    pub since: Option<u64>,
    /// The decision in one sentence with its numbers.
    pub reason: String,
    /// The families whose new connections the share applies to (`ipv4`, `ipv6`):
    /// one share per site, for every VIP with a tunnel to this peer.
    #[serde(default)]
    pub families: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataplaneStatus {
    /// In place, as last reconciled.
    pub ok: bool,
    pub last_reconcile: Option<u64>,
    pub last_changes: u64,
    pub last_error: Option<String>,
}

/// Answer of `POST /v1/drain` and `/v1/undrain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainReply {
    pub vips: Vec<String>,
    pub message: String,
}

/// Answer of `GET /v1/why/{vip}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhyReply {
    pub vip: String,
    pub announcement: String,
    pub spill: Vec<String>,
}

/// An error the API returns with a non-2xx status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// A BGP session's state (RFC 4271 §8), as `Idle` ... `Established` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl SessionState {
    pub const ALL: [SessionState; 6] = [
        SessionState::Idle,
        SessionState::Connect,
        SessionState::Active,
        SessionState::OpenSent,
        SessionState::OpenConfirm,
        SessionState::Established,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Idle => "Idle",
            SessionState::Connect => "Connect",
            SessionState::Active => "Active",
            SessionState::OpenSent => "OpenSent",
            SessionState::OpenConfirm => "OpenConfirm",
            SessionState::Established => "Established",
        }
    }
}

impl From<bgp_speaker::PeerState> for SessionState {
    fn from(s: bgp_speaker::PeerState) -> Self {
        use bgp_speaker::PeerState as P;
        match s {
            P::Idle => SessionState::Idle,
            P::Connect => SessionState::Connect,
            P::Active => SessionState::Active,
            P::OpenSent => SessionState::OpenSent,
            P::OpenConfirm => SessionState::OpenConfirm,
            P::Established => SessionState::Established,
        }
    }
}

/// A real server's health, `up`, `down` or `disabled` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    Up,
    Down,
    Disabled,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Up => "up",
            ServerState::Down => "down",
            ServerState::Disabled => "disabled",
        }
    }
}

impl From<geo_balancer::health::HealthState> for ServerState {
    fn from(s: geo_balancer::health::HealthState) -> Self {
        use geo_balancer::health::HealthState as H;
        match s {
            H::Up => ServerState::Up,
            H::Down => ServerState::Down,
            H::Disabled => ServerState::Disabled,
        }
    }
}

/// What this site knows of a peer site: `known` (a fresh report), `stale` (a report
/// too old to act on) or `unknown` (never a valid report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    Known,
    Stale,
    Unknown,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Known => "known",
            PeerState::Stale => "stale",
            PeerState::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfd_states_are_named_as_the_bfd_crate_prints_them() {
        use bfd::State as S;
        for s in [S::AdminDown, S::Down, S::Init, S::Up] {
            let ours = BfdState::from(s);
            assert_eq!(ours.as_str(), s.to_string());
            assert_eq!(serde_json::to_string(&ours).unwrap(), format!("\"{s}\""));
        }
    }

    #[test]
    fn a_bfd_session_reads_as_it_always_did() {
        let json = r#"{"state":"Down","remote_state":"AdminDown","local_diag":"neighbor signaled session down","remote_diag":"no diagnostic","tx_interval_ms":1000,"detection_time_ms":0,"holds_bgp_down":false}"#;
        let b: BfdSessionStatus = serde_json::from_str(json).unwrap();
        assert_eq!(
            (b.state, b.remote_state),
            (BfdState::Down, BfdState::AdminDown)
        );
        assert_eq!(serde_json::to_string(&b).unwrap(), json);
    }
}
