//! The tmux control-mode backend of the `Tmux` port. `ControlTmux` keeps one
//! `tmux -C attach-session` client open and writes each command as one line on its stdin;
//! tmux answers every line with a `%begin … %end`/`%error` block on stdout, with
//! notifications between blocks. A capture then costs a pipe round trip instead of a
//! fork. `AutoTmux` puts it in front of `ExecTmux`: control first, one process per call
//! whenever control mode is unavailable. This module owns the control protocol: quoting
//! for tmux's command parser, framing of replies, the attach policy, reconnecting after
//! the server restarts, and the deadline on every reply.
//!
//! Attach policy. A control client must be attached to a session (`attach-session` fails
//! with "no sessions"), and attaching must leave the operator's server as it was:
//! - Before attaching, sessions are listed with a forked tmux, which never starts a
//!   server. No session → no connection: the call is served by `ExecTmux`, and
//!   `new_session` through it starts the server the same way the exec backend does. The
//!   connection is made on a later call, once a session exists. ccl never creates a
//!   session of its own to hold the connection.
//! - The client attaches to the session last captured when it still exists (ccl
//!   captures the sessions it manages), else to the first one listed.
//! - `-E`: attaching does not copy `update-environment` variables into the session.
//! - The client never sets a size (`refresh-client -C`), and tmux leaves control
//!   clients without one out of every size calculation; `ignore-size` also keeps it out
//!   when other clients are attached. Sessions created with `-x/-y` keep their size.
//! - `no-output`: no `%output` notifications, so the stream carries only replies and
//!   the rare session/window notification (verified on tmux 3.3a).
//! - The client counts as attached, so a session whose `destroy-unattached` is on lives
//!   until this client detaches too; tmux 3.3a destroys an unattached session with that
//!   option at once, so no session dies because this client came and went.
//!
//! When the session the client sits on ends (default `detach-on-destroy`), or the server
//! exits, tmux sends `%exit` and closes the stream; the next call attaches again. Commands
//! that are not safe to repeat (create, kill, keys, paste) are preceded by a no-op round
//! trip, so a connection that died since the last call is found out before the command
//! is sent rather than after.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::adapters::tmux::{
    check_key, check_name, check_new_session, escape_format, label, pane_target, parse_panes, paste_needed,
    session_target, trim_trailing_blank_lines, ExecTmux, NewSession, PaneInfo, Tmux, PANE_FORMAT, TMUX_CALL_TIMEOUT,
};
use ccl_core::sessions::Pins;

/// How long `AutoTmux` serves calls through `ExecTmux` after control mode failed before
/// it tries control again. Long enough that a broken setup costs one failed attach per
/// half minute, short enough that a restarted server is back on control soon.
pub const CONTROL_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// Longest line accepted from tmux. A reply line is one screen row or one listing row;
/// anything longer means the stream is not what this module thinks it is.
const MAX_LINE_BYTES: usize = 1 << 20;

/// Largest reply accepted (all lines of one block). A full-screen capture or a listing
/// of a thousand panes is far below this.
const MAX_REPLY_BYTES: usize = 16 << 20;

/// How much of the control client's stderr is kept to explain why it exited.
const MAX_STDERR_BYTES: u64 = 4096;

/// Client flags of the control client; see the module documentation.
const CLIENT_FLAGS: &str = "no-output,ignore-size";

/// A command with no effect, sent before a command that must not run twice so that a
/// dead connection is found while repeating is still safe.
const PING: [&str; 3] = ["display-message", "-p", "ccl"];

/// `Tmux` over one long-lived control-mode client.
pub struct ControlTmux {
    /// `-L SOCKET`; None = the user's default server (or the one `$TMUX` points at).
    socket: Option<String>,
    binary: PathBuf,
    /// Deadline of every reply, and of every forked call.
    timeout: Duration,
    /// Serves calls while there is no session to attach to, lists sessions before an
    /// attach, and pastes text tmux's command parser cannot carry (NUL bytes).
    exec: ExecTmux,
    connection: Option<Connection>,
    /// The session last captured: where the next attach goes if it still exists.
    preferred: Option<String>,
    pins: Pins,
}

