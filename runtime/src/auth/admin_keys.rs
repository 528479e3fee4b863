//! Admin API keys for automation, in the manner of Unkey's root keys: `tsa_` + 40 random
//! characters, shown once, kept only as SHA-256, each with a name and a fixed set of scopes.
//! Sent as `Authorization: Bearer tsa_...`. Revocation is immediate on every server: each
//! admin request reads the record from the store (admin traffic is small).

use chrono::Utc;
use rand::Rng;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::AuthError;
use super::records;
use super::scopes::Scope;
use crate::store::MetaStore;

/// Meta-store key of the admin key list.
pub const ADMIN_KEYS_RECORD: &str = "admin_keys";
/// Every admin key starts with this, so scanners and people can tell what leaked.
pub const ADMIN_KEY_PREFIX: &str = "tsa_";
const SECRET_LEN: usize = 40;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Most characters in a key name.
pub const MAX_NAME_LEN: usize = 64;

/// One admin key as stored (never the key itself).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdminKey {
    /// Stable id (`key_` + 12 characters), for revoking.
    pub id: String,
    /// Who or what uses it.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// SHA-256 of the key, hex.
    pub sha256: String,
    /// The key's first 8 characters, to recognize it in a list.
    pub hint: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; a revoked key authenticates nothing.
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

#[derive(Default, Serialize, Deserialize)]
struct AdminKeyFile {
    keys: Vec<AdminKey>,
}

fn random(len: usize) -> String {
    let mut rng = OsRng.unwrap_err();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a key; returns its record and the key itself (shown once).
pub async fn create(
    meta: &dyn MetaStore,
    name: &str,
    scopes: Vec<Scope>,
) -> Result<(AdminKey, String), AuthError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control)
    {
        return Err(AuthError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME_LEN} printable characters"),
        ));
    }
    if scopes.is_empty() {
        return Err(AuthError::invalid(
            "scopes",
            "at least one scope is required",
        ));
    }
    let secret = format!("{ADMIN_KEY_PREFIX}{}", random(SECRET_LEN));
    let key = AdminKey {
        id: format!("key_{}", random(12)),
        name: name.to_string(),
        scopes,
        sha256: sha256_hex(&secret),
        hint: secret.chars().take(8).collect(),
        created_at: Utc::now().timestamp(),
        revoked_at: None,
    };
    let stored = key.clone();
    records::update(meta, ADMIN_KEYS_RECORD, |file: &mut AdminKeyFile| {
        if file
            .keys
            .iter()
            .any(|k| k.revoked_at.is_none() && k.name == stored.name)
        {
            return Err(AuthError::Conflict(format!(
                "an active admin key named `{}` exists",
                stored.name
            )));
        }
        file.keys.push(stored.clone());
        Ok(())
    })
    .await?;
    Ok((key, secret))
}

/// Every key ever created, revoked ones included, oldest first.
pub async fn list(meta: &dyn MetaStore) -> Result<Vec<AdminKey>, AuthError> {
    Ok(records::read::<AdminKeyFile>(meta, ADMIN_KEYS_RECORD)
        .await?
        .unwrap_or_default()
        .keys)
}

/// Revokes the active key with this id, or else with this name; it stops working at once.
/// An id always wins, so a key named like another key's id cannot be revoked in its place.
pub async fn revoke(meta: &dyn MetaStore, id_or_name: &str) -> Result<AdminKey, AuthError> {
    let wanted = id_or_name.trim().to_string();
    records::update(meta, ADMIN_KEYS_RECORD, |file: &mut AdminKeyFile| {
        let active = |k: &AdminKey| k.revoked_at.is_none();
        let at = file
            .keys
            .iter()
            .position(|k| active(k) && k.id == wanted)
            .or_else(|| file.keys.iter().position(|k| active(k) && k.name == wanted))
            .ok_or_else(|| {
                AuthError::AdminKeyNotFound(format!("no active admin key `{wanted}`"))
            })?;
        let key = &mut file.keys[at];
        key.revoked_at = Some(Utc::now().timestamp());
        Ok(key.clone())
    })
    .await
}

/// The active key `secret` is, if any. Compares hashes in constant time.
pub async fn verify(meta: &dyn MetaStore, secret: &str) -> Result<Option<AdminKey>, AuthError> {
    if !secret.starts_with(ADMIN_KEY_PREFIX) {
        return Ok(None);
    }
    let presented = sha256_hex(secret);
    let keys = list(meta).await?;
    let mut found = None;
    for k in keys {
        let same: bool = k.sha256.as_bytes().ct_eq(presented.as_bytes()).into();
        if same && k.revoked_at.is_none() {
            found = Some(k);
        }
    }
    Ok(found)
}
