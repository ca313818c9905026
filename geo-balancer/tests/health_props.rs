//! Property tests of the health state machines over random inputs on a virtual clock.
//!
//! - A server is up only after `rise` consecutive successes, and goes down after `fall`
//!   consecutive failures or one hard failure.
//! - A VIP: announce and withdraw alternate; withdraw comes on the very input that makes
//!   it unservable; after a withdraw, announce only once it stayed servable for at least
//!   the base hold-down; nothing is announced while unservable.

use std::net::SocketAddr;
use std::time::Duration;

use geo_balancer::errors::ProbeError;
use geo_balancer::health::{
    HealthState, ProbeOutcome, ServerHealth, VipConfig, VipHealth, VipOutput,
};
use geo_balancer::{ServerId, Time};
use proptest::prelude::*;

fn outcome(k: u8) -> ProbeOutcome {
    let addr: SocketAddr = ([127, 0, 0, 1], 80).into();
    match k % 5 {
        0 | 1 => ProbeOutcome::Success,
        2 | 3 => ProbeOutcome::Failure(ProbeError::Timeout {
            target: "rs".into(),
            timeout_ms: 1,
        }),
        _ => ProbeOutcome::HardFailure(ProbeError::Refused { addr }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn server_up_only_after_rise_and_down_after_fall(
        rise in 1u32..5,
        fall in 1u32..5,
        inputs in prop::collection::vec(any::<u8>(), 1..200),
    ) {
        let mut h = ServerHealth::new(ServerId::new("rs"), rise, fall, Time(0));
        let (mut ok, mut bad) = (0u32, 0u32);
        for (i, k) in inputs.into_iter().enumerate() {
            let o = outcome(k);
            let before = h.state();
            h.on_probe(Time(i as u64), &o);
            match o {
                ProbeOutcome::Success => { ok += 1; bad = 0; }
                ProbeOutcome::Failure(_) => { bad += 1; ok = 0; }
                ProbeOutcome::HardFailure(_) => { bad = fall; ok = 0; }
            }
            if before == HealthState::Down && h.state() == HealthState::Up {
                prop_assert!(ok >= rise, "up after {ok} successes (rise {rise})");
            }
            if before == HealthState::Up && h.state() == HealthState::Down {
                prop_assert!(bad >= fall, "down after {bad} failures (fall {fall})");
            }
            if h.state() == HealthState::Up {
                prop_assert!(bad < fall);
            }
        }
    }

    #[test]
    fn vip_announce_and_withdraw_alternate_and_respect_hold_down(
        min_up in 1usize..3,
        hold_s in 1u64..30,
        steps in prop::collection::vec((0usize..4, any::<bool>(), 0u64..20_000), 1..150),
    ) {
        let cfg = VipConfig { min_up, hold_down: Duration::from_secs(hold_s), ..VipConfig::default() };
        let mut v = VipHealth::new(cfg);
        let mut m = Model { hold: Duration::from_secs(hold_s), ..Model::default() };
        let mut now = Time::from_secs(1_000);
        for (up, plane, dt_ms) in steps {
            now = now.plus(Duration::from_millis(dt_ms));
            // A due timer fires first (inputs unchanged since), as the daemon's loop would.
            if m.timer.is_some_and(|t| t <= now) {
                m.timer = None;
                let outs = v.timer(now);
                m.check(now, outs).map_err(TestCaseError::fail)?;
            }
            m.servable = up >= min_up && plane;
            if !m.servable {
                m.servable_since = None;
            } else if m.servable_since.is_none() {
                m.servable_since = Some(now);
            }
            let outs = v.update(now, up, plane);
            m.check(now, outs).map_err(TestCaseError::fail)?;
            // Withdraw on the very input: never announced while unservable.
            prop_assert!(!m.announced || m.servable, "still announced while unservable");
            prop_assert_eq!(v.announced(), m.announced);
        }
    }
}

#[derive(Default)]
struct Model {
    hold: Duration,
    announced: bool,
    ever: bool,
    servable: bool,
    servable_since: Option<Time>,
    timer: Option<Time>,
}

impl Model {
    fn check(&mut self, now: Time, outs: Vec<VipOutput>) -> Result<(), String> {
        for o in outs {
            match o {
                VipOutput::Announce { .. } => {
                    if self.announced {
                        return Err("announce twice".into());
                    }
                    if !self.servable {
                        return Err("announce while unservable".into());
                    }
                    let since = self.servable_since.unwrap_or(now);
                    if self.ever && now.since(since) < self.hold {
                        return Err(format!(
                            "announced {:?} after recovery, hold-down {:?}",
                            now.since(since),
                            self.hold
                        ));
                    }
                    self.announced = true;
                    self.ever = true;
                }
                VipOutput::Withdraw { .. } => {
                    if !self.announced || self.servable {
                        return Err("withdraw while withdrawn or servable".into());
                    }
                    self.announced = false;
                }
                VipOutput::ArmTimer(t) => {
                    if t <= now {
                        return Err("timer not in the future".into());
                    }
                    self.timer = Some(t);
                }
            }
        }
        Ok(())
    }
}
