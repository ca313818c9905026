//! Peer and route configuration: plain data, validated once at start.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use crate::error::ConfigError;

/// RFC 8326 GRACEFUL_SHUTDOWN well-known community (65535:0).
pub const GRACEFUL_SHUTDOWN: u32 = 0xFFFF_0000;

/// What to do when a peer sends more prefixes than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxPrefixAction {
    /// Log a warning once per session and keep going.
    Warn,
    /// Send Cease / Maximum Number of Prefixes Reached (RFC 4486), close, and
    /// stay down for `hold_off` before reconnecting.
    Teardown {
        /// How long to stay down after the teardown.
        hold_off: Duration,
    },
}

/// Per-peer limit on received prefixes (IPv4 and IPv6 counted together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPrefix {
    /// Highest accepted count.
    pub limit: u32,
    /// Reaction when the count goes above `limit`.
    pub action: MaxPrefixAction,
}

/// One BGP neighbor. Build with [`PeerConfig::new`] and adjust the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Name used in logs, status and errors.
    pub name: String,
    /// The neighbor's address.
    pub remote_addr: IpAddr,
    /// The neighbor's TCP port (179).
    pub remote_port: u16,
    /// Source address for outgoing connections (the kernel picks when `None`).
    pub local_addr: Option<IpAddr>,
    /// Our AS (4-octet capable, RFC 6793).
    pub local_asn: u32,
    /// The neighbor's AS; equal to `local_asn` means iBGP.
    pub remote_asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time in seconds: 0 or at least 3 (RFC 4271 §4.2). Default 90.
    pub hold_time: u16,
    /// KEEPALIVE interval in seconds; `None` = a third of the negotiated hold time.
    /// Never longer than a third of the negotiated hold time (RFC 4271 §4.4).
    pub keepalive: Option<u16>,
    /// Base connect-retry time in seconds (RFC 4271 §10); backoff doubles it, with jitter.
    pub connect_retry: u16,
    /// Longest wait before reconnecting after a session went down (backoff cap).
    pub idle_hold_max: Duration,
    /// RFC 9687 send hold time; `None` is the RFC default max(8 min, 2 x hold time).
    pub send_hold_time: Option<Duration>,
    /// Negotiate IPv4 unicast.
    pub ipv4_unicast: bool,
    /// Negotiate IPv6 unicast (MP-BGP, RFC 4760).
    pub ipv6_unicast: bool,
    /// IPv4 next hop for our routes; `None` is the session's local address (next-hop-self).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// IPv6 next hop for our routes; `None` is the session's local address (next-hop-self).
    pub next_hop_v6: Option<Ipv6Addr>,
    /// RFC 2385 TCP MD5 signature password.
    pub md5_password: Option<String>,
    /// RFC 5082 GTSM: accept only packets at most this many hops away (1 = directly
    /// connected; sets IP_MINTTL to 256 - hops and sends with TTL 255).
    pub ttl_security_hops: Option<u8>,
    /// Received-prefix limit.
    pub max_prefix: Option<MaxPrefix>,
    /// Never connect out; wait for the neighbor on the speaker's listener.
    pub passive: bool,
}

impl PeerConfig {
    /// An eBGP or iBGP neighbor with defaults: port 179, hold 90 s, connect-retry
    /// 30 s, IPv4 unicast on, IPv6 unicast on only for an IPv6 neighbor.
    pub fn new(
        name: impl Into<String>,
        remote_addr: IpAddr,
        local_asn: u32,
        remote_asn: u32,
        router_id: Ipv4Addr,
    ) -> Self {
        Self {
            name: name.into(),
            remote_addr,
            remote_port: 179,
            local_addr: None,
            local_asn,
            remote_asn,
            router_id,
            hold_time: 90,
            keepalive: None,
            connect_retry: 30,
            idle_hold_max: Duration::from_secs(60),
            send_hold_time: None,
            ipv4_unicast: true,
            ipv6_unicast: remote_addr.is_ipv6(),
            next_hop_v4: None,
            next_hop_v6: None,
            md5_password: None,
            ttl_security_hops: None,
            max_prefix: None,
            passive: false,
        }
    }

    /// True for an iBGP session.
    pub fn is_ibgp(&self) -> bool {
        self.local_asn == self.remote_asn
    }

    /// The send hold time in effect (RFC 9687 §6 default when unset).
    pub fn effective_send_hold_time(&self) -> Duration {
        self.send_hold_time
            .unwrap_or_else(|| Duration::from_secs(480.max(2 * u64::from(self.hold_time))))
    }

    /// The neighbor's socket address.
    pub fn remote_socket(&self) -> SocketAddr {
        SocketAddr::new(self.remote_addr, self.remote_port)
    }

