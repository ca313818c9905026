//! The passive side: one listening socket that hands each accepted connection to
//! the task of the peer with that source address; others are closed at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpSocket;
use tokio::sync::mpsc::WeakSender;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::SpeakerError;
use crate::handle::PeerHandle;
use crate::peer::Command;
use crate::security;

/// Stops the accept loop when the last [`crate::Speaker`] clone goes.
#[derive(Debug)]
pub(crate) struct ListenerGuard(JoinHandle<()>);

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub(crate) fn start(addr: SocketAddr, peers: &[PeerHandle]) -> Result<ListenerGuard, SpeakerError> {
    let err = |e: &dyn std::fmt::Display| SpeakerError::Listen {
        addr,
        reason: e.to_string(),
    };
    let v6 = addr.is_ipv6();
    let socket = if v6 {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(|e| err(&e))?;
    socket.set_reuseaddr(true).map_err(|e| err(&e))?;
    // Keys must be on the listener so the peer's signed SYN is accepted.
    for p in peers {
        let cfg = p.config();
        if let Some(key) = &cfg.md5_password {
            security::set_md5(&socket, v6, cfg.remote_addr, Some(key)).map_err(|e| err(&e))?;
        }
    }
    socket.bind(addr).map_err(|e| err(&e))?;
    let listener = socket.listen(64).map_err(|e| err(&e))?;
    let routes: HashMap<IpAddr, WeakSender<Command>> = peers
        .iter()
        .map(|p| (canonical(p.config().remote_addr), p.inbound_sender()))
        .collect();
    let task = tokio::spawn(
        async move {
            loop {
                let (stream, from) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(tx) = routes
                    .get(&canonical(from.ip()))
                    .and_then(WeakSender::upgrade)
                else {
                    tracing::info!(%from, "connection from an unknown address refused");
                    continue;
                };
                if tx.try_send(Command::Inbound(stream)).is_err() {
                    tracing::warn!(%from, "peer task busy or gone, connection refused");
                }
            }
        }
        .instrument(tracing::info_span!("bgp_listener", %addr)),
    );
    Ok(ListenerGuard(task))
}
