//! Helpers shared by the exchange tests.

use geo_balancer::SiteId;
use geo_balancer::exchange::LoadReport;

/// A valid report from site-a to site-b with `load` on 2000 connections of capacity.
pub fn report(seq: u64, timestamp: u64, load: f64) -> LoadReport {
    LoadReport {
        version: 1,
        sender: SiteId::new("site-a"),
        receiver: SiteId::new("site-b"),
        seq,
        timestamp,
        load: Some(load),
        director_load: Some(load),
        capacity: 2000,
        active: (load * 2000.0) as u64,
        spilling_to: vec![],
        spill_share: 0.0,
        director: None,
        config_digest: None,
        vips_down: Vec::new(),
    }
}
