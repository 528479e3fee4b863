//! A plugin written as `plugins/README.md` shows, whose types only `export_plugin!` uses,
//! compiles on native targets (where its unit tests run) without dead-code warnings.
#![deny(dead_code)]
#![allow(missing_docs)]

use tessera_plugin_sdk::prelude::*;

#[derive(Deserialize)]
struct Config {
    plan: String,
    #[serde(default = "default_max")]
    max_sessions_per_day: i64,
}

fn default_max() -> i64 {
    1
}

struct DailySessions(Config);

impl Plugin for DailySessions {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        Ok(DailySessions(config))
    }

    fn on_session_start(&self, ev: SessionStartEvent) -> Decision {
        if ev.plan.as_deref() == Some(self.0.plan.as_str())
            && kv::incr(&ev.license_key, 1, 86_400_000) > self.0.max_sessions_per_day
        {
            return Decision::deny("DAILY_SESSIONS_EXCEEDED", "too many sessions today");
        }
        Decision::Allow
    }
}

export_plugin!(DailySessions, [on_session_start]);

// The assertion is the `deny(dead_code)` above: without the native half of
// `export_plugin!` this file does not compile. Nothing here may name the plugin's types,
// or they would count as used whatever the macro does.
#[test]
fn a_plugin_used_only_by_export_plugin_is_not_dead_code() {}
