//! One check of one real server (driver side: tokio, reqwest, processes).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use crate::errors::ProbeError;
use crate::health::{CheckConfig, CheckKind, ProbeOutcome};

/// The HTTP client health checks share: no certificate verification (see
/// [`CheckKind::Http`]), no connection reuse (each check opens its own connection, as
/// a client would), no proxy.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Runs the configured check once, bounded by its timeout.
pub async fn probe(cfg: &CheckConfig, http: &reqwest::Client) -> ProbeOutcome {
    let result = match &cfg.kind {
        CheckKind::Tcp => tcp_connect(cfg.addr, cfg.timeout).await.map(drop),
        CheckKind::Http {
            path,
            expect_status,
            https,
        } => {
            let scheme = if *https { "https" } else { "http" };
            let url = format!("{scheme}://{}{path}", cfg.addr);
            http_get(http, &url, *expect_status, cfg.timeout).await
        }
        CheckKind::Command { argv } => command(argv, cfg.addr, cfg.timeout).await,
        CheckKind::Icmp => crate::health::icmp::echo(cfg.addr.ip(), cfg.timeout)
            .await
            .map(drop),
    };
    match result {
        Ok(()) => ProbeOutcome::Success,
        Err(e) => ProbeOutcome::Failure(e),
    }
}

/// A TCP connect with a timeout; refused and reset map to [`ProbeError::Refused`].
///
/// Hedged against one lost packet: the kernel retransmits a SYN only after a second,
/// far beyond a sub-second check timeout, so a single lost SYN or SYN-ACK would fail
/// the check. When the first attempt has not completed after half the timeout, a
/// second one starts beside it and the first to connect wins. A dead path fails both;
/// a refusal fails at once. Costs a second connect only when the first is slow.
pub async fn tcp_connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProbeError> {
    match tokio::time::timeout(timeout, hedged_connect(addr, timeout / 2)).await {
        Err(_) => Err(ProbeError::Timeout {
            target: addr.to_string(),
            timeout_ms: ms(timeout),
        }),
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) if is_refused(e.kind()) => Err(ProbeError::Refused { addr }),
        Ok(Err(e)) => Err(ProbeError::Connect {
            addr,
            reason: e.to_string(),
        }),
    }
}

/// One connect whose socket ends with a reset instead of a FIN (SO_LINGER 0): a check
/// connection carries no data, and a FIN from our side would leave it in TIME_WAIT
/// here for a minute; at a full check every 2 s per server that is 30 sockets per
/// server held for nothing (decision 0008). The hedge's losing attempt closes the
/// same way.
async fn connect_nolinger(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_zero_linger()?;
    s.connect(addr).await
}

/// Connects, starting a second attempt after `hedge` if the first is still pending;
/// the first success wins, and an error is returned only when every attempt failed.
async fn hedged_connect(addr: SocketAddr, hedge: Duration) -> std::io::Result<TcpStream> {
    let first = connect_nolinger(addr);
    tokio::pin!(first);
    tokio::select! {
        r = &mut first => return r,
        () = tokio::time::sleep(hedge) => {}
    }
    let second = connect_nolinger(addr);
    tokio::pin!(second);
    // Whichever completes first: a connection wins; a failure waits for the other.
    tokio::select! {
        r = &mut first => match r {
            Ok(s) => Ok(s),
            Err(_) => second.await,
        },
        r = &mut second => match r {
            Ok(s) => Ok(s),
            Err(_) => first.await,
        },
    }
}

/// Whether an I/O error means "nobody listens there any more".
pub fn is_refused(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

async fn http_get(
    http: &reqwest::Client,
    url: &str,
    expect: u16,
    timeout: Duration,
) -> Result<(), ProbeError> {
    // `Connection: close`: the server closes first, so the TIME_WAIT is its (one
    // socket per check, cheap there) and not the director's for every server.
    let resp = http
        .get(url)
        .header(reqwest::header::CONNECTION, "close")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                ProbeError::Timeout {
                    target: url.to_string(),
                    timeout_ms: ms(timeout),
                }
            } else {
                ProbeError::Http {
                    url: url.to_string(),
                    reason: e.to_string(),
                }
            }
        })?;
    let got = resp.status().as_u16();
    if got == expect {
        Ok(())
    } else {
        Err(ProbeError::HttpStatus {
            url: url.to_string(),
            got,
            expected: expect,
        })
    }
}

async fn command(argv: &[String], addr: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(ProbeError::CommandSpawn {
            command: String::new(),
            reason: "empty argv".into(),
        });
    };
    let shown = argv.join(" ");
    let child = tokio::process::Command::new(prog)
        .args(args)
        .env("RS_ADDR", addr.ip().to_string())
        .env("RS_PORT", addr.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ProbeError::CommandSpawn {
            command: shown.clone(),
            reason: e.to_string(),
        })?;
    let mut child = child;
    match tokio::time::timeout(timeout, child.wait()).await {
        // Dropping `child` on timeout kills it (kill_on_drop); reap it explicitly too.
        Err(_) => {
            let _ = child.kill().await;
            Err(ProbeError::Timeout {
                target: shown,
                timeout_ms: ms(timeout),
            })
        }
        Ok(Err(e)) => Err(ProbeError::CommandSpawn {
            command: shown,
            reason: e.to_string(),
        }),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(ProbeError::CommandFailed {
            command: shown,
            status: status
                .code()
                .map_or_else(|| "a signal".to_string(), |c| format!("code {c}")),
        }),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
