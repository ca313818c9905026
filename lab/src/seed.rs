//! The LVS paper's test topology (its Figure 2.6), described once and rendered two
//! ways: as a [`Topology`](crate::uml::Topology) for the lab kernel, and as a
//! containerlab file plus FRR configs for people with Docker. The files under
//! `lab/seed/` are generated from this module (`cargo run -p anycast-lab --bin
//! gen-seed`) and a test fails if they drift.
//!
//! ```text
//!   c31 (AS64531, client)                         c32 (AS64532, client)
//!     | 10.101.3.2/29                                | 10.101.3.10/29
//!     | 10.101.3.1                                   | 10.101.3.9
//!    r31 (AS3) ─────────── iBGP 10.101.33.0/30 ──── r32 (AS3)
//!     | 10.101.13.0/30                               | 10.101.23.0/30
//!    r11 (AS1, maximum-paths 2) ─ eth4 10.101.5.254  r22 (AS2)
//!     | 10.101.1.0/30   \ 10.101.7.0/30               | 10.101.2.0/30
//!    lb1 ── sync0 ───── lb1b (AS5, site idc1)        lb2 (AS5, site idc2, anycastd)
//!     | br0 .5.1         | br0 .5.3                   | br0 10.101.6.1/24
//!    sw1 (IDC1's LAN switch, 10.101.5.0/24;          rs611 rs612 (10.101.6.11, .12):
//!     |   R11's eth4 is on it too)                    VS/TUN, gateway lb2
//!   rs511 rs512 (10.101.5.11, .12): VS/DR, gateway R11 (10.101.5.254)
//!
//!   VIP 10.101.4.1 in 10.101.4.0/24, announced by lb1, lb1b and lb2.
//!   IDC1 has two directors (issue 15, decision 0014): lb1 (configs/idc1.toml) and
//!   lb1b (configs/idc1b.toml), both uplinked to R11, which spreads flows over them
//!   by ECMP; they share IDC1's LAN through the switch sw1 (no director carries the
//!   other's LAN), and the DR servers' default gateway is R11's port on that LAN, so
//!   their replies depend on no director. sync0 (10.101.8.0/30) carries IPVS's
//!   connection sync between them.
//!   IDC1 forwards to its real servers by direct routing (VIP on their lo), IDC2
//!   through IPIP (VIP on their tunl0): what each needs is `real_server::setup`,
//!   the same list `anycastd check` prints and docs/operations.md shows.
//!   c31 sees AS path 3 1 5, c32 sees 3 2 5 (the paper's "router at R31's port
//!   10.101.3.1" and "at R32's port 10.101.3.9").
//! ```
//!
//! Every address has an IPv6 twin (the IPv6 plane, [`crate::seed6`]): VIP
//! 2001:db8:4::1 in 2001:db8:4::/48, the routers carry both families.

use std::fmt::Write as _;

use crate::real_server::{self, Forwarding};
use crate::seed6::{server_setup6, v6_host, v6_of};
use crate::uml::Topology;

