//! The load exchange over real HTTP on 127.0.0.1: the sender's client and signing, a thin
//! axum listener in front of `PeerTable::receive` (as the daemon's will be). A valid
//! report is accepted; forged, replayed, stale, future, oversize, garbage, unknown-sender,
//! misaddressed and header-less reports are rejected with their reason and change nothing.

mod common;

use common::report;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use geo_balancer::errors::SendError;
use geo_balancer::exchange::client::{ReportClient, SignedReport, sign_report};
use geo_balancer::exchange::{
    ExchangeConfig, LoadReport, LocalState, PeerTable, REPORT_PATH, RejectKind, ReportScheduler,
    SIGNATURE_HEADER, SITE_HEADER,
};
use geo_balancer::{SiteId, SiteLoad, SpillConfig, Time};
use tokio::net::TcpListener;

const KEY_AB: &[u8] = b"shared-key-a-b-0123456789";
const KEY_CB: &[u8] = b"shared-key-c-b-0123456789";

type Table = Arc<Mutex<PeerTable>>;

/// The daemon-side handler, as thin as it should be.
async fn handle(
    State(table): State<Table>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (site, sig) = (h(SITE_HEADER), h(SIGNATURE_HEADER));
    let Ok(mut t) = table.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "poisoned".into());
    };
    match t.receive(Time::now(), site.as_deref(), sig.as_deref(), &body) {
        Ok(a) => (StatusCode::OK, format!("accepted seq {}", a.seq)),
        Err(r) => (
            StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            r.to_string(),
        ),
    }
}

async fn site_b() -> (String, Table) {
    let cfg = ExchangeConfig::new(SiteId::new("site-b"));
    let table = PeerTable::new(
        cfg,
        vec![
            (SiteId::new("site-a"), KEY_AB.to_vec()),
            (SiteId::new("site-c"), KEY_CB.to_vec()),
        ],
    )
    .expect("valid table");
    let table = Arc::new(Mutex::new(table));
    // Read a little past our own limit, so the table (not axum) says "oversize".
    let limit = table.lock().map(|t| t.body_limit()).unwrap_or(8192) + 1;
    let app = Router::new()
        .route(REPORT_PATH, post(handle))
        .layer(DefaultBodyLimit::max(limit * 4))
        .with_state(table.clone());
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}{REPORT_PATH}"), table)
}

fn signed(r: &LoadReport, key: &[u8]) -> SignedReport {
    sign_report(r, key).expect("sign")
}

async fn expect_reject(
    client: &ReportClient,
    url: &str,
    s: &SignedReport,
    status: u16,
    words: &str,
) {
    match client.send(url, s).await {
        Err(SendError::Rejected {
            status: got, body, ..
        }) => {
            assert_eq!(got, status, "{body}");
            assert!(body.contains(words), "{body:?} should mention {words:?}");
        }
        other => panic!("expected a rejection ({words}), got {other:?}"),
    }
}

