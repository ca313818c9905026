//! `anycastctl server list|disable|enable` against the real anycastd on the host (no
//! root needed: the API socket belongs to this process's own group): one real server
//! taken out while its partner serves, the last one refused without `--force`, an
//! unknown one named with the ones there are, the state kept across SIGHUP and a
//! restart, then the server put back.

mod host;

use std::time::Duration;

use host::{Api, Daemon, RealServer, ctl};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

fn server<'a>(st: &'a Value, addr: &str) -> &'a Value {
    st["real_servers"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|r| format!("{}:{}", r["address"].as_str().unwrap_or(""), r["port"]) == addr)
        })
        .unwrap_or(&Value::Null)
}

fn out_with_one_up(st: &Value, a1: &str) -> bool {
    st["vips"][0]["state"] == "announced"
        && st["vips"][0]["servers_up"] == 1
        && server(st, a1)["state"] == "disabled"
}

#[test]
fn one_server_out_and_back_across_reload_and_restart() {
    let (s1, s2) = (RealServer::start(), RealServer::start());
    let (a1, a2) = (s1.addr.to_string(), s2.addr.to_string());
    let mut d = Daemon::start("ctl-server", Api::Unix, &[s1.addr, s2.addr]);
    let api = d.api().to_string();
    d.wait_status("web announced with 2 up", WAIT, |st| {
        st["vips"][0]["state"] == "announced" && st["vips"][0]["servers_up"] == 2
    });

    let (code, _, err) = ctl(&api, &["server", "disable", "web", "127.0.0.9:1"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "VIP `web` has no real server 127.0.0.9:1 (its real servers: {a1}, {a2})"
        )),
        "{err}"
    );

    let (code, out, err) = ctl(&api, &["server", "disable", "web", &a1]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{a1} of VIP web disabled")), "{out}");
    let st = d.wait_status("the first server out", WAIT, |st| out_with_one_up(st, &a1));
    assert!(
        server(&st, &a1)["disabled_by"]
            .as_str()
            .is_some_and(|b| b.starts_with("uid ")),
        "{st:#}"
    );
    assert_eq!(server(&st, &a1)["weight"], 0, "{st:#}");

    let (code, out, err) = ctl(&api, &["server", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("REAL SERVER"), "{out}");
    assert!(out.contains("DISABLED by uid "), "{out}");
    let (code, out, _) = ctl(&api, &["--json", "server", "list"]);
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).expect("a JSON array");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{out}");

    // The last server the VIP needs: refused without --force, nothing changes.
    let (code, _, err) = ctl(&api, &["server", "disable", "web", &a2]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("add --force"), "{err}");
    assert_eq!(server(&d.status().expect("status"), &a2)["state"], "up");

    // Kept across a reload and a restart (the daemon is killed, not stopped).
    d.sighup();
    d.wait_status("still out after SIGHUP", WAIT, |st| {
        out_with_one_up(st, &a1)
    });
    d.restart();
    d.wait_status("still out after a restart", WAIT, |st| {
        out_with_one_up(st, &a1)
    });

    let (code, out, err) = ctl(&api, &["server", "enable", "web", &a1]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("enabled"), "{out}");
    d.wait_status("both up again", WAIT, |st| {
        st["vips"][0]["servers_up"] == 2 && server(st, &a1)["disabled_by"].is_null()
    });
    // Enabled stays enabled across a restart too.
    d.restart();
    d.wait_status("both up after a restart", WAIT, |st| {
        st["vips"][0]["servers_up"] == 2
    });
}
