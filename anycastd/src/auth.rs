//! Who may use the local API. Reading (status, why, metrics) and changing the site
//! (drain, undrain and every other request) are told apart by method and path; a
//! request that is not a known read is a change, so an endpoint added later is closed
//! until someone opens it on purpose.
//!
//! ```text
//!  accept ── unix: SO_PEERCRED {uid, gid, pid} ──┐
//!         └─ tcp:  remote address ───────────────┤  Peer (per connection)
//!                                                 ▼
//!  request ─> read in `public`? ── yes ──────────────────────> handler
//!               │ no
//!               ▼
//!          operator?  unix: uid 0, or gid / user's groups ∋ api.group
//!                     tcp:  Authorization: Bearer == token_file (constant time)
//!               │ no: 403, one warn line with uid and pid (or address)
//! ```
//! Group membership is the user database's (getgrouplist for the caller's user, plus
//! the caller's gid at connect), not /proc/PID/status of the peer: a pid can be reused
//! between connect and request, a user name cannot, and a user removed from the group
//! loses the right at the next request without logging out.

use std::ffi::CString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use nix::unistd::{Gid, Uid, User, getgrouplist};
use subtle::ConstantTimeEq;

use crate::config::{self, Api, ApiListen, MAX_TOKEN_BYTES, MIN_TOKEN_BYTES, ReadEndpoint};

/// The other end of a local API connection, as the kernel saw it at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// SO_PEERCRED of a unix socket: the effective ids of the connecting process.
    Unix {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
    },
    Tcp(SocketAddr),
    /// The credentials could not be read: never an operator.
    Unknown,
}

impl Connected<IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(s: IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        match s.io().peer_cred() {
            Ok(c) => Peer::Unix {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            Err(_) => Peer::Unknown,
        }
    }
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(s: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer::Tcp(*s.remote_addr())
    }
}

/// The access rules of one local API listener, from `[api]`.
#[derive(Debug, Clone)]
pub struct Access {
    group: String,
    gid: u32,
    public: Vec<ReadEndpoint>,
    token_file: Option<PathBuf>,
}

impl Access {
    pub fn new(api: &Api) -> Arc<Access> {
        Arc::new(Access {
            group: api.group.clone(),
            gid: api.gid,
            public: api.public.clone(),
            token_file: match api.listen {
                ApiListen::Tcp(_) => api.token_file.clone(),
                ApiListen::Unix(_) => None,
            },
        })
    }
}

/// What a request needs: a read of one endpoint, or a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Read(ReadEndpoint),
    Change,
}

pub fn needs(method: &Method, path: &str) -> Needs {
    if method != Method::GET && method != Method::HEAD {
        return Needs::Change;
    }
    match path {
        "/v1/status" => Needs::Read(ReadEndpoint::Status),
        "/metrics" => Needs::Read(ReadEndpoint::Metrics),
        p if p.starts_with("/v1/why/") => Needs::Read(ReadEndpoint::Why),
        _ => Needs::Change,
    }
}

/// Why a caller is not an operator (the 403's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the caller's credentials could not be read")]
    NoCredentials,
    /// The blocking lookup task failed (its join error, as text: it is not `Clone`).
    #[error("the group lookup failed: {0}")]
    LookupFailed(String),
    #[error("uid {uid} is neither root nor a member of group `{group}`")]
    NotInGroup { uid: u32, group: String },
    #[error("uid {uid}: the groups of its user cannot be read ({reason})")]
    GroupsUnreadable { uid: u32, reason: String },
    #[error("this API is read-only over TCP (no api.token_file): use the unix socket")]
    ReadOnlyOverTcp,
    /// The blocking read task failed (its join error, as text).
    #[error("the token file cannot be read: {0}")]
    TokenReadFailed(String),
    #[error("the daemon's token file is unusable (see its log)")]
    TokenFileUnusable,
    #[error("wrong token")]
    WrongToken,
    #[error(
        "a change over TCP needs the operator's token (Authorization: Bearer ...; anycastctl --token-file)"
    )]
    NoToken,
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TokenTooLong,
    #[error("the Authorization header is not `Bearer TOKEN`")]
    NotBearer,
}

