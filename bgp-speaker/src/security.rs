//! Per-neighbor socket security: TCP MD5 signatures (RFC 2385) and GTSM (RFC 5082).
//!
//! Both are set on the socket before `connect()` (and on the listener for passive
//! peers) so the SYN is already signed and the first reply already TTL-checked.

// Unsafe here: setsockopt with the kernel's TCP-MD5 and TTL structs; each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use crate::error::SockoptError;

/// `struct tcp_md5sig` from linux/tcp.h (libc does not define it).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; 80],
}

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` points to a live, initialised T of exactly `len` bytes; the
    // kernel only reads it for the duration of the call.
    let rc =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Installs (or with `None`, removes) the RFC 2385 key for `peer` on `fd`.
/// `socket_is_v6`: an IPv6 socket needs the peer as an IPv6 (v4-mapped) address.
pub(crate) fn set_md5(
    fd: &impl AsRawFd,
    socket_is_v6: bool,
    peer: IpAddr,
    key: Option<&str>,
) -> Result<(), SockoptError> {
    let err = |source| SockoptError {
        option: "TCP_MD5SIG",
        peer,
        source,
    };
    let key = key.unwrap_or("").as_bytes();
    if key.len() > 80 {
        return Err(err(io::Error::from(io::ErrorKind::InvalidInput)));
    }
    // SAFETY: TcpMd5Sig is plain data (a sockaddr_storage, integers and a byte
    // array); all-zero is a valid value of each field.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let peer6 = match peer {
        IpAddr::V4(a) if socket_is_v6 => IpAddr::V6(a.to_ipv6_mapped()),
        other => other,
    };
    match peer6 {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut sig.addr as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
        }
        IpAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut sig.addr as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
        }
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig).map_err(err)
}

/// RFC 5082 GTSM: send with TTL (hop limit) 255 and drop anything that arrives
/// with a TTL below 256 - `hops`.
pub(crate) fn set_gtsm(
    fd: &impl AsRawFd,
    socket_is_v6: bool,
    peer: IpAddr,
    hops: u8,
) -> Result<(), SockoptError> {
    let min: libc::c_int = 256 - libc::c_int::from(hops);
    let ttl: libc::c_int = 255;
    let err = |option| {
        move |source| SockoptError {
            option,
            peer,
            source,
        }
    };
    if socket_is_v6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)
            .map_err(err("IPV6_UNICAST_HOPS"))?;
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &min)
            .map_err(err("IPV6_MINHOPCOUNT"))?;
    }
    if !socket_is_v6 || peer.is_ipv4() {
        // A dual-stack socket talking to an IPv4 peer uses the IPv4 options too.
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &ttl).map_err(err("IP_TTL"))?;
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &min).map_err(err("IP_MINTTL"))?;
    }
    Ok(())
}
