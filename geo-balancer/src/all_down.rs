//! The last-announcer guard: what a site does with a VIP when its own checks fail and
//! so does every peer's (a shared dependency down everywhere).
//!
//! ```text
//!   own checks pass ───────────────────────────────────────────> announce (as ever)
//!   own checks fail ─┬─ policy withdraw ───────────────────────> withdraw (as ever)
//!                    └─ policy announce ─┬─ more than half the configured peers known,
//!                                        │  and each known one's fresh report says it
//!                                        │  cannot serve (load null)
//!                                        │                      ──> hold: keep announcing
//!                                        └─ otherwise ─────────> withdraw
//! ```
//! "Withdrawn" is read from what a peer reports it can do (its load, `null` when it has
//! no healthy capacity), never from whether it announces: a site that holds still
//! reports `null`, so two failing sites see each other as withdrawn and both hold;
//! neither waits on the other, and no announce of one makes another let go. A peer
//! with no fresh report (unknown, stale, never heard from) is either dead or cut off
//! and maybe serving: the guard needs a majority of the configured peers known, so a
//! site cut off from most of the others never holds the VIP while they may serve,
//! and one dead site does not switch the guard off for the fleet. A site without
//! peers never holds. The guard lets go as soon as one known peer reports it can serve
//! again, or too many turn stale (decision 0017).

use serde::{Deserialize, Serialize};

use crate::spill::PeerView;

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

/// Whether more than half the peers are known and every known one reports that it
/// cannot serve.
pub fn every_peer_withdrawn(views: &[PeerView]) -> bool {
    let known: Vec<_> = views.iter().filter_map(|v| v.facts.as_ref()).collect();
    known.len() * 2 > views.len() && known.iter().all(|f| f.load.is_infinite())
}

/// Whether the guard keeps a VIP announced that its own checks would withdraw:
/// `checks_fail` is the site's own verdict for that VIP (its real servers, with the
/// data plane in place), `views` every configured peer as the peer table sees it now.
pub fn holds(policy: AllDown, checks_fail: bool, views: &[PeerView]) -> bool {
    policy == AllDown::Announce && checks_fail && every_peer_withdrawn(views)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{PeerFacts, SiteId};

    fn peer(name: &str, load: Option<f64>) -> PeerView {
        PeerView {
            site: SiteId::new(name),
            facts: load.map(|load| PeerFacts {
                load,
                capacity: 0,
                spilling_to_us: false,
                age: Duration::from_secs(10),
                seq: 1,
                other_spillers: 0,
            }),
        }
    }

    const DOWN: Option<f64> = Some(f64::INFINITY);

    #[test]
    fn holds_only_when_every_peer_is_known_and_cannot_serve() {
        use AllDown::*;
        let all_down = [peer("b", DOWN), peer("c", DOWN)];
        let one_serves = [peer("b", DOWN), peer("c", Some(0.4))];
        let one_unknown = [peer("b", DOWN), peer("c", None)];
        let one_of_three_unknown = [peer("b", DOWN), peer("c", None), peer("d", DOWN)];
        let two_of_three_unknown = [peer("b", None), peer("c", None), peer("d", DOWN)];
        let overloaded = [peer("b", DOWN), peer("c", Some(1.5))];
        for (policy, checks_fail, views, want) in [
            (Announce, true, &all_down[..], true),
            (Announce, false, &all_down[..], false),
            (Withdraw, true, &all_down[..], false),
            (Announce, true, &one_serves[..], false),
            (Announce, true, &one_unknown[..], false),
            (Announce, true, &one_of_three_unknown[..], true),
            (Announce, true, &two_of_three_unknown[..], false),
            (Announce, true, &overloaded[..], false),
            (Announce, true, &[][..], false),
        ] {
            assert_eq!(
                holds(policy, checks_fail, views),
                want,
                "{policy:?} checks_fail={checks_fail} {views:?}"
            );
        }
    }

    #[test]
    fn the_default_is_fail_open() {
        assert_eq!(AllDown::default(), AllDown::Announce);
        assert_eq!(AllDown::Withdraw.as_str(), "withdraw");
    }
}