    /// Checks everything that can be checked before a socket exists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let peer = || self.name.clone();
        if self.hold_time != 0 && self.hold_time < 3 {
            return Err(ConfigError::HoldTime {
                peer: peer(),
                hold_secs: self.hold_time,
            });
        }
        if let Some(k) = self.keepalive
            && (k == 0 || (self.hold_time != 0 && k >= self.hold_time))
        {
            return Err(ConfigError::Keepalive {
                peer: peer(),
                keepalive_secs: k,
                hold_secs: self.hold_time,
            });
        }
        let send_hold = self.effective_send_hold_time();
        if send_hold.as_secs() <= u64::from(self.hold_time) {
            return Err(ConfigError::SendHoldTime {
                peer: peer(),
                send_hold_secs: u32::try_from(send_hold.as_secs()).unwrap_or(u32::MAX),
                hold_secs: self.hold_time,
            });
        }
        if self.local_asn == 0 || self.remote_asn == 0 {
            return Err(ConfigError::ZeroAsn { peer: peer() });
        }
        if !self.ipv4_unicast && !self.ipv6_unicast {
            return Err(ConfigError::NoFamily { peer: peer() });
        }
        if self.ipv4_unicast && self.remote_addr.is_ipv6() && self.next_hop_v4.is_none() {
            return Err(ConfigError::MissingNextHop {
                peer: peer(),
                family: "IPv4",
                remote: self.remote_addr,
            });
        }
        if self.ipv6_unicast && self.remote_addr.is_ipv4() && self.next_hop_v6.is_none() {
            return Err(ConfigError::MissingNextHop {
                peer: peer(),
                family: "IPv6",
                remote: self.remote_addr,
            });
        }
        if self.md5_password.as_ref().is_some_and(|p| p.len() > 80) {
            return Err(ConfigError::Md5KeyTooLong { peer: peer() });
        }
        if let Some(hops) = self.ttl_security_hops
            && !(1..=254).contains(&hops)
        {
            return Err(ConfigError::TtlSecurityHops { peer: peer(), hops });
        }
        Ok(())
    }
}

/// The whole speaker: its neighbors and an optional passive listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpeakerConfig {
    /// The neighbors.
    pub peers: Vec<PeerConfig>,
    /// Address to accept passive sessions on (e.g. `[::]:179`); `None` = active only.
    pub listen: Option<SocketAddr>,
}

impl SpeakerConfig {
    /// Validates every peer and their combination.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        let mut addrs = HashSet::new();
        for p in &self.peers {
            p.validate()?;
            if !names.insert(p.name.as_str()) || !addrs.insert(p.remote_addr) {
                return Err(ConfigError::DuplicatePeer {
                    peer: p.name.clone(),
                });
            }
            if p.passive && self.listen.is_none() {
                return Err(ConfigError::PassiveWithoutListener {
                    peer: p.name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// One prefix we originate, with its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The prefix (host bits are cleared when stored).
    pub prefix: IpNet,
    /// Next hop; `None` = the peer's configured next hop, else next-hop-self.
    pub next_hop: Option<IpAddr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF, sent on iBGP only (100 when `None`).
    pub local_pref: Option<u32>,
    /// Extra copies of our AS prepended on eBGP (0 = just our AS once).
    pub as_path_prepend: u8,
    /// RFC 1997 communities as `asn << 16 | value`.
    pub communities: Vec<u32>,
    /// RFC 8092 large communities (global, local1, local2).
    pub large_communities: Vec<(u32, u32, u32)>,
    /// Add the RFC 8326 GRACEFUL_SHUTDOWN community (65535:0).
    pub graceful_shutdown: bool,
}

impl Route {
    /// A route with default attributes: ORIGIN IGP, AS_PATH of our AS, next-hop-self.
    pub fn new(prefix: IpNet) -> Self {
        Self {
            prefix: prefix.trunc(),
            next_hop: None,
            med: None,
            local_pref: None,
            as_path_prepend: 0,
            communities: Vec::new(),
            large_communities: Vec::new(),
            graceful_shutdown: false,
        }
    }

    /// The communities to put on the wire, GRACEFUL_SHUTDOWN included when asked.
    pub fn wire_communities(&self) -> Vec<u32> {
        let mut c = self.communities.clone();
        if self.graceful_shutdown && !c.contains(&GRACEFUL_SHUTDOWN) {
            c.push(GRACEFUL_SHUTDOWN);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerConfig {
        PeerConfig::new(
            "up1",
            "10.0.0.1".parse().unwrap(),
            65001,
            65002,
            Ipv4Addr::new(1, 1, 1, 1),
        )
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(peer().validate(), Ok(()));
    }

    #[test]
    fn hold_time_one_is_refused() {
        let mut p = peer();
        p.hold_time = 1;
        assert!(matches!(
            p.validate(),
            Err(ConfigError::HoldTime { hold_secs: 1, .. })
        ));
        p.hold_time = 0;
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn ipv6_over_ipv4_needs_a_next_hop() {
        let mut p = peer();
        p.ipv6_unicast = true;
        assert!(matches!(
            p.validate(),
            Err(ConfigError::MissingNextHop { family: "IPv6", .. })
        ));
        p.next_hop_v6 = Some("2001:db8::1".parse().unwrap());
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn keepalive_must_be_below_hold() {
        let mut p = peer();
        p.keepalive = Some(90);
        assert!(matches!(p.validate(), Err(ConfigError::Keepalive { .. })));
        p.keepalive = Some(10);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn send_hold_must_exceed_hold() {
        let mut p = peer();
        p.send_hold_time = Some(Duration::from_secs(90));
        assert!(matches!(
            p.validate(),
            Err(ConfigError::SendHoldTime { .. })
        ));
    }

    #[test]
    fn graceful_shutdown_adds_the_well_known_community_once() {
        let mut r = Route::new("10.101.4.7/24".parse().unwrap());
        assert_eq!(r.prefix.to_string(), "10.101.4.0/24");
        r.graceful_shutdown = true;
        r.communities = vec![GRACEFUL_SHUTDOWN];
        assert_eq!(r.wire_communities(), vec![GRACEFUL_SHUTDOWN]);
    }

    #[test]
    fn duplicate_peers_are_refused() {
        let cfg = SpeakerConfig {
            peers: vec![peer(), peer()],
            listen: None,
        };
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::DuplicatePeer { .. })
        ));
    }
}