/// Whether `peer` is an operator under `access`: `Ok` says how, `Err` why not.
pub async fn operator(
    access: &Access,
    peer: Peer,
    authorization: Option<&[u8]>,
) -> Result<&'static str, Refused> {
    match peer {
        Peer::Unknown => Err(Refused::NoCredentials),
        Peer::Unix { uid: 0, .. } => Ok("root"),
        Peer::Unix { gid, .. } if gid == access.gid => Ok("group"),
        Peer::Unix { uid, .. } => {
            let (group, gid) = (access.group.clone(), access.gid);
            // NSS may read files or ask a directory service: off the runtime's threads.
            let member = tokio::task::spawn_blocking(move || member_of(uid, gid))
                .await
                .map_err(|e| Refused::LookupFailed(e.to_string()))?;
            match member {
                Ok(true) => Ok("group"),
                Ok(false) => Err(Refused::NotInGroup { uid, group }),
                Err(e) => Err(Refused::GroupsUnreadable {
                    uid,
                    reason: e.to_string(),
                }),
            }
        }
        Peer::Tcp(_) => {
            let Some(path) = access.token_file.clone() else {
                return Err(Refused::ReadOnlyOverTcp);
            };
            let given = bearer(authorization)?.to_vec();
            let want = tokio::task::spawn_blocking(move || read_token(&path))
                .await
                .map_err(|e| Refused::TokenReadFailed(e.to_string()))?
                .map_err(|e| {
                    tracing::error!(error = %e, "local API: the token file is unusable; no change is accepted over TCP");
                    Refused::TokenFileUnusable
                })?;
            if bool::from(given.ct_eq(&want)) {
                Ok("token")
            } else {
                Err(Refused::WrongToken)
            }
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header; an oversized header is
/// refused before the token file is read.
fn bearer(authorization: Option<&[u8]>) -> Result<&[u8], Refused> {
    let Some(h) = authorization else {
        return Err(Refused::NoToken);
    };
    if h.len() > MAX_TOKEN_BYTES + 7 {
        return Err(Refused::TokenTooLong);
    }
    h.strip_prefix(b"Bearer ").ok_or(Refused::NotBearer)
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not root's, or readable or writable by others (`anycastd check`'s rules).
    #[error("{path}: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: the token is {len} bytes; {MIN_TOKEN_BYTES} to {MAX_TOKEN_BYTES} are required"
    )]
    Length { path: PathBuf, len: usize },
}

/// The token in `path`, without trailing whitespace, after the same checks as
/// `anycastd check` (the file may have changed since the start).
pub fn read_token(path: &std::path::Path) -> Result<Vec<u8>, TokenError> {
    let path_buf = || path.to_path_buf();
    config::check_token_file(path).map_err(|reason| TokenError::Untrusted {
        path: path_buf(),
        reason,
    })?;
    let mut t = std::fs::read(path).map_err(|source| TokenError::Read {
        path: path_buf(),
        source,
    })?;
    while t.last().is_some_and(|b| b.is_ascii_whitespace()) {
        t.pop();
    }
    if !(MIN_TOKEN_BYTES..=MAX_TOKEN_BYTES).contains(&t.len()) {
        return Err(TokenError::Length {
            path: path_buf(),
            len: t.len(),
        });
    }
    Ok(t)
}

/// Why group membership could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("the user database: {0}")]
    Lookup(#[from] nix::errno::Errno),
    #[error("no user has uid {0}")]
    NoUser(u32),
    #[error("the user name of uid {0} holds a NUL byte")]
    BadName(u32),
}

/// Whether the user `uid` is in group `gid`: as its primary group or as a listed
/// member (getgrouplist, the answer `id USER` gives).
pub fn member_of(uid: u32, gid: u32) -> Result<bool, MembershipError> {
    let user = User::from_uid(Uid::from_raw(uid))?.ok_or(MembershipError::NoUser(uid))?;
    if user.gid.as_raw() == gid {
        return Ok(true);
    }
    let name = CString::new(user.name).map_err(|_| MembershipError::BadName(uid))?;
    let groups = getgrouplist(&name, user.gid)?;
    Ok(groups.contains(&Gid::from_raw(gid)))
}

/// The middleware in front of every local API route.
pub async fn authorize(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    let needs = needs(req.method(), req.uri().path());
    if let Needs::Read(e) = needs
        && access.public.contains(&e)
    {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map_or(Peer::Unknown, |c| c.0);
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|h| h.as_bytes());
    match operator(&access, peer, auth).await {
        Ok(_) => next.run(req).await,
        Err(why) => {
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            let what = match needs {
                Needs::Change => "a change",
                Needs::Read(_) => "a read that is not public",
            };
            match peer {
                Peer::Unix { uid, gid, pid } => {
                    tracing::warn!(uid, gid, pid = pid.unwrap_or(0), %method, path, reason = %why, "local API: refused {what} from a caller who is not an operator")
                }
                Peer::Tcp(remote) => {
                    tracing::warn!(%remote, %method, path, reason = %why, "local API: refused {what} over TCP")
                }
                Peer::Unknown => {
                    tracing::warn!(%method, path, reason = %why, "local API: refused {what}")
                }
            }
            crate::api::error(StatusCode::FORBIDDEN, &format!("not allowed: {why}"))
        }
    }
}