/// The VIP prefix both sites announce.
pub const VIP_PREFIX: &str = "10.101.4.0/24";
/// The VIP.
pub const VIP: &str = "10.101.4.1";
/// The default gateway of IDC1's DR real servers: R11's port on IDC1's LAN, so that
/// their replies (VIP to client) pass no director. A NAT server's gateway must be a
/// director ([`IDC1_DIRECTOR`]): the director rewrites its replies.
pub const IDC1_GATEWAY: &str = "10.101.5.254";
/// lb1's address on IDC1's LAN.
pub const IDC1_DIRECTOR: &str = "10.101.5.1";
/// FRR image for the containerlab form (the version Debian 12 ships is 8.4).
pub const FRR_IMAGE: &str = "quay.io/frrouting/frr:8.4.1";
/// Image for directors, real servers: any Debian with iproute2 and python3.
pub const HOST_IMAGE: &str = "debian:bookworm-slim";

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An FRR router in `asn`.
    Router { asn: u32, router_id: &'static str },
    /// A client network's FRR router that also runs the test client.
    Client { asn: u32, router_id: &'static str },
    /// An LVS director running anycastd for `site` with config `configs/<config>.toml`
    /// (in containerlab `configs/<config>-dual-stack.toml`, which adds the IPv6 plane);
    /// several directors of one site have one config each (their own identity).
    Director {
        site: &'static str,
        config: &'static str,
        lan: &'static str,
    },
    /// A site's LAN switch: a bridge of its ports, no address (the site's LAN does
    /// not depend on one of its directors).
    Switch,
    /// A real server behind a director, set up for the director's forwarding
    /// `method` ([`real_server::setup`]; `configs/<site>.toml` says the same method).
    Server {
        gateway: &'static str,
        method: Forwarding,
    },
}

/// A node of the topology.
#[derive(Debug, Clone, Copy)]
pub struct Node {
    pub name: &'static str,
    pub role: Role,
}

/// A link: (node, interface, address with length or "").
pub type End = (&'static str, &'static str, &'static str);

/// BGP sessions of the FRR routers: (router, neighbor address, neighbor AS).
type Session = (&'static str, &'static str, u32);

pub const NODES: &[Node] = &[
    Node {
        name: "r11",
        role: Role::Router {
            asn: 1,
            router_id: "10.101.13.1",
        },
    },
    Node {
        name: "r22",
        role: Role::Router {
            asn: 2,
            router_id: "10.101.23.1",
        },
    },
    Node {
        name: "r31",
        role: Role::Router {
            asn: 3,
            router_id: "10.101.3.1",
        },
    },
    Node {
        name: "r32",
        role: Role::Router {
            asn: 3,
            router_id: "10.101.3.9",
        },
    },
    Node {
        name: "c31",
        role: Role::Client {
            asn: 64531,
            router_id: "10.101.3.2",
        },
    },
    Node {
        name: "c32",
        role: Role::Client {
            asn: 64532,
            router_id: "10.101.3.10",
        },
    },
    Node {
        name: "lb1",
        role: Role::Director {
            site: "idc1",
            config: "idc1",
            lan: "10.101.5.1/24",
        },
    },
    Node {
        name: "lb1b",
        role: Role::Director {
            site: "idc1",
            config: "idc1b",
            lan: "10.101.5.3/24",
        },
    },
    Node {
        name: "sw1",
        role: Role::Switch,
    },
    Node {
        name: "lb2",
        role: Role::Director {
            site: "idc2",
            config: "idc2",
            lan: "10.101.6.1/24",
        },
    },
    Node {
        name: "rs511",
        role: Role::Server {
            gateway: IDC1_GATEWAY,
            method: Forwarding::Dr,
        },
    },
    Node {
        name: "rs512",
        role: Role::Server {
            gateway: IDC1_GATEWAY,
            method: Forwarding::Dr,
        },
    },
    Node {
        name: "rs611",
        role: Role::Server {
            gateway: "10.101.6.1",
            method: Forwarding::Tun,
        },
    },
    Node {
        name: "rs612",
        role: Role::Server {
            gateway: "10.101.6.1",
            method: Forwarding::Tun,
        },
    },
];

pub const LINKS: &[(End, End)] = &[
    (
        ("r11", "eth1", "10.101.13.1/30"),
        ("r31", "eth1", "10.101.13.2/30"),
    ),
    (
        ("r22", "eth1", "10.101.23.1/30"),
        ("r32", "eth1", "10.101.23.2/30"),
    ),
    (
        ("r31", "eth2", "10.101.33.1/30"),
        ("r32", "eth2", "10.101.33.2/30"),
    ),
    (
        ("r31", "eth3", "10.101.3.1/29"),
        ("c31", "eth1", "10.101.3.2/29"),
    ),
    (
        ("r32", "eth3", "10.101.3.9/29"),
        ("c32", "eth1", "10.101.3.10/29"),
    ),
    (
        ("r11", "eth2", "10.101.1.1/30"),
        ("lb1", "eth1", "10.101.1.2/30"),
    ),
    (
        ("r22", "eth2", "10.101.2.1/30"),
        ("lb2", "eth1", "10.101.2.2/30"),
    ),
    (
        ("r11", "eth3", "10.101.7.1/30"),
        ("lb1b", "eth1", "10.101.7.2/30"),
    ),
    (
        ("lb1", "sync0", "10.101.8.1/30"),
        ("lb1b", "sync0", "10.101.8.2/30"),
    ),
    // IDC1's LAN: the switch sw1, both directors' br0, R11 (the DR servers' gateway).
    (("lb1", "eth2", ""), ("sw1", "eth1", "")),
    (("lb1b", "eth2", ""), ("sw1", "eth2", "")),
    (("r11", "eth4", "10.101.5.254/24"), ("sw1", "eth3", "")),
    (("sw1", "eth4", ""), ("rs511", "eth1", "10.101.5.11/24")),
    (("sw1", "eth5", ""), ("rs512", "eth1", "10.101.5.12/24")),
    (("lb2", "eth2", ""), ("rs611", "eth1", "10.101.6.11/24")),
    (("lb2", "eth3", ""), ("rs612", "eth1", "10.101.6.12/24")),
];

const SESSIONS: &[Session] = &[
    ("r11", "10.101.13.2", 3),
    ("r11", "10.101.1.2", 5),
    ("r11", "10.101.7.2", 5),
    ("r22", "10.101.23.2", 3),
    ("r22", "10.101.2.2", 5),
    ("r31", "10.101.13.1", 1),
    ("r31", "10.101.33.2", 3),
    ("r31", "10.101.3.2", 64531),
    ("r32", "10.101.23.1", 2),
    ("r32", "10.101.33.1", 3),
    ("r32", "10.101.3.10", 64532),
    ("c31", "10.101.3.1", 3),
    ("c32", "10.101.3.9", 3),
];

/// The node named `name`.
pub fn node(name: &str) -> Option<&'static Node> {
    NODES.iter().find(|n| n.name == name)
}

/// Interfaces of `name` that a director or switch bridges into its LAN: its link
/// ends without an address.
fn lan_ports(name: &str) -> Vec<&'static str> {
    LINKS
        .iter()
        .flat_map(|(a, b)| [a, b])
        .filter_map(|e| (e.0 == name && e.2.is_empty()).then_some(e.1))
        .collect()
}

