//! The decision and apply latencies, measured by the driver around the core: the
//! histograms live across scrapes (the rest of the exposition is rebuilt from a status
//! snapshot at each scrape).
//!
//! - health verdict -> withdraw handed to the BGP speaker: from the verdict's arrival at
//!   the driver to the speaker's `withdraw` returning, per VIP;
//! - load report -> weights applied: from an accepted report whose settle sent the data
//!   plane new weights to the worker's answer for them;
//! - data-plane request duration, per kind (`reconcile`, `apply`), as the worker timed it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::labels::{KindL, VipL};

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

/// 100 µs to about 26 s, doubling.
fn buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Requests in flight to the data-plane worker at most (a stuck worker must not grow
/// this without bound).
const MAX_IN_FLIGHT: usize = 1024;

/// See the module doc. Cheap to clone: clones share the histograms.
#[derive(Debug, Clone)]
pub struct Latency {
    withdraw: Hist<VipL>,
    report_apply: Histogram,
    dataplane: Hist<KindL>,
    verdict_at: Option<Instant>,
    report_at: Option<Instant>,
    /// Per request sent to the worker, in order: the report it carries out, if one.
    in_flight: VecDeque<Option<Instant>>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            withdraw: Family::new_with_constructor(buckets),
            report_apply: buckets(),
            dataplane: Family::new_with_constructor(buckets),
            verdict_at: None,
            report_at: None,
            in_flight: VecDeque::new(),
        }
    }
}

impl Latency {
    /// A health verdict arrived; its urgent effects follow.
    pub fn verdict(&mut self) {
        self.verdict_at = Some(Instant::now());
    }

    /// The verdict's effects are written.
    pub fn verdict_done(&mut self) {
        self.verdict_at = None;
    }

    /// A withdraw was handed to the speaker: timed if a verdict caused it.
    pub fn withdrawn(&self, vip: &str) {
        if let Some(t) = self.verdict_at {
            self.withdraw
                .get_or_create(&VipL { vip: vip.into() })
                .observe(t.elapsed().as_secs_f64());
        }
    }

    /// A load report was accepted; the settle that follows may send weights.
    pub fn report_accepted(&mut self) {
        self.report_at = Some(Instant::now());
    }

    /// The settle after an input is carried out: a report that changed no weights is
    /// not timed.
    pub fn settled(&mut self) {
        self.report_at = None;
    }

    /// A reconcile or apply was sent to the worker.
    pub fn to_worker(&mut self) {
        if self.in_flight.len() < MAX_IN_FLIGHT {
            self.in_flight.push_back(self.report_at.take());
        }
    }

    /// The worker answered a reconcile (`reconcile`) or an apply (`apply`) that took
    /// `took`.
    pub fn answered(&mut self, kind: &'static str, took: Duration) {
        self.dataplane
            .get_or_create(&KindL { kind: kind.into() })
            .observe(took.as_secs_f64());
        if let Some(Some(t)) = self.in_flight.pop_front() {
            self.report_apply.observe(t.elapsed().as_secs_f64());
        }
    }

    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "anycast_withdraw_latency_seconds",
            "From a health verdict reaching the driver to the withdraw it caused handed to the BGP speaker",
            self.withdraw.clone(),
        );
        r.register(
            "anycast_report_apply_latency_seconds",
            "From an accepted load report to the new weights it caused applied in the kernel",
            self.report_apply.clone(),
        );
        r.register(
            "anycast_dataplane_duration_seconds",
            "Data-plane requests as the worker timed them, by kind (reconcile, apply)",
            self.dataplane.clone(),
        );
    }
}
