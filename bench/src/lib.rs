//! Benchmarks that run our side and the other side in the same run and print ratios.
//! See docs/performance.md. Run them all with `scripts/bench.sh`.
//!
//! Owns nothing the product uses. Every namespace, daemon and rule it makes is its
//! own (names carry the PID) and goes when the benchmark ends; every loop is bounded.
//!
//! ```text
//!   anycast-bench withdraw  -> withdraw::Lab  (namespaces, FRR, real servers, speaker)
//!                                 └─ watch::Watcher (capture + rtnetlink in FRR's ns)
//!   anycast-bench ingest    -> ingest::run    (generator -> receiver under test)
//!   anycast-bench crash     -> crash::run     (anycastd SIGKILL / link cut)
//!   anycast-bench footprint -> footprint::run (anycastd RSS / CPU over time)
//!   anycast-bench checks    -> checks::run    (N real servers: checker and servers' CPU,
//!                                              connections, TIME_WAIT; issue 21)
//! ```

pub mod checks;
pub mod ingest;
pub mod listener;
pub mod stats;
pub mod watch;
pub mod withdraw;
