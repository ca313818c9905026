//! What anycastd tells systemd, and how it knows it runs under it.
//!
//! The units are `Type=notify` (anycastd/debian/anycastd.service):
//!
//! ```text
//!  start ── config loaded, BGP speaker started, first effects sent
//!        └─ data plane reconciled once (or site.dataplane = false) ──> READY=1
//!  SIGHUP ──> RELOADING=1 ... reload done ──> READY=1
//!  SIGTERM/SIGINT ──> STOPPING=1 (then the graceful stop)
//!  every WATCHDOG_USEC / 2, from the core loop itself ──> WATCHDOG=1
//! ```
//!
//! The watchdog is kept by the loop that owns the site, so a wedged loop (not merely a
//! live process) is what systemd restarts. Outside systemd (no `NOTIFY_SOCKET`, no
//! `WATCHDOG_USEC`) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// Readiness and the watchdog, for the daemon loop.
pub struct Notifier {
    /// READY=1 has been sent.
    ready: bool,
    /// READY=1 waits for the first reconcile of the data plane.
    awaiting_reconcile: bool,
    /// What `systemctl status` shows once ready.
    status: String,
    watchdog: Option<tokio::time::Interval>,
}

impl Notifier {
    /// `awaiting_reconcile`: the first effects asked the data plane for a reconcile, and
    /// READY=1 waits for its outcome.
    pub fn new(awaiting_reconcile: bool, status: String) -> Self {
        let watchdog = sd_notify::watchdog_enabled().map(|period| {
            let mut i = tokio::time::interval(ping_every(period));
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        if let Some(w) = &watchdog {
            tracing::info!(
                every_ms = w.period().as_millis() as u64,
                "systemd watchdog on"
            );
        }
        Notifier {
            ready: false,
            awaiting_reconcile,
            status,
            watchdog,
        }
    }

    /// The BGP speaker is started and the first effects are executed.
    pub fn started(&mut self) {
        if !self.awaiting_reconcile {
            self.send_ready();
        }
    }

    /// A reconcile finished, whatever its outcome: a failed one is in the status and
    /// withdraws what it concerns, and waiting longer would not make the site start.
    pub fn reconciled(&mut self) {
        if !self.ready {
            self.awaiting_reconcile = false;
            self.send_ready();
        }
    }

    /// A SIGHUP reload begins.
    pub fn reloading(&self) {
        if self.ready {
            let mut states = vec![NotifyState::Reloading];
            if let Ok(now) = NotifyState::monotonic_usec_now() {
                states.push(now);
            }
            send(&states);
        }
    }

    /// The reload is over (applied or refused: the site runs either way).
    pub fn reloaded(&self) {
        if self.ready {
            send(&[NotifyState::Ready]);
        }
    }

    /// The graceful stop begins.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// Resolves when the next watchdog ping is due; never without a watchdog.
    pub async fn watchdog_due(&mut self) {
        match &mut self.watchdog {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// The loop is alive.
    pub fn watchdog(&self) {
        send(&[NotifyState::Watchdog]);
    }

    fn send_ready(&mut self) {
        self.ready = true;
        send(&[NotifyState::Ready, NotifyState::Status(&self.status)]);
    }
}

/// Half the watchdog period, as sd_watchdog_enabled(3) advises, and never a busy loop.
fn ping_every(period: Duration) -> Duration {
    (period / 2).max(Duration::from_millis(10))
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// True when stderr is connected to the journal: systemd sets `JOURNAL_STREAM` to the
/// `DEVICE:INODE` of that stream, and a child whose stderr was redirected elsewhere
/// inherits the variable but not the stream, so both are compared.
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    names_stream(&var.to_string_lossy(), meta.dev(), meta.ino())
}

/// `JOURNAL_STREAM` (`DEVICE:INODE`, decimal) names this device and inode.
fn names_stream(var: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = var.split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_our_stderr() {
        assert!(names_stream("8:12345", 8, 12345));
        assert!(!names_stream("8:12345", 8, 12346), "another stream");
        assert!(!names_stream("9:12345", 8, 12345), "another device");
        assert!(!names_stream("", 8, 12345));
        assert!(!names_stream("8", 8, 12345));
        assert!(!names_stream("8:x", 8, 12345));
    }

    #[test]
    fn watchdog_pinged_at_half_its_period() {
        assert_eq!(ping_every(Duration::from_secs(30)), Duration::from_secs(15));
        assert_eq!(
            ping_every(Duration::from_micros(1)),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn outside_systemd_nothing_is_sent_and_nothing_fails() {
        // NOTIFY_SOCKET is not set under the test runner: every call is a no-op.
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            eprintln!("skipped: NOTIFY_SOCKET is set");
            return;
        }
        let mut n = Notifier {
            ready: false,
            awaiting_reconcile: true,
            status: "test".into(),
            watchdog: None,
        };
        n.started();
        assert!(!n.ready, "waits for the first reconcile");
        n.reconciled();
        assert!(n.ready);
        n.reloading();
        n.reloaded();
        n.stopping();
    }
}
