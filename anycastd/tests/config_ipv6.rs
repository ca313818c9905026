//! Dual-stack sites: an IPv6 VIP next to the IPv4 one, its peers reached over
//! ip6ip6, what is refused (with file and line) and what `anycastd check` shows.

mod config_common;

use std::path::Path;

use anycastd::layout::Layout;
use anycastd::mapping;
use config_common::{check, line_of, load, refused};
use tunnel_forwarder as tf;

const GOOD: &str = include_str!("../../configs/idc1.toml");

/// An IPv6 VIP with a DR, a NAT and a TUN real server, persistent.
const WEB6_MIXED: &str = r#"
[[vip]]
name = "web6"
prefix = "2001:db8:4::/48"
address = "2001:db8:4::1"

[[vip.service]]
protocol = "tcp"
port = 80
scheduler = "wrr"
persistence = "300s"

[[vip.service.real_server]]
address = "2001:db8:5::11"
method = "dr"
capacity = 100

[[vip.service.real_server]]
address = "2001:db8:5::13"
method = "nat"
capacity = 100

[[vip.service.real_server]]
address = "2001:db8:7::11"
method = "tun"
capacity = 100
"#;

const EXAMPLE: &str = include_str!("../../configs/idc1-dual-stack.toml");

/// configs/idc1-dual-stack.toml with its IPv6 VIP replaced by `WEB6_MIXED` (every
/// forwarding method, persistence).
fn dual_stack() -> String {
    let site = EXAMPLE
        .split("# The IPv6 VIP:")
        .next()
        .expect("the example's IPv6 VIP");
    format!("{}{WEB6_MIXED}", site.trim_end())
}

/// The dual-stack example is idc1.toml plus the IPv6 plane: nothing else differs.
#[test]
fn the_dual_stack_example_is_idc1_plus_ipv6() {
    let extra: Vec<&str> = EXAMPLE
        .lines()
        .filter(|l| !GOOD.lines().any(|g| g == *l))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && !l.starts_with('['))
        .collect();
    for l in &extra {
        assert!(
            l.contains("_v6")
                || l.contains("tunnel6_device")
                || l.contains("2001:db8:")
                || l.starts_with("name = \"web6\"")
                || l.starts_with("scheduler = ")
                || l.starts_with("protocol = ")
                || l.starts_with("port = ")
                || l.starts_with("method = ")
                || l.starts_with("capacity = ")
                || l.starts_with("min_up = ")
                || l.starts_with("hold_down = "),
            "`{l}` is in idc1-dual-stack.toml but not idc1.toml"
        );
    }
    for f in ["idc1-dual-stack.toml", "idc2-dual-stack.toml"] {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs")).join(f);
        let cfg = anycastd::config::load(&path).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(cfg.vips.len(), 2, "{f}");
        assert!(cfg.site.address_v6.is_some() && cfg.peers[0].tunnel_endpoint_v6.is_some());
    }
}

#[test]
fn a_dual_stack_site_is_accepted_with_its_ipv6_tunnel_path() {
    let cfg = load(&dual_stack());
    assert_eq!(
        cfg.site.address_v6.map(|a| a.to_string()).as_deref(),
        Some("2001:db8:1::2")
    );
    assert_eq!(cfg.site.tunnel6_device, "anycast6");
    assert_eq!(
        cfg.peers[0]
            .tunnel_endpoint_v6
            .map(|a| a.to_string())
            .as_deref(),
        Some("2001:db8:2::2")
    );
    // IPv6 persistence groups clients by /64 unless told otherwise.
    assert_eq!(cfg.vips[1].services[0].persistence_prefix_v6, 64);
    let cfg = load(&dual_stack().replacen(
        "persistence = \"300s\"",
        "persistence = \"300s\"\npersistence_prefix_v6 = 128",
        1,
    ));
    assert_eq!(cfg.vips[1].services[0].persistence_prefix_v6, 128);
}

