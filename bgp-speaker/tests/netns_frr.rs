//! Interop with FRR 8.4 (zebra + bgpd) in a network namespace on the host kernel.

mod common;

use std::time::Duration;

use anycast_lab::netns::wait_until;
use anycast_lab::peers::Frr;
use anycast_lab::{Need, require};
use bgp_speaker::{PeerState, Route};
use common::*;

const NEEDS: &[Need] = &[
    Need::Netns,
    Need::Program("/usr/lib/frr/bgpd"),
    Need::Program("/usr/lib/frr/zebra"),
    Need::Program("vtysh"),
];

fn frr_conf(extra_neighbor: &str) -> String {
    format!(
        "frr defaults traditional\n\
         router bgp {PEER_ASN}\n \
         bgp router-id {PEER_V4}\n \
         bgp log-neighbor-changes\n \
         no bgp ebgp-requires-policy\n \
         neighbor {SPK_V4} remote-as {SPK_ASN}\n \
         neighbor {SPK_V4} timers 3 9\n \
         neighbor {SPK_V4} timers connect 1\n\
         {extra_neighbor}\
         \x20address-family ipv6 unicast\n  \
         neighbor {SPK_V4} activate\n \
         exit-address-family\n"
    )
}

fn best_in_frr(frr: &Frr, afi: &str, prefix: &str) -> bool {
    frr.vtysh(&format!("show bgp {afi} unicast {prefix} json"))
        .map(|s| s.contains("\"overall\":true"))
        .unwrap_or(false)
}

#[test]
fn netns_frr_announce_withdraw_restart_shutdown() {
    if !require("netns_frr_announce_withdraw_restart_shutdown", NEEDS) {
        return;
    }
    let env = env("frr");
    let mut frr = Frr::start(&env.peer, &frr_conf(""), true).expect("start FRR");
    let speaker = start_speaker(&env, vec![peer_config("frr")], None);

    assert_established(&env, &speaker, Duration::from_secs(20), || frr.log());
    assert!(wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || frr.established(SPK_V4)
    ));

    // Announce both VIP prefixes: best routes in FRR, installed in its kernel table.
    announce_vips(&env, &speaker);
    assert!(
        wait_routes(&env.peer, Duration::from_secs(10), vips_in("bgp")),
        "routes not in FRR's kernel table: {}",
        env.peer.routes().unwrap_or_default()
    );
    assert!(best_in_frr(&frr, "ipv4", "10.101.4.0/24"));
    assert!(best_in_frr(&frr, "ipv6", "2001:db8:101::/48"));
    // Next-hop-self for IPv4, the configured IPv6 next hop for the MP_REACH route.
    let routes = env.peer.routes().unwrap();
    let line = |p: &str| {
        routes
            .lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("10.101.4.0/24").contains(&format!("via {SPK_V4}")),
        "{routes}"
    );
    assert!(
        line("2001:db8:101::/48").contains(&format!("via {SPK_V6}")),
        "{routes}"
    );
    let st = status(&env, &speaker);
    assert_eq!((st.prefixes_announced, st.prefixes_sent), (2, 2));

    // FRR echoes our routes back with its AS prepended: loop-detected, not counted.
    assert!(wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || status(&env, &speaker).counters.looped_updates > 0
    ));
    assert_eq!(status(&env, &speaker).prefixes_received, 0);

    // Withdraw: gone from FRR's kernel table; a restarted peer gets everything
    // currently announced back.
    withdraw_then_restart_peer(&env, &speaker, "FRR", "bgp", || {
        frr.restart().expect("restart FRR")
    });
    assert!(status(&env, &speaker).counters.established_transitions >= 2);

    // Shutdown: Cease / Administrative Shutdown with the RFC 9003 reason, seen by FRR.
    shutdown_logged(
        &env,
        &speaker,
        "site drained for maintenance",
        "FRR",
        || frr.log(),
    );
    assert!(wait_routes(
        &env.peer,
        Duration::from_secs(10),
        vip4_gone("bgp")
    ));
}

#[test]
fn netns_frr_md5_and_gtsm() {
    if !require("netns_frr_md5_and_gtsm", NEEDS) {
        return;
    }
    let env = env("frrmd5");
    let extra =
        format!(" neighbor {SPK_V4} password s3cret-key\n neighbor {SPK_V4} ttl-security hops 1\n");
    let _frr = Frr::start(&env.peer, &frr_conf(&extra), true).expect("start FRR");

    // Wrong key first: the kernel drops the unsigned/wrongly signed SYNs, nothing comes up.
    let mut wrong = peer_config("frr");
    wrong.md5_password = Some("wrong-key".into());
    wrong.ttl_security_hops = Some(1);
    let bad = start_speaker(&env, vec![wrong], None);
    assert!(
        !wait_established(&env, &bad, Duration::from_secs(4)),
        "Established with a wrong MD5 key"
    );
    env.rt.block_on(bad.shutdown("wrong key"));

    let mut good = peer_config("frr");
    good.md5_password = Some("s3cret-key".into());
    good.ttl_security_hops = Some(1);
    let speaker = start_speaker(&env, vec![good], None);
    assert_established(&env, &speaker, Duration::from_secs(20), || {
        "with MD5".into()
    });
    announce(&env, &speaker, Route::new(vip4()));
    assert!(wait_routes(
        &env.peer,
        Duration::from_secs(10),
        vip4_in("bgp")
    ));
    assert_eq!(status(&env, &speaker).state, PeerState::Established);
}