impl fmt::Debug for ControlTmux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlTmux")
            .field("socket", &self.socket)
            .field("binary", &self.binary)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl ControlTmux {
    /// `""` = the default server, else `tmux -L SOCKET`. Attaches at once when a
    /// session exists; with no server or no session it succeeds unattached and attaches
    /// on a later call. Fails when tmux cannot be run or refuses the control client.
    pub fn connect(socket: &str) -> Result<ControlTmux> {
        let mut tmux = ControlTmux::with_binary(socket, "tmux");
        tmux.open()?;
        Ok(tmux)
    }

    /// Like `connect` with `binary` instead of `tmux` from `PATH`, without attaching
    /// yet: the first call (or `open`) does.
    pub fn with_binary(socket: &str, binary: impl Into<PathBuf>) -> ControlTmux {
        let binary = binary.into();
        ControlTmux {
            socket: (!socket.is_empty()).then(|| socket.to_string()),
            exec: ExecTmux::with_binary(socket, &binary),
            binary,
            timeout: TMUX_CALL_TIMEOUT,
            connection: None,
            preferred: None,
            pins: Pins::new(),
        }
    }

    /// The same backend with another deadline per reply (and per forked call).
    pub fn with_timeout(self, timeout: Duration) -> ControlTmux {
        ControlTmux {
            exec: self.exec.clone().with_timeout(timeout),
            timeout,
            ..self
        }
    }

    /// Attaches now unless attached already. Ok(false): no session to attach to.
    pub fn open(&mut self) -> Result<bool> {
        let link = self.ensure().context("tmux control mode")?;
        Ok(link == Link::Attached)
    }

    /// Whether a control client is attached and its stream is still open.
    pub fn is_connected(&mut self) -> bool {
        self.connection.as_mut().is_some_and(Connection::alive)
    }

    /// Attached, or sure there is nothing to attach to. A connection that died is
    /// dropped (its client killed) and replaced.
    fn ensure(&mut self) -> Result<Link, Disconnected> {
        if self.is_connected() {
            return Ok(Link::Attached);
        }
        self.connection = None;
        let sessions = self
            .exec
            .list_sessions()
            .map_err(|err| Disconnected::unattached(format!("{err:#}")))?;
        let preferred = self
            .preferred
            .as_deref()
            .filter(|name| sessions.iter().any(|pane| pane.session == *name));
        let Some(target) = preferred.or(sessions.first().map(|pane| pane.session.as_str())) else {
            return Ok(Link::NoSession);
        };
        let target = target.to_string();
        match Connection::open(&self.binary, self.socket.as_deref(), &target, self.timeout)? {
            Some(connection) => {
                log::debug!("tmux: control client attached to '{target}'");
                self.connection = Some(connection);
                Ok(Link::Attached)
            }
            None => Ok(Link::NoSession),
        }
    }

    /// Sends one command and returns tmux's reply, attaching first when needed. A
    /// connection found dead before the command went out is replaced once per call; one
    /// that dies while a `repeatable` command is in flight is replaced and the command
    /// sent again. Other losses are errors: the command may or may not have run.
    fn send(&mut self, args: &[&[u8]], repeatable: bool) -> Result<Sent> {
        let line = command_line(args)?;
        let mut lost = String::new();
        for _ in 0..2 {
            if self.ensure()? == Link::NoSession {
                return Ok(Sent::NoSession);
            }
            let timeout = self.timeout;
            let connection = self
                .connection
                .as_mut()
                .context("control connection vanished after attaching")?;
            let result = if repeatable {
                connection.exchange(&line, timeout)
            } else {
                connection
                    .exchange(&command_line(&PING.map(str::as_bytes))?, timeout)
                    .map_err(Lost::ping)
                    .and_then(|_| connection.exchange(&line, timeout))
            };
            match result {
                Ok(block) => return Ok(Sent::Reply(block)),
                Err(Lost::Early(why)) => lost = why,
                Err(Lost::Late(why)) if repeatable => lost = why,
                Err(Lost::Late(why)) => {
                    self.connection = None;
                    return Err(Disconnected::lost(why, true).into());
                }
                Err(Lost::TimedOut { ran }) => {
                    // A server that stopped answering would answer the next command on
                    // this stream out of turn, if ever; start over on a new client.
                    self.connection = None;
                    return Err(Disconnected::new(format!("timed out after {timeout:?}"), ran).into());
                }
            }
            self.connection = None;
        }
        Err(Disconnected::lost(lost, false).into())
    }

    /// Captures over the open connection with every command written before the first
    /// reply is read, so a fleet costs one round trip instead of one per pane. None when
    /// there is no open connection or it failed midway (it is then dropped): the caller
    /// captures one by one, which attaches again or falls back, and is safe since a
    /// capture changes nothing.
    fn capture_pipelined(&mut self, names: &[&str]) -> Option<Vec<Result<String>>> {
        if !self.is_connected() {
            return None;
        }
        let mut targets = Vec::with_capacity(names.len());
        let mut lines = Vec::with_capacity(names.len());
        for name in names {
            if check_name(name).is_ok() {
                let target = pane_target(name, &self.pins);
                lines.push(command_line(&[b"capture-pane", b"-p", b"-t", target.as_bytes()]).ok()?);
                targets.push(*name);
            }
        }
        let connection = self.connection.as_mut()?;
        let Ok(blocks) = connection.exchange_all(&lines, self.timeout) else {
            self.connection = None;
            return None;
        };
        if let Some(last) = targets.last() {
            self.preferred = Some(last.to_string());
        }
        let mut replies = targets.into_iter().zip(blocks);
        let screens = names
            .iter()
            .map(|name| {
                check_name(name)?;
                let (_, block) = replies.next().context("a pipelined reply went missing")?;
                if block.ok {
                    Ok(trim_trailing_blank_lines(&block.lines))
                } else {
                    Err(refusal(&block.lines)).context(label("capture-pane", Some(name)))
                }
            })
            .collect();
        Some(screens)
    }

    /// `send` for a command whose failure is the caller's answer: tmux's refusal
    /// becomes an error naming the command and the session.
    fn run(
        &mut self,
        command: &str,
        session: Option<&str>,
        args: &[&[u8]],
        repeatable: bool,
    ) -> Result<Option<Vec<String>>> {
        let sent = self.send(args, repeatable).with_context(|| label(command, session))?;
        match sent {
            Sent::NoSession => Ok(None),
            Sent::Reply(block) if block.ok => Ok(Some(block.lines)),
            Sent::Reply(block) => Err(refusal(&block.lines)).context(label(command, session)),
        }
    }
}

impl Tmux for ControlTmux {
    fn pin_panes(&mut self, pins: &Pins) {
        self.pins = pins.clone();
        self.exec.pin_panes(pins);
    }

    fn list_sessions(&mut self) -> Result<Vec<PaneInfo>> {
        let args = [&b"list-panes"[..], b"-a", b"-F", PANE_FORMAT.as_bytes()];
        let sent = self.send(&args, true).with_context(|| label("list-panes", None))?;
        match sent {
            Sent::NoSession => self.exec.list_sessions(),
            Sent::Reply(block) if block.ok => Ok(parse_panes(block.lines.iter().map(String::as_str), &self.pins)),
            // A server whose last session just ended answers this while it exits (the
            // control client's session is gone): no sessions, as has-session reads it.
            Sent::Reply(block) if block.lines.iter().any(|l| l.contains("no current target")) => Ok(Vec::new()),
            Sent::Reply(block) => Err(refusal(&block.lines)).context(label("list-panes", None)),
        }
    }

    fn has_session(&mut self, name: &str) -> Result<bool> {
        check_name(name)?;
        let target = session_target(name);
        let args = [&b"has-session"[..], b"-t", target.as_bytes()];
        let sent = self
            .send(&args, true)
            .with_context(|| label("has-session", Some(name)))?;
        match sent {
            Sent::NoSession => self.exec.has_session(name),
            Sent::Reply(block) if block.ok => Ok(true),
            Sent::Reply(block) => {
                let message = block.lines.join("\n");
                // "no current target" is what a server with no sessions left says while
                // it exits, as in the exec backend.
                let absent = ["can't find session", "no current target"];
                if absent.iter().any(|pattern| message.contains(pattern)) {
                    return Ok(false);
                }
                Err(refusal(&block.lines)).context(label("has-session", Some(name)))
            }
        }
    }

