//! The last-announcer guard: what a site does with a VIP when its own checks fail and
//! so does every peer's (a shared dependency down everywhere).
//!
//! ```text
//!   own checks pass ───────────────────────────────────────────> announce (as ever)
//!   own checks fail ─┬─ policy withdraw ───────────────────────> withdraw (as ever)
//!                    └─ policy announce ─┬─ no peer's fresh report says it serves,
//!                                        │  and more than half the configured peers
//!                                        │  report that they cannot (load null)
//!                                        │                      ──> hold: keep announcing
//!                                        └─ otherwise ─────────> withdraw
//! ```
//! "Withdrawn" is read from what a peer reports it can do (its load, `null` when it has
//! no healthy capacity), never from whether it announces: a site that holds still
//! reports `null`, so two failing sites see each other as withdrawn and both hold;
//! neither waits on the other, and no announce of one makes another let go. A peer
//! with no fresh report (stale, never heard from) is dead or cut off: it counts
//! neither way, but the guard needs more than half the configured peers reporting
//! `null`, so a site cut off from most of the others never holds the VIP while they
//! may serve, and one dead site does not switch the guard off for the fleet. A site
//! without peers never holds. The guard lets go as soon as one peer reports it can
//! serve again, or too few reports of `null` stay; while it holds, a report of `null`
//! counts for twice `stale_after`, so that one report too many lost does not flap the
//! route (decision 0017).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exchange::PeerClaim;
use crate::time::Time;

/// What a site does when its own checks fail and every peer reports the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllDown {
    /// Keep announcing (fail-open, the last-announcer guard). The default.
    #[default]
    Announce,
    /// Withdraw, as a site does when only it fails.
    Withdraw,
}

impl AllDown {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            AllDown::Announce => "announce",
            AllDown::Withdraw => "withdraw",
        }
    }
}

/// The reason shown while the guard holds a VIP.
pub const HELD: &str = "held: every peer withdrawn";

/// How long a peer's report keeps it counted: `stale_after` to start holding, twice
/// that to keep holding (one report too many lost must not flap the route).
fn counted_for(stale_after: Duration, holding: bool) -> Duration {
    if holding {
        stale_after * 2
    } else {
        stale_after
    }
}

/// Whether the guard holds a VIP that its own checks would withdraw: `checks_fail` is
/// the site's own verdict for it (its real servers, with the data plane in place),
/// `peers` every configured peer as the peer table reports it
/// ([`crate::exchange::PeerTable::claims`]), `holding` whether the guard holds it now.
/// It holds when no peer is known to serve (a report younger than `stale_after` with a
/// load) and more than half the peers are known to be withdrawn (a report of load
/// `null`, younger than `stale_after` to start holding, than twice that to keep on).
pub fn holds(
    policy: AllDown,
    checks_fail: bool,
    peers: impl IntoIterator<Item = PeerClaim>,
    stale_after: Duration,
    holding: bool,
) -> bool {
    if policy != AllDown::Announce || !checks_fail {
        return false;
    }
    let keep = counted_for(stale_after, holding);
    let said = |p: &PeerClaim, within: Duration, serves: bool| {
        p.age.is_some_and(|a| a <= within) && p.serves == Some(serves)
    };
    let (mut all, mut withdrawn) = (0, 0);
    for p in peers {
        if said(&p, stale_after, true) {
            return false;
        }
        all += 1;
        withdrawn += usize::from(said(&p, keep, false));
    }
    withdrawn * 2 > all
}

/// While holding: when the next withdrawn peer stops counting (a timer, so the guard
/// lets go on time when reports stop).
pub fn recheck_at(
    now: Time,
    peers: impl IntoIterator<Item = PeerClaim>,
    stale_after: Duration,
) -> Option<Time> {
    let keep = counted_for(stale_after, true);
    peers
        .into_iter()
        .filter(|p| p.serves == Some(false))
        .filter_map(|p| p.age.filter(|a| *a <= keep))
        .map(|a| now.plus(keep - a).plus(Duration::from_millis(1)))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    const STALE: Duration = Duration::from_secs(360);

    /// A peer whose last report, `age_s` old, says `load`; `None`: never heard from.
    fn peer(_name: &str, report: Option<(Option<f64>, u64)>) -> PeerClaim {
        PeerClaim {
            age: report.map(|(_, a)| Duration::from_secs(a)),
            serves: report.map(|(load, _)| load.is_some()),
        }
    }

    const DOWN: Option<(Option<f64>, u64)> = Some((None, 10));
    const UNKNOWN: Option<(Option<f64>, u64)> = None;

    #[test]
    fn holds_only_when_a_majority_is_known_and_none_can_serve() {
        use AllDown::*;
        let p = |r: [Option<(Option<f64>, u64)>; 3]| {
            r.iter()
                .enumerate()
                .map(|(i, r)| peer(&format!("p{i}"), *r))
                .collect::<Vec<_>>()
        };
        let stale_down = Some((None, 400));
        let long_gone = Some((None, 800));
        for (policy, checks_fail, peers, holding, want) in [
            (Announce, true, p([DOWN, DOWN, DOWN]), false, true),
            (Announce, false, p([DOWN, DOWN, DOWN]), false, false),
            (Withdraw, true, p([DOWN, DOWN, DOWN]), false, false),
            (
                Announce,
                true,
                p([DOWN, Some((Some(0.4), 10)), DOWN]),
                true,
                false,
            ),
            (
                Announce,
                true,
                p([DOWN, Some((Some(1.5), 10)), DOWN]),
                true,
                false,
            ),
            (Announce, true, p([DOWN, UNKNOWN, DOWN]), false, true),
            (Announce, true, p([UNKNOWN, UNKNOWN, DOWN]), true, false),
            // A report a little past stale_after: not enough to start, kept while holding.
            (
                Announce,
                true,
                p([stale_down, stale_down, DOWN]),
                false,
                false,
            ),
            (
                Announce,
                true,
                p([stale_down, stale_down, DOWN]),
                true,
                true,
            ),
            (Announce, true, p([long_gone, long_gone, DOWN]), true, false),
            // A peer last heard serving, now stale (an outage): ignored either way.
            (
                Announce,
                true,
                p([DOWN, Some((Some(0.5), 400)), DOWN]),
                true,
                true,
            ),
            (
                Announce,
                true,
                p([DOWN, Some((Some(0.5), 400)), DOWN]),
                false,
                true,
            ),
        ] {
            assert_eq!(
                holds(policy, checks_fail, peers.clone(), STALE, holding),
                want,
                "{policy:?} checks_fail={checks_fail} holding={holding} {peers:?}"
            );
        }
        assert!(
            !holds(Announce, true, [], STALE, false),
            "no peers, no guard"
        );
    }

    #[test]
    fn the_recheck_comes_when_the_first_counted_peer_ages_out() {
        let peers = [peer("b", Some((None, 700))), peer("c", Some((None, 100)))];
        assert_eq!(
            recheck_at(Time(0), peers, STALE),
            Some(Time(0).plus(Duration::from_millis(20_001)))
        );
    }

    #[test]
    fn the_default_is_fail_open() {
        assert_eq!(AllDown::default(), AllDown::Announce);
        assert_eq!(AllDown::Withdraw.as_str(), "withdraw");
    }
}
