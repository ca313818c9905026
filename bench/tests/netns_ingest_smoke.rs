//! Smoke test of benchmark 3's machinery (not a timing test): the generator sends a
//! small table to our speaker's receiver and to BIRD, and both count all of it
//! without dropping the session. Runs in a few seconds.

use std::sync::Arc;
use std::time::Duration;

use anycast_bench::ingest::{self, Receiver};
use anycast_lab::{Need, require};

#[test]
fn netns_ingest_smoke_ours_and_bird_count_a_small_table() {
    if !require(
        "netns_ingest_smoke_ours_and_bird_count_a_small_table",
        &[Need::Netns, Need::Program("bird"), Need::Program("birdc")],
    ) {
        return;
    }
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_anycast-bench"));
    let blob = Arc::new(ingest::updates(5_000));
    for r in [Receiver::Ours, Receiver::Bird] {
        let res = ingest::run(r, 5_000, 3, Duration::from_secs(20), &exe, blob.clone())
            .unwrap_or_else(|e| panic!("{r}: {e}"));
        assert!(
            res.all_counted.is_some(),
            "{r}: counted only {} of 5000",
            res.counted
        );
        assert!(!res.dropped, "{r}: the session dropped");
    }
}