    fn new_session(&mut self, spec: &NewSession) -> Result<()> {
        let name = spec.name.as_str();
        check_new_session(spec)?;
        // The server resolves a relative -c against the control client's directory,
        // which is ccl's directory when the client started, not necessarily now.
        let cwd = absolute(&spec.cwd).with_context(|| label("new-session", Some(name)))?;
        let width = spec.width.to_string();
        let height = spec.height.to_string();
        let cwd = escape_format(cwd.as_os_str().as_bytes());
        let mut args: Vec<Vec<u8>> = [&b"new-session"[..], b"-d", b"-s", name.as_bytes(), b"-c"]
            .iter()
            .map(|arg| arg.to_vec())
            .collect();
        args.push(cwd);
        args.extend([b"-x".to_vec(), width.into_bytes(), b"-y".to_vec(), height.into_bytes()]);
        for (key, value) in &spec.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
                bail!("tmux new-session for '{name}' failed: invalid environment variable {key:?}");
            }
            args.push(b"-e".to_vec());
            args.push(format!("{key}={value}").into_bytes());
        }
        if let Some(command) = &spec.command {
            args.push(command.as_bytes().to_vec());
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        match self.run("new-session", Some(name), &args, false)? {
            None => self.exec.new_session(spec),
            Some(_) => Ok(()),
        }
    }

    fn kill_session(&mut self, name: &str) -> Result<()> {
        check_name(name)?;
        let target = session_target(name);
        let args = [&b"kill-session"[..], b"-t", target.as_bytes()];
        match self.run("kill-session", Some(name), &args, false)? {
            None => self.exec.kill_session(name),
            Some(_) => Ok(()),
        }
    }

    fn capture(&mut self, name: &str) -> Result<String> {
        check_name(name)?;
        self.preferred = Some(name.to_string());
        let target = pane_target(name, &self.pins);
        // Without -e there are no escape sequences; without -N tmux already drops
        // trailing spaces on each line.
        let args = [&b"capture-pane"[..], b"-p", b"-t", target.as_bytes()];
        match self.run("capture-pane", Some(name), &args, true)? {
            None => self.exec.capture(name),
            Some(lines) => Ok(trim_trailing_blank_lines(&lines)),
        }
    }

    fn capture_all(&mut self, names: &[&str]) -> Vec<Result<String>> {
        match self.capture_pipelined(names) {
            Some(screens) => screens,
            None => names.iter().map(|name| self.capture(name)).collect(),
        }
    }

    fn send_keys(&mut self, name: &str, keys: &[&str]) -> Result<()> {
        check_name(name)?;
        if keys.is_empty() {
            return Ok(());
        }
        for key in keys {
            check_key(key).with_context(|| label("send-keys", Some(name)))?;
        }
        let target = pane_target(name, &self.pins);
        let mut args = vec![&b"send-keys"[..], b"-t", target.as_bytes(), b"--"];
        args.extend(keys.iter().map(|key| key.as_bytes()));
        match self.run("send-keys", Some(name), &args, false)? {
            None => self.exec.send_keys(name, keys),
            Some(_) => Ok(()),
        }
    }

    fn paste(&mut self, name: &str, text: &str, bracketed: bool) -> Result<()> {
        if !paste_needed(name, text)? {
            return Ok(());
        }
        // tmux arguments are C strings; only a buffer loaded from stdin carries a NUL.
        if text.contains('\0') {
            return self.exec.paste(name, text, bracketed);
        }
        // The text travels as one quoted argument of `set-buffer` (see `quote`), so
        // nothing in it is read as a flag, a separator or a format.
        let buffer = format!("ccl-{name}");
        let set = [&b"set-buffer"[..], b"-b", buffer.as_bytes(), b"--", text.as_bytes()];
        if self.run("set-buffer", Some(name), &set, true)?.is_none() {
            return self.exec.paste(name, text, bracketed);
        }
        let target = pane_target(name, &self.pins);
        let mut paste = vec![&b"paste-buffer"[..]];
        if bracketed {
            paste.push(b"-p");
        }
        paste.extend([&b"-d"[..], b"-b", buffer.as_bytes(), b"-t", target.as_bytes()]);
        match self.run("paste-buffer", Some(name), &paste, false) {
            Ok(Some(_)) => Ok(()),
            // The server went away between the two commands, taking the buffer along:
            // nothing was pasted, so the whole paste can go through a fork.
            Ok(None) => self.exec.paste(name, text, bracketed),
            Err(err) => {
                // A missing target fails only here, after the buffer was set; drop it so
                // no stray buffer is left on the server. The paste error is the one to
                // report.
                let delete = [&b"delete-buffer"[..], b"-b", buffer.as_bytes()];
                let _ = self.send(&delete, true);
                Err(err)
            }
        }
    }
}

/// Control first, exec as the fallback. Every call goes to `ControlTmux`, which
/// reattaches once per call when its connection died; when that fails before the command
/// was sent, the call is served by `ExecTmux` instead, the switch is logged, and calls
/// keep going through exec until `CONTROL_RETRY_BACKOFF` has passed. A failure after the
/// command was sent is returned, never repeated through exec: a paste or a key must not
/// arrive twice.
pub struct AutoTmux {
    control: ControlTmux,
    exec: ExecTmux,
    /// Some(instant) while calls go through exec: control is tried again from then on.
    exec_until: Option<Instant>,
    backoff: Duration,
    /// The backend that served the last call.
    served_by: &'static str,
}

impl fmt::Debug for AutoTmux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoTmux")
            .field("control", &self.control)
            .field("served_by", &self.served_by)
            .finish()
    }
}

impl AutoTmux {
    /// `""` = the default server, else `tmux -L SOCKET`. Nothing runs until the first
    /// call.
    pub fn new(socket: &str) -> AutoTmux {
        AutoTmux::with_control_binary(socket, "tmux")
    }

