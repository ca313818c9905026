//! Several directors per site (decision 0015): how their figures add up to one site.
//!
//! Every director reports its own figures (served and director load over its healthy
//! capacity, its active connections). The directors of a site schedule onto the same
//! real servers (one site config), so a site's figures are:
//!
//! - capacity: the largest healthy capacity any fresh director sees (the servers are
//!   shared: two directors that each see 1000 connections of capacity are still 1000);
//! - connections: the sum of each director's (each counts the connections it carries);
//! - load: summed connections over that capacity; no capacity at all: cannot serve.
//!
//! The same sum serves both sides: a director adds its siblings' fresh reports to its
//! own figures ([`site_load`]), and a peer site adds up the reports of a site's
//! directors into one entry ([`combine`]). A stale director counts as down.
//!
//! ```text
//!  lb1 (own SiteLoad) ─┐
//!  lb1b report (fresh, same digest) ─┼─> site_load ─> the spill rule, as on lb1b
//!  lb1c report (stale / other digest) ✗
//! ```

use std::time::Duration;

use serde::Serialize;

use crate::exchange::report::LoadReport;
use crate::ids::SiteId;
use crate::load::SiteLoad;

/// Most directors kept per site.
pub const MAX_DIRECTORS: usize = 16;

/// One director of a site as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectorStatus {
    /// Its name (`""`: a sender that names none).
    pub name: String,
    /// A valid report within `stale_after`.
    pub fresh: bool,
    /// Age of its last report.
    pub age: Option<Duration>,
    /// Its own served load (`None`: no healthy capacity, or never heard).
    pub load: Option<f64>,
    /// Its own director load (served plus spilled out).
    pub director_load: Option<f64>,
    /// Its own healthy capacity.
    pub capacity: u64,
    /// Its own active connections.
    pub active: u64,
    /// The config digest it reported.
    pub config_digest: Option<String>,
    /// Siblings only: whether its digest equals ours (`None`: never heard). A sibling
    /// whose digest differs is left out of the site load.
    pub digest_match: Option<bool>,
}

impl DirectorStatus {
    /// A director's status from its last report.
    pub fn of(name: &str, last: Option<&LoadReport>, age: Option<Duration>, fresh: bool) -> Self {
        DirectorStatus {
            name: name.to_string(),
            fresh,
            age,
            load: last.and_then(|r| r.load),
            director_load: last.and_then(|r| r.director_load),
            capacity: last.map_or(0, |r| r.capacity),
            active: last.map_or(0, |r| r.active),
            config_digest: last.and_then(|r| r.config_digest.clone()),
            digest_match: None,
        }
    }
}

/// One director's contribution: connection equivalents (`load * capacity`, so a second
/// load source counts as the director counted it) and capacity.
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    served: f64,
    director: f64,
    capacity: u64,
    active: u64,
}

impl Sum {
    fn add(&mut self, load: Option<f64>, director: Option<f64>, capacity: u64, active: u64) {
        let c = capacity as f64;
        // A director without capacity carries nothing locally (its load is null).
        self.served += load.filter(|l| l.is_finite()).map_or(0.0, |l| l * c);
        self.director += director.filter(|l| l.is_finite()).map_or(0.0, |l| l * c);
        self.capacity = self.capacity.max(capacity);
        self.active = self.active.saturating_add(active);
    }

    fn report(&mut self, r: &LoadReport) {
        self.add(r.load, r.director_load, r.capacity, r.active);
    }

    fn loads(&self) -> (f64, f64) {
        if self.capacity == 0 {
            return (f64::INFINITY, f64::INFINITY);
        }
        let c = self.capacity as f64;
        (self.served / c, self.director / c)
    }
}

/// This director's figures plus its fresh siblings' (only those whose config digest
/// matches ours: the caller filters): the site's load, the same on every director that
/// hears the same reports.
pub fn site_load(own: &SiteLoad, siblings: &[&LoadReport]) -> SiteLoad {
    if siblings.is_empty() {
        return *own;
    }
    let mut sum = Sum::default();
    let finite = |x: f64| x.is_finite().then_some(x);
    sum.add(
        finite(own.served),
        finite(own.director),
        own.healthy_capacity,
        own.active_local,
    );
    let mut spilled = own.active_spilled;
    for r in siblings {
        sum.report(r);
        let c = r.capacity as f64;
        let out = match (r.director_load, r.load) {
            (Some(d), Some(l)) => ((d - l) * c).max(0.0).round() as u64,
            _ => 0,
        };
        spilled = spilled.saturating_add(out);
    }
    let (served, director) = sum.loads();
    SiteLoad {
        served,
        director,
        healthy_capacity: sum.capacity,
        active_local: sum.active,
        active_spilled: spilled,
        up_servers: own.up_servers,
    }
}

/// The reports of one peer site's fresh directors as one report: summed figures (see
/// the module doc), the union of the sites they spill to and the largest share, the
/// VIPs every one of them reports down (one director that can serve a VIP is enough:
/// they share the real servers), and the newest report's sender, seq and time. `None`
/// for no report.
pub fn combine(reports: &[&LoadReport]) -> Option<LoadReport> {
    let newest = reports.iter().max_by_key(|r| (r.timestamp, r.seq))?;
    if reports.len() == 1 {
        return Some((*newest).clone());
    }
    let mut sum = Sum::default();
    let mut spilling_to: Vec<SiteId> = Vec::new();
    let mut share: f64 = 0.0;
    for r in reports {
        sum.report(r);
        spilling_to.extend(r.spilling_to.iter().cloned());
        share = share.max(r.spill_share);
    }
    spilling_to.sort();
    spilling_to.dedup();
    let vips_down: Vec<String> = newest
        .vips_down
        .iter()
        .filter(|v| reports.iter().all(|r| r.vips_down.contains(v)))
        .cloned()
        .collect();
    let (served, director) = sum.loads();
    Some(LoadReport {
        load: served.is_finite().then_some(served),
        director_load: director.is_finite().then_some(director),
        capacity: sum.capacity,
        active: sum.active,
        spilling_to,
        spill_share: share,
        director: None,
        config_digest: None,
        vips_down,
        ..(*newest).clone()
    })
}
