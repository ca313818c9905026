//! Who may change the site (issue 20), against the real daemon on the host: the unix
//! socket's owner and mode, SO_PEERCRED for every change, the bearer token over TCP,
//! and `anycastd check` refusing what cannot be trusted. Tests named `root_*` run
//! anycastctl as other uids (`Command::uid`/`gid`), which needs root: they skip with
//! the reason when not root, and fail under CI=true.

mod host;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anycast_lab::{Need, require};
use host::{Api, Daemon, RealServer, TOKEN, ctl_as, write_private};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);
/// `nobody:nogroup`: no operator.
const NOBODY: (u32, u32) = (65534, 65534);

fn vip_state(st: &Value) -> &str {
    st["vips"][0]["state"].as_str().unwrap_or("")
}

/// A daemon whose VIP `web` is announced over one real server.
fn announced(test: &str, api: Api, api_lines: &str) -> (Daemon, RealServer) {
    let server = RealServer::start();
    let d = Daemon::start_with(test, api, api_lines, &[server.addr]);
    d.wait_status("web announced", WAIT, |s| vip_state(s) == "announced");
    (d, server)
}

/// A group that exists, is not root's and does not list `nobody`: the operators'.
fn operators_group() -> (String, u32) {
    for name in ["daemon", "adm", "sys", "bin", "users"] {
        if let Ok(Some(g)) = nix::unistd::Group::from_name(name)
            && g.gid.as_raw() != 0
            && g.gid.as_raw() != NOBODY.1
            && !g.mem.iter().any(|m| m == "nobody")
        {
            return (name.to_string(), g.gid.as_raw());
        }
    }
    panic!("no spare group (daemon, adm, sys, bin, users) on this host");
}

/// `text` without its ANSI colours.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        rest = rest[i..].split_once('m').map_or("", |(_, r)| r);
    }
    out.push_str(rest);
    out
}

fn socket_of(d: &Daemon) -> &Path {
    Path::new(d.api().strip_prefix("unix:").unwrap())
}

/// The socket is root's (the daemon's user), of `gid`, with `mode`.
fn assert_socket(d: &Daemon, gid: u32, mode: u32, when: &str) {
    let m = std::fs::metadata(socket_of(d)).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (0, gid, mode),
        "{when}: owner, group and mode of {} (mode {:o})",
        d.api(),
        m.mode() & 0o7777
    );
}

/// The VIP is still announced (a refused drain changed nothing; an accepted one
/// would show `draining` at once: the controller answers after applying it).
fn assert_unchanged(d: &Daemon, what: &str) {
    let st = d.status().expect("status as root");
    assert_eq!(vip_state(&st), "announced", "{what}: {st:#}\n{}", d.log());
}

#[test]
fn root_the_socket_opens_to_root_and_the_group_only() {
    if !require(
        "root_the_socket_opens_to_root_and_the_group_only",
        &[Need::Root],
    ) {
        return;
    }
    let (group, gid) = operators_group();
    let (mut d, _server) = announced("api-unix", Api::Unix, &format!("group = \"{group}\""));
    let api = d.api().to_string();
    let member = Some((NOBODY.0, gid));
    assert_socket(&d, gid, 0o660, "at start");

    // Not in the group: the kernel refuses the connect itself.
    for args in [&["status"][..], &["drain", "web"]] {
        let (code, _, err) = ctl_as(Some(NOBODY), &api, args);
        assert_eq!(code, 4, "{args:?}: {err}");
        assert!(err.starts_with("anycastctl: not allowed to open"), "{err}");
    }
    assert_unchanged(&d, "after nobody's drain");

    // A member (here by its primary group) reads and changes.
    let (code, out, err) = ctl_as(member, &api, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("site idc1 "), "{out}");
    let (code, out, err) = ctl_as(member, &api, &["drain", "web"]);
    assert_eq!(code, 0, "{err}\n{}", d.log());
    assert!(out.starts_with("draining web"), "{out}");
    d.wait_status("draining", WAIT, |s| vip_state(s) == "draining");
    let (code, _, err) = ctl_as(member, &api, &["undrain", "web"]);
    assert_eq!(code, 0, "{err}");
    d.wait_status("announced again", WAIT, |s| vip_state(s) == "announced");

    // Root too.
    let (code, _, err) = d.ctl(&["drain", "web"]);
    assert_eq!(code, 0, "{err}");
    d.wait_status("draining", WAIT, |s| vip_state(s) == "draining");
    let (code, _, err) = d.ctl(&["undrain"]);
    assert_eq!(code, 0, "{err}");
    d.wait_status("announced again", WAIT, |s| vip_state(s) == "announced");

    // A reload leaves the socket as it is; a restart after a crash (SIGKILL: the old
    // socket file stays behind) makes it the same again.
    d.sighup();
    assert_socket(&d, gid, 0o660, "after SIGHUP");
    assert_eq!(ctl_as(member, &api, &["status"]).0, 0);
    d.restart();
    assert_socket(&d, gid, 0o660, "after a restart");
    assert_eq!(ctl_as(Some(NOBODY), &api, &["status"]).0, 4);
    assert_eq!(ctl_as(member, &api, &["status"]).0, 0);
}

