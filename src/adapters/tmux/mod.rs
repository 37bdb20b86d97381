//! The tmux port and its exec adapter. `Tmux` is everything the daemon asks of tmux
//! (list, create, kill, capture, type); `ExecTmux` implements it by running one `tmux`
//! process per call. This module owns the rules that keep those calls safe: sessions are
//! always targeted exactly (`=NAME`, `=NAME:`) so a name never prefix-matches another
//! session, text reaches a pane through a named buffer fed on stdin so it is never parsed
//! as flags or commands, names tmux would silently rewrite are refused, and every call
//! has a deadline so a wedged server cannot stall the daemon.

pub mod control;

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use ccl_core::sessions::Pins;

/// How long one tmux call may take before it is killed. A healthy call takes a few
/// milliseconds; this only bounds the damage of a server that stopped answering.
pub const TMUX_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest text `paste` accepts. Tasks are prompts, not payloads; anything bigger is a
/// mistake upstream and would only flood the pane.
pub const MAX_PASTE_BYTES: usize = 1 << 20;

/// Longest session name accepted. tmux has no limit of its own; this keeps error
/// messages and buffer names readable.
pub const MAX_NAME_BYTES: usize = 128;

/// Longest key name `send_keys` accepts (`C-M-BSpace` and friends fit easily).
const MAX_KEY_BYTES: usize = 32;

/// Fields of one `list-panes` row, for both backends. Tab cannot occur in a session name
/// (tmux escapes it as `\t`), and the free-form command name goes last so a tab inside it
/// stays in the field.
pub(crate) const PANE_FORMAT: &str = "#{session_name}\t#{window_active}\t#{pane_active}\t#{pane_pid}\t\
                           #{pane_dead}\t#{pane_width}\t#{pane_height}\t#{window_activity}\t#{pane_id}\t\
                           #{pane_current_command}";
const PANE_FIELDS: usize = 10;

/// One session as the daemon sees it: the session's active pane.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PaneInfo {
    /// Session name.
    pub session: String,
    pub pane_pid: u32,
    /// `#{pane_current_command}`: the foreground process of the pane.
    pub current_command: String,
    /// `#{pane_dead}`: the pane's process exited and `remain-on-exit` kept the pane.
    pub dead: bool,
    pub width: u16,
    pub height: u16,
    /// `#{window_activity}`: when the pane's window last printed anything, in whole
    /// seconds since the epoch (tmux 3.3a moves it on every output of any of its panes).
    /// Lets the shell skip capturing a screen that cannot have changed. None when tmux
    /// did not say.
    #[serde(default)]
    pub activity_s: Option<u64>,
    /// `#{pane_id}` (`%N`) of this pane.
    #[serde(default)]
    pub pane_id: String,
    /// How many panes the session has (an operator may split its window).
    #[serde(default = "one")]
    pub n_panes: u32,
}

fn one() -> u32 {
    1
}

/// Everything needed to create a detached session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub name: String,
    pub cwd: PathBuf,
    /// Set in the pane's environment (`-e K=V`); a running server does not pass the
    /// client's own environment on, so this is the only reliable way.
    pub env: Vec<(String, String)>,
    pub width: u16,
    pub height: u16,
    /// Run through the server's default shell (`sh -c`); None = the user's login shell.
    pub command: Option<String>,
}

/// What the daemon needs from tmux. Implemented by `ExecTmux` (one `tmux` process per
/// call) and later by a control-mode backend. Every method targets sessions exactly
/// (`=NAME`, `=NAME:`).
pub trait Tmux {
    /// One row per session (its active pane). No server running → Ok(empty).
    fn list_sessions(&mut self) -> Result<Vec<PaneInfo>>;
    fn has_session(&mut self, name: &str) -> Result<bool>;
    fn new_session(&mut self, spec: &NewSession) -> Result<()>;
    fn kill_session(&mut self, name: &str) -> Result<()>;
    /// The visible screen of the session's active pane as plain text (no escapes),
    /// trailing blank lines trimmed, lines joined by `\n` without a final newline.
    fn capture(&mut self, name: &str) -> Result<String>;
    /// Named keys only (e.g. "Enter", "Escape", "C-c"), each a separate key.
    fn send_keys(&mut self, name: &str, keys: &[&str]) -> Result<()>;
    /// Text through a named buffer: `load-buffer -b ccl-<name> -` with the text on stdin
    /// (never argv), then `paste-buffer [-p] -d -b ccl-<name> -t =NAME:`. `bracketed`
    /// adds `-p`. Empty text pastes nothing.
    fn paste(&mut self, name: &str, text: &str, bracketed: bool) -> Result<()>;

