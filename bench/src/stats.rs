//! Percentiles, process accounting from /proc, and child processes stopped by PID.

// Unsafe here: sysconf and kill(2) through libc; each block says why it is sound.
#![allow(unsafe_code)]

use std::fmt::Write as _;
use std::process::Child;
use std::time::{Duration, Instant};

/// p50 / p99 / max of a sample, or `None` when it is empty.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Nearest-rank percentiles.
pub fn summary(v: &[Duration]) -> Option<Summary> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort();
    let at = |p: f64| s[(((s.len() as f64) * p).ceil() as usize).clamp(1, s.len()) - 1];
    Some(Summary {
        n: s.len(),
        p50: at(0.5),
        p99: at(0.99),
        max: s[s.len() - 1],
    })
}

/// Milliseconds with a precision that suits the size.
pub fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 10.0 {
        format!("{m:.2}")
    } else if m < 1000.0 {
        format!("{m:.1}")
    } else {
        format!("{m:.0}")
    }
}

/// "p50 / p99 / max" in ms, or "-" for no sample.
pub fn show(v: &[Duration]) -> String {
    match summary(v) {
        None => "-".into(),
        Some(s) => {
            let mut o = String::new();
            let _ = write!(o, "{} / {} / {}", ms(s.p50), ms(s.p99), ms(s.max));
            o
        }
    }
}

/// Ratio of two p50s as "Nx" (theirs / ours).
pub fn ratio(theirs: &[Duration], ours: &[Duration]) -> String {
    match (summary(theirs), summary(ours)) {
        (Some(t), Some(o)) if !o.p50.is_zero() => {
            format!("{:.1}x", t.p50.as_secs_f64() / o.p50.as_secs_f64())
        }
        _ => "-".into(),
    }
}

/// Resident set (current and peak) and CPU time of one process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcUsage {
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub cpu: Duration,
}

/// Reads /proc/PID/status and /proc/PID/stat; `None` when the process is gone.
pub fn proc_usage(pid: u32) -> Option<ProcUsage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the state.
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    // Plus cutime and cstime: reaped children (check commands) count for their parent.
    let t = ticks(11) + ticks(12) + ticks(13) + ticks(14);
    Some(ProcUsage {
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
        cpu: Duration::from_millis(t * 1000 / hz),
    })
}

/// The parent PID of a process.
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Usage summed over a process and all its live descendants (RSS summed; peak is
/// the sum of each one's peak, an upper bound).
pub fn tree_usage(root: u32) -> Option<ProcUsage> {
    let mut total = proc_usage(root)?;
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for pid in pids {
        let mut p = pid;
        for _ in 0..8 {
            match ppid(p) {
                Some(pp) if pp == root => {
                    if let Some(u) = proc_usage(pid) {
                        total.rss_kib += u.rss_kib;
                        total.peak_rss_kib += u.peak_rss_kib;
                        total.cpu += u.cpu;
                    }
                    break;
                }
                Some(pp) if pp > 1 => p = pp,
                _ => break,
            }
        }
    }
    Some(total)
}

/// A child process that is killed (SIGKILL, by PID) and reaped on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends a signal to this child only.
    pub fn signal(&self, sig: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: kill(2) on our own, not yet reaped child.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Sends a signal to this child's process group (one kill(2) for every member:
    /// they die together rather than one after the other).
    pub fn signal_group(&self, sig: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: kill(2) on the group our own, not yet reaped child leads.
            unsafe { libc::kill(-pid, sig) };
        }
    }

    /// True while it runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; reaped.
    pub fn stop(&mut self, grace: Duration) {
        if !self.alive() {
            return;
        }
        self.signal(libc::SIGTERM);
        let end = Instant::now() + grace;
        while Instant::now() < end && self.alive() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        let s = summary(&v).unwrap();
        assert_eq!(s.p50, Duration::from_millis(100));
        assert_eq!(s.p99, Duration::from_millis(198));
        assert_eq!(s.max, Duration::from_millis(200));
        assert!(summary(&[]).is_none());
    }
}
