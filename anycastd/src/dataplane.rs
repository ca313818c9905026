//! The data-plane worker: one thread owns the blocking tunnel-forwarder handle and
//! serves reconcile and stats requests in order. Results come back on a tokio channel.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;
use tunnel_forwarder::{DesiredState, Forwarder, ServiceStats};

/// A request to the worker.
#[derive(Debug)]
pub enum Request {
    Reconcile(Box<DesiredState>),
    Stats,
}

/// A result from the worker.
#[derive(Debug)]
pub enum Outcome {
    /// Changes made, or the error.
    Reconciled(Result<usize, String>),
    Stats(Result<Vec<ServiceStats>, String>),
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
    pub fn start(ledger: PathBuf) -> Result<(Worker, mpsc::Receiver<Outcome>), String> {
        let (tx, rx) = std_mpsc::channel::<Request>();
        let (out_tx, out_rx) = mpsc::channel(64);
        let (ready_tx, ready_rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("dataplane".into())
            .spawn(move || {
                if let Some(dir) = ledger.parent()
                    && let Err(e) = std::fs::create_dir_all(dir)
                {
                    let _ = ready_tx.send(Err(format!("state dir {}: {e}", dir.display())));
                    return;
                }
                let mut fwd = match Forwarder::open_with_ledger(&ledger) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while let Ok(req) = rx.recv() {
                    let out = match req {
                        Request::Reconcile(d) => Outcome::Reconciled(
                            fwd.reconcile(&d)
                                .map(|r| r.changes)
                                .map_err(|e| e.to_string()),
                        ),
                        Request::Stats => Outcome::Stats(fwd.stats().map_err(|e| e.to_string())),
                    };
                    if out_tx.blocking_send(out).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start the data-plane thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok((Worker { tx }, out_rx)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the data-plane thread died while opening netlink".into()),
        }
    }

    /// Queues a request; false when the worker is gone.
    pub fn send(&self, req: Request) -> bool {
        self.tx.send(req).is_ok()
    }
}
