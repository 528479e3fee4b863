//! Seed 001's operator login: a challenge (nonce, key id, expiry, the RSA public key), then
//! a login whose password arrives RSA-OAEP (SHA-256, MGF1-SHA-256) encrypted over
//! `"{login_nonce}:{challenge_ts}:{password}"`.
//!
//! Nonces are not stored when issued: a nonce is `issued_at ‖ random ‖ HMAC(secret,
//! issued_at ‖ random ‖ username)`, so any server sharing the store can check that it issued
//! it, for this username, and when. A nonce is stored only when a login uses it, so it
//! works once. Every failure that could tell an attacker whether an account exists answers
//! the same way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use rand::TryRngCore;
use rand::rngs::OsRng;
use rsa::Oaep;
use sha2::Sha256;

use super::error::AuthError;
use super::login_keys::LoginKeys;
use crate::http::rate_limit::client_bucket;
use crate::store::MetaStore;

type HmacSha256 = Hmac<Sha256>;

/// Longest encrypted password accepted (base64 of one 4096-bit RSA block with room).
pub const MAX_ENCRYPTED_LEN: usize = 1024;

/// A challenge as `GET /api/auth/challenge` answers it.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Hex nonce.
    pub nonce: String,
    /// Unix seconds.
    pub expires_at: i64,
}

fn mac(secret: &[u8], issued: i64, random: &[u8], username: &str) -> Result<Vec<u8>, AuthError> {
    let mut m = HmacSha256::new_from_slice(secret)
        .map_err(|e| AuthError::Internal(format!("nonce key: {e}")))?;
    m.update(&issued.to_be_bytes());
    m.update(random);
    m.update(username.trim().as_bytes());
    Ok(m.finalize().into_bytes()[..16].to_vec())
}

/// A new challenge for `username` (known or not: the answer looks the same).
pub fn challenge(
    keys: &LoginKeys,
    username: &str,
    window_secs: u64,
) -> Result<Challenge, AuthError> {
    let issued = Utc::now().timestamp();
    let mut random = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut random)
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    let tag = mac(&keys.nonce_secret(), issued, &random, username)?;
    let mut raw = issued.to_be_bytes().to_vec();
    raw.extend_from_slice(&random);
    raw.extend_from_slice(&tag);
    Ok(Challenge {
        nonce: hex::encode(raw),
        expires_at: issued.saturating_add(i64::try_from(window_secs).unwrap_or(i64::MAX)),
    })
}

/// Checks that we issued `nonce` for `username` and that it has not expired.
pub fn check_nonce(
    keys: &LoginKeys,
    nonce: &str,
    username: &str,
    window_secs: u64,
) -> Result<(), AuthError> {
    let bad = || AuthError::Challenge("the login challenge is unknown or expired".into());
    let raw = hex::decode(nonce.trim()).map_err(|_| bad())?;
    if raw.len() != 8 + 16 + 16 {
        return Err(bad());
    }
    let issued = i64::from_be_bytes(raw[..8].try_into().map_err(|_| bad())?);
    let expected = mac(&keys.nonce_secret(), issued, &raw[8..24], username)?;
    let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_slice(), &raw[24..]).into();
    let age = Utc::now().timestamp().saturating_sub(issued);
    if !same || age < -5 || age > i64::try_from(window_secs).unwrap_or(i64::MAX) {
        return Err(bad());
    }
    Ok(())
}

/// Meta-store key of the nonces used within their replay window.
pub const USED_NONCES_RECORD: &str = "login_nonces_used";

/// Marks `nonce` used until `expires_at` (unix seconds); `Err` if a login used it before, on
/// any server sharing the store. Expired entries are dropped on every claim, so the record
/// holds only the logins of one replay window.
pub async fn claim_nonce(
    meta: &dyn MetaStore,
    nonce: &str,
    expires_at: i64,
) -> Result<(), AuthError> {
    let nonce = nonce.trim().to_string();
    let now = Utc::now().timestamp();
    super::records::update(
        meta,
        USED_NONCES_RECORD,
        |used: &mut std::collections::BTreeMap<String, i64>| {
            used.retain(|_, until| *until >= now);
            if used.contains_key(&nonce) {
                return Err(AuthError::Challenge(
                    "the login challenge was already used".into(),
                ));
            }
            used.insert(nonce.clone(), expires_at);
            Ok(())
        },
    )
    .await
}

