//! What the namespace tests of anycastd share: a real server in a namespace and a
//! process killed by PID on drop.
#![allow(dead_code)]

use std::process::Child;
use std::time::Duration;

use anycast_lab::netns::{Netns, wait_until};

/// A real server that keeps connections open until the client closes them, like an
/// HTTP server with keep-alive: the health checker's idle connection stays up.
pub const SERVER_PY: &str = r#"
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8080)); s.listen(64)
def hold(c):
    while c.recv(1024): pass
    c.close()
for _ in range(100000):
    c, _ = s.accept(); threading.Thread(target=hold, args=(c,), daemon=True).start()
"#;

pub struct Proc(pub Option<Child>);

impl Proc {
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real server on `addr`:8080 in `ns` (python3), up when this returns.
pub fn server(ns: &Netns, addr: &str) -> Proc {
    let c = ns
        .command("python3")
        .args(["-c", SERVER_PY, addr])
        .spawn()
        .expect("python3 server");
    let up = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        ns.exec("ss", &["-ltn", "sport = :8080"])
            .is_ok_and(|o| o.contains(addr))
    });
    assert!(up, "real server {addr} did not start");
    Proc(Some(c))
}
