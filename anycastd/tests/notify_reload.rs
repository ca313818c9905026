//! `[notify]` added by a reload (SIGHUP) to the real daemon (no root: `dataplane =
//! false`, real servers on 127.0.0.1): the new notifier sends the next changes to an
//! axum receiver on loopback started by this test: the VIP announced once its real
//! server listens, then the drain.

mod host;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anycast_lab::netns::wait_until;
use host::{Api, Daemon, RealServer, free_ports};
use serde_json::Value;

type Seen = Arc<Mutex<Vec<Value>>>;

/// A webhook receiver on 127.0.0.1 served by a thread of its own; its port.
fn receiver(seen: Seen) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let seen = seen.clone();
                    async move {
                        let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        seen.lock().unwrap().push(v);
                        axum::http::StatusCode::OK
                    }
                }),
            );
            let _ = axum::serve(l, app).await;
        });
    });
    port
}

fn kinds(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
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
    let hook = receiver(seen.clone());
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
    let v = seen.lock().unwrap()[1].clone();
    assert_eq!(
        (v["kind"].as_str(), v["site"].as_str(), v["vip"].as_str()),
        (Some("vip_draining"), Some("idc1"), Some("web"))
    );
    assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
}
