//! The login encryption keys (seed 001): an RSA key pair, at least 2048 bits, that clients
//! encrypt the password to, and the secret that makes login nonces verifiable without
//! storing them. Generated on first start and kept in the meta store, so every server
//! sharing the store uses the same keys; the newest key is current, older ones stay listed
//! (`GET /api/auth/keys`) and accepted.
//!
//! The private key is stored as PKCS#8 PEM in the store: unlike a password it cannot be kept
//! as a hash, so it is protected the way the store itself is (file mode 0700 directory for
//! the embedded store, Redis ACLs/TLS for Redis).

use chrono::Utc;
use rand::TryRngCore;
use rand::rngs::OsRng;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};

use super::error::AuthError;
use super::records;
use crate::store::MetaStore;

/// Meta-store key of the login keys.
pub const LOGIN_KEYS_RECORD: &str = "login_keys";
/// RSA modulus size of generated keys.
pub const RSA_BITS: usize = 2048;

/// One stored key pair.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKey {
    /// `rsa-<unix seconds>-<4 hex>`.
    pub key_id: String,
    /// PKCS#8 PEM.
    pub private_pem: String,
    /// SubjectPublicKeyInfo PEM.
    pub public_pem: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// The login keys and the nonce secret.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct LoginKeys {
    /// Oldest first; the last is current.
    pub keys: Vec<StoredKey>,
    /// HMAC key of login nonces, hex.
    pub nonce_secret: String,
}

impl std::fmt::Debug for LoginKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.key_id.as_str()).collect();
        f.debug_struct("LoginKeys")
            .field("keys", &ids)
            .finish_non_exhaustive()
    }
}

impl LoginKeys {
    /// The current key.
    pub fn current(&self) -> Option<&StoredKey> {
        self.keys.last()
    }

    /// The private key with this id.
    pub fn private(&self, key_id: &str) -> Option<RsaPrivateKey> {
        let k = self.keys.iter().find(|k| k.key_id == key_id)?;
        RsaPrivateKey::from_pkcs8_pem(&k.private_pem).ok()
    }

    /// The nonce secret's bytes.
    pub fn nonce_secret(&self) -> Vec<u8> {
        hex::decode(&self.nonce_secret).unwrap_or_default()
    }
}

fn generate() -> Result<StoredKey, AuthError> {
    let mut rng = rsa::rand_core::OsRng;
    let private = RsaPrivateKey::new(&mut rng, RSA_BITS)
        .map_err(|e| AuthError::Internal(format!("RSA key generation failed: {e}")))?;
    let public = RsaPublicKey::from(&private);
    let private_pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| AuthError::Internal(e.to_string()))?
        .to_string();
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    let now = Utc::now().timestamp();
    let mut tag = [0u8; 2];
    OsRng
        .try_fill_bytes(&mut tag)
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    Ok(StoredKey {
        key_id: format!("rsa-{now}-{}", hex::encode(tag)),
        private_pem,
        public_pem,
        created_at: now,
    })
}

/// The login keys, generating and storing them if this store has none (first start). Two
/// servers starting at once agree on one set: the store's compare-and-swap picks the first.
pub async fn ensure(meta: &dyn MetaStore) -> Result<LoginKeys, AuthError> {
    if let Some(keys) = records::read::<LoginKeys>(meta, LOGIN_KEYS_RECORD).await?
        && !keys.keys.is_empty()
    {
        return Ok(keys);
    }
    let key = tokio::task::spawn_blocking(generate)
        .await
        .map_err(|e| AuthError::Internal(format!("key generation task failed: {e}")))??;
    let mut secret = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut secret)
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    let fresh = LoginKeys {
        keys: vec![key],
        nonce_secret: hex::encode(secret),
    };
    records::update(meta, LOGIN_KEYS_RECORD, |stored: &mut LoginKeys| {
        if stored.keys.is_empty() {
            *stored = fresh.clone();
        }
        Ok::<_, AuthError>(stored.clone())
    })
    .await
}