    /// From now on, sessions named in `pins` are worked with through the pinned pane
    /// (listing, capture, keys, paste) rather than their active pane; others as before.
    fn pin_panes(&mut self, pins: &Pins);

    /// `capture` of each of `names`, in order. A backend that can have several calls in
    /// flight overlaps them (one round trip for a whole fleet); this default captures one
    /// by one.
    fn capture_all(&mut self, names: &[&str]) -> Vec<Result<String>> {
        names.iter().map(|name| self.capture(name)).collect()
    }
}

/// Checks a new session before either backend creates it: a valid name, and a working
/// directory that exists (tmux falls back to the home directory when -c names no
/// directory; refusing here keeps a session from silently starting in the wrong place).
pub(crate) fn check_new_session(spec: &NewSession) -> Result<()> {
    check_name(&spec.name)?;
    if !spec.cwd.is_dir() {
        bail!(
            "tmux new-session for '{}' failed: {} is not a directory",
            spec.name,
            spec.cwd.display()
        );
    }
    Ok(())
}

/// Checks a paste before either backend sends it: a valid name, text within
/// `MAX_PASTE_BYTES`; `false` when there is nothing to paste.
pub(crate) fn paste_needed(name: &str, text: &str) -> Result<bool> {
    check_name(name)?;
    if text.len() > MAX_PASTE_BYTES {
        bail!(
            "tmux paste for '{name}' failed: text is {} bytes, more than {MAX_PASTE_BYTES}",
            text.len()
        );
    }
    Ok(!text.is_empty())
}

/// `Tmux` by running the `tmux` binary once per call.
#[derive(Debug, Clone)]
pub struct ExecTmux {
    /// `-L SOCKET`; None = the user's default server (or the one `$TMUX` points at).
    socket: Option<String>,
    binary: PathBuf,
    /// Deadline of each call; `TMUX_CALL_TIMEOUT` unless changed with `with_timeout`.
    timeout: Duration,
    pins: Pins,
}

impl ExecTmux {
    /// `""` = the default server, else `tmux -L SOCKET`.
    pub fn new(socket: &str) -> Self {
        Self::with_binary(socket, "tmux")
    }

    /// Like `new`, running `binary` instead of `tmux` from `PATH`.
    pub fn with_binary(socket: &str, binary: impl Into<PathBuf>) -> Self {
        let socket = (!socket.is_empty()).then(|| socket.to_string());
        ExecTmux {
            socket,
            binary: binary.into(),
            timeout: TMUX_CALL_TIMEOUT,
            pins: Pins::new(),
        }
    }

