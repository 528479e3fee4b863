//! SDK for writing Tessera policy plugins in Rust (wasm32-unknown-unknown).
//!
//! A plugin is a type implementing [`Plugin`] plus one [`export_plugin!`] line naming the
//! hooks it handles (the host calls only those):
//!
//! ```
//! use tessera_plugin_sdk::prelude::*;
//!
//! #[derive(Deserialize, Default)]
//! #[serde(default)]
//! struct Config {
//!     blocked_plan: String,
//! }
//!
//! struct BlockPlan(Config);
//!
//! impl Plugin for BlockPlan {
//!     type Config = Config;
//!
//!     fn new(config: Config) -> Result<Self, String> {
//!         Ok(BlockPlan(config))
//!     }
//!
//!     fn on_session_start(&self, ev: SessionStartEvent) -> Decision {
//!         if ev.plan.as_deref() == Some(self.0.blocked_plan.as_str()) {
//!             return Decision::deny("PLAN_BLOCKED", "this plan cannot start sessions");
//!         }
//!         Decision::Allow
//!     }
//! }
//!
//! export_plugin!(BlockPlan, [on_session_start]);
//! ```
//!
//! Build with `cargo build --release --target wasm32-unknown-unknown` (crate type
//! `cdylib`). Plugin state that must outlive one call lives in the host's key-value store
//! ([`kv`]), never in the plugin value: instances are created per server thread and
//! discarded after a failure. On native targets the host functions are simulated
//! in-process (see [`testing`]) so plugin logic can be unit-tested with `cargo test`.

mod host;
#[doc(hidden)]
pub mod rt;

#[cfg(not(target_arch = "wasm32"))]
pub use host::testing;
pub use host::{Level, config_get, kv, log, metric_incr, now_ms};
pub use serde;
/// `Plugin::Config` of a plugin that takes no config (accepts and ignores any table).
pub type NoConfig = serde::de::IgnoredAny;
pub use tessera_plugin_abi as abi;
pub use tessera_plugin_abi::{
    ActivateEvent, AttemptOutcome, CredentialKind, Decision, EndReason, Fingerprint,
    HeartbeatEvent, Hook, LoginFailureEvent, RequestEvent, SessionEndEvent, SessionStartEvent,
    TickEvent, WarningEvent,
};

/// Everything a plugin usually imports.
pub mod prelude {
    pub use crate::serde::Deserialize;
    pub use crate::{
        ActivateEvent, AttemptOutcome, CredentialKind, Decision, EndReason, Fingerprint,
        HeartbeatEvent, LoginFailureEvent, NoConfig, Plugin, RequestEvent, SessionEndEvent,
        SessionStartEvent, TickEvent, WarningEvent, export_plugin, kv, log, now_ms,
    };
}

/// A policy plugin. Implement the hooks you need (the others allow) and name them in
/// [`export_plugin!`].
pub trait Plugin: Sized + 'static {
    /// The plugin's config table (from `[plugins.config]` in the server config),
    /// deserialized with serde; use `#[serde(default)]` for optional fields.
    type Config: serde::de::DeserializeOwned;

    /// Builds the plugin from its config (called once per instance, in `init`). An `Err`
    /// is logged and makes the host refuse to load the plugin.
    ///
    /// # Errors
    /// A human-readable reason the config is unusable.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// `on_request`: every API call, before it is handled.
    fn on_request(&self, _ev: RequestEvent) -> Decision {
        Decision::Allow
    }
    /// `on_activate`: an activation attempt.
    fn on_activate(&self, _ev: ActivateEvent) -> Decision {
        Decision::Allow
    }
    /// `on_session_start`: a session is about to start.
    fn on_session_start(&self, _ev: SessionStartEvent) -> Decision {
        Decision::Allow
    }
    /// `on_heartbeat`: a heartbeat (hot path: keep it cheap).
    fn on_heartbeat(&self, _ev: HeartbeatEvent) -> Decision {
        Decision::Allow
    }
    /// `on_session_end`: a session ended.
    fn on_session_end(&self, _ev: SessionEndEvent) -> Decision {
        Decision::Allow
    }
    /// `on_warning`: a warning was recorded on a license.
    fn on_warning(&self, _ev: WarningEvent) -> Decision {
        Decision::Allow
    }
    /// `on_login_failure`: a credential was rejected.
    fn on_login_failure(&self, _ev: LoginFailureEvent) -> Decision {
        Decision::Allow
    }
    /// `on_tick`: a periodic timer tick.
    fn on_tick(&self, _ev: TickEvent) -> Decision {
        Decision::Allow
    }
}