    /// Control mode through `binary`, the exec fallback through `tmux` from `PATH`.
    pub fn with_control_binary(socket: &str, binary: impl Into<PathBuf>) -> AutoTmux {
        AutoTmux {
            control: ControlTmux::with_binary(socket, binary),
            exec: ExecTmux::new(socket),
            exec_until: None,
            backoff: CONTROL_RETRY_BACKOFF,
            served_by: "control",
        }
    }

    /// The same backend with another deadline per call, for both modes.
    pub fn with_timeout(self, timeout: Duration) -> AutoTmux {
        AutoTmux {
            control: self.control.with_timeout(timeout),
            exec: self.exec.with_timeout(timeout),
            ..self
        }
    }

    /// The same backend waiting `backoff` before it retries control mode.
    pub fn with_backoff(self, backoff: Duration) -> AutoTmux {
        AutoTmux { backoff, ..self }
    }

    /// The backend that served the last call: "control" when it went over a control
    /// client, "exec" when it was a forked tmux, because control mode failed (and is in
    /// its back-off) or because there was no session to attach to. "control" before the
    /// first call.
    pub fn backend(&self) -> &'static str {
        self.served_by
    }

    fn serve<T>(&mut self, call: impl Fn(&mut dyn Tmux) -> Result<T>) -> Result<T> {
        if self.exec_until.is_some_and(|until| Instant::now() < until) {
            self.served_by = "exec";
            return call(&mut self.exec);
        }
        let result = call(&mut self.control);
        // With no session to attach to, the control backend forked the call itself.
        self.served_by = if self.control.connection.is_some() {
            "control"
        } else {
            "exec"
        };
        let err = match result {
            Ok(value) => {
                if self.exec_until.take().is_some() {
                    log::info!("tmux: control mode works again, leaving the exec fallback");
                }
                return Ok(value);
            }
            Err(err) => err,
        };
        let unsent = disconnection(&err).is_some_and(|lost| !lost.maybe_ran);
        if !unsent {
            return Err(err);
        }
        if self.exec_until.is_none() {
            log::warn!(
                "tmux: control mode unavailable ({err:#}); running one tmux process per \
                 call, retrying control in {:?}",
                self.backoff
            );
        } else {
            log::debug!("tmux: control mode still unavailable ({err:#})");
        }
        self.exec_until = Some(Instant::now() + self.backoff);
        self.served_by = "exec";
        call(&mut self.exec)
    }
}

impl Tmux for AutoTmux {
    fn pin_panes(&mut self, pins: &Pins) {
        self.control.pin_panes(pins);
        self.exec.pin_panes(pins);
    }

    fn list_sessions(&mut self) -> Result<Vec<PaneInfo>> {
        self.serve(|tmux| tmux.list_sessions())
    }

    fn has_session(&mut self, name: &str) -> Result<bool> {
        self.serve(|tmux| tmux.has_session(name))
    }

    fn new_session(&mut self, spec: &NewSession) -> Result<()> {
        self.serve(|tmux| tmux.new_session(spec))
    }

    fn kill_session(&mut self, name: &str) -> Result<()> {
        self.serve(|tmux| tmux.kill_session(name))
    }

    fn capture(&mut self, name: &str) -> Result<String> {
        self.serve(|tmux| tmux.capture(name))
    }

    fn send_keys(&mut self, name: &str, keys: &[&str]) -> Result<()> {
        self.serve(|tmux| tmux.send_keys(name, keys))
    }

    fn paste(&mut self, name: &str, text: &str, bracketed: bool) -> Result<()> {
        self.serve(|tmux| tmux.paste(name, text, bracketed))
    }

    fn capture_all(&mut self, names: &[&str]) -> Vec<Result<String>> {
        let on_exec = self.exec_until.is_some_and(|until| Instant::now() < until);
        if !on_exec {
            if let Some(screens) = self.control.capture_pipelined(names) {
                self.served_by = "control";
                return screens;
            }
        }
        // One by one, with the fallback to exec of every other call.
        names.iter().map(|name| self.capture(name)).collect()
    }
}

/// The control connection failed: no answer could be had over it. Carried inside the
/// anyhow chain so `AutoTmux` can tell it from tmux refusing a command.
#[derive(Debug)]
struct Disconnected {
    /// The command may have run: it was sent before the connection was lost.
    maybe_ran: bool,
    reason: String,
}

impl Disconnected {
    fn new(reason: String, maybe_ran: bool) -> Disconnected {
        Disconnected { maybe_ran, reason }
    }

    fn unattached(why: String) -> Disconnected {
        Disconnected::new(format!("cannot attach a control client: {why}"), false)
    }

    fn lost(why: String, maybe_ran: bool) -> Disconnected {
        Disconnected::new(format!("control connection lost: {why}"), maybe_ran)
    }
}

impl fmt::Display for Disconnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Disconnected {}

/// The `Disconnected` inside an error chain, if the error is one.
fn disconnection(err: &anyhow::Error) -> Option<&Disconnected> {
    err.chain().find_map(|cause| cause.downcast_ref::<Disconnected>())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Attached,
    /// No server, or a server without sessions: nothing to attach to.
    NoSession,
}

enum Sent {
    Reply(Block),
    NoSession,
}

/// How an exchange failed.
#[derive(Debug)]
enum Lost {
    /// Before the command was handed to tmux: it did not run.
    Early(String),
    /// After: it may have run.
    Late(String),
    TimedOut {
        ran: bool,
    },
}

impl Lost {
    /// A loss during the no-op that precedes a command: the command itself never left.
    fn ping(self) -> Lost {
        match self {
            Lost::Early(why) | Lost::Late(why) => Lost::Early(why),
            Lost::TimedOut { .. } => Lost::TimedOut { ran: false },
        }
    }
}

/// Makes the control client end when ccl does, however ccl ends. Closing its stdin is
/// not enough: tmux 3.3a's client misses the end of its input while it is still attaching,
/// and a client orphaned then stays attached to the operator's server, where it makes
/// `kill-server` and later commands hang. So the kernel sends it SIGTERM when the thread
/// that started it dies (`PR_SET_PDEATHSIG`; ccl starts its clients from the loop's one
/// thread), and a parent that died before the signal was armed is caught right after.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and calls only the
    // async-signal-safe prctl and getppid.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::other("ccl exited while starting its tmux client"));
            }
            Ok(())
        });
    }
}

