//! What a run measures, and the side-by-side table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use geo_balancer::time::human;

/// The figures of one run (one day with or without spill).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measures {
    /// Seconds simulated.
    pub seconds: u64,
    /// Seconds during which at least one site served more than its capacity.
    pub any_over_s: u64,
    /// Site-seconds above 1.0.
    pub over_site_s: u64,
    /// Site-seconds above 1.1 (the paper's start threshold: between 1.0 and 1.1 its
    /// rule starts nothing).
    pub over_start_site_s: u64,
    /// Total overload: the integral of (served load - 1.0) over sites above 1.0, in
    /// load-seconds (1 load-second = one site's full capacity for one second).
    pub overload_load_s: f64,
    /// Highest served load any site reached.
    pub peak_served: f64,
    /// Herding: site-seconds above 1.0 that connections spilled to the site caused (it
    /// would have been at or below 1.0 with its own clients only).
    pub herded_site_s: u64,
    /// Load-seconds above 1.0 during those herded seconds.
    pub herded_load_s: f64,
    /// Highest served load of a site while herded.
    pub herded_peak: f64,
    /// Herding episodes (a site herded for consecutive seconds).
    pub herd_events: u64,
    /// The longest herding episode, seconds.
    pub herded_longest_s: u64,
    /// Peaks: episodes of a site's own demand (director load) above 1.1, each ending
    /// when it falls to 1.0 or below.
    pub peaks: u64,
    /// Spill changes: `Started` and `Stopped` events, one per peer.
    pub spill_changes: u64,
    /// Spill switches: a site starting or stopping spilling altogether.
    pub spill_switches: u64,
    /// Seconds during which two sites spilled to each other.
    pub mutual_s: u64,
    /// Connections a site received through a tunnel and sent through a tunnel again.
    pub forwarded_twice: f64,
    /// Connection-seconds served at the site the clients reached (the nearest
    /// announcing site).
    pub conn_s_at_nearest: f64,
    /// Connection-seconds served elsewhere (spilled).
    pub conn_s_away: f64,
    /// New connections sent through a tunnel to a site that was down.
    pub spilled_to_down: f64,
    /// Connections cut by outages.
    pub lost_in_outages: f64,
    /// Reports handed to the network.
    pub reports_sent: u64,
    /// Reports the network lost.
    pub reports_lost: u64,
    /// Reports that arrived at a site that was down.
    pub reports_to_down: u64,
    /// Reports accepted by the receiving `PeerTable`.
    pub reports_accepted: u64,
    /// Reports refused by the receiving `PeerTable`, by kind.
    pub reports_rejected: BTreeMap<String, u64>,
    /// Outages that happened.
    pub outages: u64,
    /// During the all-down event: seconds no site announced the VIP.
    pub unreachable_s: u64,
    /// New connections in those seconds (they found no route).
    pub unreachable_conns: f64,
    /// Site-seconds the last-announcer guard held a VIP.
    pub held_site_s: u64,
    /// Times a site's guard started or stopped holding.
    pub guard_changes: u64,
}

impl Measures {
    /// Share of connection-seconds served away from the nearest site.
    pub fn share_away(&self) -> f64 {
        let total = self.conn_s_at_nearest + self.conn_s_away;
        if total > 0.0 {
            self.conn_s_away / total
        } else {
            0.0
        }
    }

    /// Spill changes per peak.
    pub fn changes_per_peak(&self) -> f64 {
        if self.peaks > 0 {
            self.spill_changes as f64 / self.peaks as f64
        } else {
            0.0
        }
    }

    /// Spill switches (on or off) per peak.
    pub fn switches_per_peak(&self) -> f64 {
        if self.peaks > 0 {
            self.spill_switches as f64 / self.peaks as f64
        } else {
            0.0
        }
    }

    /// Share of reports the network lost.
    pub fn loss_share(&self) -> f64 {
        if self.reports_sent > 0 {
            self.reports_lost as f64 / self.reports_sent as f64
        } else {
            0.0
        }
    }
}

fn secs(s: u64) -> String {
    human(std::time::Duration::from_secs(s))
}

/// One figure of a run, as the table shows it.
type Figure = fn(&Measures) -> String;

