//! Typed errors of the crate. Report rejections have their own type,
//! [`crate::exchange::Reject`], because they are counted, not propagated.

use std::net::SocketAddr;

use thiserror::Error;

/// A configuration value that cannot work. Returned by the `validate()` methods.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// A spill threshold or step out of range or in the wrong order.
    #[error("spill config: {0}")]
    Spill(String),
    /// A health-check parameter out of range.
    #[error("health config for {server}: {reason}")]
    Health {
        /// The real server the check belongs to.
        server: String,
        /// What is wrong.
        reason: String,
    },
    /// A VIP servability parameter out of range.
    #[error("vip config: {0}")]
    Vip(String),
    /// An exchange parameter out of range (interval, limits, keys).
    #[error("exchange config: {0}")]
    Exchange(String),
}

/// Why one probe of a real server failed. Carried into the health state for the CLI.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// The TCP connect was refused or reset: the process is gone (a hard failure).
    #[error("connection to {addr} refused or reset")]
    Refused {
        /// The checked address.
        addr: SocketAddr,
    },
    /// No answer within the timeout (a silent failure: counts toward `fall`).
    #[error("no answer from {target} within {timeout_ms} ms")]
    Timeout {
        /// The address or URL probed.
        target: String,
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// Any other I/O error on connect.
    #[error("connect to {addr}: {reason}")]
    Connect {
        /// The checked address.
        addr: SocketAddr,
        /// The OS error.
        reason: String,
    },
    /// The HTTP GET answered with an unexpected status.
    #[error("GET {url} answered {got}, expected {expected}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status received.
        got: u16,
        /// The status configured.
        expected: u16,
    },
    /// The HTTP GET failed below the status line (TLS, protocol, connect).
    #[error("GET {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The external command exited non-zero or was killed.
    #[error("command `{command}` exited with {status}")]
    CommandFailed {
        /// The program run.
        command: String,
        /// Exit code, or a description when killed by a signal.
        status: String,
    },
    /// The external command could not be started.
    #[error("command `{command}` could not start: {reason}")]
    CommandSpawn {
        /// The program run.
        command: String,
        /// The OS error.
        reason: String,
    },
    /// The ICMP echo could not be sent, or an ICMP error came back instead of the reply
    /// (destination unreachable, time exceeded).
    #[error("ping {addr}: {reason}")]
    Icmp {
        /// The checked address.
        addr: std::net::IpAddr,
        /// What failed.
        reason: String,
    },
}

/// The second load source of a real server (a URL returning a number) failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum LoadSourceError {
    /// The body is not one finite, non-negative number.
    #[error("load body is not a non-negative number: {0:?}")]
    NotANumber(String),
    /// The body is longer than a number can reasonably be.
    #[error("load body too large ({0} bytes)")]
    TooLarge(usize),
    /// The fetch failed (connect, timeout, status).
    #[error("fetching load from {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// Sending a report to a peer failed. The next period (or threshold crossing) retries.
#[derive(Debug, Error)]
pub enum SendError {
    /// The report could not be encoded (never expected; serde_json on plain data).
    #[error("encoding report: {0}")]
    Encode(String),
    /// Transport error talking to the peer.
    #[error("sending report to {peer} at {url}: {reason}")]
    Transport {
        /// The peer site.
        peer: String,
        /// Its report URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The peer answered with a non-success status (it rejected the report).
    #[error("peer {peer} answered {status}: {body}")]
    Rejected {
        /// The peer site.
        peer: String,
        /// HTTP status.
        status: u16,
        /// The first bytes of its answer (the reject reason).
        body: String,
    },
}
