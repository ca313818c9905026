//! `anycastd check`: what the daemon would do with a config, without doing any of it.

use std::fmt::Write as _;

use geo_balancer::SiteId;
use geo_balancer::weights::{self, LocalServer};

use crate::config::{self, SiteConfig};
use crate::layout::Layout;
use crate::mapping;
use tunnel_forwarder as tf;

mod checks;
mod real_servers;
#[cfg(test)]
mod tests;

pub use checks::{Warning, connected_networks, ipv6_device_mtu, path_mtu_problem, warnings};
use real_servers::real_servers;

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
