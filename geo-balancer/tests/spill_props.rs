//! Property tests of the spill rule.
//!
//! 1. No reachable state where two sites spill to each other: sites evaluate one at a
//!    time in any order with any demand changes in between, and each publishes its report
//!    right after deciding (the immediate report on a state change that the exchange does).
//! 2. Constant inputs give constant decisions: after the ramp, nothing changes, and the
//!    set of targets never changes after the first decision.
//! 3. The share stays in [0, max_share] and moves by at most max_step per period unless
//!    a stop rule fired.

use std::time::Duration;

use geo_balancer::{LocalView, PeerFacts, PeerView, SiteId, SpillConfig, SpillEngine, Time};
use proptest::prelude::*;

const N: usize = 3;

#[derive(Debug, Clone)]
enum Action {
    /// Site `i`'s own demand becomes `d` connections.
    Demand(usize, u32),
    /// Site `i` evaluates and publishes.
    Decide(usize),
    /// Site `i`'s report ages out at the others (it becomes unknown to them).
    Expire(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0..N, 0u32..4000).prop_map(|(i, d)| Action::Demand(i, d)),
        (0..N).prop_map(Action::Decide),
        (0..N).prop_map(Action::Decide),
        (0..N).prop_map(Action::Expire),
    ]
}

#[derive(Debug, Clone)]
struct Report {
    served: f64,
    spilling_to: Vec<usize>,
    capacity: u64,
}

struct World {
    engines: Vec<SpillEngine>,
    demand: [f64; N],
    capacity: [f64; N],
    shares: Vec<Vec<(usize, f64)>>,
    reports: Vec<Option<Report>>,
    /// What site `i` has received from site `j` (delayed model only).
    views: Vec<Vec<Option<Report>>>,
}

impl World {
    fn new(capacity: [f64; N]) -> World {
        World {
            engines: (0..N)
                .map(|_| SpillEngine::new(SpillConfig::default()))
                .collect(),
            demand: [0.0; N],
            capacity,
            shares: vec![Vec::new(); N],
            reports: vec![None; N],
            views: vec![vec![None; N]; N],
        }
    }

    fn received(&self, i: usize) -> f64 {
        (0..N)
            .map(|j| {
                self.shares[j]
                    .iter()
                    .filter(|(t, _)| *t == i)
                    .map(|(_, s)| s * self.demand[j])
                    .sum::<f64>()
            })
            .sum()
    }

    fn decide(&mut self, i: usize, now: Time) {
        let latest: Vec<Option<Report>> = self.reports.clone();
        self.decide_from(i, now, &latest);
    }

    fn decide_with_views(&mut self, i: usize, now: Time) {
        let seen = self.views[i].clone();
        self.decide_from(i, now, &seen);
    }

    fn decide_from(&mut self, i: usize, now: Time, seen: &[Option<Report>]) {
        let received = self.received(i);
        let director = (self.demand[i] + received) / self.capacity[i];
        let peers: Vec<PeerView> = (0..N)
            .filter(|&j| j != i)
            .map(|j| PeerView {
                site: SiteId::new(format!("s{j}")),
                facts: seen[j].as_ref().map(|r| PeerFacts {
                    load: r.served,
                    capacity: r.capacity,
                    spilling_to_us: r.spilling_to.contains(&i),
                    age: Duration::from_secs(10),
                    seq: 1,
                    other_spillers: 0,
                }),
            })
            .collect();
        let d = self.engines[i].decide(
            now,
            LocalView {
                load: director,
                capacity: self.capacity[i] as u64,
            },
            &peers,
        );
        self.shares[i] = d
            .targets
            .iter()
            .map(|t| {
                (
                    t.site.as_str()[1..].parse::<usize>().unwrap_or(usize::MAX),
                    t.share,
                )
            })
            .collect();
        let new_spilled: f64 = self.shares[i].iter().map(|(_, s)| s).sum();
        let served = (self.demand[i] * (1.0 - new_spilled) + received) / self.capacity[i];
        self.reports[i] = Some(Report {
            served,
            spilling_to: self.shares[i].iter().map(|(t, _)| *t).collect(),
            capacity: self.capacity[i] as u64,
        });
    }