/// How many directors `router` peers with: more than one gets ECMP over them.
fn director_sessions(router: &str) -> usize {
    SESSIONS
        .iter()
        .filter(|(r, addr, _)| {
            *r == router
                && LINKS.iter().flat_map(|(a, b)| [a, b]).any(|e| {
                    e.2.split('/').next() == Some(addr)
                        && matches!(node(e.0).map(|n| n.role), Some(Role::Director { .. }))
                })
        })
        .count()
}

/// The FRR config of a router or client node (`None` for other nodes). Interface
/// addresses are in it too, so zebra sets them where nothing else does (containerlab).
pub fn frr_conf(name: &str) -> Option<String> {
    let n = node(name)?;
    let (asn, router_id) = match n.role {
        Role::Router { asn, router_id } | Role::Client { asn, router_id } => (asn, router_id),
        _ => return None,
    };
    let mut c = String::new();
    let _ = writeln!(c, "! {name}: generated from lab/src/seed.rs; do not edit");
    let _ = writeln!(
        c,
        "frr defaults traditional\nhostname {name}\nlog stdout\nservice integrated-vtysh-config\n!"
    );
    for (a, b) in LINKS {
        for end in [a, b] {
            if end.0 == name && !end.2.is_empty() {
                let v6 = v6_of(end.2).unwrap_or_default();
                let _ = writeln!(
                    c,
                    "interface {}\n ip address {}\n ipv6 address {v6}\n!",
                    end.1, end.2
                );
            }
        }
    }
    let _ = writeln!(c, "router bgp {asn}");
    let _ = writeln!(c, " bgp router-id {router_id}");
    let _ = writeln!(
        c,
        " no bgp ebgp-requires-policy\n no bgp network import-check"
    );
    let _ = writeln!(c, " timers bgp 3 9");
    for (_, addr, remote) in SESSIONS.iter().filter(|s| s.0 == name) {
        let _ = writeln!(c, " neighbor {addr} remote-as {remote}");
        let _ = writeln!(c, " neighbor {addr} timers connect 1");
        let _ = writeln!(c, " neighbor {addr} advertisement-interval 0");
    }
    // Several directors of one site: the flows are spread over them (issue 15).
    let ecmp = match director_sessions(name) {
        n if n > 1 => format!("  maximum-paths {n}\n"),
        _ => String::new(),
    };
    let _ = writeln!(c, " address-family ipv4 unicast");
    let _ = write!(c, "  redistribute connected\n{ecmp}");
    for (_, addr, remote) in SESSIONS.iter().filter(|s| s.0 == name) {
        if *remote == asn {
            let _ = writeln!(c, "  neighbor {addr} next-hop-self");
        }
    }
    let _ = writeln!(c, " exit-address-family");
    // Both families over the same sessions (RFC 4760): IPv6 prefixes go with the
    // interface's IPv6 address as next hop.
    let _ = writeln!(c, " address-family ipv6 unicast");
    let _ = write!(c, "  redistribute connected\n{ecmp}");
    for (_, addr, remote) in SESSIONS.iter().filter(|s| s.0 == name) {
        let _ = writeln!(c, "  neighbor {addr} activate");
        if *remote == asn {
            let _ = writeln!(c, "  neighbor {addr} next-hop-self");
        }
    }
    let _ = writeln!(c, " exit-address-family\n!");
    Some(c)
}

