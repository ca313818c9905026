//! Interop with BIRD 2 in a network namespace on the host kernel.

mod common;

use std::time::Duration;

use anycast_lab::netns::wait_until;
use anycast_lab::peers::Bird;
use anycast_lab::{Need, require};
use bgp_speaker::{Route, Speaker, SpeakerConfig};
use common::*;

fn bird_conf(log: &str) -> String {
    format!(
        r#"log "{log}" all;
router id {PEER_V4};
protocol device {{ }}
protocol kernel k4 {{ ipv4 {{ export all; }}; }}
protocol kernel k6 {{ ipv6 {{ export all; }}; }}
protocol bgp spk {{
  local {PEER_V4} as {PEER_ASN};
  neighbor {SPK_V4} as {SPK_ASN};
  hold time 9;
  keepalive time 3;
  connect retry time 1;
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}
"#
    )
}

fn best_in_bird(bird: &Bird, prefix: &str) -> bool {
    bird.birdc(&format!("show route {prefix}"))
        .map(|s| {
            s.lines().any(|l| {
                l.contains(prefix) && l.contains(" * ") && l.contains(&format!("AS{SPK_ASN}"))
            })
        })
        .unwrap_or(false)
}

#[test]
fn netns_bird_announce_withdraw_restart() {
    if !require(
        "netns_bird_announce_withdraw_restart",
        &[Need::Netns, Need::Program("bird"), Need::Program("birdc")],
    ) {
        return;
    }
    let env = env("bird");
    let log = format!(
        "/tmp/anycast-lab-{}/bird.log",
        env.peer.name().replace('-', "")
    );
    let mut bird = Bird::start(&env.peer, &bird_conf(&log)).expect("start BIRD");
    let speaker = env
        .rt
        .block_on(Speaker::start(SpeakerConfig {
            peers: vec![peer_config("bird")],
            listen: None,
        }))
        .expect("speaker");
    assert!(
        wait_established(&env, &speaker, Duration::from_secs(20)),
        "not Established: {:?}\n{}",
        status(&env, &speaker),
        bird.log()
    );

    env.rt
        .block_on(speaker.announce(Route::new(vip4())))
        .unwrap();
    env.rt
        .block_on(speaker.announce(Route::new(vip6())))
        .unwrap();
    assert!(
        wait_routes(&env.peer, Duration::from_secs(10), |r| has_route(
            r,
            &vip4(),
            "bird"
        ) && has_route(
            r,
            &vip6(),
            "bird"
        )),
        "routes not in BIRD's kernel table: {}\n{}",
        env.peer.routes().unwrap_or_default(),
        bird.birdc("show route all").unwrap_or_default()
    );
    assert!(
        best_in_bird(&bird, "10.101.4.0/24"),
        "{}",
        bird.birdc("show route").unwrap_or_default()
    );
    assert!(
        best_in_bird(&bird, "2001:db8:101::/48"),
        "{}",
        bird.birdc("show route").unwrap_or_default()
    );

    env.rt.block_on(speaker.withdraw(vip4())).unwrap();
    env.rt.block_on(speaker.withdraw(vip6())).unwrap();
    assert!(
        wait_routes(&env.peer, Duration::from_secs(10), |r| !has_route(
            r,
            &vip4(),
            "bird"
        ) && !has_route(
            r,
            &vip6(),
            "bird"
        )),
        "routes still in BIRD's kernel table: {}",
        env.peer.routes().unwrap_or_default()
    );

    env.rt
        .block_on(speaker.announce(Route::new(vip4())))
        .unwrap();
    env.rt
        .block_on(speaker.announce(Route::new(vip6())))
        .unwrap();
    assert!(wait_routes(&env.peer, Duration::from_secs(10), |r| {
        has_route(r, &vip4(), "bird")
    }));
    bird.restart().expect("restart BIRD");
    assert!(
        wait_routes(&env.peer, Duration::from_secs(30), |r| has_route(
            r,
            &vip4(),
            "bird"
        ) && has_route(
            r,
            &vip6(),
            "bird"
        )),
        "routes not back after BIRD restart: {:?}\n{}",
        status(&env, &speaker),
        env.peer.routes().unwrap_or_default()
    );

    env.rt.block_on(speaker.shutdown("bird test done"));
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || bird
            .log()
            .contains("bird test done")),
        "BIRD did not log the shutdown communication:\n{}",
        bird.log()
    );
}
