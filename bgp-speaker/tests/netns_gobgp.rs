//! Interop with GoBGP 3 in a network namespace on the host kernel.

mod common;

use std::time::Duration;

use anycast_lab::netns::wait_until;
use anycast_lab::peers::Gobgp;
use anycast_lab::{Need, require};
use bgp_speaker::{Route, Speaker, SpeakerConfig};
use common::*;

fn gobgp_conf() -> String {
    gobgp_conf_with("")
}

fn gobgp_conf_with(neighbor_extra: &str) -> String {
    format!(
        r#"[global.config]
  as = {PEER_ASN}
  router-id = "{PEER_V4}"

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{SPK_V4}"
    peer-as = {SPK_ASN}
{neighbor_extra}  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#
    )
}

/// `*>` marks GoBGP's best path.
fn best_in_gobgp(g: &Gobgp, family: &str, prefix: &str) -> bool {
    g.rib(family)
        .lines()
        .any(|l| l.starts_with("*>") && l.contains(prefix))
}

#[test]
fn netns_gobgp_announce_withdraw_restart() {
    if !require(
        "netns_gobgp_announce_withdraw_restart",
        &[Need::Netns, Need::Program("gobgpd"), Need::Program("gobgp")],
    ) {
        return;
    }
    let env = env("gobgp");
    let mut g = Gobgp::start(&env.peer, &gobgp_conf()).expect("start GoBGP");
    let speaker = env
        .rt
        .block_on(Speaker::start(SpeakerConfig {
            peers: vec![peer_config("gobgp")],
            listen: None,
        }))
        .expect("speaker");
    assert!(
        wait_established(&env, &speaker, Duration::from_secs(20)),
        "not Established: {:?}\n{}",
        status(&env, &speaker),
        g.log()
    );

    let both = |g: &Gobgp| {
        best_in_gobgp(g, "ipv4", "10.101.4.0/24") && best_in_gobgp(g, "ipv6", "2001:db8:101::/48")
    };
    let neither = |g: &Gobgp| {
        !g.rib("ipv4").contains("10.101.4.0/24") && !g.rib("ipv6").contains("2001:db8:101::/48")
    };
    let wait = |g: &Gobgp, f: &dyn Fn(&Gobgp) -> bool, secs| {
        wait_until(Duration::from_secs(secs), Duration::from_millis(50), || {
            f(g)
        })
    };

    env.rt
        .block_on(speaker.announce(Route::new(vip4())))
        .unwrap();
    env.rt
        .block_on(speaker.announce(Route::new(vip6())))
        .unwrap();
    assert!(
        wait(&g, &both, 10),
        "not best in GoBGP:\n{}\n{}",
        g.rib("ipv4"),
        g.rib("ipv6")
    );
    assert!(
        g.rib("ipv4").contains(SPK_V4) && g.rib("ipv6").contains(SPK_V6),
        "next hops:\n{}\n{}",
        g.rib("ipv4"),
        g.rib("ipv6")
    );

    env.rt.block_on(speaker.withdraw(vip4())).unwrap();
    env.rt.block_on(speaker.withdraw(vip6())).unwrap();
    assert!(
        wait(&g, &neither, 10),
        "still in GoBGP:\n{}\n{}",
        g.rib("ipv4"),
        g.rib("ipv6")
    );

    env.rt
        .block_on(speaker.announce(Route::new(vip4())))
        .unwrap();
    env.rt
        .block_on(speaker.announce(Route::new(vip6())))
        .unwrap();
    assert!(wait(&g, &both, 10));
    g.restart().expect("restart GoBGP");
    assert!(
        wait(&g, &both, 30),
        "not back after GoBGP restart: {:?}\n{}\n{}",
        status(&env, &speaker),
        g.rib("ipv4"),
        g.rib("ipv6")
    );
    env.rt.block_on(speaker.shutdown("gobgp test done"));
}

#[test]
fn netns_gobgp_md5() {
    if !require(
        "netns_gobgp_md5",
        &[Need::Netns, Need::Program("gobgpd"), Need::Program("gobgp")],
    ) {
        return;
    }
    let env = env("gobgpmd5");
    let g = Gobgp::start(
        &env.peer,
        &gobgp_conf_with("    auth-password = \"gobgp-key\"\n"),
    )
    .expect("start GoBGP");
    let mut p = peer_config("gobgp");
    p.md5_password = Some("gobgp-key".into());
    let speaker = env
        .rt
        .block_on(Speaker::start(SpeakerConfig {
            peers: vec![p],
            listen: None,
        }))
        .expect("speaker");
    assert!(
        wait_established(&env, &speaker, Duration::from_secs(20)),
        "not Established with MD5: {:?}\n{}",
        status(&env, &speaker),
        g.log()
    );
    env.rt
        .block_on(speaker.announce(Route::new(vip4())))
        .unwrap();
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || best_in_gobgp(&g, "ipv4", "10.101.4.0/24")
    ));
}
