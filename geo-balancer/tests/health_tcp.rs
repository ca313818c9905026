//! Health checks against real listeners on 127.0.0.1: TCP, HTTP, command probes, and the
//! fast failure path (a killed listener is seen within milliseconds; a server that only
//! closes idle connections causes no failure). Every wait is bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use geo_balancer::errors::ProbeError;
use geo_balancer::health::probe::{http_client, probe};
use geo_balancer::health::watch::watch_idle;
use geo_balancer::health::{
    CheckConfig, CheckKind, HealthEvent, HealthState, ProbeOutcome, ProbeSource, ServerHealth,
    VipConfig, VipHealth, VipOutput, spawn_checker,
};
use geo_balancer::{ServerId, Time};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(5);

/// A port on 127.0.0.1 that nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

/// A listener that accepts and holds every connection until aborted. Returns the
/// address, the accept counter and the task (abort = the server process dies).
async fn holding_server() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (n, task) = hold_all(l);
    (addr, n, task)
}

/// Accepts and holds every connection on `l` until aborted: the accept counter and
/// the task.
fn hold_all(l: TcpListener) -> (Arc<AtomicUsize>, JoinHandle<()>) {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            n2.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (n, task)
}

/// A fast-detect watcher on `addr` (timeout 500 ms, the given retry) and its events.
fn watcher(addr: SocketAddr, retry: Duration) -> (JoinHandle<()>, mpsc::Receiver<HealthEvent>) {
    let (tx, rx) = mpsc::channel(8);
    let task = tokio::spawn(watch_idle(
        ServerId::new("rs1"),
        addr,
        Duration::from_millis(500),
        retry,
        tx,
        None,
    ));
    (task, rx)
}

/// The next event, within [`WAIT`].
async fn next_event(rx: &mut mpsc::Receiver<HealthEvent>) -> HealthEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("event in time")
        .expect("channel open")
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn cfg(kind: CheckKind, addr: SocketAddr) -> CheckConfig {
    CheckConfig {
        kind,
        timeout: Duration::from_millis(500),
        ..CheckConfig::tcp(ServerId::new("rs1"), addr)
    }
}

#[tokio::test]
async fn tcp_probe_up_and_refused() {
    let (addr, _, task) = holding_server().await;
    let http = http_client();
    assert_eq!(
        probe(&cfg(CheckKind::Tcp, addr), &http).await,
        ProbeOutcome::Success
    );
    task.abort();
    let dead = closed_port().await;
    let out = probe(&cfg(CheckKind::Tcp, dead), &http).await;
    assert!(
        matches!(out, ProbeOutcome::Failure(ProbeError::Refused { .. })),
        "{out:?}"
    );
}

#[tokio::test]
async fn http_probe_checks_the_status() {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/sick",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "no") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        );
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    let http = http_client();
    let check = |path: &str, expect_status: u16| {
        let mut c = cfg(
            CheckKind::Http {
                path: path.into(),
                expect_status,
                https: false,
            },
            addr,
        );
        c.timeout = Duration::from_millis(300);
        c
    };
    assert_eq!(
        probe(&check("/ok", 200), &http).await,
        ProbeOutcome::Success
    );
    assert_eq!(
        probe(&check("/sick", 503), &http).await,
        ProbeOutcome::Success
    );
    let out = probe(&check("/sick", 200), &http).await;
    assert!(
        matches!(
            out,
            ProbeOutcome::Failure(ProbeError::HttpStatus { got: 503, .. })
        ),
        "{out:?}"
    );
    let out = probe(&check("/missing", 200), &http).await;
    assert!(
        matches!(
            out,
            ProbeOutcome::Failure(ProbeError::HttpStatus { got: 404, .. })
        ),
        "{out:?}"
    );
    // Silent failure: the server accepts but does not answer in time.
    let started = Instant::now();
    let out = probe(&check("/slow", 200), &http).await;
    assert!(
        matches!(out, ProbeOutcome::Failure(ProbeError::Timeout { .. })),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    server.abort();
}

#[tokio::test]
async fn command_probe_by_exit_code() {
    let addr: SocketAddr = ([127, 0, 0, 1], 9).into();
    let http = http_client();
    let c = |argv: &[&str]| {
        cfg(
            CheckKind::Command {
                argv: argv.iter().map(|s| s.to_string()).collect(),
            },
            addr,
        )
    };
    assert_eq!(probe(&c(&["true"]), &http).await, ProbeOutcome::Success);
    assert_eq!(
        probe(&c(&["sh", "-c", "test \"$RS_PORT\" = 9"]), &http).await,
        ProbeOutcome::Success
    );
    let out = probe(&c(&["false"]), &http).await;
    assert!(
        matches!(out, ProbeOutcome::Failure(ProbeError::CommandFailed { .. })),
        "{out:?}"
    );
    let out = probe(&c(&["/nonexistent/check"]), &http).await;
    assert!(
        matches!(out, ProbeOutcome::Failure(ProbeError::CommandSpawn { .. })),
        "{out:?}"
    );
    let started = Instant::now();
    let out = probe(&c(&["sleep", "5"]), &http).await;
    assert!(
        matches!(out, ProbeOutcome::Failure(ProbeError::Timeout { .. })),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Kill the listener (and its connections): the watcher's connection closes, the
/// re-probe is refused, and a hard failure arrives within milliseconds.
#[tokio::test]
async fn killed_server_is_detected_within_milliseconds() {
    let (addr, accepted, task) = holding_server().await;
    let (watcher, mut rx) = watcher(addr, Duration::from_secs(2));
    wait_for("the idle connection", || {
        accepted.load(Ordering::SeqCst) >= 1
    })
    .await;
    let killed = Instant::now();
    task.abort();
    let ev = next_event(&mut rx).await;
    let took = killed.elapsed();
    eprintln!("fast path detected the killed server in {took:?}");
    assert!(
        matches!(
            ev.outcome,
            ProbeOutcome::HardFailure(ProbeError::Refused { .. })
        ),
        "{ev:?}"
    );
    assert_eq!(ev.source, ProbeSource::FastPath);
    assert!(took < Duration::from_millis(250), "took {took:?}");
    watcher.abort();
}

/// A server that closes idle connections after 50 ms (and stays up) causes reconnects,
/// never a failure.
#[tokio::test]
async fn server_closing_idle_connections_is_no_failure() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    let server = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(s);
            });
        }
    });
    let (watcher, mut rx) = watcher(addr, Duration::from_millis(20));
    let r = tokio::time::timeout(Duration::from_millis(1000), rx.recv()).await;
    assert!(r.is_err(), "no event expected, got {r:?}");
    let n = accepted.load(Ordering::SeqCst);
    assert!(
        n >= 3,
        "the watcher should have reconnected several times, accepted {n}"
    );
    watcher.abort();
    server.abort();
}

