//! The listener for load reports (peer sites' and this site's other directors'): open
//! while the config has either, on `[exchange] listen`. A reload that adds the first
//! peer or director, removes the last, or moves the address opens the new listener
//! before the new config goes into force (a port that cannot be bound refuses the
//! reload whole) and then closes the old one.

use std::net::SocketAddr;

use tokio::sync::watch;

use crate::api::{self, ControllerHandle};
use crate::config::SiteConfig;

/// A report listener serving in its own task; closed when dropped.
#[derive(Debug)]
pub struct ReportListener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

/// Where `cfg` wants the report listener: its `[exchange] listen` when it has peers or
/// other directors, nowhere otherwise.
pub fn wanted(cfg: &SiteConfig) -> Option<SocketAddr> {
    (!cfg.peers.is_empty() || !cfg.directors.others.is_empty()).then_some(cfg.exchange.listen)
}

/// A bound socket, not yet serving: a reload binds first and serves once it commits.
#[derive(Debug)]
pub struct Bound {
    addr: SocketAddr,
    listener: tokio::net::TcpListener,
}

impl Bound {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Ok(Bound { addr, listener })
    }

    /// Serves reports to `handle` until the returned listener is dropped or
    /// `shutdown` says stop.
    pub fn serve(
        self,
        handle: ControllerHandle,
        mut shutdown: watch::Receiver<bool>,
    ) -> ReportListener {
        let (stop, mut stopped) = watch::channel(false);
        let router = api::report_router(handle);
        tokio::spawn(async move {
            let _ = axum::serve(self.listener, router)
                .with_graceful_shutdown(async move {
                    tokio::select! {
                        _ = shutdown.wait_for(|s| *s) => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                })
                .await;
        });
        tracing::info!(addr = %self.addr, "report listener open");
        ReportListener {
            addr: self.addr,
            stop,
        }
    }
}

impl ReportListener {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ReportListener {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        tracing::info!(addr = %self.addr, "report listener closed");
    }
}