#[test]
fn the_ipv6_vip_spills_over_ip6ip6_and_the_ipv4_one_over_ipip() {
    let cfg = load(&dual_stack());
    let layout = Layout::new(&cfg);
    let d = mapping::desired_state(&cfg, &layout, &[]);
    let v4 = &d.vips[0].services[0];
    let v6 = &d.vips[1].services[0];
    assert_eq!(v4.peers[0].addr.to_string(), "10.101.2.2");
    assert_eq!(v6.peers[0].addr.to_string(), "2001:db8:2::2");
    assert!(v6.tunnel_in.is_some() && v4.tunnel_in.is_some());
    assert_ne!(
        v6.tunnel_in.as_ref().map(|t| t.mark),
        v4.tunnel_in.as_ref().map(|t| t.mark)
    );
    assert_eq!(
        v6.config.persistence.map(|p| p.netmask_len),
        Some(64),
        "{v6:?}"
    );
    // Connections tunnelled in for the IPv6 VIP (its IPv6 fwmark service) count in
    // the site's load: the stats find their service.
    let slot6 = &layout.services()[1];
    let mark6 = v6.tunnel_in.as_ref().map(|t| t.mark).unwrap();
    let fw6 = tf::ServiceKey::Fwmark {
        mark: mark6,
        ipv6: true,
    };
    assert_eq!(layout.find(&fw6), Some(slot6.id));
    let wrong_family = tf::ServiceKey::Fwmark {
        mark: mark6,
        ipv6: false,
    };
    assert_eq!(layout.find(&wrong_family), None);
    let t6 = d.tunnel6.as_ref().expect("the ip6ip6 device");
    assert_eq!(
        (t6.name.as_str(), t6.local.to_string().as_str()),
        ("anycast6", "2001:db8:1::2")
    );
    let target = d.compile().unwrap_or_else(|e| panic!("{e}"));
    let families: Vec<bool> = target.marks.iter().map(|m| m.dst.is_ipv6()).collect();
    assert_eq!(families.len(), 2);
    assert!(families.contains(&true) && families.contains(&false));
    // The forwarding methods of the IPv6 real servers.
    let fwd: Vec<tf::Forward> = v6.local.iter().map(|d| d.forward).collect();
    assert_eq!(
        fwd,
        [
            tf::Forward::DirectRoute,
            tf::Forward::Nat,
            tf::Forward::Tunnel
        ]
    );
    // The neighbor is IPv4: the IPv6 prefix goes with this site's IPv6 next hop.
    let sp = mapping::speaker_config(&cfg);
    assert_eq!(
        sp.peers[0].next_hop_v6.map(|a| a.to_string()).as_deref(),
        Some("2001:db8:1::2")
    );
    sp.validate().unwrap();
}

