//! Issue 19's pieces shared by the PMTU scenarios: the client network's ICMP
//! filters (iptables in the client's namespace, counting what they drop), bulk
//! transfers checked against a deadline, and IPv6 bulk connections.

use std::time::Duration;

use anycast_lab::uml::guest;

use super::BulkConn;
use super::v6::vip6;

pub const MIB: usize = 1 << 20;

/// A client's INPUT chain: ICMP "fragmentation needed" from the VIP, the same from
/// any other source, then every other ICMP, each rule counting what it drops (the
/// client's own network filtering ICMP, as many enterprise and mobile ones do).
pub const DROP_ICMP: &str = "iptables-legacy -A INPUT -s 10.101.4.1 -p icmp --icmp-type fragmentation-needed -j DROP && \
     iptables-legacy -A INPUT -p icmp --icmp-type fragmentation-needed -j DROP && \
     iptables-legacy -A INPUT -p icmp -j DROP";

/// The same first two rules letting ICMP through, counting only.
pub const COUNT_ICMP: &str = "iptables-legacy -A INPUT -s 10.101.4.1 -p icmp --icmp-type fragmentation-needed -j ACCEPT && \
     iptables-legacy -A INPUT -p icmp --icmp-type fragmentation-needed -j ACCEPT";

/// The IPv6 twin: Packet Too Big from the VIP, from elsewhere, then every ICMPv6
/// but neighbour discovery (types 133-137, without which IPv6 does not work at all).
pub const DROP_ICMP6: &str = "ip6tables-legacy -A INPUT -s 2001:db8:4::1 -p icmpv6 --icmpv6-type packet-too-big -j DROP && \
     ip6tables-legacy -A INPUT -p icmpv6 --icmpv6-type packet-too-big -j DROP && \
     for t in 133 134 135 136 137; do ip6tables-legacy -A INPUT -p icmpv6 --icmpv6-type $t -j ACCEPT; done && \
     ip6tables-legacy -A INPUT -p icmpv6 -j DROP && ip -6 route flush cache";

/// The IPv6 counting rules, letting Packet Too Big through.
pub const COUNT_ICMP6: &str = "ip6tables-legacy -F INPUT && \
     ip6tables-legacy -A INPUT -s 2001:db8:4::1 -p icmpv6 --icmpv6-type packet-too-big -j ACCEPT && \
     ip6tables-legacy -A INPUT -p icmpv6 --icmpv6-type packet-too-big -j ACCEPT";

/// Packets matched by rule `n` (1-based) of `ns`'s INPUT chain of `iptables`
/// (`iptables-legacy` or `ip6tables-legacy`).
pub fn rule_packets(ns: &str, iptables: &str, n: usize) -> u64 {
    guest::sh_in(ns, &format!("{iptables} -L INPUT -vnx"))
        .lines()
        .skip(2)
        .nth(n - 1)
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// 1 MiB up and 1 MiB down on `c`, each within `limit`, checked as `step`.
pub fn check_bulk(step: &str, c: Option<&mut BulkConn>, limit: Duration) -> bool {
    let Some(c) = c else {
        return guest::check(step, false, "no such connection could be opened");
    };
    let up = c.upload(MIB, limit);
    let down = c.download(MIB, limit);
    guest::check(
        step,
        up.is_ok() && down.is_ok(),
        &format!("served by {}: up {up:?}, down {down:?}", c.server),
    )
}

/// [`super::bulk_served_by`] over IPv6: bulk connections to VIP6 from `ns` until one
/// is served by a server whose name starts with `prefix` (at most `max`).
pub fn bulk6_served_by(ns: &str, prefix: &str, max: usize) -> (Option<BulkConn>, Vec<BulkConn>) {
    super::bulk_served_by_at(ns, vip6(), prefix, max)
}