/// What the stream reader hands over.
#[derive(Debug, PartialEq)]
enum Event {
    Reply(Block),
    /// The stream ended or became unreadable; why, for the error message.
    Closed(String),
}

/// One control client: the child process, a writer thread feeding its stdin (so a
/// server that stops reading cannot block a call past its deadline) and a reader thread
/// framing its stdout.
struct Connection {
    child: Child,
    lines: Sender<Vec<u8>>,
    events: Receiver<Event>,
    /// Set once the stream is known to be over.
    closed: Option<String>,
}

impl Connection {
    /// Starts `tmux -C attach-session` on `target` and waits for tmux's answer to the
    /// attach. Ok(None): the session went away since it was listed.
    fn open(
        binary: &Path,
        socket: Option<&str>,
        target: &str,
        timeout: Duration,
    ) -> Result<Option<Connection>, Disconnected> {
        let mut command = Command::new(binary);
        if let Some(socket) = socket {
            command.arg("-L").arg(socket);
        }
        command
            .args(["-C", "attach-session", "-E", "-f", CLIENT_FLAGS, "-t"])
            .arg(format!("={target}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .map_err(|err| Disconnected::unattached(format!("cannot run {}: {err}", binary.display())))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Disconnected::unattached("tmux pipes were not set up".into()));
        };
        let (lines, lines_rx) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        thread::spawn(move || write_lines(stdin, lines_rx));
        thread::spawn(move || read_stream(stdout, stderr, events_tx));
        let connection = Connection {
            child,
            lines,
            events,
            closed: None,
        };
        // The attach-session reply is the one block not marked as coming from this
        // client's stdin. Nothing is written before it, so it is the first block.
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match connection.events.recv_timeout(left) {
                Ok(Event::Reply(block)) if !block.from_client => {
                    if block.ok {
                        return Ok(Some(connection));
                    }
                    let message = block.lines.join("\n");
                    if ["can't find session", "no sessions"]
                        .iter()
                        .any(|pattern| message.contains(pattern))
                    {
                        return Ok(None);
                    }
                    return Err(Disconnected::unattached(format!("{:#}", refusal(&block.lines))));
                }
                Ok(Event::Reply(_)) => {}
                Ok(Event::Closed(why)) => return Err(Disconnected::unattached(why)),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Disconnected::unattached(format!("timed out after {timeout:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Disconnected::unattached("lost track of the tmux output".into()))
                }
            }
        }
    }

    /// Whether the stream is still open. Any reply waiting here belongs to no command
    /// (tmux answered something nobody asked), which means the stream is out of step.
    fn alive(&mut self) -> bool {
        while self.closed.is_none() {
            match self.events.try_recv() {
                Ok(Event::Reply(block)) if !block.from_client => {}
                Ok(Event::Reply(_)) => self.closed = Some("tmux sent an unrequested reply".into()),
                Ok(Event::Closed(why)) => self.closed = Some(why),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => self.closed = Some("lost track of the tmux output".into()),
            }
        }
        false
    }

    /// Writes every command line, then waits for their reply blocks, in order (tmux
    /// answers a client's commands in the order it sent them); `timeout` bounds the wait
    /// for each reply.
    fn exchange_all(&mut self, lines: &[Vec<u8>], timeout: Duration) -> Result<Vec<Block>, Lost> {
        if !self.alive() {
            return Err(Lost::Early(self.closed.clone().unwrap_or_default()));
        }
        for line in lines {
            if self.lines.send(line.clone()).is_err() {
                return Err(Lost::Late("tmux stopped reading commands".into()));
            }
        }
        lines.iter().map(|_| self.reply(timeout)).collect()
    }

    /// Writes one command line and waits for its reply block.
    fn exchange(&mut self, line: &[u8], timeout: Duration) -> Result<Block, Lost> {
        if !self.alive() {
            return Err(Lost::Early(self.closed.clone().unwrap_or_default()));
        }
        if self.lines.send(line.to_vec()).is_err() {
            return Err(Lost::Early("tmux stopped reading commands".into()));
        }
        self.reply(timeout)
    }

    /// Waits for the reply block to the oldest command still unanswered.
    fn reply(&mut self, timeout: Duration) -> Result<Block, Lost> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Reply(block)) if block.from_client => return Ok(block),
                // Replies to commands tmux ran on its own (hooks) are not ours.
                Ok(Event::Reply(_)) => {}
                Ok(Event::Closed(why)) => {
                    self.closed = Some(why.clone());
                    return Err(Lost::Late(why));
                }
                Err(RecvTimeoutError::Timeout) => return Err(Lost::TimedOut { ran: true }),
                Err(RecvTimeoutError::Disconnected) => return Err(Lost::Late("lost track of the tmux output".into())),
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The client holds no state worth a goodbye: killing it detaches it at once,
        // and waiting reaps it. Only this owner waits on the child, so the pid killed
        // cannot have been reused.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The writer thread: one command line at a time until the channel or the pipe closes.
fn write_lines(mut stdin: ChildStdin, lines: Receiver<Vec<u8>>) {
    for line in lines {
        if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
            // The reader sees the same end of the client and reports it.
            return;
        }
    }
}

/// The reader thread: frames stdout into replies until it ends, then says why.
fn read_stream(stdout: ChildStdout, stderr: ChildStderr, events: Sender<Event>) {
    let stderr = thread::spawn(move || read_stderr(stderr));
    let why = match pump(stdout, &events) {
        Ended::Dropped => return,
        Ended::Broken(why) => why,
        Ended::Eof(exit_reason) => {
            // The client exits with its stdout; its stderr says why when %exit did not.
            let complaint = stderr.join().unwrap_or_default();
            match (exit_reason, complaint.trim()) {
                (Some(reason), _) if !reason.is_empty() => reason,
                (_, complaint) if !complaint.is_empty() => complaint.to_string(),
                _ => "tmux closed the connection".to_string(),
            }
        }
    };
    let _ = events.send(Event::Closed(why));
}

