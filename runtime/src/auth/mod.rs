//! Who may call what. Three kinds of caller, and no credential serves two of them:
//!
//! - client software: the system API key (`system_key.rs`), which ships inside client
//!   binaries and so is public in effect; it reaches the client API only;
//! - automation: admin API keys (`admin_keys.rs`, `tsa_…`), each with scopes (`scopes.rs`);
//! - people: operator accounts (`operators.rs`, Argon2id) that log in with seed 001's
//!   encrypted challenge login (`login.rs`, `login_keys.rs`) and get expiring bearer
//!   tokens (`tokens.rs`).
//!
//! `access.rs` says what each route requires and checks a caller against it; the route
//! table in `api/routes.rs` names one [`access::Access`] per route. `security.rs` holds the
//! security and emergency controls every server applies.

pub mod access;
pub mod admin_keys;
pub mod commands;
pub mod error;
pub mod login;
pub mod login_keys;
pub mod operators;
pub mod panel_cookie;
mod records;
pub mod scopes;
pub mod security;
pub mod system_key;
pub mod tokens;

use std::net::IpAddr;
use std::sync::Arc;

use tessera_config::{Config, SecurityConfig};
use tokio::sync::OnceCell;

use self::access::Caller;
pub use self::error::AuthError;
use self::login_keys::LoginKeys;
use self::scopes::Role;
use self::security::Security;
use crate::store::MetaStore;

/// A login as the client sent it.
#[derive(Debug)]
pub enum LoginAttempt {
    /// Seed 001's encrypted payload.
    Encrypted {
        /// Operator.
        username: String,
        /// base64 RSA-OAEP ciphertext of `"{nonce}:{ts}:{password}"`.
        encrypted_password: String,
        /// The challenge's nonce.
        login_nonce: String,
        /// The key encrypted to.
        key_id: String,
        /// The timestamp in the ciphertext, unix seconds.
        challenge_ts: i64,
    },
    /// `{username, password}`, only while encryption is not enforced.
    Plain {
        /// Operator.
        username: String,
        /// Password.
        password: String,
    },
}

/// A successful login.
#[derive(Debug)]
pub struct LoginSuccess {
    /// The bearer token (shown once).
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// The operator's role.
    pub role: Role,
    /// The operator.
    pub username: String,
}

/// The credential services of one server.
pub struct Auth {
    meta: Arc<dyn MetaStore>,
    config: parking_lot::RwLock<SecurityConfig>,
    /// Security and emergency controls.
    pub security: Security,
    login_keys: OnceCell<LoginKeys>,
    throttle: login::AddressThrottle,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// The services over `meta`.
    pub fn new(meta: Arc<dyn MetaStore>, config: &Config) -> Self {
        Self {
            security: Security::new(Arc::clone(&meta), &config.security),
            meta,
            config: parking_lot::RwLock::new(config.security.clone()),
            login_keys: OnceCell::new(),
            throttle: login::AddressThrottle::default(),
        }
    }

    /// Applies a reloaded `[security]`: the controls' defaults, the lockout, the address
    /// throttle and the lifetime of tokens issued from now on.
    pub fn reconfigure(&self, config: &SecurityConfig) {
        self.security.set_defaults(config);
        *self.config.write() = config.clone();
    }

    /// The meta store credentials live in.
    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    /// The login keys, generated on first use of a fresh store and then kept.
    pub async fn login_keys(&self) -> Result<&LoginKeys, AuthError> {
        self.login_keys
            .get_or_try_init(|| login_keys::ensure(self.meta.as_ref()))
            .await
    }

    /// A login challenge for `username`, with the current key's id and public key.
    pub async fn challenge(
        &self,
        username: &str,
    ) -> Result<(login::Challenge, String, String), AuthError> {
        let window = self.security.current().await?.settings.replay_window_secs;
        let keys = self.login_keys().await?;
        let current = keys
            .current()
            .ok_or_else(|| AuthError::Internal("no login key".into()))?;
        let c = login::challenge(keys, username, window)?;
        Ok((c, current.key_id.clone(), current.public_pem.clone()))
    }

