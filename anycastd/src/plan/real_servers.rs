//! The plan's part for the real servers: what each must have set, and the IPv6 MSS
//! clamp.

use std::fmt::Write as _;

use crate::config::{self, SiteConfig};

/// What the real servers must have set ([`crate::real_server::setup`]), once per
/// (method, VIP) with the servers it concerns: every DR and TUN server, and IPv6
/// NAT servers when they advertise a smaller MSS (decision 0013).
pub(super) fn real_servers(o: &mut String, cfg: &SiteConfig) {
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
