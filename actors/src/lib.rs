//! License and session state machines, the shard actors that host them, and the Store port.
//!
//! **Architecture Invariant:** nothing here speaks HTTP, Redis or WebAssembly; the license
//! logic ([`machine`]) does no I/O and takes `now` as an argument.
#![forbid(unsafe_code)]

pub mod fingerprint;
pub mod machine;
pub mod memory_store;
pub mod messages;
pub mod model;
pub mod registry;
pub mod session_index;
pub mod session_table;
pub mod settings;
pub mod shard;
pub mod store;
pub mod write_behind;

pub use fingerprint::{Fingerprint, MatchStrategy};
pub use machine::LicenseMachine;
pub use memory_store::MemoryStore;
pub use messages::{
    DeviceRef, Effect, LicenseError, LicenseEvent, LicensePatch, LicenseView, Reply, Request,
};
pub use model::{
    Activation, EndReason, EndedSession, LicenseKey, LicenseKeyError, LicenseRecord,
    LicenseSnapshot, LicenseStatus, LimitOverrides, MaskedKey, SessionLimitStrategy, SessionRecord,
    TokenHash,
};
pub use registry::{EventSink, Licenses, NoEvents, RegistryConfig};
pub use settings::{Limits, ProductRules, Rules, SessionTiming, SharedRules};
pub use store::{
    HeartbeatWrite, LimitKind, NewActivation, Store, StoreError, StoreHealth, StoreOp, StoreOutcome,
};
pub use write_behind::WriteBehind;
