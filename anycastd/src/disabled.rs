//! The real servers the operator disabled, saved in the state directory so that a
//! restart keeps them out: `<state_dir>/<site>.disabled`, one server a line,
//! `ID<TAB>UNIX_MS<TAB>WHO`. Written whole (temp file and rename) at each change; a
//! line that does not parse is skipped with a warning, never guessed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use geo_balancer::{ServerId, Time};

use crate::config::SiteConfig;
use crate::site::DisabledBy;

/// Where a site's list lives.
pub fn path(cfg: &SiteConfig) -> PathBuf {
    cfg.site
        .state_dir
        .join(format!("{}.disabled", cfg.site.name))
}

/// The saved list; empty when there is none.
pub fn load(path: &Path) -> Vec<(ServerId, DisabledBy)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let parsed = parse(l);
            if parsed.is_none() {
                tracing::warn!(file = %path.display(), line = l, "skipping a line of the disabled-servers file that does not parse");
            }
            parsed
        })
        .collect()
}

fn parse(line: &str) -> Option<(ServerId, DisabledBy)> {
    let mut f = line.splitn(3, '\t');
    let id = f.next()?;
    let ms: u64 = f.next()?.parse().ok()?;
    let by = f.next()?.to_string();
    Some((ServerId::new(id), DisabledBy { by, at: Time(ms) }))
}

/// Replaces the saved list with `list`.
pub fn save(path: &Path, list: &[(ServerId, DisabledBy)]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("disabled.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    for (id, d) in list {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        writeln!(
            f,
            "{}\t{}\t{}",
            clean(id.as_str()),
            d.at.as_millis(),
            clean(&d.by)
        )?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_lines_skipped() {
        let dir = std::env::temp_dir().join(format!("anycastd-disabled-{}", std::process::id()));
        let p = dir.join("idc1.disabled");
        let list = vec![(
            ServerId::new("web/tcp80/10.101.5.11:80"),
            DisabledBy {
                by: "uid 0 pid\t12".into(),
                at: Time(1_800_000_000_000),
            },
        )];
        save(&p, &list).unwrap();
        std::fs::write(&p, std::fs::read_to_string(&p).unwrap() + "garbage\n").unwrap();
        let back = load(&p);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].0, list[0].0);
        assert_eq!(back[0].1.by, "uid 0 pid 12");
        assert_eq!(back[0].1.at, list[0].1.at);
        let _ = std::fs::remove_dir_all(dir);
    }
}
