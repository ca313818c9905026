//! The browser monitor's HTTPS API against the real daemon (the built binary,
//! `site.dataplane = false`, no root): logins right and wrong, the session cookie's
//! flags, CSRF missing and forged, a viewer refused a drain, an oversized body, an
//! unknown route, an expired session, the login limiter, the live feed, an operator's
//! drain that the controller carries out, and every refusal counted on /metrics.

mod host;
mod monitor;

use std::time::Duration;

use host::{RealServer, free_ports};
use monitor::{OPERATOR, Site, VIEWER, vip_state};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

async fn post(
    site: &Site,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    let mut req = site.client().post(site.url(path)).header("cookie", cookie);
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (
        code,
        serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default(),
    )
}

async fn get(site: &Site, path: &str, cookie: &str) -> (u16, Value) {
    let r = site
        .client()
        .get(site.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (
        code,
        serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_https_sessions_csrf_roles_and_refusals() {
    let site = Site::start_announced("monitor-https", "2s", WAIT);

    // The page is served with its policy; the API needs a session.
    let page = site.client().get(site.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(page.headers().contains_key("strict-transport-security"));
    assert!(page.text().await.unwrap().contains("app.js"));
    let (code, body) = get(&site, "/api/status", "").await;
    assert_eq!(code, 401, "{body}");

    // A login that a cross-site form could send (not JSON) is refused before any check.
    let r = site
        .client()
        .post(site.url("/api/login"))
        .header("content-type", "text/plain")
        .body(format!(
            "{{\"user\":\"{}\",\"password\":\"{}\"}}",
            OPERATOR.0, OPERATOR.1
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.headers().get("set-cookie").is_none());

    // A wrong password, an unknown user: the same answer.
    let (code, body) = site
        .login(OPERATOR.0, "not-the-password")
        .await
        .unwrap_err();
    assert_eq!(
        (code, body.contains("wrong user or password")),
        (401, true),
        "{body}"
    );
    let (code, _) = site.login("mallory", OPERATOR.1).await.unwrap_err();
    assert_eq!(code, 401);

    // A viewer reads, and is refused a drain (with a valid CSRF token).
    let viewer = site
        .login(VIEWER.0, VIEWER.1)
        .await
        .expect("viewer logs in");
    assert_eq!(viewer.role, "viewer");
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(viewer.set_cookie.contains(flag), "{}", viewer.set_cookie);
    }
    let (code, st) = get(&site, "/api/status", &viewer.cookie).await;
    assert_eq!((code, st["site"].as_str()), (200, Some("idc1")), "{st}");
    let (code, body) = post(
        &site,
        "/api/drain/web",
        &viewer.cookie,
        Some(&viewer.csrf),
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("only an operator"),
        "{body}"
    );

    // An operator without the token, with another session's token, with a forged one.
    let op = site
        .login(OPERATOR.0, OPERATOR.1)
        .await
        .expect("operator logs in");
    assert_eq!(op.role, "operator");
    for (token, why) in [
        (None, "missing"),
        (Some(viewer.csrf.as_str()), "wrong"),
        (Some("forged"), "wrong"),
    ] {
        let (code, body) = post(&site, "/api/drain/web", &op.cookie, token, None).await;
        assert_eq!(code, 403, "{body}");
        assert!(body["error"].as_str().unwrap().contains(why), "{body}");
    }
    // A forged session cookie is no session.
    let (code, _) = post(
        &site,
        "/api/drain/web",
        "anycastd_session=0123",
        Some(&op.csrf),
        None,
    )
    .await;
    assert_eq!(code, 401);
    // An oversized body, an unknown route, a body that is not JSON.
    let big = format!("{{\"vip\":\"web\",\"server\":\"{}\"}}", "x".repeat(10_000));
    let (code, body) = post(
        &site,
        "/api/server/disable",
        &op.cookie,
        Some(&op.csrf),
        Some(big),
    )
    .await;
    assert_eq!(code, 413, "{body}");
    let (code, _) = get(&site, "/api/nope", &op.cookie).await;
    assert_eq!(code, 404);
    let (code, body) = post(
        &site,
        "/api/server/disable",
        &op.cookie,
        Some(&op.csrf),
        Some("{".into()),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    // Nothing of that changed the site.
    let st = site.daemon.status().unwrap();
    assert_eq!(vip_state(&st), "announced", "{st:#}");
    assert!(
        st["real_servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "up"),
        "{st:#}"
    );

    // The live feed: a status event at once.
    let mut feed = site.events(&op).await;
    let first = monitor::next_status(&mut feed, &mut String::new(), WAIT).await;
    assert_eq!(first["site"], "idc1", "{first:#}");
    drop(feed);

    // The operator's drain, carried out by the controller.
    let (code, body) = post(&site, "/api/drain/web", &op.cookie, Some(&op.csrf), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["vips"], serde_json::json!(["web"]), "{body}");
    site.daemon
        .wait_status("web draining", WAIT, |st| vip_state(st) == "draining");
    let (code, body) = post(&site, "/api/undrain/web", &op.cookie, Some(&op.csrf), None).await;
    assert_eq!(code, 200, "{body}");
    site.daemon.wait_status("web announced again", WAIT, |st| {
        vip_state(st) == "announced"
    });

    // Logout ends the session.
    let (code, _) = post(&site, "/api/logout", &op.cookie, Some(&op.csrf), None).await;
    assert_eq!(code, 204);
    let (code, _) = get(&site, "/api/status", &op.cookie).await;
    assert_eq!(code, 401);

    // An idle session expires (2 s here); the feed and the API say so.
    let idle = site.login(VIEWER.0, VIEWER.1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (code, body) = get(&site, "/api/status", &idle.cookie).await;
    assert_eq!(code, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    // Five failures from one address lock it, even for the right password.
    for _ in 0..3 {
        let (code, _) = site.login(VIEWER.0, "wrong").await.unwrap_err();
        assert_eq!(code, 401);
    }
    let (code, body) = site.login(OPERATOR.0, OPERATOR.1).await.unwrap_err();
    assert_eq!(code, 429, "{body}");

    // Every refusal counted, every action in the audit log.
    let metrics = site.metrics().await;
    let count = |reason: &str| -> u64 {
        let key = format!("anycast_monitor_refused_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    for (reason, at_least) in [
        ("bad_login", 5),
        ("rate_limited", 1),
        ("csrf", 3),
        ("forbidden", 1),
        ("too_large", 1),
        ("not_found", 1),
        ("bad_request", 1),
        ("session_expired", 1),
        ("unauthenticated", 3),
    ] {
        assert!(
            count(reason) >= at_least,
            "{reason}: {}\n{metrics}",
            count(reason)
        );
    }
    let log = site.daemon.log();
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("audit")).collect();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("/api/drain/web") && l.contains("\"op\"") && l.contains("\"ok\"")),
        "{log}"
    );
    assert!(
        audit.iter().any(|l| l.contains("/api/drain/web")
            && l.contains("\"ann\"")
            && l.contains("not an operator")),
        "{log}"
    );
    // Refusals log once per burst: three CSRF refusals, one line.
    let csrf_lines = log
        .lines()
        .filter(|l| l.contains("monitor refused a request") && l.contains("\"csrf\""))
        .count();
    assert_eq!(csrf_lines, 1, "{log}");
}

/// A client that completes the TLS handshake and then sends nothing is closed once the
/// header deadline (10 s) passes, while the monitor keeps answering others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_closes_a_connection_that_sends_no_request() {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use tokio::io::AsyncReadExt;
    use tokio_rustls::rustls;

    let port = free_ports::<1>()[0];
    let server = RealServer::on(port).unwrap().addr;
    let site = Site::start("monitor-silent", &[server], "30m");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(site.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(site.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(monitor::HOST).unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let opened = std::time::Instant::now();
    // Meanwhile the page is served to others.
    let page = site.client().get(site.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(60), tls.read(&mut buf)).await;
    let closed_after = opened.elapsed();
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the silent connection was not closed: {read:?}"
    );
    assert!(
        closed_after >= Duration::from_secs(9),
        "closed after {closed_after:?}"
    );
    println!("a connection that sent nothing was closed after {closed_after:?}");
}