/// Exports a [`Plugin`] type with ABI v1: the marker, `alloc`, `init` and one
/// `on_<hook>` export per listed hook.
///
/// ```
/// # use tessera_plugin_sdk::prelude::*;
/// # struct MyPlugin;
/// # impl Plugin for MyPlugin {
/// #     type Config = NoConfig;
/// #     fn new(_: NoConfig) -> Result<Self, String> { Ok(MyPlugin) }
/// # }
/// export_plugin!(MyPlugin, [on_warning, on_session_start]);
/// ```
///
/// The exports exist only when compiling for `wasm32`; native builds (unit tests) see
/// nothing, but the plugin type and the listed hooks count as used (no dead-code warnings).
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty, [$($hook:ident),+ $(,)?]) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static __TESSERA_PLUGIN: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn tessera_policy_abi_v1() {}

            #[unsafe(no_mangle)]
            pub extern "C" fn alloc(len: i32) -> i32 {
                $crate::rt::alloc(len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn init(ptr: i32, len: i32) -> i32 {
                // SAFETY: the host calls init with a buffer it got from `alloc` above.
                unsafe { $crate::rt::init::<$ty>(&__TESSERA_PLUGIN, ptr, len) }
            }

            $( $crate::__export_hook!($ty, __TESSERA_PLUGIN, $hook); )+
        };
        // Native builds (the plugin's unit tests) export nothing. Naming the entry points
        // keeps the plugin's types and hooks used, so `cargo test` warns of no dead code.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _: fn(&[u8]) -> ::std::result::Result<$ty, (i32, ::std::string::String)> =
                $crate::rt::new_plugin::<$ty>;
            $( let _: fn(&$ty, _) -> $crate::Decision = <$ty as $crate::Plugin>::$hook; )+
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_hook {
    ($ty:ty, $slot:ident, on_request) => {
        $crate::__export_hook!(@fn $ty, $slot, on_request);
    };
    ($ty:ty, $slot:ident, on_activate) => {
        $crate::__export_hook!(@fn $ty, $slot, on_activate);
    };
    ($ty:ty, $slot:ident, on_session_start) => {
        $crate::__export_hook!(@fn $ty, $slot, on_session_start);
    };
    ($ty:ty, $slot:ident, on_heartbeat) => {
        $crate::__export_hook!(@fn $ty, $slot, on_heartbeat);
    };
    ($ty:ty, $slot:ident, on_session_end) => {
        $crate::__export_hook!(@fn $ty, $slot, on_session_end);
    };
    ($ty:ty, $slot:ident, on_warning) => {
        $crate::__export_hook!(@fn $ty, $slot, on_warning);
    };
    ($ty:ty, $slot:ident, on_login_failure) => {
        $crate::__export_hook!(@fn $ty, $slot, on_login_failure);
    };
    ($ty:ty, $slot:ident, on_tick) => {
        $crate::__export_hook!(@fn $ty, $slot, on_tick);
    };
    (@fn $ty:ty, $slot:ident, $hook:ident) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn $hook(ptr: i32, len: i32) -> i64 {
            // SAFETY: the host calls hooks with a buffer it got from `alloc` above.
            unsafe { $crate::rt::call(&$slot, ptr, len, <$ty as $crate::Plugin>::$hook) }
        }
    };
    ($ty:ty, $slot:ident, $other:ident) => {
        ::std::compile_error!(concat!(
            "unknown hook `", stringify!($other), "`; hooks are on_request, on_activate, ",
            "on_session_start, on_heartbeat, on_session_end, on_warning, on_login_failure, on_tick"
        ));
    };
}
