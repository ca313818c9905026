//! From [`RawConfig`] to [`SiteConfig`]: every value checked, every default filled,
//! every problem collected with its line. The checks per section are in
//! `site.rs` (site, api, exchange, spill), `bgp.rs` (bgp, neighbors, peers) and
//! `vips.rs` (VIPs, services, real servers, checks).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::*;
use super::*;

mod bgp;
mod directors;
mod endpoint;
mod family;
mod monitor;
mod notify;
mod site;
mod sync;
mod vips;

pub(crate) use site::check_token_file;
pub use sync::CONSISTENT_SCHEDULERS;

const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];

/// Parses and validates the text of a config file; `file` is used in messages and to
/// resolve relative `key_file` paths.
pub fn parse_str(file: &Path, text: &str) -> Result<SiteConfig, ConfigError> {
    let mut v = Validator {
        file: file.to_path_buf(),
        text,
        problems: Vec::new(),
        check_rate: 0.0,
        rate_refused: false,
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            v.problem(span, e.message().to_string());
            return Err(v.into_error());
        }
    };
    let cfg = v.config(raw);
    if v.problems.is_empty() {
        Ok(cfg)
    } else {
        Err(v.into_error())
    }
}

struct Validator<'a> {
    file: PathBuf,
    text: &'a str,
    problems: Vec<Problem>,
    /// New TCP connections a second the checks of the servers so far open in steady
    /// state (see [`vips::connections_per_second`]).
    check_rate: f64,
    /// The site's check rate was refused already (one problem, not one per server).
    rate_refused: bool,
}

impl Validator<'_> {
    /// The 1-based line where `span` starts.
    fn line(&self, span: &Range<usize>) -> usize {
        let start = span.start.min(self.text.len());
        self.text[..start].matches('\n').count() + 1
    }

    fn problem(&mut self, span: Range<usize>, reason: impl Into<String>) {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let column = start - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            column,
            reason: reason.into(),
        });
    }

    fn into_error(self) -> ConfigError {
        ConfigError {
            problems: self.problems,
        }
    }

    fn parsed<T, E: std::fmt::Display>(
        &mut self,
        s: &Spanned<String>,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(s.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(
                    s.span(),
                    format!("{what} `{}` is invalid: {e}", s.get_ref()),
                );
                None
            }
        }
    }

    fn ipv4(&mut self, s: &Spanned<String>, what: &str) -> Option<Ipv4Addr> {
        self.parsed(s, what, |t| t.parse::<Ipv4Addr>())
    }

    /// An IPv6 address a tunnel can end at: unicast, not link-local (a tunnel
    /// endpoint has no interface scope), not loopback or unspecified.
    fn ipv6_endpoint(&mut self, s: &Spanned<String>, what: &str) -> Option<Ipv6Addr> {
        let a = self.parsed(s, what, |t| t.parse::<Ipv6Addr>())?;
        let link_local = (a.segments()[0] & 0xffc0) == 0xfe80;
        if a.is_unspecified() || a.is_loopback() || a.is_multicast() || link_local {
            self.problem(
                s.span(),
                format!("{what} {a} is not a routable unicast IPv6 address (a tunnel endpoint cannot be unspecified, loopback, multicast or link-local)"),
            );
            return None;
        }
        Some(a)
    }

    fn ip(&mut self, s: &Spanned<String>, what: &str) -> Option<IpAddr> {
        self.parsed(s, what, |t| t.parse::<IpAddr>())
    }

    fn duration(&mut self, s: Option<&Spanned<String>>, what: &str, default: Duration) -> Duration {
        match s {
            None => default,
            Some(s) => self.parsed(s, what, duration::parse).unwrap_or(default),
        }
    }

    fn fraction(&mut self, v: Option<&Spanned<f64>>, what: &str, default: f64, max: f64) -> f64 {
        let Some(v) = v else { return default };
        let x = *v.get_ref();
        if !(x.is_finite() && x >= 0.0 && x <= max) {
            self.problem(
                v.span(),
                format!("{what} must be between 0 and {max}, not {x}"),
            );
            return default;
        }
        x
    }

    fn config(&mut self, raw: RawConfig) -> SiteConfig {
        let mut site = self.site(&raw.site);
        let api = self.api(raw.api.as_ref());
        let exchange = self.exchange(raw.exchange.as_ref(), site.address);
        let spill = self.spill(raw.spill.as_ref());
        let bgp = self.bgp(&raw.bgp, site.address);
        let peers = self.peers(&raw.peers, &site);
        let directors = self.directors(&raw, &site, exchange.listen.port());
        let vips = self.vips(&raw.vips);
        site.endpoint = self.site_endpoint(&raw.site, &site, &vips, &peers);
        self.families(&raw, &site);
        let log = self.log(raw.log.as_ref());
        let sync = raw.sync.as_ref().map(|s| self.sync(s, site.dataplane));
        let monitor = self.monitor(raw.monitor.as_ref());
        let notify = self.notify(raw.notify.as_ref());
        if !site.dataplane
            && let Some(p) = raw.peers.first()
        {
            self.problem(p.span(), "[[peer]] needs the data plane (spilled connections go through IPVS and IPIP): remove the peers or set site.dataplane = true");
        }
        if vips.is_empty() && self.problems.is_empty() {
            self.problem(
                raw.site.span(),
                "no [[vip]] is configured: a site needs at least one VIP",
            );
        }
        SiteConfig {
            site,
            api,
            exchange,
            spill,
            bgp,
            peers,
            directors,
            vips,
            log,
            sync,
            monitor,
            notify,
        }
    }

    fn name(&mut self, s: &Spanned<String>, what: &str) -> String {
        let n = s.get_ref();
        let ok = !n.is_empty()
            && n.len() <= 63
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !ok {
            self.problem(
                s.span(),
                format!("{what} `{n}` must be 1-63 characters of letters, digits, `-`, `_` or `.`"),
            );
        }
        n.clone()
    }

    fn device(&mut self, s: Option<&Spanned<String>>, what: &str, default: &str) -> String {
        let Some(s) = s else {
            return default.to_string();
        };
        let n = s.get_ref();
        if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', ':']) {
            self.problem(s.span(), format!("{what} `{n}` is not a valid interface name (1-15 characters, no `/`, `:` or space)"));
        }
        n.clone()
    }

    fn log(&mut self, l: Option<&Spanned<RawLog>>) -> Log {
        let r = l.map(|l| l.get_ref());
        let format = match r.and_then(|r| r.format.as_ref()) {
            None => LogFormat::Text,
            Some(f) => match f.get_ref().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    self.problem(
                        f.span(),
                        format!("log format `{other}` is not `text` or `json`"),
                    );
                    LogFormat::Text
                }
            },
        };
        let level = match r.and_then(|r| r.level.as_ref()) {
            None => "info".to_string(),
            Some(l) => {
                if !["error", "warn", "info", "debug", "trace"].contains(&l.get_ref().as_str()) {
                    self.problem(
                        l.span(),
                        format!(
                            "log level `{}` is not one of error, warn, info, debug, trace",
                            l.get_ref()
                        ),
                    );
                }
                l.get_ref().clone()
            }
        };
        Log { format, level }
    }
}

