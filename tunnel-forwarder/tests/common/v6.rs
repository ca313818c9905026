//! The IPv6 plane of the two-site lab: documentation-prefix addresses beside the
//! IPv4 ones, and the IPv6 sites' desired states (ip6ip6 peers, the IPv6 guard).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use anycast_lab::uml::{Topology, guest};
use tunnel_forwarder::{
    DesiredState, Dest, Forward, Peer, Protocol, ServiceConfig, Split, Tunnel6Device, TunnelIn,
    Vip, VipDevice, VipService,
};

use super::Director;

pub const VIP6: &str = "2001:db8:4::1";
pub const DIR_A6: &str = "2001:db8:1::2";
pub const DIR_B6: &str = "2001:db8:2::2";
/// The ip6ip6 device of each director.
pub const TUN6: &str = "acip6";
pub const MARK6: u32 = 0x46;

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().expect("IPv6 literal")
}

pub fn vip6_80() -> SocketAddr {
    SocketAddr::new(IpAddr::V6(ip6(VIP6)), 80)
}

/// `two_sites()` with an IPv6 address on every link (no DAD wait) and the routes:
/// the router sends VIP6 to site A, like the IPv4 VIP.
pub fn two_sites_dual_stack() -> Topology {
    let mut t = super::two_sites();
    let addrs = [
        ("client", "eth0", "2001:db8:c::2/64"),
        ("r", "c0", "2001:db8:c::1/64"),
        ("r", "a0", "2001:db8:1::1/64"),
        ("dira", "eth0", "2001:db8:1::2/64"),
        ("r", "b0", "2001:db8:2::1/64"),
        ("dirb", "eth0", "2001:db8:2::2/64"),
    ];
    for (ns, dev, a) in addrs {
        t = t.cmd(ns, &format!("ip addr add {a} dev {dev} nodad"));
    }
    for ns in ["r", "dira", "dirb"] {
        t = t.sysctl(ns, "net.ipv6.conf.all.forwarding", "1");
    }
    t = t
        .cmd("client", "ip -6 route add default via 2001:db8:c::1")
        .cmd("r", &format!("ip -6 route add {VIP6}/128 via {DIR_A6}"))
        .cmd("dira", "ip -6 route add default via 2001:db8:1::1")
        .cmd("dirb", "ip -6 route add default via 2001:db8:2::1");
    for (dir, rs) in [
        ("dira", "a1"),
        ("dira", "a2"),
        ("dirb", "b1"),
        ("dirb", "b2"),
    ] {
        let net = rs_net6(rs);
        t = t
            .cmd(dir, &format!("ip addr add {net}::1/64 dev {rs} nodad"))
            .cmd(rs, &format!("ip addr add {net}::11/64 dev eth0 nodad"))
            .cmd(rs, &format!("ip -6 route add default via {net}::1"));
    }
    t
}

pub fn rs_net6(name: &str) -> &'static str {
    match name {
        "a1" => "2001:db8:5",
        "a2" => "2001:db8:15",
        "b1" => "2001:db8:6",
        "b2" => "2001:db8:16",
        _ => panic!("unknown real server {name}"),
    }
}

pub fn rs_addr6(name: &str) -> IpAddr {
    IpAddr::V6(ip6(&format!("{}::11", rs_net6(name))))
}

/// Starts the four IPv6 real servers (each answers with its name and `6`).
pub fn start_real_servers6() {
    for rs in ["a1", "a2", "b1", "b2"] {
        let name = format!("{rs}-6");
        guest::tcp::serve(rs, SocketAddr::new(rs_addr6(rs), 80), &name);
    }
}

