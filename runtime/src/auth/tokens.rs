//! Operators' bearer tokens: opaque (`tso_` + 43 random characters), kept only as SHA-256
//! under `operator_token:<hash>`, expiring, revocable by logout, and re-checked against the
//! operator on every use (disabled, password changed, role changed, forced re-auth).

use chrono::Utc;
use rand::Rng;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::AuthError;
use super::operators;
use super::scopes::Role;
use crate::store::MetaStore;

/// Every operator token starts with this.
pub const TOKEN_PREFIX: &str = "tso_";
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A token as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Whose it is.
    pub username: String,
    /// Unix milliseconds: compared with cut-offs (password change, forced re-auth) to the
    /// millisecond, so a login right after a cut-off is not cut.
    pub issued_ms: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A token that still works, with the operator's current role.
#[derive(Clone, Debug)]
pub struct ValidToken {
    /// Whose it is.
    pub username: String,
    /// The operator's role now.
    pub role: Role,
    /// SHA-256 of the token, hex (for logout).
    pub hash: String,
    /// Unix seconds.
    pub expires_at: i64,
}

fn record_key(hash: &str) -> String {
    format!("operator_token:{hash}")
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues a token for `username` valid for `ttl_secs`; returns it and its expiry.
pub async fn issue(
    meta: &dyn MetaStore,
    username: &str,
    ttl_secs: u64,
) -> Result<(String, i64), AuthError> {
    let mut rng = OsRng.unwrap_err();
    let token: String = TOKEN_PREFIX
        .chars()
        .chain((0..43).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])))
        .collect();
    let now = Utc::now().timestamp();
    let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX);
    let record = TokenRecord {
        username: username.to_string(),
        issued_ms: Utc::now().timestamp_millis(),
        expires_at: now.saturating_add(ttl),
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| AuthError::Internal(e.to_string()))?;
    meta.put(&record_key(&hash(&token)), &bytes).await?;
    Ok((token, record.expires_at))
}

/// The token's owner if it still works: not expired, not logged out, its operator enabled
/// and unchanged in password since, and not issued before `reauth_epoch_ms` unless the
/// operator is a super admin.
pub async fn resolve(
    meta: &dyn MetaStore,
    token: &str,
    reauth_epoch_ms: i64,
) -> Result<Option<ValidToken>, AuthError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    let hash = hash(token);
    let Some(record) = super::records::read::<TokenRecord>(meta, &record_key(&hash)).await? else {
        return Ok(None);
    };
    let now = Utc::now().timestamp();
    if record.expires_at <= now {
        return Ok(None);
    }
    let Some(op) = operators::get(meta, &record.username).await? else {
        return Ok(None);
    };
    if op.disabled || record.issued_ms < op.tokens_valid_from_ms() {
        return Ok(None);
    }
    if op.role != Role::SuperAdmin && record.issued_ms < reauth_epoch_ms {
        return Ok(None);
    }
    Ok(Some(ValidToken {
        username: op.username,
        role: op.role,
        hash,
        expires_at: record.expires_at,
    }))
}

/// Ends a token (logout): it stops working on every server at once.
pub async fn revoke(meta: &dyn MetaStore, hash: &str) -> Result<(), AuthError> {
    let key = record_key(hash);
    let current = meta.get(&key).await?;
    if current.is_some() {
        meta.compare_and_swap(&key, current.as_deref(), None)
            .await?;
    }
    Ok(())
}