    fn mutual(&self) -> Option<(usize, usize)> {
        for i in 0..N {
            for (j, _) in &self.shares[i] {
                if self.shares[*j].iter().any(|(k, _)| *k == i) {
                    return Some((i, *j));
                }
            }
        }
        None
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_two_sites_spill_to_each_other(
        caps in prop::array::uniform3(500u32..3000),
        actions in prop::collection::vec(action(), 1..200),
    ) {
        let mut w = World::new(caps.map(f64::from));
        for (step, a) in actions.into_iter().enumerate() {
            let now = Time::from_secs(1_000_000 + 30 * step as u64);
            match a {
                Action::Demand(i, d) => w.demand[i] = f64::from(d),
                Action::Decide(i) => w.decide(i, now),
                Action::Expire(i) => w.reports[i] = None,
            }
            prop_assert!(w.mutual().is_none(), "mutual spill {:?} at step {}", w.mutual(), step);
        }
    }

    #[test]
    fn constant_inputs_give_constant_decisions(
        local in 0.0f64..3.0,
        local_cap in 100u64..5000,
        peers in prop::collection::vec((0.0f64..1.5, 0u64..5000, any::<bool>(), any::<bool>()), 0..4),
    ) {
        let views: Vec<PeerView> = peers
            .iter()
            .enumerate()
            .map(|(k, (load, cap, known, back))| PeerView {
                site: SiteId::new(format!("p{k}")),
                facts: known.then(|| PeerFacts {
                    load: *load,
                    capacity: *cap,
                    spilling_to_us: *back,
                    age: Duration::from_secs(5),
                    seq: 1,
                    other_spillers: 0,
                }),
            })
            .collect();
        let cfg = SpillConfig::default();
        let mut e = SpillEngine::new(cfg.clone());
        let lv = LocalView { load: local, capacity: local_cap };
        let ramp = (cfg.max_share / cfg.max_step).ceil() as u64 + 1;
        let mut prev: Option<geo_balancer::SpillDecision> = None;
        for k in 0..ramp + 3 {
            let d = e.decide(Time::from_secs(1_000_000 + 60 * k), lv, &views);
            prop_assert!(d.total_share >= 0.0 && d.total_share <= cfg.max_share + 1e-9);
            if let Some(p) = &prev {
                prop_assert!(d.events.is_empty(), "targets changed under constant input: {:?}", d.events);
                prop_assert_eq!(p.spilling_to(), d.spilling_to());
                prop_assert!((d.total_share - p.total_share).abs() <= cfg.max_step + 1e-9);
                if k > ramp {
                    prop_assert_eq!(&p.targets.iter().map(|t| t.share).collect::<Vec<_>>(),
                                    &d.targets.iter().map(|t| t.share).collect::<Vec<_>>());
                    prop_assert_eq!(&p.verdicts.iter().map(|v| v.rule.clone()).collect::<Vec<_>>(),
                                    &d.verdicts.iter().map(|v| v.rule.clone()).collect::<Vec<_>>());
                }
            }
            prev = Some(d);
        }
    }

    #[test]
    fn share_moves_by_bounded_steps(
        loads in prop::collection::vec((0.5f64..2.5, 0.0f64..0.9), 1..60),
    ) {
        let cfg = SpillConfig::default();
        let mut e = SpillEngine::new(cfg.clone());
        let mut prev = 0.0;
        for (k, (local, peer)) in loads.into_iter().enumerate() {
            let views = [PeerView {
                site: SiteId::new("p"),
                facts: Some(PeerFacts { load: peer, capacity: 100_000, spilling_to_us: false, age: Duration::ZERO, seq: 1, other_spillers: 0 }),
            }];
            let d = e.decide(Time::from_secs(1_000_000 + 60 * k as u64), LocalView { load: local, capacity: 1000 }, &views);
            prop_assert!(d.total_share >= 0.0 && d.total_share <= cfg.max_share + 1e-9);
            let stopped = d.events.iter().any(|e| matches!(e, geo_balancer::spill::SpillEvent::Stopped { .. }));
            if !stopped {
                prop_assert!((d.total_share - prev).abs() <= cfg.max_step + 1e-9, "{} -> {}", prev, d.total_share);
            }
            prev = d.total_share;
        }
    }
}

/// With reports in flight (1..=3 steps, per message), two sites can start spilling to
/// each other before either hears of the other; the overlap must end as soon as the
/// reports arrive: never longer than the largest delay plus one decision.
// Indices are site numbers across several arrays; iterators would hide that.
#[allow(clippy::needless_range_loop)]
mod delayed {
    use super::*;

