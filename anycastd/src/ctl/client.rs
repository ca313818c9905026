//! The client of the daemon's local API: HTTP/1.1 through hyper, over TCP on loopback
//! or a unix socket. One request per connection; bounded in time (10 s for the whole
//! exchange) and in reply size (16 MiB).
//!
//! ```text
//!  request() ── current-thread runtime ── connect (TCP | unix) ── hyper http1 handshake
//!                                                                  │ connection task
//!                                          Reply {status, body} ◄──┘ body, at most 16 MiB
//! ```

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body as _;
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::ApiListen;

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REPLY: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "anycastd is not running (nothing listens at {endpoint}: {source}); start it, or point --api/--config at the right site"
    )]
    NotRunning {
        endpoint: String,
        source: std::io::Error,
    },
    #[error(
        "not allowed to open {endpoint}: {source}; only root and the group of `[api] group` may (or ask for public reads: `[api] public`)"
    )]
    NotAllowed {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("talking to anycastd at {endpoint}: {source}")]
    Io {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("anycastd at {endpoint} sent a reply that is not HTTP: {detail}")]
    BadReply { endpoint: String, detail: String },
}

/// A reply: HTTP status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// What bounds one exchange; tests shorten the time.
#[derive(Debug, Clone, Copy)]
struct Limits {
    time: Duration,
    size: usize,
}

const LIMITS: Limits = Limits {
    time: TIMEOUT,
    size: MAX_REPLY,
};

/// Sends one request and reads the whole reply. Blocks the calling thread, which must
/// not be inside a tokio runtime (the CLI and tests call it from plain threads).
pub fn request(endpoint: &ApiListen, method: &str, path: &str) -> Result<Reply, ClientError> {
    request_within(endpoint, method, path, None, None, LIMITS)
}

/// [`request`] with a JSON body, and the token when there is one (over TCP).
pub fn request_json(
    endpoint: &ApiListen,
    method: &str,
    path: &str,
    token: Option<&[u8]>,
    body: String,
) -> Result<Reply, ClientError> {
    request_within(endpoint, method, path, token, Some(body), LIMITS)
}

/// [`request`] with `Authorization: Bearer TOKEN` (a change over TCP needs it).
pub fn request_with_token(
    endpoint: &ApiListen,
    method: &str,
    path: &str,
    token: &[u8],
) -> Result<Reply, ClientError> {
    request_within(endpoint, method, path, Some(token), None, LIMITS)
}

fn request_within(
    endpoint: &ApiListen,
    method: &str,
    path: &str,
    token: Option<&[u8]>,
    body: Option<String>,
    limits: Limits,
) -> Result<Reply, ClientError> {
    let name = endpoint.to_string();
    let io = |source| ClientError::Io {
        endpoint: name.clone(),
        source,
    };
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).map_err(|e| io(invalid(method, e)))?)
        .uri(path)
        .header(header::HOST, "anycastd")
        .header(header::CONNECTION, "close");
    if let Some(t) = token {
        let mut v = b"Bearer ".to_vec();
        v.extend_from_slice(t);
        let v = header::HeaderValue::from_bytes(&v).map_err(|e| io(invalid("the token", e)))?;
        req = req.header(header::AUTHORIZATION, v);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(b))),
        None => req.body(Full::new(Bytes::new())),
    };
    let req = req.map_err(|e| io(invalid(path, e)))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io)?;
    rt.block_on(async {
        tokio::time::timeout(limits.time, exchange(endpoint, req, limits.size))
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no reply within {}", geo_balancer::time::human(limits.time)),
                )))
            })
    })
    .map_err(|f| f.at(&name))
}

fn invalid(what: &str, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("cannot send `{what}`: {e}"),
    )
}

/// A failure before the endpoint's name is attached.
enum Failure {
    Connect(std::io::Error),
    Io(std::io::Error),
    Bad(String),
}

impl Failure {
    fn at(self, endpoint: &str) -> ClientError {
        let endpoint = endpoint.to_string();
        match self {
            Failure::Connect(source) => match source.kind() {
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                    ClientError::NotRunning { endpoint, source }
                }
                std::io::ErrorKind::PermissionDenied => {
                    ClientError::NotAllowed { endpoint, source }
                }
                _ => ClientError::Io { endpoint, source },
            },
            Failure::Io(source) => ClientError::Io { endpoint, source },
            Failure::Bad(detail) => ClientError::BadReply { endpoint, detail },
        }
    }

    /// Parse errors are a reply that is not HTTP; the rest (resets, early close) is I/O.
    fn from_hyper(e: hyper::Error) -> Failure {
        if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
            Failure::Bad(chain(&e))
        } else {
            Failure::Io(std::io::Error::other(chain(&e)))
        }
    }
}

