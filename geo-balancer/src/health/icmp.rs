//! ICMP echo checks (the seed's monitor treats a host that does not answer as failed):
//! an unprivileged ICMP datagram socket ("ping socket") where the kernel allows it
//! (`net.ipv4.ping_group_range` covers our group), a raw socket otherwise
//! (CAP_NET_RAW). IPv4 and IPv6. The real server's kernel answers: it proves the host
//! and the path, not the service.
//!
//! ```text
//!  echo request (id, seq random) ──> reply from that address with that seq: Success
//!                                ──> destination unreachable / time exceeded: Failure
//!                                ──> nothing within the timeout: Failure (Timeout)
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::errors::ProbeError;

/// Which kind of ICMP socket a probe used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// `SOCK_DGRAM` + `IPPROTO_ICMP(V6)`: no privilege; the kernel sets the identifier
    /// and hands this socket only its own replies.
    Datagram,
    /// `SOCK_RAW`: needs CAP_NET_RAW; sees every ICMP packet (filtered here).
    Raw,
}

const PAYLOAD: &[u8; 8] = b"anycastd";

/// Opens an ICMP socket for `addr`'s family: a ping socket if allowed, else raw.
pub fn open(addr: IpAddr) -> io::Result<(UdpSocket, SocketKind)> {
    let (s, kind) = open_plain(addr)?;
    let std_sock: std::net::UdpSocket = s.into();
    Ok((UdpSocket::from_std(std_sock)?, kind))
}

/// [`open`] without the tokio registration: a non-blocking socket nobody is woken
/// for, read and written when its owner decides (the checker's pinger).
pub fn open_plain(addr: IpAddr) -> io::Result<(Socket, SocketKind)> {
    let (domain, proto) = match addr {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (s, kind) = match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => (s, SocketKind::Datagram),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EPROTONOSUPPORT)
            ) =>
        {
            (
                Socket::new(domain, Type::RAW, Some(proto))?,
                SocketKind::Raw,
            )
        }
        Err(e) => return Err(e),
    };
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    Ok((s, kind))
}

/// One echo to `addr`, answered within `timeout`.
pub async fn echo(addr: IpAddr, timeout: Duration) -> Result<SocketKind, ProbeError> {
    let fail = |reason: String| ProbeError::Icmp { addr, reason };
    let (sock, kind) = open(addr).map_err(|e| fail(format!("cannot open an ICMP socket: {e}")))?;
    let id: u16 = rand::random();
    let seq: u16 = rand::random();
    let req = request(addr, id, seq);
    // Connected: only `addr`'s messages arrive, and a ping socket reports an ICMP
    // error (unreachable, prohibited) as an error of the next receive.
    sock.connect(SocketAddr::new(addr, 0))
        .await
        .map_err(|e| fail(format!("connect: {e}")))?;
    sock.send(&req)
        .await
        .map_err(|e| fail(format!("send: {e}")))?;
    let wait = async {
        let mut bytes = [0u8; 1500];
        loop {
            let n = match sock.recv(&mut bytes).await {
                Ok(n) => n,
                Err(e) if is_icmp_error(&e) => {
                    return Ok(Err(format!("destination unreachable ({e})")));
                }
                Err(e) => return Err(e),
            };
            match classify(&bytes[..n], addr, kind, id, seq) {
                Reply::Ours => return Ok::<_, io::Error>(Ok(())),
                Reply::Error(why) => return Ok(Err(why)),
                Reply::Other => continue,
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Err(_) => Err(ProbeError::Timeout {
            target: addr.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        }),
        Ok(Err(e)) => Err(fail(format!("receive: {e}"))),
        Ok(Ok(Err(why))) => Err(fail(why)),
        Ok(Ok(Ok(()))) => Ok(kind),
    }
}

/// An error that an ICMP message from the network caused.
fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EHOSTUNREACH)
            | Some(libc::ENETUNREACH)
            | Some(libc::ECONNREFUSED)
            | Some(libc::EHOSTDOWN)
            | Some(libc::EPROTO)
            | Some(libc::EACCES)
    )
}

