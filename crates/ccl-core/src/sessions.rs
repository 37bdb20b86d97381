//! Session lifecycle inside the core: which tmux sessions are ccl's, what each one shows
//! this turn, which conversation it holds, and keeping the pool alive.
//!
//! The managed set is exactly the pool names `prefix + i` for `i` in
//! `[start_index, start_index + max)` and the configured dedicated names; nothing else is
//! ever created, killed or typed into. Dedicated sessions are never created or killed by
//! the lifecycle: a missing one is only reported.
//!
//! It also owns what "empty" means before ccl types: a shell's command line is empty
//! only while its last line reads exactly the prompt line first seen when the shell came
//! to the foreground, and Claude's input box only while the screen shows nothing (or one
//! of Claude's own placeholders) after its `❯`. Text ccl did not type in a free pool
//! session makes it needs-attention until that text is gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::core::{limits, Action, Activity, Core, HookEvent, Kind, Observation, Seen, SessionObs, SessionState};
use crate::event::Event;
use crate::names::SessionName;
use crate::screen::{self, ScreenState};
use crate::util::{shell_quote, snippet};

/// Process names under which a real Claude Code shows as `#{pane_current_command}`:
/// `claude.exe` for the npm package, `claude` for the native installer, `node` for old
/// npm installs.
pub const CLAUDE_PROCESS_NAMES: &[&str] = &["claude", "claude.exe", "node"];

/// Which pane of a session ccl works with, by session: the pane running the session's
/// Claude conversation (`%N`, unique on the server). A session without one is worked
/// with through its active pane.
pub type Pins = BTreeMap<SessionName, String>;

/// Environment variable naming the tmux session in a launch line ccl typed.
pub const SESSION_VAR: &str = "CCL_SESSION";

/// Whether a pane's foreground command `command` is Claude by its name: one of the names
/// Claude Code runs under, or the name of the configured `claude.command` (a binary or an
/// `exec`-ing wrapper called `cc`, say) unless that name is a shell's.
pub fn is_claude_name(command: &str, configured: &str) -> bool {
    if CLAUDE_PROCESS_NAMES.contains(&command) {
        return true;
    }
    let base = configured.rsplit('/').next().unwrap_or(configured);
    !command.is_empty() && command == base && !SHELL_NAMES.contains(&command)
}

/// Shells a pane may show as its foreground command when Claude is not running.
const SHELL_NAMES: &[&str] = &[
    "bash", "zsh", "sh", "dash", "fish", "ksh", "tcsh", "csh", "-bash", "-zsh", "-sh",
];

/// How a launch continues a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continue {
    /// `--session-id ID`: a new conversation with an id ccl chose.
    New,
    /// `--resume ID`.
    Resume,
}

/// The shell line that starts Claude in session `session` under `account`:
/// `cd DIR && CLAUDE_CONFIG_DIR=HOME [CCL_SESSION=NAME] COMMAND ARGS [--settings FILE]
/// --session-id|--resume ID`, every part quoted for the shell. With `claude.env` set, the
/// command runs under `sh -c '. "$1" && shift && exec "$@"' ccl-env ENV_FILE …`: the
/// values are read from the private env file, so none of them is typed, shown in the
/// pane, kept in the shell's history or logged. `exec` leaves Claude itself (not a shell)
/// as the pane's foreground process. `CCL_SESSION` names the session to ccl's hooks;
/// `--settings` (when `claude.signals` is on) gives Claude those hooks and ccl's status
/// line without touching the account's own settings. A `prompt` (one that
/// [`fits_launch_line`]) goes last, as Claude's first prompt: it submits it as it starts.
#[allow(clippy::too_many_arguments)]
pub fn launch_line(
    config: &crate::config::Config,
    session: &str,
    account: &str,
    workdir: &Path,
    home: &Path,
    id: &str,
    how: Continue,
    prompt: Option<&str>,
) -> String {
    let mut parts = vec![
        "cd".to_string(),
        shell_quote(&workdir.to_string_lossy()),
        "&&".to_string(),
        format!("CLAUDE_CONFIG_DIR={}", shell_quote(&home.to_string_lossy())),
    ];
    if config.claude.signals {
        parts.push(format!("{}={}", SESSION_VAR, shell_quote(session)));
    }
    if !config.claude.env.is_empty() {
        parts.push("sh -c '. \"$1\" && shift && exec \"$@\"' ccl-env".into());
        parts.push(shell_quote(&config.env_file().to_string_lossy()));
    }
    parts.push(shell_quote(&config.claude.command));
    parts.extend(config.claude.args.iter().map(|a| shell_quote(a)));
    if config.claude.signals {
        parts.push("--settings".into());
        parts.push(shell_quote(&config.signal_settings(account).to_string_lossy()));
    }
    parts.push(match how {
        Continue::New => "--session-id".into(),
        Continue::Resume => "--resume".into(),
    });
    parts.push(id.to_string());
    if let Some(prompt) = prompt.filter(|p| fits_launch_line(p)) {
        parts.push(shell_quote(prompt));
    }
    parts.join(" ")
}

