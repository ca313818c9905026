//! A small HTTP/1.1 client for the daemon's local API, over TCP on loopback or a unix
//! socket. One request per connection; bounded in time and size.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::config::ApiListen;

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REPLY: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "anycastd is not running (nothing listens at {endpoint}: {source}); start it, or point --api/--config at the right site"
    )]
    NotRunning {
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

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn show(endpoint: &ApiListen) -> String {
    endpoint.to_string()
}

fn connect(endpoint: &ApiListen) -> std::io::Result<Box<dyn Stream>> {
    Ok(match endpoint {
        ApiListen::Tcp(a) => {
            let s = TcpStream::connect_timeout(a, TIMEOUT)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            Box::new(s)
        }
        ApiListen::Unix(p) => {
            let s = UnixStream::connect(p)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            Box::new(s)
        }
    })
}

/// Sends one request and reads the whole reply.
pub fn request(endpoint: &ApiListen, method: &str, path: &str) -> Result<Reply, ClientError> {
    let name = show(endpoint);
    let mut s = connect(endpoint).map_err(|source| match source.kind() {
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
            ClientError::NotRunning {
                endpoint: name.clone(),
                source,
            }
        }
        _ => ClientError::Io {
            endpoint: name.clone(),
            source,
        },
    })?;
    let io = |source| ClientError::Io {
        endpoint: name.clone(),
        source,
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: anycastd\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    s.take(MAX_REPLY).read_to_end(&mut raw).map_err(io)?;
    parse(&raw).map_err(|detail| ClientError::BadReply {
        endpoint: name.clone(),
        detail,
    })
}

fn parse(raw: &[u8]) -> Result<Reply, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok(Reply { status, body })
}

fn dechunk(mut body: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or("truncated chunk")?;
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| "bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        out.push_str(chunk);
        body = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_replies() {
        let r = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        let r = parse(b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "abcde"));
        assert!(parse(b"garbage").is_err());
    }

    #[test]
    fn a_missing_daemon_is_said_plainly() {
        let endpoint = ApiListen::Unix("/nonexistent/anycastd.sock".into());
        let err = request(&endpoint, "GET", "/v1/status").unwrap_err();
        assert!(
            err.to_string().starts_with("anycastd is not running"),
            "{err}"
        );
    }
}
