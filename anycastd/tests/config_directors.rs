//! `[site] director`, `directors_key` and `[[director]]` (decision 0015): what is
//! accepted, its defaults, and every refusal with its line and reason.

use std::path::Path;

use anycastd::config::parse_str;

/// configs/idc1.toml as shipped: lb1, one of IDC1's two directors.
const SHIPPED: &str = include_str!("../../configs/idc1.toml");
const KEY: &str = "directors_key = \"directors-of-idc1-0123\"";
const LB1B: &str = "\n[[director]]\nname = \"lb1b\"\naddress = \"10.101.3.3\"\n";

fn file() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/idc1.toml"))
}

/// configs/idc1.toml as a site of one director: without its `director`,
/// `directors_key_file` and `[[director]]` lines.
fn single() -> String {
    let mut out = String::new();
    let mut in_director = false;
    for line in SHIPPED.lines() {
        if line.starts_with('[') {
            in_director = line == "[[director]]";
        }
        let skip = in_director
            || line.starts_with("director = ")
            || line.starts_with("directors_key_file = ");
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The one-director file with `site` lines added under `[site]` and `tail` appended.
fn with(site: &str, tail: &str) -> String {
    let text = single().replacen("[site]\n", &format!("[site]\n{site}\n"), 1);
    format!("{text}{tail}")
}

fn problems(text: &str) -> Vec<String> {
    match parse_str(file(), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.line, p.reason))
            .collect(),
    }
}

#[test]
fn a_site_of_one_director_needs_no_name() {
    let cfg = parse_str(file(), &single()).unwrap();
    assert_eq!(cfg.site.director, "default");
    assert!(cfg.directors.others.is_empty());
}

/// The seed's IDC1 as shipped: lb1 with lb1b as its sibling, the lab's key file.
#[test]
fn the_seeds_idc1_lists_its_two_directors() {
    let cfg = parse_str(file(), SHIPPED).unwrap();
    assert_eq!(cfg.site.director, "lb1");
    assert_eq!(cfg.directors.key, b"lab-only-key-idc1-directors-0123456789");
    let d = &cfg.directors.others[0];
    assert_eq!(
        (d.name.as_str(), d.address.to_string(), d.url.as_str()),
        (
            "lb1b",
            "10.101.7.2".into(),
            "http://10.101.7.2:9181/v1/report"
        )
    );
}

#[test]
fn a_director_and_its_sibling_with_the_default_url() {
    let text = with(&format!("director = \"lb1\"\n{KEY}"), LB1B);
    let cfg = parse_str(file(), &text).unwrap();
    assert_eq!(cfg.site.director, "lb1");
    assert_eq!(cfg.directors.key, b"directors-of-idc1-0123");
    let d = &cfg.directors.others[0];
    assert_eq!(
        (d.name.as_str(), d.address.to_string()),
        ("lb1b", "10.101.3.3".into())
    );
    // Our exchange port on its address.
    assert_eq!(
        d.url,
        format!("http://10.101.3.3:{}/v1/report", cfg.exchange.listen.port())
    );
}

#[test]
fn bad_director_sections_are_refused_with_line_and_reason() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            with(KEY, LB1B),
            "name = \"lb1b\"",
            "[[director]] needs site.director",
        ),
        (
            with("director = \"lb1\"", LB1B),
            "name = \"lb1b\"",
            "[[director]] needs site.directors_key or site.directors_key_file",
        ),
        (
            with(
                &format!("director = \"lb1\"\n{KEY}"),
                &LB1B.replace("lb1b", "lb1"),
            ),
            "name = \"lb1\"",
            "director `lb1` is this director's own name (site.director)",
        ),
        (
            with(
                &format!("director = \"lb1\"\n{KEY}"),
                &format!("{LB1B}{LB1B}"),
            ),
            "name = \"lb1b\"",
            "director `lb1b` is listed twice",
        ),
        (
            with(&format!("director = \"lb 1\"\n{KEY}"), LB1B),
            "director = \"lb 1\"",
            "director name `lb 1` must be 1-63 characters",
        ),
        (
            with("director = \"lb1\"\ndirectors_key = \"short\"", LB1B),
            "directors_key = \"short\"",
            "the directors_key for this site's directors is 5 bytes; at least 16 are required",
        ),
        (
            with(KEY, ""),
            "directors_key",
            "directors_key without [[director]] sections",
        ),
        (
            with(
                &format!("director = \"lb1\"\n{KEY}"),
                &LB1B.replace("\"10.101.3.3\"", "\"10.101.3.3\"\nurl = \"ftp://x\""),
            ),
            "url = \"ftp://x\"",
            "url `ftp://x` must start with http:// or https://",
        ),
    ];
    for (text, at, want) in cases {
        let got = problems(&text);
        // The value's line, or its section's header for a section-wide problem.
        let lines: Vec<String> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(at) || l.contains("[[director]]"))
            .map(|(i, _)| format!("{}: ", i + 1))
            .collect();
        assert!(
            got.iter()
                .any(|p| p.contains(want) && lines.iter().any(|l| p.starts_with(l))),
            "want {want:?} at one of {lines:?}, got {got:?}"
        );
    }
}

/// A peer site of several directors: `urls` sends each report to every one of them;
/// `url` and `urls` together, neither, an empty list, a bad scheme or a URL twice are
/// refused with their lines.
#[test]
fn a_peer_site_of_several_directors_gets_each_report_at_every_url() {
    const ONE: &str = "url = \"http://10.101.2.2:9181/v1/report\"";
    let both =
        "urls = [\"http://10.101.2.2:9181/v1/report\", \"http://10.101.9.2:9181/v1/report\"]";
    let cfg = parse_str(file(), &SHIPPED.replacen(ONE, both, 1)).unwrap();
    assert_eq!(
        cfg.peers[0].urls,
        [
            "http://10.101.2.2:9181/v1/report",
            "http://10.101.9.2:9181/v1/report"
        ]
    );
    let line = SHIPPED.lines().position(|l| l == ONE).unwrap() + 1;
    let peer_line = SHIPPED.lines().position(|l| l == "[[peer]]").unwrap() + 1;
    for (to, at, why) in [
        (format!("{ONE}\n{both}"), line, "has both url and urls"),
        (String::new(), peer_line, "has no url (or urls"),
        ("urls = []".to_string(), line, "urls is empty"),
        (
            "urls = [\"ftp://x/\"]".to_string(),
            line,
            "must start with http://",
        ),
        (
            "urls = [\"http://a/r\", \"http://a/r\"]".to_string(),
            line,
            "`http://a/r` is listed twice",
        ),
    ] {
        let p = problems(&SHIPPED.replacen(ONE, &to, 1));
        assert!(
            p.iter()
                .any(|x| x.starts_with(&format!("{at}: ")) && x.contains(why)),
            "{to}: {p:?}"
        );
    }
}
