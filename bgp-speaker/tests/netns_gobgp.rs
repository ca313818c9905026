//! Interop with GoBGP 3 in a network namespace on the host kernel.

mod common;

use std::time::Duration;

use anycast_lab::netns::wait_until;
use anycast_lab::peers::Gobgp;
use anycast_lab::{Need, require};
use bgp_speaker::Route;
use common::*;

const NEEDS: &[Need] = &[Need::Netns, Need::Program("gobgpd"), Need::Program("gobgp")];

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
    if !require("netns_gobgp_announce_withdraw_restart", NEEDS) {
        return;
    }
    let env = env("gobgp");
    let mut g = Gobgp::start(&env.peer, &gobgp_conf()).expect("start GoBGP");
    let speaker = start_speaker(&env, vec![peer_config("gobgp")], None);
    assert_established(&env, &speaker, Duration::from_secs(20), || g.log());

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
    let ribs = |g: &Gobgp| format!("{}\n{}", g.rib("ipv4"), g.rib("ipv6"));

    announce_vips(&env, &speaker);
    assert!(wait(&g, &both, 10), "not best in GoBGP:\n{}", ribs(&g));
    assert!(
        g.rib("ipv4").contains(SPK_V4) && g.rib("ipv6").contains(SPK_V6),
        "next hops:\n{}",
        ribs(&g)
    );

    withdraw_vips(&env, &speaker);
    assert!(wait(&g, &neither, 10), "still in GoBGP:\n{}", ribs(&g));

    announce_vips(&env, &speaker);
    assert!(wait(&g, &both, 10));
    g.restart().expect("restart GoBGP");
    assert!(
        wait(&g, &both, 30),
        "not back after GoBGP restart: {:?}\n{}",
        status(&env, &speaker),
        ribs(&g)
    );
    env.rt.block_on(speaker.shutdown("gobgp test done"));
}

#[test]
fn netns_gobgp_md5() {
    if !require("netns_gobgp_md5", NEEDS) {
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
    let speaker = start_speaker(&env, vec![p], None);
    assert_established(&env, &speaker, Duration::from_secs(20), || {
        format!("with MD5\n{}", g.log())
    });
    announce(&env, &speaker, Route::new(vip4()));
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || best_in_gobgp(&g, "ipv4", "10.101.4.0/24")
    ));
}
