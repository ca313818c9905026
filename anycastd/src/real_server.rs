//! What a real server needs for each IPVS forwarding method, written once.
//!
//! `anycastd check` prints it for every DR and TUN server of a config, the lab
//! (lab/src/seed.rs includes this file) applies it to its real servers, and
//! docs/operations.md ("Real servers") shows it; a test keeps the docs equal to
//! `setup`. Plain data and `std` only, so that the lab can include the file as a
//! module of its own.
//!
//! ```text
//!  method  packet at the server            what makes it accept and answer
//!  nat     client -> RIP:port (rewritten)  default route via the director (replies are un-NATed there)
//!  dr      client -> VIP (MAC rewritten)   VIP on lo; never answer ARP for it (arp_ignore/arp_announce);
//!                                          on a network the director has an address in
//!  tun     IPIP(director -> RIP)[client -> VIP]
//!                                          ipip module, tunl0 up with the VIP on it, rp_filter off on
//!                                          tunl0 (the client's source is not routed there), ARP as dr,
//!                                          20 bytes of MTU (a smaller MSS, or the director fragments)
//!  tun/v6  IPv6(director -> RIP)[client -> VIP] (ip6ip6)
//!                                          ip6_tunnel module, ip6tnl0 up with the VIP on it
//!                                          (no rp_filter, no ARP in IPv6), 40 bytes of MTU
//! ```
//!
//! IPv6 and MTU (decision 0013): ip6ip6 adds 40 bytes, IPVS answers an IPv6 packet
//! that no longer fits with Packet Too Big (it has no IPv6 `pmtu_disc = 0`), and a
//! client whose network drops ICMPv6 never learns. So every IPv6 real server behind
//! a tunnel (a `tun` server, and any server of a site that receives spilled
//! connections) advertises a smaller MSS on its default route (`advmss`): the
//! client's segments then fit both tunnels.

use std::net::IpAddr;

/// An IPVS forwarding method as far as the real server is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// VS/NAT (`ipvsadm -m`).
    Nat,
    /// VS/DR (`ipvsadm -g`).
    Dr,
    /// VS/TUN (`ipvsadm -i`).
    Tun,
}

impl Forwarding {
    /// The config's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Forwarding::Nat => "nat",
            Forwarding::Dr => "dr",
            Forwarding::Tun => "tun",
        }
    }
}

/// One thing to set on a real server: the command and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// A shell command (as root on the real server).
    pub command: String,
    /// Why, one short sentence.
    pub why: &'static str,
    /// One way among others (the lab leaves it out and relies on the director).
    pub optional: bool,
}

/// IPIP's outer header: a tunnelled packet is this much bigger.
pub const IPIP_OVERHEAD: u32 = 20;

/// ip6ip6's outer header.
pub const IP6IP6_OVERHEAD: u32 = 40;

/// IPv6 and TCP headers: an IPv6 segment's MSS is its packet's size less this.
pub const IPV6_TCP_HEADERS: u32 = 60;

/// The MSS an IPv6 real server advertises behind ip6ip6 on a path of `mtu` bytes
/// (1400 at 1500); `None` when a client's full-size segment (1440, from a 1500-byte
/// network) fits anyway.
pub fn ipv6_tunnel_mss(mtu: u32) -> Option<u32> {
    let mss = mtu.saturating_sub(IP6IP6_OVERHEAD + IPV6_TCP_HEADERS);
    (mss < 1500 - IPV6_TCP_HEADERS).then_some(mss)
}

/// Whether an IPv6 server reached by `method` sits behind a tunnel: always for
/// `tun` (ip6ip6 from the director), for the others when the site has peers (their
/// spilled connections came through ip6ip6 from the peer's director).
pub fn behind_tunnel(method: Forwarding, site_has_peers: bool) -> bool {
    method == Forwarding::Tun || site_has_peers
}

