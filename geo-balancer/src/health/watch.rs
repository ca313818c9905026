//! Fast failure detection: hold one idle TCP connection to the checked port.
//!
//! ```text
//!   connect --ok--> hold (read until EOF/reset) --closed--> re-probe at once
//!      ^                                                    |        |
//!      |           refused/reset: HardFailure event --------+        | connected:
//!      +---- wait 100 ms (connect failed) ----------------------------+ nothing; hold it
//! ```
//! A refused or reset re-probe means the process is gone: it is reported as a hard
//! failure, which takes the server down at once. A successful re-probe means the server
//! only closed an idle connection, which changes nothing. A re-probe that times out
//! reports nothing: silent failures are the periodic check's job (timeout and `fall`).
//! A server that closes connections right after accepting them would make this loop
//! spin, so a connection that lived less than `retry` delays the next connect by `retry`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::errors::ProbeError;
use crate::health::probe::{is_refused, tcp_connect};
use crate::health::{HealthEvent, ProbeOutcome, ProbeSource};
use crate::ids::ServerId;
use crate::time::Time;

/// How soon a watcher tries to connect again while its server is down. A refused
/// connect costs microseconds; a silent one is bounded by the check timeout.
const DOWN_RETRY: Duration = Duration::from_millis(100);

/// Runs until the receiver is dropped (or the task is aborted). A hard failure goes
/// to `tx` first (the owner of the health state: the withdraw must not wait) and then
/// to `also` (the checker's schedule, which goes back to short full checks).
pub async fn watch_idle(
    server: ServerId,
    addr: SocketAddr,
    timeout: Duration,
    retry: Duration,
    tx: mpsc::Sender<HealthEvent>,
    also: Option<mpsc::Sender<HealthEvent>>,
) {
    let mut held: Option<(TcpStream, Instant)> = None;
    loop {
        if tx.is_closed() {
            return;
        }
        let (mut stream, opened) = match held.take() {
            Some(h) => h,
            None => match tcp_connect(addr, timeout).await {
                Ok(s) => (s, Instant::now()),
                Err(_) => {
                    // Down or unreachable: the periodic check reports it. Try again soon,
                    // so that the connection is held again before the periodic check
                    // brings the server back up (a kill right after that must be seen
                    // at once too).
                    tokio::time::sleep(retry.min(DOWN_RETRY)).await;
                    continue;
                }
            },
        };
        tracing::debug!(server = %server, %addr, "fast-detect connection held");
        let closed_by = hold(&mut stream).await;
        drop(stream);
        tracing::debug!(server = %server, %addr, how = closed_by, "fast-detect connection closed; re-probing");
        match tcp_connect(addr, timeout).await {
            Ok(s) => {
                // The server merely closed an idle connection.
                if opened.elapsed() < retry {
                    tokio::time::sleep(retry).await;
                    drop(s);
                } else {
                    held = Some((s, Instant::now()));
                }
            }
            Err(e @ ProbeError::Refused { .. }) => {
                // The event first, the log line after: a synchronous write to the log
                // must not sit between the refusal and the withdraw.
                let error = e.to_string();
                let ev = HealthEvent {
                    server: server.clone(),
                    at: Time::now(),
                    source: ProbeSource::FastPath,
                    outcome: ProbeOutcome::HardFailure(e),
                };
                let copy = also.as_ref().map(|_| ev.clone());
                if tx.send(ev).await.is_err() {
                    return;
                }
                if let (Some(also), Some(copy)) = (&also, copy) {
                    let _ = also.try_send(copy);
                }
                tracing::warn!(server = %server, %addr, %error, "fast-detect: server gone");
                tokio::time::sleep(retry.min(DOWN_RETRY)).await;
            }
            Err(e) => {
                tracing::debug!(server = %server, %addr, error = %e, "fast-detect re-probe inconclusive");
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// Reads (and discards) until the peer closes or resets. Returns how it ended.
async fn hold(stream: &mut TcpStream) -> &'static str {
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return "closed",
            Ok(_) => continue,
            Err(e) if is_refused(e.kind()) => return "reset",
            Err(_) => return "error",
        }
    }
}
