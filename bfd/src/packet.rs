//! The BFD Control packet (RFC 5880 section 4.1), mandatory section only: this
//! implementation runs no authentication, and a packet asking for it is refused.
//!
//! ```text
//!  0                   1                   2                   3
//!  |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//!  |                       My Discriminator                        |
//!  |                      Your Discriminator                       |
//!  |                    Desired Min TX Interval                    |
//!  |                   Required Min RX Interval                    |
//!  |                 Required Min Echo RX Interval                 |
//! ```

use std::fmt;

/// Length of a Control packet without authentication.
pub const LEN: usize = 24;

/// Session state as carried on the wire (RFC 5880 4.1 "Sta").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Why the local system last changed state (RFC 5880 4.1 "Diag").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// A value this implementation does not know (9-31).
    Other(u8),
}

impl Diag {
    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Other(c) => c & 0x1f,
        }
    }

    pub fn from_code(c: u8) -> Diag {
        match c & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            c => Diag::Other(c),
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::None => f.write_str("no diagnostic"),
            Diag::ControlDetectionTimeExpired => f.write_str("control detection time expired"),
            Diag::EchoFunctionFailed => f.write_str("echo function failed"),
            Diag::NeighborSignaledSessionDown => f.write_str("neighbor signaled session down"),
            Diag::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diag::PathDown => f.write_str("path down"),
            Diag::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diag::AdministrativelyDown => f.write_str("administratively down"),
            Diag::ReverseConcatenatedPathDown => f.write_str("reverse concatenated path down"),
            Diag::Other(c) => write!(f, "diagnostic {c}"),
        }
    }
}

/// One Control packet. Intervals in microseconds, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discr: u32,
    pub your_discr: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
}

/// Why a received packet was dropped (RFC 5880 6.8.6, the checks before any session
/// is touched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {0} bytes, shorter than a BFD control packet (24)")]
    Short(usize),
    #[error("version {0}, not 1")]
    Version(u8),
    #[error("length field {field} does not fit the {got} bytes received (24..=received)")]
    Length { field: u8, got: usize },
    #[error("authentication requested (A bit), and none is configured")]
    Auth,
    #[error("detect multiplier 0")]
    ZeroMult,
    #[error("multipoint bit set")]
    Multipoint,
    #[error("my discriminator 0")]
    ZeroMyDiscr,
}

impl ControlPacket {
    /// Encodes the packet (24 bytes).
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (1 << 5) | self.diag.code();
        b[1] = ((self.state as u8) << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.cpi) << 3)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_discr.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discr.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        b
    }

    /// Decodes and checks a received packet; never panics.
    pub fn decode(b: &[u8]) -> Result<ControlPacket, DecodeError> {
        if b.len() < LEN {
            return Err(DecodeError::Short(b.len()));
        }
        let version = b[0] >> 5;
        if version != 1 {
            return Err(DecodeError::Version(version));
        }
        let len = b[3];
        if usize::from(len) < LEN || usize::from(len) > b.len() {
            return Err(DecodeError::Length {
                field: len,
                got: b.len(),
            });
        }
        if b[1] & 0x04 != 0 {
            return Err(DecodeError::Auth);
        }
        if b[2] == 0 {
            return Err(DecodeError::ZeroMult);
        }
        if b[1] & 0x01 != 0 {
            return Err(DecodeError::Multipoint);
        }
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let p = ControlPacket {
            diag: Diag::from_code(b[0]),
            state: State::from_bits(b[1] >> 6),
            poll: b[1] & 0x20 != 0,
            final_: b[1] & 0x10 != 0,
            cpi: b[1] & 0x08 != 0,
            demand: b[1] & 0x02 != 0,
            detect_mult: b[2],
            my_discr: word(4),
            your_discr: word(8),
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
        };
        if p.my_discr == 0 {
            return Err(DecodeError::ZeroMyDiscr);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ControlPacket {
        ControlPacket {
            diag: Diag::ControlDetectionTimeExpired,
            state: State::Init,
            poll: true,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_discr: 0x0102_0304,
            your_discr: 7,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 50_000,
        }
    }

    #[test]
    fn round_trips() {
        let p = sample();
        assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn known_bytes() {
        // Version 1, diag 1; state Init (2 << 6) with P; mult 3; length 24.
        let b = sample().encode();
        assert_eq!(&b[..4], &[0x21, 0xa0, 3, 24]);
        assert_eq!(&b[12..16], &300_000u32.to_be_bytes());
    }

    #[test]
    fn malformed_packets_are_refused_with_the_reason() {
        let good = sample().encode();
        assert_eq!(
            ControlPacket::decode(&good[..20]),
            Err(DecodeError::Short(20))
        );
        let mut b = good;
        b[0] = (2 << 5) | 1;
        assert_eq!(ControlPacket::decode(&b), Err(DecodeError::Version(2)));
        let mut b = good;
        b[3] = 30;
        assert!(matches!(
            ControlPacket::decode(&b),
            Err(DecodeError::Length { .. })
        ));
        b[3] = 12;
        assert!(matches!(
            ControlPacket::decode(&b),
            Err(DecodeError::Length { .. })
        ));
        let mut b = good;
        b[1] |= 0x04;
        assert_eq!(ControlPacket::decode(&b), Err(DecodeError::Auth));
        let mut b = good;
        b[2] = 0;
        assert_eq!(ControlPacket::decode(&b), Err(DecodeError::ZeroMult));
        let mut b = good;
        b[1] |= 0x01;
        assert_eq!(ControlPacket::decode(&b), Err(DecodeError::Multipoint));
        let mut b = good;
        b[4..8].fill(0);
        assert_eq!(ControlPacket::decode(&b), Err(DecodeError::ZeroMyDiscr));
    }

    #[test]
    fn every_short_or_noisy_input_is_an_error_or_a_packet() {
        let mut x = 0x9e37_79b9u32;
        for n in 0..2000usize {
            let len = n % 64;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = ControlPacket::decode(&buf);
        }
    }
}