fn read_stderr(stderr: ChildStderr) -> String {
    let mut stderr = stderr;
    let mut kept = Vec::new();
    let _ = (&mut stderr).take(MAX_STDERR_BYTES).read_to_end(&mut kept);
    // Drain the rest so a chatty client never blocks on a full pipe.
    let _ = io::copy(&mut stderr, &mut io::sink());
    String::from_utf8_lossy(&kept).into_owned()
}

/// How a stream ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// End of file, with the reason given by `%exit` if any.
    Eof(Option<String>),
    /// Unreadable or not the protocol.
    Broken(String),
    /// Nobody listens any more.
    Dropped,
}

/// Reads lines from a control client's stdout and sends each complete reply.
fn pump(stdout: impl Read, events: &Sender<Event>) -> Ended {
    let mut reader = BufReader::new(stdout);
    let mut parser = ReplyParser::default();
    let mut exit_reason = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        match (&mut reader).take(limit).read_until(b'\n', &mut line) {
            Ok(0) => return Ended::Eof(exit_reason),
            Ok(_) => {}
            Err(err) => return Ended::Broken(format!("cannot read from tmux: {err}")),
        }
        if line.pop() != Some(b'\n') {
            if line.len() >= MAX_LINE_BYTES {
                return Ended::Broken(format!("tmux sent a line longer than {MAX_LINE_BYTES} bytes"));
            }
            // The stream ended inside a line: whatever it was, nothing follows.
            return Ended::Eof(exit_reason);
        }
        match parser.push(&String::from_utf8_lossy(&line)) {
            Ok(Some(Frame::Reply(block))) => {
                if events.send(Event::Reply(block)).is_err() {
                    return Ended::Dropped;
                }
            }
            Ok(Some(Frame::Exit(reason))) => exit_reason = Some(reason),
            Ok(None) => {}
            Err(problem) => return Ended::Broken(problem),
        }
    }
}

/// One reply block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// The command came from this client's stdin (flags 1), not from tmux itself (the
    /// attach command given on the command line, hooks).
    from_client: bool,
    /// `%end` rather than `%error`.
    ok: bool,
    /// The output, one entry per line, without line ends.
    lines: Vec<String>,
}

/// What a line of the stream completes.
#[derive(Debug, PartialEq)]
enum Frame {
    Reply(Block),
    /// `%exit [reason]`: the client is going away.
    Exit(String),
}

/// Frames the control-mode stream. Inside a block every line is output until `%end` or
/// `%error` with the same time, number and flags as its `%begin`, so a pane that shows
/// `%end …` of another command cannot cut a capture short. Outside a block, tmux writes
/// only `%`-notifications, which are skipped; anything else means the stream is not
/// understood, and a reply must never be paired with the wrong command.
#[derive(Debug, Default)]
struct ReplyParser {
    open: Option<OpenBlock>,
}

#[derive(Debug)]
struct OpenBlock {
    /// `TIME NUMBER FLAGS` as written after `%begin`.
    guard: String,
    from_client: bool,
    lines: Vec<String>,
    n_bytes: usize,
}

impl ReplyParser {
    fn push(&mut self, line: &str) -> Result<Option<Frame>, String> {
        if let Some(open) = &mut self.open {
            let end = [("%end ", true), ("%error ", false)]
                .into_iter()
                .find(|(marker, _)| line.strip_prefix(marker) == Some(open.guard.as_str()));
            if let Some((_, ok)) = end {
                let open = self.open.take().expect("a block is open");
                return Ok(Some(Frame::Reply(Block {
                    from_client: open.from_client,
                    ok,
                    lines: open.lines,
                })));
            }
            open.n_bytes += line.len() + 1;
            if open.n_bytes > MAX_REPLY_BYTES {
                return Err(format!("tmux sent a reply larger than {MAX_REPLY_BYTES} bytes"));
            }
            open.lines.push(line.to_string());
            return Ok(None);
        }
        if let Some(guard) = line.strip_prefix("%begin ") {
            let fields: Vec<&str> = guard.split(' ').collect();
            let numeric = |field: &str| !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit());
            let [time, number, flags] = fields[..] else {
                return Err(format!("malformed reply header {line:?}"));
            };
            if !(numeric(time) && numeric(number) && numeric(flags)) {
                return Err(format!("malformed reply header {line:?}"));
            }
            self.open = Some(OpenBlock {
                guard: guard.to_string(),
                from_client: flags.parse::<u64>().is_ok_and(|flags| flags & 1 == 1),
                lines: Vec::new(),
                n_bytes: 0,
            });
            return Ok(None);
        }
        if line == "%exit" || line.starts_with("%exit ") {
            let reason = line.strip_prefix("%exit").unwrap_or_default().trim();
            return Ok(Some(Frame::Exit(reason.to_string())));
        }
        if line.starts_with('%') {
            log::trace!("tmux: notification {line:?}");
            return Ok(None);
        }
        Err(format!(
            "unexpected line outside a reply: {}",
            ccl_core::util::snippet(line, 80)
        ))
    }
}

/// Quotes one argument for tmux's command parser so that it arrives as exactly these
/// bytes. Runs of ordinary bytes go in single quotes, inside which tmux expands nothing:
/// no `$VAR`, `~`, `\` escapes or `#{}` formats, and `;`, `{`, `}`, `#`, `%` are plain
/// text. Two things cannot stand inside single quotes: the single quote itself, and
/// control characters (a raw newline would end the command line, and a line of only
/// printable bytes is safest). Those are written in double quotes directly next to the
/// single-quoted runs, which tmux joins into the same argument: `'` as `"'"`, a control
/// character as a three-digit octal escape (`"\012"` for a newline). Bytes from 0x80 up
/// (UTF-8) pass through as they are. NUL cannot be represented (tmux arguments are C
/// strings); `command_line` refuses it.
pub fn quote(arg: &[u8]) -> Vec<u8> {
    let special = |byte: u8| byte == b'\'' || byte < 0x20 || byte == 0x7f;
    let mut quoted = Vec::with_capacity(arg.len() + 2);
    if arg.is_empty() {
        quoted.extend_from_slice(b"''");
    }
    for run in arg.chunk_by(|a, b| special(*a) == special(*b)) {
        if special(run[0]) {
            quoted.push(b'"');
            for &byte in run {
                if byte == b'\'' {
                    quoted.push(byte);
                } else {
                    quoted.extend_from_slice(format!("\\{byte:03o}").as_bytes());
                }
            }
            quoted.push(b'"');
        } else {
            quoted.push(b'\'');
            quoted.extend_from_slice(run);
            quoted.push(b'\'');
        }
    }
    quoted
}

