//! How Redis errors map to [`StoreError`]: an outage (the change was not made, health turns
//! degraded) against data the scripts could not handle.

use redis::{ErrorKind, RedisError, ServerErrorKind};
use tessera_actors::StoreError;

/// Whether `e` means "the store is not reachable or not serving" (so the change was not made
/// and health turns degraded), as opposed to data the scripts could not handle.
pub(crate) fn is_outage(e: &RedisError) -> bool {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_cluster_error() {
        return true;
    }
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::NoPerm,
        )
        | ErrorKind::AuthenticationFailed
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::InvalidClientConfig
        | ErrorKind::Client => true,
        _ => matches!(
            e.code(),
            Some("OOM" | "BUSY" | "MISCONF" | "NOREPLICAS" | "LOADING" | "NOAUTH" | "WRONGPASS")
        ),
    }
}

/// A Redis error as the port's error: outages are `Unavailable`, anything else (a type
/// mismatch, a script error on malformed data) is `Corrupt`.
pub(crate) fn map_err(e: &RedisError) -> StoreError {
    if is_outage(e) {
        unavailable(e)
    } else {
        StoreError::Corrupt(format!("redis: {e}"))
    }
}

pub(crate) fn unavailable(e: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// Whether `e` is a `NOSCRIPT` reply (the server's script cache is empty).
pub(crate) fn is_noscript(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) || e.code() == Some("NOSCRIPT")
}
