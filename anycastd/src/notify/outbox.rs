//! The notifier's core, free of I/O: coalescing, the bounded queue of each sink, and
//! the retry schedule. Driven by [`Outbox::push`], [`Outbox::done`] and the deadline
//! [`Outbox::next_deadline`] asks for; [`Outbox::poll`] says what to deliver now.
//!
//! ```text
//!  push ─> held by subject for `coalesce` (more events of it: merged, counted)
//!            │ due
//!            v
//!  each sink: queue (at most `queue`; full: the oldest waiting is dropped, counted)
//!            │ one delivery at a time, in order
//!            v
//!  done(ok)  ─> next;  done(failed) ─> again after initial·2^(n-1), at most `retry_max`,
//!                                       until `attempts` tries: then given up, counted
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use geo_balancer::Time;
use serde::Serialize;

use super::{Event, Kind};

/// Kinds kept in a notice's history: a longer flap keeps its first ones and its count.
const HISTORY: usize = 16;

/// How the outbox coalesces, bounds and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Events of one subject within this long of its first are sent as one notice.
    pub coalesce: Duration,
    /// Notices each sink holds at most (and subjects held for coalescing at most).
    pub queue: usize,
    /// The first retry's wait; doubled at each further failure...
    pub retry_initial: Duration,
    /// ... up to this.
    pub retry_max: Duration,
    /// Tries of one notice on one sink before it is given up.
    pub attempts: u32,
}

/// What a sink receives: the subject's last event, and how it got there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub site: String,
    #[serde(flatten)]
    pub event: Event,
    /// Events of this subject merged into this notice (1: no flap).
    pub count: u32,
    /// The first merged event's time (ms since the Unix epoch).
    pub first_at_ms: u64,
    /// The kinds merged, oldest first (at most 16).
    pub history: Vec<Kind>,
}

/// One sink's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub delivered: u64,
    /// Failed tries that were tried again.
    pub retries: u64,
    /// Notices given up after `attempts` tries.
    pub failed: u64,
    /// Notices dropped from a full queue.
    pub dropped: u64,
    /// Notices waiting now (the one being delivered included).
    pub queued: usize,
}

/// Deliver `notice` to sink number `sink`, then call [`Outbox::done`].
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub sink: usize,
    pub notice: Arc<Notice>,
}

#[derive(Debug)]
struct Held {
    due: Time,
    notice: Notice,
}

#[derive(Debug, Default)]
struct Sink {
    queue: VecDeque<Arc<Notice>>,
    /// The front of `queue` is being delivered.
    busy: bool,
    /// Failed tries of the front.
    tries: u32,
    retry_at: Option<Time>,
    stats: SinkStats,
}

/// See the module doc.
#[derive(Debug)]
pub struct Outbox {
    site: String,
    policy: Policy,
    held: Vec<Held>,
    sinks: Vec<Sink>,
    /// Subjects released early because too many were held.
    pub overflowed: u64,
}

impl Outbox {
    /// An outbox for `sinks` sinks (numbered from 0) of site `site`.
    pub fn new(site: String, policy: Policy, sinks: usize) -> Outbox {
        Outbox {
            site,
            policy: Policy {
                queue: policy.queue.max(1),
                attempts: policy.attempts.max(1),
                ..policy
            },
            held: Vec::new(),
            sinks: (0..sinks).map(|_| Sink::default()).collect(),
            overflowed: 0,
        }
    }

    /// An event: merged into its subject's held notice, or held for `coalesce`.
    pub fn push(&mut self, now: Time, ev: Event) {
        if let Some(h) = self
            .held
            .iter_mut()
            .find(|h| h.notice.event.subject == ev.subject)
        {
            let n = &mut h.notice;
            n.count = n.count.saturating_add(1);
            if n.history.len() < HISTORY {
                n.history.push(ev.kind);
            }
            n.event = ev;
            return;
        }
        if self.held.len() >= self.policy.queue {
            // Too many subjects at once: the oldest goes out now, uncoalesced further.
            let oldest = self.held.remove(0);
            self.overflowed += 1;
            self.enqueue(Arc::new(oldest.notice));
        }
        self.held.push(Held {
            due: now.plus(self.policy.coalesce),
            notice: Notice {
                site: self.site.clone(),
                count: 1,
                first_at_ms: ev.at_ms,
                history: vec![ev.kind],
                event: ev,
            },
        });
    }

    /// Releases the held notices that are due, and returns the deliveries to start.
    pub fn poll(&mut self, now: Time) -> Vec<Delivery> {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].due <= now {
                let h = self.held.remove(i);
                self.enqueue(Arc::new(h.notice));
            } else {
                i += 1;
            }
        }
        let mut out = Vec::new();
        for (n, s) in self.sinks.iter_mut().enumerate() {
            if s.busy || s.retry_at.is_some_and(|t| now < t) {
                continue;
            }
            if let Some(front) = s.queue.front() {
                s.busy = true;
                s.retry_at = None;
                out.push(Delivery {
                    sink: n,
                    notice: front.clone(),
                });
            }
        }
        out
    }

    /// Releases every held notice now (the daemon is stopping).
    pub fn flush(&mut self) {
        for h in std::mem::take(&mut self.held) {
            self.enqueue(Arc::new(h.notice));
        }
    }

    fn enqueue(&mut self, notice: Arc<Notice>) {
        let cap = self.policy.queue;
        for s in &mut self.sinks {
            if s.queue.len() >= cap {
                // The oldest that is not being delivered; with none, the newcomer.
                let skip = usize::from(s.busy);
                s.stats.dropped += 1;
                if s.queue.len() > skip {
                    s.queue.remove(skip);
                    if skip == 0 {
                        s.tries = 0;
                        s.retry_at = None;
                    }
                } else {
                    continue;
                }
            }
            s.queue.push_back(notice.clone());
        }
    }

    /// The delivery on `sink` ended: delivered (`ok`) or failed.
    pub fn done(&mut self, now: Time, sink: usize, ok: bool) {
        let Some(s) = self.sinks.get_mut(sink) else {
            return;
        };
        s.busy = false;
        if ok {
            s.queue.pop_front();
            s.stats.delivered += 1;
            s.tries = 0;
            return;
        }
        s.tries += 1;
        if s.tries >= self.policy.attempts {
            s.queue.pop_front();
            s.stats.failed += 1;
            s.tries = 0;
            return;
        }
        s.stats.retries += 1;
        s.retry_at = Some(now.plus(backoff(&self.policy, s.tries)));
    }

    /// When [`Outbox::poll`] must run next for something held or a retry.
    pub fn next_deadline(&self) -> Option<Time> {
        let held = self.held.iter().map(|h| h.due);
        let retries = self
            .sinks
            .iter()
            .filter(|s| !s.busy && !s.queue.is_empty())
            .filter_map(|s| s.retry_at);
        held.chain(retries).min()
    }

    /// Nothing held, queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.held.is_empty() && self.sinks.iter().all(|s| s.queue.is_empty())
    }

    /// Each sink's counts.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.sinks
            .iter()
            .map(|s| SinkStats {
                queued: s.queue.len(),
                ..s.stats
            })
            .collect()
    }
}

/// The wait after the `tries`-th failure: initial·2^(tries-1), at most `retry_max`.
pub fn backoff(p: &Policy, tries: u32) -> Duration {
    let factor = 1u32 << tries.saturating_sub(1).min(20);
    p.retry_initial.saturating_mul(factor).min(p.retry_max)
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
