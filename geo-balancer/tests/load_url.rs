//! The second load source over real HTTP on 127.0.0.1: a number is read, anything else is
//! a typed error.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use geo_balancer::LoadSourceError;
use geo_balancer::load::fetch_external_load;
use tokio::net::TcpListener;

#[tokio::test]
async fn load_url_values_and_errors() {
    let app = Router::new()
        .route("/ok", get(|| async { "0.42\n" }))
        .route("/words", get(|| async { "busy" }))
        .route("/big", get(|| async { "1".repeat(1000) }))
        .route(
            "/err",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "0.1") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "0.1"
            }),
        );
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    let c = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let t = Duration::from_millis(500);
    let url = |p: &str| format!("http://{addr}{p}");
    assert_eq!(fetch_external_load(&c, &url("/ok"), t).await, Ok(0.42));
    assert!(matches!(
        fetch_external_load(&c, &url("/words"), t).await,
        Err(LoadSourceError::NotANumber(_))
    ));
    assert!(matches!(
        fetch_external_load(&c, &url("/big"), t).await,
        Err(LoadSourceError::TooLarge(_))
    ));
    assert!(matches!(
        fetch_external_load(&c, &url("/err"), t).await,
        Err(LoadSourceError::Fetch { .. })
    ));
    assert!(matches!(
        fetch_external_load(&c, &url("/slow"), t).await,
        Err(LoadSourceError::Fetch { .. })
    ));
    server.abort();
}
