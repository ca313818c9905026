//! Interop with BIRD 2 in a network namespace on the host kernel.

mod common;

use std::time::Duration;

use anycast_lab::peers::Bird;
use anycast_lab::{Need, require};
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
    let speaker = start_speaker(&env, vec![peer_config("bird")], None);
    assert_established(&env, &speaker, Duration::from_secs(20), || bird.log());

    announce_vips(&env, &speaker);
    assert!(
        wait_routes(&env.peer, Duration::from_secs(10), vips_in("bird")),
        "routes not in BIRD's kernel table: {}\n{}",
        env.peer.routes().unwrap_or_default(),
        bird.birdc("show route all").unwrap_or_default()
    );
    for prefix in ["10.101.4.0/24", "2001:db8:101::/48"] {
        assert!(
            best_in_bird(&bird, prefix),
            "{}",
            bird.birdc("show route").unwrap_or_default()
        );
    }

    withdraw_then_restart_peer(&env, &speaker, "BIRD", "bird", || {
        bird.restart().expect("restart BIRD")
    });

    shutdown_logged(&env, &speaker, "bird test done", "BIRD", || bird.log());
}
