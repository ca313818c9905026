//! The monitor's HTTP surface. Every `/api` request but the login needs a session
//! cookie; every POST but the login also needs the session's CSRF token in
//! `X-CSRF-Token`; drain, undrain and server changes need the operator role. Each
//! refusal is a JSON error with its status, counted and logged once per burst
//! (`counters`); each action, allowed or not, is one line of the `audit` target.

// A refusal is the response itself, built once on the refusal path: boxing it would
// only add an allocation there.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::Shared;
use super::counters::{Refusal, refused};
use super::password;
use super::session::{Lookup, Session};
use super::tls::Client;
use crate::api::{Command, ServerCommand};
use crate::config::monitor::Role;

/// Largest request body; a larger one is refused with 413 before it is read whole.
pub const MAX_BODY: usize = 4 * 1024;
const COOKIE: &str = "anycastd_session";
const CSRF_HEADER: &str = "x-csrf-token";
/// A live feed checks its session at least this often.
const FEED_CHECK: Duration = Duration::from_secs(5);

type Shr = State<Arc<Shared>>;
type Remote = ConnectInfo<Client>;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    let tls = shared.tls;
    Router::new()
        .route("/", get(super::assets::index))
        .route("/app.js", get(super::assets::script))
        .route("/app.css", get(super::assets::style))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/status", get(status))
        .route("/api/history", get(history))
        .route("/api/events", get(events))
        .route("/api/why/{vip}", get(why))
        .route("/api/drain/{vip}", post(drain))
        .route("/api/undrain/{vip}", post(undrain))
        .route("/api/server/disable", post(server_disable))
        .route("/api/server/enable", post(server_enable))
        .fallback(not_found)
        .with_state(shared)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(
            move |mut r: Response| async move {
                let h = r.headers_mut();
                let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
                    h.insert(k, HeaderValue::from_static(v));
                };
                set(h, "content-security-policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
                set(h, "x-content-type-options", "nosniff");
                set(h, "x-frame-options", "DENY");
                set(h, "referrer-policy", "no-referrer");
                set(h, "cache-control", "no-store");
                if tls {
                    set(h, "strict-transport-security", "max-age=31536000");
                }
                r
            },
        ))
}

use crate::api::error as json_error;

fn refuse(r: Refusal, remote: &SocketAddr, path: &str, code: StatusCode, msg: &str) -> Response {
    refused(r, &remote.ip().to_string(), path, msg);
    json_error(code, msg)
}

async fn not_found(ConnectInfo(Client(remote)): Remote, uri: Uri) -> Response {
    refuse(
        Refusal::NotFound,
        &remote,
        uri.path(),
        StatusCode::NOT_FOUND,
        "no such page or endpoint",
    )
}

fn body_or_refuse(
    body: Result<Bytes, BytesRejection>,
    remote: &SocketAddr,
    path: &str,
) -> Result<Bytes, Response> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            let msg = format!("the request body is over {MAX_BODY} bytes");
            refuse(
                Refusal::TooLarge,
                remote,
                path,
                StatusCode::PAYLOAD_TOO_LARGE,
                &msg,
            )
        } else {
            refuse(
                Refusal::BadRequest,
                remote,
                path,
                StatusCode::BAD_REQUEST,
                &e.body_text(),
            )
        }
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(
    body: &Bytes,
    remote: &SocketAddr,
    path: &str,
    shape: &str,
) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = format!("the body must be JSON {shape}: {e}");
        refuse(
            Refusal::BadRequest,
            remote,
            path,
            StatusCode::BAD_REQUEST,
            &msg,
        )
    })
}

fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// What a request needs beyond a session.
#[derive(Clone, Copy, PartialEq)]
enum Need {
    Read,
    /// A POST: the CSRF token, and at least this role.
    Change(Role),
}

/// The caller's session, or the refusal to send.
fn authorize(
    s: &Shared,
    headers: &HeaderMap,
    remote: &SocketAddr,
    path: &str,
    need: Need,
) -> Result<(String, Session), Response> {
    let Some(id) = cookie_id(headers) else {
        return Err(refuse(
            Refusal::Unauthenticated,
            remote,
            path,
            StatusCode::UNAUTHORIZED,
            "log in first",
        ));
    };
    let lookup = match s.sessions.lock() {
        Ok(mut sessions) => sessions.touch(&id, Instant::now()),
        Err(_) => Lookup::Unknown,
    };
    let session = match lookup {
        Lookup::Valid(v) => v,
        Lookup::Expired => {
            return Err(refuse(
                Refusal::SessionExpired,
                remote,
                path,
                StatusCode::UNAUTHORIZED,
                "the session expired: log in again",
            ));
        }
        Lookup::Unknown => {
            return Err(refuse(
                Refusal::Unauthenticated,
                remote,
                path,
                StatusCode::UNAUTHORIZED,
                "no such session: log in again",
            ));
        }
    };
    if let Need::Change(role) = need {
        let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !session.csrf_matches(token) {
            let why = if token.is_none() { "missing" } else { "wrong" };
            audit(
                &session.user,
                path,
                remote,
                &format!("refused: CSRF token {why}"),
            );
            let msg = format!("the CSRF token is {why}: reload the page");
            return Err(refuse(
                Refusal::Csrf,
                remote,
                path,
                StatusCode::FORBIDDEN,
                &msg,
            ));
        }
        if session.role < role {
            audit(&session.user, path, remote, "refused: not an operator");
            let msg = format!(
                "user {} is a {}: only an operator may do this",
                session.user,
                session.role.as_str()
            );
            return Err(refuse(
                Refusal::Forbidden,
                remote,
                path,
                StatusCode::FORBIDDEN,
                &msg,
            ));
        }
    }
    Ok((id, session))
}

