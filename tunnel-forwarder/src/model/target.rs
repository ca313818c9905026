//! The flat kernel objects a [`DesiredState`] compiles to (what the diff compares),
//! and the compile step that checks the state on the way.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;
use crate::error::ConfigError;
use crate::split::{self, SplitClass, SplitTarget};

/// A desired IPVS service with its destinations, keyed by (addr, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    pub config: ServiceConfig,
    pub dests: BTreeMap<(IpAddr, u16), Dest>,
}

impl ServiceSpec {
    /// `-A -t VIP:PORT -s wrr ...` arguments.
    pub fn ipvsadm_args(&self) -> String {
        format!(
            "{} {}",
            self.key.ipvsadm(),
            self.config.ipvsadm_args(self.key.is_ipv6())
        )
    }
}

/// A tc match: packets to `dst`/`protocol`/`port` get `mark`. An IPv4 rule sits on
/// the IPIP device, an IPv6 one on the ip6ip6 device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarkRule {
    pub dst: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
    pub mark: u32,
}

/// An address we own on a device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrSpec {
    pub device: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// The flat kernel objects a [`DesiredState`] compiles to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    pub services: BTreeMap<ServiceKey, ServiceSpec>,
    pub dummies: Vec<String>,
    pub tunnel: Option<TunnelDevice>,
    pub tunnel6: Option<Tunnel6Device>,
    pub addrs: Vec<AddrSpec>,
    pub filter_prio: u16,
    pub marks: Vec<MarkRule>,
    /// `/proc/sys/...` path relative to /proc/sys, and value.
    pub sysctls: BTreeMap<String, String>,
    /// The split's filters on the client devices.
    pub split: Option<SplitTarget>,
    /// The sync daemons wanted.
    pub sync: Vec<crate::sync::SyncDaemon>,
    /// The GUE listeners wanted (UDP ports).
    pub gue_ports: std::collections::BTreeSet<u16>,
}

