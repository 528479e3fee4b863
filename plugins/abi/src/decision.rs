//! What a plugin decides about an event.

use std::fmt;

use serde::{Deserialize, Serialize};

/// HTTP status of a `deny` that names none.
pub const DEFAULT_DENY_STATUS: u16 = 403;

/// A plugin's decision about one event.
///
/// On the wire it is a MessagePack map tagged by its `decision` field, e.g.
/// `{"decision": "deny", "code": "IP_BLOCKED", "message": "address blocked", "status": 429}`.
/// A hook that returns `0` instead of a payload allows.
///
/// Across a plugin chain the most severe decision wins (`ban` > `deny` > `risk` > `flag`
/// > `allow`), risk deltas add up, and every non-allow decision is recorded as an event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Let it through.
    #[default]
    Allow,
    /// Refuse this request: the client gets `code` and `message` in the standard error shape.
    Deny {
        /// Machine-readable code, `UPPER_SNAKE` (1 to 64 of `A-Z`, `0-9`, `_`, starting
        /// with a letter).
        code: String,
        /// Human sentence for the client (at most 1024 bytes).
        #[serde(default)]
        message: String,
        /// HTTP status: 403 (default) or 429.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
    },
    /// Ban the license durably; its live sessions end with reason `banned`.
    Ban {
        /// Why (recorded with the ban; at most 1024 bytes).
        reason: String,
        /// How long, in seconds; absent means for good.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_secs: Option<u64>,
    },
    /// Record an event with this tag; the request goes on.
    Flag {
        /// Tag (1 to 64 of `a-z`, `0-9`, `_`, `-`, `.`, `:`).
        tag: String,
    },
    /// Add `delta` to the request's risk; the host denies when the chain's total reaches
    /// the configured threshold.
    Risk {
        /// Risk points (may be negative).
        delta: i64,
    },
}

/// Why a decision is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionError(pub String);

impl fmt::Display for DecisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecisionError {}

const MAX_TEXT: usize = 1024;

impl Decision {
    /// Builds a 403 `deny`.
    #[must_use]
    pub fn deny(code: impl Into<String>, message: impl Into<String>) -> Decision {
        Decision::Deny {
            code: code.into(),
            message: message.into(),
            status: None,
        }
    }

    /// Builds a 429 `deny` (the client should slow down).
    #[must_use]
    pub fn deny_too_many(code: impl Into<String>, message: impl Into<String>) -> Decision {
        Decision::Deny {
            code: code.into(),
            message: message.into(),
            status: Some(429),
        }
    }

    /// Builds a `ban`; `duration_secs: None` bans for good.
    #[must_use]
    pub fn ban(reason: impl Into<String>, duration_secs: Option<u64>) -> Decision {
        Decision::Ban {
            reason: reason.into(),
            duration_secs,
        }
    }

    /// Builds a `flag`.
    #[must_use]
    pub fn flag(tag: impl Into<String>) -> Decision {
        Decision::Flag { tag: tag.into() }
    }

    /// Builds a `risk`.
    #[must_use]
    pub const fn risk(delta: i64) -> Decision {
        Decision::Risk { delta }
    }