/// One control-mode command line: every argument quoted (the command name too), joined
/// by spaces, ending in a newline.
fn command_line(args: &[&[u8]]) -> Result<Vec<u8>> {
    let mut line = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if arg.contains(&0) {
            bail!("argument {i} contains a NUL byte, which a tmux command cannot carry");
        }
        if i > 0 {
            line.push(b' ');
        }
        line.extend(quote(arg));
    }
    line.push(b'\n');
    Ok(line)
}

/// tmux's complaint as an error: the reply's lines, else a generic message.
fn refusal(lines: &[String]) -> anyhow::Error {
    let message = lines.join("\n");
    let message = message.trim();
    if message.is_empty() {
        anyhow!("tmux reported an error")
    } else {
        anyhow!("{}", message.trim_end_matches('.'))
    }
}

/// `path` made absolute against the current directory.
fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let here = std::env::current_dir().context("cannot read the current directory")?;
    Ok(here.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> Result<Vec<Frame>, String> {
        let mut parser = ReplyParser::default();
        let mut frames = Vec::new();
        for line in lines {
            frames.extend(parser.push(line)?);
        }
        Ok(frames)
    }

    fn reply(from_client: bool, ok: bool, lines: &[&str]) -> Frame {
        Frame::Reply(Block {
            from_client,
            ok,
            lines: lines.iter().map(|line| line.to_string()).collect(),
        })
    }

    #[test]
    fn replies_are_framed_and_notifications_between_them_skipped() {
        let frames = feed(&[
            "%begin 1795503356 265 0",
            "%end 1795503356 265 0",
            "%session-changed $0 a",
            "%begin 1795503356 270 1",
            "a 100x30 1",
            "",
            "b 90x20 0",
            "%end 1795503356 270 1",
            "%unlinked-window-add @1",
            "%sessions-changed",
            "%layout-change @0 9f9d,50x10,0,0,0 9f9d,50x10,0,0,0 *",
            "%begin 1795503357 271 1",
            "%end 1795503357 271 1",
        ])
        .unwrap();
        assert_eq!(
            frames,
            vec![
                reply(false, true, &[]),
                reply(true, true, &["a 100x30 1", "", "b 90x20 0"]),
                reply(true, true, &[]),
            ]
        );
    }

    #[test]
    fn an_error_reply_carries_tmux_message() {
        let frames = feed(&[
            "%begin 1795503382 310 1",
            "no buffer t",
            "%error 1795503382 310 1",
            "%exit",
        ])
        .unwrap();
        assert_eq!(
            frames,
            vec![reply(true, false, &["no buffer t"]), Frame::Exit(String::new())]
        );
    }

    #[test]
    fn screen_lines_that_look_like_protocol_stay_output() {
        // A pane can show anything, including the markers of other commands; only the
        // marker with this block's own time, number and flags ends it.
        let screen = [
            "%end 1795503356 269 1",
            "%end 1795503355 270 1",
            "%end 1795503356 270 0",
            "%error 1795503356 27 1",
            "%end 1795503356 270 1 ",
            "%begin 1795503356 271 1",
            "%exit",
            "%output %0 hi",
            " %end 1795503356 270 1",
        ];
        let mut lines = vec!["%begin 1795503356 270 1"];
        lines.extend(screen);
        lines.push("%end 1795503356 270 1");
        assert_eq!(feed(&lines).unwrap(), vec![reply(true, true, &screen)]);
    }

    #[test]
    fn exit_reasons_are_kept() {
        assert_eq!(
            feed(&["%exit server exited unexpectedly"]).unwrap(),
            vec![Frame::Exit("server exited unexpectedly".into())]
        );
    }

    #[test]
    fn a_stream_out_of_step_is_refused() {
        for lines in [
            &["plain text outside a block"][..],
            &["%begin 1 2"],
            &["%begin 1 two 1"],
            &["%begin 1 2 1 4"],
        ] {
            assert!(feed(lines).is_err(), "{lines:?}");
        }
    }

    #[test]
    fn an_endless_reply_is_refused() {
        let mut parser = ReplyParser::default();
        parser.push("%begin 1 2 1").unwrap();
        let row = "x".repeat(1 << 16);
        let n_rows = MAX_REPLY_BYTES / row.len() + 1;
        let outcome = (0..n_rows).try_for_each(|_| parser.push(&row).map(drop));
        assert!(outcome.is_err());
    }

    #[test]
    fn the_reader_reports_replies_then_the_exit_reason() {
        let stream = "%begin 1 5 0\n%end 1 5 0\n%session-changed $0 a\n\
                      %begin 1 6 1\nline one\n%end 1 6 1\n%exit detached\n";
        let (events, received) = mpsc::channel();
        let ended = pump(stream.as_bytes(), &events);
        assert_eq!(ended, Ended::Eof(Some("detached".into())));
        let got: Vec<Event> = received.try_iter().collect();
        assert_eq!(
            got,
            vec![
                Event::Reply(Block {
                    from_client: false,
                    ok: true,
                    lines: vec![]
                }),
                Event::Reply(Block {
                    from_client: true,
                    ok: true,
                    lines: vec!["line one".into()]
                }),
            ]
        );
    }

    #[test]
    fn the_reader_gives_up_on_an_endless_line() {
        let stream = vec![b'x'; MAX_LINE_BYTES + 10];
        let (events, _received) = mpsc::channel();
        let ended = pump(&stream[..], &events);
        assert!(
            matches!(ended, Ended::Broken(ref why) if why.contains("longer than")),
            "{ended:?}"
        );
    }

    #[test]
    fn quoting_keeps_every_argument_one_printable_word() {
        let cases: &[(&str, &str)] = &[
            ("plain", "'plain'"),
            ("", "''"),
            ("it's", r#"'it'"'"'s'"#),
            ("''", r#""''""#),
            ("a\nb", r#"'a'"\012"'b'"#),
            ("\t\r\n", r#""\011\015\012""#),
            ("x\u{7f}'\u{1b}", r#"'x'"\177'\033""#),
            (
                "$HOME ~ `id` #{session_name} ; { } %if \\ \"",
                "'$HOME ~ `id` #{session_name} ; { } %if \\ \"'",
            ),
            ("-n", "'-n'"),
            ("ends;", "'ends;'"),
            ("é ✓ 日本", "'é ✓ 日本'"),
        ];
        for (arg, expected) in cases {
            let quoted = String::from_utf8(quote(arg.as_bytes())).unwrap();
            assert_eq!(&quoted, expected, "{arg:?}");
        }
        let every_byte: Vec<u8> = (1..=255).collect();
        let quoted = quote(&every_byte);
        assert!(
            quoted.iter().all(|&b| b >= 0x20 && b != 0x7f),
            "a control byte left the quotes raw"
        );
    }

    #[test]
    fn a_command_line_is_one_line_and_refuses_nul() {
        let line = command_line(&[b"set-buffer", b"-b", b"ccl-x", b"--", b"two\nlines"]).unwrap();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "'set-buffer' '-b' 'ccl-x' '--' 'two'\"\\012\"'lines'\n"
        );
        let err = command_line(&[b"set-buffer", b"a\0b"]).unwrap_err();
        assert!(format!("{err}").contains("NUL"), "{err}");
    }

    #[test]
    fn captures_and_listings_read_like_the_exec_backend() {
        let lines: Vec<String> = ["", "  a", "", "b", "", "   "].map(String::from).to_vec();
        assert_eq!(trim_trailing_blank_lines(&lines), "\n  a\n\nb");
        let rows: Vec<String> = [
            "w-1\t1\t1\t42\t0\t100\t30\t1795500000\t%1\tclaude.exe",
            "w-1\t0\t1\t43\t0\t100\t30\t1795500000\t%2\tbash",
            "w-2\t1\t1\t44\t1\t80\t24\t1795500000\t%3\tmulti",
            "line",
        ]
        .map(String::from)
        .to_vec();
        let panes = parse_panes(rows.iter().map(String::as_str), &Pins::new());
        let summary: Vec<(&str, u32, bool)> = panes
            .iter()
            .map(|pane| (pane.session.as_str(), pane.pane_pid, pane.dead))
            .collect();
        assert_eq!(summary, vec![("w-1", 42, false), ("w-2", 44, true)]);
    }

    #[test]
    fn a_missing_binary_is_a_connection_error_naming_the_command() {
        let mut tmux = ControlTmux::with_binary("x", "/nonexistent/tmux");
        let err = tmux.capture("w-1").unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.starts_with("tmux capture-pane for 'w-1' failed: cannot attach a control client:")
                && message.contains("cannot run /nonexistent/tmux"),
            "{message}"
        );
        assert!(disconnection(&err).is_some_and(|lost| !lost.maybe_ran));
        assert!(ControlTmux::with_binary("x", "/nonexistent/tmux").open().is_err());
    }

    /// A stand-in for tmux: lists one session `w-1`; in control mode it accepts the
    /// attach, answers `n_answers` command lines and then exits, like a server that
    /// dies between two commands.
    fn dying_tmux(dir: &Path, n_answers: u32) -> PathBuf {
        let script = dir.join("tmux");
        let body = format!(
            "#!/bin/sh\n\
             case \"$*\" in\n\
             *-C*)\n\
               echo '%begin 1 1 0'; echo '%end 1 1 0'\n\
               n=0\n\
               while read line; do\n\
                 [ $n -ge {n_answers} ] && exit 0\n\
                 n=$((n + 1))\n\
                 echo \"%begin 1 $((n + 1)) 1\"; echo \"%end 1 $((n + 1)) 1\"\n\
               done;;\n\
             *) printf 'w-1\\t1\\t1\\t42\\t0\\t80\\t24\\t1795500000\\t%%1\\tcat\\n';;\n\
             esac\n"
        );
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn a_key_is_only_blamed_on_a_lost_connection_once_it_was_sent() {
        // Dead before anything was answered: the no-op in front of the key found it, so
        // the key never left and may be sent another way (AutoTmux uses exec).
        let dir = tempfile::tempdir().unwrap();
        let mut tmux = ControlTmux::with_binary("x", dying_tmux(dir.path(), 0));
        let err = tmux.send_keys("w-1", &["Enter"]).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "tmux send-keys for 'w-1' failed: control connection lost: tmux closed the connection"
        );
        assert!(disconnection(&err).is_some_and(|lost| !lost.maybe_ran));

        // Dead after the no-op was answered: the key was written and may have arrived,
        // so it must not be sent again.
        let dir = tempfile::tempdir().unwrap();
        let mut tmux = ControlTmux::with_binary("x", dying_tmux(dir.path(), 1));
        let err = tmux.send_keys("w-1", &["Enter"]).unwrap_err();
        assert!(disconnection(&err).is_some_and(|lost| lost.maybe_ran), "{err:#}");

        // A read is simply asked again on a new connection, which here answers.
        let dir = tempfile::tempdir().unwrap();
        let mut tmux = ControlTmux::with_binary("x", dying_tmux(dir.path(), 1));
        assert!(tmux.has_session("w-1").unwrap());
        assert!(tmux.has_session("w-1").unwrap());
    }

    #[test]
    fn a_control_client_that_never_answers_is_given_up_at_the_deadline() {
        // Answers the listing like a server with one session, then hangs in control mode.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("tmux");
        std::fs::write(
            &script,
            "#!/bin/sh\ncase \"$*\" in *-C*) exec sleep 30;; esac\n\
             printf 'w-1\\t1\\t1\\t42\\t0\\t80\\t24\\t1795500000\\t%%1\\tcat\\n'\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let mut tmux = ControlTmux::with_binary("x", &script).with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = tmux.capture("w-1").unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(
            format!("{err:#}"),
            "tmux capture-pane for 'w-1' failed: cannot attach a control client: timed out after 300ms"
        );
        assert!(!tmux.is_connected());
    }
}
