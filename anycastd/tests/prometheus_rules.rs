//! The alerting rules shipped in configs/prometheus/ pass `promtool check rules` and
//! their unit tests (`promtool test rules anycastd-rules.test.yml`): each alert fires
//! when and only when its test series say it must. Needs promtool (Debian package
//! prometheus): skipped with the reason on a developer machine, a failure under CI.

use std::process::Command;

use anycast_lab::{Need, require};

fn promtool(args: &[&str]) -> (bool, String) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    if !require(
        "alert_rules_pass_promtool_and_their_unit_tests",
        &[Need::Program("promtool")],
    ) {
        return;
    }
    let (ok, out) = promtool(&["check", "rules", "anycastd-rules.yml"]);
    assert!(ok && out.contains("SUCCESS: 10 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "anycastd-rules.test.yml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
}
