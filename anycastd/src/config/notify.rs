//! `[notify]`: where the site's events go (docs/configuration.md, decision 0011).
//! The typed section and its raw form; checked in `validate/notify.rs`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The validated `[notify]` section. Without webhooks and command nothing is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// Each event is POSTed as JSON to every one of these (http or https).
    pub webhooks: Vec<String>,
    /// One POST's timeout.
    pub timeout: Duration,
    /// Notices each sink holds at most; when full the oldest waiting is dropped.
    pub queue: usize,
    /// Events of one subject within this window are sent as one notice with a count.
    pub coalesce: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Tries of one notice before it is given up.
    pub attempts: u32,
    /// Run for each notice: the program and its arguments (no shell), the notice as
    /// JSON on its standard input.
    pub command: Option<Command>,
}

/// `command = ["/path/to/program", "arg", ...]` and `command_timeout`.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Killed when it runs longer (a failed try).
    pub timeout: Duration,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_QUEUE: usize = 256;
pub const MAX_QUEUE: usize = 100_000;
pub const DEFAULT_COALESCE: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);
pub const DEFAULT_ATTEMPTS: u32 = 10;
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Notify {
    fn default() -> Self {
        Notify {
            webhooks: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            queue: DEFAULT_QUEUE,
            coalesce: DEFAULT_COALESCE,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            attempts: DEFAULT_ATTEMPTS,
            command: None,
        }
    }
}

impl Notify {
    /// Anything to send to.
    pub fn enabled(&self) -> bool {
        !self.webhooks.is_empty() || self.command.is_some()
    }
}

/// `[notify]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    #[serde(default)]
    pub webhooks: Vec<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub queue: Option<Spanned<i64>>,
    #[serde(default)]
    pub coalesce: Option<Spanned<String>>,
    #[serde(default)]
    pub retry_initial: Option<Spanned<String>>,
    #[serde(default)]
    pub retry_max: Option<Spanned<String>>,
    #[serde(default)]
    pub attempts: Option<Spanned<i64>>,
    #[serde(default)]
    pub command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub command_timeout: Option<Spanned<String>>,
}
