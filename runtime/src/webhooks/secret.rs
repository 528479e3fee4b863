//! Signing secrets and signatures, per the Standard Webhooks specification: a secret is
//! `whsec_` and the base64 of 32 random bytes; a delivery carries
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`,
//! one `v1,…` per valid secret, separated by spaces. The `standardwebhooks` crate computes
//! each signature.
//!
//! Unlike the API keys and tokens, which are kept as SHA-256, a signing secret is an HMAC key
//! the server must use: it is stored as is, in the endpoint's record in the catalog store,
//! readable by whoever can read that store (the `tessera.redb` file, or the Redis database).
//! It is shown once, at creation and at rotation, and never listed or logged.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use rand::{RngCore, TryRngCore};
use serde::{Deserialize, Serialize};

/// What a secret starts with.
pub const PREFIX: &str = "whsec_";

/// How long a rotated-out secret keeps signing unless the rotation says otherwise: 24 h.
pub const DEFAULT_OVERLAP_SECS: u64 = 24 * 3600;

/// The longest overlap a rotation may ask for: 30 days.
pub const MAX_OVERLAP_SECS: u64 = 30 * 86_400;

/// A fresh secret from the OS's CSPRNG.
pub fn generate() -> String {
    let mut key = [0u8; 32];
    OsRng.unwrap_err().fill_bytes(&mut key);
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// An endpoint's secrets: the current one, and the one it replaced while that still signs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    current: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<Previous>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Previous {
    secret: String,
    valid_until: DateTime<Utc>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// A new, single secret.
    pub fn generate() -> Self {
        Self {
            current: generate(),
            previous: None,
        }
    }

    /// The current secret (to show once).
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Replaces the current secret with a fresh one; the replaced one keeps signing until
    /// `now + overlap` (not at all for a zero overlap). A secret rotated out earlier, still in
    /// its overlap, stops signing now: at most two secrets sign at once. Returns the new
    /// secret and the old one's end.
    pub fn rotate(
        &mut self,
        now: DateTime<Utc>,
        overlap: chrono::Duration,
    ) -> (String, Option<DateTime<Utc>>) {
        let old = std::mem::replace(&mut self.current, generate());
        self.previous = (overlap > chrono::Duration::zero()).then(|| Previous {
            secret: old,
            valid_until: now + overlap,
        });
        (
            self.current.clone(),
            self.previous.as_ref().map(|p| p.valid_until),
        )
    }

    /// Until when the previous secret still signs, if it does at `now`.
    pub fn previous_valid_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.previous
            .as_ref()
            .filter(|p| now < p.valid_until)
            .map(|p| p.valid_until)
    }

    /// The secrets that sign at `now`: the current one, then the previous one in its overlap.
    pub fn signing(&self, now: DateTime<Utc>) -> Vec<&str> {
        let previous = self
            .previous
            .as_ref()
            .filter(|p| now < p.valid_until)
            .map(|p| p.secret.as_str());
        std::iter::once(self.current.as_str())
            .chain(previous)
            .collect()
    }
}

/// The `webhook-signature` value for `body` sent as `msg_id` at `timestamp` (unix seconds):
/// `v1,<sig>` per secret, space-separated. Fails only for a secret that is not base64 (a
/// corrupt record).
pub fn signature(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, String> {
    let mut out = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let wh = standardwebhooks::Webhook::new(secret)
            .map_err(|e| format!("stored signing secret is unusable: {e}"))?;
        out.push(
            wh.sign(msg_id, timestamp, body.as_bytes())
                .map_err(|e| format!("signing failed: {e}"))?,
        );
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_and_32_random_bytes() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        let raw = a.strip_prefix(PREFIX).unwrap_or_default();
        assert_eq!(STANDARD.decode(raw).map(|k| k.len()).ok(), Some(32));
    }

    #[test]
    fn a_signature_is_the_hmac_of_id_timestamp_and_body() {
        use hmac::{Hmac, Mac};
        let secret = generate();
        let key = STANDARD
            .decode(secret.strip_prefix(PREFIX).unwrap_or_default())
            .unwrap_or_default();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap_or_else(|e| panic!("{e}"));
        mac.update(b"msg_1.1700000000.{\"a\":1}");
        let want = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        let got = signature(&[&secret], "msg_1", 1_700_000_000, "{\"a\":1}");
        assert_eq!(got.as_deref(), Ok(want.as_str()));
    }

    #[test]
    fn rotation_keeps_the_old_secret_signing_for_the_overlap_only() {
        let t0 = Utc::now();
        let mut s = Secrets::generate();
        let first = s.current().to_owned();
        assert_eq!(s.signing(t0), vec![first.as_str()]);
        let (second, until) = s.rotate(t0, chrono::Duration::hours(24));
        assert_eq!(until, Some(t0 + chrono::Duration::hours(24)));
        assert_eq!(s.signing(t0), vec![second.as_str(), first.as_str()]);
        let later = t0 + chrono::Duration::hours(25);
        assert_eq!(s.signing(later), vec![second.as_str()]);
        assert_eq!(s.previous_valid_until(later), None);
        let (third, none) = s.rotate(t0, chrono::Duration::zero());
        assert_eq!(none, None);
        assert_eq!(s.signing(t0), vec![third.as_str()]);
        let sig = signature(&s.signing(t0), "m", 1, "x").unwrap_or_default();
        assert_eq!(sig.split(' ').count(), 1);
        assert!(
            !format!("{s:?}").contains(PREFIX),
            "Debug never shows a secret"
        );
    }
}
