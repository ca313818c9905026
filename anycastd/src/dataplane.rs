//! The data-plane worker: one thread owns the blocking tunnel-forwarder handle and
//! serves requests in order: a whole reconcile (read, diff, apply: at start, after a
//! reload, on the drift timer, after an error), a targeted apply of weight changes
//! (no read), or a stats read. Results come back on a tokio channel.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tunnel_forwarder::{self as tf, DesiredState, Forwarder, ServiceStats};

/// Why the data plane could not be opened or changed.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("state dir {dir}: {source}")]
    StateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the data-plane thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the data-plane thread died while opening netlink")]
    ThreadDied,
    #[error(transparent)]
    Kernel(#[from] tf::Error),
}

/// A request to the worker.
#[derive(Debug)]
pub enum Request {
    /// Read the kernel, diff against this state, apply the difference.
    Reconcile(Box<DesiredState>),
    /// Apply these requests as they are (weight changes the site core computed).
    Apply(Vec<tf::Request>),
    Stats,
    /// The sync daemons and connection origins, answered on the channel directly
    /// (for the status, not the site core).
    Sync(tokio::sync::oneshot::Sender<Result<tf::SyncStatus, tf::Error>>),
}

/// A result from the worker, with the time the work took.
#[derive(Debug)]
pub enum Outcome {
    /// Changes made, or the error.
    Reconciled(Result<usize, DataplaneError>, Duration),
    /// Requests applied, or the error (the kernel has drifted from what we think).
    Applied(Result<usize, DataplaneError>, Duration),
    Stats(Result<Vec<ServiceStats>, DataplaneError>, Duration),
}

/// Sends requests; dropping it stops the worker.
#[derive(Clone)]
pub struct Worker {
    tx: std_mpsc::Sender<Request>,
}

impl Worker {
    /// Opens the forwarder (with its ownership ledger at `ledger`) in a new thread.
    /// Fails at once, with the fix in the message, when IPVS is missing or the
    /// process lacks CAP_NET_ADMIN.
    pub fn start(ledger: PathBuf) -> Result<(Worker, mpsc::Receiver<Outcome>), DataplaneError> {
        let (tx, rx) = std_mpsc::channel::<Request>();
        let (out_tx, out_rx) = mpsc::channel(64);
        let (ready_tx, ready_rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("dataplane".into())
            .spawn(move || {
                if let Some(dir) = ledger.parent()
                    && let Err(source) = std::fs::create_dir_all(dir)
                {
                    let dir = dir.to_path_buf();
                    let _ = ready_tx.send(Err(DataplaneError::StateDir { dir, source }));
                    return;
                }
                let mut fwd = match Forwarder::open_with_ledger(&ledger) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while let Ok(req) = rx.recv() {
                    let t0 = Instant::now();
                    let out = match req {
                        Request::Reconcile(d) => {
                            let r = fwd.reconcile(&d).map(|r| r.changes).map_err(Into::into);
                            Outcome::Reconciled(r, t0.elapsed())
                        }
                        Request::Apply(reqs) => {
                            Outcome::Applied(fwd.apply(&reqs).map_err(Into::into), t0.elapsed())
                        }
                        // The director's own connections: with two-way sync the
                        // kernel's counters include its siblings' (decision 0015).
                        Request::Stats => {
                            Outcome::Stats(fwd.own_stats().map_err(Into::into), t0.elapsed())
                        }
                        Request::Sync(reply) => {
                            let _ = reply.send(fwd.sync_status());
                            continue;
                        }
                    };
                    if out_tx.blocking_send(out).is_err() {
                        return;
                    }
                }
            })
            .map_err(DataplaneError::Thread)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok((Worker { tx }, out_rx)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(DataplaneError::ThreadDied),
        }
    }

    /// Queues a request; false when the worker is gone.
    pub fn send(&self, req: Request) -> bool {
        self.tx.send(req).is_ok()
    }
}
