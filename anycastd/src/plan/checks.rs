//! The checks of `anycastd check` against this host: DR real servers off the
//! director's networks, an IPv6 path MTU above its device's.

use crate::config::{self, SiteConfig};

/// A warning of `anycastd check`: the config is valid but will not work as written
/// on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Line of the real server's table in the file.
    pub line: usize,
    /// The real server's address.
    pub server: std::net::IpAddr,
    pub reason: String,
}

/// DR real servers that are not on a network this director has an address in
/// (`connected`): VS/DR hands the packet over by rewriting the MAC, so the server
/// must be on the director's link. One warning per server and VIP, at its first
/// table.
pub fn warnings(cfg: &SiteConfig, connected: &[ipnet::IpNet]) -> Vec<Warning> {
    let mut out: Vec<Warning> = Vec::new();
    let mut seen = Vec::new();
    for v in &cfg.vips {
        for svc in &v.services {
            for rs in &svc.real_servers {
                if rs.method != config::Method::Dr
                    || connected.iter().any(|n| n.contains(&rs.address))
                    || seen.contains(&rs.address)
                {
                    continue;
                }
                seen.push(rs.address);
                let nets: Vec<String> = connected.iter().map(|n| n.trunc().to_string()).collect();
                out.push(Warning {
                    line: rs.line,
                    server: rs.address,
                    reason: format!(
                        "real server {} (method dr) is not on a network directly connected to this director ({}): DR hands packets over by MAC on the director's own link; put the server there, or use tun or nat",
                        rs.address,
                        if nets.is_empty() {
                            "it has none".to_string()
                        } else {
                            format!("its networks: {}", nets.join(", "))
                        }
                    ),
                });
            }
        }
    }
    out
}

/// `ipv6_path_mtu` against the MTU of the device that holds this director's
/// `address_v6` on this host (`device`: its name and MTU as [`ipv6_device_mtu`] finds
/// them, `None` when the address is not here, as when the file is checked away from
/// its director). A path MTU above it cannot work: the clamp would leave segments too
/// big for the director's own link. The problem names the key's line (`[site]`'s when
/// the default is what is too big).
pub fn path_mtu_problem(cfg: &SiteConfig, device: Option<(&str, u32)>) -> Option<Warning> {
    let v6 = cfg.site.address_v6?;
    let (dev, mtu) = device?;
    (cfg.site.ipv6_mss_clamp && cfg.site.ipv6_path_mtu > mtu).then(|| Warning {
        line: cfg.site.ipv6_path_mtu_line,
        server: v6.into(),
        reason: format!(
            "ipv6_path_mtu {} cannot work: above the MTU of {dev} ({mtu}), the device holding address_v6 {v6}; set it to {mtu} or less",
            cfg.site.ipv6_path_mtu
        ),
    })
}

/// The device holding `addr` on this host and its MTU (getifaddrs and
/// /sys/class/net/DEV/mtu); `None` when no device here has it.
pub fn ipv6_device_mtu(addr: std::net::Ipv6Addr) -> Option<(String, u32)> {
    let dev = nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        let a = ifa.address?;
        (a.as_sockaddr_in6()?.ip() == addr).then_some(ifa.interface_name)
    })?;
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{dev}/mtu")).ok()?;
    Some((dev, mtu.trim().parse().ok()?))
}

/// The networks this host has an address in (`ip addr`; host routes such as a VIP
/// on lo and loopback left out): what [`warnings`] checks DR servers against. Reads
/// the interface list; changes nothing.
pub fn connected_networks() -> std::io::Result<Vec<ipnet::IpNet>> {
    let mut nets = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let (ip, mask): (std::net::IpAddr, std::net::IpAddr) =
            match (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
                (Some(a), Some(m)) => (a.ip().into(), m.ip().into()),
                _ => match (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                    (Some(a), Some(m)) => (a.ip().into(), m.ip().into()),
                    _ => continue,
                },
            };
        let Ok(net) = ipnet::IpNet::with_netmask(ip, mask) else {
            continue;
        };
        if ip.is_loopback() || net.prefix_len() == net.max_prefix_len() {
            continue;
        }
        nets.push(net);
    }
    Ok(nets)
}
