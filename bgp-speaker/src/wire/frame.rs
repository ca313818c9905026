//! Framing and whole-message codec over `rustbgpd-wire`.

use bytes::{Bytes, BytesMut};
use rustbgpd_wire::notification::{
    decode_shutdown_communication, description, encode_shutdown_communication,
};
use rustbgpd_wire::{
    DecodeError, Message, NotificationCode, NotificationMessage, decode_message,
    encode_message_with_limit, peek_message_length,
};

/// RFC 4271 §4: largest message before Extended Messages are negotiated.
pub(crate) const STANDARD_MAX_LEN: u16 = 4096;
/// RFC 8654: largest message once Extended Messages are negotiated.
pub(crate) const EXTENDED_MAX_LEN: u16 = 65535;

/// Takes one complete message off the front of `buf` and decodes it.
///
/// `Ok(None)`: not enough bytes yet. `Err`: the header is bad (marker, length,
/// type; RFC 4271 §6.1) or the body is; the error maps to the NOTIFICATION via
/// `DecodeError::to_notification`. On `Err` the stream is unusable and the caller
/// closes it, so what stays in `buf` does not matter.
pub(crate) fn next_frame(buf: &mut BytesMut, max_len: u16) -> Result<Option<Message>, DecodeError> {
    let Some(len) = peek_message_length(buf, max_len)? else {
        return Ok(None);
    };
    let len = usize::from(len);
    if buf.len() < len {
        return Ok(None);
    }
    let mut frame = buf.split_to(len).freeze();
    decode_message(&mut frame, max_len).map(Some)
}

/// Encodes a message; `None` (logged by the caller) when it does not fit `max_len`.
pub(crate) fn encode(msg: &Message, max_len: u16) -> Option<Bytes> {
    encode_message_with_limit(msg, max_len)
        .ok()
        .map(BytesMut::freeze)
}

/// The 19-byte KEEPALIVE.
pub(crate) fn encode_keepalive() -> Bytes {
    let mut b = vec![0xFF; 16];
    b.extend_from_slice(&[0, 19, 4]);
    Bytes::from(b)
}

/// A NOTIFICATION from raw code and subcode.
pub(crate) fn notification(code: u8, subcode: u8, data: Bytes) -> NotificationMessage {
    NotificationMessage::new(NotificationCode::from_u8(code), subcode, data)
}

/// Encodes a NOTIFICATION; data that would not fit is dropped rather than the message.
pub(crate) fn encode_notification(n: &NotificationMessage) -> Bytes {
    encode(&Message::Notification(n.clone()), EXTENDED_MAX_LEN).unwrap_or_else(|| {
        let mut b = vec![0xFF; 16];
        b.extend_from_slice(&[0, 21, 3, n.code.as_u8(), n.subcode]);
        Bytes::from(b)
    })
}

/// RFC 9003 shutdown communication: length byte + UTF-8, at most 128 bytes sent.
pub(crate) fn shutdown_communication(reason: &str) -> Bytes {
    encode_shutdown_communication(reason)
}

/// "code/subcode (text)" plus the RFC 9003 reason when the peer sent one.
pub(crate) fn describe_notification(n: &NotificationMessage) -> String {
    let code = n.code.as_u8();
    let mut s = format!("{code}/{} ({})", n.subcode, description(n.code, n.subcode));
    if code == 6
        && (n.subcode == 2 || n.subcode == 4)
        && let Some(reason) = decode_shutdown_communication(&n.data)
    {
        s.push_str(": ");
        s.push_str(&reason);
    }
    s
}
