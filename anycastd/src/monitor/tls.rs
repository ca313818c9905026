//! The monitor's TLS: rustls (ring) with the certificate chain and key from the
//! config's files, and the accept loop that serves the routes over it with hyper:
//! each connection in its own task, handshakes and request headers with deadlines,
//! a bounded number of connections, so a client that stalls never holds up the others.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::rustls;

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
/// Connections open at once (handshakes included); more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// A request's headers must arrive within this long.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Serves `app` over TLS on `tcp` until `stop` turns true. Each connection holds one of
/// `MAX_CONNECTIONS` slots from its accept to its close (handshake included), and a
/// request's headers must arrive within `HEADER_TIMEOUT` (hyper's timer), so a
/// client that opens connections and sends nothing cannot pile them up.
pub async fn serve(
    tcp: TcpListener,
    config: rustls::ServerConfig,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let accepted = tokio::select! {
            a = tcp.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, remote) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "monitor: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let _slot = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "monitor: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "monitor: TLS handshake timed out");
                    return;
                }
            };
            let app = app.layer(axum::Extension(axum::extract::ConnectInfo(Client(remote))));
            let service = hyper_util::service::TowerToHyperService::new(app);
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%remote, error = %e, "monitor: connection ended with an error");
            }
        });
    }
}

/// The client's address, as the handlers see it over either listener.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for Client
{
    fn connect_info(s: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        Client(*s.remote_addr())
    }
}