/// Shell commands that set up a non-FRR node beyond its link addresses.
pub(crate) fn host_setup(n: &Node) -> Vec<String> {
    match n.role {
        Role::Director { lan, .. } => {
            let mut v = vec!["ip link add br0 type bridge".to_string()];
            for p in lan_ports(n.name) {
                v.push(format!("ip link set dev {p} master br0"));
            }
            v.push("ip link set dev br0 up".to_string());
            v.push(format!("ip addr add {lan} dev br0"));
            v.push(format!(
                "ip -6 addr add {} dev br0 nodad",
                v6_of(lan).unwrap_or_default()
            ));
            let uplink = LINKS
                .iter()
                .find_map(|(a, b)| {
                    (b.0 == n.name
                        && !b.2.is_empty()
                        && matches!(node(a.0).map(|r| r.role), Some(Role::Router { .. })))
                    .then_some(a.2)
                })
                .unwrap_or_default();
            let gw = uplink.split('/').next().unwrap_or_default();
            v.push(format!("ip route add default via {gw}"));
            let len = uplink.split('/').nth(1).and_then(|l| l.parse().ok());
            let gw6 = len.and_then(|l| v6_host(gw, l)).unwrap_or_default();
            v.push(format!("ip -6 route add default via {gw6}"));
            v.push("sysctl -qw net.ipv4.ip_forward=1".to_string());
            v.push("sysctl -qw net.ipv6.conf.all.forwarding=1".to_string());
            v.push("sysctl -qw net.ipv4.conf.all.rp_filter=0".to_string());
            // LVS-DR replies come back through the director with the VIP (one of its
            // own addresses) as source: without this they are dropped as martians.
            v.push("sysctl -qw net.ipv4.conf.all.accept_local=1".to_string());
            v
        }
        Role::Switch => {
            let mut v = vec!["ip link add br0 type bridge".to_string()];
            for p in lan_ports(n.name) {
                v.push(format!("ip link set dev {p} master br0"));
            }
            v.push("ip link set dev br0 up".to_string());
            v
        }
        Role::Server { gateway, method } => {
            let mut v = server_setup(method, gateway);
            v.extend(server_setup6(method, gateway));
            v
        }
        // ECMP by addresses and ports (policy 1): GUE flows to a site endpoint differ
        // in their UDP source port only (decision 0018); the default hashes addresses.
        Role::Router { .. } | Role::Client { .. } => vec![
            "sysctl -qw net.ipv4.ip_forward=1".to_string(),
            "sysctl -qw net.ipv4.conf.all.rp_filter=0".to_string(),
            "sysctl -qw net.ipv6.conf.all.forwarding=1".to_string(),
            "sysctl -qw net.ipv4.fib_multipath_hash_policy=1".to_string(),
        ],
    }
}

/// What the lab sets on a real server reached by `method` through the director at
/// `gateway`: [`real_server::setup`]'s required steps (IPv4's MTU is left to the
/// director, which fragments: issue 19's scenarios depend on it), after
/// `rp_filter=0` as on every lab node. A test that moves a server to another method
/// applies this too (IPv4 only: a server it plugs in has no IPv6 address).
pub fn server_setup(method: Forwarding, gateway: &str) -> Vec<String> {
    let vip = VIP
        .parse()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    std::iter::once("sysctl -qw net.ipv4.conf.all.rp_filter=0".to_string())
        .chain(required(method, vip, gateway, None))
        .collect()
}

pub(crate) fn required(
    method: Forwarding,
    vip: std::net::IpAddr,
    gateway: &str,
    mss6: Option<u32>,
) -> impl Iterator<Item = String> {
    real_server::setup(method, vip, Some(gateway), mss6)
        .into_iter()
        .filter(|s| !s.optional)
        .map(|s| s.command)
}

/// The topology for the lab kernel: namespaces, links, addresses, the directors'
/// server bridges, each real server set up for its method, and FRR on the routers
/// and clients. Boot it with [`crate::seed6::MODULES`] added (the IPv6 plane).
/// anycastd and the real servers' services are started by the scenario.
pub fn topology() -> Topology {
    let mut t = Topology::new();
    for n in NODES {
        t = t.node(n.name);
    }
    for (a, b) in LINKS {
        t = t.link(a.0, a.1, a.2, b.0, b.1, b.2);
    }
    // The IPv6 plane: no duplicate address detection to wait for (the lab's
    // addresses are unique by construction).
    for (a, b) in LINKS {
        for end in [a, b] {
            if let Some(v6) = v6_of(end.2) {
                t = t.cmd(end.0, &format!("ip -6 addr add {v6} dev {} nodad", end.1));
            }
        }
    }
    for n in NODES {
        for cmd in host_setup(n) {
            t = t.cmd(n.name, &cmd);
        }
    }
    for n in NODES {
        if let Some(conf) = frr_conf(n.name) {
            t = t.frr(n.name, &conf);
        }
    }
    t
}

