//! HTTP front ends of the controller: the local API (status, why, drain, undrain,
//! metrics) on loopback or a unix socket, and the peer-report listener. Handlers only
//! translate HTTP to [`Command`]s for the controller task, which owns all state.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use crate::auth::{self, Access, Peer};

use geo_balancer::exchange::Reject;

use crate::site::{ServerError, UnknownVip};
use crate::status::{ApiError, DrainReply, ServerReply, Status, WhyReply};

/// Largest load report body accepted; anything larger is refused before it is read whole.
pub const MAX_REPORT_BYTES: usize = 16 * 1024;

/// A load report as it arrived: the raw body and the headers that matter.
#[derive(Debug)]
pub struct IncomingReport {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub remote: Option<std::net::SocketAddr>,
}

/// Requests to the controller task.
#[derive(Debug)]
pub enum Command {
    Status(oneshot::Sender<Status>),
    Metrics(oneshot::Sender<Box<crate::metrics::Snapshot>>),
    Why(String, oneshot::Sender<Result<WhyReply, UnknownVip>>),
    Drain(
        Option<String>,
        oneshot::Sender<Result<DrainReply, UnknownVip>>,
    ),
    Undrain(
        Option<String>,
        oneshot::Sender<Result<DrainReply, UnknownVip>>,
    ),
    /// A peer's load report; the reply says why it was refused, if it was.
    Report(IncomingReport, oneshot::Sender<Result<(), Reject>>),
    /// The operator disables or enables one real server.
    Server(
        ServerCommand,
        oneshot::Sender<Result<ServerReply, ServerError>>,
    ),
}

impl Command {
    /// Only reads the controller's state: no change to publish after it (the
    /// monitor's own status ask must not wake the monitor again).
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Status(_) | Command::Metrics(_) | Command::Why(..)
        )
    }
}

/// `POST /v1/server/disable` or `/enable`: the body, and who asked.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ServerCommand {
    pub vip: String,
    /// `ADDR` or `ADDR:PORT` (`[IPv6]:PORT`).
    pub server: String,
    /// Disable even the last server the VIP needs (it is withdrawn).
    #[serde(default)]
    pub force: bool,
    #[serde(skip)]
    pub enable: bool,
    /// The caller, as the API saw it (`uid 0 pid 812`, `token from 127.0.0.1:40112`).
    #[serde(skip)]
    pub by: String,
}

/// The cheap handle the HTTP handlers use.
#[derive(Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<Command>,
}

const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

impl ControllerHandle {
    pub fn new(tx: mpsc::Sender<Command>) -> Self {
        ControllerHandle { tx }
    }

    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Response> {
        let (tx, rx) = oneshot::channel();
        let unavailable = || {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the daemon is shutting down",
            )
        };
        self.tx.send(make(tx)).await.map_err(|_| unavailable())?;
        match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(unavailable()),
            Err(_) => Err(error(
                StatusCode::GATEWAY_TIMEOUT,
                "the daemon did not answer within 5s",
            )),
        }
    }
}

pub(crate) fn error(code: StatusCode, msg: &str) -> Response {
    (
        code,
        axum::Json(ApiError {
            error: msg.to_string(),
        }),
    )
        .into_response()
}

fn json_or_404<T: serde::Serialize>(r: Result<T, UnknownVip>) -> Response {
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

/// Routes of the local API, behind [`auth::authorize`]: who may call what.
pub fn local_router(h: ControllerHandle, access: Arc<Access>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/why/{vip}", get(why))
        .route("/v1/drain", post(drain_all))
        .route("/v1/drain/{vip}", post(drain_one))
        .route("/v1/undrain", post(undrain_all))
        .route("/v1/undrain/{vip}", post(undrain_one))
        .route("/v1/server/disable", post(server_disable))
        .route("/v1/server/enable", post(server_enable))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint; try /v1/status") })
        .with_state(h)
        .layer(axum::middleware::from_fn_with_state(
            access,
            auth::authorize,
        ))
}

/// Routes of the peer-report listener.
pub fn report_router(h: ControllerHandle) -> Router {
    Router::new()
        .route("/v1/report", post(report))
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(h)
}

async fn status(State(h): State<ControllerHandle>) -> Response {
    match h.ask(Command::Status).await {
        Ok(s) => axum::Json(s).into_response(),
        Err(r) => r,
    }
}

async fn metrics(State(h): State<ControllerHandle>) -> Response {
    match h.ask(Command::Metrics).await {
        // Rendered off the controller task: thousands of series take milliseconds.
        Ok(snap) => match tokio::task::spawn_blocking(move || snap.render()).await {
            Ok(text) => {
                ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
            }
            Err(_) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the metrics failed",
            ),
        },
        Err(r) => r,
    }
}

async fn why(State(h): State<ControllerHandle>, Path(vip): Path<String>) -> Response {
    match h.ask(|tx| Command::Why(vip, tx)).await {
        Ok(r) => json_or_404(r),
        Err(r) => r,
    }
}

async fn drain_all(State(h): State<ControllerHandle>) -> Response {
    match h.ask(|tx| Command::Drain(None, tx)).await {
        Ok(r) => json_or_404(r),
        Err(r) => r,
    }
}