/// True when `prompt` can be Claude's first prompt on its command line: one line of
/// printable text that Claude cannot take for an option. Anything else is pasted into the
/// box once Claude is up, as a task is.
pub fn fits_launch_line(prompt: &str) -> bool {
    let prompt = prompt.trim();
    !prompt.is_empty() && !prompt.starts_with('-') && !prompt.chars().any(char::is_control)
}

/// The contents of [`crate::config::Config::env_file`]: one `export KEY='value'` line per
/// `claude.env` entry.
pub fn env_file_text(config: &crate::config::Config) -> String {
    config
        .claude
        .env
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect()
}

/// The last line of a capture with text on it, without trailing blanks: where a shell's
/// prompt and whatever is typed after it stand.
pub fn last_line(capture: &str) -> &str {
    capture
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_end()
}

/// What a session's shell command line holds, as far as ccl knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellLine {
    /// Exactly the prompt ccl saw when the shell came to the foreground.
    Empty,
    /// The prompt with text after it: what follows the prompt.
    Typed(String),
    /// Not the prompt ccl knows (or none is known): the whole last line.
    Unknown(String),
}

impl ShellLine {
    /// The needs-attention reason for a line that is not empty, quoting what it holds.
    pub fn foreign_reason(&self) -> Option<String> {
        match self {
            ShellLine::Empty => None,
            ShellLine::Typed(text) => Some(format!(
                "{FOREIGN_SHELL_TEXT}: \"{}\"",
                snippet(text, FOREIGN_QUOTE_CHARS)
            )),
            ShellLine::Unknown(line) => Some(format!(
                "{FOREIGN_SHELL_TEXT} (its last line is not the empty prompt ccl saw): \"{}\"",
                snippet(line, FOREIGN_QUOTE_CHARS)
            )),
        }
    }
}

/// How the needs-attention reasons for text ccl did not type begin (the quoted text
/// follows).
pub const FOREIGN_SHELL_TEXT: &str = "its shell command line holds text ccl did not type";
pub const FOREIGN_BOX_TEXT: &str = "claude's input box holds text ccl did not type";

/// Characters of foreign text quoted in a log line.
pub const FOREIGN_QUOTE_CHARS: usize = 80;

impl Core {
    /// What the session's shell command line holds now, judged only against the empty
    /// prompt line ccl saw (never from how a line ends).
    pub(crate) fn shell_line(&self, name: &str) -> ShellLine {
        let line = self.captures.get(name).map(|c| last_line(c)).unwrap_or("");
        let Some(prompt) = self.state.sessions.get(name).and_then(|s| s.shell_prompt.as_deref()) else {
            return ShellLine::Unknown(line.to_string());
        };
        if line == prompt {
            ShellLine::Empty
        } else if let Some(rest) = line.strip_prefix(prompt) {
            ShellLine::Typed(rest.trim().to_string())
        } else {
            ShellLine::Unknown(line.to_string())
        }
    }

