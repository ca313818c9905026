//! The fleet: sites on five continents, their time zones, capacities, places and outages.

use rand::Rng;
use rand::rngs::StdRng;

/// One site as the simulator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSpec {
    /// Name (`eu-03`).
    pub name: String,
    /// Hours ahead of UTC (the clients' local time, which drives demand).
    pub utc_offset_h: f64,
    /// Capacity in connections (one real server of that capacity).
    pub capacity: u32,
    /// Latitude and longitude in degrees: clients reach the nearest announcing site.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// Demand at the quietest hour, as a share of capacity.
    pub base: f64,
    /// Demand at the regional peak, as a share of capacity.
    pub peak: f64,
    /// Local hour of the peak.
    pub peak_hour: f64,
    /// Outages: `(start, end)` in seconds from the start of the run.
    pub outages: Vec<(u64, u64)>,
}

impl SiteSpec {
    /// Whether the site is down at second `sec`.
    pub fn down_at(&self, sec: u64) -> bool {
        self.outages.iter().any(|(a, b)| (*a..*b).contains(&sec))
    }
}

struct Continent {
    prefix: &'static str,
    weight: u32,
    lat: f64,
    lon: f64,
    utc: (f64, f64),
}

const CONTINENTS: [Continent; 5] = [
    Continent {
        prefix: "na",
        weight: 12,
        lat: 40.0,
        lon: -95.0,
        utc: (-8.0, -5.0),
    },
    Continent {
        prefix: "sa",
        weight: 6,
        lat: -15.0,
        lon: -55.0,
        utc: (-5.0, -3.0),
    },
    Continent {
        prefix: "eu",
        weight: 12,
        lat: 50.0,
        lon: 10.0,
        utc: (0.0, 2.0),
    },
    Continent {
        prefix: "as",
        weight: 14,
        lat: 25.0,
        lon: 105.0,
        utc: (5.5, 9.0),
    },
    Continent {
        prefix: "oc",
        weight: 6,
        lat: -30.0,
        lon: 140.0,
        utc: (8.0, 12.0),
    },
];

/// The three sites of `geo-balancer/examples/day_simulation.rs`, without outages.
pub fn three_site_day() -> Vec<SiteSpec> {
    let s = |name: &str, utc: f64, cap: u32, lat: f64, lon: f64, base: f64, peak: f64| SiteSpec {
        name: name.into(),
        utc_offset_h: utc,
        capacity: cap,
        lat,
        lon,
        base,
        peak,
        peak_hour: 20.0,
        outages: Vec::new(),
    };
    vec![
        s("asia", 8.0, 10_000, 25.0, 115.0, 0.30, 1.40),
        s("europe", 1.0, 8_000, 50.0, 10.0, 0.25, 1.02),
        s("america", -5.0, 12_000, 40.0, -80.0, 0.25, 0.95),
    ]
}

/// `n` sites spread over five continents in proportion to their weights, with unequal
/// capacities (2k to 20k connections, most small), regional peaks between 0.8 and 1.4
/// of capacity, and outages of 10 to 60 minutes (on average `outages_per_day` per site).
pub fn fleet(n: usize, run_s: u64, outages_per_day: f64, rng: &mut StdRng) -> Vec<SiteSpec> {
    let total: u32 = CONTINENTS.iter().map(|c| c.weight).sum();
    let mut sites = Vec::with_capacity(n);
    for i in 0..n {
        // Deal sites round the continents by weight (deterministic spread).
        let pos = (i as u64 * u64::from(total) / n.max(1) as u64) as u32;
        let mut acc = 0;
        let c = CONTINENTS
            .iter()
            .find(|c| {
                acc += c.weight;
                pos < acc
            })
            .unwrap_or(&CONTINENTS[0]);
        let utc = rng.random_range(c.utc.0..=c.utc.1);
        let cap_units: f64 = rng.random_range(0.0..1.0f64);
        let capacity = (2_000.0 + 18_000.0 * cap_units * cap_units).round() as u32;
        let mut outages = Vec::new();
        let p_out = outages_per_day * run_s as f64 / 86_400.0;
        let mut k = p_out;
        while k > 0.0 {
            if rng.random_range(0.0..1.0) < k.min(1.0) {
                let len = rng.random_range(600..=3_600u64);
                let start = rng.random_range(0..run_s.max(1));
                outages.push((start, start + len));
            }
            k -= 1.0;
        }
        sites.push(SiteSpec {
            name: format!("{}-{:02}", c.prefix, i),
            utc_offset_h: (utc * 2.0).round() / 2.0,
            capacity,
            lat: c.lat + rng.random_range(-12.0..12.0),
            lon: c.lon + rng.random_range(-20.0..20.0),
            base: rng.random_range(0.2..0.35),
            peak: rng.random_range(0.8..1.4),
            peak_hour: rng.random_range(19.0..22.0),
            outages,
        });
    }
    sites
}

/// Great-circle distance in kilometres.
pub fn distance_km(a: &SiteSpec, b: &SiteSpec) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.lat.to_radians(),
        a.lon.to_radians(),
        b.lat.to_radians(),
        b.lon.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6_371.0 * h.sqrt().min(1.0).asin()
}

/// For each site, every site ordered by distance from it (itself first): where its
/// clients land when the sites before in the list are down.
pub fn nearest_order(sites: &[SiteSpec]) -> Vec<Vec<usize>> {
    sites
        .iter()
        .map(|a| {
            let mut order: Vec<usize> = (0..sites.len()).collect();
            order.sort_by(|&x, &y| distance_km(a, &sites[x]).total_cmp(&distance_km(a, &sites[y])));
            order
        })
        .collect()
}