async fn drain_one(State(h): State<ControllerHandle>, Path(vip): Path<String>) -> Response {
    match h.ask(|tx| Command::Drain(Some(vip), tx)).await {
        Ok(r) => json_or_404(r),
        Err(r) => r,
    }
}

async fn undrain_all(State(h): State<ControllerHandle>) -> Response {
    match h.ask(|tx| Command::Undrain(None, tx)).await {
        Ok(r) => json_or_404(r),
        Err(r) => r,
    }
}

async fn undrain_one(State(h): State<ControllerHandle>, Path(vip): Path<String>) -> Response {
    match h.ask(|tx| Command::Undrain(Some(vip), tx)).await {
        Ok(r) => json_or_404(r),
        Err(r) => r,
    }
}

async fn server_disable(
    State(h): State<ControllerHandle>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<Peer>,
    body: Result<axum::Json<ServerCommand>, axum::extract::rejection::JsonRejection>,
) -> Response {
    server_change(h, peer, body, false).await
}

async fn server_enable(
    State(h): State<ControllerHandle>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<Peer>,
    body: Result<axum::Json<ServerCommand>, axum::extract::rejection::JsonRejection>,
) -> Response {
    server_change(h, peer, body, true).await
}

async fn server_change(
    h: ControllerHandle,
    peer: Peer,
    body: Result<axum::Json<ServerCommand>, axum::extract::rejection::JsonRejection>,
    enable: bool,
) -> Response {
    let mut cmd = match body {
        Ok(axum::Json(c)) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body must be JSON {{\"vip\": ..., \"server\": \"ADDR[:PORT]\", \"force\": false}}: {e}"
                ),
            );
        }
    };
    cmd.enable = enable;
    cmd.by = match peer {
        Peer::Unix { uid, pid, .. } => match pid {
            Some(pid) => format!("uid {uid} pid {pid}"),
            None => format!("uid {uid}"),
        },
        Peer::Tcp(remote) => format!("token from {remote}"),
        Peer::Unknown => "unknown".to_string(),
    };
    match h.ask(|tx| Command::Server(cmd, tx)).await {
        Ok(Ok(r)) => axum::Json(r).into_response(),
        Ok(Err(e)) => error(server_error_status(&e), &e.to_string()),
        Err(r) => r,
    }
}

/// The HTTP status of a refused real-server change (the local API's and the monitor's).
pub(crate) fn server_error_status(e: &ServerError) -> StatusCode {
    match e {
        ServerError::WouldWithdraw { .. } => StatusCode::CONFLICT,
        ServerError::BadAddress(_) | ServerError::Ambiguous { .. } => StatusCode::BAD_REQUEST,
        ServerError::UnknownVip(_) | ServerError::UnknownServer { .. } => StatusCode::NOT_FOUND,
    }
}

async fn report(State(h): State<ControllerHandle>, headers: HeaderMap, body: Bytes) -> Response {
    let headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let incoming = IncomingReport {
        body: body.to_vec(),
        headers,
        remote: None,
    };
    match h.ask(|tx| Command::Report(incoming, tx)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(rej)) => error(
            StatusCode::from_u16(rej.http_status()).unwrap_or(StatusCode::FORBIDDEN),
            &rej.to_string(),
        ),
        Err(r) => r,
    }
}

/// A bound local API listener, TCP or unix socket.
pub enum LocalListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl LocalListener {
    /// Binds the local API. The socket is created in its directory (made if missing),
    /// owned by the daemon's user (root) and `api.group`, mode 0660, or 0666 when some
    /// reads are public (changes are checked by SO_PEERCRED either way). A stale socket
    /// file left by a crashed daemon is replaced; a socket that still answers means
    /// another daemon runs, and is an error.
    pub async fn bind(api: &crate::config::Api) -> std::io::Result<Self> {
        use crate::config::ApiListen;
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match &api.listen {
            ApiListen::Tcp(addr) => Ok(LocalListener::Tcp(
                tokio::net::TcpListener::bind(addr).await?,
            )),
            ApiListen::Unix(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(dir)?;
                }
                if path.exists() {
                    if tokio::net::UnixStream::connect(path).await.is_ok() {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::AddrInUse,
                            format!("{} is in use by a running daemon", path.display()),
                        ));
                    }
                    std::fs::remove_file(path)?;
                }
                let l = tokio::net::UnixListener::bind(path)?;
                std::os::unix::fs::chown(path, None, Some(api.gid))?;
                let mode = if api.public.is_empty() { 0o660 } else { 0o666 };
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                Ok(LocalListener::Unix(l, path.clone()))
            }
        }
    }

    /// The bound TCP address, if TCP.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            LocalListener::Tcp(l) => l.local_addr().ok(),
            LocalListener::Unix(..) => None,
        }
    }

    /// Serves `router` until `shutdown` resolves; each request knows its [`Peer`].
    pub async fn serve(
        self,
        router: Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        match self {
            LocalListener::Tcp(l) => {
                axum::serve(l, router.into_make_service_with_connect_info::<Peer>())
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            LocalListener::Unix(l, path) => {
                let r = axum::serve(l, router.into_make_service_with_connect_info::<Peer>())
                    .with_graceful_shutdown(shutdown)
                    .await;
                let _ = std::fs::remove_file(path);
                r
            }
        }
    }
}
