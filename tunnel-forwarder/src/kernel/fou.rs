//! The `fou` generic netlink family (version 1): the UDP listeners that take GUE
//! apart on a receiving director (`ip fou add port 6080 gue`). A GUE datagram's
//! inner IPIP packet then arrives on the IPIP tunnel device like a plain IPIP one,
//! loop guard included. Attribute numbers are those of include/uapi/linux/fou.h.

use super::{Error, Kernel, genl_family};
use crate::netlink::wire::{self, Attrs, DecodeError, MsgBuf};

pub const FAMILY_NAME: &str = "fou";
const VERSION: u8 = 1;

const CMD_ADD: u8 = 1;
const CMD_GET: u8 = 3;

const ATTR_PORT: u16 = 1;
const ATTR_AF: u16 = 2;
const ATTR_TYPE: u16 = 4;

/// `FOU_ENCAP_GUE`.
pub const ENCAP_GUE: u8 = 2;

/// A listener as the kernel reports it (IPv4 ones only are ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    pub port: u16,
    /// `FOU_ENCAP_DIRECT` (1) or `FOU_ENCAP_GUE` (2).
    pub encap: u8,
}

fn begin(b: &mut MsgBuf, fam: u16, cmd: u8, flags: u16, seq: u32) {
    b.begin(fam, flags, seq);
    b.raw(&[cmd, VERSION, 0, 0]);
}

/// `ip fou add port PORT gue` (IPv4).
pub fn add_gue(b: &mut MsgBuf, fam: u16, seq: u32, port: u16) {
    begin(b, fam, CMD_ADD, wire::NLM_F_REQUEST | wire::NLM_F_ACK, seq);
    b.be16(ATTR_PORT, port);
    b.attr(ATTR_AF, &[libc::AF_INET as u8]);
    b.attr(ATTR_TYPE, &[ENCAP_GUE]);
    b.end();
}

/// One listener of a GET dump; `None` for an IPv6 one.
pub fn decode(payload: &[u8]) -> Result<Option<Listener>, DecodeError> {
    let body = payload.get(4..).ok_or(DecodeError {
        offset: 0,
        what: "short fou message",
    })?;
    let a = Attrs::new(body);
    for x in a.clone() {
        x?;
    }
    let u8_of = |t| a.find(t).and_then(|p| p.first().copied());
    if u8_of(ATTR_AF).is_some_and(|af| af != libc::AF_INET as u8) {
        return Ok(None);
    }
    let port = a
        .find(ATTR_PORT)
        .and_then(wire::get_be16)
        .ok_or(DecodeError {
            offset: 0,
            what: "fou listener without port",
        })?;
    Ok(Some(Listener {
        port,
        encap: u8_of(ATTR_TYPE).unwrap_or(0),
    }))
}

impl Kernel {
    /// The fou family id, looked up once (loads nothing: a missing `fou` module
    /// is [`Error::ModuleMissing`]).
    pub(super) fn fou_family(&mut self) -> Result<u16, Error> {
        if let Some(f) = self.fou {
            return Ok(f);
        }
        let f = genl_family(&mut self.genl, FAMILY_NAME, "fou")?;
        self.fou = Some(f);
        Ok(f)
    }

    /// The IPv4 fou listeners (`ip fou show`).
    pub fn fou_listeners(&mut self) -> Result<Vec<Listener>, Error> {
        let fam = self.fou_family()?;
        let mut out = Vec::new();
        self.genl
            .dump(
                |seq, b| {
                    begin(b, fam, CMD_GET, wire::NLM_F_REQUEST | wire::NLM_F_DUMP, seq);
                    b.end();
                },
                |m| {
                    out.extend(decode(m.payload)?);
                    Ok(())
                },
            )
            .map_err(|e| Error::from_sock("reading fou listeners (ip fou show)", e))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_round_trips_through_the_decoder_and_garbage_is_an_error() {
        let mut b = MsgBuf::new();
        add_gue(&mut b, 0x1d, 1, 6080);
        let l = decode(&b.as_bytes()[16..]).unwrap();
        assert_eq!(
            l,
            Some(Listener {
                port: 6080,
                encap: ENCAP_GUE
            })
        );
        // Port in network order right after the genetlink header.
        assert_eq!(&b.as_bytes()[20..26], &[6, 0, 1, 0, 0x17, 0xc0]);
        assert!(decode(&[]).is_err());
        assert!(decode(&[3, 1, 0, 0, 200, 0, 1, 0]).is_err());
        // An IPv6 listener is not ours.
        let mut b = MsgBuf::new();
        begin(&mut b, 0x1d, CMD_ADD, 0, 1);
        b.be16(ATTR_PORT, 6080);
        b.attr(ATTR_AF, &[libc::AF_INET6 as u8]);
        b.end();
        assert_eq!(decode(&b.as_bytes()[16..]).unwrap(), None);
    }
}
