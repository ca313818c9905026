//! Every site's checks fail at once for ten minutes (a shared dependency down
//! everywhere), six sites, one simulated hour: `[site] all_down` withdraw against
//! announce (the last-announcer guard, decision 0017).

use fleet_sim::{Config, Measures, run};
use geo_balancer::AllDown;

const SITES: u64 = 6;
const EVENT_S: u64 = 600;

fn event(all_down: AllDown) -> Measures {
    let cfg = Config {
        sites: SITES as usize,
        seed: 1,
        hours: 1,
        outages_per_day: 0.0,
        all_down_event: Some((1200, EVENT_S)),
        all_down,
        ..Config::default()
    };
    run(&cfg).unwrap_or_else(|e| panic!("run: {e}"))
}

#[test]
fn the_guard_keeps_a_route_through_a_global_failure_and_lets_go_once() {
    let withdraw = event(AllDown::Withdraw);
    assert_eq!(
        withdraw.unreachable_s, EVENT_S,
        "every site withdraws throughout"
    );
    assert_eq!(withdraw.held_site_s, 0);
    assert!(withdraw.unreachable_conns > 0.0);

    let announce = event(AllDown::Announce);
    // The guard holds once every peer's report of failure has arrived: within a
    // report period or two, not the whole event.
    assert!(
        announce.unreachable_s < 300,
        "unreachable {} s of {EVENT_S}",
        announce.unreachable_s
    );
    assert!(announce.unreachable_conns < withdraw.unreachable_conns / 2.0);
    // Each site holds once and lets go once, at the end: no flap.
    assert_eq!(announce.guard_changes, 2 * SITES, "{announce:?}");
    assert!(announce.held_site_s > 0);
}
