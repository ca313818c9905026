//! The notifier against real receivers on loopback: an axum server started by the test
//! that fails the first tries (the retries are seen arriving, spaced by the backoff), one
//! that holds every request until released (the queue bound drops the oldest), and the
//! command hook (a real program reading the notice on stdin; one killed at its timeout).
//! Bounded: every wait has a limit, every loop a count.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anycastd::config::notify::{Command, Notify};
use anycastd::notify::{Event, Kind, Notifier, Stats};
use axum::extract::State;
use axum::http::StatusCode;
use geo_balancer::Time;
use serde_json::Value;

#[derive(Default)]
struct Seen {
    /// Every request's body and when it came.
    bodies: Vec<(Instant, Value)>,
    /// Requests to refuse (503) before accepting.
    fail_first: usize,
}

type Shared = Arc<Mutex<Seen>>;

async fn hook(State(s): State<Shared>, body: axum::body::Bytes) -> StatusCode {
    let mut s = s.lock().unwrap();
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.bodies.push((Instant::now(), v));
    if s.bodies.len() <= s.fail_first {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

/// A receiver on 127.0.0.1; its URL.
async fn receiver(seen: Shared, gate: Option<Arc<tokio::sync::Semaphore>>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(move |st: State<Shared>, body: axum::body::Bytes| {
                let gate = gate.clone();
                async move {
                    if let Some(g) = gate {
                        // Held until the test releases one permit per request.
                        let _p = g.acquire().await.unwrap();
                    }
                    hook(st, body).await
                }
            }),
        )
        .with_state(seen);
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    url
}

fn event(kind: Kind, subject: &str) -> Event {
    Event::new(kind, subject.to_string(), "test".to_string(), Time::now())
}

fn config(webhooks: Vec<String>) -> Notify {
    Notify {
        webhooks,
        timeout: Duration::from_secs(5),
        coalesce: Duration::ZERO,
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        attempts: 10,
        ..Notify::default()
    }
}

/// Waits (at most `limit`) until `f` holds for the notifier's counts.
async fn wait_stats(n: &Notifier, limit: Duration, f: impl Fn(&Stats) -> bool) -> Stats {
    let end = Instant::now() + limit;
    loop {
        let s = n.stats();
        if f(&s) || Instant::now() > end {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_notice_again_with_backoff() {
    let seen: Shared = Arc::new(Mutex::new(Seen {
        fail_first: 3,
        ..Seen::default()
    }));
    let url = receiver(seen.clone(), None).await;
    let n = Notifier::start("idc1", &config(vec![url])).unwrap();
    n.send(event(Kind::VipWithdrawn, "vip web"));
    let st = wait_stats(&n, Duration::from_secs(10), |s| s.sinks[0].1.delivered == 1).await;
    let (label, s) = &st.sinks[0];
    assert_eq!(
        (label.as_str(), s.delivered, s.retries, s.failed),
        ("webhook0", 1, 3, 0)
    );
    let bodies = seen.lock().unwrap().bodies.clone();
    assert_eq!(bodies.len(), 4);
    for (_, b) in &bodies {
        assert_eq!(b["kind"], "vip_withdrawn");
        assert_eq!(b["site"], "idc1");
        assert_eq!(b["vip"], Value::Null, "set by the core, not by Event::new");
    }
    // Spaced by 100, 200, 400 ms (at least: a busy machine only makes it later).
    let gaps: Vec<Duration> = bodies.windows(2).map(|w| w[1].0 - w[0].0).collect();
    println!("retry gaps: {gaps:?}");
    for (gap, min) in gaps.iter().zip([100, 200, 400]) {
        assert!(*gap >= Duration::from_millis(min - 5), "{gaps:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_receiver_fills_the_queue_and_the_oldest_are_dropped() {
    let seen: Shared = Arc::default();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let url = receiver(seen.clone(), Some(gate.clone())).await;
    let n = Notifier::start(
        "idc1",
        &Notify {
            queue: 2,
            ..config(vec![url])
        },
    )
    .unwrap();
    n.send(event(Kind::ServerDown, "server 0"));
    // The first is in flight, held by the receiver; then five more arrive.
    assert!(
        wait_stats(&n, Duration::from_secs(5), |s| s.sinks[0].1.queued == 1)
            .await
            .sinks[0]
            .1
            .queued
            == 1
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 1..6 {
        n.send(event(Kind::ServerDown, &format!("server {i}")));
    }
    let st = wait_stats(&n, Duration::from_secs(5), |s| s.sinks[0].1.dropped == 4).await;
    assert_eq!(
        (st.sinks[0].1.dropped, st.sinks[0].1.queued),
        (4, 2),
        "{st:?}"
    );
    gate.add_permits(10);
    let st = wait_stats(&n, Duration::from_secs(5), |s| s.sinks[0].1.delivered == 2).await;
    assert_eq!(st.sinks[0].1.queued, 0, "{st:?}");
    let subjects: Vec<String> = seen
        .lock()
        .unwrap()
        .bodies
        .iter()
        .map(|(_, b)| b["subject"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(subjects, ["server 0", "server 5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flap_reaches_the_receiver_once_with_its_count() {
    let seen: Shared = Arc::default();
    let url = receiver(seen.clone(), None).await;
    let n = Notifier::start(
        "idc1",
        &Notify {
            coalesce: Duration::from_millis(500),
            ..config(vec![url])
        },
    )
    .unwrap();
    for k in [Kind::ServerDown, Kind::ServerUp, Kind::ServerDown] {
        n.send(event(k, "server web/tcp80/10.0.0.1:80"));
    }
    n.send(event(Kind::PeerLost, "peer idc2"));
    wait_stats(&n, Duration::from_secs(5), |s| s.sinks[0].1.delivered == 2).await;
    let bodies = seen.lock().unwrap().bodies.clone();
    assert_eq!(bodies.len(), 2);
    let flap = &bodies[0].1;
    assert_eq!(flap["kind"], "server_down");
    assert_eq!(flap["count"], 3);
    assert_eq!(
        flap["history"],
        serde_json::json!(["server_down", "server_up", "server_down"])
    );
    assert_eq!(bodies[1].1["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_hook_reads_the_notice_on_stdin_and_a_slow_one_is_killed() {
    let dir = std::env::temp_dir().join(format!("anycastd-notify-hook-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("notice.json");
    // tee: a real program, no shell; the notice goes to the file.
    let n = Notifier::start(
        "idc1",
        &Notify {
            command: Some(Command {
                program: "/usr/bin/tee".into(),
                args: vec![out.display().to_string()],
                timeout: Duration::from_secs(5),
            }),
            ..config(Vec::new())
        },
    )
    .unwrap();
    n.send(event(Kind::SpillStarted, "spill idc2"));
    let st = wait_stats(&n, Duration::from_secs(10), |s| s.sinks[0].1.delivered == 1).await;
    assert_eq!(st.sinks[0].0, "command");
    assert_eq!(st.sinks[0].1.delivered, 1, "{st:?}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["subject"].as_str()),
        (Some("spill_started"), Some("spill idc2"))
    );

    // A hook that never ends: killed at its timeout, tried `attempts` times, given up.
    let slow = Notifier::start(
        "idc1",
        &Notify {
            attempts: 2,
            command: Some(Command {
                program: "/bin/sleep".into(),
                args: vec!["30".into()],
                timeout: Duration::from_millis(200),
            }),
            ..config(Vec::new())
        },
    )
    .unwrap();
    let t0 = Instant::now();
    slow.send(event(Kind::PeerLost, "peer idc3"));
    let st = wait_stats(&slow, Duration::from_secs(10), |s| s.sinks[0].1.failed == 1).await;
    assert_eq!(
        (st.sinks[0].1.failed, st.sinks[0].1.retries),
        (1, 1),
        "{st:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
}
