//! Interop with BIRD 2's BFD in network namespaces, over IPv6 (the FRR test covers
//! IPv4): a session comes up, a cut path brings it down on both sides within the
//! detection time, it comes back after the heal and after BIRD restarts.

mod common;

use std::time::Duration;

use anycast_lab::netns::wait_until;
use anycast_lab::peers::Bird;
use anycast_lab::{Need, require};
use bfd::{Diag, State};
use common::wait_event;

const NEEDS: &[Need] = &[
    Need::Netns,
    Need::Program("bird"),
    Need::Program("birdc"),
    Need::Program("ip6tables"),
];

const BIRD: &str = "fd77::1";
const US: &str = "fd77::2";

fn bird_conf() -> String {
    format!(
        "router id 10.77.1.1;\n\
         protocol device {{ }}\n\
         protocol bfd {{\n  interface \"*\" {{ interval 300 ms; multiplier 5; }};\n  neighbor {US} local {BIRD};\n}}\n"
    )
}

fn bird_state(bird: &Bird) -> String {
    bird.birdc("show bfd sessions").unwrap_or_default()
}

fn bird_up(bird: &Bird) -> bool {
    bird_state(bird)
        .lines()
        .any(|l| l.contains(US) && l.contains(" Up "))
}

/// Waits up to 5 s for BIRD to see the session Up (`up`) or not; panics otherwise.
fn bird_sees(bird: &Bird, up: bool) {
    let seen = wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        bird_up(bird) == up
    });
    assert!(seen, "BIRD: {}", bird_state(bird));
}

#[test]
fn netns_bird_bfd_ipv6_up_cut_heal_restart() {
    if !require("netns_bird_bfd_ipv6_up_cut_heal_restart", NEEDS) {
        return;
    }
    let (bird_ns, us_ns) = common::namespaces("bfdbird", BIRD, "bfdus6", US, 64);
    let mut bird = Bird::start(&bird_ns, &bird_conf()).expect("start BIRD");

    us_ns.enter_current_thread().expect("enter netns");
    let rt = common::runtime();
    rt.block_on(async {
        let (h, mut rx) = common::spawn(BIRD, US);

        let up = common::up_within(&mut rx, Duration::from_secs(15)).await;
        assert!(up, "no Up; BIRD says {}", bird_state(&bird));
        bird_sees(&bird, true);

        common::cut(&us_ns, BIRD, "-A");
        let (ev, took) = wait_event(&mut rx, Duration::from_secs(3), |e| e.to == State::Down)
            .await
            .expect("no Down after the cut");
        assert_eq!(ev.diag, Diag::ControlDetectionTimeExpired);
        assert!(took <= Duration::from_millis(1900), "down after {took:?}");
        bird_sees(&bird, false);

        common::cut(&us_ns, BIRD, "-D");
        assert!(
            common::up_within(&mut rx, Duration::from_secs(10)).await,
            "not up after the heal; BIRD {}",
            bird_state(&bird)
        );
        bird_sees(&bird, true);

        bird.restart().expect("restart BIRD");
        assert!(
            common::up_within(&mut rx, Duration::from_secs(15)).await,
            "not up after BIRD's restart; BIRD {}",
            bird_state(&bird)
        );
        drop(h);
    });
}
