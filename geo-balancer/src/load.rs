//! Site load from IPVS stats: active connections over healthy capacity.
//!
//! Two figures, both over the same denominator (the configured capacity, in connections,
//! summed over the real servers that are up):
//!
//! - **served** = connections on the local real servers. This is what the site reports
//!   to its peers: how full it is. A peer compares it with `remote_max` (0.7).
//! - **director** = served + connections the director sent to peers through tunnels.
//!   This is the site's own demand, and what the spill rule compares with `start_local`
//!   (1.1) and `stop_local` (1.0). Spilling moves connections from the first term to the
//!   second, so it does not lower this figure, and the rule does not stop spilling merely
//!   because spilling worked.
//!
//! A real server may have a second load source (a URL returning a number, 1.0 = full);
//! when it has a fresh value, the server counts as `value * capacity` connections.
//! See docs/load.md for the worked example.

use std::time::Duration;

use serde::Serialize;

use crate::errors::LoadSourceError;
use crate::ids::{ServerId, SiteId};

/// One real server's numbers for one VIP, from IPVS stats and health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerSample {
    /// The server.
    pub server: ServerId,
    /// Health state is up (down and disabled servers add no capacity and no load).
    pub up: bool,
    /// Configured capacity in connections.
    pub capacity: u32,
    /// IPVS `ActiveConn`, summed over the VIP's services (including the fwmark service
    /// for tunnelled-in connections).
    pub active_conns: u64,
    /// IPVS `InActConn` (kept for display; not load: mostly TIME_WAIT).
    pub inactive_conns: u64,
    /// The second load source's last fresh value (1.0 = full), if configured and fresh.
    pub external: Option<f64>,
}

/// One peer tunnel destination's numbers in the VIP's service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunnelSample {
    /// The peer site.
    pub peer: SiteId,
    /// IPVS `ActiveConn` of its tunnel destination: connections spilled there.
    pub active_conns: u64,
}

/// The site's load figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SiteLoad {
    /// Connections served locally over healthy capacity (`f64::INFINITY`: cannot serve).
    pub served: f64,
    /// Served plus spilled, over healthy capacity (`f64::INFINITY`: cannot serve).
    pub director: f64,
    /// Sum of capacity of the up servers.
    pub healthy_capacity: u64,
    /// Connections (or connection equivalents) on up local servers.
    pub active_local: u64,
    /// Connections on peer tunnel destinations.
    pub active_spilled: u64,
    /// Number of up servers.
    pub up_servers: usize,
}

impl SiteLoad {
    /// Whether there is healthy capacity at all.
    pub fn can_serve(&self) -> bool {
        self.healthy_capacity > 0
    }
}

/// Computes the site's load from per-server and per-tunnel samples.
pub fn site_load(servers: &[ServerSample], tunnels: &[TunnelSample]) -> SiteLoad {
    let up: Vec<&ServerSample> = servers.iter().filter(|s| s.up).collect();
    let capacity: u64 = up.iter().map(|s| u64::from(s.capacity)).sum();
    let local: f64 = up
        .iter()
        .map(|s| match s.external {
            Some(x) if x.is_finite() && x >= 0.0 => x * f64::from(s.capacity),
            _ => s.active_conns as f64,
        })
        .sum();
    let spilled: u64 = tunnels.iter().map(|t| t.active_conns).sum();
    let (served, director) = if capacity == 0 {
        (f64::INFINITY, f64::INFINITY)
    } else {
        let c = capacity as f64;
        (local / c, (local + spilled as f64) / c)
    };
    SiteLoad {
        served,
        director,
        healthy_capacity: capacity,
        active_local: local.round() as u64,
        active_spilled: spilled,
        up_servers: up.len(),
    }
}

/// Largest body accepted from a load URL: a number, maybe with whitespace.
pub const MAX_LOAD_BODY: usize = 64;

/// Parses a load URL's body: one finite, non-negative number (`0.42`, `1`, ` 0.9\n`).
pub fn parse_load_body(body: &[u8]) -> Result<f64, LoadSourceError> {
    if body.len() > MAX_LOAD_BODY {
        return Err(LoadSourceError::TooLarge(body.len()));
    }
    let text = String::from_utf8_lossy(body);
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(LoadSourceError::NotANumber(t.chars().take(32).collect())),
    }
}

/// Fetches a real server's second load source once (driver side).
pub async fn fetch_external_load(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<f64, LoadSourceError> {
    let fail = |reason: String| LoadSourceError::Fetch {
        url: url.to_string(),
        reason,
    };
    let mut resp = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("status {}", resp.status().as_u16())));
    }
    // Read at most one chunk past the limit, whatever Content-Length claims.
    let mut body = Vec::new();
    while body.len() <= MAX_LOAD_BODY {
        match resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            Some(c) => body.extend_from_slice(&c),
            None => break,
        }
    }
    parse_load_body(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, up: bool, cap: u32, active: u64) -> ServerSample {
        ServerSample {
            server: ServerId::new(name),
            up,
            capacity: cap,
            active_conns: active,
            inactive_conns: 0,
            external: None,
        }
    }

    #[test]
    fn docs_worked_example() {
        // docs/load.md: two servers of 1000, one of 500 down; 1900 + 380 spilled.
        let servers = [
            s("rs1", true, 1000, 1000),
            s("rs2", true, 1000, 900),
            s("rs3", false, 500, 40),
        ];
        let tunnels = [TunnelSample {
            peer: SiteId::new("site-b"),
            active_conns: 380,
        }];
        let l = site_load(&servers, &tunnels);
        assert_eq!(l.healthy_capacity, 2000);
        assert!((l.served - 0.95).abs() < 1e-9);
        assert!((l.director - 1.14).abs() < 1e-9);
    }

    #[test]
    fn no_healthy_capacity_is_infinite() {
        let l = site_load(&[s("rs1", false, 1000, 0)], &[]);
        assert!(l.served.is_infinite() && l.director.is_infinite());
        assert!(!l.can_serve());
    }

    #[test]
    fn external_source_replaces_connections() {
        let mut a = s("rs1", true, 1000, 10);
        a.external = Some(0.8);
        let l = site_load(&[a, s("rs2", true, 1000, 200)], &[]);
        assert!((l.served - 0.5).abs() < 1e-9);
    }

    #[test]
    fn load_body_parsing() {
        assert_eq!(parse_load_body(b" 0.42\n"), Ok(0.42));
        assert_eq!(parse_load_body(b"1"), Ok(1.0));
        assert!(matches!(
            parse_load_body(b"-1"),
            Err(LoadSourceError::NotANumber(_))
        ));
        assert!(matches!(
            parse_load_body(b"NaN"),
            Err(LoadSourceError::NotANumber(_))
        ));
        assert!(matches!(
            parse_load_body(b"inf"),
            Err(LoadSourceError::NotANumber(_))
        ));
        assert!(matches!(
            parse_load_body(&[0xff, 0xfe]),
            Err(LoadSourceError::NotANumber(_))
        ));
        assert!(matches!(
            parse_load_body(&[b'1'; 100]),
            Err(LoadSourceError::TooLarge(100))
        ));
    }
}