    /// Text in Claude's input box this turn (a collapsed paste included); `None` when
    /// the box is empty or shows only one of Claude's own placeholder suggestions.
    pub(crate) fn box_text(&self, name: &str) -> Option<String> {
        let a = self.screens.get(name)?;
        a.input.clone().filter(|t| !t.trim().is_empty())
    }

    /// Why a free pool session cannot be typed into, when its shell line or input box
    /// holds text ccl did not type: the reason quotes the first characters of it.
    pub(crate) fn foreign_text(&self, name: &str) -> Option<String> {
        let s = self.state.sessions.get(name)?;
        match s.seen {
            Seen::Shell => self.shell_line(name).foreign_reason(),
            Seen::Idle | Seen::Busy => self
                .box_text(name)
                .map(|text| format!("{FOREIGN_BOX_TEXT}: \"{}\"", snippet(&text, FOREIGN_QUOTE_CHARS))),
            _ => None,
        }
    }

    /// Marks `name` as needing the operator for foreign text, once per episode: a draft
    /// that grows keystroke by keystroke is not news every turn, and a session already
    /// waiting for the operator (for this or another reason) is typed into by nothing.
    pub(crate) fn flag_foreign_text(&mut self, name: &str, reason: &str) {
        if self.state.sessions.get(name).is_some_and(|s| s.attention.is_some()) {
            return;
        }
        self.needs_attention(
            name,
            &format!("needs attention: {reason}; nothing is typed until it is empty again"),
        );
    }