    /// Checks a login and issues a token. Counts failures per account (lockout after
    /// `max_login_attempts`) and per address.
    pub async fn login(
        &self,
        attempt: LoginAttempt,
        ip: IpAddr,
    ) -> Result<LoginSuccess, AuthError> {
        let state = self.security.current().await?;
        let settings = &state.settings;
        let (username, password) = match attempt {
            LoginAttempt::Plain { username, password } => {
                if settings.enforce_login_payload_encryption {
                    return Err(AuthError::EncryptionRequired);
                }
                (username, password)
            }
            LoginAttempt::Encrypted {
                username,
                encrypted_password,
                login_nonce,
                key_id,
                challenge_ts,
            } => {
                let window = settings.replay_window_secs;
                let now = chrono::Utc::now().timestamp();
                if now.abs_diff(challenge_ts) > window {
                    return Err(AuthError::Challenge(format!(
                        "challenge_ts is more than {window} s from the server's clock"
                    )));
                }
                let keys = self.login_keys().await?;
                login::check_nonce(keys, &login_nonce, &username, window)?;
                let password = login::decrypt_password(
                    keys,
                    &key_id,
                    &encrypted_password,
                    &login_nonce,
                    challenge_ts,
                )?;
                let until = now.saturating_add(i64::try_from(window).unwrap_or(i64::MAX));
                login::claim_nonce(self.meta.as_ref(), &login_nonce, until).await?;
                (username, password)
            }
        };
        if password.len() > operators::MAX_PASSWORD_LEN * 4 {
            return Err(AuthError::Credentials);
        }
        let (lockout, address_max_failures, token_ttl) = {
            let c = self.config.read();
            (c.lockout, c.address_max_failures, c.token_ttl)
        };
        if self.throttle.blocked(ip, address_max_failures, lockout) {
            operators::burn_a_verification(&password).await;
            return Err(AuthError::Credentials);
        }
        let now = chrono::Utc::now().timestamp();
        let op = match operators::get(self.meta.as_ref(), &username).await? {
            Some(op) if !op.disabled && op.locked_until.is_none_or(|t| t <= now) => op,
            _ => {
                operators::burn_a_verification(&password).await;
                self.throttle.failed(ip, lockout);
                return Err(AuthError::Credentials);
            }
        };
        if !operators::password_matches(op.password_hash.clone(), &password).await {
            self.throttle.failed(ip, lockout);
            let max = settings.max_login_attempts;
            let lock_secs = i64::try_from(lockout.as_secs()).unwrap_or(i64::MAX);
            operators::modify(self.meta.as_ref(), &op.username, |o| {
                o.failed_logins = o.failed_logins.saturating_add(1);
                if o.failed_logins >= max {
                    o.failed_logins = 0;
                    o.locked_until = Some(chrono::Utc::now().timestamp().saturating_add(lock_secs));
                }
            })
            .await?;
            return Err(AuthError::Credentials);
        }
        self.throttle.succeeded(ip);
        if op.failed_logins > 0 || op.locked_until.is_some() {
            operators::modify(self.meta.as_ref(), &op.username, |o| {
                o.failed_logins = 0;
                o.locked_until = None;
            })
            .await?;
        }
        let (token, expires_at) =
            tokens::issue(self.meta.as_ref(), &op.username, token_ttl.as_secs()).await?;
        Ok(LoginSuccess {
            token,
            expires_at,
            role: op.role,
            username: op.username,
        })
    }

    /// The caller a bearer credential stands for, or `None` when it authenticates nobody.
    pub async fn bearer(&self, credential: &str) -> Result<Option<Caller>, AuthError> {
        let credential = credential.trim();
        if credential.starts_with(admin_keys::ADMIN_KEY_PREFIX) {
            return Ok(admin_keys::verify(self.meta.as_ref(), credential)
                .await?
                .map(Caller::Key));
        }
        let epoch = self.security.current().await?.reauth_epoch_ms;
        Ok(tokens::resolve(self.meta.as_ref(), credential, epoch)
            .await?
            .map(Caller::Operator))
    }
}
