//! One real server's health: rise/fall counters over probe outcomes.
//!
//! ```text
//!            rise consecutive successes
//!   +------+ -------------------------> +----+
//!   | Down |                            | Up |
//!   +------+ <------------------------- +----+
//!      ^     fall consecutive failures,      |
//!      |     or one hard failure             |
//!      +---- enable --- Disabled <-- disable-+  (operator; probes still counted)
//! ```
//! A server starts Down ("not checked yet") and needs `rise` successes, so a director
//! that restarts never announces before it has seen its servers answer.

use std::fmt;

use serde::Serialize;

use crate::errors::ProbeError;
use crate::health::ProbeOutcome;
use crate::ids::ServerId;
use crate::time::Time;

/// The health of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Passing checks: gets traffic and counts as capacity.
    Up,
    /// Failing (or not yet checked).
    Down,
    /// Taken out by the operator.
    Disabled,
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthState::Up => "up",
            HealthState::Down => "down",
            HealthState::Disabled => "disabled",
        })
    }
}

/// A change of state, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// The server.
    pub server: ServerId,
    /// Before.
    pub from: HealthState,
    /// After.
    pub to: HealthState,
    /// When.
    pub at: Time,
    /// Why, one sentence.
    pub reason: String,
}

/// The rise/fall state machine of one real server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerHealth {
    server: ServerId,
    rise: u32,
    fall: u32,
    state: HealthState,
    since: Time,
    ok_streak: u32,
    fail_streak: u32,
    #[serde(serialize_with = "ser_opt_err")]
    last_error: Option<ProbeError>,
    reason: String,
}

fn ser_opt_err<S: serde::Serializer>(e: &Option<ProbeError>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_str(&e.to_string()),
        None => s.serialize_none(),
    }
}

impl ServerHealth {
    /// A server not checked yet: Down until `rise` successes. `rise`/`fall` below 1 are
    /// taken as 1.
    pub fn new(server: ServerId, rise: u32, fall: u32, now: Time) -> ServerHealth {
        ServerHealth {
            server,
            rise: rise.max(1),
            fall: fall.max(1),
            state: HealthState::Down,
            since: now,
            ok_streak: 0,
            fail_streak: 0,
            last_error: None,
            reason: "not checked yet".into(),
        }
    }

    /// The current state.
    pub fn state(&self) -> HealthState {
        self.state
    }
    /// Whether it counts as capacity.
    pub fn is_up(&self) -> bool {
        self.state == HealthState::Up
    }
    /// Since when the state holds.
    pub fn since(&self) -> Time {
        self.since
    }
    /// Why the state holds.
    pub fn reason(&self) -> &str {
        &self.reason
    }
    /// The last probe error, if the last probe failed.
    pub fn last_error(&self) -> Option<&ProbeError> {
        self.last_error.as_ref()
    }
    /// The server.
    pub fn server(&self) -> &ServerId {
        &self.server
    }

    /// Feeds one probe result.
    pub fn on_probe(&mut self, now: Time, outcome: &ProbeOutcome) -> Option<Transition> {
        match outcome {
            ProbeOutcome::Success => {
                self.ok_streak = self.ok_streak.saturating_add(1);
                self.fail_streak = 0;
                self.last_error = None;
                if self.state == HealthState::Down && self.ok_streak >= self.rise {
                    let why = format!("{} consecutive successful checks", self.ok_streak);
                    return self.go(now, HealthState::Up, why);
                }
            }
            ProbeOutcome::Failure(e) => {
                self.fail_streak = self.fail_streak.saturating_add(1);
                self.ok_streak = 0;
                self.last_error = Some(e.clone());
                if self.state == HealthState::Up && self.fail_streak >= self.fall {
                    let why = format!("{} consecutive failed checks, last: {e}", self.fail_streak);
                    return self.go(now, HealthState::Down, why);
                }
            }
            ProbeOutcome::HardFailure(e) => {
                self.fail_streak = self.fall.max(self.fail_streak.saturating_add(1));
                self.ok_streak = 0;
                self.last_error = Some(e.clone());
                if self.state == HealthState::Up {
                    return self.go(now, HealthState::Down, format!("hard failure: {e}"));
                }
            }
        }
        None
    }

    /// Feeds one echo round's result (the liveness probe that stands in for most full
    /// checks, see [`crate::health::sched`]). A failed round (several requests over
    /// the detection window, none answered) takes an Up server down at once; a
    /// success changes nothing (rising takes full checks).
    pub fn on_echo(&mut self, now: Time, outcome: &ProbeOutcome) -> Option<Transition> {
        match outcome {
            ProbeOutcome::Success => None,
            ProbeOutcome::Failure(e) | ProbeOutcome::HardFailure(e) => {
                self.fail_streak = self.fall;
                self.ok_streak = 0;
                self.last_error = Some(e.clone());
                if self.state == HealthState::Up {
                    return self.go(now, HealthState::Down, format!("host silent: {e}"));
                }
                None
            }
        }
    }

