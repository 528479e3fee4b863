//! Ending sessions when the process is asked to stop.
#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::Error;

/// How long shutdown waits for the server to acknowledge the ends.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// On SIGINT or SIGTERM, ends every live session of this process on the server (waiting
/// at most 3 s), then lets the signal take its default course (the process exits as it
/// would have). Installing it twice is harmless.
///
/// This takes over SIGINT and SIGTERM: an application with its own shutdown handling
/// should instead call [`crate::end_all_sessions`] (or drop its sessions) from it.
/// Unix only; elsewhere it does nothing.
pub fn end_sessions_on_shutdown() -> Result<(), Error> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(install)
        .clone()
        .map_err(Error::InvalidArgument)
}

#[cfg(unix)]
fn install() -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot handle signals: {e}"))?;
    std::thread::Builder::new()
        .name("tessera-shutdown".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                tracing::info!(signal, "shutting down: ending live sessions");
                crate::session::end_all_sessions(SHUTDOWN_WAIT);
                signals.handle().close();
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the shutdown thread: {e}"))
}

#[cfg(not(unix))]
fn install() -> Result<(), String> {
    Ok(())
}
