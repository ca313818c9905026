//! Password hashes: argon2id in PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$...`),
//! the crate's default parameters (OWASP's first recommendation). Verifying costs tens
//! of milliseconds of one core on purpose: callers run it on a blocking thread.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("an empty password is refused")]
    Empty,
    #[error("argon2: {0}")]
    Argon2(String),
}

/// A new argon2id hash of `password` with a random 16-byte salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Argon2(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Whether `password` matches `phc`; a malformed hash matches nothing.
pub fn verify(phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Why a configured password hash cannot be used (the config problem's reason, after
/// "password_hash").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadHash {
    #[error("is not a PHC string: {0}")]
    NotPhc(String),
    #[error("uses `{0}`; only argon2 is accepted")]
    NotArgon2(String),
    #[error("has no salt or no hash part")]
    Incomplete,
}

/// `Ok` when `phc` is an argon2 PHC string this build can verify; else why not.
pub fn check_hash(phc: &str) -> Result<(), BadHash> {
    let parsed = PasswordHash::new(phc).map_err(|e| BadHash::NotPhc(e.to_string()))?;
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {}
        other => return Err(BadHash::NotArgon2(other.to_string())),
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err(BadHash::Incomplete);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(check_hash(&h).is_ok());
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "correct horse "));
        assert!(!verify(&h, ""));
        assert_ne!(h, hash("correct horse").unwrap(), "salted");
    }

    #[test]
    fn malformed_hashes_are_refused_and_match_nothing() {
        assert!(check_hash("plain text").is_err());
        assert!(check_hash("$bcrypt$whatever").is_err());
        assert!(!verify("plain text", "plain text"));
        assert!(matches!(hash(""), Err(HashError::Empty)));
    }
}