/// One IPv6 site: VIP6:80 over two local NAT real servers of weight `local_w`, the
/// peer director `peer` (ip6ip6) of weight `peer_w`, the guard when `guard`.
fn site6(
    local: &[&str],
    local_w: u32,
    me: &str,
    peer: &str,
    peer_w: u32,
    guard: bool,
) -> DesiredState {
    let dests = |w| {
        local
            .iter()
            .map(|n| Dest::new(rs_addr6(n), 80, Forward::Nat, w))
            .collect::<Vec<_>>()
    };
    DesiredState {
        vips: vec![Vip {
            addr: IpAddr::V6(ip6(VIP6)),
            device: VipDevice::Loopback,
            services: vec![VipService {
                protocol: Protocol::Tcp,
                port: 80,
                config: ServiceConfig::default(),
                local: dests(local_w),
                peers: vec![Peer::ipip(IpAddr::V6(ip6(peer)), peer_w)],
                tunnel_in: guard.then(|| TunnelIn::like(MARK6, &dests(1))),
            }],
        }],
        tunnel6: Some(Tunnel6Device {
            name: TUN6.into(),
            local: ip6(me),
        }),
        ..DesiredState::default()
    }
}

pub fn site6_a(local_w: u32, peer_w: u32, guard: bool) -> DesiredState {
    site6(&["a1", "a2"], local_w, DIR_A6, DIR_B6, peer_w, guard)
}

pub fn site6_b(local_w: u32, peer_w: u32, guard: bool) -> DesiredState {
    site6(&["b1", "b2"], local_w, DIR_B6, DIR_A6, peer_w, guard)
}

/// `n` short IPv6 connections from the client to VIP6; the names that answered.
pub fn ask_many6(n: usize) -> Vec<String> {
    super::ask_n(n, || guest::tcp::ask_once("client", vip6_80()))
}

impl Director {
    /// Packets the director's ip6ip6 device received (0 while it has none).
    pub fn tunnel6_rx(&self) -> u64 {
        self.with(|f| f.link_packets(TUN6))
            .expect("link")
            .unwrap_or([0, 0])[0]
    }
}

/// The IPv6 side of each director's kernel, for the log.
pub fn dump6(nss: &[&str]) {
    for ns in nss {
        println!(
            "--- {ns}\n{}",
            guest::sh_in(
                ns,
                "ipvsadm -Ln; ipvsadm -Lnc | head -20; ip -br -6 addr; tc filter show dev acip6 ingress 2>&1 | head -20; ip -s link show dev acip6 2>&1 | head -8"
            )
        );
    }
}

/// A UDP server on port 53 of every IPv6 real server, answering with its name and `6`.
pub fn start_udp_servers6() {
    for rs in ["a1", "a2", "b1", "b2"] {
        guest::udp::serve(rs, SocketAddr::new(rs_addr6(rs), 53), &format!("{rs}-6"));
    }
}

/// `n` UDP flows to VIP6:53, each from a fresh socket (a fresh source port).
pub fn ask_many_udp6(n: usize) -> Vec<String> {
    let vip53 = SocketAddr::new(IpAddr::V6(ip6(VIP6)), 53);
    super::ask_n(n, || guest::udp::ask_once("client", vip53))
}

/// [`ask_many_udp6`] from source ports no ask used before (the share-0 check).
pub fn ask_udp6_new_ports(n: usize) -> Vec<String> {
    super::ask_udp_unused_ports(n, SocketAddr::new(IpAddr::V6(ip6(VIP6)), 53))
}

/// Site A with VIP6's TCP and UDP services carried by the split (no peer destinations
/// of their own, `wlc`): `share` of new connections to B's ip6ip6 endpoint through
/// the IPv6 split service, split off on A's uplink eth0. The split's IPv4 side names
/// B's IPv4 address (the families share the peers and their weights).
pub fn split6_a(share: f64) -> DesiredState {
    let mut d = super::with_udp(site6_a(1, 0, true));
    for svc in &mut d.vips[0].services {
        svc.peers.clear();
        svc.config.scheduler = "wlc".into();
    }
    d.split = Some(Split {
        devices: vec!["eth0".into()],
        mark: 0x4143_0000,
        share: Split::units(share),
        peers: vec![Peer::ipip(IpAddr::V4(super::DIR_B), 1)],
        peers6: vec![Peer::ipip(IpAddr::V6(ip6(DIR_B6)), 1)],
    });
    d
}
