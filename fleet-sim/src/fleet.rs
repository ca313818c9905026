//! The run: every site's geo-balancer, fed one virtual second at a time.

use geo_balancer::all_down::{self, AllDown};
use geo_balancer::exchange::client::sign_report;
use geo_balancer::exchange::{ExchangeConfig, LocalState, PeerTable, ReportScheduler};
use geo_balancer::load::{ServerSample, TunnelSample};
use geo_balancer::spill::SpillEvent;
use geo_balancer::weights::{self, LocalServer};
use geo_balancer::{
    LocalView, ServerId, SiteId, SiteLoad, SpillConfig, SpillEngine, Time, site_load,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::SimError;
use crate::demand::{self, Burst, LIFETIME_PHASES};
use crate::measures::Measures;
use crate::network::Network;
use crate::topology::{self, SiteSpec};
use crate::trace::{Recorder, Trace};

/// 00:00 UTC on the simulated day.
const T0_S: u64 = 1_764_028_800;
/// Decisions every this many seconds, and on every report that changed a peer's view.
const DECIDE_EVERY_S: u64 = 5;
/// One key for every pair (the simulation does not test key handling).
const KEY: &[u8] = b"fleet-simulation-key-0123456789a";

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Number of sites (ignored with `three_site_day`).
    pub sites: usize,
    /// Seed for the fleet, demand, network and outages.
    pub seed: u64,
    /// Share of reports the network loses (0..=1).
    pub loss: f64,
    /// Simulated hours from 00:00 UTC.
    pub hours: u64,
    /// Run the spill rule (false: sites never spill).
    pub spill: bool,
    /// Bursts per site per day, on average.
    pub bursts_per_day: f64,
    /// Outages per site per day, on average.
    pub outages_per_day: f64,
    /// Reports stamped further than this from the receiver's clock are refused
    /// (`ExchangeConfig::max_clock_skew`; its default is 30 s).
    pub max_clock_skew_s: u64,
    /// The three sites of `day_simulation.rs` instead of a generated fleet (no bursts,
    /// no outages).
    pub three_site_day: bool,
    /// A shared dependency down everywhere: every site's checks fail from this second
    /// for this many seconds (sites keep running and reporting load `null`).
    pub all_down_event: Option<(u64, u64)>,
    /// What each site does then (`[site] all_down`).
    pub all_down: AllDown,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sites: 50,
            seed: 1,
            loss: 0.1,
            hours: 24,
            spill: true,
            bursts_per_day: 1.0,
            outages_per_day: 0.2,
            max_clock_skew_s: 30,
            three_site_day: false,
            all_down_event: None,
            all_down: AllDown::default(),
        }
    }
}

/// One site's geo-balancer state.
struct Node {
    engine: SpillEngine,
    sched: ReportScheduler,
    table: PeerTable,
    /// Share of new connections each peer tunnel gets, from the weight plan.
    fractions: Vec<(usize, f64)>,
    /// The share last decided (as the report carries it).
    shares: Vec<(SiteId, f64)>,
    /// Tunnelled-in connections that the fwmark service would send to a non-local
    /// destination (share of its weight).
    tunnel_in_away: f64,
}

fn node(i: usize, ids: &[SiteId], seed: u64, skew_s: u64) -> Result<Node, SimError> {
    let mut cfg = ExchangeConfig::new(ids[i].clone());
    cfg.max_clock_skew = std::time::Duration::from_secs(skew_s);
    let peers: Vec<SiteId> = ids.iter().filter(|p| **p != ids[i]).cloned().collect();
    let table = PeerTable::new(
        cfg.clone(),
        peers.iter().map(|p| (p.clone(), KEY.to_vec())).collect(),
    )
    .map_err(|source| SimError::Config {
        site: ids[i].to_string(),
        source,
    })?;
    Ok(Node {
        engine: SpillEngine::new(SpillConfig::default()),
        sched: ReportScheduler::new(
            cfg,
            SpillConfig::default(),
            peers,
            seed ^ ((i as u64 + 1) * 0x9e37_79b9),
        ),
        table,
        fractions: Vec::new(),
        shares: Vec::new(),
        tunnel_in_away: 0.0,
    })
}