impl DesiredState {
    /// Checks the state and flattens it into kernel objects.
    pub fn compile(&self) -> Result<Target, ConfigError> {
        let mut t = Target {
            filter_prio: self.filter_prio,
            tunnel: self.tunnel.clone(),
            tunnel6: self.tunnel6.clone(),
            sync: self.sync.clone(),
            ..Target::default()
        };
        crate::sync::check(&self.sync)?;
        for &port in &self.gue_ports {
            if port == 0 {
                return Err(ConfigError::new("GUE listener on port 0"));
            }
            if self.tunnel.is_none() {
                return Err(ConfigError::new(format!(
                    "GUE listener on port {port} needs the IPIP tunnel device (tunnel) it decapsulates into"
                )));
            }
            t.gue_ports.insert(port);
        }
        crate::tunnel6::check_names(self)?;
        if let Some(tun) = &self.tunnel {
            check_ifname(&tun.name)?;
            if tun.name.len() > 12 {
                return Err(ConfigError::new(format!(
                    "tunnel device name {:?} too long (max 12, the address label needs 3 more)",
                    tun.name
                )));
            }
            // The tunnel carries its local address: reverse-path filtering in loose
            // mode drops everything arriving on a device without any IPv4 address.
            t.addrs.push(AddrSpec {
                device: tun.name.clone(),
                addr: IpAddr::V4(tun.local),
                prefix_len: 32,
            });
        }
        let mut marks_seen = BTreeMap::new();
        let mut any_nat = false;
        let mut any_nat6 = false;
        for vip in &self.vips {
            let dev = vip.device.name().to_string();
            check_ifname(&dev)?;
            if dev.len() > 12 {
                return Err(ConfigError::new(format!(
                    "VIP device name {dev:?} too long (max 12, the address label needs 3 more)"
                )));
            }
            if let VipDevice::Dummy(n) = &vip.device
                && !t.dummies.contains(n)
            {
                t.dummies.push(n.clone());
            }
            let prefix_len = if vip.addr.is_ipv4() { 32 } else { 128 };
            let a = AddrSpec {
                device: dev,
                addr: vip.addr,
                prefix_len,
            };
            if !t.addrs.contains(&a) {
                t.addrs.push(a);
            }
            for s in &vip.services {
                if s.config.scheduler.is_empty() || s.config.scheduler.len() > 15 {
                    return Err(ConfigError::new(format!(
                        "{} port {}: scheduler name must be 1..15 characters",
                        vip.addr, s.port
                    )));
                }
                let key = ServiceKey::Addr {
                    protocol: s.protocol,
                    addr: vip.addr,
                    port: s.port,
                };
                let mut dests = BTreeMap::new();
                for d in &s.local {
                    d.encap.check(&key, d)?;
                    any_nat |= d.forward == Forward::Nat;
                    any_nat6 |= d.forward == Forward::Nat && d.addr.is_ipv6();
                    if dests.insert(d.key(), *d).is_some() {
                        return Err(ConfigError::new(format!(
                            "{key}: destination {} listed twice",
                            SockFmt(d.addr, d.port)
                        )));
                    }
                }
                for p in &s.peers {
                    crate::tunnel6::check_peer_family(&key, vip.addr, p.addr)?;
                    let d = p.dest(s.port);
                    d.encap.check(&key, &d)?;
                    if dests.insert(d.key(), d).is_some() {
                        return Err(ConfigError::new(format!(
                            "{key}: peer {} is also a local destination",
                            p.addr
                        )));
                    }
                }
                if t.services.contains_key(&key) {
                    return Err(ConfigError::new(format!("{key} defined twice")));
                }
                t.services.insert(
                    key,
                    ServiceSpec {
                        key,
                        config: s.config.clone(),
                        dests,
                    },
                );
                if let Some(tin) = &s.tunnel_in {
                    let mark = tin.mark;
                    let dst = vip.addr;
                    if mark == 0 {
                        return Err(ConfigError::new(format!("{key}: tunnel mark 0 is no mark")));
                    }
                    if dst.is_ipv4() && self.tunnel.is_none() {
                        return Err(ConfigError::new(format!(
                            "{key}: a tunnel mark needs a tunnel device in the desired state"
                        )));
                    }
                    if dst.is_ipv6() && self.tunnel6.is_none() {
                        return Err(ConfigError::new(format!(
                            "{key}: a tunnel mark on an IPv6 VIP needs the ip6ip6 tunnel device (tunnel6) in the desired state"
                        )));
                    }
                    if let Some(other) = marks_seen.insert(mark, key) {
                        return Err(ConfigError::new(format!(
                            "tunnel mark {mark} used by both {other} and {key}"
                        )));
                    }
                    let fkey = ServiceKey::Fwmark {
                        mark,
                        ipv6: dst.is_ipv6(),
                    };
                    let mut local = BTreeMap::new();
                    for d in &tin.dests {
                        any_nat |= d.forward == Forward::Nat;
                        any_nat6 |= d.forward == Forward::Nat && d.addr.is_ipv6();
                        let is_peer = s.peers.iter().any(|p| p.addr == d.addr);
                        if is_peer || local.insert(d.key(), *d).is_some() {
                            return Err(ConfigError::new(format!(
                                "{key}: tunnel-in destination {} is a peer or listed twice",
                                SockFmt(d.addr, d.port)
                            )));
                        }
                    }
                    t.services.insert(
                        fkey,
                        ServiceSpec {
                            key: fkey,
                            config: s.config.clone(),
                            dests: local,
                        },
                    );
                    t.marks.push(MarkRule {
                        dst,
                        protocol: s.protocol,
                        port: s.port,
                        mark,
                    });
                }
            }
        }
        t.marks.sort();
        if let Some(split) = &self.split {
            if split.carries_ipv6() && self.filter_prio == u16::MAX {
                return Err(ConfigError::new(format!(
                    "filter priority {}: the split's IPv6 class filters take the next one",
                    self.filter_prio
                )));
            }
            // IPv4 VIPs' services, and IPv6 ones' when the split has IPv6 peers.
            let classes = self
                .vips
                .iter()
                .filter(|v| v.addr.is_ipv4() || split.carries_ipv6())
                .flat_map(|v| {
                    v.services
                        .iter()
                        .filter(|s| matches!(s.protocol, Protocol::Tcp | Protocol::Udp))
                        .map(move |s| SplitClass {
                            dst: v.addr,
                            protocol: s.protocol,
                            port: s.port,
                        })
                })
                .collect();
            let tunnel = self.tunnel.as_ref().map(|t| t.name.as_str());
            t.split = Some(split::compile(split, classes, tunnel, &mut t.services)?);
        }
        if self.ip_forward && !t.services.is_empty() {
            t.sysctls.insert("net/ipv4/ip_forward".into(), "1".into());
        }
        if let Some(tun) = &self.tunnel {
            // Loose mode: tunnelled packets carry the client's source address, which
            // is not routed via the tunnel. Effective rp_filter is max(all, dev), so 2
            // on the device is loose whatever `all` says.
            t.sysctls
                .insert(format!("net/ipv4/conf/{}/rp_filter", tun.name), "2".into());
        }
        if any_nat {
            t.sysctls.insert("net/ipv4/vs/conntrack".into(), "1".into());
        }
        if any_nat6 {
            // A NAT real server's replies pass the director on their way back.
            t.sysctls
                .insert(crate::tunnel6::IPV6_FORWARDING_SYSCTL.into(), "1".into());
        }
        if !t.services.is_empty() {
            // A destination deleted (a real server that failed) takes its connections
            // with it: the next packet of each is dropped and the entry expired, so
            // the client is answered by a reset instead of retransmitting into a
            // dead server for minutes. Weight 0 (disabled, draining) is not deleted:
            // its connections finish. Persistence templates pointing at a weight-0
            // destination expire too, so a persistent client of a drained server
            // moves at its next connection.
            t.sysctls
                .insert(EXPIRE_NODEST_CONN_SYSCTL.into(), "1".into());
            t.sysctls
                .insert(EXPIRE_QUIESCENT_TEMPLATE_SYSCTL.into(), "1".into());
        }
        let any_tunnel = t
            .services
            .values()
            .any(|s| s.dests.values().any(|d| d.forward == Forward::Tunnel));
        if let Some(pmtu) = self.tunnel_pmtu
            && any_tunnel
        {
            t.sysctls
                .insert(PMTU_DISC_SYSCTL.into(), pmtu.sysctl_value().into());
        }
        Ok(t)
    }
}

