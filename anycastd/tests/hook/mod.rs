//! A webhook receiver for the notification tests: an axum server on a listener the
//! test bound (on the host's loopback, or in a namespace: a socket keeps the namespace
//! it was made in), keeping every JSON body with the time it came.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

/// What arrived, in order.
pub type Seen = Arc<Mutex<Vec<(Instant, Value)>>>;

/// Serves `POST /hook` on `l` from a thread of its own (answering 204) until the
/// returned sender is dropped or sent to.
pub fn serve(l: std::net::TcpListener, seen: Seen) -> tokio::sync::oneshot::Sender<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    l.set_nonblocking(true).expect("nonblocking listener");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).expect("tokio listener");
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let seen = seen.clone();
                    async move {
                        let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        seen.lock().unwrap().push((Instant::now(), v));
                        axum::http::StatusCode::NO_CONTENT
                    }
                }),
            );
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    stop_tx
}

/// The bodies so far.
pub fn notices(seen: &Seen) -> Vec<Value> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(_, v)| v.clone())
        .collect()
}