#[test]
fn netns_frr_passive_listener_with_md5() {
    if !require("netns_frr_passive_listener_with_md5", NEEDS) {
        return;
    }
    let env = env("frrpas");
    let mut p = peer_config("frr");
    p.passive = true;
    p.md5_password = Some("listen-key".into());
    // Dual-stack wildcard as anycastd configures it: IPv4 peer, v4-mapped MD5 key.
    let listen = "[::]:179".parse().unwrap();
    let speaker = start_speaker(&env, vec![p], Some(listen));
    announce(&env, &speaker, Route::new(vip4()));
    let extra = format!(" neighbor {SPK_V4} password listen-key\n");
    let frr = Frr::start(&env.peer, &frr_conf(&extra), true).expect("start FRR");
    assert_established(&env, &speaker, Duration::from_secs(30), || {
        format!("FRR did not connect to the passive speaker\n{}", frr.log())
    });
    assert!(wait_routes(
        &env.peer,
        Duration::from_secs(10),
        vip4_in("bgp")
    ));
}

/// Both sides connect and both listen: whatever collisions happen (RFC 4271 §6.8 on
/// both ends), exactly one session comes up and stays up.
#[test]
fn netns_frr_both_active_one_stable_session() {
    if !require("netns_frr_both_active_one_stable_session", NEEDS) {
        return;
    }
    let env = env("frrboth");
    let frr = Frr::start(&env.peer, &frr_conf(""), true).expect("start FRR");
    let listen = format!("{SPK_V4}:179").parse().unwrap();
    let speaker = start_speaker(&env, vec![peer_config("frr")], Some(listen));
    assert_established(&env, &speaker, Duration::from_secs(20), || frr.log());
    announce(&env, &speaker, Route::new(vip4()));
    assert!(wait_routes(
        &env.peer,
        Duration::from_secs(10),
        vip4_in("bgp")
    ));
    // Stays up well past a few keepalive periods with no second session taking over.
    std::thread::sleep(Duration::from_secs(4));
    let st = status(&env, &speaker);
    assert_eq!(st.state, PeerState::Established, "{st:?}");
    assert_eq!(st.counters.established_transitions, 1, "{st:?}");
    assert!(frr.established(SPK_V4));
}

/// Every attribute the speaker can set, as FRR decodes it.
#[test]
fn netns_frr_attributes_and_graceful_shutdown() {
    if !require("netns_frr_attributes_and_graceful_shutdown", NEEDS) {
        return;
    }
    let env = env("frrattr");
    let frr = Frr::start(&env.peer, &frr_conf(""), true).expect("start FRR");
    let speaker = start_speaker(&env, vec![peer_config("frr")], None);
    assert_established(&env, &speaker, Duration::from_secs(20), String::new);
    let mut r = Route::new(vip4());
    r.med = Some(50);
    r.as_path_prepend = 2;
    r.communities = vec![(65005 << 16) | 100];
    r.large_communities = vec![(65005, 1, 2)];
    r.graceful_shutdown = true;
    announce(&env, &speaker, r);
    let show = || {
        frr.vtysh("show bgp ipv4 unicast 10.101.4.0/24 json")
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || show(
        )
        .contains("\"metric\":50")),
        "{}",
        show()
    );
    let j = show();
    assert!(
        j.contains("\"string\":\"65005 65005 65005\""),
        "AS path with two prepends: {j}"
    );
    assert!(
        j.contains("65005:100") && j.contains("graceful-shutdown"),
        "communities: {j}"
    );
    assert!(j.contains("65005:1:2"), "large community: {j}");
    assert!(j.contains("\"origin\":\"IGP\""), "{j}");

    // RFC 2918: FRR asks for a refresh (`clear ... soft in`); we send our routes again.
    let before = status(&env, &speaker).counters.updates_sent;
    frr.vtysh(&format!("clear bgp ipv4 unicast {SPK_V4} soft in"))
        .unwrap();
    assert!(
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(50),
            || status(&env, &speaker).counters.updates_sent > before
        ),
        "no UPDATE after ROUTE-REFRESH: {:?}",
        status(&env, &speaker)
    );
    assert_eq!(status(&env, &speaker).counters.established_transitions, 1);

    // Dropping the graceful-shutdown flag re-announces without the community.
    announce(&env, &speaker, Route::new(vip4()));
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            !show().contains("graceful-shutdown")
        }),
        "{}",
        show()
    );
}