    /// The same adapter with another deadline per tmux call.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        ExecTmux { timeout, ..self }
    }

    /// Whether a server answers on this socket.
    pub fn server_running(&mut self) -> Result<bool> {
        let output = self.run("list-sessions", None, &["list-sessions".into()], None)?;
        if output.status.success() {
            return Ok(true);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if is_no_server(&stderr) {
            return Ok(false);
        }
        Err(failure(&output)).context(label("list-sessions", None))
    }

    /// Kills the server and every session on it; no server running is not an error.
    pub fn kill_server(&mut self) -> Result<()> {
        let output = self.run("kill-server", None, &["kill-server".into()], None)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() || is_no_server(&stderr) {
            return Ok(());
        }
        Err(failure(&output)).context(label("kill-server", None))
    }

    /// Runs one tmux command and returns its stdout, or an error naming the command and
    /// the session with tmux's own message.
    fn call(&self, command: &str, session: Option<&str>, args: &[OsString], stdin: Option<Vec<u8>>) -> Result<String> {
        let output = self.run(command, session, args, stdin)?;
        if !output.status.success() {
            return Err(failure(&output)).context(label(command, session));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `tmux [-L SOCKET] ARGS` with a deadline. Only a failure to run tmux at all is
    /// an error here; the exit status is the caller's to judge.
    fn run(&self, command: &str, session: Option<&str>, args: &[OsString], stdin: Option<Vec<u8>>) -> Result<Output> {
        self.run_inner(args, stdin, self.timeout)
            .context(label(command, session))
    }

    fn run_inner(&self, args: &[OsString], stdin: Option<Vec<u8>>, timeout: Duration) -> Result<Output> {
        let mut process = Command::new(&self.binary);
        if let Some(socket) = &self.socket {
            process.arg("-L").arg(socket);
        }
        process
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process
            .spawn()
            .with_context(|| format!("cannot run {}", self.binary.display()))?;
        let input = child.stdin.take();
        let mut stdout_pipe = child.stdout.take().context("tmux stdout was not piped")?;
        let mut stderr_pipe = child.stderr.take().context("tmux stderr was not piped")?;
        let (done_tx, done_rx) = mpsc::channel();
        // The pipes are served by helper threads so that the deadline below also covers a
        // tmux that stops reading or never exits. Only this thread waits on the child, so
        // killing it on timeout can never hit a reaped (and possibly reused) pid.
        thread::spawn(move || {
            if let (Some(mut pipe), Some(bytes)) = (input, stdin) {
                // A write error means tmux exited early; its status and stderr say why.
                thread::spawn(move || {
                    let _ = pipe.write_all(&bytes);
                });
            }
            let stderr_reader = thread::spawn(move || {
                let mut stderr = Vec::new();
                stderr_pipe.read_to_end(&mut stderr).map(|_| stderr)
            });
            let mut stdout = Vec::new();
            let result = stdout_pipe.read_to_end(&mut stdout).and_then(|_| {
                let stderr = stderr_reader
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("stderr reader panicked")))?;
                Ok((stdout, stderr))
            });
            let _ = done_tx.send(result);
        });
        match done_rx.recv_timeout(timeout) {
            Ok(pipes) => {
                let (stdout, stderr) = pipes.context("cannot read tmux output")?;
                // Both pipes are at end of file, so tmux is exiting; this wait is short.
                let status = child.wait().context("cannot wait for tmux")?;
                Ok(Output { status, stdout, stderr })
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("timed out after {timeout:?}")
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("lost track of the tmux output")
            }
        }
    }
}

impl Tmux for ExecTmux {
    fn pin_panes(&mut self, pins: &Pins) {
        self.pins = pins.clone();
    }