    /// Reads this turn's tmux view into the per-session state and keeps the pool alive.
    pub(crate) fn handle_sessions(&mut self, obs: &Observation) {
        let Some(listed) = &obs.sessions else {
            self.warn("tmux could not be asked for its sessions this turn; nothing is changed");
            return;
        };
        let by_name: BTreeMap<&str, &SessionObs> = listed.iter().map(|s| (s.name.as_str(), s)).collect();

        let managed: Vec<(SessionName, Kind, PathBuf)> = self
            .config
            .pool
            .names()
            .map(|n| (n, Kind::Pool, self.config.pool.workdir.clone()))
            .chain(
                self.config
                    .dedicated
                    .iter()
                    .map(|d| (d.name.clone(), Kind::Dedicated, d.workdir.clone())),
            )
            .collect();

        for (index, (name, kind, workdir)) in managed.iter().enumerate() {
            let first_sight = !self.state.sessions.contains_key(name);
            let seen_before = self.state.sessions.get(name).map(|s| s.seen).unwrap_or(Seen::Unknown);
            let pane = by_name.get(name.as_str()).copied();
            let seen = match pane {
                None => Seen::Absent,
                Some(p) if p.dead => Seen::Dead,
                Some(p) => {
                    let command = p.command.as_str();
                    let analysis = p.capture.as_deref().map(|c| self.analyze_screen(name, c));
                    self.commands.insert(name.clone(), command.to_string());
                    let claude = p.claude_pid.is_some() || is_claude_name(command, &self.config.claude.command);
                    let seen = if claude {
                        match analysis.as_ref().map(|a| a.state) {
                            Some(ScreenState::Idle) => Seen::Idle,
                            Some(ScreenState::Busy) => Seen::Busy,
                            Some(ScreenState::Menu) => Seen::Menu,
                            Some(ScreenState::Attention) => Seen::Attention,
                            _ => Seen::Unknown,
                        }
                    } else if SHELL_NAMES.contains(&command) {
                        // A shell still running its profile (or a script) shows the same
                        // command name; only a prompt on screen means it reads a line.
                        match analysis.as_ref().map(|a| a.state) {
                            Some(ScreenState::Shell) => Seen::Shell,
                            _ => Seen::Other,
                        }
                    } else {
                        Seen::Other
                    };
                    if let Some(a) = analysis {
                        self.screens.insert(name.clone(), a);
                    }
                    if let Some(c) = &p.capture {
                        self.captures.insert(name.clone(), c.clone());
                    }
                    seen
                }
            };

            let banners = self.banner_lines(name);
            let state = self
                .state
                .sessions
                .entry(name.clone())
                .or_insert_with(|| SessionState::new(*kind));
            state.kind = *kind;
            state.seen = seen;
            let pid = pane.map(|p| p.pane_pid);
            let pid_changed = state.pane_pid.is_some() && pid.is_some() && state.pane_pid != pid;
            if pid_changed && !first_sight {
                // Someone replaced the pane: whatever ccl believed about it is void.
                state.conversation = None;
                state.account = None;
                state.hooked = false;
            }
            state.pane_pid = pid;
            let mut lost_now = false;
            let mut found_again = false;
            if let Some(p) = pane {
                let lost =
                    p.n_panes > 1 && state.pane_id.is_some() && p.pane_id.is_some() && state.pane_id != p.pane_id;
                if lost {
                    lost_now = !state.pane_lost;
                    state.pane_lost = true;
                    // What shows is another pane: nothing about Claude can be read there.
                    state.seen = Seen::Other;
                } else {
                    found_again = state.pane_lost;
                    state.pane_lost = false;
                    if p.pane_id.is_some() {
                        state.pane_id = p.pane_id.clone();
                    }
                }
            } else {
                state.pane_lost = false;
                state.pane_id = None;
            }
            let seen = state.seen;
            // The empty prompt line: forgotten while anything but the shell runs there (or
            // the pane is gone or new), and taken at the first sight of the shell's prompt
            // after that, when the shell has just drawn it and nothing was typed yet.
            let shell_in_front = pane.is_some_and(|p| !p.dead && SHELL_NAMES.contains(&p.command.as_str()));
            if !shell_in_front || (pid_changed && !first_sight) {
                state.shell_prompt = None;
            }
            if seen == Seen::Shell && state.shell_prompt.is_none() {
                state.shell_prompt = self.captures.get(name.as_str()).map(|c| last_line(c).to_string());
            }
            if first_sight && matches!(seen, Seen::Idle | Seen::Busy | Seen::Menu) {
                // Adopted with Claude running: limit lines already on screen are history.
                state.stale_hits = banners;
            }

            if matches!(seen, Seen::Shell | Seen::Absent | Seen::Dead) {
                // The Claude that reported through the hooks is gone.
                state.hooked = false;
                state.background_tasks = 0;
            }
            // Conversation id: from SessionStart (below) where the hooks report, else from
            // the registry (current), else the resume hint at a shell.
            for r in obs.registry.iter().filter(|r| &r.session == name) {
                if screen::is_uuid(&r.entry.session_id) && state.claude_in_front() && !state.hooked {
                    state.conversation = Some(r.entry.session_id.clone().into());
                    state.cwd = Some(r.entry.cwd.clone());
                    state.account = Some(r.account.clone());
                }
            }
            // The one process a swap may signal: the Claude whose registry entry names
            // this pane (seen in its foreground), else the pane's foreground process while
            // a Claude-named command is in front.
            let claude_named = pane.is_some_and(|p| is_claude_name(&p.command, &self.config.claude.command));
            let pid = pane.and_then(|p| p.claude_pid.or(p.foreground_pid.filter(|_| claude_named)));
            if let Some(pid) = pid.filter(|_| state.claude_in_front()) {
                self.claude_pids.insert(name.clone(), pid);
            }
            if seen == Seen::Shell && state.conversation.is_none() && *kind == Kind::Dedicated {
                if let Some(hint) = self.screens.get(name.as_str()).and_then(|a| a.resume_hint.clone()) {
                    state.conversation = Some(hint.into());
                }
            }

            self.handle_session_signals(name, obs);
            if lost_now {
                self.needs_attention(
                    name,
                    "needs attention: the pane claude ran in is gone and other panes remain (split window?); ccl leaves the session and its task alone until one pane is left",
                );
            } else if found_again {
                self.log(format!("{name}: one pane again; ccl looks at it from now on"));
                if let Some(s) = self.state.sessions.get_mut(name) {
                    s.attention = None;
                }
            }
            if !self.state.sessions[name].pane_lost {
                // A task's body unsent in the box is ccl's own paste (dispatch adopts it).
                let own_paste = obs
                    .work_seen
                    .iter()
                    .any(|w| w.session == *name && matches!(w.prompt, crate::core::FirstPrompt::InBox { .. }));
                self.track_attention(name, seen, own_paste);
            }
            self.keep_alive(index, name, *kind, workdir, seen, seen_before, first_sight);
        }
    }

