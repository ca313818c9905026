//! `[notify]`: defaults, a full section, and each way it is refused (file, line, reason).

use std::path::Path;
use std::time::Duration;

use anycastd::config::parse_str;

const GOOD: &str = include_str!("../../configs/idc1.toml");

fn file() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/idc1.toml"))
}

fn with(table: &str) -> String {
    format!("{GOOD}\n[notify]\n{table}")
}

/// The problems, each `line: reason`, for the good file with this `[notify]` table.
fn refused(table: &str) -> Vec<String> {
    let text = with(table);
    match parse_str(file(), &text) {
        Ok(_) => panic!("accepted [notify] {table}"),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.line, p.reason))
            .collect(),
    }
}

fn notify_line() -> usize {
    with("").lines().position(|l| l == "[notify]").unwrap() + 1
}

#[test]
fn without_the_section_nothing_is_sent() {
    let cfg = parse_str(file(), GOOD).unwrap();
    assert!(!cfg.notify.enabled());
    assert_eq!(cfg.notify.queue, 256);
    assert_eq!(cfg.notify.coalesce, Duration::from_secs(10));
}

#[test]
fn a_full_section() {
    let cfg = parse_str(
        file(),
        &with(
            "webhooks = [\"https://hooks.example.net/anycast\", \"http://127.0.0.1:9000/x\"]\n\
             timeout = \"3s\"\nqueue = 50\ncoalesce = \"0s\"\nretry_initial = \"500ms\"\n\
             retry_max = \"1m\"\nattempts = 5\n\
             command = [\"/usr/local/bin/page\", \"--team\", \"net\"]\ncommand_timeout = \"20s\"\n",
        ),
    )
    .unwrap();
    let n = cfg.notify;
    assert!(n.enabled());
    assert_eq!(n.webhooks.len(), 2);
    assert_eq!((n.queue, n.attempts), (50, 5));
    assert_eq!(n.coalesce, Duration::ZERO);
    assert_eq!(n.retry_max, Duration::from_secs(60));
    let c = n.command.unwrap();
    assert_eq!(c.program.to_str(), Some("/usr/local/bin/page"));
    assert_eq!(c.args, ["--team", "net"]);
    assert_eq!(c.timeout, Duration::from_secs(20));
}

#[test]
fn bad_values_are_refused_with_their_line() {
    let l = notify_line();
    assert_eq!(
        refused("webhooks = [\"ftp://x/y\"]\n"),
        [format!(
            "{}: notify.webhooks entry `ftp://x/y` must be an http:// or https:// URL with a host",
            l + 1
        )]
    );
    assert_eq!(
        refused("webhooks = [\"not a url\"]\n"),
        [format!(
            "{}: notify.webhooks entry `not a url` is invalid: relative URL without a base",
            l + 1
        )]
    );
    assert_eq!(
        refused("command = [\"page --team net\"]\n"),
        [format!(
            "{}: notify.command's program `page --team net` must be an absolute path (it is run directly, never through a shell)",
            l + 1
        )]
    );
    assert_eq!(
        refused("command = []\n"),
        [format!(
            "{}: notify.command must name a program: [\"/path/to/program\", \"arg\", ...]",
            l + 1
        )]
    );
    assert_eq!(
        refused("queue = 0\n"),
        [format!(
            "{}: notify.queue must be between 1 and 100000, not 0",
            l + 1
        )]
    );
    assert_eq!(
        refused("retry_initial = \"10s\"\nretry_max = \"1s\"\n"),
        [format!(
            "{}: notify.retry_max must not be shorter than notify.retry_initial",
            l + 2
        )]
    );
    assert_eq!(
        refused("timeout = \"0s\"\n"),
        [format!("{}: notify.timeout must be more than 0", l + 1)]
    );
    assert_eq!(
        refused("command_timeout = \"5s\"\n"),
        [format!(
            "{}: notify.command_timeout without notify.command",
            l + 1
        )]
    );
    let p = refused("webhook = []\n");
    assert!(p[0].contains("unknown field `webhook`"), "{p:?}");
}
