//! Shared set-up for the interop tests: two namespaces joined by a veth pair, the
//! test thread moved into the speaker's namespace, and a runtime whose worker
//! threads are born there too.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anycast_lab::netns::{Link, Netns, veth, wait_until};
use bgp_speaker::{PeerConfig, PeerState, PeerStatus, Speaker};
use ipnet::IpNet;

pub const SPK_V4: &str = "10.200.0.1";
pub const PEER_V4: &str = "10.200.0.2";
pub const SPK_V6: &str = "fd00:200::1";
pub const PEER_V6: &str = "fd00:200::2";
pub const SPK_ASN: u32 = 65005;
pub const PEER_ASN: u32 = 65001;

pub fn vip4() -> IpNet {
    "10.101.4.0/24".parse().unwrap()
}
pub fn vip6() -> IpNet {
    "2001:db8:101::/48".parse().unwrap()
}

/// Namespaces and runtime; field order is drop order: runtime (the speaker's
/// tasks) first, then the namespaces.
pub struct Env {
    pub rt: tokio::runtime::Runtime,
    pub link: Link,
    pub peer: Netns,
    pub spk: Netns,
}

pub fn env(peer_prefix: &str) -> Env {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("bgp_speaker=debug")
        .try_init();
    let spk = Netns::create("spk").expect("create speaker netns");
    let peer = Netns::create(peer_prefix).expect("create peer netns");
    let link = veth(
        &spk,
        &[&format!("{SPK_V4}/30"), &format!("{SPK_V6}/64")],
        &peer,
        &[&format!("{PEER_V4}/30"), &format!("{PEER_V6}/64")],
    )
    .expect("veth");
    spk.enter_current_thread().expect("enter speaker netns");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    Env {
        rt,
        link,
        peer,
        spk,
    }
}

/// The speaker's view of the peer: eBGP, fast timers, both families, MP-BGP IPv6
/// over the IPv4 session with an explicit IPv6 next hop.
pub fn peer_config(name: &str) -> PeerConfig {
    let mut p = PeerConfig::new(
        name,
        PEER_V4.parse().unwrap(),
        SPK_ASN,
        PEER_ASN,
        SPK_V4.parse::<Ipv4Addr>().unwrap(),
    );
    p.hold_time = 9;
    p.connect_retry = 1;
    p.idle_hold_max = Duration::from_secs(2);
    p.ipv6_unicast = true;
    p.next_hop_v6 = Some(SPK_V6.parse().unwrap());
    p
}

pub fn status(env: &Env, speaker: &Speaker) -> PeerStatus {
    env.rt
        .block_on(speaker.status())
        .into_iter()
        .next()
        .expect("one peer")
}

/// Waits (bounded) until the speaker reports Established.
pub fn wait_established(env: &Env, speaker: &Speaker, limit: Duration) -> bool {
    wait_until(limit, Duration::from_millis(50), || {
        status(env, speaker).state == PeerState::Established
    })
}

/// Waits (bounded) until `check` holds on the peer namespace's kernel routes.
pub fn wait_routes(ns: &Netns, limit: Duration, check: impl Fn(&str) -> bool) -> bool {
    wait_until(limit, Duration::from_millis(20), || {
        ns.routes().map(|r| check(&r)).unwrap_or(false)
    })
}

/// The kernel route line for `prefix` says it came from `proto`.
pub fn has_route(routes: &str, prefix: &IpNet, proto: &str) -> bool {
    routes
        .lines()
        .any(|l| l.starts_with(&prefix.to_string()) && l.contains(&format!("proto {proto}")))
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