    /// What the hooks said about the session this turn: the conversation it runs (which
    /// changes on `/clear` and compaction), its model and cost, the account's usage
    /// meters, and prompts that need the operator.
    fn handle_session_signals(&mut self, name: &str, obs: &Observation) {
        for sig in obs.signals.iter().filter(|s| s.session == name) {
            let state = self.state.sessions.get_mut(name).expect("session state exists");
            match &sig.event {
                HookEvent::SessionStart {
                    conversation,
                    cwd,
                    model,
                    source,
                } => {
                    if !state.hooked || state.conversation.as_deref() != Some(conversation.as_str()) {
                        self.log(format!(
                            "{name}: claude runs conversation {conversation} (SessionStart {source})"
                        ));
                    }
                    let state = self.state.sessions.get_mut(name).expect("session state exists");
                    state.conversation = Some(conversation.clone());
                    state.cwd = Some(cwd.clone());
                    if let Some(account) = &sig.account {
                        state.account = Some(account.clone());
                    }
                    if model.is_some() {
                        state.model = model.clone();
                    }
                    state.hooked = true;
                    if matches!(state.activity, Activity::Launching { .. }) {
                        // Its input box follows within milliseconds: ready is looked for
                        // again that soon, so the task or continue prompt goes in at once.
                        self.follow_up(name, crate::core::Awaiting::Ready);
                    }
                }
                HookEvent::Status {
                    conversation,
                    model,
                    cost_usd,
                    five_hour,
                    seven_day,
                } => {
                    if state.conversation.as_deref() == Some(conversation.as_str()) {
                        if model.is_some() {
                            state.model = model.clone();
                        }
                        if cost_usd.is_some() {
                            state.cost_usd = *cost_usd;
                        }
                    }
                    // The API leaves the windows out of an answer without them (a 429):
                    // the last known meters stay.
                    let account = sig.account.clone().or_else(|| state.account.clone());
                    if let (Some(account), true) = (account, five_hour.is_some() || seven_day.is_some()) {
                        self.read_meter(crate::meters::MeterReading {
                            account,
                            session: name.into(),
                            five_hour: five_hour.clone(),
                            seven_day: seven_day.clone(),
                            at_ms: sig.at_ms,
                            source: "status line",
                        });
                    }
                }
                // Claude exits: its shell prompt follows within milliseconds, and the
                // stage waiting for it (a swap's stop, a finished task's recycling) is
                // looked at again that soon rather than at the next tick.
                HookEvent::SessionEnd { conversation, .. }
                    if state.conversation.as_deref().is_none_or(|c| c == conversation) =>
                {
                    self.follow_up(name, crate::core::Awaiting::Shell);
                }
                HookEvent::Notification { kind, message } if asks_the_operator(kind) => {
                    let reason = format!("claude asks: {}", snippet(message, limits::SNIPPET_CHARS));
                    if state.attention.as_deref() != Some(reason.as_str()) {
                        self.needs_attention(name, &format!("needs attention: {reason}"));
                    }
                }
                HookEvent::PromptSubmitted { .. } | HookEvent::Stop { .. }
                    if state
                        .attention
                        .as_deref()
                        .is_some_and(|a| a.starts_with("claude asks: ")) =>
                {
                    // Claude went on past the prompt it asked: answered.
                    state.attention = None;
                    self.event(Event::AttentionCleared { session: name.into() });
                }
                _ => {}
            }
        }
    }

