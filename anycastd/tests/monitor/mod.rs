//! The browser monitor of a test daemon: a self-signed certificate made here (rcgen),
//! users `ann` (viewer) and `op` (operator) with argon2 hashes, a daemon from
//! `host` with a `[monitor]` table, and an HTTPS client that keeps its session cookie
//! by hand (so a test can forge, drop or replay it).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use super::host::{Api, Daemon, free_port};

/// The host name in the certificate; the client resolves it to 127.0.0.1.
pub const HOST: &str = "monitor.test";
pub const VIEWER: (&str, &str) = ("ann", "viewer-password-1");
pub const OPERATOR: (&str, &str) = ("op", "operator-password-2");

/// A fresh `dir` with `monitor.crt` (self-signed for [`HOST`]) and `monitor.key`
/// (mode 0600); the certificate's PEM.
pub fn write_tls_files(dir: &std::path::Path) -> String {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec![HOST.to_string()]).unwrap();
    let cert_pem = ck.cert.pem();
    std::fs::write(dir.join("monitor.crt"), &cert_pem).unwrap();
    super::host::write_private(&dir.join("monitor.key"), &ck.signing_key.serialize_pem());
    cert_pem
}

/// `[monitor]` on `listen` with the files of [`write_tls_files`] in `certs`, and the
/// users [`VIEWER`] and [`OPERATOR`].
pub fn monitor_tables(listen: &str, certs: &std::path::Path, session_idle: &str) -> String {
    let hash = |pw: &str| anycastd::monitor::password::hash(pw).unwrap();
    format!(
        r#"[monitor]
listen = "{listen}"
cert_file = "{crt}"
key_file = "{key}"
session_idle = "{session_idle}"

[[monitor.user]]
name = "{vn}"
role = "viewer"
password_hash = "{vh}"

[[monitor.user]]
name = "{on}"
role = "operator"
password_hash = "{oh}"
"#,
        crt = certs.join("monitor.crt").display(),
        key = certs.join("monitor.key").display(),
        vn = VIEWER.0,
        vh = hash(VIEWER.1),
        on = OPERATOR.0,
        oh = hash(OPERATOR.1),
    )
}

/// A daemon with its monitor, and the certificate the client trusts.
pub struct Site {
    pub daemon: Daemon,
    pub addr: SocketAddr,
    pub cert_pem: String,
    certs: PathBuf,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.certs);
    }
}

impl Site {
    /// Starts the daemon over `servers` with sessions idle for at most `session_idle`.
    pub fn start(test: &str, servers: &[SocketAddr], session_idle: &str) -> Site {
        let certs =
            std::env::temp_dir().join(format!("anycastd-{test}-certs-{}", std::process::id()));
        let cert_pem = write_tls_files(&certs);
        let port = free_port();
        // The [monitor] table follows the [api] lines the helper writes.
        let lines = format!(
            "token_file = \"api.token\"\n\n{}",
            monitor_tables(&format!("127.0.0.1:{port}"), &certs, session_idle)
        );
        let daemon = Daemon::start_with(test, Api::Tcp, &lines, servers);
        Site {
            daemon,
            addr: ([127, 0, 0, 1], port).into(),
            cert_pem,
            certs,
        }
    }

    /// An HTTPS client that trusts only this site's certificate.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).unwrap())
            .resolve(HOST, self.addr)
            .https_only(true)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.addr.port())
    }

    /// Logs in: the session cookie (`anycastd_session=...`), the `Set-Cookie` line and
    /// the CSRF token; or the refusal's status and body.
    pub async fn login(&self, user: &str, password: &str) -> Result<Login, (u16, String)> {
        let r = self
            .client()
            .post(self.url("/api/login"))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "user": user, "password": password }).to_string())
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let set_cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body: serde_json::Value =
            serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default();
        if code != 200 {
            return Err((code, body.to_string()));
        }
        let cookie = set_cookie.split(';').next().unwrap_or("").to_string();
        Ok(Login {
            cookie,
            set_cookie,
            csrf: body["csrf"].as_str().unwrap_or("").to_string(),
            role: body["role"].as_str().unwrap_or("").to_string(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Login {
    pub cookie: String,
    pub set_cookie: String,
    pub csrf: String,
    pub role: String,
}
