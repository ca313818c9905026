//! What a valid config needs of the host it runs on, checked by `anycastd check`
//! and at start: problems refuse the config with their line, warnings are printed
//! (or logged) and the config runs.

use crate::config::SiteConfig;

/// What [`problems`] needs to know of the host: read once by [`Facts::read`], or
/// made up by a test.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The interface names of this host.
    pub interfaces: Vec<String>,
    /// The device holding the site's `address_v6` here and its MTU (`None`: the
    /// address is not on this host, as when the file is checked away from its director).
    pub ipv6_device: Option<(String, u32)>,
}

impl Facts {
    /// Reads what `cfg` needs checked from this host.
    pub fn read(cfg: &SiteConfig) -> Facts {
        Facts {
            interfaces: interfaces().unwrap_or_default(),
            ipv6_device: cfg.site.address_v6.and_then(crate::plan::ipv6_device_mtu),
        }
    }
}

/// What makes a valid config unusable on this host, by line: the sync interface
/// missing (with the data plane on), `ipv6_path_mtu` above the MTU of the device
/// holding `address_v6`. `anycastd check` and the daemon refuse the config with them
/// (at start and at reload).
pub fn problems(cfg: &SiteConfig, host: &Facts) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    if let Some(s) = &cfg.sync
        && cfg.site.dataplane
        && !host.interfaces.contains(&s.interface)
    {
        out.push((
            s.line,
            format!(
                "sync interface `{}` does not exist on this host (its interfaces: {})",
                s.interface,
                host.interfaces.join(", ")
            ),
        ));
    }
    let device = host.ipv6_device.as_ref().map(|(d, mtu)| (d.as_str(), *mtu));
    if let Some(p) = crate::plan::path_mtu_problem(cfg, device) {
        out.push((p.line, p.reason));
    }
    out
}

/// The interface names of this host (`/sys/class/net`).
pub fn interfaces() -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// With `[sync]` (a site of several directors), services whose scheduler is not
/// consistent: a flow moved to another director before its connection was synced is
/// scheduled afresh there, and only `mh` or `sh` pick the same real server on every
/// director. And every NAT real server: its replies must pass the director that
/// rewrites them, its default gateway, which is one director (decision 0014).
pub fn sync_warnings(cfg: &SiteConfig) -> Vec<(usize, String)> {
    let Some(sync) = &cfg.sync else {
        return Vec::new();
    };
    let consistent = crate::config::CONSISTENT_SCHEDULERS;
    cfg.vips
        .iter()
        .flat_map(|v| v.services.iter().map(move |s| (v, s)))
        .filter(|(_, s)| !consistent.contains(&s.scheduler.as_str()))
        .map(|(v, s)| {
            (
                sync.line,
                format!(
                    "service {} port {} uses `{}` with [sync]: a connection moved to another director before it was synced is scheduled again there, maybe to another real server; `mh` or `sh` send it to the same one",
                    v.prefix.addr(),
                    s.port,
                    s.scheduler
                ),
            )
        })
        .chain(nat_warnings(cfg))
        .collect()
}

/// NAT real servers of a site of several directors (decision 0014).
fn nat_warnings(cfg: &SiteConfig) -> impl Iterator<Item = (usize, String)> + '_ {
    cfg.vips
        .iter()
        .flat_map(|v| v.services.iter().map(move |s| (v, s)))
        .flat_map(|(v, s)| s.real_servers.iter().map(move |r| (v, s, r)))
        .filter(|(_, _, r)| r.method == crate::config::Method::Nat)
        .map(|(v, s, r)| {
            (
                r.line,
                format!(
                    "real server {} of service {} port {} is reached by NAT with [sync]: its replies pass its default gateway, one director, which must rewrite them; a flow the routers send through another director and that director's death break it. A site of several directors serves by DR or TUN (decision 0014)",
                    r.address,
                    v.address,
                    s.port
                ),
            )
        })
}