    fn list_sessions(&mut self) -> Result<Vec<PaneInfo>> {
        let args = ["list-panes", "-a", "-F", PANE_FORMAT].map(OsString::from);
        let output = self.run("list-panes", None, &args, None)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if is_no_server(&stderr) || is_no_session_left(&stderr) {
                return Ok(Vec::new());
            }
            return Err(failure(&output)).context(label("list-panes", None));
        }
        Ok(parse_panes(String::from_utf8_lossy(&output.stdout).lines(), &self.pins))
    }

    fn has_session(&mut self, name: &str) -> Result<bool> {
        check_name(name)?;
        let args = ["has-session".into(), "-t".into(), session_target(name).into()];
        let output = self.run("has-session", Some(name), &args, None)?;
        if output.status.success() {
            return Ok(true);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        // "no current target" is what a server with no sessions left says while it exits.
        let absent = ["can't find session", "no current target"];
        if is_no_server(&stderr) || absent.iter().any(|message| stderr.contains(message)) {
            return Ok(false);
        }
        Err(failure(&output)).context(label("has-session", Some(name)))
    }

    fn new_session(&mut self, spec: &NewSession) -> Result<()> {
        let name = spec.name.as_str();
        check_new_session(spec)?;
        let mut args: Vec<OsString> = vec![
            "new-session".into(),
            "-d".into(),
            "-s".into(),
            name.into(),
            "-c".into(),
            OsString::from_vec(escape_format(spec.cwd.as_os_str().as_bytes())),
            "-x".into(),
            spec.width.to_string().into(),
            "-y".into(),
            spec.height.to_string().into(),
        ];
        for (key, value) in &spec.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
                bail!("tmux new-session for '{name}' failed: invalid environment variable {key:?}");
            }
            args.push("-e".into());
            args.push(format!("{key}={value}").into());
        }
        if let Some(command) = &spec.command {
            args.push(command.into());
        }
        self.call("new-session", Some(name), &args, None)?;
        Ok(())
    }

    fn kill_session(&mut self, name: &str) -> Result<()> {
        check_name(name)?;
        let args = ["kill-session".into(), "-t".into(), session_target(name).into()];
        self.call("kill-session", Some(name), &args, None)?;
        Ok(())
    }

    fn capture(&mut self, name: &str) -> Result<String> {
        check_name(name)?;
        // Without -e there are no escape sequences; without -N tmux already drops
        // trailing spaces on each line.
        let args = [
            "capture-pane".into(),
            "-p".into(),
            "-t".into(),
            pane_target(name, &self.pins).into(),
        ];
        let screen = self.call("capture-pane", Some(name), &args, None)?;
        Ok(trim_trailing_blank_lines(&screen.lines().collect::<Vec<_>>()))
    }

    fn send_keys(&mut self, name: &str, keys: &[&str]) -> Result<()> {
        check_name(name)?;
        if keys.is_empty() {
            return Ok(());
        }
        for key in keys {
            check_key(key).with_context(|| label("send-keys", Some(name)))?;
        }
        let mut args = vec![
            "send-keys".into(),
            "-t".into(),
            pane_target(name, &self.pins).into(),
            "--".into(),
        ];
        args.extend(keys.iter().map(OsString::from));
        self.call("send-keys", Some(name), &args, None)?;
        Ok(())
    }

    fn paste(&mut self, name: &str, text: &str, bracketed: bool) -> Result<()> {
        if !paste_needed(name, text)? {
            return Ok(());
        }
        let buffer = format!("ccl-{name}");
        let load = ["load-buffer".into(), "-b".into(), buffer.clone().into(), "-".into()];
        self.call("load-buffer", Some(name), &load, Some(text.as_bytes().to_vec()))?;
        let mut paste: Vec<OsString> = vec!["paste-buffer".into()];
        if bracketed {
            paste.push("-p".into());
        }
        paste.extend(["-d".into(), "-b".into(), buffer.clone().into()]);
        paste.extend(["-t".into(), pane_target(name, &self.pins).into()]);
        if let Err(err) = self.call("paste-buffer", Some(name), &paste, None) {
            // A missing target fails only here, after the buffer was loaded; drop it so
            // no stray buffer is left on the server. The paste error is the one to report.
            let delete = ["delete-buffer".into(), "-b".into(), buffer.into()];
            let _ = self.run("delete-buffer", Some(name), &delete, None);
            return Err(err);
        }
        Ok(())
    }
}

