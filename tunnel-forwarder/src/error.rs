//! Errors, each naming what is wrong and how to fix it.

use crate::diff::Conflict;
use crate::netlink::socket::{NlError, SockError};

/// The desired state is inconsistent (refused before anything is applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid desired state: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn new(s: impl Into<String>) -> Self {
        ConfigError(s.into())
    }
}

/// What can go wrong programming the kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kernel module is not loaded and could not be loaded on demand.
    #[error(
        "kernel module {module} is missing ({during}); fix: `modprobe {module}` (and add it to /etc/modules-load.d/)"
    )]
    ModuleMissing { module: String, during: String },
    /// No CAP_NET_ADMIN.
    #[error(
        "permission denied ({during}): tunnel-forwarder needs CAP_NET_ADMIN; run as root or grant it (systemd AmbientCapabilities=CAP_NET_ADMIN, or setcap cap_net_admin+ep)"
    )]
    Permission { during: String },
    /// The kernel refused a request.
    #[error("kernel refused `{request}`: {error}")]
    Kernel { request: String, error: NlError },
    #[error(transparent)]
    Conflict(#[from] Conflict),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Netlink socket trouble (open, send, receive, malformed reply).
    #[error("netlink ({during}): {source}")]
    Netlink {
        during: String,
        #[source]
        source: SockError,
    },
    /// A write to /proc/sys failed.
    #[error("sysctl {key}: {source}")]
    Sysctl {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// A /proc table could not be read.
    #[error("reading {path}: {source}")]
    Proc {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The ownership ledger file could not be read or written.
    #[error("ledger {path}: {source}")]
    Ledger {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Maps a socket error during `during`, recognising missing privilege.
    pub(crate) fn from_sock(during: &str, e: SockError) -> Error {
        match &e {
            SockError::Kernel(NlError { errno, .. }) if *errno == libc::EPERM => {
                Error::Permission {
                    during: during.to_string(),
                }
            }
            SockError::Io(io) if io.raw_os_error() == Some(libc::EPERM) => Error::Permission {
                during: during.to_string(),
            },
            _ => Error::Netlink {
                during: during.to_string(),
                source: e,
            },
        }
    }

    /// A short, stable description used to report an error only once.
    pub fn kind_key(&self) -> String {
        match self {
            Error::ModuleMissing { module, .. } => format!("module:{module}"),
            Error::Permission { .. } => "permission".into(),
            other => other.to_string(),
        }
    }
}
