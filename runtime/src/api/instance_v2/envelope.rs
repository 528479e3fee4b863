//! Seed 003's `{key, data}` envelope.
//!
//! `data` is `base64(nonce ‖ ciphertext ‖ tag)` of the request's JSON, sealed with
//! AES-256-GCM under a key derived from the API key (`key`) by HKDF-SHA256 with salt
//! `tessera-envelope-v1` and info `tessera/api/v2`; the 12-byte nonce is random per message.
//! Base64 is the standard alphabet with padding. `tessera envelope encrypt|decrypt` does
//! the same from the command line for client authors.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::Sha256;

const SALT: &[u8] = b"tessera-envelope-v1";
const INFO: &[u8] = b"tessera/api/v2";
const NONCE_LEN: usize = 12;

/// Why an envelope could not be opened or sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// `data` is not valid base64.
    #[error("data is not valid base64")]
    Base64,
    /// `data` is shorter than a nonce and a tag.
    #[error("data is too short to be an envelope")]
    TooShort,
    /// Authentication failed: wrong key or tampered data.
    #[error("data could not be decrypted with this key")]
    Decrypt,
    /// The random source failed.
    #[error("no randomness available")]
    Random,
}

fn cipher(api_key: &str) -> Aes256Gcm {
    let hk = Hkdf::<Sha256>::new(Some(SALT), api_key.as_bytes());
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 255 * 32 output limit, so expand cannot fail.
    let _ = hk.expand(INFO, &mut key);
    Aes256Gcm::new(&key.into())
}

/// Seals `plaintext` for `api_key`.
pub fn seal(api_key: &str, plaintext: &[u8]) -> Result<String, EnvelopeError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|_| EnvelopeError::Random)?;
    let ct = cipher(api_key)
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .map_err(|_| EnvelopeError::Decrypt)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(STANDARD.encode(out))
}

/// Opens `data` sealed for `api_key`.
pub fn open(api_key: &str, data: &str) -> Result<Vec<u8>, EnvelopeError> {
    let raw = STANDARD
        .decode(data.trim())
        .map_err(|_| EnvelopeError::Base64)?;
    if raw.len() < NONCE_LEN + 16 {
        return Err(EnvelopeError::TooShort);
    }
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    cipher(api_key)
        .decrypt(Nonce::from_slice(nonce), ct)
        .map_err(|_| EnvelopeError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_with_the_same_key_only() {
        let sealed = seal("AF-2026-KEY", b"{\"token\":\"x\"}").unwrap_or_default();
        assert_eq!(
            open("AF-2026-KEY", &sealed).ok(),
            Some(b"{\"token\":\"x\"}".to_vec())
        );
        assert_eq!(open("AF-2026-OTHER", &sealed), Err(EnvelopeError::Decrypt));
        assert_eq!(open("k", "!!"), Err(EnvelopeError::Base64));
        assert_eq!(open("k", "AAAA"), Err(EnvelopeError::TooShort));
        assert_ne!(
            seal("k", b"same").ok(),
            seal("k", b"same").ok(),
            "fresh nonce per message"
        );
    }
}
