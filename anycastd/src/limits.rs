//! Process limits the daemon needs at scale. Each real server with fast_detect holds
//! a TCP connection, and full checks open more: a thousand servers pass the usual soft
//! limit of 1024 open files, after which every connect fails with EMFILE and checks
//! fail for the daemon's own reasons (flaps). At start the daemon raises its soft limit
//! to the hard one (as Go's runtime and systemd's own services do) and warns when even
//! that is short of what the config needs.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors beyond two per real server: BGP sessions, the API, the exchange,
/// netlink, the echo sockets, logs.
const BASE: u64 = 256;

/// Raises the soft open-files limit to the hard limit; returns the limit in force.
/// `servers` is the number of real servers checked.
pub fn raise_nofile(servers: usize) -> Option<u64> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-files limit");
            return None;
        }
    };
    let limit = if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open-files limit");
                soft
            }
        }
    } else {
        soft
    };
    let need = BASE + 2 * servers as u64;
    if limit < need {
        tracing::warn!(
            limit,
            need,
            servers,
            "open-files limit below what the checks need (LimitNOFILE= in the unit, or ulimit -n)"
        );
    } else {
        tracing::debug!(limit, need, "open-files limit");
    }
    Some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let limit = raise_nofile(10).expect("readable");
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("readable");
        assert_eq!(soft, limit);
        assert_eq!(soft, hard);
    }
}
