//! anycastd under a stand-in for systemd, no root: the notify socket is this test's
//! datagram socket, as systemd's is (sd_notify(3)), and `WATCHDOG_USEC` is set as
//! `WatchdogSec=` sets it. The built binary, `site.dataplane = false` (nothing to
//! reconcile, so READY=1 follows the start of BGP at once).
//!
//! Checks: READY=1 with a STATUS, WATCHDOG=1 at half the period from the running loop,
//! RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP, STOPPING=1 on
//! SIGTERM and a clean exit; logs still on stderr when `JOURNAL_STREAM` names another
//! stream (a child whose stderr was redirected).

mod host;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Datagrams until one contains `want` (10 s at most), all of them.
fn until(sock: &UnixDatagram, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let Ok(n) = sock.recv(&mut buf) else { break };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = msg.lines().any(|l| l == want);
        seen.push(msg);
        if done {
            return seen;
        }
    }
    panic!("no {want} within 10 s; got {seen:?}");
}

fn kill(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success());
}

#[test]
fn ready_watchdog_reload_stopping() {
    let dir = std::env::temp_dir().join(format!("anycastd-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let notify = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&notify).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let api = format!(
        "listen = \"unix:{}\"\ngroup = \"{}\"",
        dir.join("api.sock").display(),
        host::own_group()
    );
    let server = ([127, 0, 0, 1], host::free_port()).into();
    let text = host::config(&dir, &api, &[server]).replace("\"10m\"", "\"100ms\"");
    let config = dir.join("site.toml");
    std::fs::write(&config, text).unwrap();
    let log = dir.join("anycastd.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "200000")
        .env("JOURNAL_STREAM", "1:1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start anycastd");
    let pid = child.id();

    let seen = until(&sock, "READY=1");
    let ready = seen.last().unwrap();
    assert!(
        ready.contains("STATUS=site idc1: 1 VIPs, 1 BGP neighbors"),
        "{ready:?}"
    );
    // 200 ms period: pinged every 100 ms.
    let t = Instant::now();
    until(&sock, "WATCHDOG=1");
    until(&sock, "WATCHDOG=1");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    kill(pid, "-HUP");
    let reload = until(&sock, "RELOADING=1");
    assert!(
        reload.last().unwrap().contains("MONOTONIC_USEC="),
        "{reload:?}"
    );
    until(&sock, "READY=1");

    kill(pid, "-TERM");
    until(&sock, "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "anycastd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status:?}\n{text}");
    // JOURNAL_STREAM named another stream: the log stayed on stderr.
    assert!(text.contains("anycastd started"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
