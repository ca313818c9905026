//! The benchmarks' real server: one thread, one `poll(2)` over the listening socket
//! and its connections, holding each connection until the peer closes it.
//!
//! One thread and a small address space on purpose: a SIGKILLed process sends its
//! FINs only after the kernel has torn down its threads and unmapped its memory, and
//! that time is the dying server's, not the speaker's. With a thread per connection
//! (the first listener) it was 0.3-0.5 ms on the 2-vCPU VM.

// Unsafe here: poll(2) through libc on descriptors this module owns.
#![allow(unsafe_code)]

use std::io::{self, ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long a listener lives at most (it is killed long before).
const LIFETIME: Duration = Duration::from_secs(3600);

/// Serves `addr` until killed or an hour has passed.
pub fn run(addr: &str) -> io::Result<()> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    let end = Instant::now() + LIFETIME;
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        let mut fds: Vec<libc::pollfd> = std::iter::once(l.as_raw_fd())
            .chain(conns.iter().map(AsRawFd::as_raw_fd))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a live, exclusively borrowed array of `nfds` pollfds whose
        // descriptors this function owns for the call's duration.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), nfds, 60_000) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let ready: Vec<bool> = fds[1..].iter().map(|p| p.revents != 0).collect();
        let mut i = 0;
        conns.retain_mut(|c| {
            let keep = !ready[i] || drain(c, &mut buf);
            i += 1;
            keep
        });
        if fds[0].revents != 0 {
            accept_all(&l, &mut conns);
        }
    }
    Ok(())
}

/// Reads what is there; false once the peer has closed (or the socket failed).
fn drain(c: &mut TcpStream, buf: &mut [u8]) -> bool {
    loop {
        match c.read(buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

fn accept_all(l: &TcpListener, conns: &mut Vec<TcpStream>) {
    loop {
        match l.accept() {
            Ok((s, _)) => {
                if s.set_nonblocking(true).is_ok() {
                    conns.push(s);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // WouldBlock: all taken. Out of descriptors or the like: poll again later
            // (the listener stays readable, so wait a little rather than spin).
            Err(e) => {
                if e.kind() != ErrorKind::WouldBlock {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn holds_connections_until_the_peer_closes_and_serves_many() {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let a = addr.to_string();
        std::thread::spawn(move || run(&a));
        let mut clients = Vec::new();
        for _ in 0..50 {
            let deadline = Instant::now() + Duration::from_secs(5);
            let c = loop {
                match TcpStream::connect(addr) {
                    Ok(c) => break c,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("listener never came up: {e}"),
                }
            };
            clients.push(c);
        }
        for c in &mut clients {
            c.write_all(b"hello").unwrap();
        }
        // Held: a read sees nothing (no close) within a short wait.
        let c = &mut clients[0];
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 8];
        let r = c.read(&mut b);
        assert!(
            matches!(&r, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "{r:?}"
        );
    }
}