/// `tmux -V` runs? (for `ccl check`) -> version string such as `tmux 3.3a`.
pub fn version() -> Result<String> {
    let tmux = ExecTmux::new("");
    let output = tmux.run("-V", None, &["-V".into()], None)?;
    if !output.status.success() {
        return Err(failure(&output)).context("tmux -V failed");
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if version.is_empty() {
        bail!("tmux -V failed: printed nothing");
    }
    Ok(version)
}

/// The oldest tmux ccl supports: control-mode and format features it relies on
/// (`#{window_activity}` in `list-panes`, `new-session -e`) are there from 3.2 on.
pub const MIN_VERSION: (u32, u32) = (3, 2);

/// Fails when `tmux -V` output names a version older than [`MIN_VERSION`]. Builds whose
/// version cannot be read (`tmux master`) pass: they are newer than any release.
pub fn check_version(text: &str) -> Result<()> {
    let v = text.trim().strip_prefix("tmux ").unwrap_or(text.trim());
    let v = v.strip_prefix("next-").unwrap_or(v);
    let mut parts = v.splitn(2, '.');
    let major = parts.next().and_then(|m| m.parse::<u32>().ok());
    let minor: Option<u32> = parts.next().and_then(|m| {
        let digits: String = m.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    if let (Some(major), Some(minor)) = (major, minor) {
        if (major, minor) < MIN_VERSION {
            bail!(
                "{} is older than {}.{}, the oldest ccl supports",
                text.trim(),
                MIN_VERSION.0,
                MIN_VERSION.1
            );
        }
    }
    Ok(())
}

// The rules below are shared with the control-mode backend (`tmux_control.rs`), so that
// both backends accept, refuse and report exactly alike.

/// `=NAME`: exactly this session, never a prefix match.
pub(crate) fn session_target(name: &str) -> String {
    format!("={name}")
}

/// `%N` for a pinned session (the pane its Claude runs in, whichever pane is active),
/// else `=NAME:`: the active pane of the active window of exactly this session.
pub(crate) fn pane_target(name: &str, pins: &Pins) -> String {
    match pins.get(name) {
        Some(pane) => pane.clone(),
        None => format!("={name}:"),
    }
}

/// The `tmux COMMAND for 'NAME'` prefix of every error message.
pub(crate) fn label(command: &str, session: Option<&str>) -> String {
    match session {
        Some(name) => format!("tmux {command} for '{name}' failed"),
        None => format!("tmux {command} failed"),
    }
}

/// tmux's own complaint as an error: its stderr, else the exit status.
fn failure(output: &Output) -> anyhow::Error {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr.trim();
    if message.is_empty() {
        anyhow!("exited with {}", output.status)
    } else {
        anyhow!("{}", message.trim_end_matches('.'))
    }
}

/// Messages meaning there is no server on the socket: none listening, no socket file
/// ("error connecting to … (No such file or directory)"), or the server shutting down
/// under the client after its last session closed ("server exited unexpectedly"). Other
/// connection errors (permission denied, say) are real failures.
fn is_no_server(stderr: &str) -> bool {
    let stderr = stderr.to_ascii_lowercase();
    [
        "no server running",
        "no such file or directory",
        "server exited unexpectedly",
    ]
    .iter()
    .any(|pattern| stderr.contains(pattern))
}

/// What `list-panes -a` says on a server whose last session has just closed while it
/// shuts down: there is nothing to list.
fn is_no_session_left(stderr: &str) -> bool {
    stderr.to_ascii_lowercase().contains("no current target")
}

/// Refuses names tmux would rewrite or misread: `:` and `.` separate window and pane in
/// a target (tmux replaces them with `_`), `#` starts a format in `-s`, a backslash and
/// control characters get escaped. Any of them would make the session's real name
/// differ from the one the daemon keeps asking for.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("invalid tmux session name: empty");
    }
    if name.len() > MAX_NAME_BYTES {
        bail!("invalid tmux session name '{name}': longer than {MAX_NAME_BYTES} bytes");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| matches!(c, ':' | '.' | '#' | '\\') || c.is_control())
    {
        bail!("invalid tmux session name {name:?}: contains {bad:?}");
    }
    Ok(())
}

/// A key for `send-keys` must look like a key name. Free text would be typed as-is and
/// an argument ending in `;` would be read as a command separator; text goes through
/// `paste` instead.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let plausible = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key.chars().all(|c| c.is_ascii_graphic())
        && !key.ends_with(';');
    if !plausible {
        bail!("{key:?} is not a key name");
    }
    Ok(())
}

/// `-c` is expanded as a tmux format, so a literal `#` in a directory must be doubled.
pub(crate) fn escape_format(path: &[u8]) -> Vec<u8> {
    let mut escaped = Vec::with_capacity(path.len());
    for &byte in path {
        escaped.push(byte);
        if byte == b'#' {
            escaped.push(b'#');
        }
    }
    escaped
}

/// Rows of `list-panes -a -F PANE_FORMAT` → one pane of each session: the pinned one
/// when the session still has it, else its active pane; with the session's pane count.
/// A line that does not parse (the tail of a command name with a newline in it) is
/// skipped: the record it belongs to already parsed, since the command name comes last.
pub(crate) fn parse_panes<'a>(lines: impl IntoIterator<Item = &'a str>, pins: &Pins) -> Vec<PaneInfo> {
    let mut all: Vec<(PaneInfo, bool)> = Vec::new();
    for line in lines {
        let Some(parsed) = parse_pane_line(line) else {
            log::debug!("tmux list-panes: skipping unparsable line {line:?}");
            continue;
        };
        all.push(parsed);
    }
    let mut panes: Vec<PaneInfo> = Vec::new();
    for (pane, active) in &all {
        if panes.iter().any(|p| p.session == pane.session) {
            continue;
        }
        let siblings: Vec<&PaneInfo> = all
            .iter()
            .filter(|(p, _)| p.session == pane.session)
            .map(|(p, _)| p)
            .collect();
        let pinned = pins
            .get(&pane.session)
            .and_then(|id| siblings.iter().find(|p| p.pane_id == *id));
        let chosen = match pinned {
            Some(p) => (*p).clone(),
            None if *active => pane.clone(),
            None => match all.iter().find(|(p, a)| p.session == pane.session && *a) {
                Some((p, _)) => p.clone(),
                None => continue,
            },
        };
        panes.push(PaneInfo {
            n_panes: siblings.len() as u32,
            ..chosen
        });
    }
    panes
}

