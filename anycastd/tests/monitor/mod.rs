//! The browser monitor of a test daemon: a self-signed certificate made here (rcgen),
//! users `ann` (viewer) and `op` (operator) with argon2 hashes, a daemon from
//! `host` with a `[monitor]` table, and an HTTPS client that keeps its session cookie
//! by hand (so a test can forge, drop or replay it).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::host::{Api, Daemon, free_port};

/// The host name in the certificate; the client resolves it to 127.0.0.1.
pub const HOST: &str = "monitor.test";
pub const VIEWER: (&str, &str) = ("ann", "viewer-password-1");
pub const OPERATOR: (&str, &str) = ("op", "operator-password-2");

/// The state of the first VIP in a status document.
pub fn vip_state(st: &serde_json::Value) -> String {
    st["vips"][0]["state"].as_str().unwrap_or("").to_string()
}

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

    /// Starts the daemon over two real servers and waits until VIP `web` is announced.
    pub fn start_announced(test: &str, session_idle: &str, wait: Duration) -> Site {
        let servers: Vec<_> = super::host::free_ports::<2>()
            .iter()
            .map(|p| super::host::RealServer::on(*p).unwrap().addr)
            .collect();
        let site = Site::start(test, &servers, session_idle);
        site.daemon
            .wait_status("web announced", wait, |st| vip_state(st) == "announced");
        site
    }

    /// POSTs `path` as `login`, with its CSRF token: the status code.
    pub async fn post_as(&self, path: &str, login: &Login) -> u16 {
        let r = self
            .client()
            .post(self.url(path))
            .header("cookie", &login.cookie)
            .header("x-csrf-token", &login.csrf)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// Opens the live feed (`GET /api/events`) as `login`; asserts it is one.
    pub async fn events(&self, login: &Login) -> reqwest::Response {
        let feed = self
            .client()
            .get(self.url("/api/events"))
            .header("cookie", &login.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(feed.status(), 200);
        assert_eq!(feed.headers()["content-type"], "text/event-stream");
        feed
    }

    /// The daemon's `/metrics` exposition (local API).
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.daemon.api());
        reqwest::get(url).await.unwrap().text().await.unwrap()
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

/// The next `status` event's document from a live feed ([`Site::events`]); `buf`
/// holds what was read beyond it. Waits at most `wait` for each chunk.
pub async fn next_status(
    feed: &mut reqwest::Response,
    buf: &mut String,
    wait: Duration,
) -> serde_json::Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if event.contains("event: status")
                && let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: "))
            {
                let v: serde_json::Value = serde_json::from_str(data).unwrap();
                return v["status"].clone();
            }
            continue;
        }
        let chunk = tokio::time::timeout(wait, feed.chunk())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("the feed stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}
