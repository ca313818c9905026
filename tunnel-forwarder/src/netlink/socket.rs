//! A blocking netlink socket: batched requests with acks, and dumps.
//!
//! Batching is the reason for speed: many requests go to the kernel in one
//! `sendmsg`, each with `NLM_F_ACK`, and the acks come back in a few `recvmsg`s.

// Unsafe here: the netlink socket's syscalls (socket, bind, sendmmsg, recvmsg); each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::wire::{self, Attrs, Msg, MsgBuf};

const NETLINK_CAP_ACK: libc::c_int = 11 - 1; // 10
const NETLINK_EXT_ACK: libc::c_int = 11;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLM_F_ACK_TLVS: u16 = 0x200;
const BATCH_BYTES: usize = 60 * 1024;
const RECV_BYTES: usize = 256 * 1024;
/// One datagram's room in a multi-receive (netlink dumps send at most 32 KiB parts).
const CHUNK: usize = 64 * 1024;

/// The kernel refused one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    /// Positive errno.
    pub errno: i32,
    /// The kernel's extended ack message, when it sent one.
    pub msg: Option<String>,
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", io::Error::from_raw_os_error(self.errno))?;
        if let Some(m) = &self.msg {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

/// Errors of a socket transaction.
#[derive(Debug, thiserror::Error)]
pub enum SockError {
    #[error("netlink I/O: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Decode(#[from] wire::DecodeError),
    #[error("netlink request refused: {0}")]
    Kernel(NlError),
}

/// A netlink socket of one protocol (NETLINK_ROUTE, NETLINK_GENERIC).
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    rbuf: Vec<u8>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("fd", &self.fd.as_raw_fd())
            .field("seq", &self.seq)
            .finish()
    }
}

