//! Claude's own reports, the shell side: the `--settings` files that give every Claude
//! ccl launches its hooks and status line, the `ccl signal` command those run, the spool
//! they append to, the daemon's incremental reader of it, and the FIFO that wakes the
//! loop when a report arrives.
//!
//! A hook must never slow Claude down or fail: `ccl signal` reads its payload, keeps
//! only the fields ccl decides on (each bounded), appends one JSON line to
//! `state_dir/signals/spool.jsonl` with a single `O_APPEND` write, writes one byte to
//! the wake-up FIFO without blocking, and exits 0 whatever went wrong (a missing or full
//! spool drops the line; the screen is the fallback). The status-line command also keeps
//! the operator's own status line: when the account's `settings.json` names a
//! `statusLine` command it runs that with the same input and prints its output;
//! otherwise it prints a short ccl line. No account's `settings.json` is ever written.
//! The daemon reads the spool from where it left off each turn (each line once, bounded
//! per turn) and rotates it once read past a size.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use ccl_core::config::Config;
use ccl_core::core::{HookEvent, Ms, UsageWindow};

/// The spool file under `Config::signals_dir`.
pub const SPOOL: &str = "spool.jsonl";
/// The previous spool after a rotation, read to its end once more before it is dropped.
pub const SPOOL_OLD: &str = "spool.jsonl.1";
/// The FIFO a hook writes a byte to so the daemon takes a turn at once.
pub const WAKE: &str = "wake";
/// Most bytes of a hook's stdin read (a payload carries at most one assistant message).
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;
/// Longest spool line; a longer one is not written.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// A hook drops its line when the spool is already this big (no daemon reads it).
pub const MAX_SPOOL_BYTES: u64 = 16 * 1024 * 1024;
/// The daemon rotates the spool once it has read it to its end past this size.
pub const ROTATE_BYTES: u64 = 1024 * 1024;
/// Most spool bytes the daemon reads in one turn.
pub const MAX_READ_BYTES_PER_TURN: u64 = 1024 * 1024;
/// Most spool lines the daemon takes in one turn; the rest wait for the next.
pub const MAX_LINES_PER_TURN: usize = 4096;
/// Characters of Claude's last message kept in a spool line.
pub const MAX_MESSAGE_CHARS: usize = 4_000;
/// Characters of any other text field kept in a spool line.
pub const MAX_FIELD_CHARS: usize = 1_000;
/// The operator's own status-line command is given this long.
pub const STATUS_COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Seconds Claude gives one of ccl's hook commands (they exit in milliseconds).
pub const HOOK_TIMEOUT_S: u64 = 5;
use ccl_core::sessions::SESSION_VAR;

/// The hook events ccl listens to, by Claude's names; `status` is the status line.
pub const EVENTS: [&str; 6] = [
    "SessionStart",
    "UserPromptSubmit",
    "Stop",
    "StopFailure",
    "Notification",
    "SessionEnd",
];
pub const STATUS: &str = "status";

/// One spool line: a hook's payload reduced to what ccl decides on, with where it came
/// from (session, pane, account home) and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpoolLine {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pane: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<String>,
    pub at_ms: Ms,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Why a session ended (`SessionEnd`: `prompt_input_exit` for `/exit`, `clear`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub background_running: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub five_hour: Option<UsageWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seven_day: Option<UsageWindow>,
}

fn capped(v: Option<&Value>, max: usize) -> Option<String> {
    let s = v?.as_str()?;
    Some(s.chars().take(max).collect())
}

fn window(v: Option<&Value>) -> Option<UsageWindow> {
    let v = v?;
    Some(UsageWindow {
        used_pct: v.get("used_percentage")?.as_f64()?,
        resets_at_ms: v.get("resets_at").and_then(Value::as_f64).map(|s| (s * 1000.0) as Ms),
    })
}

/// Background tasks still running: an entry counts unless its status says it ended.
fn running_tasks(v: Option<&Value>) -> u32 {
    let ended = [
        "completed",
        "complete",
        "done",
        "failed",
        "killed",
        "stopped",
        "cancelled",
        "canceled",
    ];
    v.and_then(Value::as_array)
        .map(|tasks| {
            tasks
                .iter()
                .filter(|t| {
                    let status = t.get("status").and_then(Value::as_str).unwrap_or("running");
                    !ended.contains(&status.to_ascii_lowercase().as_str())
                })
                .count() as u32
        })
        .unwrap_or(0)
}

