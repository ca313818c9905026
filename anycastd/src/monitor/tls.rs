//! The monitor's TLS: rustls (ring) with the certificate chain and key from the
//! config's files, and an [`axum::serve::Listener`] whose connections arrive already
//! through the handshake. Handshakes run in their own tasks with a deadline, so a
//! client that stalls in one never holds up the others.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

use crate::config::monitor::MonitorTls;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cert_file `{path}`: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("key_file `{path}`: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the key does not go with the certificate: {0}")]
    Mismatch(String),
}

/// A handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 64;

/// The rustls server config for `tls` (HTTP/1.1 only).
pub fn server_config(tls: &MonitorTls) -> Result<rustls::ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert {
            path: tls.cert_file.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: tls.cert_file.clone(),
            reason: "no PEM certificate in it".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| TlsError::Key {
        path: tls.key_file.clone(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Connections after their TLS handshake, for `axum::serve`.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (tx, rx) = mpsc::channel(16);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, remote) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and the like: wait a little rather than spin.
                        tracing::warn!(error = %e, "monitor: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    match hs.await {
                        Ok(Ok(tls)) => {
                            drop(permit);
                            let _ = tx.send((tls, remote)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "monitor: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%remote, "monitor: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            rx,
            local,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task ended (the runtime is going down): never resolve.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The client's address, as the handlers see it over either listener.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for Client
{
    fn connect_info(s: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Client(*s.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for Client
{
    fn connect_info(s: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        Client(*s.remote_addr())
    }
}