fn server_id(ids: &[SiteId], i: usize) -> ServerId {
    ServerId::new(format!("{}-rs", ids[i]))
}

/// Runs one simulated day (or `hours`) and returns its measures.
pub fn run(cfg: &Config) -> Result<Measures, SimError> {
    run_traced(cfg).map(|(m, _)| m)
}

/// Runs one simulated day (or `hours`) and returns its measures and the series the
/// plots are drawn from.
pub fn run_traced(cfg: &Config) -> Result<(Measures, Trace), SimError> {
    if !(0.0..=1.0).contains(&cfg.loss) {
        return Err(SimError::Param(format!("loss {} not in 0..=1", cfg.loss)));
    }
    if !cfg.three_site_day && cfg.sites < 2 {
        return Err(SimError::Param(format!(
            "{} sites: at least 2 needed",
            cfg.sites
        )));
    }
    let run_s = cfg.hours * 3600;
    // The world depends on the seed only, not on `spill`: both runs see the same day.
    let mut world = StdRng::seed_from_u64(cfg.seed);
    let specs: Vec<SiteSpec> = if cfg.three_site_day {
        topology::three_site_day()
    } else {
        topology::fleet(cfg.sites, run_s, cfg.outages_per_day, &mut world)
    };
    let bursts: Vec<Vec<Burst>> = specs
        .iter()
        .map(|_| {
            if cfg.three_site_day {
                Vec::new()
            } else {
                demand::bursts(run_s, cfg.bursts_per_day, &mut world)
            }
        })
        .collect();
    let mut net_rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(0x5eed));
    let n = specs.len();
    let ids: Vec<SiteId> = specs.iter().map(|s| SiteId::new(&s.name)).collect();
    let nearest = topology::nearest_order(&specs);
    let interval = ExchangeConfig::new(ids[0].clone()).interval;
    let mut net = Network::new(cfg.loss, interval.as_secs());
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| node(i, &ids, cfg.seed, cfg.max_clock_skew_s))
        .collect::<Result<_, _>>()?;
    let mean_life = demand::mean_lifetime_s();
    let decay: Vec<f64> = LIFETIME_PHASES
        .iter()
        .map(|(m, _)| (-1.0 / m).exp())
        .collect();
    // conns[p][d * n + s]: connections of lifetime phase p that reached director d
    // and are served at site s.
    let mut conns = vec![vec![0.0f64; n * n]; LIFETIME_PHASES.len()];
    let mut m = Measures {
        seconds: run_s,
        ..Measures::default()
    };
    let mut was_down = vec![false; n];
    let mut in_peak = vec![false; n];
    let mut arrivals = vec![0.0f64; n];
    let mut loads: Vec<Option<SiteLoad>> = vec![None; n];
    let mut tot = vec![0.0f64; n * n];
    let server_ids: Vec<ServerId> = (0..n).map(|i| server_id(&ids, i)).collect();
    let mut rec = Recorder::new(&specs);
    let mut herded = vec![false; n];
    let mut held = vec![false; n];

    for sec in 0..run_s {
        let now = Time::from_secs(T0_S + sec);
        let down: Vec<bool> = specs.iter().map(|s| s.down_at(sec)).collect();
        // Outages: the site's connections and those through its director are cut; it
        // comes back as a restarted daemon.
        for j in 0..n {
            if down[j] && !was_down[j] {
                m.outages += 1;
                for phase in conns.iter_mut() {
                    for k in 0..n {
                        m.lost_in_outages +=
                            phase[k * n + j] + if k == j { 0.0 } else { phase[j * n + k] };
                        phase[k * n + j] = 0.0;
                        phase[j * n + k] = 0.0;
                    }
                }
            }
            if !down[j] && was_down[j] {
                nodes[j] = node(j, &ids, cfg.seed.wrapping_add(sec), cfg.max_clock_skew_s)?;
            }
        }
        was_down.clone_from(&down);
        let failing = cfg
            .all_down_event
            .is_some_and(|(at, len)| (at..at + len).contains(&sec));
        let announced = announcements(cfg, failing, &down, &nodes, &mut held, now, &mut m);
        // Clients reach the nearest announcing site.
        arrivals.iter_mut().for_each(|a| *a = 0.0);
        for h in 0..n {
            let rate = demand::demand(&specs[h], &bursts[h], sec) * f64::from(specs[h].capacity)
                / mean_life;
            match nearest[h].iter().find(|&&d| announced[d]) {
                Some(&d) => arrivals[d] += rate,
                None => m.unreachable_conns += rate,
            }
        }
        for (p, phase) in conns.iter_mut().enumerate() {
            let (_, weight) = LIFETIME_PHASES[p];
            phase.iter_mut().for_each(|c| *c *= decay[p]);
            for d in (0..n).filter(|&d| !down[d]) {
                let new = arrivals[d] * weight;
                let mut local = new;
                for &(s, f) in &nodes[d].fractions {
                    let through = new * f;
                    local -= through;
                    if down[s] {
                        m.spilled_to_down += through;
                    } else {
                        phase[d * n + s] += through;
                        // At s the fwmark service schedules it: its share to non-local
                        // destinations would be forwarded a second time.
                        m.forwarded_twice += through * nodes[s].tunnel_in_away;
                    }
                }
                phase[d * n + d] += local;
            }
        }
        // Connections summed over lifetime phases, for the samples and the measures.
        tot.iter_mut().for_each(|t| *t = 0.0);
        for phase in &conns {
            tot.iter_mut().zip(phase).for_each(|(t, c)| *t += c);
        }
        // Loads from samples, as the daemon builds them from IPVS stats.
        for i in 0..n {
            loads[i] = (!down[i]).then(|| {
                let served: f64 = (0..n).map(|k| tot[k * n + i]).sum();
                let server = ServerSample {
                    server: server_ids[i].clone(),
                    up: !failing,
                    capacity: specs[i].capacity,
                    active_conns: served.round() as u64,
                    inactive_conns: 0,
                    external: None,
                };
                // Destinations with no connections add nothing: leave them out.
                let tunnels: Vec<TunnelSample> = (0..n)
                    .filter(|&j| j != i && tot[i * n + j] >= 0.5)
                    .map(|j| TunnelSample {
                        peer: ids[j].clone(),
                        active_conns: tot[i * n + j].round() as u64,
                    })
                    .collect();
                site_load(&[server], &tunnels)
            });
        }
        // Reports that have arrived.
        let mut changed = vec![false; n];
        while let Some(r) = net.arrived(sec) {
            if down[r.to] {
                m.reports_to_down += 1;
                continue;
            }
            match nodes[r.to]
                .table
                .receive(now, Some(&r.sender), Some(&r.signature), &r.body)
            {
                Ok(a) => {
                    m.reports_accepted += 1;
                    changed[r.to] |= a.changed;
                }
                Err(e) => {
                    *m.reports_rejected
                        .entry(e.kind().as_str().to_string())
                        .or_default() += 1
                }
            }
        }
        for i in 0..n {
            let Some(load) = loads[i] else { continue };
            if cfg.spill && (sec % DECIDE_EVERY_S == 0 || changed[i]) {
                decide(&mut nodes[i], i, &ids, now, load, &mut m);
            }
            let state = LocalState {
                load,
                spilling_to: nodes[i].shares.iter().map(|(s, _)| s.clone()).collect(),
                spill_share: nodes[i].shares.iter().map(|(_, v)| v).sum(),
                // One VIP per site here: a site that cannot serve reports load null.
                vips_down: Vec::new(),
            };
            if let Some(round) = nodes[i].sched.poll(now, &state) {
                for r in &round.reports {
                    let Some(to) = ids.iter().position(|x| *x == r.receiver) else {
                        continue;
                    };
                    let s = sign_report(r, KEY).map_err(|source| SimError::Sign {
                        site: ids[i].to_string(),
                        source,
                    })?;
                    net.send(&mut net_rng, sec, to, s.sender, s.signature, s.body);
                }
            }
        }
        measure(
            &mut m,
            &specs,
            &tot,
            &loads,
            &nodes,
            &mut in_peak,
            &mut herded,
        );
        rec.second(sec, &specs, &tot, &loads, &herded);
    }
    m.reports_sent = net.sent;
    m.reports_lost = net.lost;
    let trace = rec.finish(run_s);
    m.herded_longest_s = trace.herds.iter().map(|e| e.len_s()).max().unwrap_or(0);
    m.herd_events = trace.herds.len() as u64;
    Ok((m, trace))
}

