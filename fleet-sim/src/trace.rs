//! What a run leaves behind for the plots: each region's load over the day, the spill
//! flows between regions, and every herding episode.

use geo_balancer::SiteLoad;

use crate::topology::SiteSpec;

/// Seconds per point of the load series.
pub const BUCKET_S: u64 = 300;

/// A site pushed above 1.0 by connections spilled to it.
#[derive(Debug, Clone, PartialEq)]
pub struct HerdEvent {
    /// The site.
    pub site: String,
    /// First herded second (from 00:00 UTC).
    pub start_s: u64,
    /// Second after the last herded one.
    pub end_s: u64,
    /// Highest served load during it.
    pub peak: f64,
}

impl HerdEvent {
    /// How long it lasted.
    pub fn len_s(&self) -> u64 {
        self.end_s - self.start_s
    }
}

/// The series of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Region names (the part of a site name before `-`), in order of first appearance.
    pub regions: Vec<String>,
    /// `max_load[r][b]`: highest served load of a site of region `r` in bucket `b`.
    pub max_load: Vec<Vec<f64>>,
    /// `mean_load[r][b]`: region `r`'s connections over its capacity, averaged over
    /// bucket `b` (sites that are down count with no capacity).
    pub mean_load: Vec<Vec<f64>>,
    /// `flows[a][b]`: connection-seconds reaching a director in region `a` and served
    /// in region `b` through a tunnel.
    pub flows: Vec<Vec<f64>>,
    /// Herding episodes, in order of their end.
    pub herds: Vec<HerdEvent>,
}

/// Collects a [`Trace`] second by second.
#[derive(Debug)]
pub struct Recorder {
    region_of: Vec<usize>,
    open: Vec<Option<HerdEvent>>,
    sum_load: Vec<f64>,
    trace: Trace,
}

/// The region of a site name.
pub fn region(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

impl Recorder {
    /// For these sites.
    pub fn new(specs: &[SiteSpec]) -> Recorder {
        let mut regions: Vec<String> = Vec::new();
        let region_of = specs
            .iter()
            .map(|s| {
                let r = region(&s.name);
                regions.iter().position(|x| x == r).unwrap_or_else(|| {
                    regions.push(r.to_string());
                    regions.len() - 1
                })
            })
            .collect();
        let k = regions.len();
        Recorder {
            region_of,
            open: vec![None; specs.len()],
            sum_load: vec![0.0; k],
            trace: Trace {
                regions,
                max_load: vec![Vec::new(); k],
                mean_load: vec![Vec::new(); k],
                flows: vec![vec![0.0; k]; k],
                herds: Vec::new(),
            },
        }
    }

    /// One second: `tot[d * n + s]` connections reached director `d` and are served at
    /// `s`; `herded[j]` whether site `j` is above 1.0 because of spilled connections.
    pub fn second(
        &mut self,
        sec: u64,
        specs: &[SiteSpec],
        tot: &[f64],
        loads: &[Option<SiteLoad>],
        herded: &[bool],
    ) {
        let n = specs.len();
        let k = self.trace.regions.len();
        let b = (sec / BUCKET_S) as usize;
        for v in self.trace.max_load.iter_mut().filter(|v| v.len() <= b) {
            v.push(0.0);
        }
        let mut conns = vec![0.0; k];
        let mut cap = vec![0.0; k];
        for j in 0..n {
            let r = self.region_of[j];
            if let Some(l) = loads[j] {
                let m = &mut self.trace.max_load[r][b];
                *m = m.max(l.served);
                cap[r] += f64::from(specs[j].capacity);
            }
            for d in 0..n {
                let c = tot[d * n + j];
                conns[r] += c;
                if d != j {
                    self.trace.flows[self.region_of[d]][r] += c;
                }
            }
            self.herd(j, sec, &specs[j].name, loads[j], herded[j]);
        }
        for r in 0..k {
            self.sum_load[r] += if cap[r] > 0.0 { conns[r] / cap[r] } else { 0.0 };
        }
        if (sec + 1).is_multiple_of(BUCKET_S) {
            let means = self.sum_load.iter().map(|s| s / BUCKET_S as f64);
            for (v, m) in self.trace.mean_load.iter_mut().zip(means) {
                v.push(m);
            }
            self.sum_load.iter_mut().for_each(|s| *s = 0.0);
        }
    }

    fn herd(&mut self, j: usize, sec: u64, name: &str, load: Option<SiteLoad>, herded: bool) {
        match (&mut self.open[j], herded) {
            (Some(e), true) => e.peak = e.peak.max(load.map_or(0.0, |l| l.served)),
            (None, true) => {
                self.open[j] = Some(HerdEvent {
                    site: name.to_string(),
                    start_s: sec,
                    end_s: sec,
                    peak: load.map_or(0.0, |l| l.served),
                })
            }
            (Some(_), false) => {
                if let Some(mut e) = self.open[j].take() {
                    e.end_s = sec;
                    self.trace.herds.push(e);
                }
            }
            (None, false) => {}
        }
    }

    /// The trace, with episodes still open closed at `end_s`.
    pub fn finish(mut self, end_s: u64) -> Trace {
        for e in self.open.iter_mut().filter_map(Option::take) {
            self.trace.herds.push(HerdEvent { end_s, ..e });
        }
        self.trace
    }
}