/// An error and its causes on one line: hyper's own messages leave the cause out.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

async fn exchange(
    endpoint: &ApiListen,
    req: Request<Full<Bytes>>,
    max: usize,
) -> Result<Reply, Failure> {
    match endpoint {
        ApiListen::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a)
                .await
                .map_err(Failure::Connect)?;
            send(s, req, max).await
        }
        ApiListen::Unix(p) => {
            let s = tokio::net::UnixStream::connect(p)
                .await
                .map_err(Failure::Connect)?;
            send(s, req, max).await
        }
    }
}

async fn send<S>(stream: S, req: Request<Full<Bytes>>, max: usize) -> Result<Reply, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Failure::from_hyper)?;
    // The connection task moves the bytes; its own error also surfaces through the
    // request or the body, so it is not read here.
    let conn = tokio::spawn(conn);
    let reply = sender
        .send_request(req)
        .await
        .map_err(Failure::from_hyper)?;
    let status = reply.status().as_u16();
    let too_large = || Failure::Bad(format!("the reply is larger than {}", size(max)));
    // A declared length says it at once; a chunked body is cut where it passes `max`.
    if reply.body().size_hint().lower() > max as u64 {
        return Err(too_large());
    }
    let body = Limited::new(reply.into_body(), max)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                too_large()
            } else {
                match e.downcast::<hyper::Error>() {
                    Ok(e) => Failure::from_hyper(*e),
                    Err(e) => Failure::Io(std::io::Error::other(chain(&*e))),
                }
            }
        })?
        .to_bytes();
    conn.abort();
    let body = String::from_utf8(body.into())
        .map_err(|e| Failure::Bad(format!("the body is not UTF-8: {e}")))?;
    Ok(Reply { status, body })
}

/// `16 MiB`, or bytes below 1 MiB (tests use small limits).
fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A loopback server that reads one request and answers `reply` (`None`: stays
    /// silent), then closes.
    fn serve_once(reply: Option<Vec<u8>>) -> ApiListen {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            match reply {
                Some(r) => {
                    let _ = s.write_all(&r);
                }
                None => std::thread::sleep(Duration::from_secs(2)),
            }
        });
        ApiListen::Tcp(addr)
    }

    fn get(endpoint: &ApiListen, limits: Limits) -> Result<Reply, ClientError> {
        request_within(endpoint, "GET", "/v1/status", None, None, limits)
    }

    #[test]
    fn plain_and_chunked_replies() {
        let e = serve_once(Some(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec(),
        ));
        let r = get(&e, LIMITS).unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));

        // A chunk boundary inside a multi-byte character: the body is joined as bytes.
        let e = serve_once(Some(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n\
              3\r\nab\xc3\r\n2\r\n\xa9e\r\n0\r\n\r\n"
                .to_vec(),
        ));
        let r = get(&e, LIMITS).unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "abée"));
    }

    #[test]
    fn bad_replies_are_said_plainly() {
        let e = serve_once(Some(b"garbage\r\n\r\n".to_vec()));
        let err = get(&e, LIMITS).unwrap_err();
        assert!(matches!(err, ClientError::BadReply { .. }), "{err}");

        let small = Limits { size: 10, ..LIMITS };
        let declared = b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n01234567890";
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                        6\r\n012345\r\n5\r\n67890\r\n0\r\n\r\n";
        for reply in [&declared[..], &chunked[..]] {
            let err = get(&serve_once(Some(reply.to_vec())), small).unwrap_err();
            assert!(
                err.to_string()
                    .ends_with("the reply is larger than 10 bytes"),
                "{err}"
            );
        }

        let e = serve_once(None);
        let short = Limits {
            time: Duration::from_millis(200),
            ..LIMITS
        };
        let err = get(&e, short).unwrap_err();
        assert!(
            matches!(&err, ClientError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::TimedOut),
            "{err}"
        );
        assert!(err.to_string().ends_with("no reply within 200ms"), "{err}");
    }

    #[test]
    fn a_missing_daemon_is_said_plainly() {
        let endpoint = ApiListen::Unix("/nonexistent/anycastd.sock".into());
        let err = request(&endpoint, "GET", "/v1/status").unwrap_err();
        assert!(
            err.to_string().starts_with("anycastd is not running"),
            "{err}"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = request(&ApiListen::Tcp(([127, 0, 0, 1], port).into()), "GET", "/").unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err}");
    }
}