/// Decrypts `encrypted_password` with the key `key_id` and checks that the plaintext is
/// `"{nonce}:{ts}:{password}"` with the same nonce and timestamp as the plain fields.
/// Returns the password.
pub fn decrypt_password(
    keys: &LoginKeys,
    key_id: &str,
    encrypted_b64: &str,
    nonce: &str,
    challenge_ts: i64,
) -> Result<String, AuthError> {
    let bad = |why: &str| AuthError::Challenge(format!("the encrypted password {why}"));
    if encrypted_b64.len() > MAX_ENCRYPTED_LEN {
        return Err(bad("is too long"));
    }
    let private = keys
        .private(key_id.trim())
        .ok_or_else(|| AuthError::Challenge(format!("unknown key_id `{}`", key_id.trim())))?;
    let cipher = STANDARD
        .decode(encrypted_b64.trim())
        .map_err(|_| bad("is not base64"))?;
    let plain = private
        .decrypt(Oaep::new::<Sha256>(), &cipher)
        .map_err(|_| bad("does not decrypt with this key (RSA-OAEP, SHA-256)"))?;
    let text = String::from_utf8(plain).map_err(|_| bad("is not UTF-8"))?;
    let mut parts = text.splitn(3, ':');
    let (Some(n), Some(ts), Some(password)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("is not \"{nonce}:{ts}:{password}\""));
    };
    if n != nonce.trim() || ts != challenge_ts.to_string() {
        return Err(bad("does not match login_nonce and challenge_ts"));
    }
    Ok(password.to_string())
}

/// Failed logins per client address (grouped as the rate limits group them: IPv6 by /64),
/// across accounts: an address that fails
/// too often is refused for the lockout time, whatever account it tries next. Per server.
#[derive(Debug, Default)]
pub struct AddressThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AddressThrottle {
    /// Whether `ip` is refused now (`max` failures within the last `window`).
    pub fn blocked(&self, ip: IpAddr, max: u32, window: Duration) -> bool {
        let bucket = client_bucket(ip);
        let mut map = self.failures.lock();
        match map.get(&bucket) {
            Some((n, since)) if since.elapsed() < window => *n >= max,
            Some(_) => {
                map.remove(&bucket);
                false
            }
            None => false,
        }
    }

    /// Counts one failure of `ip`.
    pub fn failed(&self, ip: IpAddr, window: Duration) {
        let mut map = self.failures.lock();
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = map.entry(client_bucket(ip)).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= window {
            *entry = (0, Instant::now());
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Forgets `ip`'s failures (after a success).
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures.lock().remove(&client_bucket(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> LoginKeys {
        LoginKeys {
            keys: Vec::new(),
            nonce_secret: hex::encode([7u8; 32]),
        }
    }

    #[test]
    fn a_nonce_is_good_only_for_its_username_and_untampered() {
        let k = keys();
        let c = challenge(&k, "alice", 120).map_err(|e| e.to_string());
        let Ok(c) = c else { panic!("{c:?}") };
        assert!(check_nonce(&k, &c.nonce, "alice", 120).is_ok());
        assert!(check_nonce(&k, &c.nonce, "bob", 120).is_err());
        let mut tampered = c.nonce.clone().into_bytes();
        tampered[20] = if tampered[20] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert!(check_nonce(&k, &tampered, "alice", 120).is_err());
        assert!(check_nonce(&k, "zz", "alice", 120).is_err());
    }

    #[test]
    fn an_address_is_blocked_after_its_failures_and_v6_groups_by_64() {
        let t = AddressThrottle::default();
        let w = Duration::from_secs(60);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(IpAddr::from([0u8; 4]));
        let b: IpAddr = "2001:db8:1:2::ffff"
            .parse()
            .unwrap_or(IpAddr::from([0u8; 4]));
        for _ in 0..3 {
            assert!(!t.blocked(a, 3, w));
            t.failed(a, w);
        }
        assert!(t.blocked(b, 3, w), "same /64 shares the count");
        t.succeeded(b);
        assert!(!t.blocked(a, 3, w));
    }
}