/// The all-down event's figures, `[site] all_down = "withdraw"` beside `"announce"`.
pub fn all_down_table(withdraw: &Measures, announce: &Measures) -> String {
    let rows: [(&str, Figure); 4] = [
        ("unreachable everywhere (no site announces)", |m| {
            secs(m.unreachable_s)
        }),
        ("new connections with no route", |m| {
            format!("{:.0}", m.unreachable_conns)
        }),
        ("site-time held by the guard", |m| secs(m.held_site_s)),
        ("guard holds and releases", |m| m.guard_changes.to_string()),
    ];
    let mut out = format!("{:<44} {:>12} {:>12}\n", "", "withdraw", "announce");
    for (name, f) in rows {
        let _ = writeln!(out, "{name:<44} {:>12} {:>12}", f(withdraw), f(announce));
    }
    out
}

/// The summary table, the run without spill beside the run with it (`None`: that
/// column shows `-`).
pub fn table(without: &Measures, with: Option<&Measures>) -> String {
    let skipped = with.is_none();
    let empty = Measures::default();
    let with = with.unwrap_or(&empty);
    let rows: Vec<(&str, String, String)> = vec![
        (
            "time with any site above 1.0",
            secs(without.any_over_s),
            secs(with.any_over_s),
        ),
        (
            "site-time above 1.0",
            secs(without.over_site_s),
            secs(with.over_site_s),
        ),
        (
            "site-time above 1.1",
            secs(without.over_start_site_s),
            secs(with.over_start_site_s),
        ),
        (
            "total overload (load-seconds)",
            format!("{:.0}", without.overload_load_s),
            format!("{:.0}", with.overload_load_s),
        ),
        (
            "highest served load",
            format!("{:.2}", without.peak_served),
            format!("{:.2}", with.peak_served),
        ),
        (
            "herded site-time above 1.0",
            secs(without.herded_site_s),
            secs(with.herded_site_s),
        ),
        (
            "herded overload (load-seconds)",
            format!("{:.0}", without.herded_load_s),
            format!("{:.0}", with.herded_load_s),
        ),
        (
            "herded peak load",
            format!("{:.2}", without.herded_peak),
            format!("{:.2}", with.herded_peak),
        ),
        (
            "herding episodes / longest",
            format!(
                "{} / {}",
                without.herd_events,
                secs(without.herded_longest_s)
            ),
            format!("{} / {}", with.herd_events, secs(with.herded_longest_s)),
        ),
        (
            "peaks (own demand > 1.1)",
            without.peaks.to_string(),
            with.peaks.to_string(),
        ),
        (
            "spill changes per peer (per peak)",
            format!(
                "{} ({:.1})",
                without.spill_changes,
                without.changes_per_peak()
            ),
            format!("{} ({:.1})", with.spill_changes, with.changes_per_peak()),
        ),
        (
            "spill on/off switches (per peak)",
            format!(
                "{} ({:.1})",
                without.spill_switches,
                without.switches_per_peak()
            ),
            format!("{} ({:.1})", with.spill_switches, with.switches_per_peak()),
        ),
        (
            "time two sites spilled to each other",
            secs(without.mutual_s),
            secs(with.mutual_s),
        ),
        (
            "connections forwarded twice",
            format!("{:.0}", without.forwarded_twice),
            format!("{:.0}", with.forwarded_twice),
        ),
        (
            "traffic served away from nearest",
            format!("{:.2}%", 100.0 * without.share_away()),
            format!("{:.2}%", 100.0 * with.share_away()),
        ),
        (
            "connections spilled to a down site",
            format!("{:.0}", without.spilled_to_down),
            format!("{:.0}", with.spilled_to_down),
        ),
        (
            "connections cut by outages",
            format!("{:.0}", without.lost_in_outages),
            format!("{:.0}", with.lost_in_outages),
        ),
        (
            "outages",
            without.outages.to_string(),
            with.outages.to_string(),
        ),
        (
            "reports sent / lost by network",
            format!(
                "{} / {:.1}%",
                without.reports_sent,
                100.0 * without.loss_share()
            ),
            format!("{} / {:.1}%", with.reports_sent, 100.0 * with.loss_share()),
        ),
        (
            "reports accepted",
            without.reports_accepted.to_string(),
            with.reports_accepted.to_string(),
        ),
        ("reports refused", rejected(without), rejected(with)),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<38} | {:>22} | {:>22}",
        "measure", "no spill", "spill"
    );
    let _ = writeln!(out, "{:-<38}-+-{:->22}-+-{:->22}", "", "", "");
    for (name, a, b) in rows {
        let b = if skipped { "-".to_string() } else { b };
        let _ = writeln!(out, "{name:<38} | {a:>22} | {b:>22}");
    }
    out
}

fn rejected(m: &Measures) -> String {
    if m.reports_rejected.is_empty() {
        return "0".into();
    }
    m.reports_rejected
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
