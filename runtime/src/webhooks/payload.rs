//! What a delivery carries, rendered once when the delivery is made (retries send the same
//! bytes):
//!
//! - `json`: the Standard Webhooks envelope `{"type", "timestamp", "data"}`, `type` the event
//!   type, `timestamp` when it happened (RFC 3339), `data` seed 001's event fields
//!   (`created_at` in unix seconds, as seed 001 shows it);
//! - `discord`: `{"embeds": [{title, description, color, timestamp, fields, footer}]}`, within
//!   Discord's limits, colored by severity; license keys are masked there (a chat channel is
//!   no place for a credential).

use serde_json::{Map, Value, json};

use super::endpoint::Format;
use crate::events::{Event, Severity};

/// Discord's limits: title, description, field name, field value, fields per embed.
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4_096;
const FIELD_NAME_MAX: usize = 256;
const FIELD_VALUE_MAX: usize = 1_024;
const FIELDS_MAX: usize = 25;

/// The body for `event` in `format`.
pub fn render(format: Format, event: &Event) -> String {
    let body = match format {
        Format::Json => json_body(event),
        Format::Discord => discord_body(event),
    };
    body.to_string()
}

/// Seed 001's fields of an event, as webhooks and the event log show them.
pub fn seed_fields(event: &Event) -> Value {
    json!({
        "id": event.id,
        "event_type": event.event_type,
        "severity": event.severity,
        "summary": event.summary,
        "actor": event.actor,
        "ip": event.ip,
        "license": event.license,
        "app_id": event.app_id,
        "risk": event.risk,
        "created_at": event.created_at.timestamp(),
        "data": event.data,
    })
}

fn rfc3339(event: &Event) -> String {
    event
        .created_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn json_body(event: &Event) -> Value {
    json!({
        "type": event.event_type,
        "timestamp": rfc3339(event),
        "data": seed_fields(event),
    })
}

/// Discord colors: info blue, warning amber, critical red.
pub fn color(severity: Severity) -> u32 {
    match severity {
        Severity::Info => 0x3498db,
        Severity::Warning => 0xf1c40f,
        Severity::Critical => 0xe74c3c,
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `ABCD-…-WXYZ` for a license key, as the logs show it.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "…".to_owned();
    }
    let head: String = chars.iter().take(4).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}-…-{tail}")
}

fn discord_body(event: &Event) -> Value {
    let mut fields = Vec::new();
    let mut field = |name: &str, value: String, inline: bool| {
        if fields.len() < FIELDS_MAX && !value.is_empty() {
            fields.push(json!({
                "name": cut(name, FIELD_NAME_MAX),
                "value": cut(&value, FIELD_VALUE_MAX),
                "inline": inline,
            }));
        }
    };
    field("Severity", event.severity.as_str().to_owned(), true);
    if let Some(l) = &event.license {
        field("License", masked(l), true);
    }
    if let Some(a) = &event.app_id {
        field("Product", a.clone(), true);
    }
    if let Some(a) = &event.actor {
        field("Actor", a.clone(), true);
    }
    if let Some(ip) = &event.ip {
        field("IP", ip.clone(), true);
    }
    if event.risk > 0 {
        field("Risk", event.risk.to_string(), true);
    }
    if let Value::Object(data) = &event.data {
        for (k, v) in data {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            field(k, text, false);
        }
    }
    let mut embed = Map::new();
    embed.insert("title".into(), cut(&event.event_type, TITLE_MAX).into());
    embed.insert(
        "description".into(),
        cut(&event.summary, DESCRIPTION_MAX).into(),
    );
    embed.insert("color".into(), color(event.severity).into());
    embed.insert("timestamp".into(), rfc3339(event).into());
    embed.insert("fields".into(), Value::Array(fields));
    embed.insert(
        "footer".into(),
        json!({ "text": cut(&format!("Tessera · event {}", event.id), FIELD_VALUE_MAX) }),
    );
    json!({ "embeds": [Value::Object(embed)] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventId, NewEvent};

    fn event() -> Event {
        let mut e = NewEvent::new("session.ended", Severity::Warning, "session ended")
            .actor("system")
            .app_id("app_123")
            .data(json!({"reason": "timeout", "session_id": "abc", "gone": null}));
        e.license = Some("ABCD-EFGH-JKMN-PQRS".into());
        e.stored(EventId { ms: 1, seq: 2 })
    }

    #[test]
    fn json_is_the_standard_envelope_around_seed_001_fields() {
        let e = event();
        let body: Value = serde_json::from_str(&render(Format::Json, &e)).unwrap_or_default();
        assert_eq!(body["type"], "session.ended");
        assert_eq!(body["timestamp"], rfc3339(&e));
        let data = &body["data"];
        assert_eq!(data["event_type"], "session.ended");
        assert_eq!(data["severity"], "warning");
        assert_eq!(data["summary"], "session ended");
        assert_eq!(data["actor"], "system");
        assert_eq!(data["app_id"], "app_123");
        assert_eq!(data["created_at"], e.created_at.timestamp());
        assert_eq!(data["license"], "ABCD-EFGH-JKMN-PQRS");
        assert_eq!(data["data"]["reason"], "timeout");
    }

    #[test]
    fn discord_is_one_embed_within_limits_with_the_key_masked() {
        let mut e = event();
        e.summary = "x".repeat(5_000);
        let body: Value = serde_json::from_str(&render(Format::Discord, &e)).unwrap_or_default();
        let embed = &body["embeds"][0];
        assert_eq!(embed["title"], "session.ended");
        assert_eq!(embed["color"], 0xf1c40f);
        assert_eq!(
            embed["description"].as_str().map(|s| s.chars().count()),
            Some(DESCRIPTION_MAX)
        );
        let fields = embed["fields"].as_array().cloned().unwrap_or_default();
        let named = |n: &str| {
            fields
                .iter()
                .find(|f| f["name"] == n)
                .map(|f| f["value"].clone())
        };
        assert_eq!(named("License"), Some(json!("ABCD-…-PQRS")));
        assert_eq!(named("reason"), Some(json!("timeout")));
        assert_eq!(named("gone"), None);
        assert!(!body.to_string().contains("EFGH"));
    }
}