pub(crate) fn check_ifname(n: &str) -> Result<(), ConfigError> {
    let ok = !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(format!("bad interface name {n:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(peers: Vec<Peer>, local: Forward, pmtu: Option<TunnelPmtu>) -> DesiredState {
        DesiredState {
            vips: vec![Vip {
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                device: VipDevice::Loopback,
                services: vec![VipService {
                    protocol: Protocol::Tcp,
                    port: 80,
                    config: ServiceConfig::default(),
                    local: vec![Dest::new(
                        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11)),
                        80,
                        local,
                        1,
                    )],
                    peers,
                    tunnel_in: None,
                }],
            }],
            tunnel_pmtu: pmtu,
            ..DesiredState::default()
        }
    }

    fn pmtu_disc(d: &DesiredState) -> Option<String> {
        d.compile().unwrap().sysctls.get(PMTU_DISC_SYSCTL).cloned()
    }

    #[test]
    fn pmtu_disc_is_managed_only_with_a_tunnel_destination_and_a_choice() {
        let peer = vec![Peer::ipip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)), 0)];
        let frag = Some(TunnelPmtu::Fragment);
        assert_eq!(
            pmtu_disc(&state(peer.clone(), Forward::Nat, frag)).as_deref(),
            Some("0")
        );
        assert_eq!(
            pmtu_disc(&state(
                peer.clone(),
                Forward::Nat,
                Some(TunnelPmtu::Discover)
            ))
            .as_deref(),
            Some("1")
        );
        // A TUN real server is a tunnel destination too.
        assert_eq!(
            pmtu_disc(&state(vec![], Forward::Tunnel, frag)).as_deref(),
            Some("0")
        );
        // Nothing tunnelled: the sysctl is not ours to set.
        assert_eq!(pmtu_disc(&state(vec![], Forward::Nat, frag)), None);
        // No choice made: left as it is.
        assert_eq!(pmtu_disc(&state(peer, Forward::Nat, None)), None);
    }
}
