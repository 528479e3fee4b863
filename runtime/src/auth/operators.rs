//! Operator accounts for people: a username, a role, an Argon2id password hash (OWASP
//! parameters), and the lockout state of failed logins. No account exists until
//! `tessera operator create` makes one; there is no built-in or default credential.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::error::AuthError;
use super::records;
use super::scopes::Role;
use crate::store::MetaStore;

/// Meta-store key of the operator list.
pub const OPERATORS_RECORD: &str = "operators";
/// Shortest password accepted (NIST SP 800-63B asks for at least 8; we ask for more).
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted: bounds the hashing work one request can cause.
pub const MAX_PASSWORD_LEN: usize = 256;

/// One operator as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Operator {
    /// Login name.
    pub username: String,
    /// What the operator may do.
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// A disabled operator cannot log in and its tokens stop working.
    #[serde(default)]
    pub disabled: bool,
    /// Failed logins since the last success or lockout.
    #[serde(default)]
    pub failed_logins: u32,
    /// Unix seconds until which logins are refused.
    #[serde(default)]
    pub locked_until: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix milliseconds of the last password change; tokens issued before it stop working.
    pub password_changed_ms: i64,
    /// Unix milliseconds of the last disable: tokens issued before it stay ended when the
    /// operator is enabled again (0: never disabled).
    #[serde(default)]
    pub disabled_at_ms: i64,
}

impl Operator {
    /// Tokens issued before this instant (Unix ms) do not work: the last password change or
    /// disable.
    pub fn tokens_valid_from_ms(&self) -> i64 {
        self.password_changed_ms.max(self.disabled_at_ms)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct OperatorFile {
    operators: Vec<Operator>,
}

/// OWASP's Argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A username trimmed, if it is 1 to 64 of `A-Z a-z 0-9 . _ - @`.
pub(crate) fn check_username(name: &str) -> Result<String, AuthError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(name.to_string())
    } else {
        Err(AuthError::invalid(
            "username",
            "must be 1 to 64 characters of letters, digits and . _ - @",
        ))
    }
}

/// Checks a new password's length.
pub fn check_password(password: &str) -> Result<(), AuthError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&n) {
        return Err(AuthError::invalid(
            "password",
            format!("must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

/// Hashes a password (Argon2id, random salt) off the async threads.
pub async fn hash_password(password: &str) -> Result<String, AuthError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| AuthError::Internal(format!("password hashing task failed: {e}")))?
}

/// Whether `password` matches `phc`, off the async threads. A malformed hash never matches.
pub async fn password_matches(phc: String, password: &str) -> bool {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|parsed| {
                hasher()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of nothing anyone knows, verified for unknown users so that their login takes as
/// long as a real one (no account enumeration by timing).
pub(crate) async fn burn_a_verification(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = match DUMMY.get() {
        Some(h) => h.clone(),
        None => match hash_password("not-a-password-of-anyone").await {
            Ok(h) => DUMMY.get_or_init(|| h).clone(),
            Err(_) => return,
        },
    };
    password_matches(phc, password).await;
}

/// Creates an operator.
pub async fn create(
    meta: &dyn MetaStore,
    username: &str,
    role: Role,
    password: &str,
) -> Result<Operator, AuthError> {
    let username = check_username(username)?;
    check_password(password)?;
    let now = Utc::now().timestamp();
    let op = Operator {
        username,
        role,
        password_hash: hash_password(password).await?,
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        created_at: now,
        password_changed_ms: Utc::now().timestamp_millis(),
        disabled_at_ms: 0,
    };
    let stored = op.clone();
    records::update(meta, OPERATORS_RECORD, |file: &mut OperatorFile| {
        if file.operators.iter().any(|o| o.username == stored.username) {
            return Err(AuthError::Conflict(format!(
                "operator `{}` exists",
                stored.username
            )));
        }
        file.operators.push(stored.clone());
        Ok(())
    })
    .await?;
    Ok(op)
}

/// Every operator.
pub async fn list(meta: &dyn MetaStore) -> Result<Vec<Operator>, AuthError> {
    Ok(records::read::<OperatorFile>(meta, OPERATORS_RECORD)
        .await?
        .unwrap_or_default()
        .operators)
}

/// One operator by name.
pub async fn get(meta: &dyn MetaStore, username: &str) -> Result<Option<Operator>, AuthError> {
    let name = username.trim();
    Ok(list(meta).await?.into_iter().find(|o| o.username == name))
}

/// Applies `change` to one operator atomically.
pub(crate) async fn modify<R>(
    meta: &dyn MetaStore,
    username: &str,
    mut change: impl FnMut(&mut Operator) -> R,
) -> Result<R, AuthError> {
    let name = username.trim().to_string();
    records::update(meta, OPERATORS_RECORD, |file: &mut OperatorFile| {
        let op = file
            .operators
            .iter_mut()
            .find(|o| o.username == name)
            .ok_or_else(|| AuthError::OperatorNotFound(format!("no operator `{name}`")))?;
        Ok(change(op))
    })
    .await
}

/// Disables (or enables again) an operator; a disabled operator's tokens stop working, and
/// stay ended after an enable (the operator logs in again).
pub async fn set_disabled(
    meta: &dyn MetaStore,
    username: &str,
    disabled: bool,
) -> Result<Operator, AuthError> {
    modify(meta, username, |o| {
        if disabled && !o.disabled {
            o.disabled_at_ms = Utc::now().timestamp_millis();
        }
        o.disabled = disabled;
        o.clone()
    })
    .await
}

/// Sets a new password, clears the lockout, and ends every token issued before.
pub async fn reset_password(
    meta: &dyn MetaStore,
    username: &str,
    password: &str,
) -> Result<Operator, AuthError> {
    check_password(password)?;
    let hash = hash_password(password).await?;
    modify(meta, username, |o| {
        o.password_hash = hash.clone();
        o.password_changed_ms = Utc::now().timestamp_millis();
        o.failed_logins = 0;
        o.locked_until = None;
        o.clone()
    })
    .await
}