#[test]
fn root_public_reads_on_the_socket_still_refuse_changes() {
    if !require(
        "root_public_reads_on_the_socket_still_refuse_changes",
        &[Need::Root],
    ) {
        return;
    }
    let (group, gid) = operators_group();
    let lines = format!("group = \"{group}\"\npublic = [\"status\", \"why\", \"metrics\"]");
    let (mut d, _server) = announced("api-public", Api::Unix, &lines);
    let api = d.api().to_string();
    assert_socket(&d, gid, 0o666, "with public reads");

    let (code, out, err) = ctl_as(Some(NOBODY), &api, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("web  10.101.4.0/24  IPv4  announced"), "{out}");
    let (code, out, err) = ctl_as(Some(NOBODY), &api, &["why", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("web: announced because"), "{out}");

    for args in [&["drain", "web"][..], &["drain"], &["undrain", "web"]] {
        let (code, _, err) = ctl_as(Some(NOBODY), &api, args);
        assert_eq!(code, 4, "{args:?}: {err}");
        assert_eq!(
            err.trim(),
            format!(
                "anycastctl: not allowed: uid 65534 is neither root nor a member of group `{group}`"
            ),
            "{args:?}"
        );
        assert_unchanged(&d, &format!("after nobody's {args:?}"));
    }
    // One warn line per refusal, with the caller's uid and pid.
    let log = plain(&d.log());
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused a change from a caller who is not an operator"))
        .collect();
    assert_eq!(refusals.len(), 3, "{log}");
    assert!(
        refusals
            .iter()
            .all(|l| l.contains("uid=65534") && l.contains("pid=") && !l.contains("pid=0")),
        "{refusals:#?}"
    );

    let (code, _, err) = ctl_as(Some((NOBODY.0, gid)), &api, &["drain", "web"]);
    assert_eq!(code, 0, "a member may: {err}");
    d.wait_status("draining", WAIT, |s| vip_state(s) == "draining");

    d.sighup();
    assert_socket(&d, gid, 0o666, "after SIGHUP");
    d.restart();
    assert_socket(&d, gid, 0o666, "after a restart");
    assert_eq!(ctl_as(Some(NOBODY), &api, &["status"]).0, 0);
    assert_eq!(ctl_as(Some(NOBODY), &api, &["undrain"]).0, 4);
}

#[test]
fn root_tcp_is_read_only_for_a_user_without_the_token() {
    if !require(
        "root_tcp_is_read_only_for_a_user_without_the_token",
        &[Need::Root],
    ) {
        return;
    }
    let (d, _server) = announced("api-tcp-nobody", Api::Tcp, "token_file = \"api.token\"");
    let api = d.api().to_string();
    let (code, out, err) = ctl_as(Some(NOBODY), &api, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("announced"), "{out}");
    let (code, _, err) = ctl_as(Some(NOBODY), &api, &["drain", "web"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("a change over TCP needs the operator's token"),
        "{err}"
    );
    // Root's token file is not nobody's to read.
    let token = d.dir().join("api.token");
    let (code, _, err) = ctl_as(
        Some(NOBODY),
        &api,
        &["--token-file", token.to_str().unwrap(), "drain", "web"],
    );
    assert_eq!(code, 2, "{err}");
    assert_unchanged(&d, "after nobody's drains");
    assert!(d.log().contains("refused a change over TCP"), "{}", d.log());
}

/// `POST path` over TCP with `authorization` as the header, if any: status and body.
fn post_tcp(addr: &str, path: &str, authorization: Option<&str>) -> (u16, String) {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (code, body) = host::parse_reply(&reply);
    (code, body.to_string())
}

#[test]
fn tcp_changes_need_the_right_token() {
    let (d, _server) = announced("api-tcp-token", Api::Tcp, "token_file = \"api.token\"");
    let api = d.api();
    let oversized = format!("Bearer {}", "x".repeat(2000));
    let almost = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    for (auth, why) in [
        (None, "a change over TCP needs the operator's token"),
        (Some("Bearer wrong-token-0123456789abcdef"), "wrong token"),
        (Some(almost.as_str()), "wrong token"),
        // An empty token: HTTP trims the value to `Bearer`.
        (Some("Bearer "), "the Authorization header is not"),
        (
            Some(oversized.as_str()),
            "the token is longer than 1024 bytes",
        ),
        (
            Some(&format!("Basic {TOKEN}")),
            "the Authorization header is not `Bearer TOKEN`",
        ),
    ] {
        let (code, body) = post_tcp(api, "/v1/drain/web", auth);
        assert_eq!(code, 403, "{auth:?}: {body}");
        let e: Value = serde_json::from_str(&body).unwrap();
        let msg = e["error"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("not allowed: {why}")),
            "{auth:?}: {msg}"
        );
        assert_unchanged(&d, &format!("after a drain with {auth:?}"));
    }
    // An endpoint that does not exist is a change too: closed, not 404, to others.
    let (code, _) = post_tcp(api, "/v1/server/disable", None);
    assert_eq!(code, 403);

    let (code, body) = post_tcp(api, "/v1/drain/web", Some(&format!("Bearer {TOKEN}")));
    assert_eq!(code, 200, "{body}");
    d.wait_status("draining", WAIT, |s| vip_state(s) == "draining");
    // anycastctl --config takes the address and the token file from the site config.
    let config = d.config_path();
    let out = Command::new(env!("CARGO_BIN_EXE_anycastctl"))
        .arg("--config")
        .arg(&config)
        .arg("undrain")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_status("announced", WAIT, |s| vip_state(s) == "announced");
}

#[test]
fn tcp_without_a_token_file_is_read_only() {
    let (d, _server) = announced("api-tcp-ro", Api::Tcp, "");
    let (code, body) = post_tcp(d.api(), "/v1/drain", Some(&format!("Bearer {TOKEN}")));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("read-only over TCP"), "{body}");
    let (code, _, err) = d.ctl_operator(&["drain"]);
    assert_eq!(code, 4, "{err}");
    assert_unchanged(&d, "after the drains");
    // Reads stay open on loopback, as the default `public` over TCP says.
    assert_eq!(d.ctl(&["why", "web"]).0, 0);
}

