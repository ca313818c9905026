//! Netlink framing: message headers and attributes, built and parsed without I/O.
//!
//! Parsing never panics on kernel input: every length is checked and a bad one is a
//! [`DecodeError`] with the byte offset.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const NLMSG_HDRLEN: usize = 16;
pub const NLA_HDRLEN: usize = 4;
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_TYPE_MASK: u16 = 0x3fff;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;

/// Rounds up to netlink's 4-byte alignment.
pub const fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// A malformed netlink message from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed netlink data at byte {offset}: {what}")]
pub struct DecodeError {
    /// Offset into the buffer being parsed.
    pub offset: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// Builds one or more netlink messages into a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct MsgBuf {
    buf: Vec<u8>,
    msg_start: usize,
}

impl MsgBuf {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Starts a message; finish it with [`MsgBuf::end`].
    pub fn begin(&mut self, ty: u16, flags: u16, seq: u32) {
        self.msg_start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
    }

    /// Fixes the current message's length.
    pub fn end(&mut self) {
        let len = (self.buf.len() - self.msg_start) as u32;
        self.buf[self.msg_start..self.msg_start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Raw bytes (a fixed header such as genlmsghdr, ifinfomsg, tcmsg), padded.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub fn attr(&mut self, ty: u16, payload: &[u8]) {
        let len = (NLA_HDRLEN + payload.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    pub fn u8(&mut self, ty: u16, v: u8) {
        self.attr(ty, &[v]);
    }

    pub fn u16(&mut self, ty: u16, v: u16) {
        self.attr(ty, &v.to_ne_bytes());
    }

    pub fn be16(&mut self, ty: u16, v: u16) {
        self.attr(ty, &v.to_be_bytes());
    }

    pub fn u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    /// A NUL-terminated string.
    pub fn str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v);
    }

    /// Opens a nested attribute; returns its start for [`MsgBuf::nest_end`].
    pub fn nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    pub fn nest_end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// One netlink message of a received buffer.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// Everything after the 16-byte header.
    pub payload: &'a [u8],
}

/// Splits a received buffer into messages.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Result<Msg<'_>, DecodeError>> + '_ {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        if off + NLMSG_HDRLEN > buf.len() {
            return None;
        }
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            let at = off;
            off = buf.len();
            return Some(Err(DecodeError {
                offset: at,
                what: "message length out of bounds",
            }));
        }
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        let flags = u16::from_ne_bytes([buf[off + 6], buf[off + 7]]);
        let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().ok()?);
        let payload = &buf[off + NLMSG_HDRLEN..off + len];
        off += align(len);
        Some(Ok(Msg {
            ty,
            flags,
            seq,
            payload,
        }))
    })
}

/// Iterates over attributes: `(type without flags, payload)`.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Attrs { buf, off: 0 }
    }

    /// First attribute of type `ty`.
    pub fn find(&self, ty: u16) -> Option<&'a [u8]> {
        self.clone()
            .flatten()
            .find(|(t, _)| *t == ty)
            .map(|(_, p)| p)
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.off + NLA_HDRLEN > self.buf.len() {
            return None;
        }
        let b = self.buf;
        let len = u16::from_ne_bytes([b[self.off], b[self.off + 1]]) as usize;
        let ty = u16::from_ne_bytes([b[self.off + 2], b[self.off + 3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || self.off + len > b.len() {
            let at = self.off;
            self.off = b.len();
            return Some(Err(DecodeError {
                offset: at,
                what: "attribute length out of bounds",
            }));
        }
        let payload = &b[self.off + NLA_HDRLEN..self.off + len];
        self.off += align(len);
        Some(Ok((ty, payload)))
    }
}

pub fn get_u8(p: &[u8]) -> Option<u8> {
    p.first().copied()
}

pub fn get_u16(p: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(p.get(..2)?.try_into().ok()?))
}

pub fn get_be16(p: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(p.get(..2)?.try_into().ok()?))
}

pub fn get_u32(p: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(p.get(..4)?.try_into().ok()?))
}

pub fn get_u64(p: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(p.get(..8)?.try_into().ok()?))
}

/// A NUL-terminated (or not) string attribute.
pub fn get_str(p: &[u8]) -> Option<String> {
    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
    std::str::from_utf8(&p[..end]).ok().map(str::to_string)
}

/// An address attribute: 4 bytes (IPv4) or 16 bytes; with `af` to pick the family of
/// a 16-byte `nf_inet_addr` that holds an IPv4 address in its first 4 bytes.
pub fn get_addr(p: &[u8], af: u16) -> Option<IpAddr> {
    match (af as i32, p.len()) {
        (libc::AF_INET, n) if n >= 4 => Some(IpAddr::V4(Ipv4Addr::new(p[0], p[1], p[2], p[3]))),
        (libc::AF_INET6, n) if n >= 16 => {
            let a: [u8; 16] = p[..16].try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

/// Address family number of an address.
pub fn af_of(a: &IpAddr) -> u16 {
    match a {
        IpAddr::V4(_) => libc::AF_INET as u16,
        IpAddr::V6(_) => libc::AF_INET6 as u16,
    }
}

/// The address as the 16-byte `nf_inet_addr` IPVS expects.
pub fn inet_addr16(a: &IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.copy_from_slice(&v6.octets()),
    }
    out
}

/// Address bytes as rtnetlink expects them (4 or 16).
pub fn addr_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_message_parses_back() {
        let mut m = MsgBuf::new();
        m.begin(20, NLM_F_REQUEST | NLM_F_ACK, 7);
        m.raw(&[1, 2, 3, 4]);
        m.u32(1, 0xdead_beef);
        let n = m.nest(2);
        m.str(3, "wrr");
        m.nest_end(n);
        m.end();
        let msgs: Vec<_> = messages(m.as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].ty, msgs[0].seq), (20, 7));
        let attrs = Attrs::new(&msgs[0].payload[4..]);
        assert_eq!(get_u32(attrs.find(1).unwrap()), Some(0xdead_beef));
        let inner = Attrs::new(attrs.find(2).unwrap());
        assert_eq!(get_str(inner.find(3).unwrap()).as_deref(), Some("wrr"));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut m = MsgBuf::new();
        m.begin(20, 0, 1);
        m.u32(1, 5);
        m.end();
        let b = m.as_bytes();
        // Header claims more than there is.
        let mut bad = b.to_vec();
        bad[0] = 200;
        assert!(messages(&bad).next().unwrap().is_err());
        // Attribute length beyond its buffer.
        let attr = [9u8, 0, 1, 0, 0];
        let e = Attrs::new(&attr).next().unwrap().unwrap_err();
        assert_eq!(e.offset, 0);
        // Short fixed-size values are None.
        assert_eq!(get_u32(&[1, 2]), None);
        assert_eq!(get_addr(&[1, 2], libc::AF_INET as u16), None);
        // Every prefix of a valid message parses without panicking.
        for n in 0..b.len() {
            let _ = messages(&b[..n]).count();
            let _ = Attrs::new(&b[..n]).count();
        }
    }
}
