//! HMAC-SHA256 over the exact body bytes, with a key shared by each pair of sites.
//!
//! Why HMAC and not mutual TLS: it authenticates the *message*, not the channel, so the
//! check is a pure function of (key, body) that runs in the core and in tests without
//! certificates; keys are one line of config per peer with no CA, expiry or rotation
//! machinery; and load figures are not secret, so confidentiality is not needed (the
//! listener can still sit behind TLS). Replay is handled by `seq` and `timestamp`
//! inside the signed body, and `receiver` binds a report to one peer.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of the signature header value.
pub const SCHEME: &str = "sha256=";
/// Shortest key accepted (128 bits).
pub const MIN_KEY_LEN: usize = 16;

/// `sha256=<hex>` for `body` under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // new_from_slice accepts any key length for HMAC; the error arm cannot happen.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return String::new();
    };
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(SCHEME.len() + 64);
    out.push_str(SCHEME);
    for b in tag {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// The first 128 bits of SHA-256 over `bytes`, in hex: a config digest (decision 0015).
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(32);
    for b in &hash[..16] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// Verifies a `sha256=<hex>` header value in constant time.
pub fn verify(key: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix(SCHEME) else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    b.chunks(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 (key "Jefe").
    #[test]
    fn rfc4231_vector() {
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &sig));
        assert!(verify(
            b"Jefe",
            b"what do ya want for nothing?",
            &sig.to_uppercase().replace("SHA256", "sha256")
        ));
    }

    #[test]
    fn wrong_key_body_or_format_fails() {
        let sig = sign(b"0123456789abcdef", b"body");
        assert!(!verify(b"0123456789abcdeX", b"body", &sig));
        assert!(!verify(b"0123456789abcdef", b"bodY", &sig));
        assert!(!verify(b"0123456789abcdef", b"body", &sig[..sig.len() - 2]));
        assert!(!verify(b"0123456789abcdef", b"body", "md5=00"));
        assert!(!verify(b"0123456789abcdef", b"body", "sha256=zz"));
        assert!(!verify(b"0123456789abcdef", b"body", ""));
    }
}
