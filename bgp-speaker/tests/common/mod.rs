//! Shared set-up for the interop tests: two namespaces joined by a veth pair, the
//! test thread moved into the speaker's namespace, and a runtime whose worker
//! threads are born there too; then the speaker, and the waits and checks every
//! interop test makes on it and on the peer's kernel table.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anycast_lab::netns::{Link, Netns, veth, wait_until};
use bgp_speaker::{PeerConfig, PeerState, PeerStatus, Route, Speaker, SpeakerConfig};
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

/// Starts a speaker with `peers` (and a listener on `listen`) on the env's runtime.
pub fn start_speaker(env: &Env, peers: Vec<PeerConfig>, listen: Option<SocketAddr>) -> Speaker {
    env.rt
        .block_on(Speaker::start(SpeakerConfig { peers, listen }))
        .expect("speaker")
}

pub fn announce(env: &Env, speaker: &Speaker, route: Route) {
    env.rt.block_on(speaker.announce(route)).unwrap();
}

/// Announces both VIP prefixes (IPv4, then IPv6) with default attributes.
pub fn announce_vips(env: &Env, speaker: &Speaker) {
    announce(env, speaker, Route::new(vip4()));
    announce(env, speaker, Route::new(vip6()));
}

/// Withdraws both VIP prefixes (IPv4, then IPv6).
pub fn withdraw_vips(env: &Env, speaker: &Speaker) {
    env.rt.block_on(speaker.withdraw(vip4())).unwrap();
    env.rt.block_on(speaker.withdraw(vip6())).unwrap();
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

/// Asserts that the speaker reports Established within `limit`; a failure shows its
/// status and `context()` (say, the peer daemon's log), taken after the wait.
pub fn assert_established(
    env: &Env,
    speaker: &Speaker,
    limit: Duration,
    context: impl FnOnce() -> String,
) {
    assert!(
        wait_established(env, speaker, limit),
        "not Established: {:?}\n{}",
        status(env, speaker),
        context()
    );
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

/// Both VIP prefixes are in the kernel table, installed by `proto`.
pub fn vips_in(proto: &str) -> impl Fn(&str) -> bool + '_ {
    move |r| has_route(r, &vip4(), proto) && has_route(r, &vip6(), proto)
}

/// Neither VIP prefix is in the kernel table as installed by `proto`.
pub fn vips_gone(proto: &str) -> impl Fn(&str) -> bool + '_ {
    move |r| !has_route(r, &vip4(), proto) && !has_route(r, &vip6(), proto)
}

/// The IPv4 VIP prefix is in the kernel table, installed by `proto`.
pub fn vip4_in(proto: &str) -> impl Fn(&str) -> bool + '_ {
    move |r| has_route(r, &vip4(), proto)
}

/// The IPv4 VIP prefix is not in the kernel table as installed by `proto`.
pub fn vip4_gone(proto: &str) -> impl Fn(&str) -> bool + '_ {
    move |r| !has_route(r, &vip4(), proto)
}

/// With both VIPs announced and in the peer's kernel table (installed by `proto`):
/// withdraws them and sees them go, announces them again, restarts the peer daemon
/// (`name`) with `restart`, and sees both come back, since a restarted peer gets
/// everything currently announced.
pub fn withdraw_then_restart_peer(
    env: &Env,
    speaker: &Speaker,
    name: &str,
    proto: &str,
    restart: impl FnOnce(),
) {
    withdraw_vips(env, speaker);
    assert!(
        wait_routes(&env.peer, Duration::from_secs(10), vips_gone(proto)),
        "routes still in {name}'s kernel table: {}",
        env.peer.routes().unwrap_or_default()
    );

    announce_vips(env, speaker);
    assert!(wait_routes(
        &env.peer,
        Duration::from_secs(10),
        vip4_in(proto)
    ));
    restart();
    assert!(
        wait_routes(&env.peer, Duration::from_secs(30), vips_in(proto)),
        "routes not back after {name} restart: {:?}\n{}",
        status(env, speaker),
        env.peer.routes().unwrap_or_default()
    );
}

/// Shuts the speaker down with `reason` and asserts that the peer daemon (`name`)
/// logged it (the RFC 9003 shutdown communication) within 10 s.
pub fn shutdown_logged(
    env: &Env,
    speaker: &Speaker,
    reason: &str,
    name: &str,
    log: impl Fn() -> String,
) {
    env.rt.block_on(speaker.shutdown(reason));
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            log().contains(reason)
        }),
        "{name} did not log the shutdown communication:\n{}",
        log()
    );
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
