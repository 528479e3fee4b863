//! The hash of a record: SHA-256 over a canonical encoding of its content and the previous
//! record's hash, so the same record always hashes the same on every server and backend.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::audit::AuditRecord;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// JSON with object keys sorted at every level: the encoding is independent of map order.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash `record` must carry: of every field but `hash` itself.
pub fn hash_of(record: &AuditRecord) -> String {
    let content = serde_json::json!({
        "seq": record.seq,
        "at": record.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "actor": record.actor,
        "ip": record.ip,
        "action": record.action,
        "target": record.target,
        "summary": record.summary,
        "before": record.before,
        "after": record.after,
        "prev_hash": record.prev_hash,
    });
    let mut text = String::new();
    canonical(&content, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            seq: 1,
            at: Utc::now(),
            actor: "cli".into(),
            ip: None,
            action: "admin.license.edited".into(),
            target: Some("AAAA-BBBB".into()),
            summary: "license edited".into(),
            before: Some(json!({"b": 1, "a": 2})),
            after: json!({"note": "x"}),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_hash_covers_every_field_and_ignores_key_order() {
        let r = record();
        let h = hash_of(&r);
        assert_eq!(h.len(), 64);
        let mut reordered = r.clone();
        reordered.before = Some(serde_json::from_str(r#"{"a": 2, "b": 1}"#).unwrap_or_default());
        assert_eq!(hash_of(&reordered), h, "map order does not matter");
        type Change = Box<dyn Fn(&mut AuditRecord)>;
        let changes: Vec<Change> = vec![
            Box::new(|r| r.seq = 2),
            Box::new(|r| r.actor = "key:x".into()),
            Box::new(|r| r.ip = Some("10.0.0.1".into())),
            Box::new(|r| r.summary.push('!')),
            Box::new(|r| r.after = json!({"note": "y"})),
            Box::new(|r| r.prev_hash = "1".repeat(64)),
            Box::new(|r| r.at += chrono::Duration::nanoseconds(1)),
        ];
        for change in changes {
            let mut c = r.clone();
            change(&mut c);
            assert_ne!(hash_of(&c), h);
        }
    }

    #[test]
    fn a_record_round_trips_through_json_with_the_same_hash() {
        let r = record();
        let h = hash_of(&r);
        let back: AuditRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hash_of(&back), h);
    }
}