#[test]
fn an_ipv6_vip_without_an_ipv6_tunnel_path_is_refused_with_its_line() {
    let text = GOOD.to_string() + WEB6_MIXED;
    let p = refused(&text);
    let vip_line = line_of(&text, "address = \"2001:db8:4::1\"");
    let peer_line = line_of(&text, "[[peer]]");
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p[0].starts_with(&format!(
            "{vip_line}: vip `web6` is IPv6 and this site has peers, but [site] address_v6 is not set"
        )) && p[0].contains("IPv6-in-IPv4 spill is not supported"),
        "{p:#?}"
    );
    assert!(
        p[1].starts_with(&format!(
            "{peer_line}: peer `idc2` has no tunnel_endpoint_v6, but vip `web6` is IPv6"
        )),
        "{p:#?}"
    );
    // This site's address alone is not enough: the peer needs one too.
    let text: String = dual_stack()
        .lines()
        .filter(|l| !l.starts_with("tunnel_endpoint_v6"))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = refused(&text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].contains("peer `idc2` has no tunnel_endpoint_v6"),
        "{p:#?}"
    );
    // Without peers nothing is spilled: an IPv6 VIP alone needs no tunnel.
    let start = text.find("[[peer]]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    let alone = format!("{}{}", &text[..start], &text[end..]);
    let alone: String = alone
        .lines()
        .filter(|l| !l.starts_with("address_v6"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = load(&alone);
    assert!(
        mapping::desired_state(&cfg, &Layout::new(&cfg), &[])
            .tunnel6
            .is_none()
    );
}

#[test]
fn bad_ipv6_addresses_and_persistence_prefixes_are_refused_with_their_lines() {
    let ds = dual_stack();
    let cases: &[(&str, &str, &str)] = &[
        (
            "address_v6 = \"2001:db8:1::2\"",
            "address_v6 = \"10.1.1.1\"",
            "site address_v6 `10.1.1.1` is invalid",
        ),
        (
            "address_v6 = \"2001:db8:1::2\"",
            "address_v6 = \"fe80::2\"",
            "site address_v6 fe80::2 is not a routable unicast IPv6 address",
        ),
        (
            "tunnel_endpoint_v6 = \"2001:db8:2::2\"",
            "tunnel_endpoint_v6 = \"2001:db8:1::2\"",
            "tunnel_endpoint_v6 is this site's own address_v6",
        ),
        (
            "tunnel_endpoint_v6 = \"2001:db8:2::2\"",
            "tunnel_endpoint_v6 = \"::\"",
            "tunnel_endpoint_v6 :: is not a routable unicast IPv6 address",
        ),
        (
            "persistence = \"300s\"",
            "persistence = \"300s\"\npersistence_prefix_v6 = 0",
            "persistence_prefix_v6 must be 1-128, not 0",
        ),
        (
            "persistence = \"300s\"",
            "persistence_prefix_v6 = 64",
            "persistence_prefix_v6 without persistence",
        ),
        (
            "scheduler = \"wlc\"",
            "scheduler = \"wlc\"\npersistence = \"60s\"\npersistence_prefix_v6 = 64",
            "persistence_prefix_v6 on an IPv4 VIP",
        ),
        (
            "tunnel6_device = \"anycast6\"",
            "tunnel6_device = \"anycast0\"",
            "tunnel6_device `anycast0` is also the tunnel_device",
        ),
        (
            "address = \"2001:db8:7::11\"",
            "address = \"10.101.7.11\"",
            "real server 10.101.7.11 is IPv4 but its VIP is IPv6",
        ),
    ];
    for (from, to, want) in cases {
        assert!(ds.contains(from), "test bug: `{from}`");
        let text = ds.replacen(from, to, 1);
        let p = refused(&text);
        let at = to.lines().last().unwrap();
        let line = line_of(&text, at);
        assert!(
            p.iter().any(|p| p.starts_with(&format!("{line}: {want}"))),
            "`{to}`: want line {line} `{want}`, got {p:#?}"
        );
    }
}

#[test]
fn anycastd_check_shows_the_plan_for_both_families() {
    let (code, text) = check("check6", &dual_stack());
    assert_eq!(code, Some(0), "{text}");
    for want in [
        "site idc1 (director 10.101.1.2 and 2001:db8:1::2)",
        "announce 10.101.4.0/24 (as-path 5, next-hop self)",
        "announce 2001:db8:4::/48 (as-path 5, next-hop 2001:db8:1::2)",
        "ip link add anycast0 type ipip local 10.101.1.2",
        "ip link add anycast6 type ip6tnl mode ip6ip6 local 2001:db8:1::2 remote any",
        "sysctl net.ipv6.conf.all.forwarding=1",
        "ipvsadm -A -t [2001:db8:4::1]:80 -s wrr -p 300 -M 64",
        "-r [2001:db8:2::2]:80 -i -w 0   (peer site idc2 over ip6ip6",
        "-r 10.101.2.2:80 -i -w 0   (peer site idc2 over IPIP",
        "-r [2001:db8:5::13]:80 -m",
        "-r [2001:db8:7::11]:80 -i",
        "tc filter add dev anycast6 parent ffff: prio 44033 protocol ipv6 u32 match ip6 dst 2001:db8:4::1/128 match ip6 protocol 6 0xff match ip6 dport 80 0xffff action skbedit mark",
        "tc filter add dev anycast0 parent ffff: prio 44033 protocol ip u32 match ip dst 10.101.4.1/32",
        "peer idc2 at http://10.101.2.2:9181/v1/report (IPv4 over IPIP to 10.101.2.2, IPv6 over ip6ip6 to 2001:db8:2::2)",
        "vip web6 (IPv6 2001:db8:4::1): new connections spilled over ip6ip6",
        "vip web (IPv4 10.101.4.1): new connections spilled over IPIP",
        "spill on (one rule and one share per site, both families; load counts both)",
        "ip addr add 2001:db8:4::1/128 dev ip6tnl0",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
}
