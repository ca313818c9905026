//! `[notify]` added by a reload (SIGHUP) to the real daemon (no root: `dataplane =
//! false`, real servers on 127.0.0.1): the new notifier sends the next changes to an
//! axum receiver on loopback started by this test (tests/hook): the VIP announced once its real
//! server listens, then the drain.

mod hook;
mod host;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anycast_lab::netns::wait_until;
use hook::{Seen, notices};
use host::{Api, Daemon, RealServer, free_ports};

fn kinds(seen: &Seen) -> Vec<String> {
    notices(seen)
        .iter()
        .map(|v| v["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn notify_added_by_a_reload_sends_the_next_changes() {
    let [port] = free_ports::<1>();
    let addrs: Vec<SocketAddr> = vec![([127, 0, 0, 1], port).into()];
    let d = Daemon::start("notify-reload", Api::Tcp, &addrs);
    let seen: Seen = Arc::default();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = l.local_addr().unwrap().port();
    let _stop = hook::serve(l, seen.clone());
    let text = std::fs::read_to_string(d.config_path()).unwrap();
    std::fs::write(
        d.config_path(),
        format!(
            "{text}\n[notify]\nwebhooks = [\"http://127.0.0.1:{hook}/hook\"]\ncoalesce = \"0s\"\n"
        ),
    )
    .unwrap();
    d.sighup();
    assert!(
        d.log().contains("reload: new config in force"),
        "{}",
        d.log()
    );

    let _server = RealServer::on(port).expect("real server port still free");
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(20), || {
            kinds(&seen).contains(&"vip_announced".to_string())
        }),
        "no vip_announced after the reload: {:?}\n{}",
        kinds(&seen),
        d.log()
    );
    // Its first verdict is no event: only the VIP's.
    assert_eq!(kinds(&seen), ["vip_announced"]);
    let (code, out, err) = d.ctl_operator(&["drain", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            kinds(&seen).len() == 2
        }),
        "{:?}",
        kinds(&seen)
    );
    let v = notices(&seen)[1].clone();
    assert_eq!(
        (v["kind"].as_str(), v["site"].as_str(), v["vip"].as_str()),
        (Some("vip_draining"), Some("idc1"), Some("web"))
    );
    assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
}