/// Who may change the site, and who may read it, in one paragraph (`anycastd check`).
pub fn describe(api: &Api) -> String {
    let public = if api.public.is_empty() {
        "nothing".to_string()
    } else {
        api.public
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &api.listen {
        ApiListen::Unix(path) => {
            let members = nix::unistd::Group::from_gid(Gid::from_raw(api.gid))
                .ok()
                .flatten()
                .map(|g| g.mem)
                .unwrap_or_default();
            let listed = if members.is_empty() {
                "no listed members".to_string()
            } else {
                format!("listed members: {}", members.join(", "))
            };
            let mode = if api.public.is_empty() {
                "0660"
            } else {
                "0666"
            };
            format!(
                "Local API on unix:{} (root:{} mode {mode})\n  may change the site: root and group {} (gid {}; {listed}; and users whose primary group it is), checked by SO_PEERCRED\n  may read without being an operator: {}\n",
                path.display(),
                api.group,
                api.group,
                api.gid,
                if api.public.is_empty() {
                    "nobody (only root and the group can open the socket)".to_string()
                } else {
                    format!("anyone on this host: {public}")
                }
            )
        }
        ApiListen::Tcp(addr) => format!(
            "Local API on {addr} (TCP, loopback)\n  may change the site: {}\n  may read without a token: any local process: {public}\n",
            match &api.token_file {
                Some(t) => format!(
                    "holders of the token in {} (Authorization: Bearer)",
                    t.display()
                ),
                None => "nobody: no token_file, the API is read-only".to_string(),
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(token_file: Option<PathBuf>) -> Access {
        Access {
            group: "operators".to_string(),
            gid: 4242,
            public: vec![ReadEndpoint::Metrics],
            token_file,
        }
    }

    #[test]
    fn every_request_but_the_known_reads_is_a_change() {
        for (m, p, want) in [
            (Method::GET, "/v1/status", Needs::Read(ReadEndpoint::Status)),
            (Method::HEAD, "/metrics", Needs::Read(ReadEndpoint::Metrics)),
            (Method::GET, "/v1/why/web", Needs::Read(ReadEndpoint::Why)),
            (Method::POST, "/v1/status", Needs::Change),
            (Method::POST, "/v1/drain", Needs::Change),
            (Method::POST, "/v1/undrain/web", Needs::Change),
            (Method::GET, "/v1/drain", Needs::Change),
            (Method::GET, "/v1/server/disable", Needs::Change),
            (Method::DELETE, "/metrics", Needs::Change),
        ] {
            assert_eq!(needs(&m, p), want, "{m} {p}");
        }
    }

    #[tokio::test]
    async fn unix_callers() {
        let a = access(None);
        let unix = |uid, gid| Peer::Unix {
            uid,
            gid,
            pid: Some(1),
        };
        assert_eq!(operator(&a, unix(0, 0), None).await, Ok("root"));
        assert_eq!(operator(&a, unix(65534, 4242), None).await, Ok("group"));
        let r = operator(&a, unix(65534, 65534), None).await.unwrap_err();
        assert_eq!(
            r.to_string(),
            "uid 65534 is neither root nor a member of group `operators`"
        );
        assert!(operator(&a, Peer::Unknown, None).await.is_err());
        // A token means nothing on the socket.
        assert!(
            operator(&a, unix(65534, 65534), Some(b"Bearer x"))
                .await
                .is_err()
        );
    }

    #[test]
    fn membership_reads_the_user_database() {
        // root's primary group is root (gid 0); nobody is not in it.
        assert_eq!(member_of(0, 0), Ok(true));
        assert_eq!(member_of(65534, 0), Ok(false));
        assert!(member_of(4_000_000_000, 0).is_err());
    }

    #[tokio::test]
    async fn tcp_tokens() {
        let tcp = Peer::Tcp(([127, 0, 0, 1], 4000).into());
        let no_file = access(None);
        let r = operator(&no_file, tcp, Some(b"Bearer 0123456789abcdef"))
            .await
            .unwrap_err();
        assert_eq!(r, Refused::ReadOnlyOverTcp);

        let dir = std::env::temp_dir().join(format!("anycastd-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "0123456789abcdef0123\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let a = access(Some(file.clone()));
        assert_eq!(
            operator(&a, tcp, Some(b"Bearer 0123456789abcdef0123")).await,
            Ok("token")
        );
        for (given, why) in [
            (None, "a change over TCP needs the operator's token"),
            (Some(&b"Bearer 0123456789abcdef012"[..]), "wrong token"),
            (Some(b"Bearer 0123456789abcdef01234"), "wrong token"),
            (
                Some(b"Basic 0123456789abcdef0123"),
                "the Authorization header is not",
            ),
        ] {
            let r = operator(&a, tcp, given).await.unwrap_err();
            assert!(r.to_string().starts_with(why), "{given:?}: {r:?}");
        }
        let huge = format!("Bearer {}", "x".repeat(MAX_TOKEN_BYTES + 1));
        let r = operator(&a, tcp, Some(huge.as_bytes())).await.unwrap_err();
        assert_eq!(r.to_string(), "the token is longer than 1024 bytes");

        // A file opened to others after the start is no longer trusted.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = operator(&a, tcp, Some(b"Bearer 0123456789abcdef0123"))
            .await
            .unwrap_err();
        assert_eq!(r, Refused::TokenFileUnusable);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
