//! Benchmarks that run our side and the other side in the same run and print ratios.
//! See docs/performance.md. Run them all with `scripts/bench.sh`.