/// End to end: checker tasks feed ServerHealth and VipHealth; killing the only real
/// server yields Withdraw within milliseconds, far below fall x interval (3 x 1 s).
#[tokio::test]
async fn last_server_dying_withdraws_the_vip_at_once() {
    let (addr, accepted, task) = holding_server().await;
    let mut check = cfg(CheckKind::Tcp, addr);
    check.interval = Duration::from_secs(1);
    check.rise = 1;
    let (tx, mut rx) = mpsc::channel::<HealthEvent>(16);
    let _checker = spawn_checker(check.clone(), http_client(), tx);
    let mut health = ServerHealth::new(check.server.clone(), check.rise, check.fall, Time::now());
    let mut vip = VipHealth::new(VipConfig::default());
    let mut outputs = Vec::new();
    // First periodic check brings it up and announces.
    let start = Instant::now();
    while !vip.announced() {
        assert!(start.elapsed() < WAIT, "never announced");
        let ev = next_event(&mut rx).await;
        health.on_probe(ev.at, &ev.outcome);
        outputs.extend(vip.update(ev.at, usize::from(health.is_up()), true));
    }
    assert!(matches!(&outputs[..], [VipOutput::Announce { .. }]));
    wait_for("the idle connection", || {
        accepted.load(Ordering::SeqCst) >= 2
    })
    .await;
    let killed = Instant::now();
    task.abort();
    loop {
        assert!(killed.elapsed() < WAIT, "never withdrawn");
        let ev = next_event(&mut rx).await;
        health.on_probe(ev.at, &ev.outcome);
        let out = vip.update(ev.at, usize::from(health.is_up()), true);
        if matches!(&out[..], [VipOutput::Withdraw { .. }]) {
            break;
        }
    }
    let took = killed.elapsed();
    eprintln!("withdraw decided {took:?} after the last real server died");
    assert_eq!(health.state(), HealthState::Down);
    assert!(took < Duration::from_millis(250), "took {took:?}");
}

/// HTTPS check against a real TLS server with a self-signed certificate (a real server's
/// certificate names the service, not its address; liveness is what is checked).
#[tokio::test]
async fn https_probe_against_a_self_signed_server() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let cert = CertificateDer::from_pem_file(format!("{dir}/test-only.crt")).expect("cert");
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/test-only.key")).expect("key");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if req.starts_with("GET /healthz ") {
                    "200 OK"
                } else {
                    "503 Unavailable"
                };
                let resp =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let http = http_client();
    let check = |path: &str| {
        cfg(
            CheckKind::Http {
                path: path.into(),
                expect_status: 200,
                https: true,
            },
            addr,
        )
    };
    assert_eq!(
        probe(&check("/healthz"), &http).await,
        ProbeOutcome::Success
    );
    let out = probe(&check("/other"), &http).await;
    assert!(
        matches!(
            out,
            ProbeOutcome::Failure(ProbeError::HttpStatus { got: 503, .. })
        ),
        "{out:?}"
    );
    // Plain HTTP against the TLS port fails as a check, not a panic.
    let plain = cfg(
        CheckKind::Http {
            path: "/healthz".into(),
            expect_status: 200,
            https: false,
        },
        addr,
    );
    assert!(matches!(
        probe(&plain, &http).await,
        ProbeOutcome::Failure(_)
    ));
    server.abort();
}

/// A server that comes back after being down: the watcher holds its idle connection
/// again within about 100 ms (not a whole check interval later), so a kill soon after
/// the recovery is still seen at once.
#[tokio::test]
async fn a_recovered_server_is_watched_again_at_once() {
    // Reserve a port, keep it closed for a while, then listen on it.
    let addr = closed_port().await;
    let (watcher, mut rx) = watcher(addr, Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let l = TcpListener::bind(addr)
        .await
        .expect("rebind the reserved port");
    let back = Instant::now();
    let (accepted, task) = hold_all(l);
    wait_for("the idle connection after recovery", || {
        accepted.load(Ordering::SeqCst) >= 1
    })
    .await;
    let held_after = back.elapsed();
    assert!(
        held_after < Duration::from_millis(500),
        "held again only after {held_after:?}"
    );
    task.abort();
    let ev = next_event(&mut rx).await;
    assert!(matches!(ev.outcome, ProbeOutcome::HardFailure(_)), "{ev:?}");
    watcher.abort();
}
