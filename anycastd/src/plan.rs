//! `anycastd check`: what the daemon would do with a config, without doing any of it.

use std::fmt::Write as _;

use geo_balancer::SiteId;
use geo_balancer::weights::{self, LocalServer};

use crate::config::{self, SiteConfig};
use crate::layout::Layout;
use crate::mapping;
use tunnel_forwarder as tf;

/// The plan as text: BGP announcements, the data plane (as `ip`/`ipvsadm`/`tc`
/// equivalents), health checks and the load exchange.
pub fn render(cfg: &SiteConfig) -> String {
    let mut o = String::new();
    let director = match cfg.site.address_v6 {
        Some(v6) => format!("{} and {v6}", cfg.site.address),
        None => cfg.site.address.to_string(),
    };
    let _ = writeln!(
        o,
        "site {} (director {director}), AS {}, router id {}",
        cfg.site.name, cfg.bgp.asn, cfg.bgp.router_id
    );

    let _ = writeln!(o, "\nBGP");
    for n in &cfg.bgp.neighbors {
        let kind = if n.is_ibgp(cfg.bgp.asn) {
            "iBGP"
        } else {
            "eBGP"
        };
        let mut extra = Vec::new();
        if n.password.is_some() {
            extra.push("TCP-MD5".to_string());
        }
        if let Some(h) = n.ttl_security {
            extra.push(format!("GTSM {h} hop(s)"));
        }
        if n.passive {
            extra.push("passive".to_string());
        }
        let _ = writeln!(
            o,
            "  neighbor {} AS {} ({kind}), hold {}s, connect-retry {}s{}",
            n.address,
            n.remote_asn,
            n.hold_time,
            n.connect_retry,
            if extra.is_empty() {
                String::new()
            } else {
                format!(", {}", extra.join(", "))
            }
        );
        for v in &cfg.vips {
            let r = mapping::route(v, n, false);
            let mut attrs = vec![format!(
                "as-path {}",
                std::iter::repeat_n(cfg.bgp.asn.to_string(), 1 + usize::from(r.as_path_prepend))
                    .collect::<Vec<_>>()
                    .join(" ")
            )];
            let next_hop = if v.prefix.addr().is_ipv6() {
                n.next_hop_v6.or(cfg.site.address_v6.map(Into::into))
            } else {
                n.next_hop
            };
            attrs.push(match next_hop {
                Some(nh) => format!("next-hop {nh}"),
                None => "next-hop self".to_string(),
            });
            if let Some(m) = r.med {
                attrs.push(format!("med {m}"));
            }
            if !r.communities.is_empty() {
                attrs.push(format!(
                    "communities {}",
                    r.communities
                        .iter()
                        .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
            let _ = writeln!(
                o,
                "    announce {} ({}) while at least {} real server(s) of vip {} are up; withdraw at once otherwise",
                v.prefix,
                attrs.join(", "),
                v.min_up,
                v.name
            );
        }
        if let Some(e) = cfg.site.endpoint {
            let _ = writeln!(
                o,
                "    announce {} (site tunnel endpoint {}, same attributes) while an IPv4 VIP is announced; withdraw with the last (decision 0018)",
                e.prefix, e.address
            );
        }
    }

    let _ = writeln!(
        o,
        "\nData plane (reconciled through netlink; shown as the equivalent commands)"
    );
    let layout = Layout::new(cfg);
    let peers: Vec<SiteId> = cfg
        .peers
        .iter()
        .map(|p| SiteId::new(p.name.clone()))
        .collect();
    let plans: Vec<Option<weights::Plan>> = layout
        .services()
        .iter()
        .map(|slot| {
            let vip = &cfg.vips[slot.vip.index()];
            let svc = &vip.services[slot.port_index];
            let local: Vec<LocalServer> = svc
                .real_servers
                .iter()
                .map(|rs| LocalServer {
                    server: mapping::server_id(vip, svc, rs),
                    up: true,
                    weight: rs.weight,
                    failed: false,
                })
                .collect();
            Some(weights::plan(&local, &peers, &[]))
        })
        .collect();
    let d = mapping::desired_state(cfg, &layout, &plans);
    if let Some(t) = &d.tunnel {
        let _ = writeln!(
            o,
            "  ip link add {} type ipip local {}   (receives connections spilled here)",
            t.name, t.local
        );
        let _ = writeln!(
            o,
            "  sysctl net.ipv4.conf.{}.rp_filter=2   (loose: tunnelled packets keep the client's source)",
            t.name
        );
    }
    if let Some(t) = &d.tunnel6 {
        let _ = writeln!(
            o,
            "  ip link add {} type ip6tnl mode ip6ip6 local {} remote any   (receives IPv6 connections spilled here)",
            t.name, t.local
        );
    }
    if d.ip_forward {
        let _ = writeln!(o, "  sysctl net.ipv4.ip_forward=1");
    }
    for v in &d.vips {
        let _ = writeln!(
            o,
            "  ip addr add {}/{} dev {}",
            v.addr,
            if v.addr.is_ipv4() { 32 } else { 128 },
            v.device.name()
        );
    }
    match d.compile() {
        Ok(target) => {
            if let Some(v) = target.sysctls.get(tf::model::PMTU_DISC_SYSCTL) {
                let why = match cfg.site.tunnel_pmtu {
                    config::TunnelPmtu::Fragment => {
                        "a tunnelled packet over the path MTU is fragmented here and reassembled by the peer's director: no ICMP has to reach the client"
                    }
                    config::TunnelPmtu::Discover => {
                        "a tunnelled packet over the path MTU is dropped and the client sent ICMP fragmentation-needed: clients that drop ICMP stall"
                    }
                };
                let _ = writeln!(
                    o,
                    "  sysctl net.ipv4.vs.pmtu_disc={v}   (tunnel_pmtu = \"{}\": {why}; decision 0007)",
                    cfg.site.tunnel_pmtu.as_str()
                );
            }
            if target
                .sysctls
                .contains_key(tf::tunnel6::IPV6_FORWARDING_SYSCTL)
            {
                let _ = writeln!(
                    o,
                    "  sysctl net.ipv6.conf.all.forwarding=1   (IPv6 NAT: replies pass the director)"
                );
            }
            for spec in target.services.values() {
                let _ = writeln!(o, "  ipvsadm -A {}", spec.ipvsadm_args());
                for dest in spec.dests.values() {
                    let peer = cfg.peers.iter().find(|p| {
                        std::net::IpAddr::V4(p.tunnel_endpoint) == dest.addr
                            || p.tunnel_endpoint_v6.map(Into::into) == Some(dest.addr)
                    });
                    let note = match peer {
                        Some(p) => format!(
                            "   (peer site {} over {}: weight set by the spill decision)",
                            p.name,
                            match dest.encap {
                                _ if dest.addr.is_ipv6() => "ip6ip6".to_string(),
                                tunnel_forwarder::Encap::Ipip => "IPIP".to_string(),
                                tunnel_forwarder::Encap::Gue { port, .. } => {
                                    format!("GUE (udp port {port})")
                                }
                                tunnel_forwarder::Encap::Gre { .. } => "GRE".to_string(),
                            }
                        ),
                        None => String::new(),
                    };
                    let _ = writeln!(
                        o,
                        "  ipvsadm -a {} {}{note}",
                        spec.key.ipvsadm(),
                        dest_args(dest)
                    );
                }
            }
            for port in &target.gue_ports {
                let _ = writeln!(
                    o,
                    "  ip fou add port {port} gue   (GUE from peers, decapsulated into {}; decisions 0016, 0018)",
                    cfg.site.tunnel_device
                );
            }
            for daemon in &target.sync {
                let _ = writeln!(
                    o,
                    "  {}   (connection sync with the site's other directors)",
                    tf::Request::NewSyncDaemon(daemon.clone()).command()
                );
            }
            for m in &target.marks {
                let device = if m.dst.is_ipv6() {
                    d.tunnel6.as_ref().map(|t| t.name.clone())
                } else {
                    d.tunnel.as_ref().map(|t| t.name.clone())
                };
                let r = tf::Request::NewMarkFilter {
                    device: device.unwrap_or_default(),
                    prio: target.filter_prio,
                    rule: *m,
                };
                let _ = writeln!(o, "  {}   (loop guard)", r.command());
            }
            if let Some(t) = &target.split {
                let _ = writeln!(
                    o,
                    "  spill split on {} (decision 0006): new TCP connections and UDP flows to each service{} go to chain {}, where a share set by the spill decision is marked {} for the split service",
                    t.devices.join(", "),
                    if t.ipv6 {
                        " (IPv4 and IPv6 VIPs; IPv6 over the peers' tunnel_endpoint_v6)"
                    } else {
                        " of an IPv4 VIP"
                    },
                    tf::split::SPLIT_CHAIN,
                    t.mark
                );
                for dev in &t.devices {
                    for c in &t.classes {
                        let r = tf::Request::NewClassFilter {
                            device: dev.clone(),
                            prio: tf::split::class_prio(target.filter_prio, c.dst),
                            class: *c,
                        };
                        let _ = writeln!(o, "  {}", r.command());
                    }
                }
            }
        }
        Err(e) => {
            let _ = writeln!(o, "  ERROR: the data plane would be refused: {e}");
        }
    }

    real_servers(&mut o, cfg);

    let _ = writeln!(o, "\nHealth checks");
    for c in mapping::checks(cfg) {
        let kind = match &c.kind {
            geo_balancer::health::CheckKind::Tcp => "tcp connect".to_string(),
            geo_balancer::health::CheckKind::Http {
                path,
                expect_status,
                https,
            } => {
                format!(
                    "{} GET {path} expecting {expect_status}",
                    if *https { "https" } else { "http" }
                )
            }
            geo_balancer::health::CheckKind::Icmp => "icmp echo".to_string(),
            geo_balancer::health::CheckKind::Command { argv } => {
                format!("command {}", argv.join(" "))
            }
        };
        let _ = writeln!(
            o,
            "  {} ({}): {kind} every {} (timeout {}), rise {} fall {}{}",
            c.server,
            c.addr,
            config::duration::show(c.interval),
            config::duration::show(c.timeout),
            c.rise,
            c.fall,
            if c.fast_detect {
                ", idle-connection fast failure detection"
            } else {
                ""
            }
        );
    }

    let _ = writeln!(o, "\nLoad exchange");
    // Decision 0015: the digest every director of the site must report alike.
    let _ = writeln!(
        o,
        "  director {} ; site config digest {}",
        cfg.site.director,
        mapping::config_digest(cfg)
    );
    for d in &cfg.directors.others {
        let _ = writeln!(
            o,
            "  director {} at {} ({}), the site's figures shared",
            d.name, d.url, d.address
        );
    }
    if cfg.peers.is_empty() {
        let _ = writeln!(o, "  no peer sites: this site never spills");
    } else {
        let e = &cfg.exchange;
        let _ = writeln!(
            o,
            "  listen {} ; report every {} (jitter {:.0}%), peer unknown after {} periods",
            e.listen,
            config::duration::show(e.interval),
            e.jitter * 100.0,
            e.stale_after_periods
        );
        for p in &cfg.peers {
            let v6 = p
                .tunnel_endpoint_v6
                .map_or(String::new(), |a| format!(", IPv6 over ip6ip6 to {a}"));
            let how = match p.tunnel {
                config::PeerTunnel::Ipip => "IPIP".to_string(),
                config::PeerTunnel::Gue { port } => format!("GUE (udp port {port})"),
            };
            let _ = writeln!(
                o,
                "  peer {} at {} (IPv4 over {how} to {}{v6}), HMAC-SHA256 key of {} bytes",
                p.name,
                p.urls.join(" and "),
                p.tunnel_endpoint,
                p.key.len()
            );
        }
        for v in &cfg.vips {
            let family = if v.address.is_ipv6() { "IPv6" } else { "IPv4" };
            let how = if v.address.is_ipv6() {
                "ip6ip6 to the peers' tunnel_endpoint_v6"
            } else {
                "IPIP (GUE to a peer with tunnel = \"gue\") to the peers' tunnel_endpoint"
            };
            let _ = writeln!(
                o,
                "  vip {} ({family} {}): new connections spilled over {how}; tunnelled-in ones always served here",
                v.name, v.address
            );
        }
        let s = &cfg.spill;
        let _ = writeln!(
            o,
            "  spill {} (one rule and one share per site, both families; load counts both): start when local > {:.2} and peer < {:.2}; stop to a peer above {:.2}; stop all at local <= {:.2}; at most {:.0}% of new connections, changing by {:.0} points per period",
            if s.enabled { "on" } else { "OFF" },
            s.start_local_above,
            s.remote_below,
            s.stop_remote_above,
            s.stop_local_at_or_below,
            s.max_share * 100.0,
            s.step * 100.0
        );
    }
    let _ = writeln!(o, "\n{}", crate::auth::describe(&cfg.api).trim_end());
    if let Some(m) = &cfg.monitor {
        let users: Vec<String> = m
            .users
            .iter()
            .map(|u| format!("{} ({})", u.name, u.role.as_str()))
            .collect();
        let scheme = if m.tls.is_some() { "https" } else { "http" };
        let _ = writeln!(
            o,
            "\nMonitor on {scheme}://{}/ for {}",
            m.listen,
            users.join(", ")
        );
    }
    let _ = writeln!(o, "\n{}", crate::notify::describe(&cfg.notify));
    let _ = writeln!(o, "\nState in {}", cfg.site.state_dir.display());
    o
}

/// What the real servers must have set ([`crate::real_server::setup`]), once per
/// (method, VIP) with the servers it concerns: every DR and TUN server, and IPv6
/// NAT servers when they advertise a smaller MSS (decision 0013).
fn real_servers(o: &mut String, cfg: &SiteConfig) {
    use crate::real_server::{Forwarding, setup};
    let has_peers = !cfg.peers.is_empty();
    let mss6 = |m: config::Method, vip: &std::net::IpAddr| {
        vip.is_ipv6()
            .then(|| cfg.site.ipv6_mss(m, has_peers))
            .flatten()
    };
    let mut groups: Vec<(config::Method, std::net::IpAddr, Vec<String>)> = Vec::new();
    for v in &cfg.vips {
        for svc in &v.services {
            for rs in &svc.real_servers {
                if rs.method == config::Method::Nat && mss6(rs.method, &v.address).is_none() {
                    continue;
                }
                let name = rs.address.to_string();
                match groups
                    .iter_mut()
                    .find(|(m, vip, _)| *m == rs.method && *vip == v.address)
                {
                    Some((_, _, servers)) if servers.contains(&name) => {}
                    Some((_, _, servers)) => servers.push(name),
                    None => groups.push((rs.method, v.address, vec![name])),
                }
            }
        }
    }
    ipv6_mss_line(o, cfg);
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nReal servers: what each DR and TUN server must have set, and each IPv6 NAT server behind a tunnel (docs/operations.md, \"Real servers\")"
    );
    for (method, vip, servers) in groups {
        let f = match method {
            config::Method::Dr => Forwarding::Dr,
            config::Method::Tun => Forwarding::Tun,
            config::Method::Nat => Forwarding::Nat,
        };
        let _ = writeln!(
            o,
            "  {} ({}, VIP {vip}):",
            servers.join(", "),
            method.as_str()
        );
        for step in setup(f, vip, None, mss6(method, &vip)) {
            let _ = writeln!(
                o,
                "    {}{}   # {}",
                step.command,
                if step.optional {
                    "   (or the director fragments)"
                } else {
                    ""
                },
                step.why
            );
        }
    }
}

/// The IPv6 MSS clamp as the plan shows it, when the site has an IPv6 VIP.
fn ipv6_mss_line(o: &mut String, cfg: &SiteConfig) {
    if !cfg.vips.iter().any(|v| v.address.is_ipv6()) {
        return;
    }
    let s = &cfg.site;
    let mss = crate::real_server::ipv6_tunnel_mss(s.ipv6_path_mtu);
    let what = match (s.ipv6_mss_clamp, mss) {
        (false, _) => "off: a client whose full-size IPv6 segment no longer fits once tunnelled depends on the director's Packet Too Big; clients that drop ICMPv6 stall on spilled uploads".to_string(),
        (true, None) => "nothing to clamp: a full-size segment fits the path with ip6ip6's 40 bytes".to_string(),
        (true, Some(m)) => format!(
            "IPv6 real servers behind ip6ip6 (every tun server{}) advertise MSS {m}: a client's segments fit the tunnel, no Packet Too Big has to reach it",
            if cfg.peers.is_empty() { "" } else { "; dr and nat ones too, spilled connections arrive here through the peers' ip6ip6" }
        ),
    };
    let _ = writeln!(
        o,
        "\nIPv6 MSS (ipv6_mss_clamp = {}, ipv6_path_mtu = {}; decision 0013): {what}",
        s.ipv6_mss_clamp, s.ipv6_path_mtu
    );
}

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

fn dest_args(d: &tunnel_forwarder::Dest) -> String {
    let flag = match d.forward {
        tunnel_forwarder::Forward::Nat => "-m",
        tunnel_forwarder::Forward::DirectRoute => "-g",
        tunnel_forwarder::Forward::Tunnel => "-i",
    };
    let addr = match d.addr {
        std::net::IpAddr::V4(a) => format!("{a}:{}", d.port),
        std::net::IpAddr::V6(a) => format!("[{a}]:{}", d.port),
    };
    format!("-r {addr} {flag} -w {}{}", d.weight, d.encap.ipvsadm_args())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_plan_of_the_lab_site_names_every_object() {
        let cfg = crate::config::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../configs/idc1.toml"
        )))
        .unwrap();
        let plan = super::render(&cfg);
        for want in [
            "site idc1 (director 10.101.1.2), AS 5",
            "neighbor 10.101.1.1 AS 1 (eBGP), hold 9s",
            "announce 10.101.4.0/24 (as-path 5, next-hop self) while at least 1 real server(s) of vip web are up",
            "ip link add anycast0 type ipip local 10.101.14.1",
            "ip addr add 10.101.4.1/32 dev lo",
            "ipvsadm -A -t 10.101.4.1:80 -s wlc",
            "ipvsadm -a -t 10.101.4.1:80 -r 10.101.2.2:80 -i -w 0   (peer site idc2",
            "ipvsadm -a -f 1094909953 -r 10.101.5.11:80 -g -w",
            "match ip dst 10.101.4.1/32 match ip protocol 6 0xff match ip dport 80 0xffff action skbedit mark 1094909953   (loop guard)",
            "web/tcp80/10.101.5.11:80 (10.101.5.11:80): tcp connect every 200ms (timeout 200ms), rise 2 fall 3",
            "peer idc2 at http://10.101.2.2:9181/v1/report (IPv4 over IPIP to 10.101.2.2), HMAC-SHA256 key of 33 bytes",
            "  director lb1 ; site config digest ",
            "  director lb1b at http://10.101.7.2:9181/v1/report (10.101.7.2), the site's figures shared",
            "spill on (one rule and one share per site, both families; load counts both): start when local > 1.10 and peer < 0.70",
            "sysctl net.ipv4.vs.pmtu_disc=0   (tunnel_pmtu = \"fragment\"",
            "Real servers: what each DR and TUN server must have set",
            "  10.101.5.11, 10.101.5.12 (dr, VIP 10.101.4.1):\n    ip addr add 10.101.4.1/32 dev lo   # ",
            "    sysctl -qw net.ipv4.conf.all.arp_ignore=1   # ",
            "Local API on 127.0.0.1:9180 (TCP, loopback)\n  may change the site: nobody: no token_file, the API is read-only\n  may read without a token: any local process: status, why, metrics",
        ] {
            assert!(plan.contains(want), "missing `{want}` in\n{plan}");
        }
    }

    #[test]
    fn a_dr_server_off_the_directors_networks_is_warned_with_its_line() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/idc1.toml"));
        let cfg = crate::config::load(path).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let on = |net: &str| super::warnings(&cfg, &[net.parse().unwrap()]);
        assert!(on("10.101.5.0/24").is_empty());
        let w = on("10.101.1.0/30");
        assert_eq!(w.len(), 2, "{w:?}");
        let line = text.lines().nth(w[0].line - 1).unwrap_or_default();
        assert!(
            line.contains("real_server") || line.contains("10.101.5.11"),
            "line {}: {line}",
            w[0].line
        );
        assert!(
            w[0].reason.starts_with("real server 10.101.5.11 (method dr) is not on a network directly connected to this director (its networks: 10.101.1.0/30)"),
            "{}",
            w[0].reason
        );
        // TUN and NAT servers may be anywhere routed.
        let tun =
            crate::config::parse_str(path, &text.replace("method = \"dr\"", "method = \"tun\""))
                .unwrap();
        assert!(super::warnings(&tun, &["10.101.1.0/30".parse().unwrap()]).is_empty());
    }
}
