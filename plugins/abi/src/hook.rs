//! The hooks a plugin can export.

use std::fmt;
use std::str::FromStr;

/// A point in the server where plugins are consulted.
///
/// A plugin handles a hook by exporting `on_<hook>(ptr: i32, len: i32) -> i64`;
/// the host calls only the hooks a plugin exports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// Every API call, before it is handled.
    #[serde(rename = "on_request")]
    Request,
    /// An activation attempt (a device asks for a seat on a license).
    #[serde(rename = "on_activate")]
    Activate,
    /// A session is about to start.
    #[serde(rename = "on_session_start")]
    SessionStart,
    /// A heartbeat of a live session (the hot path).
    #[serde(rename = "on_heartbeat")]
    Heartbeat,
    /// A session ended, with its reason.
    #[serde(rename = "on_session_end")]
    SessionEnd,
    /// A warning was recorded on a license.
    #[serde(rename = "on_warning")]
    Warning,
    /// A credential was rejected (password, API key, license key, session token).
    #[serde(rename = "on_login_failure")]
    LoginFailure,
    /// A periodic timer tick.
    #[serde(rename = "on_tick")]
    Tick,
}

impl Hook {
    /// Every hook, in ABI order (the order of [`Hook::index`]).
    pub const ALL: [Hook; 8] = [
        Hook::Request,
        Hook::Activate,
        Hook::SessionStart,
        Hook::Heartbeat,
        Hook::SessionEnd,
        Hook::Warning,
        Hook::LoginFailure,
        Hook::Tick,
    ];

    /// The export name of this hook, e.g. `on_heartbeat`; also its name in config and metrics.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Hook::Request => "on_request",
            Hook::Activate => "on_activate",
            Hook::SessionStart => "on_session_start",
            Hook::Heartbeat => "on_heartbeat",
            Hook::SessionEnd => "on_session_end",
            Hook::Warning => "on_warning",
            Hook::LoginFailure => "on_login_failure",
            Hook::Tick => "on_tick",
        }
    }

    /// A dense index in `0..8`, usable for per-hook arrays.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The hook whose export name is `name`, if any.
    #[must_use]
    pub fn from_export(name: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.name() == name)
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of parsing a [`Hook`] from a string that names no hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHook(pub String);

impl fmt::Display for UnknownHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown hook `{}` (expected one of: ", self.0)?;
        for (i, h) in Hook::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(h.name())?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownHook {}

impl FromStr for Hook {
    type Err = UnknownHook;

    /// Accepts the export name (`on_heartbeat`) or the bare name (`heartbeat`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hook::ALL
            .into_iter()
            .find(|h| h.name() == s || &h.name()[3..] == s)
            .ok_or_else(|| UnknownHook(s.to_owned()))
    }
}

/// A set of hooks as a bit mask (bit [`Hook::index`]); cheap to copy and test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct HookSet(u16);

impl HookSet {
    /// The empty set.
    pub const EMPTY: HookSet = HookSet(0);

    /// Whether `hook` is in the set.
    #[must_use]
    pub const fn contains(self, hook: Hook) -> bool {
        self.0 & (1 << hook as u16) != 0
    }

    /// Adds `hook` to the set.
    pub fn insert(&mut self, hook: Hook) {
        self.0 |= 1 << hook as u16;
    }

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: HookSet) -> HookSet {
        HookSet(self.0 | other.0)
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The hooks in the set, in ABI order.
    pub fn iter(self) -> impl Iterator<Item = Hook> {
        Hook::ALL.into_iter().filter(move |h| self.contains(*h))
    }
}

impl FromIterator<Hook> for HookSet {
    fn from_iter<I: IntoIterator<Item = Hook>>(iter: I) -> Self {
        let mut set = HookSet::EMPTY;
        for h in iter {
            set.insert(h);
        }
        set
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn hook_names_parse_back() {
        for h in Hook::ALL {
            assert_eq!(h.name().parse::<Hook>(), Ok(h));
            assert_eq!(h.name()[3..].parse::<Hook>(), Ok(h));
            assert_eq!(Hook::from_export(h.name()), Some(h));
            assert_eq!(Hook::ALL[h.index()], h);
        }
        assert!("on_nothing".parse::<Hook>().is_err());
    }

    #[test]
    fn hook_set_tracks_membership() {
        let set: HookSet = [Hook::Heartbeat, Hook::Tick].into_iter().collect();
        assert!(set.contains(Hook::Heartbeat));
        assert!(!set.contains(Hook::Request));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Hook::Heartbeat, Hook::Tick]
        );
    }
}