/// An echo request: type 8 (IPv4) or 128 (IPv6), code 0, the checksum (IPv4; the
/// kernel fills ICMPv6's), id, seq, payload.
pub(crate) fn request(addr: IpAddr, id: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = if addr.is_ipv4() { 8 } else { 128 };
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..].copy_from_slice(PAYLOAD);
    if addr.is_ipv4() {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for ch in b.chunks(2) {
        let w = u16::from_be_bytes([ch[0], *ch.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

enum Reply {
    Ours,
    Error(String),
    Other,
}

/// What a received ICMP message is to this probe. A ping socket's identifier is the
/// kernel's, so only the sequence number is compared there.
fn classify(b: &[u8], addr: IpAddr, kind: SocketKind, id: u16, seq: u16) -> Reply {
    match parse(b, addr.is_ipv4(), kind, id) {
        Some((s, Ok(()))) if s == seq => Reply::Ours,
        Some((s, Err(why))) if s == seq => Reply::Error(why),
        _ => Reply::Other,
    }
}

/// The sequence number an ICMP message is about, and whether it is an echo reply
/// (`Ok`) or an error quoting our request (`Err(why)`); `None` for anything else
/// (another identifier on a raw socket, other types, short or garbage input). A raw
/// IPv4 socket hands the IP header too; ping sockets and ICMPv6 hand the ICMP message
/// only.
pub(crate) fn parse(
    b: &[u8],
    v4: bool,
    kind: SocketKind,
    id: u16,
) -> Option<(u16, Result<(), String>)> {
    let icmp = if v4 && kind == SocketKind::Raw {
        let ihl = usize::from(b.first().map_or(0, |v| v & 0x0f)) * 4;
        if ihl < 20 {
            return None;
        }
        b.get(ihl..)?
    } else {
        b
    };
    let head = icmp.get(..8)?;
    let (ty, code) = (head[0], head[1]);
    let (rid, rseq) = (
        u16::from_be_bytes([head[4], head[5]]),
        u16::from_be_bytes([head[6], head[7]]),
    );
    let id_ok = |i: u16| kind == SocketKind::Datagram || i == id;
    if ty == if v4 { 0 } else { 129 } {
        return id_ok(rid).then_some((rseq, Ok(())));
    }
    // Errors quote our request after their own 8 bytes (and, for IPv4, its IP header).
    let quoted = if v4 {
        let inner = icmp.get(8..)?;
        let ihl = usize::from(inner.first().map_or(0, |v| v & 0x0f)) * 4;
        inner.get(ihl..)?
    } else {
        icmp.get(48..)?
    };
    let q = quoted.get(..8)?;
    let request = if v4 { 8 } else { 128 };
    if q[0] != request || !id_ok(u16::from_be_bytes([q[4], q[5]])) {
        return None;
    }
    let qseq = u16::from_be_bytes([q[6], q[7]]);
    match (v4, ty) {
        (true, 3) | (false, 1) => {
            Some((qseq, Err(format!("destination unreachable (code {code})"))))
        }
        (true, 11) | (false, 3) => Some((qseq, Err("time exceeded".into()))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_request() {
        // An echo request id 0x1234 seq 1 with "anycastd", checksummed, sums to 0.
        let p = request("192.0.2.1".parse().unwrap(), 0x1234, 1);
        assert_eq!(checksum(&p), 0);
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 1]);
    }

    #[test]
    fn replies_are_told_apart() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mut reply = request(v4, 7, 9);
        reply[0] = 0;
        assert!(matches!(
            classify(&reply, v4, SocketKind::Datagram, 1, 9),
            Reply::Ours
        ));
        assert!(matches!(
            classify(&reply, v4, SocketKind::Datagram, 1, 8),
            Reply::Other
        ));
        // Raw: the IP header first, and the id must match.
        let mut raw = vec![0x45; 20];
        raw.extend_from_slice(&reply);
        assert!(matches!(
            classify(&raw, v4, SocketKind::Raw, 7, 9),
            Reply::Ours
        ));
        assert!(matches!(
            classify(&raw, v4, SocketKind::Raw, 6, 9),
            Reply::Other
        ));
        // Destination unreachable quoting our request.
        let mut unreach = vec![3, 1, 0, 0, 0, 0, 0, 0];
        unreach.extend_from_slice(&[0x45; 20]);
        unreach.extend_from_slice(&request(v4, 7, 9));
        assert!(matches!(
            classify(&unreach, v4, SocketKind::Datagram, 7, 9),
            Reply::Error(_)
        ));
        // Garbage and short input are nothing.
        for junk in [&[][..], &[0u8; 3][..], &[0xff; 64][..]] {
            assert!(matches!(
                classify(junk, v4, SocketKind::Raw, 7, 9),
                Reply::Other
            ));
        }
    }
}