/// FRR's daemons file for the containerlab form: zebra and bgpd only.
pub fn frr_daemons() -> &'static str {
    "# generated from lab/src/seed.rs; do not edit\nzebra=yes\nbgpd=yes\nvtysh_enable=yes\nzebra_options=\"  -A 127.0.0.1 -s 90000000\"\nbgpd_options=\"   -A 127.0.0.1\"\n"
}

/// The containerlab topology file (`lab/seed/seed.clab.yml`).
pub fn clab_yaml() -> String {
    let mut y = String::new();
    y.push_str(
        "# The LVS paper's Figure 2.6 for containerlab. Generated from lab/src/seed.rs by\n",
    );
    y.push_str(
        "# `cargo run -p anycast-lab --bin gen-seed`; do not edit. Needs a Docker host whose\n",
    );
    y.push_str(
        "# kernel has ip_vs and ipip, and `cargo build --release` first (see lab/README.md).\n",
    );
    y.push_str("name: anycast-seed\n\ntopology:\n  nodes:\n");
    for n in NODES {
        let _ = writeln!(y, "    {}:", n.name);
        y.push_str("      kind: linux\n");
        match n.role {
            Role::Router { .. } | Role::Client { .. } => {
                let _ = writeln!(y, "      image: {FRR_IMAGE}");
                y.push_str("      binds:\n        - frr/daemons:/etc/frr/daemons\n");
                let _ = writeln!(y, "        - frr/{}.conf:/etc/frr/frr.conf", n.name);
            }
            Role::Director { config, .. } => {
                let _ = writeln!(y, "      image: {HOST_IMAGE}");
                y.push_str("      binds:\n        - ../../target/release/anycastd:/usr/local/bin/anycastd:ro\n        - ../../target/release/anycastctl:/usr/local/bin/anycastctl:ro\n        - ../../configs:/etc/anycastd:ro\n");
                y.push_str("      cmd: sleep infinity\n");
                y.push_str("      exec:\n");
                for c in host_setup(n) {
                    let _ = writeln!(y, "        - {c}");
                }
                let _ = writeln!(
                    y,
                    "        - sh -c 'anycastd --config /etc/anycastd/{config}-dual-stack.toml >/var/log/anycastd.log 2>&1 &'"
                );
            }
            Role::Switch => {
                let _ = writeln!(y, "      image: {HOST_IMAGE}");
                y.push_str("      cmd: sleep infinity\n      exec:\n");
                for c in host_setup(n) {
                    let _ = writeln!(y, "        - {c}");
                }
            }
            Role::Server { .. } => {
                let _ = writeln!(y, "      image: {HOST_IMAGE}");
                y.push_str("      cmd: sleep infinity\n      exec:\n");
                for c in host_setup(n) {
                    let _ = writeln!(y, "        - {c}");
                }
                y.push_str("        - sh -c 'cd /tmp && hostname > index.html && python3 -m http.server 80 >/dev/null 2>&1 &'\n");
            }
        }
    }
    y.push_str("\n  links:\n");
    for (a, b) in LINKS {
        let _ = writeln!(
            y,
            "    - endpoints: [\"{}:{}\", \"{}:{}\"]",
            a.0, a.1, b.0, b.1
        );
        // An end without an address (a director's bridge port) is "": the real
        // server at the other end still gets its own.
        if !a.2.is_empty() || !b.2.is_empty() {
            let _ = writeln!(y, "      ipv4: [\"{}\", \"{}\"]", a.2, b.2);
            let (a6, b6) = (
                v6_of(a.2).unwrap_or_default(),
                v6_of(b.2).unwrap_or_default(),
            );
            let _ = writeln!(y, "      ipv6: [\"{a6}\", \"{b6}\"]");
        }
    }
    y
}

/// Every generated file: (path relative to `lab/seed/`, contents).
pub fn files() -> Vec<(String, String)> {
    let mut v = vec![
        ("seed.clab.yml".to_string(), clab_yaml()),
        ("frr/daemons".to_string(), frr_daemons().to_string()),
    ];
    for n in NODES {
        if let Some(conf) = frr_conf(n.name) {
            v.push((format!("frr/{}.conf", n.name), conf));
        }
    }
    v
}

#[cfg(test)]
#[path = "seed_tests.rs"]
mod tests;