/// Which sites announce this second: up, and their checks pass or the last-announcer
/// guard holds (every site's checks fail during the all-down event).
fn announcements(
    cfg: &Config,
    failing: bool,
    down: &[bool],
    nodes: &[Node],
    held: &mut [bool],
    now: Time,
    m: &mut Measures,
) -> Vec<bool> {
    let mut announced = Vec::with_capacity(down.len());
    for (i, nd) in nodes.iter().enumerate() {
        let holds = !down[i]
            && failing
            && all_down::holds(
                cfg.all_down,
                true,
                nd.table.claims(now),
                nd.table.config().stale_after(),
                held[i],
            );
        if holds != held[i] {
            held[i] = holds;
            m.guard_changes += 1;
        }
        m.held_site_s += u64::from(holds);
        announced.push(!down[i] && (!failing || holds));
    }
    if failing && !announced.contains(&true) {
        m.unreachable_s += 1;
    }
    announced
}

fn decide(nd: &mut Node, i: usize, ids: &[SiteId], now: Time, load: SiteLoad, m: &mut Measures) {
    let views = nd.table.views(now);
    let local = LocalView {
        load: load.director,
        capacity: load.healthy_capacity,
    };
    let d = nd.engine.decide(now, local, &views);
    m.spill_changes += d
        .events
        .iter()
        .filter(|e| matches!(e, SpillEvent::Started { .. } | SpillEvent::Stopped { .. }))
        .count() as u64;
    if d.spilling() == nd.shares.is_empty() {
        m.spill_switches += 1;
    }
    let shares = d.shares();
    if shares == nd.shares {
        // Same shares, same weights: the driver would write nothing.
        return;
    }
    nd.shares = shares;
    let peers: Vec<SiteId> = ids.iter().filter(|p| **p != ids[i]).cloned().collect();
    let me = server_id(ids, i);
    let plan = weights::plan(
        &[LocalServer {
            server: me.clone(),
            up: true,
            weight: 1,
            failed: false,
        }],
        &peers,
        &nd.shares,
    );
    let total: f64 = plan.local.iter().map(|(_, w)| f64::from(*w)).sum::<f64>()
        + plan.peers.iter().map(|(_, w)| f64::from(*w)).sum::<f64>();
    nd.fractions = plan
        .peers
        .iter()
        .filter(|(_, w)| *w > 0)
        .filter_map(|(p, w)| {
            ids.iter()
                .position(|x| x == p)
                .map(|j| (j, f64::from(*w) / total))
        })
        .collect();
    let tin: f64 = plan.tunnel_in.iter().map(|(_, w)| f64::from(*w)).sum();
    let away: f64 = plan
        .tunnel_in
        .iter()
        .filter(|(s, _)| *s != me)
        .map(|(_, w)| f64::from(*w))
        .sum();
    nd.tunnel_in_away = if tin > 0.0 { away / tin } else { 0.0 };
}