/// A check's defaults for its kind. A TCP connect costs the server a handshake in its
/// kernel, so it runs every 200 ms: a silent failure (a path that drops everything, no
/// RST) is then seen after `fall` = 3 timeouts, 0.6-0.8 s, and the hedged connect
/// (geo-balancer's `tcp_connect`) keeps a lost SYN from counting as a failure. An HTTP
/// request or a process costs the server or this host real work, so those keep 2 s / 1 s.
/// An ICMP echo is answered by the server's kernel: 200 ms / 200 ms, no fast detect.
/// A TCP real server that names no check gets `default_check(CheckKind::Tcp, port)`.
fn default_check(kind: CheckKind, port: u16) -> Check {
    let (interval, timeout) = match kind {
        // An echo costs the server's kernel one packet: as often as a TCP check.
        CheckKind::Tcp | CheckKind::Icmp => {
            (Duration::from_millis(200), Duration::from_millis(200))
        }
        CheckKind::Http { .. } | CheckKind::Command { .. } => {
            (Duration::from_secs(2), Duration::from_secs(1))
        }
    };
    Check {
        // An ICMP check has no connection to hold.
        fast_detect: kind != CheckKind::Icmp,
        kind,
        port,
        interval,
        timeout,
        rise: 2,
        fall: 3,
        echo: true,
        full_interval: Duration::from_secs(5),
    }
}

fn parse_community(s: &str) -> Result<(u16, u16), String> {
    if s == "graceful-shutdown" {
        return Ok((65535, 0));
    }
    let (a, b) = s
        .split_once(':')
        .ok_or("expected ASN:VALUE, e.g. 65000:100")?;
    Ok((
        a.parse()
            .map_err(|_| format!("`{a}` is not a 16-bit number"))?,
        b.parse()
            .map_err(|_| format!("`{b}` is not a 16-bit number"))?,
    ))
}

fn parse_large_community(s: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [a, b, c] = parts.as_slice() else {
        return Err("expected GLOBAL:LOCAL1:LOCAL2, e.g. 65000:1:2".to_string());
    };
    let n = |x: &str| {
        x.parse::<u32>()
            .map_err(|_| format!("`{x}` is not a 32-bit number"))
    };
    Ok((n(a)?, n(b)?, n(c)?))
}
