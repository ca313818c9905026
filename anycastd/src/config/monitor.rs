//! `[monitor]`: the browser monitor's HTTPS listener, its certificate and its users
//! (docs/monitor.md). The raw table as written and the validated value; the checks
//! are in `validate/monitor.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The validated `[monitor]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub listen: SocketAddr,
    /// Certificate chain and private key (PEM); `None` only on a loopback listener,
    /// which then serves plain HTTP (reached through an SSH tunnel).
    pub tls: Option<MonitorTls>,
    pub users: Vec<MonitorUser>,
    /// A session unused this long is over.
    pub session_idle: Duration,
    /// A session is over this long after its login, used or not.
    pub session_max: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MonitorTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Who may log in, and what they may do.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorUser {
    pub name: String,
    pub role: Role,
    /// A PHC string, `$argon2id$v=19$...` (`anycastd hash-password` prints one).
    pub password_hash: String,
}

/// `viewer` reads; `operator` also drains, undrains and disables real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// The default idle timeout of a session.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// The default longest life of a session.
pub const DEFAULT_SESSION_MAX: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitor {
    pub listen: Spanned<String>,
    #[serde(default)]
    pub cert_file: Option<Spanned<String>>,
    #[serde(default)]
    pub key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub session_idle: Option<Spanned<String>>,
    #[serde(default)]
    pub session_max: Option<Spanned<String>>,
    #[serde(default, rename = "user")]
    pub users: Vec<Spanned<RawMonitorUser>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitorUser {
    pub name: Spanned<String>,
    pub role: Spanned<String>,
    pub password_hash: Spanned<String>,
}