    fn track_attention(&mut self, name: &str, seen: Seen, own_paste: bool) {
        let screen_reason = match seen {
            Seen::Attention => Some(
                self.screens
                    .get(name)
                    .and_then(|a| a.attention.clone())
                    .unwrap_or_else(|| "claude shows a screen that needs the operator".into()),
            ),
            _ => None,
        };
        let input_clear = self.box_text(name).is_none();
        let shell_clear = self.shell_line(name) == ShellLine::Empty;
        // A pool session that cannot be created for want of its workdir stays marked.
        let uncreatable = matches!(seen, Seen::Absent | Seen::Dead)
            && self.state.sessions.get(name).is_some_and(|s| s.kind == Kind::Pool)
            && self.workdir_missing(&self.config.pool.workdir);
        // A free pool session is ccl's to type into, so text it did not type there is
        // the operator's: ccl waits for it to go (sent, or erased) and says so once.
        let foreign = {
            let s = &self.state.sessions[name];
            let free = matches!(s.activity, Activity::Free) && s.attention.is_none();
            (s.kind == Kind::Pool && free && screen_reason.is_none() && !own_paste)
                .then(|| self.foreign_text(name))
                .flatten()
        };
        if let Some(reason) = foreign {
            return self.flag_foreign_text(name, &reason);
        }
        let state = self.state.sessions.get_mut(name).expect("session state exists");
        match screen_reason {
            Some(reason) => {
                // `needs_attention` stores the reason as logged (a snippet): compare in
                // that form, or a long reason is logged and its hook run every turn.
                let shown = snippet(&reason, limits::SNIPPET_CHARS);
                if state.attention.as_deref() != Some(shown.as_str()) {
                    self.needs_attention(name, &format!("needs attention: {shown}"));
                }
            }
            None => {
                let cleared = match seen {
                    Seen::Absent | Seen::Dead => true,
                    Seen::Shell => shell_clear || state.kind == Kind::Dedicated,
                    Seen::Idle => input_clear,
                    _ => false,
                };
                if cleared && !uncreatable && state.attention.is_some() && matches!(state.activity, Activity::Free) {
                    state.attention = None;
                    self.event(Event::AttentionCleared { session: name.into() });
                }
            }
        }
    }

    /// Marks a session as needing the operator, with a log line and the hook.
    pub(crate) fn needs_attention(&mut self, name: &str, reason: &str) {
        if let Some(s) = self.state.sessions.get_mut(name) {
            s.attention = Some(reason.trim_start_matches("needs attention: ").to_string());
        }
        self.event(Event::NeedsAttention {
            session: name.into(),
            reason: reason.to_string(),
        });
        let mut env = vec![("CCL_SESSION", name.to_string()), ("CCL_REASON", reason.to_string())];
        if let Some(account) = self.state.sessions.get(name).and_then(|s| s.account.clone()) {
            env.push(("CCL_ACCOUNT", account.to_string()));
        }
        env.extend(self.conversation_vars(name));
        self.hook("on_needs_attention", env);
    }