#[tokio::test]
async fn valid_accepted_and_every_bad_report_rejected_without_state_change() {
    let (url, table) = site_b().await;
    let client = ReportClient::new(Duration::from_secs(2));
    let now = Time::now().as_millis();

    // Valid.
    client
        .send(&url, &signed(&report(100, now, 0.62), KEY_AB))
        .await
        .expect("accepted");
    let snapshot = |t: &Table| t.lock().map(|t| t.status(Time(now))).expect("lock");
    let after_valid = snapshot(&table);
    let a = &after_valid[0];
    assert!(a.known && a.accepted == 1, "{a:?}");
    assert_eq!(a.last_report.as_ref().map(|r| r.seq), Some(100));

    // Forged: wrong key; and a body changed after signing.
    expect_reject(
        &client,
        &url,
        &signed(&report(101, now, 0.1), KEY_CB),
        401,
        "forged",
    )
    .await;
    let mut tampered = signed(&report(101, now, 0.62), KEY_AB);
    tampered.body = String::from_utf8_lossy(&tampered.body)
        .replace("0.62", "0.01")
        .into_bytes();
    expect_reject(&client, &url, &tampered, 401, "forged").await;

    // Replayed: the same report again, and an older seq.
    expect_reject(
        &client,
        &url,
        &signed(&report(100, now, 0.62), KEY_AB),
        409,
        "replayed",
    )
    .await;
    expect_reject(
        &client,
        &url,
        &signed(&report(99, now, 0.3), KEY_AB),
        409,
        "replayed",
    )
    .await;

    // Stale (older than one period plus the 30 s skew) and from the future (beyond the skew).
    expect_reject(
        &client,
        &url,
        &signed(&report(102, now - 200_000, 0.3), KEY_AB),
        400,
        "stale",
    )
    .await;
    expect_reject(
        &client,
        &url,
        &signed(&report(103, now + 60_000, 0.3), KEY_AB),
        400,
        "future",
    )
    .await;

    // Oversize, even when correctly signed.
    let mut big = report(104, now, 0.3);
    big.spilling_to = vec![SiteId::new("x".repeat(200)); 50];
    expect_reject(&client, &url, &signed(&big, KEY_AB), 413, "oversize").await;

    // Garbage: signed garbage is malformed; unsigned garbage is unauthenticated.
    let garbage = b"\x00\xffnot json{{".to_vec();
    let g = SignedReport {
        sender: "site-a".into(),
        peer: "site-b".into(),
        signature: geo_balancer::exchange::auth::sign(KEY_AB, &garbage),
        body: garbage.clone(),
    };
    expect_reject(&client, &url, &g, 400, "malformed").await;
    let mut bad_values = report(105, now, 0.3);
    bad_values.spill_share = 7.0;
    expect_reject(
        &client,
        &url,
        &signed(&bad_values, KEY_AB),
        400,
        "spill_share",
    )
    .await;
    let http = reqwest::Client::new();
    let resp = http.post(&url).body(garbage).send().await.expect("post");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("missing header")
    );

    // Unknown sender; sender field not matching the header; addressed to another site.
    let mut intruder = signed(&report(106, now, 0.3), KEY_AB);
    intruder.sender = "site-z".into();
    expect_reject(&client, &url, &intruder, 401, "unknown sender").await;
    let mut spoof = report(107, now, 0.3);
    spoof.sender = SiteId::new("site-c");
    let mut s = signed(&spoof, KEY_AB);
    s.sender = "site-a".into();
    expect_reject(&client, &url, &s, 400, "mismatch").await;
    let mut elsewhere = report(108, now, 0.3);
    elsewhere.receiver = SiteId::new("site-c");
    expect_reject(&client, &url, &signed(&elsewhere, KEY_AB), 400, "not us").await;

    // Nothing changed but the counters.
    assert_eq!(snapshot(&table), after_valid);
    let counts = table.lock().map(|t| t.rejected()).expect("lock");
    assert_eq!(counts[&RejectKind::Forged], 2);
    assert_eq!(counts[&RejectKind::Replayed], 2);
    assert_eq!(counts[&RejectKind::Stale], 2);
    assert_eq!(counts[&RejectKind::Oversize], 1);
    assert_eq!(counts[&RejectKind::Malformed], 4);
    assert_eq!(counts[&RejectKind::Unauthenticated], 2);

    // The next valid report is still accepted.
    client
        .send(&url, &signed(&report(109, now, 0.5), KEY_AB))
        .await
        .expect("accepted");
}