    /// The operator disables (true) or enables (false) the server.
    pub fn set_disabled(&mut self, now: Time, disabled: bool) -> Option<Transition> {
        match (self.state, disabled) {
            (HealthState::Disabled, false) => {
                let (to, why) = if self.ok_streak >= self.rise {
                    (HealthState::Up, "enabled by the operator; checks pass")
                } else {
                    (
                        HealthState::Down,
                        "enabled by the operator; waiting for checks",
                    )
                };
                self.go(now, to, why.into())
            }
            (HealthState::Disabled, true) | (_, false) => None,
            (_, true) => self.go(
                now,
                HealthState::Disabled,
                "disabled by the operator".into(),
            ),
        }
    }

    fn go(&mut self, now: Time, to: HealthState, reason: String) -> Option<Transition> {
        let from = self.state;
        self.state = to;
        self.since = now;
        self.reason = reason.clone();
        Some(Transition {
            server: self.server.clone(),
            from,
            to,
            at: now,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn fail() -> ProbeOutcome {
        ProbeOutcome::Failure(ProbeError::Timeout {
            target: "x".into(),
            timeout_ms: 1,
        })
    }
    fn hard() -> ProbeOutcome {
        let addr: SocketAddr = ([127, 0, 0, 1], 1).into();
        ProbeOutcome::HardFailure(ProbeError::Refused { addr })
    }

    #[test]
    fn rise_and_fall_table() {
        use HealthState::*;
        use ProbeOutcome::Success as S;
        // (inputs, state after each)
        let table: Vec<(Vec<ProbeOutcome>, Vec<HealthState>)> = vec![
            (vec![S, S], vec![Down, Up]),
            (vec![S, fail(), S, S], vec![Down, Down, Down, Up]),
            (
                vec![S, S, fail(), fail(), fail()],
                vec![Down, Up, Up, Up, Down],
            ),
            (
                vec![S, S, fail(), S, fail(), fail()],
                vec![Down, Up, Up, Up, Up, Up],
            ),
            (vec![S, S, hard()], vec![Down, Up, Down]),
            (vec![S, S, hard(), S], vec![Down, Up, Down, Down]),
            (vec![hard(), S, S], vec![Down, Down, Up]),
        ];
        for (inputs, want) in table {
            let mut h = ServerHealth::new(ServerId::new("rs"), 2, 3, Time(0));
            let got: Vec<HealthState> = inputs
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    h.on_probe(Time(i as u64), o);
                    h.state()
                })
                .collect();
            assert_eq!(got, want, "{inputs:?}");
        }
    }

    #[test]
    fn a_failed_echo_round_takes_an_up_server_down_and_successes_do_not_raise_it() {
        let mut h = ServerHealth::new(ServerId::new("rs"), 2, 3, Time(0));
        assert!(h.on_echo(Time(1), &ProbeOutcome::Success).is_none());
        assert!(h.on_echo(Time(1), &fail()).is_none(), "down already");
        h.on_probe(Time(2), &ProbeOutcome::Success);
        h.on_probe(Time(3), &ProbeOutcome::Success);
        assert!(h.is_up());
        let t = h.on_echo(Time(4), &fail()).expect("a failed round");
        assert_eq!(t.to, HealthState::Down);
        assert!(t.reason.contains("silent"), "{}", t.reason);
        // Echo successes never bring it back; rise full successes do.
        assert!(h.on_echo(Time(5), &ProbeOutcome::Success).is_none());
        assert!(h.on_probe(Time(6), &ProbeOutcome::Success).is_none());
        assert!(h.on_probe(Time(7), &ProbeOutcome::Success).is_some());
    }

    #[test]
    fn disabled_holds_until_enabled() {
        let mut h = ServerHealth::new(ServerId::new("rs"), 1, 1, Time(0));
        assert!(h.on_probe(Time(1), &ProbeOutcome::Success).is_some());
        let t = h.set_disabled(Time(2), true);
        assert!(matches!(
            t,
            Some(Transition {
                to: HealthState::Disabled,
                ..
            })
        ));
        assert!(h.on_probe(Time(3), &fail()).is_none());
        assert!(h.on_probe(Time(4), &ProbeOutcome::Success).is_none());
        assert_eq!(h.state(), HealthState::Disabled);
        let t = h.set_disabled(Time(5), false);
        assert!(matches!(
            t,
            Some(Transition {
                to: HealthState::Up,
                ..
            })
        ));
        assert!(h.set_disabled(Time(6), false).is_none());
    }
}