/// One row → the pane and whether it is its session's active pane.
fn parse_pane_line(line: &str) -> Option<(PaneInfo, bool)> {
    let fields: Vec<&str> = line.splitn(PANE_FIELDS, '\t').collect();
    let [session, window_active, pane_active, pid, dead, width, height, activity, pane_id, command] = fields[..] else {
        return None;
    };
    if session.is_empty() {
        return None;
    }
    let flag = |field: &str| match field {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    };
    let active = flag(window_active)? && flag(pane_active)?;
    let pane = PaneInfo {
        session: session.to_string(),
        pane_pid: pid.parse().ok()?,
        current_command: command.to_string(),
        dead: flag(dead)?,
        width: width.parse().ok()?,
        height: height.parse().ok()?,
        activity_s: activity.parse().ok(),
        pane_id: pane_id.to_string(),
        n_panes: 1,
    };
    Some((pane, active))
}

/// The screen as `Tmux::capture` returns it: lines joined by `\n`, trailing blank lines
/// dropped, no final newline.
pub(crate) fn trim_trailing_blank_lines<S: std::borrow::Borrow<str>>(lines: &[S]) -> String {
    let keep = lines
        .iter()
        .rposition(|line| !line.borrow().trim().is_empty())
        .map_or(0, |last| last + 1);
    lines[..keep].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmux_older_than_3_2_is_refused_and_newer_or_unreadable_versions_pass() {
        for old in ["tmux 3.1c", "tmux 2.9a", "tmux 3.0", "tmux next-3.1"] {
            let err = check_version(old).unwrap_err().to_string();
            assert!(err.contains("is older than 3.2"), "{old}: {err}");
        }
        for ok in [
            "tmux 3.2",
            "tmux 3.2a",
            "tmux 3.3a",
            "tmux 3.10",
            "tmux next-3.6",
            "tmux master",
            "tmux 4.0",
        ] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
    }

    fn row(session: &str, window: u8, pane: u8, pid: u32, dead: u8, command: &str) -> String {
        format!("{session}\t{window}\t{pane}\t{pid}\t{dead}\t120\t40\t1795500000\t%{pid}\t{command}\n")
    }

    #[test]
    fn list_takes_the_active_pane_of_each_session() {
        let stdout = [
            row("ccl-auto-11", 0, 1, 100, 0, "bash"),
            row("ccl-auto-11", 1, 0, 101, 0, "vim"),
            row("ccl-auto-11", 1, 1, 102, 0, "claude.exe"),
            row("ccl-auto-12", 1, 1, 200, 1, "bash"),
        ]
        .concat();
        let panes = parse_panes(stdout.lines(), &Pins::new());
        assert_eq!(
            panes,
            vec![
                PaneInfo {
                    session: "ccl-auto-11".into(),
                    pane_pid: 102,
                    current_command: "claude.exe".into(),
                    dead: false,
                    width: 120,
                    height: 40,
                    activity_s: Some(1795500000),
                    pane_id: "%102".into(),
                    n_panes: 3,
                },
                PaneInfo {
                    session: "ccl-auto-12".into(),
                    pane_pid: 200,
                    current_command: "bash".into(),
                    dead: true,
                    width: 120,
                    height: 40,
                    activity_s: Some(1795500000),
                    pane_id: "%200".into(),
                    n_panes: 1,
                },
            ]
        );
    }

    #[test]
    fn a_pinned_pane_is_listed_whatever_pane_is_active_and_only_while_it_exists() {
        // The operator split ccl-auto-11: the new shell pane is active, Claude runs in %101.
        let stdout = [
            row("ccl-auto-11", 1, 0, 101, 0, "claude.exe"),
            row("ccl-auto-11", 1, 1, 102, 0, "bash"),
        ]
        .concat();
        let pins: Pins = [("ccl-auto-11".into(), "%101".to_string())].into();
        let panes = parse_panes(stdout.lines(), &pins);
        assert_eq!((panes[0].pane_id.as_str(), panes[0].n_panes), ("%101", 2));
        assert_eq!(pane_target("ccl-auto-11", &pins), "%101");
        assert_eq!(pane_target("ccl-auto-12", &pins), "=ccl-auto-12:");
        // Claude's pane closed: the active pane is listed, and the count says why.
        let gone: Pins = [("ccl-auto-11".into(), "%99".to_string())].into();
        let panes = parse_panes(stdout.lines(), &gone);
        assert_eq!((panes[0].pane_id.as_str(), panes[0].n_panes), ("%102", 2));
    }

    #[test]
    fn odd_command_names_neither_break_nor_invent_sessions() {
        let stdout = [
            row("a", 1, 1, 1, 0, "we\tird"),
            row("b", 1, 1, 2, 0, "multi\nline"),
            "garbage\n".to_string(),
            row("c", 1, 1, 3, 0, ""),
        ]
        .concat();
        let panes = parse_panes(stdout.lines(), &Pins::new());
        let summary: Vec<(&str, &str)> = panes
            .iter()
            .map(|p| (p.session.as_str(), p.current_command.as_str()))
            .collect();
        assert_eq!(summary, vec![("a", "we\tird"), ("b", "multi"), ("c", "")]);
    }

    #[test]
    fn no_server_messages_are_recognised() {
        assert!(is_no_server("no server running on /tmp/tmux-0/x\n"));
        assert!(is_no_server(
            "error connecting to /tmp/tmux-0/default (No such file or directory)\n"
        ));
        assert!(is_no_server("server exited unexpectedly\n"));
        assert!(is_no_session_left("no current target\n"));
        assert!(!is_no_session_left("can't find session: w-1\n"));
        assert!(!is_no_server("can't find session: w-1\n"));
        assert!(!is_no_server(
            "error connecting to /tmp/tmux-0/default (Permission denied)\n"
        ));
    }

    #[test]
    fn names_tmux_would_rewrite_are_refused() {
        for name in ["ccl-auto-11", "ccl-1-conformvault", "$1", "-dash", "with space", "é"] {
            assert!(check_name(name).is_ok(), "{name}");
        }
        for name in ["", "a:b", "a.b", "a#{x}", "a\\b", "a\tb", "a\nb"] {
            assert!(check_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn only_key_names_are_sent_as_keys() {
        for key in ["Enter", "Escape", "C-c", "C-d", "1", "y", "BSpace"] {
            assert!(check_key(key).is_ok(), "{key}");
        }
        for key in ["", "two words", ";", "x;", "é"] {
            assert!(check_key(key).is_err(), "{key:?}");
        }
    }

    #[test]
    fn capture_drops_trailing_blank_lines_only() {
        let lines = |screen: &'static str| screen.lines().collect::<Vec<_>>();
        assert_eq!(trim_trailing_blank_lines(&lines("\n  a\n\nb\n\n   \n")), "\n  a\n\nb");
        assert_eq!(trim_trailing_blank_lines(&lines("\n\n")), "");
    }

    #[test]
    fn hash_in_a_directory_is_escaped_for_tmux_formats() {
        assert_eq!(escape_format(b"/tmp/a#b##"), b"/tmp/a##b####");
    }

    #[test]
    fn a_missing_binary_is_an_error_naming_the_command() {
        let mut tmux = ExecTmux::with_binary("x", "/nonexistent/tmux");
        let err = tmux.has_session("w-1").unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.starts_with("tmux has-session for 'w-1' failed: cannot run"),
            "{message}"
        );
    }

    #[test]
    fn a_wedged_tmux_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("tmux");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let mut tmux = ExecTmux::with_binary("x", &script).with_timeout(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let err = tmux.capture("w-1").unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        let message = format!("{err:#}");
        assert_eq!(message, "tmux capture-pane for 'w-1' failed: timed out after 200ms");
    }
}