    /// Pool sessions below `min` or that vanished are (re)created; dead panes are replaced.
    #[allow(clippy::too_many_arguments)]
    fn keep_alive(
        &mut self,
        index: usize,
        name: &str,
        kind: Kind,
        workdir: &Path,
        seen: Seen,
        seen_before: Seen,
        first_sight: bool,
    ) {
        if kind == Kind::Dedicated {
            if seen == Seen::Absent && seen_before != Seen::Absent {
                self.warn(format!("{name}: dedicated session is absent (ccl never creates it)"));
            }
            return;
        }
        let within_min = (index as u32) < self.config.pool.min;
        let was_there = !first_sight && !matches!(seen_before, Seen::Absent | Seen::Unknown);
        let reason = match seen {
            Seen::Absent if within_min && first_sight => Some("pool below min"),
            Seen::Absent if within_min || was_there => Some("session vanished"),
            Seen::Dead => Some("pane died"),
            _ => None,
        };
        let Some(reason) = reason else { return };
        if self.workdir_missing(workdir) {
            // Checked before the dead pane is cleared away: nothing changes until the
            // directory is back.
            self.create_session(name, workdir, reason);
            return;
        }
        if seen == Seen::Dead {
            self.push(Action::KillSession {
                session: name.into(),
                reason: reason.into(),
            });
        }
        self.create_session(name, workdir, reason);
        let state = self.state.sessions.get_mut(name).expect("session state exists");
        state.conversation = None;
        state.account = None;
        state.cwd = None;
        state.pane_pid = None;
        state.hooked = false;
    }

    /// Whether this turn's observation says `workdir` does not exist.
    pub(crate) fn workdir_missing(&self, workdir: &Path) -> bool {
        self.missing_dirs.contains(workdir)
    }

    /// Creates a pool session in `workdir`, unless that directory does not exist: then
    /// nothing is created (never in another directory instead) and the session needs the
    /// operator until it is back. True when the session was created.
    pub(crate) fn create_session(&mut self, name: &str, workdir: &Path, reason: &str) -> bool {
        if self.workdir_missing(workdir) {
            let why = format!(
                "workdir {} does not exist; the session is not created until it does",
                workdir.display()
            );
            let shown = snippet(&why, limits::SNIPPET_CHARS);
            if self.state.sessions.get(name).and_then(|s| s.attention.as_deref()) != Some(shown.as_str()) {
                self.needs_attention(name, &format!("needs attention: {shown}"));
            }
            return false;
        }
        self.push(Action::CreateSession {
            session: name.into(),
            workdir: workdir.to_path_buf(),
            reason: reason.into(),
        });
        true
    }

    /// Types a launch line into a session at its shell and tracks the launch. The line
    /// and its Enter go only onto an empty command line (see [`Core::shell_line`]):
    /// otherwise nothing is typed, the session needs the operator, and this is false.
    pub(crate) fn launch(
        &mut self,
        name: &str,
        workdir: &Path,
        id: &str,
        how: Continue,
        then: crate::core::AfterLaunch,
    ) -> bool {
        if let Some(reason) = self.shell_line(name).foreign_reason() {
            self.flag_foreign_text(name, &reason);
            return false;
        }
        let active = self.state.active.clone();
        let home = self.config.account(&active).map(|a| a.home.clone()).unwrap_or_default();
        // A Claude that reports through the hooks gets the continue prompt on its launch
        // line when it fits: it submits it as it starts, with no wait for the idle box, no
        // paste and no Enter, and its `UserPromptSubmit` says it was taken. Without the
        // hooks the prompt is pasted and checked on the screen, as it always was.
        let continue_prompt = self.config.dispatch.continue_prompt.clone();
        let (then, prompt) = match then {
            crate::core::AfterLaunch::Continue if self.config.claude.signals && fits_launch_line(&continue_prompt) => {
                (crate::core::AfterLaunch::ContinueGiven, Some(continue_prompt.trim()))
            }
            then => (then, None),
        };
        let line = launch_line(&self.config, name, &active, workdir, &home, id, how, prompt);
        self.push(Action::TypeLine {
            session: name.into(),
            line: line.clone(),
        });
        let deadline_ms = self.now_ms + limits::LAUNCH_TIMEOUT_MS;
        let state = self.state.sessions.get_mut(name).expect("session state exists");
        state.conversation = Some(id.into());
        state.cwd = Some(workdir.to_path_buf());
        state.account = Some(active);
        state.stale_hits.clear();
        state.limit_pending = false;
        state.wrapped_up = false;
        state.self_continuing = false;
        state.usable_since_ms = None;
        state.unconfirmed_polls = 0;
        // A new Claude: it reports through the hooks again once it has started.
        state.hooked = false;
        state.background_tasks = 0;
        state.last_message = None;
        state.activity = Activity::Launching {
            since_ms: self.now_ms,
            deadline_ms,
            then,
            line,
        };
        true
    }