/// `anycastd check` on `text` written as `site.toml` in a fresh dir holding `token`
/// (mode `mode`) as `api.token`: exit code, stdout, stderr.
fn check(test: &str, text: &str, mode: u32) -> (i32, String, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("anycastd-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_private(&dir.join("api.token"), TOKEN);
    std::fs::set_permissions(dir.join("api.token"), std::fs::Permissions::from_mode(mode)).unwrap();
    let config = dir.join("site.toml");
    std::fs::write(&config, text.replace("DIR", &dir.display().to_string())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_says_who_may_change_the_site_and_refuses_what_cannot_be_trusted() {
    let server: SocketAddr = ([127, 0, 0, 1], 8080).into();
    let site = |api: &str| host::config(Path::new("/tmp"), api, &[server]);
    let group = host::own_group();

    let (code, out, err) = check(
        "check-tcp",
        &site("listen = \"127.0.0.1:9180\"\ntoken_file = \"api.token\"\npublic = [\"metrics\"]"),
        0o600,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Local API on 127.0.0.1:9180 (TCP, loopback)\n  may change the site: holders of the token in ")
            && out.contains("  may read without a token: any local process: metrics\n"),
        "{out}"
    );

    let (code, out, err) = check(
        "check-unix",
        &site(&format!(
            "listen = \"unix:DIR/api.sock\"\ngroup = \"{group}\""
        )),
        0o600,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "api.sock (root:{group} mode 0660)\n  may change the site: root and group {group} (gid "
        )) && out.contains("checked by SO_PEERCRED\n  may read without being an operator: nobody"),
        "{out}"
    );

    // Refused with the file and the line of the value.
    let text = site("listen = \"127.0.0.1:9180\"\ntoken_file = \"api.token\"");
    let line = text
        .lines()
        .position(|l| l.starts_with("token_file"))
        .unwrap()
        + 1;
    let (code, _, err) = check("check-0644", &text, 0o644);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("site.toml:{line}:14: api token_file `"))
            && err
                .contains("api.token` is readable or writable by others (mode 0644): chmod 600 it"),
        "{err}"
    );
    let text = site("listen = \"unix:DIR/api.sock\"\ngroup = \"no-such-group-20\"");
    let line = text.lines().position(|l| l.starts_with("group")).unwrap() + 1;
    let (code, _, err) = check("check-group", &text, 0o600);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("site.toml:{line}:9: api group `no-such-group-20` does not exist: create it (groupadd --system GROUP) or name another")),
        "{err}"
    );
    let text = site("listen = \"127.0.0.1:9180\"\npublic = []");
    let (code, _, err) = check("check-nobody", &text, 0o600);
    assert_eq!(code, 1);
    assert!(
        err.contains("this TCP API would answer nobody: no token_file and no public endpoint"),
        "{err}"
    );
    let text = site(&format!(
        "listen = \"unix:DIR/api.sock\"\ngroup = \"{group}\"\npublic = [\"drain\"]"
    ));
    let (code, _, err) = check("check-public", &text, 0o600);
    assert_eq!(code, 1);
    assert!(
        err.contains("api public `drain` is not a read endpoint"),
        "{err}"
    );
}
