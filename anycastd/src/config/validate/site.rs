//! [site], [api], [exchange] and [spill].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use geo_balancer::AllDown;
use toml::Spanned;

use super::Validator;
use crate::config::raw::*;
use crate::config::*;

impl Validator<'_> {
    pub(super) fn site(&mut self, s: &Spanned<RawSite>) -> Site {
        let r = s.get_ref();
        let tunnel_device = self.device(r.tunnel_device.as_ref(), "tunnel_device", "anycast0");
        let tunnel6_device = self.device(
            r.tunnel6_device.as_ref(),
            "tunnel6_device",
            DEFAULT_TUNNEL6_DEVICE,
        );
        if tunnel6_device == tunnel_device {
            let span = r
                .tunnel6_device
                .as_ref()
                .or(r.tunnel_device.as_ref())
                .map_or(s.span(), |d| d.span());
            self.problem(
                span,
                format!("tunnel6_device `{tunnel6_device}` is also the tunnel_device: the IPIP and ip6ip6 devices need a name each"),
            );
        }
        let mut client_devices: Vec<String> = Vec::new();
        for d in r.client_devices.iter().flat_map(|l| l.get_ref()) {
            let name = self.device(Some(d), "client_devices entry", "");
            if name == tunnel_device || name == tunnel6_device {
                self.problem(
                    d.span(),
                    format!("client device `{name}` is the tunnel device: spilled connections arriving there must not be split again"),
                );
            } else if client_devices.contains(&name) {
                self.problem(d.span(), format!("client device `{name}` listed twice"));
            } else {
                client_devices.push(name);
            }
        }
        Site {
            name: self.name(&r.name, "site name"),
            director: match &r.director {
                Some(d) => self.name(d, "director name"),
                None => DEFAULT_DIRECTOR.to_string(),
            },
            address: self
                .ipv4(&r.address, "site address")
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            address_v6: r
                .address_v6
                .as_ref()
                .and_then(|a| self.ipv6_endpoint(a, "site address_v6")),
            tunnel_device,
            tunnel6_device,
            vip_device: self.device(r.vip_device.as_ref(), "vip_device", "lo"),
            client_devices,
            shutdown_wait: self.duration(
                r.shutdown_wait.as_ref(),
                "shutdown_wait",
                Duration::from_secs(5),
            ),
            state_dir: match &r.state_dir {
                None => PathBuf::from("/var/lib/anycastd"),
                Some(d) if !d.get_ref().starts_with('/') => {
                    self.problem(
                        d.span(),
                        format!("state_dir `{}` must be an absolute path", d.get_ref()),
                    );
                    PathBuf::from("/var/lib/anycastd")
                }
                Some(d) => PathBuf::from(d.get_ref()),
            },
            dataplane: r.dataplane.as_ref().is_none_or(|d| *d.get_ref()),
            tunnel_pmtu: self.tunnel_pmtu(r.tunnel_pmtu.as_ref()),
            ipv6_mss_clamp: r.ipv6_mss_clamp.as_ref().is_none_or(|c| *c.get_ref()),
            ipv6_path_mtu: self.ipv6_path_mtu(r.ipv6_path_mtu.as_ref()),
            ipv6_path_mtu_line: self.line(&r.ipv6_path_mtu.as_ref().map_or(s.span(), |v| v.span())),
            all_down: self.all_down(r.all_down.as_ref()),
            endpoint: None,
        }
    }

    fn ipv6_path_mtu(&mut self, v: Option<&Spanned<i64>>) -> u32 {
        const DEFAULT: u32 = 1500;
        let Some(v) = v else {
            return DEFAULT;
        };
        let n = *v.get_ref();
        let why = if n < i64::from(MIN_IPV6_PATH_MTU) {
            "below IPv6's minimum: ip6ip6 needs 1280 bytes for the packet it carries plus 40 of its own (1320)"
        } else if n > i64::from(MAX_IPV6_PATH_MTU) {
            "above any device's MTU (65535)"
        } else {
            return u32::try_from(n).unwrap_or(DEFAULT);
        };
        self.problem(v.span(), format!("ipv6_path_mtu {n} cannot work: {why}"));
        DEFAULT
    }

    fn tunnel_pmtu(&mut self, v: Option<&Spanned<String>>) -> TunnelPmtu {
        self.one_of(
            v,
            &TunnelPmtu::ALL,
            TunnelPmtu::as_str,
            TunnelPmtu::Fragment,
            "tunnel_pmtu",
            "`fragment` (the director fragments spilled packets that no longer fit once tunnelled) or `discover` (the client is sent ICMP fragmentation-needed)",
        )
    }

    fn all_down(&mut self, v: Option<&Spanned<String>>) -> AllDown {
        self.one_of(
            v,
            &[AllDown::Announce, AllDown::Withdraw],
            AllDown::as_str,
            AllDown::default(),
            "all_down",
            "`announce` (keep announcing while every peer is withdrawn too: fail-open) or `withdraw` (withdraw everywhere)",
        )
    }

    /// The value of `key` named by `v` among `all` (`default` when absent); a name not
    /// among them is a problem on its line: "`key` `v` is not `choices`".
    fn one_of<T: Copy>(
        &mut self,
        v: Option<&Spanned<String>>,
        all: &[T],
        name: fn(T) -> &'static str,
        default: T,
        key: &str,
        choices: &str,
    ) -> T {
        let Some(v) = v else {
            return default;
        };
        match all.iter().copied().find(|p| name(*p) == v.get_ref()) {
            Some(p) => p,
            None => {
                self.problem(
                    v.span(),
                    format!("{key} `{}` is not {choices}", v.get_ref()),
                );
                default
            }
        }
    }

    pub(super) fn api(&mut self, a: Option<&Spanned<RawApi>>) -> Api {
        let r = a.map(|a| a.get_ref());
        // Where a problem with a default value is reported: the [api] table, or line 1.
        let table = a.map_or(0..0, |a| a.span());
        let listen = match r.and_then(|r| r.listen.as_ref()) {
            None => ApiListen::Unix(PathBuf::from(DEFAULT_API_SOCKET)),
            Some(l) => self.api_listen(l),
        };
        let unix = matches!(listen, ApiListen::Unix(_));
        let group = r.and_then(|r| r.group.as_ref());
        let group_name = group.map_or(DEFAULT_API_GROUP, |g| g.get_ref().as_str());
        // Only the socket uses the group; over TCP the token decides.
        let gid = match nix::unistd::Group::from_name(group_name) {
            Ok(Some(g)) => g.gid.as_raw(),
            Ok(None) | Err(_) if !unix => u32::MAX,
            Ok(None) => {
                let fix = match group {
                    Some(_) => "create it (groupadd --system GROUP) or name another",
                    None => "create it (groupadd --system anycastd) or set [api] group",
                };
                self.problem(
                    group.map_or(table.clone(), |g| g.span()),
                    format!("api group `{group_name}` does not exist: {fix}"),
                );
                u32::MAX
            }
            Err(e) => {
                self.problem(
                    group.map_or(table.clone(), |g| g.span()),
                    format!("api group `{group_name}` cannot be looked up: {e}"),
                );
                u32::MAX
            }
        };
        let public = match r.and_then(|r| r.public.as_ref()) {
            // As before on TCP: loopback reads are open; changes need the token.
            None if !unix => ReadEndpoint::ALL.to_vec(),
            None => Vec::new(),
            Some(list) => {
                let mut out = Vec::new();
                for e in list.get_ref() {
                    match ReadEndpoint::ALL
                        .into_iter()
                        .find(|r| r.as_str() == e.get_ref())
                    {
                        Some(r) if !out.contains(&r) => out.push(r),
                        Some(_) => {}
                        None => self.problem(
                            e.span(),
                            format!(
                                "api public `{}` is not a read endpoint: use status, why or metrics (changes always need an operator)",
                                e.get_ref()
                            ),
                        ),
                    }
                }
                out.sort();
                out
            }
        };
        let token_file = match r.and_then(|r| r.token_file.as_ref()) {
            None => None,
            Some(t) if unix => {
                self.problem(t.span(), "api token_file applies to a TCP listen only: on the unix socket the caller's uid and groups decide");
                None
            }
            Some(t) => {
                let path = self
                    .file
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(t.get_ref());
                if let Err(why) = check_token_file(&path) {
                    self.problem(
                        t.span(),
                        format!("api token_file `{}` {why}", path.display()),
                    );
                }
                Some(path)
            }
        };
        if !unix && token_file.is_none() && public.is_empty() {
            self.problem(
                table,
                "this TCP API would answer nobody: no token_file and no public endpoint",
            );
        }
        Api {
            listen,
            group: group_name.to_string(),
            gid,
            public,
            token_file,
        }
    }

    fn api_listen(&mut self, l: &Spanned<String>) -> ApiListen {
        let default = ApiListen::Unix(PathBuf::from(DEFAULT_API_SOCKET));
        let text = l.get_ref();
        if let Some(path) = text.strip_prefix("unix:") {
            if !path.starts_with('/') {
                self.problem(
                    l.span(),
                    format!("api listen `{text}`: the socket path must be absolute"),
                );
            }
            return ApiListen::Unix(PathBuf::from(path));
        }
        match text.parse::<SocketAddr>() {
            Ok(addr) if addr.ip().is_loopback() => ApiListen::Tcp(addr),
            Ok(addr) => {
                self.problem(l.span(), format!("api listen `{addr}` is not a loopback address: any host could reach the local API (use 127.0.0.1:PORT, [::1]:PORT or unix:/path)"));
                default
            }
            Err(e) => {
                self.problem(
                    l.span(),
                    format!(
                        "api listen `{text}` is invalid: {e} (use unix:/path or 127.0.0.1:PORT)"
                    ),
                );
                default
            }
        }
    }
    pub(super) fn exchange(
        &mut self,
        e: Option<&Spanned<RawExchange>>,
        site: Ipv4Addr,
    ) -> Exchange {
        let r = e.map(|e| e.get_ref());
        let listen = match r.and_then(|r| r.listen.as_ref()) {
            None => SocketAddr::from((site, 9181)),
            Some(l) => self
                .parsed(l, "exchange listen", |t| t.parse::<SocketAddr>())
                .unwrap_or(SocketAddr::from((site, 9181))),
        };
        let interval = self.duration(
            r.and_then(|r| r.interval.as_ref()),
            "exchange interval",
            Duration::from_secs(120),
        );
        if let Some(i) = r.and_then(|r| r.interval.as_ref())
            && interval < Duration::from_millis(100)
        {
            self.problem(i.span(), "exchange interval must be at least 100ms");
        }
        let jitter = self.fraction(
            r.and_then(|r| r.jitter.as_ref()),
            "exchange jitter",
            0.1,
            0.5,
        );
        let stale_after_periods = match r.and_then(|r| r.stale_after_periods.as_ref()) {
            None => 3,
            Some(p) if *p.get_ref() == 0 => {
                self.problem(p.span(), "stale_after_periods must be at least 1");
                3
            }
            Some(p) => *p.get_ref(),
        };
        let max_clock_skew = self.duration(
            r.and_then(|r| r.max_clock_skew.as_ref()),
            "max_clock_skew",
            Duration::from_secs(30),
        );
        Exchange {
            listen,
            interval,
            jitter,
            stale_after_periods,
            max_clock_skew,
        }
    }

    pub(super) fn spill(&mut self, s: Option<&Spanned<RawSpill>>) -> Spill {
        let r = s.map(|s| s.get_ref());
        let get = |f: fn(&RawSpill) -> Option<&Spanned<f64>>| r.and_then(f);
        let spill = Spill {
            enabled: r.and_then(|r| r.enabled).unwrap_or(true),
            start_local_above: self.fraction(
                get(|r| r.start_local_above.as_ref()),
                "start_local_above",
                1.1,
                100.0,
            ),
            stop_local_at_or_below: self.fraction(
                get(|r| r.stop_local_at_or_below.as_ref()),
                "stop_local_at_or_below",
                1.0,
                100.0,
            ),
            remote_below: self.fraction(
                get(|r| r.remote_below.as_ref()),
                "remote_below",
                0.7,
                100.0,
            ),
            stop_remote_above: self.fraction(
                get(|r| r.stop_remote_above.as_ref()),
                "stop_remote_above",
                0.7,
                100.0,
            ),
            max_share: self.fraction(get(|r| r.max_share.as_ref()), "max_share", 0.5, 1.0),
            step: self.fraction(get(|r| r.step.as_ref()), "step", 0.1, 1.0),
        };
        if let Some(s) = s {
            let at = |f: Option<&Spanned<f64>>| f.map_or(s.span(), |v| v.span());
            if spill.stop_local_at_or_below >= spill.start_local_above {
                self.problem(at(get(|r| r.stop_local_at_or_below.as_ref())), format!(
                    "stop_local_at_or_below ({}) must be below start_local_above ({}): without that gap two sites bounce requests between them",
                    spill.stop_local_at_or_below, spill.start_local_above));
            }
            if spill.stop_remote_above < spill.remote_below {
                self.problem(
                    at(get(|r| r.stop_remote_above.as_ref())),
                    format!(
                        "stop_remote_above ({}) must be at least remote_below ({})",
                        spill.stop_remote_above, spill.remote_below
                    ),
                );
            }
            if spill.remote_below >= spill.stop_local_at_or_below {
                self.problem(at(get(|r| r.remote_below.as_ref())), format!(
                    "remote_below ({}) must be below stop_local_at_or_below ({}): a site spilling to a peer must never be a target for that peer",
                    spill.remote_below, spill.stop_local_at_or_below));
            }
            if let Some(st) = r.and_then(|r| r.step.as_ref())
                && *st.get_ref() == 0.0
            {
                self.problem(st.span(), "step must be above 0");
            }
        }
        spill
    }
}

