//! The imperative shell around the decision core: one loop ([`daemon`]) that gathers an
//! observation ([`observe`]), hands it to `ccl_core::core::Core::step`, saves the state
//! ([`state`]) and carries out the actions ([`executor`]); beside it the event hooks
//! ([`hooks`]), Claude's own reports ([`signals`]), trace files ([`trace`]) and the
//! configuration file ([`config_file`]).
pub mod config_file;
pub mod daemon;
pub mod executor;
pub mod hooks;
pub mod observe;
pub mod signals;
pub mod state;
pub mod trace;

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in ms since the epoch: the one place the shell reads it for the core
/// (`Observation::now_ms`) and for the records it writes.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