fn audit(user: &str, action: &str, remote: &SocketAddr, result: &str) {
    tracing::info!(target: "audit", user, action, remote = %remote.ip(), result, "monitor action");
}

#[derive(serde::Deserialize)]
struct Login {
    user: String,
    password: String,
}

/// A hash to verify unknown users against, so that a wrong name costs the same time
/// as a wrong password.
fn decoy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| password::hash("decoy password for unknown users").unwrap_or_default())
}

async fn login(
    State(s): Shr,
    ConnectInfo(Client(remote)): Remote,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    const PATH: &str = "/api/login";
    // A cross-site form cannot send this type without the browser asking first (CORS),
    // so no other site can log a browser in under an account of its choosing.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        let msg = "the login takes Content-Type: application/json";
        return refuse(
            Refusal::BadRequest,
            &remote,
            PATH,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            msg,
        );
    }
    let body = match body_or_refuse(body, &remote, PATH) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let l: Login = match parse_json(&body, &remote, PATH, "{\"user\": ..., \"password\": ...}") {
        Ok(l) => l,
        Err(r) => return r,
    };
    let ip = remote.ip().to_string();
    let checked = s
        .limiter
        .lock()
        .map_or(Ok(()), |mut lim| lim.check(&ip, &l.user, Instant::now()));
    if let Err(wait) = checked {
        audit(&l.user, "login", &remote, "refused: too many failed logins");
        let msg = format!(
            "too many failed logins: try again in {} s",
            wait.as_secs().max(1)
        );
        let mut r = refuse(
            Refusal::RateLimited,
            &remote,
            PATH,
            StatusCode::TOO_MANY_REQUESTS,
            &msg,
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let user = s.users.iter().find(|u| u.name == l.user).cloned();
    let phc = user
        .as_ref()
        .map_or_else(|| decoy_hash().to_string(), |u| u.password_hash.clone());
    let pw = l.password;
    let ok = tokio::task::spawn_blocking(move || password::verify(&phc, &pw))
        .await
        .unwrap_or(false);
    let user = match user {
        Some(u) if ok => u,
        _ => {
            if let Ok(mut lim) = s.limiter.lock() {
                lim.failed(&ip, &l.user, Instant::now());
            }
            audit(&l.user, "login", &remote, "refused: wrong user or password");
            return refuse(
                Refusal::BadLogin,
                &remote,
                PATH,
                StatusCode::UNAUTHORIZED,
                "wrong user or password",
            );
        }
    };
    if let Ok(mut lim) = s.limiter.lock() {
        lim.succeeded(&user.name);
    }
    let Ok(mut sessions) = s.sessions.lock() else {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "session store unavailable",
        );
    };
    let (id, session) = sessions.create(&user.name, user.role, Instant::now());
    drop(sessions);
    audit(&user.name, "login", &remote, "ok");
    let secure = if s.tls { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let mut r = axum::Json(me_json(&session)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn me_json(s: &Session) -> serde_json::Value {
    serde_json::json!({ "user": s.user, "role": s.role, "csrf": s.csrf })
}

async fn logout(
    State(s): Shr,
    ConnectInfo(Client(remote)): Remote,
    headers: HeaderMap,
) -> Response {
    let (id, session) = match authorize(
        &s,
        &headers,
        &remote,
        "/api/logout",
        Need::Change(Role::Viewer),
    ) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Ok(mut sessions) = s.sessions.lock() {
        sessions.remove(&id);
    }
    audit(&session.user, "logout", &remote, "ok");
    let mut r = StatusCode::NO_CONTENT.into_response();
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn me(State(s): Shr, ConnectInfo(Client(remote)): Remote, headers: HeaderMap) -> Response {
    match authorize(&s, &headers, &remote, "/api/me", Need::Read) {
        Ok((_, session)) => axum::Json(me_json(&session)).into_response(),
        Err(r) => r,
    }
}

async fn status(
    State(s): Shr,
    ConnectInfo(Client(remote)): Remote,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&s, &headers, &remote, "/api/status", Need::Read) {
        return r;
    }
    match s.handle.ask(Command::Status).await {
        Ok(st) => axum::Json(st).into_response(),
        Err(r) => r,
    }
}

async fn history(
    State(s): Shr,
    ConnectInfo(Client(remote)): Remote,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&s, &headers, &remote, "/api/history", Need::Read) {
        return r;
    }
    let samples = s.history.lock().map(|h| h.samples()).unwrap_or_default();
    axum::Json(samples).into_response()
}

async fn why(
    State(s): Shr,
    ConnectInfo(Client(remote)): Remote,
    headers: HeaderMap,
    Path(vip): Path<String>,
) -> Response {
    if let Err(r) = authorize(&s, &headers, &remote, "/api/why", Need::Read) {
        return r;
    }
    match s.handle.ask(|tx| Command::Why(vip, tx)).await {
        Ok(Ok(w)) => axum::Json(w).into_response(),
        Ok(Err(e)) => json_error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(r) => r,
    }
}

/// `GET /api/events`: the live feed as server-sent events (`status`, and `expired`
/// once the session is over, after which the stream ends).
async fn events(
    State(s): Shr,
    ConnectInfo(Client(remote)): Remote,
    headers: HeaderMap,
) -> Response {
    let id = match authorize(&s, &headers, &remote, "/api/events", Need::Read) {
        Ok((id, _)) => id,
        Err(r) => return r,
    };
    let mut rx = s.feed.clone();
    rx.mark_changed();
    let page = super::Page::open(s.clone());
    let stream = futures_util::stream::unfold(Some((s, rx, id, page)), |st| async move {
        let (s, mut rx, id, page) = st?;
        loop {
            let alive = s
                .sessions
                .lock()
                .is_ok_and(|x| x.alive(&id, Instant::now()));
            if !alive {
                let ev = Event::default()
                    .event("expired")
                    .data("the session expired");
                return Some((Ok::<_, std::convert::Infallible>(ev), None));
            }
            match tokio::time::timeout(FEED_CHECK, rx.changed()).await {
                Ok(Ok(())) => {
                    let snapshot = rx.borrow_and_update().clone();
                    if let Some(f) = snapshot
                        && let Ok(ev) = Event::default().event("status").json_data(&*f)
                    {
                        return Some((Ok(ev), Some((s, rx, id, page))));
                    }
                }
                Ok(Err(_)) => return None,
                Err(_) => {}
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn drain(
    State(s): Shr,
    ConnectInfo(Client(remote)): Remote,
    headers: HeaderMap,
    Path(vip): Path<String>,
) -> Response {
    drain_or_undrain(s, remote, headers, vip, true).await
}

async fn undrain(
    State(s): Shr,
    ConnectInfo(Client(remote)): Remote,
    headers: HeaderMap,
    Path(vip): Path<String>,
) -> Response {
    drain_or_undrain(s, remote, headers, vip, false).await
}

async fn drain_or_undrain(
    s: Arc<Shared>,
    remote: SocketAddr,
    headers: HeaderMap,
    vip: String,
    drain: bool,
) -> Response {
    let action = if drain { "drain" } else { "undrain" };
    let path = format!("/api/{action}/{vip}");
    let session = match authorize(&s, &headers, &remote, &path, Need::Change(Role::Operator)) {
        Ok((_, v)) => v,
        Err(r) => return r,
    };
    let v = Some(vip.clone());
    let asked = if drain {
        s.handle.ask(|tx| Command::Drain(v, tx)).await
    } else {
        s.handle.ask(|tx| Command::Undrain(v, tx)).await
    };
    match asked {
        Ok(Ok(reply)) => {
            audit(&session.user, &path, &remote, "ok");
            axum::Json(reply).into_response()
        }
        Ok(Err(e)) => {
            audit(&session.user, &path, &remote, "refused: unknown VIP");
            json_error(StatusCode::NOT_FOUND, &e.to_string())
        }
        Err(r) => r,
    }
}

async fn server_disable(
    State(s): Shr,
    ConnectInfo(Client(remote)): Remote,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    server_change(s, remote, headers, body, false).await
}

async fn server_enable(
    State(s): Shr,
    ConnectInfo(Client(remote)): Remote,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    server_change(s, remote, headers, body, true).await
}

async fn server_change(
    s: Arc<Shared>,
    remote: SocketAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    enable: bool,
) -> Response {
    let path = if enable {
        "/api/server/enable"
    } else {
        "/api/server/disable"
    };
    let session = match authorize(&s, &headers, &remote, path, Need::Change(Role::Operator)) {
        Ok((_, v)) => v,
        Err(r) => return r,
    };
    let body = match body_or_refuse(body, &remote, path) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let shape = "{\"vip\": ..., \"server\": \"ADDR[:PORT]\", \"force\": false}";
    let mut cmd: ServerCommand = match parse_json(&body, &remote, path, shape) {
        Ok(c) => c,
        Err(r) => return r,
    };
    cmd.enable = enable;
    cmd.by = format!("monitor user {} from {}", session.user, remote.ip());
    let what = format!("{path} {} {}", cmd.vip, cmd.server);
    match s.handle.ask(|tx| Command::Server(cmd, tx)).await {
        Ok(Ok(reply)) => {
            audit(&session.user, &what, &remote, "ok");
            axum::Json(reply).into_response()
        }
        Ok(Err(e)) => {
            let code = crate::api::server_error_status(&e);
            audit(&session.user, &what, &remote, &format!("refused: {e}"));
            json_error(code, &e.to_string())
        }
        Err(r) => r,
    }
}