/// iBGP over an IPv6 session: LOCAL_PREF sent, empty AS_PATH, IPv4 NLRI with a
/// configured IPv4 next hop, IPv6 NLRI with next-hop-self.
#[test]
fn netns_frr_ibgp_over_ipv6_transport() {
    if !require("netns_frr_ibgp_over_ipv6_transport", NEEDS) {
        return;
    }
    let env = env("frribgp");
    let conf = format!(
        "router bgp {SPK_ASN}\n bgp router-id {PEER_V4}\n no bgp ebgp-requires-policy\n \
         neighbor {SPK_V6} remote-as {SPK_ASN}\n neighbor {SPK_V6} timers 3 9\n neighbor {SPK_V6} timers connect 1\n \
         address-family ipv4 unicast\n  neighbor {SPK_V6} activate\n exit-address-family\n \
         address-family ipv6 unicast\n  neighbor {SPK_V6} activate\n exit-address-family\n"
    );
    let frr = Frr::start(&env.peer, &conf, true).expect("start FRR");
    let mut p = bgp_speaker::PeerConfig::new(
        "frr6",
        ip(PEER_V6),
        SPK_ASN,
        SPK_ASN,
        SPK_V4.parse().unwrap(),
    );
    p.hold_time = 9;
    p.connect_retry = 1;
    p.next_hop_v4 = Some(SPK_V4.parse().unwrap());
    let speaker = start_speaker(&env, vec![p], None);
    assert_established(&env, &speaker, Duration::from_secs(20), || frr.log());
    let mut r = Route::new(vip4());
    r.local_pref = Some(250);
    announce(&env, &speaker, r);
    announce(&env, &speaker, Route::new(vip6()));
    assert!(
        wait_routes(&env.peer, Duration::from_secs(10), vips_in("bgp")),
        "{}\n{}",
        env.peer.routes().unwrap_or_default(),
        frr.vtysh("show bgp ipv4 unicast").unwrap_or_default()
    );
    let j = frr
        .vtysh("show bgp ipv4 unicast 10.101.4.0/24 json")
        .unwrap_or_default();
    assert!(
        j.contains("\"locPrf\":250") || j.contains("\"localpref\":250"),
        "{j}"
    );
    assert!(
        j.contains("\"string\":\"Local\""),
        "empty AS path on iBGP: {j}"
    );
    let routes = env.peer.routes().unwrap();
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("2001:db8:101::/48") && l.contains(&format!("via {SPK_V6}"))),
        "{routes}"
    );
}

/// Operator actions: reset (Cease/4, reconnect at once), disable (Cease/2, stay
/// down, routes leave FRR), enable (back, routes back).
#[test]
fn netns_frr_reset_disable_enable() {
    if !require("netns_frr_reset_disable_enable", NEEDS) {
        return;
    }
    let env = env("frrops");
    let frr = Frr::start(&env.peer, &frr_conf(""), true).expect("start FRR");
    let speaker = start_speaker(&env, vec![peer_config("frr")], None);
    let peer = speaker.peer("frr").unwrap().clone();
    assert!(wait_established(&env, &speaker, Duration::from_secs(20)));
    announce(&env, &speaker, Route::new(vip4()));
    assert!(wait_routes(
        &env.peer,
        Duration::from_secs(10),
        vip4_in("bgp")
    ));

    env.rt.block_on(peer.reset("operator clear")).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
            let st = status(&env, &speaker);
            st.counters.established_transitions == 2 && st.state == PeerState::Established
        }),
        "{:?}",
        status(&env, &speaker)
    );
    assert!(frr.log().contains("operator clear"), "{}", frr.log());
    assert!(wait_routes(
        &env.peer,
        Duration::from_secs(10),
        vip4_in("bgp")
    ));

    env.rt.block_on(peer.disable("maintenance window")).unwrap();
    assert!(wait_routes(
        &env.peer,
        Duration::from_secs(10),
        vip4_gone("bgp")
    ));
    std::thread::sleep(Duration::from_secs(3));
    let st = status(&env, &speaker);
    assert!(st.disabled && st.state == PeerState::Idle, "{st:?}");
    assert!(!frr.established(SPK_V4));

    env.rt.block_on(peer.enable()).unwrap();
    assert!(wait_established(&env, &speaker, Duration::from_secs(20)));
    assert!(wait_routes(
        &env.peer,
        Duration::from_secs(10),
        vip4_in("bgp")
    ));
    assert!(!status(&env, &speaker).disabled);
}