    const MAX_DELAY: usize = 3;

    #[derive(Debug, Clone)]
    struct Msg {
        deliver_at: usize,
        from: usize,
        to: usize,
        seq: usize,
        report: Report,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn mutual_spill_ends_within_one_delivery(
            caps in prop::array::uniform3(500u32..3000),
            demands in prop::collection::vec(prop::array::uniform3(0u32..4000), 1..40),
            delays in prop::collection::vec(1usize..=MAX_DELAY, 64),
            steps_per_demand in 1usize..6,
        ) {
            let mut w = World::new(caps.map(f64::from));
            let mut in_flight: Vec<Msg> = Vec::new();
            let mut last_seq = [[0usize; N]; N];
            let mut overlap = [[0usize; N]; N];
            let mut step = 0usize;
            let mut k = 0usize;
            for d in demands {
                for i in 0..N {
                    w.demand[i] = f64::from(d[i]);
                }
                for _ in 0..steps_per_demand {
                    step += 1;
                    let now = Time::from_secs(1_000_000 + 5 * step as u64);
                    // Deliver what arrived (newest seq wins, as PeerTable's replay check does).
                    let (arrived, rest): (Vec<Msg>, Vec<Msg>) =
                        in_flight.drain(..).partition(|m| m.deliver_at <= step);
                    in_flight = rest;
                    for m in arrived {
                        if m.seq > last_seq[m.to][m.from] {
                            last_seq[m.to][m.from] = m.seq;
                            w.views[m.to][m.from] = Some(m.report);
                        }
                    }
                    for i in 0..N {
                        w.decide_with_views(i, now);
                        for j in 0..N {
                            if j != i {
                                let delay = delays[k % delays.len()];
                                k += 1;
                                in_flight.push(Msg {
                                    deliver_at: step + delay,
                                    from: i,
                                    to: j,
                                    seq: step,
                                    report: w.reports[i].clone().unwrap_or(Report {
                                        served: 0.0,
                                        spilling_to: vec![],
                                        capacity: 1,
                                    }),
                                });
                            }
                        }
                    }
                    for i in 0..N {
                        for j in 0..N {
                            let both = w.shares[i].iter().any(|(t, _)| *t == j)
                                && w.shares[j].iter().any(|(t, _)| *t == i);
                            overlap[i][j] = if both { overlap[i][j] + 1 } else { 0 };
                            prop_assert!(
                                overlap[i][j] <= MAX_DELAY + 1,
                                "sites {} and {} spilled to each other for {} steps",
                                i, j, overlap[i][j]
                            );
                        }
                    }
                }
            }
        }
    }
}

proptest! {
    /// A recorded timeline (JSON lines of DecisionInput) replays to the same decisions.
    #[test]
    fn recorded_timeline_replays_to_the_same_decisions(
        steps in prop::collection::vec(
            (prop_oneof![0.0f64..3.0, Just(f64::INFINITY)], 1u64..120,
             prop::collection::vec(prop::option::of((0.0f64..1.5, 0u64..5000, any::<bool>())), 2)),
            1..40),
    ) {
        use geo_balancer::spill::{DecisionInput, replay};
        let mut now = Time::from_secs(1_000_000);
        let mut engine = SpillEngine::new(SpillConfig::default());
        let mut recorded = String::new();
        let mut live = Vec::new();
        for (load, dt, peers) in steps {
            now = now.plus(Duration::from_secs(dt));
            let input = DecisionInput {
                now,
                local: LocalView { load, capacity: 1000 },
                peers: peers
                    .into_iter()
                    .enumerate()
                    .map(|(k, p)| PeerView {
                        site: SiteId::new(format!("p{k}")),
                        facts: p.map(|(load, capacity, back)| PeerFacts {
                            load,
                            capacity,
                            spilling_to_us: back,
                            age: Duration::from_millis(1500),
                            seq: 3,
                            other_spillers: 0,
                        }),
                    })
                    .collect(),
            };
            live.push(engine.decide(input.now, input.local, &input.peers));
            recorded.push_str(&serde_json::to_string(&input).unwrap_or_default());
            recorded.push('\n');
        }
        let inputs: Vec<DecisionInput> = recorded
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let replayed = replay(SpillConfig::default(), &inputs);
        prop_assert_eq!(replayed, live);
    }
}
