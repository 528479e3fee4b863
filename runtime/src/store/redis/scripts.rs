//! The Lua scripts, each `prelude.lua` followed by its body, and how they are invoked.
//!
//! Every script touching one license takes exactly that license's keys (one hash tag), so it
//! runs atomically and routes to one slot on a cluster. Scripts are invoked by `EVALSHA`;
//! after `NOSCRIPT` (a restarted or failed-over Redis has an empty script cache) the caller
//! loads them all again and retries.

use redis::{Cmd, Script};

use super::keys::{HEARTBEAT_SETS, LicenseKeys};

macro_rules! script {
    ($file:literal) => {
        concat!(
            include_str!("scripts/prelude.lua"),
            "\n",
            include_str!(concat!("scripts/", $file))
        )
    };
}

/// Every script, compiled once per store.
pub(crate) struct Scripts {
    /// `load.lua`.
    pub(crate) load: Script,
    /// `create_license.lua`.
    pub(crate) create_license: Script,
    /// `activate.lua`.
    pub(crate) activate: Script,
    /// `deactivate.lua`.
    pub(crate) deactivate: Script,
    /// `start_session.lua`.
    pub(crate) start_session: Script,
    /// `end_sessions.lua`.
    pub(crate) end_sessions: Script,
    /// `set_status.lua`.
    pub(crate) set_status: Script,
    /// `update_license.lua`.
    pub(crate) update_license: Script,
    /// `heartbeats.lua`.
    pub(crate) heartbeats: Script,
    /// `delete_license.lua`.
    pub(crate) delete_license: Script,
}

impl Scripts {
    /// Hashes every script (no I/O).
    pub(crate) fn new() -> Self {
        Self {
            load: Script::new(script!("load.lua")),
            create_license: Script::new(script!("create_license.lua")),
            activate: Script::new(script!("activate.lua")),
            deactivate: Script::new(script!("deactivate.lua")),
            start_session: Script::new(script!("start_session.lua")),
            end_sessions: Script::new(script!("end_sessions.lua")),
            set_status: Script::new(script!("set_status.lua")),
            update_license: Script::new(script!("update_license.lua")),
            heartbeats: Script::new(script!("heartbeats.lua")),
            delete_license: Script::new(script!("delete_license.lua")),
        }
    }

    /// Every script (to load them all after `NOSCRIPT`).
    pub(crate) fn all(&self) -> [&Script; 10] {
        [
            &self.load,
            &self.create_license,
            &self.activate,
            &self.deactivate,
            &self.start_session,
            &self.end_sessions,
            &self.set_status,
            &self.update_license,
            &self.heartbeats,
            &self.delete_license,
        ]
    }
}

/// `EVALSHA` of `script` on one license's five keys with `args`; with `globals` (a single
/// Redis, not a cluster) also on the three global heartbeat sets, which the scripts then read
/// as the newest times (see `prelude.lua`).
pub(crate) fn on_license(
    script: &Script,
    keys: &LicenseKeys,
    args: &[String],
    globals: bool,
) -> Cmd {
    let license = keys.all();
    if globals {
        let mut all: Vec<&str> = license.to_vec();
        all.extend(HEARTBEAT_SETS);
        evalsha(script, &all, args)
    } else {
        evalsha(script, &license, args)
    }
}

/// `EVALSHA` of `script` with explicit keys and arguments.
pub(crate) fn evalsha<K: AsRef<str>, A: AsRef<str>>(
    script: &Script,
    keys: &[K],
    args: &[A],
) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len());
    for k in keys {
        cmd.arg(k.as_ref());
    }
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd
}
