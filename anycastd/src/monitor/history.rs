//! The last hour of loads and spill shares, without I/O: one sample per
//! [`SAMPLE_EVERY`] from the status snapshots, at most [`KEEP`] of them.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::status::Status;

/// One sample per this many seconds...
pub const SAMPLE_EVERY: u64 = 10;
/// ... for one hour.
pub const KEEP: usize = 360;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Unix time, seconds.
    pub t: u64,
    /// Local load (`null`: no healthy capacity).
    pub local: Option<f64>,
    /// Each peer's reported load.
    pub peers: BTreeMap<String, Option<f64>>,
    /// The share of new connections spilled to each peer, 0..=1.
    pub spill: BTreeMap<String, f64>,
}

impl Sample {
    pub fn of(st: &Status) -> Self {
        Sample {
            t: st.now,
            local: st.local_load,
            peers: st.peers.iter().map(|p| (p.name.clone(), p.load)).collect(),
            spill: st.spill.iter().map(|s| (s.peer.clone(), s.share)).collect(),
        }
    }
}

#[derive(Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Keeps `st` as a sample when the last one is [`SAMPLE_EVERY`] old; the sample
    /// when it was kept.
    pub fn offer(&mut self, st: &Status) -> Option<Sample> {
        if self
            .samples
            .back()
            .is_some_and(|s| st.now < s.t + SAMPLE_EVERY)
        {
            return None;
        }
        let s = Sample::of(st);
        self.samples.push_back(s.clone());
        while self.samples.len() > KEEP {
            self.samples.pop_front();
        }
        Some(s)
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{DataplaneStatus, SpillStatus};

    fn status(now: u64, load: f64) -> Status {
        Status {
            site: "idc1".into(),
            uptime_s: now,
            now,
            vips: vec![],
            sessions: vec![],
            real_servers: vec![],
            local_load: Some(load),
            peers: vec![],
            spill: vec![SpillStatus {
                peer: "idc2".into(),
                share: 0.2,
                since: None,
                reason: String::new(),
                families: vec![],
            }],
            dataplane: DataplaneStatus {
                ok: true,
                last_reconcile: None,
                last_changes: 0,
                last_error: None,
            },
            sync: None,
            directors: None,
        }
    }

    #[test]
    fn one_sample_per_ten_seconds_for_one_hour() {
        let mut h = History::default();
        let mut kept = 0;
        for t in 0..7200u64 {
            if h.offer(&status(t, 0.5)).is_some() {
                kept += 1;
            }
        }
        assert_eq!(kept, 720);
        let s = h.samples();
        assert_eq!(s.len(), KEEP);
        assert_eq!(s[0].t, 7200 - 3600);
        assert_eq!(s[KEEP - 1].spill["idc2"], 0.2);
    }
}
