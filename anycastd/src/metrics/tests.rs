use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::ctl::render::tests_support::sample;

fn scrape(st: &Status, c: &Counters, bfd: Option<&BfdPackets>, l: Option<&Latency>) -> String {
    render(&Scrape {
        status: st,
        counters: c,
        bfd,
        latency: l,
        notify: None,
        monitor: None,
    })
}

#[test]
fn series_are_well_formed() {
    let mut c = Counters::default();
    c.rejected_reports
        .insert(("idc2".into(), "replayed".into()), 3);
    let bfd = BfdPackets {
        received: 120,
        sent: 118,
        bad_ttl: 2,
        ..BfdPackets::default()
    };
    let text = scrape(&sample(), &c, Some(&bfd), Some(&Latency::default()));
    for want in [
        "anycast_vip_announced{vip=\"web\",prefix=\"10.101.4.0/24\"} 1\n",
        "anycast_bgp_session_established{neighbor=\"10.101.1.1\"} 1\n",
        "anycast_real_server_up{vip=\"web\",service=\"tcp/80\",server=\"10.101.5.11:80\"} 0\n",
        "anycast_local_load{site=\"idc1\"} 1.14\n",
        "anycast_peer_report_age_seconds{peer=\"idc2\"} 41\n",
        "anycast_reports_rejected_total{peer=\"idc2\",reason=\"replayed\"} 3\n",
        "anycast_spill_share{peer=\"idc2\"} 0.2\n",
        "anycast_bfd_session_up{neighbor=\"10.101.1.1\"} 1\n",
        "anycast_bfd_packets_received_total 120\n",
        "anycast_bfd_packets_dropped_total{reason=\"bad_ttl\"} 2\n",
        "anycast_bfd_packets_dropped_total{reason=\"unknown\"} 0\n",
        "# TYPE anycast_reports_rejected_total counter\n",
        // A histogram without labels is there before its first observation.
        "anycast_report_apply_latency_seconds_bucket{le=\"+Inf\"} 0\n",
        // `[sync]`: the sample runs both daemons.
        "anycast_sync_daemon_up{role=\"backup\"} 1\n",
        "anycast_sync_connections{origin=\"synced\"} 830\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // Every sample line is `name{labels} value` or `name value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        assert!(value == "+Inf" || value.parse::<f64>().is_ok(), "{line}");
    }
}

#[test]
fn each_director_of_the_site_has_its_load_up_and_config_match() {
    let st = crate::ctl::render::tests_support::with_directors();
    let text = scrape(&st, &Counters::default(), None, None);
    for want in [
        "anycast_director_load{director=\"lb1\"} 0.4\n",
        "anycast_director_load{director=\"lb1b\"} 0.74\n",
        "anycast_director_up{director=\"lb1b\"} 1\n",
        "anycast_director_config_match{director=\"lb1b\"} 1\n",
        "anycast_director_config_match{director=\"lb1c\"} 0\n",
        "anycast_local_load{site=\"idc1\"} 1.14\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn no_healthy_capacity_is_infinite_load() {
    let mut s = sample();
    s.local_load = None;
    let text = scrape(&s, &Counters::default(), None, None);
    assert!(
        text.contains("anycast_local_load{site=\"idc1\"} +Inf\n"),
        "{text}"
    );
}

#[test]
fn latencies_are_timed_between_their_events() {
    let mut l = Latency::default();
    // A verdict that withdraws: timed; a withdraw without a verdict (drain): not.
    l.verdict();
    l.withdrawn("web");
    l.verdict_done();
    l.withdrawn("web");
    // A report whose settle sent weights, one that did not, a reconcile after.
    l.report_accepted();
    l.to_worker();
    l.settled();
    l.report_accepted();
    l.settled();
    l.to_worker();
    l.answered("apply", Duration::from_micros(300));
    l.answered("reconcile", Duration::from_millis(20));
    let text = scrape(&sample(), &Counters::default(), None, Some(&l));
    for want in [
        "anycast_withdraw_latency_seconds_count{vip=\"web\"} 1\n",
        "anycast_report_apply_latency_seconds_count 1\n",
        "anycast_dataplane_duration_seconds_count{kind=\"apply\"} 1\n",
        "anycast_dataplane_duration_seconds_bucket{kind=\"reconcile\",le=\"0.0256\"} 1\n",
        "anycast_dataplane_duration_seconds_bucket{kind=\"reconcile\",le=\"0.0128\"} 0\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

/// Every family with a sample: what the dashboard and the rules may query.
fn full_exposition() -> String {
    let mut c = Counters::default();
    c.health_transitions
        .insert(("web/tcp80/10.101.5.11:80".into(), "down".into()), 1);
    c.accepted_reports.insert("idc2".into(), 7);
    c.rejected_reports
        .insert(("unknown".into(), "forged".into()), 1);
    c.announcements.insert(("web".into(), "withdraw".into()), 1);
    let bfd = BfdPackets::default();
    let mut l = Latency::default();
    l.verdict();
    l.withdrawn("web");
    l.answered("reconcile", Duration::from_millis(3));
    let notify = crate::notify::Stats {
        sinks: vec![("webhook0".into(), crate::notify::SinkStats::default())],
        refused: 0,
    };
    render(&Scrape {
        status: &sample(),
        counters: &c,
        bfd: Some(&bfd),
        latency: Some(&l),
        notify: Some(&notify),
        monitor: Some(&crate::monitor::counters::Counts {
            refused: vec![(crate::monitor::counters::Refusal::Csrf, 3)],
            status_asks: 7,
        }),
    })
}

/// Metric names in a PromQL text: identifiers that start with `anycast_`.
fn names_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("anycast_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn series_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

fn repo_file(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_metric_the_dashboard_queries_is_exposed() {
    let have = series_names(&full_exposition());
    let dash: serde_json::Value =
        serde_json::from_str(&repo_file("configs/grafana/anycastd.json")).unwrap();
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() > 20, "{}", exprs.len());
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| names_in(e)).collect();
    let missing: Vec<&String> = used.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, not exposed"
    );
    // And it shows the histograms, the notifier and the spill.
    for m in [
        "anycast_withdraw_latency_seconds_bucket",
        "anycast_report_apply_latency_seconds_bucket",
        "anycast_dataplane_duration_seconds_bucket",
        "anycast_notify_dropped_total",
        "anycast_spill_share",
    ] {
        assert!(used.contains(m), "the dashboard does not show {m}");
    }
}

#[test]
fn every_metric_the_alert_rules_use_is_exposed() {
    let have = series_names(&full_exposition());
    let used = names_in(&repo_file("configs/prometheus/anycastd-rules.yml"));
    let missing: Vec<&String> = used.difference(&have).collect();
    assert!(missing.is_empty(), "the rules use {missing:?}, not exposed");
}

#[test]
fn promtool_accepts_the_exposition() {
    if !anycast_lab::require(
        "promtool_accepts_the_exposition",
        &[anycast_lab::Need::Program("promtool")],
    ) {
        return;
    }
    let text = full_exposition();
    if let Err(e) = anycast_lab::promtool::check_metrics(&text) {
        panic!("{e}\n{text}");
    }
}

#[test]
fn the_monitors_refusals_are_counted_by_reason() {
    let text = full_exposition();
    assert!(
        text.contains("# TYPE anycast_monitor_refused_total counter")
            && text.contains("anycast_monitor_refused_total{reason=\"csrf\"} 3")
            && text.contains("anycast_monitor_status_asks_total 7"),
        "{text}"
    );
}
