//! The seed topology's IPv6 plane: every IPv4 address of the paper's lab has an
//! IPv6 twin in the documentation prefix 2001:db8::/32 that repeats its digits,
//! so `10.101.A.B/LEN` becomes `2001:db8:A:N::B/64`, N being the IPv4 subnet's
//! first last-octet (the two /29s of 10.101.3.0/24 stay apart):
//!
//! ```text
//!   c31 2001:db8:3::2        r31 2001:db8:3::1, 2001:db8:13::2, 2001:db8:33::1
//!   c32 2001:db8:3:8::10     r32 2001:db8:3:8::9, 2001:db8:23::2, 2001:db8:33::2
//!   lb1 2001:db8:1::2 (uplink, ip6ip6 endpoint), br0 2001:db8:5::1; rs511 2001:db8:5::11 ...
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