/// What a real server reached by `method` needs, for `vip`, whose default route goes
/// through `gateway` (`None`: written as `GATEWAY`). IPv6 VIPs have no ARP and no
/// rp_filter; IPVS tunnels IPv6 in IPv6 (ip6ip6), which the module's catch-all
/// device `ip6tnl0` decapsulates. `mss6`: for an IPv6 VIP, the MSS the default route
/// advertises (`advmss`; [`ipv6_tunnel_mss`]), `None` to leave it to Packet Too Big.
pub fn setup(
    method: Forwarding,
    vip: IpAddr,
    gateway: Option<&str>,
    mss6: Option<u32>,
) -> Vec<Step> {
    let gw = gateway.unwrap_or("GATEWAY");
    let (len, v4) = match vip {
        IpAddr::V4(_) => (32, true),
        IpAddr::V6(_) => (128, false),
    };
    let route = if v4 { "ip route" } else { "ip -6 route" };
    let step = |command: String, why| Step {
        command,
        why,
        optional: false,
    };
    let arp = || {
        [
            step(
                "sysctl -qw net.ipv4.conf.all.arp_ignore=1".into(),
                "answer ARP only for addresses of the interface it arrives on: never for the VIP, which the director answers for",
            ),
            step(
                "sysctl -qw net.ipv4.conf.all.arp_announce=2".into(),
                "never use the VIP as the source of an ARP request",
            ),
        ]
    };
    // An IPv6 server's default route, with the smaller MSS when asked for.
    let default6 = |why| match mss6 {
        Some(m) if !v4 => step(
            format!("{route} replace default via {gw} advmss {m}"),
            "ip6ip6 adds 40 bytes on the way in and the director answers a packet that no longer fits with Packet Too Big, which a client that drops ICMPv6 never sees: a smaller MSS keeps its segments within the MTU (decision 0013)",
        ),
        _ => step(format!("{route} replace default via {gw}"), why),
    };
    let mut v = Vec::new();
    match method {
        Forwarding::Nat if !v4 => v.push(default6(
            "replies must pass the director, which rewrites their source back to the VIP",
        )),
        Forwarding::Nat => {
            v.push(step(
                format!("{route} replace default via {gw}"),
                "replies must pass the director, which rewrites their source back to the VIP",
            ));
        }
        Forwarding::Dr => {
            v.push(step(
                format!("ip addr add {vip}/{len} dev lo"),
                "packets arrive addressed to the VIP (the director rewrote only the MAC): it must be local",
            ));
            if v4 {
                v.extend(arp());
                v.push(step(
                    format!("{route} replace default via {gw}"),
                    "replies go straight to the client with the VIP as source (through the director only if it has accept_local=1)",
                ));
            } else {
                v.push(default6(
                    "replies go straight to the client with the VIP as source",
                ));
            }
        }
        Forwarding::Tun if !v4 => {
            v.push(step(
                "modprobe ip6_tunnel".into(),
                "the kernel's ip6_tunnel module decapsulates the ip6ip6 packets the director sends",
            ));
            v.push(step(
                "ip link set dev ip6tnl0 up".into(),
                "ip6tnl0, the module's catch-all device, takes packets from any director",
            ));
            v.push(step(
                format!("ip addr add {vip}/{len} dev ip6tnl0"),
                "the inner packet is addressed to the VIP: it must be local",
            ));
            v.push(default6(
                "replies go straight to the client with the VIP as source (the client then depends on Packet Too Big: ipv6_mss_clamp = false)",
            ));
        }
        Forwarding::Tun => {
            v.push(step(
                "modprobe ipip".into(),
                "the kernel's IPIP module decapsulates what the director tunnels",
            ));
            v.push(step(
                "ip link set dev tunl0 up".into(),
                "tunl0, the module's catch-all device, takes packets from any director",
            ));
            v.push(step(
                format!("ip addr add {vip}/{len} dev tunl0"),
                "the inner packet is addressed to the VIP: it must be local",
            ));
            if v4 {
                v.extend(arp());
            }
            v.push(step(
                "sysctl -qw net.ipv4.conf.tunl0.rp_filter=0".into(),
                "the inner packet's source (the client) is not routed via tunl0: reverse-path filtering would drop it",
            ));
            v.push(step(
                "sysctl -qw net.ipv4.conf.all.rp_filter=0".into(),
                "the kernel uses the larger of `all` and the device's value",
            ));
            v.push(step(
                format!("ip route replace default via {gw}"),
                "replies go straight to the client with the VIP as source (through the director only if it has accept_local=1)",
            ));
            v.push(Step {
                optional: true,
                ..step(
                    format!("ip route replace default via {gw} advmss 1440"),
                    "IPIP adds 20 bytes between director and server: a 20-byte smaller MSS keeps a client's full-size segment within the MTU; without it the director fragments (tunnel_pmtu = \"fragment\", the default) and the server reassembles",
                )
            });
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dr_puts_the_vip_on_lo_and_silences_arp() {
        let s = setup(
            Forwarding::Dr,
            "10.101.4.1".parse().unwrap(),
            Some("10.101.5.1"),
            None,
        );
        let c: Vec<&str> = s.iter().map(|s| s.command.as_str()).collect();
        assert_eq!(
            c,
            [
                "ip addr add 10.101.4.1/32 dev lo",
                "sysctl -qw net.ipv4.conf.all.arp_ignore=1",
                "sysctl -qw net.ipv4.conf.all.arp_announce=2",
                "ip route replace default via 10.101.5.1",
            ]
        );
    }

    #[test]
    fn tun_needs_ipip_tunl0_rp_filter_off_and_a_smaller_mss() {
        let s = setup(Forwarding::Tun, "10.101.4.1".parse().unwrap(), None, None);
        let c: Vec<&str> = s.iter().map(|s| s.command.as_str()).collect();
        assert!(c.contains(&"modprobe ipip"));
        assert!(c.contains(&"ip addr add 10.101.4.1/32 dev tunl0"));
        assert!(c.contains(&"sysctl -qw net.ipv4.conf.tunl0.rp_filter=0"));
        assert!(c.contains(&"ip route replace default via GATEWAY advmss 1440"));
        assert!(s.iter().filter(|s| s.optional).count() == 1);
    }

    #[test]
    fn the_operations_guide_shows_exactly_this_list() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/operations.md"
        ))
        .unwrap_or_default();
        let section = doc
            .split("\n## Real servers\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or_default();
        for m in [Forwarding::Nat, Forwarding::Dr, Forwarding::Tun] {
            let mut steps = setup(m, "10.101.4.1".parse().unwrap(), None, None);
            steps.extend(setup(m, "2001:db8:4::1".parse().unwrap(), None, Some(1400)));
            for step in steps {
                assert!(
                    section.contains(&step.command),
                    "docs/operations.md, Real servers: `{}` ({}) missing",
                    step.command,
                    m.as_str()
                );
            }
        }
        // And nothing in the section's code blocks that the list lacks.
        let all: Vec<String> = [Forwarding::Nat, Forwarding::Dr, Forwarding::Tun]
            .iter()
            .flat_map(|m| {
                let mut v = setup(*m, "10.101.4.1".parse().unwrap(), None, None);
                v.extend(setup(
                    *m,
                    "2001:db8:4::1".parse().unwrap(),
                    None,
                    Some(1400),
                ));
                v
            })
            .map(|s| s.command)
            .collect();
        for block in section.split("```").skip(1).step_by(2) {
            for line in block.lines().filter(|l| !l.trim().is_empty()) {
                let cmd = line.split('#').next().unwrap_or_default().trim();
                assert!(
                    all.iter().any(|c| c == cmd),
                    "docs/operations.md, Real servers: `{cmd}` is not in real_server::setup"
                );
            }
        }
    }

    #[test]
    fn ipv6_tun_is_ip6ip6_on_ip6tnl0() {
        let s = setup(
            Forwarding::Tun,
            "2001:db8:4::1".parse().unwrap(),
            None,
            None,
        );
        let c: Vec<&str> = s.iter().map(|s| s.command.as_str()).collect();
        assert_eq!(
            &c[..3],
            [
                "modprobe ip6_tunnel",
                "ip link set dev ip6tnl0 up",
                "ip addr add 2001:db8:4::1/128 dev ip6tnl0",
            ]
        );
        assert!(
            c.iter()
                .all(|c| !c.contains("rp_filter") && !c.contains("arp"))
        );
    }

    #[test]
    fn ipv6_has_no_arp_sysctls() {
        let s = setup(Forwarding::Dr, "2001:db8::1".parse().unwrap(), None, None);
        assert_eq!(s[0].command, "ip addr add 2001:db8::1/128 dev lo");
        assert!(s.iter().all(|s| !s.command.contains("arp")));
    }

    #[test]
    fn ipv6_servers_behind_a_tunnel_advertise_a_smaller_mss() {
        assert_eq!(ipv6_tunnel_mss(1500), Some(1400));
        assert_eq!(ipv6_tunnel_mss(1520), Some(1420));
        assert_eq!(ipv6_tunnel_mss(1540), None);
        assert!(behind_tunnel(Forwarding::Tun, false));
        assert!(behind_tunnel(Forwarding::Nat, true));
        assert!(!behind_tunnel(Forwarding::Dr, false));
        let vip6: IpAddr = "2001:db8:4::1".parse().unwrap();
        for m in [Forwarding::Nat, Forwarding::Dr, Forwarding::Tun] {
            let s = setup(m, vip6, Some("2001:db8:6::1"), Some(1400));
            let routes: Vec<&str> = s
                .iter()
                .map(|s| s.command.as_str())
                .filter(|c| c.contains("default"))
                .collect();
            assert_eq!(
                routes,
                ["ip -6 route replace default via 2001:db8:6::1 advmss 1400"],
                "{m:?}"
            );
            assert!(s.iter().all(|s| !s.optional));
            // Switched off: the plain route, the client left to Packet Too Big.
            let off = setup(m, vip6, Some("2001:db8:6::1"), None);
            assert!(off.iter().all(|s| !s.command.contains("advmss")));
        }
        // IPv4 keeps its own story (the director fragments, decision 0007).
        let v4 = setup(
            Forwarding::Dr,
            "10.101.4.1".parse().unwrap(),
            None,
            Some(1400),
        );
        assert!(v4.iter().all(|s| !s.command.contains("advmss")));
    }
}
