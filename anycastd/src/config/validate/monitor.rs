//! `[monitor]`: a listener, TLS files that load, users with a role and an argon2 hash.
//! A listener any other host can reach is refused without TLS or without users.

use super::*;
use crate::config::monitor::*;

impl Validator<'_> {
    pub(super) fn monitor(&mut self, m: Option<&Spanned<RawMonitor>>) -> Option<Monitor> {
        let m = m?;
        let r = m.get_ref();
        let listen = match r.listen.get_ref().parse::<SocketAddr>() {
            Ok(a) => a,
            Err(e) => {
                self.problem(
                    r.listen.span(),
                    format!(
                        "monitor listen `{}` is invalid: {e} (use ADDR:PORT, e.g. 0.0.0.0:8443)",
                        r.listen.get_ref()
                    ),
                );
                return None;
            }
        };
        let tls = match (&r.cert_file, &r.key_file) {
            (Some(c), Some(k)) => {
                let tls = MonitorTls {
                    cert_file: self.relative(c.get_ref()),
                    key_file: self.relative(k.get_ref()),
                };
                if let Err(e) = crate::monitor::tls::server_config(&tls) {
                    self.problem(c.span(), format!("monitor TLS: {e}"));
                }
                Some(tls)
            }
            (Some(f), None) | (None, Some(f)) => {
                self.problem(
                    f.span(),
                    "monitor cert_file and key_file go together: give both or neither",
                );
                None
            }
            (None, None) => None,
        };
        let loopback = listen.ip().is_loopback();
        if tls.is_none() && !loopback {
            self.problem(r.listen.span(), format!("monitor listen `{listen}` is not a loopback address: give cert_file and key_file (HTTPS), or listen on 127.0.0.1 and reach it through an SSH tunnel"));
        }
        let mut users: Vec<MonitorUser> = Vec::new();
        for u in &r.users {
            let u = u.get_ref();
            let name = self.name(&u.name, "monitor user");
            if users.iter().any(|o| o.name == name) {
                self.problem(
                    u.name.span(),
                    format!("monitor user `{name}` is listed twice"),
                );
            }
            let role = match u.role.get_ref().as_str() {
                "viewer" => Role::Viewer,
                "operator" => Role::Operator,
                other => {
                    self.problem(
                        u.role.span(),
                        format!("monitor user role `{other}`: use viewer or operator"),
                    );
                    Role::Viewer
                }
            };
            let hash = u.password_hash.get_ref();
            if let Err(why) = crate::monitor::password::check_hash(hash) {
                self.problem(
                    u.password_hash.span(),
                    format!("monitor user `{name}` password_hash {why} (`anycastd hash-password` prints one)"),
                );
            }
            users.push(MonitorUser {
                name,
                role,
                password_hash: hash.clone(),
            });
        }
        if users.is_empty() {
            self.problem(
                m.span(),
                "the monitor has no [[monitor.user]]: nobody could log in (add one with a hash from `anycastd hash-password`)",
            );
        }
        let session_idle = self.duration(
            r.session_idle.as_ref(),
            "monitor session_idle",
            DEFAULT_SESSION_IDLE,
        );
        let session_max = self.duration(
            r.session_max.as_ref(),
            "monitor session_max",
            DEFAULT_SESSION_MAX,
        );
        if session_idle.is_zero() || session_max < session_idle {
            self.problem(
                r.session_idle
                    .as_ref()
                    .or(r.session_max.as_ref())
                    .map_or(m.span(), |s| s.span()),
                "monitor session_idle must be above zero and at most session_max",
            );
        }
        Some(Monitor {
            listen,
            tls,
            users,
            session_idle,
            session_max,
        })
    }

    /// A path as the config names it: relative to the config file's directory.
    fn relative(&self, p: &str) -> PathBuf {
        self.file.parent().unwrap_or(Path::new(".")).join(p)
    }
}
