//! The plots a run writes (SVG with their text) and the targets' PASS/FAIL logic.

use fleet_sim::targets::{check, render};
use fleet_sim::{Config, Measures, plots, run_traced};

#[test]
fn plots_are_written_as_svg_with_their_labels() {
    let cfg = Config {
        three_site_day: true,
        hours: 2,
        ..Config::default()
    };
    let (_, without) = run_traced(&Config {
        spill: false,
        ..cfg.clone()
    })
    .unwrap_or_else(|e| panic!("run: {e}"));
    let (_, with) = run_traced(&cfg).unwrap_or_else(|e| panic!("run: {e}"));
    assert_eq!(with.regions, ["asia", "europe", "america"]);
    assert_eq!(with.max_load[0].len(), 24, "one point per 5 minutes");
    let dir = std::env::temp_dir().join(format!("fleet-sim-plots-{}", std::process::id()));
    let files = plots::write_all(&dir, &without, &with, 120).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(files.len(), 3);
    let text: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())))
        .collect();
    assert!(text.iter().all(|t| t.starts_with("<svg")));
    assert!(text[0].contains("region asia") && text[0].contains("busiest site, spill"));
    assert!(text[1].contains("from asia") && text[1].contains("to europe"));
    assert!(text[2].contains("one report period (120 s)"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn targets_pass_and_fail_on_their_bounds() {
    let without = Measures {
        overload_load_s: 1000.0,
        over_site_s: 100,
        ..Measures::default()
    };
    let good = Measures {
        overload_load_s: 200.0,
        herded_longest_s: 120,
        spill_switches: 20,
        peaks: 10,
        ..Measures::default()
    };
    assert!(check(&without, &good, 0.8, 120).iter().all(|c| c.pass));
    let bad = Measures {
        overload_load_s: 201.0,
        herded_longest_s: 121,
        spill_switches: 21,
        peaks: 10,
        forwarded_twice: 1.0,
        ..Measures::default()
    };
    let checks = check(&without, &bad, 0.8, 120);
    assert!(checks.iter().all(|c| !c.pass), "{checks:?}");
    let text = render(&checks);
    assert_eq!(text.lines().filter(|l| l.starts_with("FAIL")).count(), 4);
}
