//! Meta records (the system API key's hash, credentials, operators, admin keys, security
//! controls, login keys, statistics, the audit anchor, ...) copied blob by blob, and durable
//! plugin keys, which the two backends keep differently: the embedded store as one meta blob
//! per plugin (`plugin_kv/<name>`, see `policy::kv`), Redis as one key per plugin key (the
//! shared plugin KV). Each is converted to the target's form.

use std::collections::BTreeMap;

use super::endpoint::Opened;
use super::pass::{MigrateError, Pass};
use super::tally::{Tally, Verdict};
use crate::policy::kv::{blob_name, blob_namespace, decode_blob, encode_blob};
use crate::store::transfer::PluginKvEntry;

pub(super) async fn pass(
    src: &Opened,
    dst: &Opened,
    pass: Pass,
    tally: &mut Tally,
) -> Result<(), MigrateError> {
    let mut plugin_keys: Vec<PluginKvEntry> = src.transfer.plugin_kv_entries().await?;
    for name in src.transfer.meta_names().await? {
        let Some(value) = src.meta.get(&name).await? else {
            continue;
        };
        if let Some(ns) = blob_namespace(&name) {
            let entries = decode_blob(ns, &value)
                .map_err(|e| MigrateError::Source(format!("plugin KV blob {name}: {e}")))?;
            plugin_keys.extend(entries);
            continue;
        }
        let there = dst.meta.get(&name).await?;
        let verdict = match &there {
            None => Verdict::New,
            Some(v) if *v == value => Verdict::Same,
            Some(_) => Verdict::Conflict,
        };
        tally.saw("meta records", verdict, || name.clone());
        if pass.writes(verdict)
            && !dst
                .meta
                .compare_and_swap(&name, there.as_deref(), Some(&value))
                .await?
        {
            return Err(MigrateError::Raced(format!("meta {name}")));
        }
    }
    plugin_kv(dst, plugin_keys, pass, tally).await
}

/// Durable plugin keys into the target's form.
async fn plugin_kv(
    dst: &Opened,
    entries: Vec<PluginKvEntry>,
    pass: Pass,
    tally: &mut Tally,
) -> Result<(), MigrateError> {
    let now = chrono::Utc::now().timestamp_millis();
    let live = entries
        .into_iter()
        .filter(|e| e.expires_at_ms.is_none_or(|t| t > now));
    if let Some(kv) = &dst.shared_kv {
        for e in live {
            let there = kv.kv_get(&e.namespace, &e.key).await?;
            let verdict = match &there {
                None => Verdict::New,
                Some(v) if *v == e.value => Verdict::Same,
                Some(_) => Verdict::Conflict,
            };
            tally.saw("plugin keys", verdict, || {
                format!("{}:{}", e.namespace, hex::encode(&e.key))
            });
            if pass.writes(verdict) {
                kv.kv_set(&e.namespace, &e.key, &e.value, e.expires_at_ms)
                    .await?;
            }
        }
        return Ok(());
    }
    let mut by_plugin: BTreeMap<String, Vec<PluginKvEntry>> = BTreeMap::new();
    for e in live {
        by_plugin.entry(e.namespace.clone()).or_default().push(e);
    }
    for (ns, mut entries) in by_plugin {
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let name = blob_name(&ns);
        let there_blob = dst.meta.get(&name).await?;
        let there: BTreeMap<Vec<u8>, PluginKvEntry> = match &there_blob {
            Some(b) => decode_blob(&ns, b)
                .map_err(|e| MigrateError::Target(format!("plugin KV blob {name}: {e}")))?
                .into_iter()
                .map(|e| (e.key.clone(), e))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut merged = there.clone();
        let mut changed = false;
        for e in entries {
            let verdict = match there.get(&e.key) {
                None => Verdict::New,
                Some(t) if t.value == e.value => Verdict::Same,
                Some(_) => Verdict::Conflict,
            };
            tally.saw("plugin keys", verdict, || {
                format!("{ns}:{}", hex::encode(&e.key))
            });
            if pass.writes(verdict) {
                merged.insert(e.key.clone(), e);
                changed = true;
            }
        }
        if changed {
            let blob = encode_blob(&merged.into_values().collect::<Vec<_>>());
            if !dst
                .meta
                .compare_and_swap(&name, there_blob.as_deref(), Some(&blob))
                .await?
            {
                return Err(MigrateError::Raced(format!("meta {name}")));
            }
        }
    }
    Ok(())
}
