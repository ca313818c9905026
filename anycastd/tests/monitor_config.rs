//! `[monitor]` in the config: what is refused, with its line.

use std::path::Path;

use anycastd::config::monitor::Role;

const BASE: &str = r#"
[site]
name = "idc1"
address = "127.0.0.1"
dataplane = false

[api]
listen = "127.0.0.1:9100"
public = ["status"]

[bgp]
asn = 65005

[[bgp.neighbor]]
address = "127.0.0.2"
remote_asn = 65001

[[vip]]
name = "web"
prefix = "10.101.4.0/24"
address = "10.101.4.1"

[[vip.service]]
protocol = "tcp"
port = 80

[[vip.service.real_server]]
address = "127.0.0.1"
port = 8080
method = "nat"
capacity = 10
"#;

fn parse(monitor: &str) -> Result<anycastd::config::SiteConfig, anycastd::config::ConfigError> {
    anycastd::config::parse_str(Path::new("site.toml"), &format!("{BASE}{monitor}"))
}

fn hash() -> String {
    anycastd::monitor::password::hash("pw").unwrap()
}

fn base_lines() -> usize {
    BASE.lines().count()
}

#[test]
fn a_loopback_monitor_with_a_user_loads_with_its_defaults() {
    let cfg = parse(&format!(
        "[monitor]\nlisten = \"127.0.0.1:8443\"\n[[monitor.user]]\nname = \"op\"\nrole = \"operator\"\npassword_hash = \"{}\"\n",
        hash()
    ))
    .unwrap();
    let plan = anycastd::plan::render(&cfg);
    assert!(
        plan.contains("Monitor on http://127.0.0.1:8443/ for op (operator)"),
        "{plan}"
    );
    let m = cfg.monitor.unwrap();
    assert!(m.tls.is_none());
    assert_eq!(m.users[0].role, Role::Operator);
    assert_eq!(
        m.session_idle,
        anycastd::config::monitor::DEFAULT_SESSION_IDLE
    );
    assert!(parse("").unwrap().monitor.is_none());
}

#[test]
fn a_public_listener_without_tls_is_refused_at_its_line() {
    let e = parse(&format!(
        "[monitor]\nlisten = \"0.0.0.0:8443\"\n[[monitor.user]]\nname = \"op\"\nrole = \"operator\"\npassword_hash = \"{}\"\n",
        hash()
    ))
    .unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!(e.problems[0].line, base_lines() + 2, "{e}");
    assert!(
        e.problems[0].reason.contains("not a loopback address"),
        "{e}"
    );
}

#[test]
fn a_monitor_without_users_is_refused() {
    let e = parse("[monitor]\nlisten = \"127.0.0.1:8443\"\n").unwrap_err();
    assert!(e.problems[0].reason.contains("nobody could log in"), "{e}");
}

#[test]
fn bad_users_and_missing_tls_files_are_refused_each_at_its_line() {
    let e = parse(
        "[monitor]\nlisten = \"0.0.0.0:8443\"\ncert_file = \"/nonexistent/monitor.crt\"\nkey_file = \"/nonexistent/monitor.key\"\n[[monitor.user]]\nname = \"op\"\nrole = \"admin\"\npassword_hash = \"hunter2\"\n",
    )
    .unwrap_err();
    let at = |needle: &str| {
        e.problems
            .iter()
            .find(|p| p.reason.contains(needle))
            .map(|p| p.line - base_lines())
    };
    assert_eq!(at("cert_file"), Some(3), "{e}");
    assert_eq!(at("role `admin`"), Some(7), "{e}");
    assert_eq!(at("password_hash"), Some(8), "{e}");
    assert_eq!(at("not a loopback"), None, "TLS was asked for: {e}");
}

#[test]
fn hash_password_prints_a_hash_the_config_takes() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret pass\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        anycastd::monitor::password::verify(&hash, "s3cret pass"),
        "{hash}"
    );
    assert!(!anycastd::monitor::password::verify(&hash, "s3cret pass\n"));
    let cfg = parse(&format!(
        "[monitor]\nlisten = \"127.0.0.1:8443\"\n[[monitor.user]]\nname = \"op\"\nrole = \"operator\"\npassword_hash = \"{hash}\"\n"
    ))
    .unwrap();
    assert_eq!(cfg.monitor.unwrap().users[0].password_hash, hash);
}
