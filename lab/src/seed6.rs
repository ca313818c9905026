//! The seed topology's IPv6 plane: every IPv4 address of the paper's lab has an
//! IPv6 twin in the documentation prefix 2001:db8::/32 that repeats its digits,
//! so `10.101.A.B/LEN` becomes `2001:db8:A:N::B/64`, N being the IPv4 subnet's
//! first last-octet (the two /29s of 10.101.3.0/24 stay apart):
//!
//! ```text
//!   c31 2001:db8:3::2        r31 2001:db8:3::1, 2001:db8:13::2, 2001:db8:33::1
//!   c32 2001:db8:3:8::10     r32 2001:db8:3:8::9, 2001:db8:23::2, 2001:db8:33::2
//!   lb1 2001:db8:1::2 (uplink, ip6ip6 endpoint), br0 2001:db8:5::1; rs511 2001:db8:5::11 ...
//!   lb1b 2001:db8:7::2 (uplink), br0 2001:db8:5::3; r11 on IDC1's LAN 2001:db8:5::254
//!   (the DR servers' gateway)
//!   lb2 2001:db8:2::2 (uplink, ip6ip6 endpoint), br0 2001:db8:6::1; rs611 2001:db8:6::11 ...
//!   VIP6 2001:db8:4::1 in 2001:db8:4::/48, announced by lb1 and lb2.
//! ```
//!
//! The FRR routers carry both families over their IPv4 sessions (multiprotocol
//! BGP, RFC 4760): IPv6 prefixes go with the IPv6 address of the interface as next
//! hop. The digits read as hex in IPv6; they are labels, not arithmetic.

/// Modules the IPv6 plane needs beyond the lab's defaults: a lab booting the seed
/// topology adds them (`Lab::extra_modules`).
pub const MODULES: &[&str] = &["ipv6", "ip6_tunnel"];

/// The IPv6 VIP prefix both sites announce.
pub const VIP6_PREFIX: &str = "2001:db8:4::/48";
/// The IPv6 VIP.
pub const VIP6: &str = "2001:db8:4::1";

/// The IPv6 twin of an IPv4 lab address with its length (`10.101.3.9/29` ->
/// `2001:db8:3:8::9/64`); `None` for anything else.
pub fn v6_of(v4: &str) -> Option<String> {
    let (host, len) = v4.split_once('/')?;
    Some(format!("{}/64", v6_host(host, len.parse().ok()?)?))
}

/// The IPv6 twin of IPv4 address `v4` on a subnet of length `len`, without length.
pub fn v6_host(v4: &str, len: u8) -> Option<String> {
    let a: std::net::Ipv4Addr = v4.parse().ok()?;
    let [_, _, third, last] = a.octets();
    let host_bits = 32u32.saturating_sub(u32::from(len)).min(8);
    let net = u32::from(last) & !((1u32 << host_bits) - 1);
    Some(if net == 0 {
        format!("2001:db8:{third}::{last}")
    } else {
        format!("2001:db8:{third}:{net}::{last}")
    })
}

/// [`crate::seed::server_setup`] for the IPv6 VIP: the seed's servers have the IPv6 twin of their
/// address, on a /64 whose gateway is the twin of `gateway` (a /24). Both seed sites
/// have a peer, so every IPv6 server advertises the smaller MSS of the configs'
/// defaults (`ipv6_mss_clamp`, decision 0013); `mss6 = None` is the switch off.
pub fn server_setup6_with(
    method: crate::real_server::Forwarding,
    gateway: &str,
    mss6: Option<u32>,
) -> Vec<String> {
    let vip6 = VIP6
        .parse()
        .unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    let gateway6 = v6_host(gateway, 24).unwrap_or_default();
    crate::seed::required(method, vip6, &gateway6, mss6).collect()
}

/// [`server_setup6_with`] as the seed's configs have it: the clamp on, path MTU 1500.
pub fn server_setup6(method: crate::real_server::Forwarding, gateway: &str) -> Vec<String> {
    server_setup6_with(method, gateway, crate::real_server::ipv6_tunnel_mss(1500))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{clab_yaml, frr_conf, host_setup, node, topology};

    #[test]
    fn twins_repeat_the_papers_digits_and_keep_subnets_apart() {
        assert_eq!(
            v6_of("10.101.13.1/30").as_deref(),
            Some("2001:db8:13::1/64")
        );
        assert_eq!(v6_of("10.101.1.2/30").as_deref(), Some("2001:db8:1::2/64"));
        assert_eq!(v6_of("10.101.3.1/29").as_deref(), Some("2001:db8:3::1/64"));
        assert_eq!(
            v6_of("10.101.3.10/29").as_deref(),
            Some("2001:db8:3:8::10/64")
        );
        assert_eq!(
            v6_of("10.101.5.11/24").as_deref(),
            Some("2001:db8:5::11/64")
        );
        assert_eq!(v6_host("10.101.6.1", 24).as_deref(), Some("2001:db8:6::1"));
        assert_eq!(v6_of(""), None);
        for s in ["2001:db8:3:8::10", "2001:db8:13::1"] {
            s.parse::<std::net::Ipv6Addr>().unwrap();
        }
    }

    #[test]
    fn the_ipv6_plane_twins_every_address_and_carries_both_families() {
        let c = frr_conf("r31").unwrap();
        assert!(c.contains(
            "interface eth3\n ip address 10.101.3.1/29\n ipv6 address 2001:db8:3::1/64\n"
        ));
        assert!(c.contains(" address-family ipv6 unicast\n  redistribute connected\n"));
        assert!(c.contains("  neighbor 10.101.13.1 activate\n"));
        // iBGP next-hop-self in both families.
        assert_eq!(
            c.matches("  neighbor 10.101.33.2 next-hop-self\n").count(),
            2
        );
        let lb1 = host_setup(node("lb1").unwrap());
        assert!(lb1.contains(&"ip -6 addr add 2001:db8:5::1/64 dev br0 nodad".to_string()));
        assert!(lb1.contains(&"ip -6 route add default via 2001:db8:1::1".to_string()));
        let dr = host_setup(node("rs511").unwrap());
        assert!(dr.contains(&"ip addr add 2001:db8:4::1/128 dev lo".to_string()));
        assert!(
            dr.contains(&"ip -6 route replace default via 2001:db8:5::254 advmss 1400".to_string())
        );
        let tun = host_setup(node("rs612").unwrap());
        assert!(tun.contains(&"ip addr add 2001:db8:4::1/128 dev ip6tnl0".to_string()));
        let shell = topology().to_shell();
        assert!(
            shell.contains("ip -6 addr add 2001:db8:3:8::10/64 dev eth1 nodad"),
            "{shell}"
        );
        let y = clab_yaml();
        assert!(y.contains("      ipv6: [\"2001:db8:13::1/64\", \"2001:db8:13::2/64\"]"));
        // A real server's link: the bridge port has no address, the server has both.
        assert!(y.contains(
            "      ipv4: [\"\", \"10.101.5.11/24\"]\n      ipv6: [\"\", \"2001:db8:5::11/64\"]"
        ));
        assert_eq!(VIP6_PREFIX, "2001:db8:4::/48");
    }
}