impl Socket {
    /// Opens and binds a socket. Receives time out after 5 s (bounded waits).
    pub fn open(protocol: libc::c_int) -> io::Result<Socket> {
        // SAFETY: socket(2) takes no pointers; the fd it returns is wrapped in an
        // OwnedFd below before anything else can see it.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh, valid fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: sa is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let s = Socket {
            fd,
            seq: 1,
            rbuf: vec![0; RECV_BYTES],
        };
        s.setopt(libc::SOL_NETLINK, NETLINK_CAP_ACK, 1);
        s.setopt(libc::SOL_NETLINK, NETLINK_EXT_ACK, 1);
        // Room for the acks of a whole batch; FORCE works as root, else the plain one.
        if !s.setopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20) {
            s.setopt(libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);
        }
        s.setopt(libc::SOL_SOCKET, libc::SO_SNDBUF, 1 << 20);
        let tv = libc::timeval {
            tv_sec: Duration::from_secs(5).as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: tv is a valid timeval for SO_RCVTIMEO.
        unsafe {
            libc::setsockopt(
                s.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                size_of::<libc::timeval>() as u32,
            )
        };
        Ok(s)
    }

    fn setopt(&self, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> bool {
        // SAFETY: v is a valid c_int for the option's length.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                &v as *const _ as *const libc::c_void,
                size_of::<libc::c_int>() as u32,
            ) == 0
        }
    }

    /// A fresh sequence number.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: bytes is a valid buffer; the kernel is the destination (pid 0).
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&mut self) -> io::Result<usize> {
        loop {
            // SAFETY: rbuf is a valid writable buffer of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.rbuf.as_mut_ptr() as *mut libc::c_void,
                    self.rbuf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return Ok(n as usize);
        }
    }

    /// Sends requests built by `build` (called once per item with a sequence number
    /// and the buffer; it must write exactly one message with NLM_F_ACK) in batches,
    /// and returns one result per item, in order.
    pub fn batch<T>(
        &mut self,
        items: &[T],
        mut build: impl FnMut(&T, u32, &mut MsgBuf),
    ) -> Result<Vec<Result<(), NlError>>, SockError> {
        let mut results: Vec<Option<Result<(), NlError>>> = vec![None; items.len()];
        let mut i = 0;
        let mut buf = MsgBuf::new();
        while i < items.len() {
            buf.clear();
            let first_seq = self.seq.wrapping_add(1);
            let start = i;
            while i < items.len() && (buf.len() < BATCH_BYTES || i == start) {
                let seq = self.next_seq();
                build(&items[i], seq, &mut buf);
                i += 1;
            }
            self.send(buf.as_bytes())?;
            let mut pending = i - start;
            // Bounded: each recv either yields acks or times out (5 s).
            while pending > 0 {
                let n = self.recv()?;
                for m in wire::messages(&self.rbuf[..n]) {
                    let m = m?;
                    if m.ty != wire::NLMSG_ERROR {
                        continue;
                    }
                    let idx = m.seq.wrapping_sub(first_seq) as usize;
                    if idx >= i - start || results[start + idx].is_some() {
                        continue;
                    }
                    results[start + idx] = Some(parse_ack(&m)?);
                    pending -= 1;
                }
            }
        }
        Ok(results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect())
    }

    /// One request, one ack.
    pub fn request(&mut self, build: impl FnOnce(u32, &mut MsgBuf)) -> Result<(), SockError> {
        let mut build = Some(build);
        let r = self.batch(&[()], |_, seq, buf| {
            if let Some(b) = build.take() {
                b(seq, buf)
            }
        })?;
        match r.into_iter().next() {
            Some(Err(e)) => Err(SockError::Kernel(e)),
            _ => Ok(()),
        }
    }

    /// A dump (or a single get): sends the request, calls `each` for every reply
    /// message until NLMSG_DONE (or the one reply of a non-multipart answer).
    pub fn dump(
        &mut self,
        build: impl FnOnce(u32, &mut MsgBuf),
        mut each: impl FnMut(&Msg<'_>) -> Result<(), SockError>,
    ) -> Result<(), SockError> {
        let seq = self.next_seq();
        let mut buf = MsgBuf::new();
        build(seq, &mut buf);
        self.send(buf.as_bytes())?;
        // Bounded: every receive returns data or times out; a dump ends with DONE.
        // recvmmsg: the kernel queues a dump's next part (often the DONE) while the
        // first is being read, so one call usually takes both.
        loop {
            let lens = self.recv_many()?;
            let rbuf = std::mem::take(&mut self.rbuf);
            let mut finished = false;
            let mut result = Ok(());
            'chunks: for (i, n) in lens.iter().enumerate() {
                let chunk = &rbuf[i * CHUNK..i * CHUNK + n];
                for m in wire::messages(chunk) {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            result = Err(e.into());
                            finished = true;
                            break 'chunks;
                        }
                    };
                    if m.seq != seq {
                        continue;
                    }
                    match m.ty {
                        wire::NLMSG_DONE => {
                            finished = true;
                            break 'chunks;
                        }
                        wire::NLMSG_ERROR => {
                            finished = true;
                            if let Err(e) = parse_ack(&m).and_then(|r| r.map_err(SockError::Kernel))
                            {
                                result = Err(e);
                            }
                            break 'chunks;
                        }
                        wire::NLMSG_NOOP => {}
                        _ => {
                            if let Err(e) = each(&m) {
                                result = Err(e);
                            }
                            if m.flags & wire::NLM_F_MULTI == 0 {
                                finished = true;
                            }
                        }
                    }
                }
            }
            self.rbuf = rbuf;
            if finished {
                return result;
            }
            result?;
        }
    }

    /// Receives up to RECV_BYTES / CHUNK datagrams in one call (blocking for the
    /// first only); returns their lengths, datagram i at `rbuf[i * CHUNK..]`.
    fn recv_many(&mut self) -> io::Result<Vec<usize>> {
        let slots = self.rbuf.len() / CHUNK;
        let mut iov: Vec<libc::iovec> = self
            .rbuf
            .chunks_exact_mut(CHUNK)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: CHUNK,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..slots)
            .map(|i| {
                // SAFETY: mmsghdr is plain data (integers and raw pointers), for which
                // all zero bytes is a valid value; we fill it before use.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = &mut iov[i] as *mut libc::iovec;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        loop {
            // SAFETY: msgs and their iovecs point into rbuf, valid for the call.
            let n = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    slots as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return Ok(msgs[..n as usize]
                .iter()
                .map(|m| m.msg_len as usize)
                .collect());
        }
    }
}

/// NLMSG_ERROR payload: i32 error, the original header, then (ext ack) attributes.
fn parse_ack(m: &Msg<'_>) -> Result<Result<(), NlError>, SockError> {
    let p = m.payload;
    let err = p
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(wire::DecodeError {
            offset: 0,
            what: "short NLMSG_ERROR",
        })?;
    if err == 0 {
        return Ok(Ok(()));
    }
    let mut msg = None;
    if m.flags & NLM_F_ACK_TLVS != 0 {
        // With NETLINK_CAP_ACK the original message is only its header.
        let orig_len = 4 + wire::NLMSG_HDRLEN;
        if let Some(tlvs) = p.get(orig_len..) {
            msg = Attrs::new(tlvs)
                .find(NLMSGERR_ATTR_MSG)
                .and_then(wire::get_str);
        }
    }
    Ok(Err(NlError { errno: -err, msg }))
}
