//! Endpoints: where deliveries go, which events they want and in which format. One record
//! per endpoint in the catalog store (kind `webhook_endpoint`, id = the zero-padded number),
//! written by compare-and-swap, so every server sharing the store sees the same endpoints and
//! no two changes lose each other.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::WebhookError;
use super::secret::Secrets;

/// Most event types one endpoint lists.
pub const MAX_EVENT_TYPES: usize = 64;
/// Longest event type or prefix.
pub const MAX_EVENT_TYPE_LEN: usize = 100;
/// Most endpoints a store holds.
pub const MAX_ENDPOINTS: usize = 100;

/// The body a delivery carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `{"type", "timestamp", "data"}`: the Standard Webhooks envelope around seed 001's
    /// event fields.
    #[default]
    Json,
    /// A Discord-compatible `{"embeds": [...]}` (still signed).
    Discord,
}

impl Format {
    /// `json` or `discord`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Discord => "discord",
        }
    }
}

/// A stored endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Numeric id.
    pub id: u64,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Types or prefixes ending in `.`; empty: every event.
    pub event_types: Vec<String>,
    /// The body's form.
    pub format: Format,
    /// Disabled endpoints get no new deliveries; their pending ones fail.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed by an operator.
    pub updated_at: DateTime<Utc>,
    /// Signing secrets.
    pub secrets: Secrets,
    /// Since when every attempt has failed (none since a success), if one has.
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
    /// Why the server disabled it, if it did.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// Deleted: its deliveries are being removed, then the record goes too. Invisible to
    /// every operation.
    #[serde(default)]
    pub deleted: bool,
}

impl Endpoint {
    /// Whether it wants an event of `event_type`: its list is empty, names the type, or holds
    /// a prefix ending in `.` that the type starts with.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty()
            || self.event_types.iter().any(|t| {
                t == event_type || (t.ends_with('.') && event_type.starts_with(t.as_str()))
            })
    }

    /// Whether new deliveries are made for it.
    pub fn active(&self) -> bool {
        self.enabled && !self.deleted
    }

    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record from its bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, WebhookError> {
        serde_json::from_slice(bytes).map_err(|e| WebhookError::Corrupt(format!("endpoint: {e}")))
    }

    /// What operators see (never a secret).
    pub fn view(&self, now: DateTime<Utc>) -> EndpointView {
        EndpointView {
            id: self.id,
            url: self.url.clone(),
            event_types: self.event_types.clone(),
            format: self.format,
            enabled: self.enabled,
            created_at: self.created_at,
            updated_at: self.updated_at,
            failing_since: self.failing_since,
            disabled_reason: self.disabled_reason.clone(),
            previous_secret_valid_until: self.secrets.previous_valid_until(now),
        }
    }
}

/// Checks and normalizes an event-type list: each a dotted type (`session.ended`) or a prefix
/// ending in `.` (`session.`), of letters, digits, `_`, `-` and `.`, lower-cased, each once.
pub fn check_event_types(types: &[String]) -> Result<Vec<String>, WebhookError> {
    let bad = |m: String| WebhookError::invalid("event_types", m);
    if types.len() > MAX_EVENT_TYPES {
        return Err(bad(format!("at most {MAX_EVENT_TYPES} entries")));
    }
    let mut out: Vec<String> = Vec::with_capacity(types.len());
    for t in types {
        let t = t.trim().to_ascii_lowercase();
        if t.is_empty() || t.len() > MAX_EVENT_TYPE_LEN {
            return Err(bad(format!(
                "each entry is 1 to {MAX_EVENT_TYPE_LEN} characters"
            )));
        }
        let ok_chars = t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok_chars || t.starts_with('.') || t.contains("..") {
            return Err(bad(format!(
                "`{t}` is not an event type (`session.ended`) or a prefix ending in `.` \
                 (`session.`)"
            )));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// `POST /api/admin/webhooks` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// An `http` or `https` URL; its host must not be internal unless
    /// `webhooks.allow_private_targets`.
    pub url: String,
    /// Types (`session.ended`) or prefixes ending in `.` (`session.`); empty or absent: every
    /// event.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// `json` (default) or `discord`.
    #[serde(default)]
    pub format: Format,
}

/// `PATCH /api/admin/webhooks/{id}` body: absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    /// A new URL (checked like at creation).
    #[serde(default)]
    pub url: Option<String>,
    /// A new filter (empty: every event).
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// A new format.
    #[serde(default)]
    pub format: Option<Format>,
    /// Enable or disable; enabling clears the failure streak and the reason it was disabled.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// An endpoint as operators see it. The secret is shown once, at creation and rotation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EndpointView {
    /// Numeric id.
    pub id: u64,
    /// Where deliveries go.
    pub url: String,
    /// Types or prefixes ending in `.`; empty: every event.
    pub event_types: Vec<String>,
    /// `json` or `discord`.
    pub format: Format,
    /// Whether it gets deliveries.
    pub enabled: bool,
    /// Created (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// Last changed by an operator.
    pub updated_at: DateTime<Utc>,
    /// Since when its deliveries have failed without a success in between, if they have.
    pub failing_since: Option<DateTime<Utc>>,
    /// Why the server disabled it (it failed for `webhooks.disable_after_secs`), if it did.
    pub disabled_reason: Option<String>,
    /// While a rotated-out secret still signs: until when.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
}

/// `POST /api/admin/webhooks` reply: the endpoint and its secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    /// The signing secret (`whsec_…`); store it now, it is not shown again.
    pub secret: String,
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointView,
}

/// `POST /api/admin/webhooks/{id}/rotate-secret` reply.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new signing secret (`whsec_…`), shown this once.
    pub secret: String,
    /// Until when the previous secret signs too (deliveries carry both signatures); `null`
    /// when the rotation asked for no overlap.
    pub previous_valid_until: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(types: &[&str]) -> Endpoint {
        let now = Utc::now();
        Endpoint {
            id: 1,
            url: "https://example.com/hook".into(),
            event_types: types.iter().map(|s| s.to_string()).collect(),
            format: Format::Json,
            enabled: true,
            created_at: now,
            updated_at: now,
            secrets: Secrets::generate(),
            failing_since: None,
            disabled_reason: None,
            deleted: false,
        }
    }

    #[test]
    fn filters_match_types_and_dotted_prefixes() {
        assert!(endpoint(&[]).wants("anything.at_all"));
        let e = endpoint(&["session.", "license.banned"]);
        assert!(e.wants("session.ended"));
        assert!(e.wants("license.banned"));
        assert!(!e.wants("license.banned_for_real"));
        assert!(!e.wants("license.activated"));
        assert!(!endpoint(&["session"]).wants("session.ended"));
    }

    #[test]
    fn event_type_lists_are_checked_and_normalized() {
        let ok = check_event_types(&[" Session. ".into(), "session.".into(), "a_b-c.d".into()]);
        assert_eq!(ok.ok(), Some(vec!["session.".into(), "a_b-c.d".into()]));
        for bad in ["", ".x", "a..b", "a b", "a/b", "ä"] {
            assert!(check_event_types(&[bad.into()]).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_EVENT_TYPES).map(|i| format!("t{i}")).collect();
        assert!(check_event_types(&many).is_err());
    }

    #[test]
    fn records_round_trip_and_views_hide_the_secret() {
        let e = endpoint(&["session."]);
        assert_eq!(Endpoint::decode(&e.encode()).ok(), Some(e.clone()));
        let view = serde_json::to_string(&e.view(Utc::now())).unwrap_or_default();
        assert!(!view.contains("whsec_"), "{view}");
    }
}