fn measure(
    m: &mut Measures,
    specs: &[SiteSpec],
    tot: &[f64],
    loads: &[Option<SiteLoad>],
    nodes: &[Node],
    in_peak: &mut [bool],
    herded: &mut [bool],
) {
    // Peaks and the start band are read against the paper's thresholds, as every site
    // uses them.
    let spill_cfg = SpillConfig::default();
    let n = specs.len();
    let mut any_over = false;
    herded.iter_mut().for_each(|h| *h = false);
    for j in 0..n {
        // A site whose checks fail (the all-down event) serves nothing to measure.
        let Some(load) = loads[j].filter(|l| l.served.is_finite()) else {
            in_peak[j] = false;
            continue;
        };
        let cap = f64::from(specs[j].capacity);
        let at_home = tot[j * n + j];
        let tunnelled_in = (0..n).map(|k| tot[k * n + j]).sum::<f64>() - at_home;
        m.conn_s_away += tunnelled_in;
        m.conn_s_at_nearest += at_home;
        let served = load.served;
        m.peak_served = m.peak_served.max(served);
        if served > 1.0 {
            any_over = true;
            m.over_site_s += 1;
            if served > spill_cfg.start_local {
                m.over_start_site_s += 1;
            }
            m.overload_load_s += served - 1.0;
            // Its own clients: those it keeps and those it spills away (director load
            // less what it holds for others). A site spilling its own overload away is
            // not pushed above 1.0 by others, whatever it still holds for them.
            if load.director - tunnelled_in / cap <= 1.0 {
                herded[j] = true;
                m.herded_site_s += 1;
                m.herded_load_s += served - 1.0;
                m.herded_peak = m.herded_peak.max(served);
            }
        }
        if !in_peak[j] && load.director > spill_cfg.start_local {
            in_peak[j] = true;
            m.peaks += 1;
        } else if in_peak[j] && load.director <= spill_cfg.stop_local {
            in_peak[j] = false;
        }
        for &(s, _) in &nodes[j].fractions {
            if s > j && nodes[s].fractions.iter().any(|&(k, _)| k == j) {
                m.mutual_s += 1;
            }
        }
    }
    if any_over {
        m.any_over_s += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two sites of 1000 connections; `tot[d * 2 + s]` as in the run. Returns which
    /// sites the measure counts as herded.
    fn herded_by(tot: [f64; 4]) -> Vec<bool> {
        let specs: Vec<SiteSpec> = topology::three_site_day()
            .into_iter()
            .take(2)
            .map(|s| SiteSpec {
                capacity: 1000,
                ..s
            })
            .collect();
        let ids: Vec<SiteId> = specs.iter().map(|s| SiteId::new(&s.name)).collect();
        let loads: Vec<Option<SiteLoad>> = (0..2)
            .map(|i| {
                let server = ServerSample {
                    server: server_id(&ids, i),
                    up: true,
                    capacity: 1000,
                    active_conns: (tot[i] + tot[2 + i]) as u64,
                    inactive_conns: 0,
                    external: None,
                };
                let out = TunnelSample {
                    peer: ids[1 - i].clone(),
                    active_conns: tot[i * 2 + 1 - i] as u64,
                };
                Some(site_load(&[server], &[out]))
            })
            .collect();
        let nodes: Vec<Node> = (0..2)
            .map(|i| node(i, &ids, 1, 30).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let mut m = Measures::default();
        let (mut pk, mut hd) = ([false; 2], [false; 2]);
        measure(&mut m, &specs, &tot, &loads, &nodes, &mut pk, &mut hd);
        assert_eq!(m.herded_site_s, hd.iter().filter(|h| **h).count() as u64);
        hd.to_vec()
    }

    #[test]
    fn a_site_held_above_one_by_spilled_in_connections_is_herded() {
        // Site 0 keeps 950 of its own and holds 90 that site 1 spilled to it: 1.04.
        assert_eq!(herded_by([950.0, 0.0, 90.0, 500.0]), [true, false]);
        // 1010 of its own: above 1.0 by itself.
        assert_eq!(herded_by([1010.0, 0.0, 90.0, 500.0]), [false, false]);
    }

    #[test]
    fn a_site_spilling_its_own_overload_away_is_not_herded_by_what_it_holds() {
        // Seed 3's eu-29 at 17:13: its own clients are 1.4 of capacity, it keeps 1000
        // and spills 400 away, and still holds 2 spilled to it hours before: served
        // 1.002 but not pushed there by anyone's spill.
        assert_eq!(herded_by([1000.0, 400.0, 2.0, 300.0]), [false, false]);
    }
}
