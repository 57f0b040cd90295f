//! Secrets: creating them (tokens, client secrets, passwords), hashing them for storage
//! (argon2id for what people and clients present, SHA-256 for device tokens, which are
//! checked on every connection) and comparing hashes in constant time.
//!
//! A leaf: the store, the API, the device listener and the CLI all use it.
//! Not here: who may present which secret (`api/auth.rs`, `server/device.rs`).

use crate::ids::random_bytes;

/// A random secret (token, client secret, password) of 160 bits, URL-safe.
pub fn new_secret() -> String {
    crate::model::hex(&random_bytes::<20>())
}

/// Hashes a password or client secret with argon2id (PHC string). The error is the
/// library's message.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| format!("salt: {e}"))?;
    argon2::Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("password hash: {e}"))
}

/// Checks a secret against a PHC string; any malformed hash is a mismatch.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok()
    })
}

/// SHA-256 of a device token, as stored and as looked up.
pub fn token_hash(token: impl AsRef<[u8]>) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_ref()).into()
}

/// Constant-time equality of two hashes.
pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
