//! `[sync]`: IPVS connection sync between the directors of one site (issue 15).

use super::*;

/// Schedulers that send a flow to the same real server on every director with the
/// same destinations: a flow moved before its connection was synced keeps its server.
pub const CONSISTENT_SCHEDULERS: &[&str] = &["mh", "sh"];

impl Validator<'_> {
    pub(super) fn sync(&mut self, s: &Spanned<RawSync>, dataplane: bool) -> Sync {
        let r = s.get_ref();
        if !dataplane {
            self.problem(
                s.span(),
                "[sync] needs the data plane (the sync daemons are IPVS's): remove [sync] or set site.dataplane = true",
            );
        }
        let interface = self.device(Some(&r.interface), "sync interface", "");
        let syncid = match *r.syncid.get_ref() {
            id @ 0..=255 => id as u8,
            id => {
                self.problem(
                    r.syncid.span(),
                    format!("syncid {id} is not 0-255 (the kernel sends one byte)"),
                );
                0
            }
        };
        let roles = match r.roles.as_ref() {
            None => SyncRoles::Both,
            Some(v) => match v.get_ref().as_str() {
                "both" => SyncRoles::Both,
                "master" => SyncRoles::Master,
                "backup" => SyncRoles::Backup,
                other => {
                    self.problem(
                        v.span(),
                        format!("sync roles `{other}` is not `both`, `master` or `backup`"),
                    );
                    SyncRoles::Both
                }
            },
        };
        let group = r.group.as_ref().and_then(|g| {
            let a = self.ip(g, "sync group")?;
            if !a.is_multicast() {
                self.problem(
                    g.span(),
                    format!("sync group {a} is not a multicast address"),
                );
                return None;
            }
            Some(a)
        });
        let port = r.port.as_ref().and_then(|p| match *p.get_ref() {
            v @ 1..=65535 => Some(v as u16),
            v => {
                self.problem(p.span(), format!("sync port {v} is not 1-65535"));
                None
            }
        });
        let ttl = r.ttl.as_ref().and_then(|t| match *t.get_ref() {
            v @ 1..=255 => Some(v as u8),
            v => {
                self.problem(t.span(), format!("sync ttl {v} is not 1-255"));
                None
            }
        });
        Sync {
            interface,
            syncid,
            roles,
            group,
            port,
            ttl,
            line: self.line(&r.interface.span()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = include_str!("../../../../configs/idc1.toml");
    const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/idc1.toml");

    fn with(sync: &str) -> Result<SiteConfig, ConfigError> {
        parse_str(Path::new(FILE), &format!("{BASE}\n[sync]\n{sync}\n"))
    }

    #[test]
    fn sync_takes_its_defaults() {
        let cfg = with("interface = \"eth1\"\nsyncid = 7").unwrap();
        let s = cfg.sync.unwrap();
        assert_eq!(
            (s.interface.as_str(), s.syncid, s.roles),
            ("eth1", 7, SyncRoles::Both)
        );
        assert_eq!((s.group, s.port, s.ttl), (None, None, None));
        assert!(parse_str(Path::new(FILE), BASE).unwrap().sync.is_none());
    }

    #[test]
    fn bad_sync_values_are_refused_with_their_lines() {
        let e = with(
            "interface = \"eth1\"\nsyncid = 300\nroles = \"primary\"\ngroup = \"10.0.0.1\"\nport = 0\nttl = 0",
        )
        .unwrap_err();
        let reasons: Vec<&str> = e.problems.iter().map(|p| p.reason.as_str()).collect();
        for want in [
            "syncid 300 is not 0-255",
            "sync roles `primary` is not",
            "sync group 10.0.0.1 is not a multicast address",
            "sync port 0 is not 1-65535",
            "sync ttl 0 is not 1-255",
        ] {
            assert!(
                reasons.iter().any(|r| r.starts_with(want)),
                "{want}: {reasons:?}"
            );
        }
        let base_lines = BASE.lines().count();
        assert!(e.problems.iter().all(|p| p.line > base_lines), "{e}");
        let e = with("interface = \"a/b\"\nsyncid = 1").unwrap_err();
        assert!(e.to_string().contains("sync interface `a/b`"), "{e}");
        let e = with("syncid = 1").unwrap_err();
        assert!(e.to_string().contains("interface"), "{e}");
    }
}
