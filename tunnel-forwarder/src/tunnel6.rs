//! IPv6 spill: the receiving ip6ip6 device and the family rules of tunnel
//! destinations.
//!
//! An IPv6 VIP's connections are spilled to a peer director's IPv6 address: IPVS
//! (`ip_vs_tunnel_xmit_v6`) wraps the client's packet in an outer IPv6 header (next
//! header 41) and the peer decapsulates it on an `ip6tnl` device in mode ip6ip6
//! whose local address is its own (`ip link add NAME type ip6tnl mode ip6ip6 local
//! LOCAL remote any`). The loop guard is the IPv4 one on that device: a u32 filter
//! with `protocol ipv6` marks packets for VIP:PORT and a firewall-mark service of
//! the IPv6 family holds the local real servers only.
//!
//! Mixed families (an IPv4 peer address on an IPv6 service, IPVS can do it since
//! Linux 3.18, or the reverse) are refused here: the receiving side would need a
//! `sit` (or `ip6tnl mode ipip6`) device and a guard on it, which are not written;
//! see docs/decisions/0009-ipv6-spill-over-ip6ip6.md.

use std::net::{IpAddr, Ipv6Addr};

use crate::error::ConfigError;
use crate::model::{DesiredState, ServiceKey, check_ifname};

/// IPv6 forwarding, set while an IPv6 service has a NAT destination (its replies
/// pass the director).
pub const IPV6_FORWARDING_SYSCTL: &str = "net/ipv6/conf/all/forwarding";

/// The receiving ip6ip6 device of this director: `ip link add NAME type ip6tnl mode
/// ip6ip6 local LOCAL remote any`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tunnel6Device {
    pub name: String,
    /// This director's IPv6 address: where peers send what they spill here.
    pub local: Ipv6Addr,
}

/// The device names and addresses of the two tunnels are consistent.
pub(crate) fn check_names(d: &DesiredState) -> Result<(), ConfigError> {
    let Some(t6) = &d.tunnel6 else {
        return Ok(());
    };
    check_ifname(&t6.name)?;
    if d.tunnel.as_ref().is_some_and(|t| t.name == t6.name) {
        return Err(ConfigError::new(format!(
            "tunnel device {} named for both IPIP and ip6ip6: give each its own",
            t6.name
        )));
    }
    if t6.local.is_unspecified() || t6.local.is_multicast() || t6.local.is_loopback() {
        return Err(ConfigError::new(format!(
            "ip6ip6 device {}: local {} is not a unicast address",
            t6.name, t6.local
        )));
    }
    Ok(())
}

/// A peer destination must be of its service's family.
pub(crate) fn check_peer_family(
    key: &ServiceKey,
    vip: IpAddr,
    peer: IpAddr,
) -> Result<(), ConfigError> {
    if vip.is_ipv4() == peer.is_ipv4() {
        return Ok(());
    }
    let (inner, outer) = if vip.is_ipv6() {
        ("IPv6", "IPv4")
    } else {
        ("IPv4", "IPv6")
    };
    Err(ConfigError::new(format!(
        "{key}: peer {peer} is {outer}: {inner} connections are tunnelled to a peer address of their own family (mixed-family tunnel destinations are not supported)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_of_the_other_family_are_refused_both_ways() {
        let k = ServiceKey::Addr {
            protocol: crate::Protocol::Tcp,
            addr: "2001:db8:4::1".parse().unwrap(),
            port: 80,
        };
        let v6: IpAddr = "2001:db8:4::1".parse().unwrap();
        let v4: IpAddr = "10.101.4.1".parse().unwrap();
        assert!(check_peer_family(&k, v6, "2001:db8:2::2".parse().unwrap()).is_ok());
        let e = check_peer_family(&k, v6, "10.1.0.2".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("peer 10.1.0.2 is IPv4"), "{e}");
        assert!(check_peer_family(&k, v4, "2001:db8:2::2".parse().unwrap()).is_err());
    }
}