/// Scheduler -> sign -> HTTP -> PeerTable -> spill view, and a peer going unknown.
#[tokio::test]
async fn scheduled_reports_reach_the_spill_view_and_expire() {
    let (url, table) = site_b().await;
    let client = ReportClient::new(Duration::from_secs(2));
    let cfg = ExchangeConfig::new(SiteId::new("site-a"));
    let mut sched =
        ReportScheduler::new(cfg, SpillConfig::default(), vec![SiteId::new("site-b")], 42);
    let state = LocalState {
        vips_down: Vec::new(),
        load: SiteLoad {
            served: 1.0,
            director: 1.2,
            healthy_capacity: 2000,
            active_local: 2000,
            active_spilled: 400,
            up_servers: 2,
        },
        spilling_to: vec![SiteId::new("site-b")],
        spill_share: 0.17,
    };
    let now = Time::now();
    let round = sched.poll(now, &state).expect("first round");
    for r in &round.reports {
        client
            .send(&url, &signed(r, KEY_AB))
            .await
            .expect("accepted");
    }
    let t = table.lock().expect("lock");
    let views = t.views(now);
    let a = views
        .iter()
        .find(|v| v.site.as_str() == "site-a")
        .and_then(|v| v.facts.clone())
        .expect("known");
    assert_eq!(a.load, 1.0);
    assert!(a.spilling_to_us, "site-a says it spills to site-b");
    let c = views
        .iter()
        .find(|v| v.site.as_str() == "site-c")
        .expect("listed");
    assert!(c.facts.is_none(), "never reported: unknown");
    // Three periods (360 s) later without a report, site-a is unknown too.
    let later = now.plus(Duration::from_secs(361));
    assert!(t.views(later).iter().all(|v| v.facts.is_none()));
    assert!(
        t.next_expiry(now)
            .is_some_and(|e| e > now.plus(Duration::from_secs(359)))
    );
}

/// Key rotation: with a next key set, both keys are accepted; afterwards only the new.
#[tokio::test]
async fn key_rotation_accepts_both_keys_during_the_overlap() {
    let (url, table) = site_b().await;
    let client = ReportClient::new(Duration::from_secs(2));
    let now = Time::now().as_millis();
    const NEW: &[u8] = b"the-new-key-for-a-b-after-rotation";
    expect_reject(
        &client,
        &url,
        &signed(&report(1, now, 0.5), NEW),
        401,
        "forged",
    )
    .await;
    table
        .lock()
        .expect("lock")
        .set_next_key(&SiteId::new("site-a"), Some(NEW.to_vec()))
        .expect("next key");
    client
        .send(&url, &signed(&report(2, now, 0.5), KEY_AB))
        .await
        .expect("old key");
    client
        .send(&url, &signed(&report(3, now, 0.5), NEW))
        .await
        .expect("new key");
    assert!(
        table
            .lock()
            .expect("lock")
            .set_next_key(&SiteId::new("site-z"), None)
            .is_err()
    );
    assert!(
        table
            .lock()
            .expect("lock")
            .set_next_key(&SiteId::new("site-a"), Some(b"short".to_vec()))
            .is_err()
    );
}

#[tokio::test]
async fn a_site_of_two_directors_reaches_its_peer_as_one_site() {
    let (url, table) = site_b().await;
    let client = ReportClient::new(Duration::from_secs(2));
    let now = Time::now();
    // Directors lb1 and lb1b of site-a, sharing two real servers of 1000 each.
    for (name, active) in [("lb1", 600u64), ("lb1b", 400)] {
        let cfg = ExchangeConfig::new(SiteId::new("site-a"));
        let mut sched =
            ReportScheduler::new(cfg, SpillConfig::default(), vec![SiteId::new("site-b")], 7)
                .with_identity(name.into(), "ab12".into());
        let served = active as f64 / 2000.0;
        let state = LocalState {
            vips_down: Vec::new(),
            load: SiteLoad {
                served,
                director: served,
                healthy_capacity: 2000,
                active_local: active,
                active_spilled: 0,
                up_servers: 2,
            },
            spilling_to: vec![],
            spill_share: 0.0,
        };
        for r in &sched.poll(now, &state).expect("first round").reports {
            client
                .send(&url, &signed(r, KEY_AB))
                .await
                .expect("accepted");
        }
    }
    let t = table.lock().expect("lock");
    let a = t
        .views(now)
        .into_iter()
        .find(|v| v.site.as_str() == "site-a")
        .and_then(|v| v.facts)
        .expect("known");
    // One site: 1000 connections on the shared 2000.
    assert_eq!((a.load, a.capacity), (0.5, 2000));
    let st = t.status(now);
    let names: Vec<&str> = st[0].directors.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["lb1", "lb1b"]);
}