impl SpoolLine {
    /// The line for `event` with hook `payload`, from a Claude whose environment is `env`.
    pub fn from_payload(event: &str, payload: &Value, env: impl Fn(&str) -> Option<String>, at_ms: Ms) -> SpoolLine {
        let f = |k: &str| payload.get(k);
        let model = match f("model") {
            Some(Value::String(s)) => Some(s.chars().take(MAX_FIELD_CHARS).collect()),
            Some(m) => capped(m.get("id"), MAX_FIELD_CHARS),
            None => None,
        };
        let message = capped(f("last_assistant_message"), MAX_MESSAGE_CHARS)
            .or_else(|| capped(f("message"), MAX_FIELD_CHARS))
            .or_else(|| capped(f("error_details"), MAX_FIELD_CHARS));
        let limits = f("rate_limits");
        SpoolLine {
            event: event.chars().take(64).collect(),
            session: env(SESSION_VAR).map(|s| s.chars().take(MAX_FIELD_CHARS).collect()),
            pane: env("TMUX_PANE").map(|s| s.chars().take(64).collect()),
            config_dir: env("CLAUDE_CONFIG_DIR").map(|s| s.chars().take(MAX_FIELD_CHARS).collect()),
            at_ms,
            conversation: capped(f("session_id"), 64),
            cwd: capped(f("cwd"), MAX_FIELD_CHARS),
            source: capped(f("source"), 64),
            model,
            message,
            error: capped(f("error"), 64),
            kind: capped(f("notification_type"), 64),
            reason: capped(f("reason"), 64),
            background_running: running_tasks(f("background_tasks")),
            cost_usd: f("cost").and_then(|c| c.get("total_cost_usd")).and_then(Value::as_f64),
            five_hour: window(limits.and_then(|l| l.get("five_hour"))),
            seven_day: window(limits.and_then(|l| l.get("seven_day"))),
        }
    }

