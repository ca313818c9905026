//! Real-server health: check configuration, the rise/fall state machine, VIP
//! servability with hold-down, and the tokio tasks that probe.
//!
//! Pure: [`state`] (one server: up/down/disabled by rise/fall and hard failures),
//! [`vip`] (announce/withdraw with min_up, data plane and hold-down) and [`sched`]
//! (when each server is probed and how). I/O: [`probe`] (one TCP/HTTP/command check),
//! [`pinger`] (the one ICMP socket per family every echo goes through), [`watch`] (the
//! idle connection of fast failure detection) and [`task`] (the one task that drives
//! the schedule for every server and feeds [`HealthEvent`]s to the owner of the
//! state).

pub mod icmp;
pub mod pinger;
pub mod probe;
pub mod sched;
pub mod state;
pub mod task;
pub mod vip;
pub mod watch;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::errors::{ConfigError, ProbeError};
use crate::ids::ServerId;
use crate::time::Time;

pub use state::{HealthState, ServerHealth, Transition};
pub use task::{CheckerHandle, spawn_checker, spawn_checkers};
pub use vip::{VipConfig, VipHealth, VipOutput};

/// What a check does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckKind {
    /// A TCP connect to the checked address.
    Tcp,
    /// An HTTP(S) GET of `path` on the checked address, expecting `expect_status`.
    /// HTTPS does not verify the certificate (like keepalived's SSL_GET): a real server's
    /// certificate names the service, not its address, and liveness is what is checked.
    Http {
        /// Request path, e.g. `/healthz`.
        path: String,
        /// Status that means healthy.
        expect_status: u16,
        /// Use TLS.
        https: bool,
    },
    /// An external command; exit code 0 means healthy. It gets `RS_ADDR` and `RS_PORT`
    /// in its environment.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
    },
    /// An ICMP echo to the checked address (its port is not used): the host and the
    /// path, answered by the server's kernel. See [`icmp`].
    Icmp,
}

/// One real server's check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckConfig {
    /// The server.
    pub server: ServerId,
    /// What to do.
    pub kind: CheckKind,
    /// Address and port checked (also the port of the idle connection).
    pub addr: SocketAddr,
    /// Between checks.
    pub interval: Duration,
    /// Per check.
    pub timeout: Duration,
    /// Consecutive successes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// Hold an idle TCP connection and re-probe at once when it closes.
    pub fast_detect: bool,
    /// With `fast_detect`: prove the host alive by an ICMP echo every `interval` and
    /// run the full check only every `full_interval` once the host answers (see
    /// [`sched`]).
    pub echo: bool,
    /// Between full checks while the echo proves the host alive.
    pub full_interval: Duration,
}

impl CheckConfig {
    /// A TCP check with the defaults of docs/configuration.md (2 s, 1 s, rise 2, fall 3).
    pub fn tcp(server: ServerId, addr: SocketAddr) -> CheckConfig {
        CheckConfig {
            server,
            kind: CheckKind::Tcp,
            addr,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            fast_detect: true,
            echo: true,
            full_interval: Duration::from_secs(5),
        }
    }

    /// Rejects values that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |reason: &str| {
            Err(ConfigError::Health {
                server: self.server.to_string(),
                reason: reason.to_string(),
            })
        };
        if self.interval.is_zero() || self.timeout.is_zero() {
            return bad("interval and timeout must be > 0");
        }
        if self.timeout > self.interval {
            return bad("timeout must be at most interval");
        }
        if self.rise == 0 || self.fall == 0 {
            return bad("rise and fall must be at least 1");
        }
        if self.full_interval < self.interval {
            return bad("full_interval must be at least interval");
        }
        match &self.kind {
            CheckKind::Command { argv } if argv.is_empty() => bad("command needs a program"),
            CheckKind::Http { path, .. } if !path.starts_with('/') => {
                bad("http path must start with /")
            }
            CheckKind::Icmp if self.fast_detect => {
                bad("an icmp check holds no connection: fast_detect needs a TCP port")
            }
            _ => Ok(()),
        }
    }
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ProbeOutcome {
    /// Healthy answer.
    Success,
    /// Counts toward `fall`.
    Failure(#[serde(serialize_with = "ser_err")] ProbeError),
    /// The server process is gone (refused/reset re-probe after the idle connection
    /// closed): down at once, whatever `fall` says.
    HardFailure(#[serde(serialize_with = "ser_err")] ProbeError),
}

fn ser_err<S: serde::Serializer>(e: &ProbeError, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&e.to_string())
}

/// Where a probe came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeSource {
    /// The interval check.
    Periodic,
    /// The immediate re-probe after the idle connection closed.
    FastPath,
    /// The ICMP echo that stands in for most full checks (see [`sched`]).
    Echo,
}

/// What the checker tasks send to the owner of the health state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthEvent {
    /// The server probed.
    pub server: ServerId,
    /// When the probe finished.
    pub at: Time,
    /// Periodic or fast path.
    pub source: ProbeSource,
    /// The result.
    pub outcome: ProbeOutcome,
}