    /// Runs the configured hook for `event`, if any, with `CCL_EVENT` and the given facts.
    pub(crate) fn hook(&mut self, event: &str, facts: Vec<(&str, String)>) {
        let command = match event {
            "on_swap" => &self.config.hooks.on_swap,
            "on_all_exhausted" => &self.config.hooks.on_all_exhausted,
            "on_task_done" => &self.config.hooks.on_task_done,
            "on_task_failed" => &self.config.hooks.on_task_failed,
            "on_needs_attention" => &self.config.hooks.on_needs_attention,
            "on_account_unhealthy" => &self.config.hooks.on_account_unhealthy,
            _ => return,
        };
        if command.trim().is_empty() {
            return;
        }
        let mut env = vec![("CCL_EVENT".to_string(), event.trim_start_matches("on_").to_string())];
        env.extend(facts.into_iter().map(|(k, v)| (k.to_string(), v)));
        self.push(Action::RunHook {
            event: event.into(),
            command: command.clone(),
            env,
        });
    }
}

/// A `Notification` that waits for the operator: a permission or a question prompt
/// (not the reminder that Claude is idle, nor a login that succeeded).
fn asks_the_operator(kind: &str) -> bool {
    kind.contains("permission") || kind.contains("elicitation") || kind.contains("question")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_line_quotes_paths_and_runs_in_a_shell() {
        let mut config = crate::core::tests::config();
        let line = |config: &crate::config::Config| {
            launch_line(
                config,
                "ccl-auto-11",
                "a",
                Path::new("/tmp/my dir/it's"),
                Path::new("/h/acc one"),
                "0b1c2d3e-0000-4000-8000-000000000001",
                Continue::Resume,
                None,
            )
        };
        assert_eq!(
            line(&config),
            "cd '/tmp/my dir/it'\\''s' && CLAUDE_CONFIG_DIR='/h/acc one' CCL_SESSION=ccl-auto-11 claude --dangerously-skip-permissions --settings /state/signals/settings-a.json --resume 0b1c2d3e-0000-4000-8000-000000000001"
        );
        // Signals off: the line a Claude Code without --settings understands.
        config.claude.signals = false;
        assert_eq!(
            line(&config),
            "cd '/tmp/my dir/it'\\''s' && CLAUDE_CONFIG_DIR='/h/acc one' claude --dangerously-skip-permissions --resume 0b1c2d3e-0000-4000-8000-000000000001"
        );
    }

    #[test]
    fn a_one_line_prompt_goes_last_on_the_launch_line_and_anything_else_stays_off_it() {
        let config = crate::core::tests::config();
        let line = |prompt: &str| {
            launch_line(
                &config,
                "ccl-auto-11",
                "a",
                Path::new("/w"),
                Path::new("/h/a"),
                "0b1c2d3e-0000-4000-8000-000000000001",
                Continue::Resume,
                Some(prompt),
            )
        };
        let bare = "cd /w && CLAUDE_CONFIG_DIR=/h/a CCL_SESSION=ccl-auto-11 claude --dangerously-skip-permissions --settings /state/signals/settings-a.json --resume 0b1c2d3e-0000-4000-8000-000000000001";
        assert_eq!(line("Go on, it's fine."), format!("{bare} 'Go on, it'\\''s fine.'"));
        // Claude would take these for an option, or the shell would end the line early.
        for prompt in ["--help me", "two\nlines", "tab\there", "", "  "] {
            assert_eq!(line(prompt), bare, "{prompt:?}");
        }
    }
}