    /// Whether this is `allow`.
    #[must_use]
    pub const fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow)
    }

    /// Severity rank: allow 0, flag 1, risk 2, deny 3, ban 4.
    #[must_use]
    pub const fn severity(&self) -> u8 {
        match self {
            Decision::Allow => 0,
            Decision::Flag { .. } => 1,
            Decision::Risk { .. } => 2,
            Decision::Deny { .. } => 3,
            Decision::Ban { .. } => 4,
        }
    }

    /// The decision's name as on the wire (`allow`, `deny`, ...); also a metrics label.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny { .. } => "deny",
            Decision::Ban { .. } => "ban",
            Decision::Flag { .. } => "flag",
            Decision::Risk { .. } => "risk",
        }
    }

    /// The HTTP status of a `deny` (its `status` or 403); `None` for other decisions.
    #[must_use]
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Decision::Deny { status, .. } => Some(status.unwrap_or(DEFAULT_DENY_STATUS)),
            _ => None,
        }
    }

    /// Checks the documented limits (code and tag alphabets, text lengths, status 403/429,
    /// a ban duration of at least one second).
    ///
    /// # Errors
    /// A [`DecisionError`] naming the offending field.
    pub fn validate(&self) -> Result<(), DecisionError> {
        match self {
            Decision::Allow | Decision::Risk { .. } => Ok(()),
            Decision::Deny {
                code,
                message,
                status,
            } => {
                let code_ok = !code.is_empty()
                    && code.len() <= 64
                    && code.starts_with(|c: char| c.is_ascii_uppercase())
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                if !code_ok {
                    return Err(DecisionError(format!(
                        "deny.code `{}` must be 1 to 64 of A-Z, 0-9, _ starting with a letter",
                        truncate(code)
                    )));
                }
                if message.len() > MAX_TEXT {
                    return Err(DecisionError(
                        "deny.message is longer than 1024 bytes".into(),
                    ));
                }
                match status {
                    None | Some(403) | Some(429) => Ok(()),
                    Some(s) => Err(DecisionError(format!("deny.status {s} must be 403 or 429"))),
                }
            }
            Decision::Ban {
                reason,
                duration_secs,
            } => {
                if reason.len() > MAX_TEXT {
                    return Err(DecisionError("ban.reason is longer than 1024 bytes".into()));
                }
                if *duration_secs == Some(0) {
                    return Err(DecisionError(
                        "ban.duration_secs must be at least 1 (omit it to ban for good)".into(),
                    ));
                }
                Ok(())
            }
            Decision::Flag { tag } => {
                let ok = !tag.is_empty()
                    && tag.len() <= 64
                    && tag.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'_' | b'-' | b'.' | b':')
                    });
                if ok {
                    Ok(())
                } else {
                    Err(DecisionError(format!(
                        "flag.tag `{}` must be 1 to 64 of a-z, 0-9, _ - . :",
                        truncate(tag)
                    )))
                }
            }
        }
    }
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn decisions_serialize_tagged() {
        let d = Decision::deny_too_many("IP_BLOCKED", "slow down");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"decision":"deny","code":"IP_BLOCKED","message":"slow down","status":429}"#
        );
        let back: Decision = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        let allow: Decision = serde_json::from_str(r#"{"decision":"allow"}"#).unwrap();
        assert!(allow.is_allow());
        let ban: Decision = serde_json::from_str(r#"{"decision":"ban","reason":"x"}"#).unwrap();
        assert_eq!(ban, Decision::ban("x", None));
    }

    #[test]
    fn msgpack_roundtrip_of_every_decision() {
        for d in [
            Decision::Allow,
            Decision::deny("A", ""),
            Decision::ban("r", Some(60)),
            Decision::flag("t"),
            Decision::risk(-5),
        ] {
            let bytes = rmp_serde::to_vec_named(&d).unwrap();
            let back: Decision = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, d);
        }
    }

    #[test]
    fn validation_rejects_bad_fields() {
        assert!(Decision::deny("lower", "").validate().is_err());
        assert!(Decision::deny("", "").validate().is_err());
        assert!(Decision::deny("OK_1", "").validate().is_ok());
        let bad_status = Decision::Deny {
            code: "X".into(),
            message: String::new(),
            status: Some(500),
        };
        assert!(bad_status.validate().is_err());
        assert!(Decision::ban("r", Some(0)).validate().is_err());
        assert!(Decision::flag("Bad Tag").validate().is_err());
        assert!(Decision::flag("ip:suspicious").validate().is_ok());
    }

    #[test]
    fn severity_orders_ban_over_deny_over_risk() {
        assert!(Decision::ban("", None).severity() > Decision::deny("X", "").severity());
        assert!(Decision::deny("X", "").severity() > Decision::risk(1).severity());
        assert!(Decision::risk(1).severity() > Decision::flag("a").severity());
        assert_eq!(Decision::deny("X", "").http_status(), Some(403));
    }
}
