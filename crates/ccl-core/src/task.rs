//! What a task is, as data: an inbox entry as the core sees it, the queue's directories in
//! the order a task passes through them, and the rules a task body must meet before it may be
//! pasted into a pane. The files themselves are handled by the shell (`ccl::adapters::queue`).

use serde::{Deserialize, Serialize};

use crate::config::Queue;
use crate::names::TaskName;

/// Largest task body accepted. Tasks are prompts; anything bigger is a mistake upstream
/// and would only flood the pane it is pasted into.
pub const MAX_TASK_BYTES: u64 = 256 * 1024;

/// Longest task name `scan_inbox` accepts as a task. Longer names are reported as a
/// problem so the task fails with a reason while `NAME.error` still fits in a file name.
pub const MAX_NAME_BYTES: usize = 200;

/// One candidate task in `inbox/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEntry {
    pub name: TaskName,
    /// Modification time (of the entry itself, not a link's target), ms since the epoch.
    pub mtime_ms: i64,
    /// Size in bytes: with the mtime, how the core tells a file still being written
    /// from a quiet one.
    #[serde(default)]
    pub len: u64,
    /// Why this file cannot be a task; None when it can.
    pub problem: Option<String>,
}

/// Task files per directory; sidecars are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub inbox: usize,
    pub running: usize,
    pub done: usize,
    pub failed: usize,
}

/// A body whose first non-blank character is `/` is a slash command to Claude Code, not a
/// prompt (`/logout` logs the whole account out, `/exit` ends the session): refused unless
/// the queue allows them. Err(the reason, worded for a `.error` file).
pub fn check_slash<'t>(q: &Queue, text: &'t str) -> Result<&'t str, String> {
    if !q.slash_commands && text.trim_start().starts_with('/') {
        let first = text.trim_start().lines().next().unwrap_or_default();
        return Err(format!(
            "task body starts with '/' ({}), which Claude Code runs as a slash command, not a prompt; \
             set slash_commands = true on queue '{}' to allow it",
            crate::util::snippet(first, 40),
            q.name
        ));
    }
    Ok(text)
}

/// Checks a task body: not empty, at most [`MAX_TASK_BYTES`], UTF-8, no control character
/// other than newline and tab, and not only whitespace. Ok(the text) or Err(the reason,
/// worded to stand alone in a `.error` file).
pub fn check_body(bytes: &[u8]) -> Result<&str, String> {
    if bytes.is_empty() {
        return Err("empty task".into());
    }
    if bytes.len() as u64 > MAX_TASK_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("task is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()))?;
    // A carriage return or an escape sequence pasted into a pane acts as keys (submit,
    // cursor movement), so only the two control characters a prompt needs are allowed.
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(format!(
            "task contains control character U+{:04X} at offset {at} (only newline and tab are allowed)",
            c as u32
        ));
    }
    if text.trim().is_empty() {
        return Err("task has only whitespace".into());
    }
    Ok(text)
}

/// Why a file of `len_bytes` cannot be a task.
pub fn too_large(len_bytes: u64) -> String {
    format!("task is larger than {MAX_TASK_BYTES} bytes ({len_bytes} bytes)")
}
