//! Skip-or-fail for tests that need root, namespaces, real peers or the lab kernel.

// Unsafe here: getuid, to say why a test is skipped; each block says why it is sound.
#![allow(unsafe_code)]

use std::path::Path;
use std::process::Command;

/// Something a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Running as root (uid 0).
    Root,
    /// `ip netns` works (implies root and iproute2).
    Netns,
    /// A program on PATH or at an absolute path, e.g. `/usr/lib/frr/bgpd`.
    Program(&'static str),
    /// The user-mode-Linux lab kernel (`linux.uml` and its modules).
    LabKernel,
}

impl Need {
    /// `None` when present, otherwise the reason it is missing.
    pub fn missing(self) -> Option<String> {
        match self {
            Need::Root => {
                // SAFETY: getuid has no preconditions and cannot fail.
                let uid = unsafe { libc::getuid() };
                (uid != 0).then(|| format!("needs root (running as uid {uid})"))
            }
            Need::Netns => {
                if let Some(r) = Need::Root.missing() {
                    return Some(r);
                }
                let ok = Command::new("ip")
                    .args(["netns", "list"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false);
                (!ok).then(|| "needs network namespaces (`ip netns` from iproute2)".to_string())
            }
            Need::Program(p) => {
                let found = if p.starts_with('/') {
                    Path::new(p).exists()
                } else {
                    std::env::var_os("PATH")
                        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(p).is_file()))
                        .unwrap_or(false)
                };
                (!found).then(|| format!("needs `{p}` (run scripts/install-deps.sh)"))
            }
            Need::LabKernel => Need::Program("linux.uml")
                .missing()
                .or_else(|| {
                    (!Path::new("/usr/lib/uml/modules").is_dir()).then(|| {
                        "needs the UML kernel modules in /usr/lib/uml/modules (package user-mode-linux)"
                            .to_string()
                    })
                })
                .map(|r| format!("needs the lab kernel: {r}")),
        }
    }
}

/// True when running under CI (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Checks every need. Returns `true` when the test may run. When something is
/// missing it prints why and returns `false` (the test then returns early), except
/// under `CI=true`, where it panics so the run fails instead of skipping.
pub fn require(test: &str, needs: &[Need]) -> bool {
    let missing: Vec<String> = needs.iter().filter_map(|n| n.missing()).collect();
    if missing.is_empty() {
        return true;
    }
    let why = missing.join("; ");
    if in_ci() {
        panic!("{test}: CI=true and a requirement is missing: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_itself() {
        let why = Need::Program("/nonexistent/anycast-test-program").missing();
        assert_eq!(
            why.as_deref(),
            Some("needs `/nonexistent/anycast-test-program` (run scripts/install-deps.sh)")
        );
    }

    #[test]
    fn a_present_program_is_not_missing() {
        assert_eq!(Need::Program("sh").missing(), None);
    }
}
