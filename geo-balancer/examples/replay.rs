//! Replays a recorded spill timeline: one `DecisionInput` JSON object per line.
//!
//! `cargo run -p geo-balancer --example replay -- timeline.jsonl`
//!
//! Prints each decision as the CLI would. With no file, prints a two-line sample timeline
//! to show the format.

use std::time::Duration;

use geo_balancer::spill::{DecisionInput, replay};
use geo_balancer::{LocalView, PeerFacts, PeerView, SiteId, SpillConfig, Time};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        let sample = |now: u64, local: f64, peer: f64| DecisionInput {
            now: Time::from_secs(now),
            local: LocalView {
                load: local,
                capacity: 2000,
            },
            peers: vec![PeerView {
                site: SiteId::new("site-b"),
                facts: Some(PeerFacts {
                    load: peer,
                    capacity: 3000,
                    spilling_to_us: false,
                    age: Duration::from_secs(41),
                    seq: 41,
                    other_spillers: 0,
                }),
            }],
        };
        for i in [
            sample(1_764_079_080, 1.14, 0.62),
            sample(1_764_079_140, 1.16, 0.64),
        ] {
            println!("{}", serde_json::to_string(&i).unwrap_or_default());
        }
        return;
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let mut inputs = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<DecisionInput>(line) {
            Ok(i) => inputs.push(i),
            Err(e) => {
                eprintln!("{path}:{}: {e}", n + 1);
                std::process::exit(1);
            }
        }
    }
    for d in replay(SpillConfig::default(), &inputs) {
        println!("{} {d}", d.at);
    }
}