    /// The decision-relevant event, or None for a line that lacks what its event needs.
    pub fn event(&self) -> Option<HookEvent> {
        let conversation = || self.conversation.clone().filter(|c| ccl_core::screen::is_uuid(c));
        Some(match self.event.as_str() {
            "SessionStart" => HookEvent::SessionStart {
                conversation: (conversation()?).into(),
                cwd: PathBuf::from(self.cwd.clone()?),
                source: self.source.clone().unwrap_or_else(|| "startup".into()),
                model: self.model.clone(),
            },
            "UserPromptSubmit" => HookEvent::PromptSubmitted {
                conversation: (conversation()?).into(),
            },
            "Stop" => HookEvent::Stop {
                conversation: (conversation()?).into(),
                last_message: self.message.clone(),
                background_running: self.background_running,
            },
            "StopFailure" => HookEvent::StopFailure {
                conversation: (conversation()?).into(),
                error: self.error.clone().unwrap_or_else(|| "unknown".into()),
                message: self.message.clone().unwrap_or_default(),
            },
            "Notification" => HookEvent::Notification {
                kind: self.kind.clone().unwrap_or_default(),
                message: self.message.clone().unwrap_or_default(),
            },
            "SessionEnd" => HookEvent::SessionEnd {
                conversation: conversation()?.into(),
                reason: self.reason.clone().unwrap_or_default(),
            },
            STATUS => HookEvent::Status {
                conversation: (conversation()?).into(),
                model: self.model.clone(),
                cost_usd: self.cost_usd,
                five_hour: self.five_hour.clone(),
                seven_day: self.seven_day.clone(),
            },
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The settings files

/// The `--settings` document for Claudes under `account`: every hook and the status line
/// run `EXE signal --dir DIR --account ACCOUNT EVENT`.
pub fn settings_json(exe: &Path, dir: &Path, account: &str) -> Value {
    let command = |event: &str| {
        format!(
            "{} signal --dir {} --account {} {event}",
            ccl_core::util::shell_quote(&exe.to_string_lossy()),
            ccl_core::util::shell_quote(&dir.to_string_lossy()),
            ccl_core::util::shell_quote(account)
        )
    };
    let mut hooks = serde_json::Map::new();
    for event in EVENTS {
        hooks.insert(
            event.to_string(),
            json!([{"hooks": [{"type": "command", "command": command(event), "timeout": HOOK_TIMEOUT_S}]}]),
        );
    }
    json!({
        "hooks": hooks,
        "statusLine": {"type": "command", "command": command(STATUS), "padding": 0},
    })
}

/// Writes every account's settings file (0600, atomically) and creates the spool
/// directory and the wake-up FIFO. Run at start and on reload.
pub fn prepare(config: &Config, exe: &Path) -> Result<()> {
    let dir = config.signals_dir();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for a in &config.accounts {
        let path = config.signal_settings(&a.name);
        let text = serde_json::to_string_pretty(&settings_json(exe, &dir, &a.name))?;
        let tmp = path.with_extension("json.tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let wake = dir.join(WAKE);
    match fs::metadata(&wake) {
        Ok(m) if m.file_type().is_fifo() => {}
        other => {
            if other.is_ok() {
                fs::remove_file(&wake).with_context(|| format!("cannot replace {}", wake.display()))?;
            }
            let c = std::ffi::CString::new(wake.as_os_str().as_encoded_bytes())?;
            // SAFETY: a valid NUL-terminated path.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("cannot create {}", wake.display()));
            }
        }
    }
    Ok(())
}

/// A channel that receives `()` whenever a hook wrote to the wake-up FIFO (coalesced).
/// One thread blocks reading the FIFO; decisions stay on the loop's thread.
pub fn wake_channel(config: &Config) -> Result<crossbeam_channel::Receiver<()>> {
    let path = config.signals_dir().join(WAKE);
    // Opened read-write, the FIFO always has a writer, so reads block instead of
    // returning end-of-file whenever no hook has it open.
    let mut fifo = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("signal-wake".into())
        .spawn(move || {
            let mut buf = [0u8; 256];
            loop {
                match fifo.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {
                        if let Err(crossbeam_channel::TrySendError::Disconnected(())) = tx.try_send(()) {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        })
        .context("cannot start the signal wake-up thread")?;
    Ok(rx)
}

// ---------------------------------------------------------------------------------------
// `ccl signal`: what a hook runs

/// `ccl signal --dir DIR [--account NAME] EVENT`: spools the payload on stdin; for the
/// status line, prints the operator's own status line or ccl's. Never fails.
pub fn cmd_signal(dir: &Path, account: Option<&str>, event: &str) {
    let mut input = Vec::new();
    let _ = std::io::stdin().take(MAX_INPUT_BYTES).read_to_end(&mut input);
    let payload: Value = serde_json::from_slice(&input).unwrap_or(Value::Null);
    let line = SpoolLine::from_payload(event, &payload, |k| std::env::var(k).ok(), crate::shell::now_ms());
    append(dir, &line);
    if event == STATUS {
        let home = std::env::var_os("CLAUDE_CONFIG_DIR").map(PathBuf::from);
        let text = home
            .as_deref()
            .and_then(own_status_command)
            .and_then(|cmd| run_status_command(&cmd, &input))
            .unwrap_or_else(|| ccl_status_line(account, &line));
        let mut out = std::io::stdout();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    } else {
        wake(dir);
    }
}

/// Appends `line` to the spool with one write, unless the spool is missing or full.
pub fn append(dir: &Path, line: &SpoolLine) {
    let Ok(mut text) = serde_json::to_string(line) else {
        return;
    };
    text.push('\n');
    if text.len() > MAX_LINE_BYTES {
        return;
    }
    if !dir.is_dir() {
        return;
    }
    let Ok(mut file) = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK)
        .open(dir.join(SPOOL))
    else {
        return;
    };
    if file.metadata().map(|m| m.len() > MAX_SPOOL_BYTES).unwrap_or(true) {
        return;
    }
    // One write of the whole line: with O_APPEND, concurrent hooks' lines never interleave.
    let _ = file.write(text.as_bytes());
}

/// One byte into the wake-up FIFO; nothing when no daemon reads it (ENXIO) or it is full.
fn wake(dir: &Path) {
    if let Ok(mut fifo) = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(dir.join(WAKE))
    {
        let _ = fifo.write(b"\n");
    }
}

/// The `statusLine.command` of the account's own `settings.json`, if it names one.
fn own_status_command(home: &Path) -> Option<String> {
    let text = fs::read(home.join("settings.json")).ok()?;
    let v: Value = serde_json::from_slice(&text).ok()?;
    let s = v.get("statusLine")?;
    if s.get("type").and_then(Value::as_str).is_some_and(|t| t != "command") {
        return None;
    }
    let cmd = s.get("command")?.as_str()?.trim();
    (!cmd.is_empty()).then(|| cmd.to_string())
}

/// Runs the operator's status-line command with `input` on stdin; its output, or None
/// when it could not run or outlived `STATUS_COMMAND_TIMEOUT` (then ccl's line shows).
fn run_status_command(cmd: &str, input: &[u8]) -> Option<String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.by_ref().take(MAX_INPUT_BYTES).read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + STATUS_COMMAND_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = reader.join().ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// ccl's own short status line: account, 5-hour and weekly use.
pub fn ccl_status_line(account: Option<&str>, line: &SpoolLine) -> String {
    let pct = |w: &Option<UsageWindow>| {
        w.as_ref()
            .map(|w| format!("{:.0}%", w.used_pct))
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "ccl · {} · 5h {} · 7d {}",
        account.unwrap_or("?"),
        pct(&line.five_hour),
        pct(&line.seven_day)
    )
}

// ---------------------------------------------------------------------------------------
// The daemon's reader

/// Reads the spool incrementally: each complete line once, bounded per turn, rotating
/// the file once read to its end past `ROTATE_BYTES`.
#[derive(Debug, Default)]
pub struct SpoolReader {
    offset: u64,
    /// After a rotation: the offset reached in the old file, read once more for lines a
    /// hook appended to it between the last read and the rename.
    old: Option<u64>,
    started: bool,
}

impl SpoolReader {
    /// This turn's new lines. The first call starts at the spool's end: reports written
    /// while no daemon ran are history, as transcript records are.
    pub fn read(&mut self, dir: &Path) -> Vec<SpoolLine> {
        let path = dir.join(SPOOL);
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            self.offset = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            return out;
        }
        if let Some(offset) = self.old.take() {
            let mut old_offset = offset;
            read_lines(&dir.join(SPOOL_OLD), &mut old_offset, &mut out);
        }
        read_lines(&path, &mut self.offset, &mut out);
        if self.offset >= ROTATE_BYTES
            && fs::metadata(&path).map(|m| m.len() == self.offset).unwrap_or(false)
            && fs::rename(&path, dir.join(SPOOL_OLD)).is_ok()
        {
            self.old = Some(self.offset);
            self.offset = 0;
        }
        out
    }
}

/// Complete lines of `path` from `offset` (advanced past them), at most the turn's bound.
fn read_lines(path: &Path, offset: &mut u64, out: &mut Vec<SpoolLine>) {
    let Ok(mut file) = File::open(path) else { return };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len < *offset {
        // Replaced or truncated by someone else: start over.
        *offset = 0;
    }
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    if file.take(MAX_READ_BYTES_PER_TURN).read_to_end(&mut buf).is_err() {
        return;
    }
    let mut consumed = 0usize;
    for raw in buf.split_inclusive(|b| *b == b'\n') {
        if !raw.ends_with(b"\n") || out.len() >= MAX_LINES_PER_TURN {
            break;
        }
        consumed += raw.len();
        match serde_json::from_slice::<SpoolLine>(raw) {
            Ok(line) => out.push(line),
            Err(e) => log::debug!("spool {}: skipping a line that does not parse: {e}", path.display()),
        }
    }
    if consumed == 0 && buf.len() as u64 >= MAX_READ_BYTES_PER_TURN {
        // One line longer than a whole turn's read (hooks never write one): skip it.
        consumed = buf.len();
    }
    *offset += consumed as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    const ID: &str = "0b1c2d3e-0000-4000-8000-000000000001";

    #[test]
    fn a_stop_payload_becomes_a_bounded_line_with_its_session_and_account() {
        let long = "x".repeat(100_000);
        let payload = json!({"session_id": ID, "hook_event_name": "Stop", "cwd": "/w",
            "last_assistant_message": long, "background_tasks": [{"id": "1", "status": "running"}, {"id": "2", "status": "completed"}]});
        let line = SpoolLine::from_payload(
            "Stop",
            &payload,
            env(&[
                (SESSION_VAR, "ccl-auto-11"),
                ("TMUX_PANE", "%3"),
                ("CLAUDE_CONFIG_DIR", "/h/a"),
            ]),
            5,
        );
        assert_eq!(line.session.as_deref(), Some("ccl-auto-11"));
        assert_eq!(line.pane.as_deref(), Some("%3"));
        assert_eq!(
            line.message.as_ref().map(|m| m.chars().count()),
            Some(MAX_MESSAGE_CHARS)
        );
        assert!(serde_json::to_string(&line).unwrap().len() < MAX_LINE_BYTES);
        assert_eq!(
            line.event(),
            Some(HookEvent::Stop {
                conversation: ID.into(),
                last_message: Some("x".repeat(MAX_MESSAGE_CHARS)),
                background_running: 1,
            })
        );
    }

    #[test]
    fn a_session_end_payload_says_claude_is_exiting_and_its_hook_is_delivered() {
        // As Claude Code 2.1.328 sends it after `/exit` (seen against the mock API).
        let payload = json!({"session_id": ID, "transcript_path": "/h/a/projects/-w/x.jsonl", "cwd": "/w",
            "hook_event_name": "SessionEnd", "reason": "prompt_input_exit"});
        let line = SpoolLine::from_payload("SessionEnd", &payload, env(&[(SESSION_VAR, "ccl-auto-11")]), 3);
        assert_eq!(
            line.event(),
            Some(HookEvent::SessionEnd {
                conversation: ID.into(),
                reason: "prompt_input_exit".into(),
            })
        );
        let settings = settings_json(Path::new("/bin/ccl"), Path::new("/s"), "a");
        assert!(settings["hooks"]["SessionEnd"].is_array(), "{settings}");
    }

    #[test]
    fn a_status_line_carries_the_usage_windows() {
        let payload = json!({"session_id": ID, "model": {"id": "claude-opus", "display_name": "Opus"},
            "cost": {"total_cost_usd": 0.25},
            "rate_limits": {"five_hour": {"used_percentage": 42, "resets_at": 1_800_000_000}, "seven_day": {"used_percentage": 7.5}}});
        let line = SpoolLine::from_payload(STATUS, &payload, env(&[]), 1);
        assert_eq!(line.model.as_deref(), Some("claude-opus"));
        assert_eq!(line.cost_usd, Some(0.25));
        assert_eq!(
            line.five_hour,
            Some(UsageWindow {
                used_pct: 42.0,
                resets_at_ms: Some(1_800_000_000_000)
            })
        );
        assert_eq!(ccl_status_line(Some("a"), &line), "ccl · a · 5h 42% · 7d 8%");
    }

    #[test]
    fn the_spool_is_read_once_per_line_across_rotation_and_a_missing_dir_drops_lines() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path();
        let line = |n: i64| SpoolLine {
            event: "Stop".into(),
            at_ms: n,
            ..Default::default()
        };
        let mut reader = SpoolReader::default();
        append(spool, &line(0));
        assert!(
            reader.read(spool).is_empty(),
            "what was there before the daemon is history"
        );
        append(spool, &line(1));
        append(spool, &line(2));
        // A half-written line waits for its newline.
        fs::OpenOptions::new()
            .append(true)
            .open(spool.join(SPOOL))
            .unwrap()
            .write_all(b"{\"event\":\"St")
            .unwrap();
        let got: Vec<i64> = reader.read(spool).iter().map(|l| l.at_ms).collect();
        assert_eq!(got, vec![1, 2]);
        assert!(reader.read(spool).is_empty());
        // Past the rotation size the file is renamed once read; later lines land in a new one.
        fs::write(spool.join(SPOOL), "").unwrap();
        let mut reader = SpoolReader::default();
        reader.read(spool);
        let big = SpoolLine {
            event: "status".into(),
            message: Some("y".repeat(MAX_MESSAGE_CHARS)),
            ..Default::default()
        };
        let n = (ROTATE_BYTES as usize / 4_000) + 2;
        for _ in 0..n {
            append(spool, &big);
        }
        let mut taken = 0;
        for _ in 0..4 {
            taken += reader.read(spool).len();
        }
        assert_eq!(taken, n, "every line once, over turns bounded in bytes");
        assert!(spool.join(SPOOL_OLD).exists(), "rotated");
        append(spool, &line(3));
        assert_eq!(reader.read(spool).iter().map(|l| l.at_ms).collect::<Vec<_>>(), vec![3]);
        // No spool directory: the hook drops its line and still succeeds.
        append(&spool.join("missing"), &line(4));
        assert!(!spool.join("missing").exists());
    }
}