/// Why a token file cannot be trusted, if it cannot: it must be a regular file of
/// root's (or of the user running the check), readable by its owner only, and of a
/// plausible size. Reads only its metadata, so a user who may not read it can check.
pub(crate) fn check_token_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !m.is_file() {
        return Err("is not a regular file".to_string());
    }
    let mode = m.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "is readable or writable by others (mode {mode:04o}): chmod 600 it"
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if m.uid() != 0 && m.uid() != me {
        return Err(format!(
            "belongs to uid {}, not to root: chown root it",
            m.uid()
        ));
    }
    // The whole token plus a trailing newline.
    if m.len() < MIN_TOKEN_BYTES as u64 || m.len() > MAX_TOKEN_BYTES as u64 + 2 {
        return Err(format!(
            "holds {} bytes: a token is {MIN_TOKEN_BYTES} to {MAX_TOKEN_BYTES} bytes",
            m.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use geo_balancer::AllDown;

    const GOOD: &str = include_str!("../../../../configs/idc1.toml");

    fn file() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/idc1.toml"))
    }

    fn with_pmtu(line: &str) -> Result<crate::config::SiteConfig, crate::config::ConfigError> {
        let text = GOOD.replacen("[site]\n", &format!("[site]\n{line}\n"), 1);
        crate::config::parse_str(file(), &text)
    }

    #[test]
    fn tunnel_pmtu_defaults_to_fragment_and_takes_discover() {
        use crate::config::TunnelPmtu;
        let cfg = crate::config::parse_str(file(), GOOD).unwrap();
        assert_eq!(cfg.site.tunnel_pmtu, TunnelPmtu::Fragment);
        let cfg = with_pmtu("tunnel_pmtu = \"discover\"").unwrap();
        assert_eq!(cfg.site.tunnel_pmtu, TunnelPmtu::Discover);
    }

    #[test]
    fn all_down_defaults_to_announce_and_a_bad_value_is_refused_with_its_line() {
        let cfg = crate::config::parse_str(file(), GOOD).unwrap();
        assert_eq!(cfg.site.all_down, AllDown::Announce);
        let cfg = with_pmtu("all_down = \"withdraw\"").unwrap();
        assert_eq!(cfg.site.all_down, AllDown::Withdraw);
        refused_on_the_line_after_site("all_down = \"hold\"", "all_down `hold` is not `announce`");
    }

    /// `line` put right after `[site]` is refused, on its line, for `reason`.
    fn refused_on_the_line_after_site(line: &str, reason: &str) -> usize {
        let at = GOOD.lines().position(|l| l == "[site]").unwrap() + 2;
        let e = with_pmtu(line).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].line, at, "{e}");
        assert!(e.problems[0].reason.starts_with(reason), "{e}");
        at
    }

    #[test]
    fn a_bad_tunnel_pmtu_is_refused_with_its_line() {
        let at = refused_on_the_line_after_site(
            "tunnel_pmtu = \"1400\"",
            "tunnel_pmtu `1400` is not `fragment`",
        );
        // Not a string at all: serde's error, with the line too.
        let e = with_pmtu("tunnel_pmtu = 1400").unwrap_err();
        assert_eq!(e.problems[0].line, at, "{e}");
    }
}
