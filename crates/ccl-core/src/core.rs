//! The decision core: one [`Core`] value holds every decision ccl makes, and
//! [`Core::step`] turns one [`Observation`] into a list of [`Action`]s.
//!
//! The core is sans-IO: it never reads a clock, a file, an environment variable or a
//! process. Time arrives as `Observation::now_ms`, the host's time zone is fixed when the
//! core is built, and new conversation ids come from a generator whose seed lives in the
//! persisted state. That makes a recorded run replayable action for action (see
//! `trace.rs`). Each turn runs four phases in a fixed order — quota poll, dispatch scan,
//! watcher completion check, swap state machine — so a usage-limit hit seen in a turn
//! blocks dispatch in that same turn. The phases live in `quota.rs`, `dispatch.rs`,
//! `watcher.rs` and `swap.rs`; per-session bookkeeping in `sessions.rs`, accounts in
//! `accounts.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::event::Event;
use crate::names::{AccountName, ConversationId, QueueName, SessionName, TaskName};
use crate::screen::{self, Analysis};
use crate::task::InboxEntry;
use crate::transcript::{Record, RegistryEntry};

/// Milliseconds since the Unix epoch, UTC.
pub type Ms = i64;

// ---------------------------------------------------------------------------------------
// Inputs

/// Everything the shell saw this turn. Serialisable so a trace can feed it back.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observation {
    pub now_ms: Ms,
    /// Every session on the tmux server, managed or not (names only matter for the
    /// latter); `None` when tmux could not be asked this turn.
    pub sessions: Option<Vec<SessionObs>>,
    /// Session registry entries of running Claudes, matched to managed sessions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registry: Vec<RegistrySeen>,
    /// New transcript records of managed sessions whose conversation id is known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcripts: Vec<TranscriptSeen>,
    pub queues: Vec<QueueObs>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<Request>,
    /// Claims from the previous turn that failed (another process took the file first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_claims: Vec<TaskRef>,
    /// Claims from the previous turn that failed for a reason that lasts (the inbox on
    /// another file system, `running/` not writable): not a race, so not retried blindly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_errors: Vec<ClaimError>,
    /// Hooks that ended since the last turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks_done: Vec<HookDone>,
    /// Configured working directories (`pool.workdir`, each dedicated `workdir`) that do
    /// not exist this turn: no session is created in one, nor anywhere else instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_dirs: Vec<PathBuf>,
    /// What the conversations of pool sessions that carry no task were started with, for
    /// a core that has tasks in `running/` nobody owns (see [`Core::wants_work_seen`]):
    /// how a task whose record `state.json` lost is found still being worked on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub work_seen: Vec<WorkSeen>,
    /// What became of last turn's `AddWorktree` actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worktrees: Vec<WorktreeOutcome>,
    /// What Claudes launched with ccl's `--settings` reported since the last turn, in the
    /// order they wrote it (status lines: only the latest per session).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<SignalSeen>,
}

impl Observation {
    /// This turn's new transcript records of `session`'s conversation.
    pub fn records_of<'a>(&'a self, session: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.transcripts
            .iter()
            .filter(move |t| t.session == session)
            .flat_map(|t| &t.records)
    }
}

/// One report of a Claude's hook or status line, matched to a managed session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalSeen {
    pub session: SessionName,
    /// The configured account whose home the Claude runs under (its `CLAUDE_CONFIG_DIR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountName>,
    /// When the hook wrote it.
    pub at_ms: Ms,
    #[serde(flatten)]
    pub event: HookEvent,
}

/// What a hook or the status line said, reduced to what ccl decides on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HookEvent {
    /// `SessionStart`: the conversation this Claude runs now (`source`: startup, resume,
    /// clear, compact — the id changes on the last two).
    SessionStart {
        conversation: ConversationId,
        cwd: PathBuf,
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// `UserPromptSubmit`: a prompt was taken.
    PromptSubmitted { conversation: ConversationId },
    /// `Stop`: the turn ended; not finished while background tasks still run.
    Stop {
        conversation: ConversationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_message: Option<String>,
        #[serde(default)]
        background_running: u32,
    },
    /// `StopFailure`: the turn ended with an API error (`rate_limit` for a usage limit).
    StopFailure {
        conversation: ConversationId,
        error: String,
        message: String,
    },
    /// `Notification`: a permission, question or idle prompt.
    Notification { kind: String, message: String },
    /// `SessionEnd`: this Claude is exiting (`reason`: `prompt_input_exit` after `/exit`,
    /// `clear`, `logout`, `other`); its shell prompt follows a few milliseconds later.
    SessionEnd {
        conversation: ConversationId,
        reason: String,
    },
    /// The status line: the account's usage windows, the conversation's cost and model.
    Status {
        conversation: ConversationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        five_hour: Option<UsageWindow>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seven_day: Option<UsageWindow>,
    },
}

impl HookEvent {
    /// The conversation the report is about, when it names one.
    pub fn conversation(&self) -> Option<&str> {
        match self {
            HookEvent::SessionStart { conversation, .. }
            | HookEvent::PromptSubmitted { conversation }
            | HookEvent::Stop { conversation, .. }
            | HookEvent::StopFailure { conversation, .. }
            | HookEvent::SessionEnd { conversation, .. }
            | HookEvent::Status { conversation, .. } => Some(conversation.as_str()),
            HookEvent::Notification { .. } => None,
        }
    }
}

/// A pool session whose Claude (per its registry entry) works in a queue's project, and
/// what its conversation's first prompt is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkSeen {
    pub session: SessionName,
    pub queue: QueueName,
    pub prompt: FirstPrompt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FirstPrompt {
    /// No prompt in its transcript yet (or no transcript yet): it may be about to get one.
    Pending,
    /// The body of this task in the queue's `running/`.
    Task { task: String },
    /// No prompt yet, and the body of this task in `running/` sits unsent in Claude's
    /// input box: ccl's own paste, cut off before its Enter by a crash that also lost
    /// `state.json`.
    InBox { task: String },
    /// Something that is no task in `running/`.
    Other,
}

/// One usage window of an account as the API reported it with its last answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageWindow {
    pub used_pct: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_at_ms: Option<Ms>,
}

/// An account's usage meters, from the latest status line of any Claude running under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub five_hour: Option<UsageWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seven_day: Option<UsageWindow>,
    /// When the status line reported it.
    pub seen_ms: Ms,
    /// The session whose status line it was.
    pub session: SessionName,
}

/// A git worktree ccl made for one task: the task's Claude runs in `path`, on `branch`,
/// which started at commit `base` (the project's `HEAD` then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worktree {
    pub path: PathBuf,
    pub branch: String,
    pub base: String,
}

/// The result of one `AddWorktree`: the worktree, or git's message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorktreeOutcome {
    pub session: SessionName,
    pub task: TaskRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<Worktree>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionObs {
    pub name: SessionName,
    pub pane_pid: u32,
    pub command: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dead: bool,
    /// The pane's visible text; captured for managed sessions only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    /// The pid of a Claude in the foreground of this pane, as its registry entry and the
    /// pane's foreground process group show it, whatever the process is called (a
    /// wrapper script's interpreter, say). Managed sessions only; None when no registry
    /// entry for this session names a foreground process (or in traces from before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claude_pid: Option<u32>,
    /// The pane's foreground process (the leader of the terminal's foreground process
    /// group), read for dedicated sessions whose command is Claude: the process a swap
    /// stops when Claude's registry names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreground_pid: Option<u32>,
    /// The pane these facts are about (`%N`): the one running the session's Claude
    /// conversation when ccl knows it, else the active pane. None in older traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pane_id: Option<String>,
    /// Panes in the session; more than one when the operator split its window.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub n_panes: u32,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// A claim that failed for a lasting reason, with the cause as the OS gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimError {
    pub task: TaskRef,
    pub cause: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrySeen {
    pub session: SessionName,
    /// The account whose home the registry file was found in.
    pub account: AccountName,
    pub entry: RegistryEntry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSeen {
    pub session: SessionName,
    pub conversation: ConversationId,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueObs {
    pub name: QueueName,
    /// Oldest first, at most `queue::MAX_SCAN_ENTRIES`.
    pub inbox: Vec<InboxEntry>,
    /// Names in `running/`.
    pub running: Vec<TaskName>,
}

/// A control request dropped into `state_dir/requests/` by `ccl swap`, `pause`, `resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    #[serde(flatten)]
    pub kind: RequestKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum RequestKind {
    Swap {
        to: Option<String>,
    },
    Pause {
        queue: Option<String>,
    },
    Resume {
        queue: Option<String>,
    },
    /// `ccl account enable|disable NAME`.
    Account {
        account: AccountName,
        enable: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookDone {
    pub event: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_first_line: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Outputs

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Normal operation, a swap included.
    Info,
    /// Degraded operation: work waits, is put back or lost, an account cannot work.
    Warn,
    /// A broken invariant (a failed state save, a failed stop); the core never decides one.
    Error,
}

/// One thing for the shell to do. Carried out in order; each names what it touches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A detached session with a login shell in `workdir`.
    CreateSession {
        session: SessionName,
        workdir: PathBuf,
        reason: String,
    },
    KillSession {
        session: SessionName,
        reason: String,
    },
    /// A shell command line typed into the session's shell, then Enter.
    TypeLine {
        session: SessionName,
        line: String,
    },
    /// Text for Claude, pasted (bracketed) into its input box; Enter comes separately.
    PasteText {
        session: SessionName,
        text: String,
    },
    /// The body of `running/TASK` pasted (bracketed) into Claude's input box.
    PasteTask {
        session: SessionName,
        queue: QueueName,
        task: TaskName,
    },
    SendKeys {
        session: SessionName,
        keys: Vec<String>,
    },
    /// SIGTERM to exactly one process, `pid`: the Claude running the session's
    /// conversation (from Claude's registry entry naming the pane, else the pane's
    /// foreground process). How a dedicated session's Claude is stopped for a swap, since
    /// the operator's sessions are never typed `/exit`; no other process in the pane is
    /// signalled. The shell checks again that `pid` is a Claude under that pane.
    StopClaude {
        session: SessionName,
        pid: u32,
    },
    /// `inbox/TASK` → `running/TASK`; on failure the shell skips the session's remaining
    /// actions this turn and reports the task in the next observation's `failed_claims`.
    ClaimTask {
        session: SessionName,
        queue: QueueName,
        task: TaskName,
    },
    /// `git worktree add` for a claimed task of an isolated queue: a new branch
    /// `ccl/NAME` from the project's `HEAD`, checked out in `worktree_dir/NAME`, where
    /// NAME is `name` or, when that branch or directory exists, the first free `name-N`
    /// (a worktree is never reused). The outcome comes back in the next observation.
    AddWorktree {
        session: SessionName,
        queue: QueueName,
        task: TaskName,
        name: String,
    },
    FinishTask {
        queue: QueueName,
        task: TaskName,
        report: TaskReport,
    },
    FailTask {
        queue: QueueName,
        task: TaskName,
        from: String,
        reason: String,
    },
    RequeueTask {
        queue: QueueName,
        task: TaskName,
        reason: String,
    },
    Reply {
        id: String,
        ok: bool,
        message: String,
    },
    RunHook {
        event: String,
        command: String,
        env: Vec<(String, String)>,
    },
    /// A decision of the core (quota, swap step, task outcome), logged at its level.
    Event(Event),
    /// A free-form log line, for what is not one of the typed decisions.
    Log {
        level: Level,
        message: String,
    },
}

impl Action {
    /// The session an action types into or changes, if any.
    pub fn session(&self) -> Option<&str> {
        match self {
            Action::CreateSession { session, .. }
            | Action::KillSession { session, .. }
            | Action::TypeLine { session, .. }
            | Action::PasteText { session, .. }
            | Action::PasteTask { session, .. }
            | Action::SendKeys { session, .. }
            | Action::StopClaude { session, .. }
            | Action::ClaimTask { session, .. }
            | Action::AddWorktree { session, .. } => Some(session),
            _ => None,
        }
    }
}

impl Action {
    /// The task this action moves out of `running/` (finish, fail from running, requeue).
    pub fn running_move(&self) -> Option<TaskRef> {
        match self {
            Action::FinishTask { queue, task, .. } | Action::RequeueTask { queue, task, .. } => Some(TaskRef {
                queue: queue.clone(),
                task: task.clone(),
            }),
            Action::FailTask { queue, task, from, .. } if from == "running" => Some(TaskRef {
                queue: queue.clone(),
                task: task.clone(),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateSession {
                session,
                workdir,
                reason,
            } => {
                write!(f, "create session {session} in {} ({reason})", workdir.display())
            }
            Action::KillSession { session, reason } => write!(f, "kill session {session} ({reason})"),
            Action::TypeLine { session, line } => write!(f, "type into {session}: {line}"),
            Action::PasteText { session, text } => {
                write!(f, "paste into {session}: {}", crate::util::snippet(text, 80))
            }
            Action::PasteTask { session, queue, task } => write!(f, "paste task {queue}/{task} into {session}"),
            Action::SendKeys { session, keys } => write!(f, "send {} to {session}", keys.join(" ")),
            Action::StopClaude { session, pid } => write!(f, "stop claude in {session} (SIGTERM to pid {pid})"),
            Action::ClaimTask { session, queue, task } => write!(f, "claim {queue}/{task} for {session}"),
            Action::AddWorktree {
                session,
                queue,
                task,
                name,
            } => write!(f, "add worktree ccl/{name} for {queue}/{task} in {session}"),
            Action::FinishTask { queue, task, report } => {
                write!(
                    f,
                    "task {queue}/{task} done in {} ({}s)",
                    report.session,
                    report.duration_ms / 1000
                )
            }
            Action::FailTask {
                queue,
                task,
                from,
                reason,
            } => write!(f, "task {queue}/{task} failed from {from}: {reason}"),
            Action::RequeueTask { queue, task, reason } => write!(f, "task {queue}/{task} back to inbox: {reason}"),
            Action::Reply { id, ok, message } => {
                write!(f, "reply {id} ({}): {message}", if *ok { "ok" } else { "refused" })
            }
            Action::RunHook { event, command, .. } => write!(f, "hook {event}: {command}"),
            Action::Event(event) => write!(f, "{event}"),
            Action::Log { message, .. } => f.write_str(message),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub session: SessionName,
    pub account: AccountName,
    pub conversation: Option<ConversationId>,
    pub started: String,
    pub finished: String,
    pub duration_ms: i64,
    pub attempts: u32,
    /// Set when the task's session was adopted at start (the state had lost it): how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<String>,
    /// Set when this record was written after a restart, from the move decided before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
    /// The task's worktree (isolated queues); the shell adds its commits ahead of the
    /// base and whether its tree is clean when it writes the record. Boxed: most tasks
    /// have none, and every `FinishTask` carries a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<Box<Worktree>>,
    /// What Claude itself reported about the task (its hooks and status line); written
    /// as top-level fields. Boxed, as `worktree` is, so an action stays small.
    #[serde(flatten)]
    pub reported: Box<Reported>,
}

/// What the signals said about a finished task, when they said it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reported {
    /// Claude's last message of the task's turn (from `Stop`), capped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The conversation's cost so far as the status line reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

// ---------------------------------------------------------------------------------------
// State (this is what state.json holds)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Pool,
    Dedicated,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskRef {
    pub queue: QueueName,
    pub task: TaskName,
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.queue, self.task)
    }
}

/// A task a pool session is carrying.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub task: TaskRef,
    pub claimed_ms: Ms,
    /// When the prompt was verified as submitted.
    #[serde(default)]
    pub started_ms: Option<Ms>,
    pub attempt: u32,
    /// Set when the task was adopted at start from a session found working on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<String>,
    /// The git worktree this attempt runs in (isolated queues), once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<Worktree>,
}

/// What ccl is doing with a session (the multi-turn state machine). What the pane shows
/// is observed afresh every turn and kept in [`SessionState::seen`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "activity", rename_all = "snake_case")]
pub enum Activity {
    /// Nothing in flight.
    Free,
    /// A task of an isolated queue was claimed and its worktree asked for; Claude is
    /// launched in it once the shell reports it made.
    Preparing { since_ms: Ms },
    /// A launch line was typed; waiting for Claude's idle input box.
    Launching {
        /// When the line was typed (0 in a state saved before this was kept: long ago).
        #[serde(default)]
        since_ms: Ms,
        deadline_ms: Ms,
        then: AfterLaunch,
        /// The line typed, so a launch interrupted by a crash can be typed again.
        #[serde(default)]
        line: String,
    },
    /// The task (or continue prompt) was pasted; Enter follows at `enter_ms`
    /// (`submit_delay` after a paste; at once for a paste found unsent after a restart).
    Pasted {
        at_ms: Ms,
        /// When Enter is due (0 in a state saved before this was kept: due now).
        #[serde(default)]
        enter_ms: Ms,
        text: PasteKind,
    },
    /// Enter was sent; waiting to see the prompt taken.
    Submitted { at_ms: Ms, enters: u32, text: PasteKind },
    /// Claude is working on the prompt.
    Working {
        since_ms: Ms,
        turn_ended: bool,
        idle_turns: u32,
    },
    /// `/exit` was sent to recycle the context; waiting for the shell.
    Exiting { deadline_ms: Ms },
    /// Stopping Claude for a swap: SIGTERM to it, or Escape first where needed, then
    /// `/exit` (see `swap.rs`).
    Stopping {
        /// When the stop began (0 in a state saved before this was kept: long ago).
        #[serde(default)]
        since_ms: Ms,
        deadline_ms: Ms,
        exit_sent: bool,
        /// When `/exit` was last typed, so one that left Claude idle can be typed again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_at_ms: Option<Ms>,
        /// The stop was a SIGTERM to Claude (`exit_sent` is then set too): nothing is
        /// typed into it after that.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        signalled: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterLaunch {
    /// Paste the session's assigned task.
    Task,
    /// Send `dispatch.continue_prompt` (a pool task resumed after a swap).
    Continue,
    /// Nothing to send: the launch line gave Claude `dispatch.continue_prompt` as its
    /// first prompt, which it takes as it starts (a pool task resumed after a swap).
    ContinueGiven,
    /// Nothing: a resumed dedicated conversation is left for the operator.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasteKind {
    Task,
    Continue,
    /// The continue prompt given on Claude's command line: nothing was pasted, and no
    /// Enter is pressed for it.
    ContinueGiven,
}

/// What the pane showed at the last observation, as the core understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seen {
    Unknown,
    Absent,
    Dead,
    Shell,
    Idle,
    Busy,
    Menu,
    Attention,
    /// Something else runs in the foreground.
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub kind: Kind,
    pub seen: Seen,
    pub activity: Activity,
    /// The account the Claude in this session runs under, when ccl knows it.
    #[serde(default)]
    pub account: Option<AccountName>,
    #[serde(default)]
    pub conversation: Option<ConversationId>,
    /// The conversation's working directory (resume there).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub assignment: Option<Assignment>,
    /// Why the session needs the operator; nothing is typed into it meanwhile.
    #[serde(default)]
    pub attention: Option<String>,
    /// Limit lines on screen when Claude last became ready: a redraw, not news.
    #[serde(default)]
    pub stale_hits: Vec<String>,
    /// A limit hit without reset time, seen on this many consecutive turns.
    #[serde(default)]
    pub unconfirmed_polls: u32,
    /// A usage limit stopped this session's turn; cleared when it is resumed/continued.
    #[serde(default)]
    pub limit_pending: bool,
    /// Claude ended the current turn early to wrap up before the usage limit: the turn is
    /// not the task's end, and the task continues after the swap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wrapped_up: bool,
    /// Claude itself is waiting for the limit to reset and will continue the turn on its
    /// own ("continuing automatically at …"): ccl sends no continue prompt on top.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub self_continuing: bool,
    /// While Claude waits by itself: when ccl first saw its account usable again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usable_since_ms: Option<Ms>,
    /// The last usage-gauge line read from this session's screen, so a gauge that stays
    /// on screen is one reading, not one per turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gauge_line: Option<String>,
    #[serde(default)]
    pub pane_pid: Option<u32>,
    /// The pane ccl works with (`%N`): the session's only pane when it was seen alone,
    /// kept whatever pane the operator makes active after splitting the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pane_id: Option<String>,
    /// That pane is gone while other panes of the session remain: ccl does nothing there
    /// (no requeue, no typing) until one pane is left.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pane_lost: bool,
    /// The last quota decision logged for this session, so a banner that stays on screen
    /// is logged once, not every turn.
    #[serde(default)]
    pub quota_note: Option<String>,
    /// The pane's last line as first seen when its shell came to the foreground (a new
    /// pane, or the program before it ended): the prompt with nothing typed after it. The
    /// shell's command line is empty only while its last line reads exactly this; ccl
    /// never guesses emptiness from how a prompt ends. Forgotten whenever a program
    /// other than the shell runs in the pane or the pane is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_prompt: Option<String>,
    /// A dedicated session's unsent draft, read from Claude's input box before a swap
    /// stopped it; typed back (never submitted) into the resumed conversation's box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<String>,
    /// The Claude in front reported `SessionStart` through ccl's hooks: its signals decide,
    /// and the registry no longer overrides its conversation id. Cleared when it exits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hooked: bool,
    /// Model and cost of the conversation, from its hooks and status line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Claude's last message of the current turn (from `Stop`), for the task's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    /// The last `Stop` said this many background tasks still run: the turn is not done.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub background_tasks: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl SessionState {
    pub fn new(kind: Kind) -> SessionState {
        SessionState {
            kind,
            seen: Seen::Unknown,
            activity: Activity::Free,
            account: None,
            conversation: None,
            cwd: None,
            assignment: None,
            attention: None,
            stale_hits: Vec::new(),
            unconfirmed_polls: 0,
            limit_pending: false,
            wrapped_up: false,
            self_continuing: false,
            usable_since_ms: None,
            gauge_line: None,
            pane_pid: None,
            pane_id: None,
            pane_lost: false,
            quota_note: None,
            shell_prompt: None,
            draft: None,
            hooked: false,
            model: None,
            cost_usd: None,
            last_message: None,
            background_tasks: 0,
        }
    }

    pub fn claude_in_front(&self) -> bool {
        matches!(self.seen, Seen::Idle | Seen::Busy | Seen::Menu | Seen::Attention)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountState {
    /// Exhausted until this instant; `None` = available.
    #[serde(default)]
    pub exhausted_until_ms: Option<Ms>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Usage meters from the status line of a Claude running under this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Why the account cannot work (login revoked or expired, organisation disabled):
    /// never a swap target until a session under it works or the operator enables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy: Option<String>,
    /// Taken out of rotation by `ccl account disable`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwapRecord {
    pub from: AccountName,
    pub to: AccountName,
    pub at_ms: Ms,
    pub reason: String,
}

/// A swap in progress (persisted, so a restart finishes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Swap {
    pub from: AccountName,
    pub to: AccountName,
    pub reason: String,
    pub started_ms: Ms,
    /// Reply to this request when done (manual swap).
    #[serde(default)]
    pub request: Option<String>,
    pub members: Vec<SwapMember>,
    /// A swap before the limit: the target is already active (new work starts there),
    /// and each member moves at its own turn boundary instead of being stopped at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_boundary: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwapMember {
    pub session: SessionName,
    pub kind: Kind,
    pub conversation: Option<ConversationId>,
    pub cwd: Option<PathBuf>,
    pub had_task: bool,
    /// Claude is gone from it (in a swap at turn boundaries: it has moved).
    pub stopped: bool,
    /// Relaunched under the target already, in the turn it stopped (a hard swap with the
    /// signals on); the others are relaunched when the last member has stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relaunched: bool,
    /// A dedicated session whose Claude could not be stopped: left running as it is
    /// (the operator's session is never killed) and not relaunched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left_running: bool,
}

impl SwapMember {
    /// `name` as a member of a swap beginning now, from its state `s`.
    pub(crate) fn of(name: &SessionName, s: &SessionState) -> SwapMember {
        SwapMember {
            session: name.clone(),
            kind: s.kind,
            conversation: s.conversation.clone().filter(|id| crate::screen::is_uuid(id)),
            cwd: s.cwd.clone(),
            had_task: s.assignment.is_some(),
            stopped: false,
            relaunched: false,
            left_running: false,
        }
    }
}

/// Everything ccl must remember across restarts; saved to `state.json` after every turn
/// that changed it, before that turn's actions are carried out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub active: AccountName,
    pub accounts: BTreeMap<AccountName, AccountState>,
    pub sessions: BTreeMap<SessionName, SessionState>,
    #[serde(default)]
    pub swap: Option<Swap>,
    #[serde(default)]
    pub cooldown_until_ms: Option<Ms>,
    #[serde(default)]
    pub last_swap: Option<SwapRecord>,
    #[serde(default)]
    pub swaps: u32,
    /// Which queues are paused.
    #[serde(default)]
    pub paused: Paused,
    /// Which queue dispatch looks at first next time (round robin).
    #[serde(default)]
    pub queue_cursor: usize,
    /// Attempts per task, kept while the task is not done or failed.
    #[serde(default)]
    pub attempts: BTreeMap<String, u32>,
    /// All accounts exhausted: dispatch waits, and `on_all_exhausted` fired once.
    #[serde(default)]
    pub all_exhausted: bool,
    /// Draining this account before its limit: no new tasks under it; swap once the
    /// pool's tasks are done.
    #[serde(default)]
    pub draining: Option<AccountName>,
    /// Every account is at or above `quota.swap_at`; logged once, and the fleet stays
    /// where it is rather than idling.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_over_swap_at: bool,
    /// Seed of the conversation-id generator (advanced on every id).
    pub id_seed: u64,
    /// The core has run its start-up reconciliation.
    #[serde(default)]
    pub started: bool,
    /// Task file moves decided (`FinishTask`, `FailTask` from `running/`, `RequeueTask`)
    /// and not yet seen carried out. They are saved with the turn that decides them,
    /// before they run, so a daemon killed in between redoes them at start instead of
    /// taking the file for an abandoned task (see `dispatch::settle_moves`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<Action>,
    /// Bad inbox files already sent to `failed/`, by `queue/name`, with the size and
    /// mtime they had: each bad file is filed and reported once, even when the move
    /// fails and leaves it in the inbox. Forgotten once the file is gone or changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bad_files: BTreeMap<String, BadFile>,
    /// Queues whose last claim failed for a lasting reason: reported once, retried now
    /// and then, not every turn.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claim_blocked: BTreeMap<QueueName, ClaimBlock>,
    /// Tasks in `running/` nobody owns, held back from the inbox because a pool Claude in
    /// their project may be about to show it works on them (since when).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<(TaskRef, Ms)>,
}

/// A bad inbox file the core has filed (see [`State::bad_files`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadFile {
    pub len: u64,
    pub mtime_ms: Ms,
    /// Seen still in the inbox after it was filed, and said so.
    #[serde(default)]
    pub noted: bool,
}

/// Why a queue's claims fail, and when to try one again (see [`State::claim_blocked`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimBlock {
    pub cause: String,
    pub retry_ms: Ms,
    /// A claim was sent as a retry; no error for it in the next turn means it worked.
    #[serde(default)]
    pub probing: bool,
}

pub const STATE_VERSION: u32 = 1;

impl State {
    /// A fresh state: first account active, `seed` for conversation ids (chosen by the shell).
    pub fn fresh(config: &Config, seed: u64) -> State {
        State {
            version: STATE_VERSION,
            active: config.accounts[0].name.clone(),
            accounts: config
                .accounts
                .iter()
                .map(|a| (a.name.clone(), AccountState::default()))
                .collect(),
            sessions: BTreeMap::new(),
            swap: None,
            cooldown_until_ms: None,
            last_swap: None,
            swaps: 0,
            paused: Paused::default(),
            queue_cursor: 0,
            attempts: BTreeMap::new(),
            all_exhausted: false,
            draining: None,
            all_over_swap_at: false,
            id_seed: seed,
            started: false,
            moves: Vec::new(),
            bad_files: BTreeMap::new(),
            claim_blocked: BTreeMap::new(),
            held: Vec::new(),
        }
    }

    /// Brings a loaded state in line with the configuration: accounts added or removed,
    /// an active account that no longer exists, sessions no longer managed.
    pub fn align(&mut self, config: &Config) {
        self.accounts.retain(|name, _| config.account(name).is_some());
        for a in &config.accounts {
            self.accounts.entry(a.name.clone()).or_default();
        }
        if config.account(&self.active).is_none() {
            self.active = config.accounts[0].name.clone();
        }
        self.sessions.retain(|name, _| config.is_managed(name));
    }
}

// ---------------------------------------------------------------------------------------
// The core

/// The configuration's extra wordings; a validated configuration always compiles.
fn extra_patterns(config: &Config) -> screen::Extra {
    let s = &config.screen;
    screen::Extra::compile(&s.extra_limit, &s.extra_server_error, &s.extra_warning).unwrap_or_default()
}

/// Limits and deadlines of the state machines, in one place.
pub mod limits {
    /// A launched Claude must show its idle input box within this.
    pub const LAUNCH_TIMEOUT_MS: i64 = 60_000;
    /// A prompt back at the shell this long after a launch line means Claude exited.
    pub const LAUNCH_GRACE_MS: i64 = 2_000;
    /// After Enter, the prompt must be seen taken within this, else Enter once more.
    pub const SUBMIT_VERIFY_MS: i64 = 4_000;
    /// Enters sent for one prompt before giving up on the session.
    pub const MAX_ENTERS: u32 = 2;
    /// `/exit` must bring the shell back within this, else the session is recreated.
    pub const EXIT_TIMEOUT_MS: i64 = 30_000;
    /// A swap's stop stage: Claude must be gone from every member within this.
    pub const STOP_TIMEOUT_MS: i64 = 30_000;
    /// A swap's `/exit` that left Claude idle this long was eaten (a menu that popped up
    /// as it was typed took its Enter): it is typed again.
    pub const EXIT_RETRY_MS: i64 = 5_000;
    /// After a hook announces a screen change that follows it by milliseconds
    /// (`SessionEnd`: the shell; `SessionStart`: the input box), the loop looks again this
    /// soon, and again, until the screen shows it.
    pub const FOLLOW_UP_MS: i64 = 100;
    /// After ccl's own Escape into a hooked Claude that a swap stops (no hook reports an
    /// interrupt), the loop looks again after this, and types nothing more into it before
    /// then whatever the screen shows: long enough for Claude to redraw (about 100 ms on
    /// an idle machine), and for its next Escapes not to be taken together with this one
    /// as a double press (2.1.328 took two Escapes 0.6 s apart as one, 0.8 s apart as two;
    /// on an empty box a double press opens the rewind menu).
    pub const KEYS_FOLLOW_UP_MS: i64 = 1_000;
    /// After the Escape pair that clears a box, or `/exit`, the loop looks again this
    /// soon, and again, until the screen shows the change: what comes next is `/exit` or
    /// nothing, never an Escape that could pair with these.
    pub const CLEAR_FOLLOW_UP_MS: i64 = 200;
    /// ... and presses its keys again (Escape, or the Escape pair that clears the box) only
    /// this long after the last ones, whatever an early look shows: a screen Claude has not
    /// redrawn yet is no sign the keys were lost.
    pub const KEYS_RETRY_MS: i64 = 2_000;
    /// Follow-ups end this long after they began; the tick takes over.
    pub const FOLLOW_UP_WINDOW_MS: i64 = 5_000;
    /// Attempts per task before it is failed.
    pub const MAX_ATTEMPTS: u32 = 3;
    /// A task in `running/` nobody owns is held back from the inbox at most this long
    /// while a pool Claude in its project has no first prompt yet. A Claude that is
    /// working on the task shows it within a turn or two (its transcript's first prompt,
    /// or the body in its box); one launched by a daemon that died before the paste
    /// never will, and every turn held is a turn the task does not run.
    pub const HOLD_UNOWNED_MS: i64 = 10_000;
    /// Idle turns after a finished turn before a task counts as done.
    pub const IDLE_TURNS_TO_FINISH: u32 = 2;
    /// Bad inbox files filed to `failed/` per queue per turn.
    pub const MAX_BAD_PER_TURN: usize = 16;
    /// A queue whose claims fail for a lasting reason is tried again after this.
    pub const CLAIM_RETRY_MS: i64 = 60_000;
    /// Width and height of the sessions ccl creates (wide, so Claude's lines don't wrap).
    pub const SESSION_WIDTH: u16 = 200;
    pub const SESSION_HEIGHT: u16 = 50;
    /// Characters of a screen line quoted in a log line.
    pub const SNIPPET_CHARS: usize = 120;
    /// Characters of an operator's draft written to the log when it cannot be put back
    /// into Claude's input box (so it is not lost); longer drafts are cut there.
    pub const MAX_DRAFT_LOG_CHARS: usize = 4_000;
    /// A Claude that said it would continue by itself at the reset gets this long after
    /// its account became usable again before ccl sends its own continue prompt.
    pub const AUTO_CONTINUE_GRACE_MS: i64 = 60_000;
    /// Characters of Claude's last message kept as a task's `result`.
    pub const RESULT_CHARS: usize = 4_000;
}

pub struct Core {
    pub(crate) config: Config,
    pub(crate) tz: jiff::tz::TimeZone,
    pub(crate) state: State,
    /// The operator's extra screen wordings, compiled from `config.screen`.
    pub(crate) extra: screen::Extra,
    /// Per-turn scratch: analyses of this turn's captures, by session.
    pub(crate) screens: BTreeMap<SessionName, Analysis>,
    /// Per-turn scratch: this turn's captures of managed sessions.
    pub(crate) captures: BTreeMap<SessionName, String>,
    /// Per-turn scratch: each managed pane's foreground command, for messages.
    pub(crate) commands: BTreeMap<SessionName, String>,
    /// Per-turn scratch: the pid of the Claude running each managed session's
    /// conversation, where this turn's observation names one (see `handle_sessions`).
    pub(crate) claude_pids: BTreeMap<SessionName, u32>,
    /// Per-turn scratch: `Observation::missing_dirs`.
    pub(crate) missing_dirs: BTreeSet<PathBuf>,
    /// Last turn's captures with their analyses, by session, so that an unchanged
    /// screen is not analysed again (see `analyze_screen`).
    pub(crate) last_screens: BTreeMap<SessionName, (String, Analysis)>,
    /// Size and mtime of every inbox file at the last observation, by (queue, name): a
    /// file is taken only once it is the same on two observations in a row.
    pub(crate) inbox_seen: BTreeMap<(QueueName, TaskName), (u64, Ms)>,
    /// Per-turn scratch: the actions being built.
    pub(crate) out: Vec<Action>,
    pub(crate) now_ms: Ms,
    /// Sessions whose screen is about to change, by what it is about to show and since
    /// when: a hook announced it (`SessionEnd`, `SessionStart`) or ccl pressed Escape in a
    /// hooked Claude it stops. The loop looks again within milliseconds rather than at the
    /// next tick (`next_wake_ms`). Kept for this process only: after a restart the tick
    /// moves these stages on, as it does for Claudes without hooks.
    pub(crate) follow_ups: BTreeMap<SessionName, FollowUp>,
}

/// What ccl last typed into a hooked Claude it stops for a swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pressed {
    /// Escape: interrupts a busy turn, or closes a menu.
    Escape,
    /// The Escape pair that clears a box the interrupted turn refilled.
    Clear,
    /// `/exit`.
    Exit,
}

/// A screen change the loop looks for again soon (see `Core::follow_ups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FollowUp {
    pub(crate) awaiting: Awaiting,
    pub(crate) since_ms: Ms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Awaiting {
    /// Claude reported `SessionEnd`: its shell prompt follows.
    Shell,
    /// A launched Claude reported `SessionStart`: its input box follows.
    Ready,
    /// ccl typed into a hooked Claude it stops for a swap (no hook reports what that did
    /// until `SessionEnd`): the screen redraws.
    Keys(Pressed),
}

impl Core {
    /// Builds the core. `tz` is the host's zone (an IANA name, or "UTC"); unknown names
    /// fall back to UTC so a trace from another host still replays.
    pub fn new(config: Config, mut state: State, tz: &str) -> Core {
        state.align(&config);
        // Start-up reconciliation (tasks in running/ that no session owns) runs once per
        // process, so a `started` loaded from state.json must not skip it after a restart.
        state.started = false;
        let tz = crate::screen::bundled_zone(tz).unwrap_or(jiff::tz::TimeZone::UTC);
        let extra = extra_patterns(&config);
        Core {
            config,
            tz,
            state,
            extra,
            screens: BTreeMap::new(),
            captures: BTreeMap::new(),
            commands: BTreeMap::new(),
            claude_pids: BTreeMap::new(),
            missing_dirs: BTreeSet::new(),
            last_screens: BTreeMap::new(),
            inbox_seen: BTreeMap::new(),
            out: Vec::new(),
            now_ms: 0,
            follow_ups: BTreeMap::new(),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Puts the state back to `state`: the shell could not save the state a turn left, so
    /// that turn is undone (its actions were not carried out) and decided again later.
    pub fn restore(&mut self, state: State) {
        self.state = state;
    }

    /// Why `new` cannot replace the configuration now: work in flight in a session it
    /// would no longer manage (a shrunk pool, a removed dedicated name) or in a queue it
    /// removes or moves (another project). Taking such a configuration would
    /// strand that task in `running/` with nobody to finish, fail or requeue it, so a
    /// reload waits until the work is done. Empty: the reload may go ahead.
    pub fn reload_blockers(&self, new: &Config) -> Vec<String> {
        let mut out = Vec::new();
        let in_swap = |name: &str| {
            self.state
                .swap
                .as_ref()
                .is_some_and(|s| s.members.iter().any(|m| m.session == name))
        };
        for (name, s) in &self.state.sessions {
            if new.is_managed(name) {
                continue;
            }
            if let Some(a) = &s.assignment {
                out.push(format!("{name} is working on {} and would leave the pool", a.task));
            } else if in_swap(name) {
                out.push(format!(
                    "{name} takes part in the swap in progress and would no longer be managed"
                ));
            }
        }
        for q in &self.config.queues {
            let kept = new.queue(&q.name).is_some_and(|n| n.project == q.project);
            if kept {
                continue;
            }
            let tasks: Vec<String> = self
                .state
                .sessions
                .values()
                .filter_map(|s| s.assignment.as_ref().map(|a| a.task.clone()))
                .chain(self.state.moves.iter().filter_map(Action::running_move))
                .filter(|t| t.queue == q.name)
                .map(|t| t.to_string())
                .collect();
            if !tasks.is_empty() {
                out.push(format!(
                    "queue {} would be removed or moved while {} in flight there",
                    q.name,
                    tasks.join(", ")
                ));
            }
        }
        out
    }

    /// Replaces the configuration (SIGHUP reload): the state is realigned.
    pub fn set_config(&mut self, config: Config) {
        self.state.align(&config);
        self.extra = extra_patterns(&config);
        // A changed wording can change what an unchanged screen means.
        self.last_screens.clear();
        self.config = config;
    }

    /// The pane of each managed session ccl works with (see [`SessionState::pane_id`]).
    pub fn pane_pins(&self) -> crate::sessions::Pins {
        self.state
            .sessions
            .iter()
            .filter(|(_, s)| !s.pane_lost)
            .filter_map(|(name, s)| Some((name.clone(), s.pane_id.clone()?)))
            .collect()
    }

    /// Managed sessions whose transcript the shell should read: (session, cwd, id).
    pub fn watch_list(&self) -> Vec<(SessionName, PathBuf, ConversationId)> {
        self.state
            .sessions
            .iter()
            .filter_map(|(name, s)| match (&s.cwd, &s.conversation) {
                (Some(cwd), Some(id)) if s.claude_in_front() || !matches!(s.activity, Activity::Free) => {
                    Some((name.clone(), cwd.clone(), id.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Whether the shell should report [`Observation::work_seen`]: at start, and while a
    /// task is held. Reading first prompts costs a transcript read per session, so it is
    /// asked for only while the answer can change a decision.
    pub fn wants_work_seen(&self) -> bool {
        !self.state.started || !self.state.held.is_empty()
    }

    /// The next instant the core wants a turn for (a paste waiting for its Enter); the
    /// loop wakes then instead of waiting a whole tick.
    pub fn next_wake_ms(&self) -> Option<Ms> {
        let enter = self.state.sessions.values().filter_map(|s| match s.activity {
            Activity::Pasted { enter_ms, .. } => Some(enter_ms),
            _ => None,
        });
        let follow_ups = self.follow_ups.values().map(|f| {
            self.now_ms
                + match f.awaiting {
                    Awaiting::Keys(Pressed::Escape) => limits::KEYS_FOLLOW_UP_MS,
                    Awaiting::Keys(Pressed::Clear | Pressed::Exit) => limits::CLEAR_FOLLOW_UP_MS,
                    Awaiting::Shell | Awaiting::Ready => limits::FOLLOW_UP_MS,
                }
        });
        enter.chain(follow_ups).min()
    }

    /// Looks again soon at `session`, whose screen is about to show what `awaiting` names.
    pub(crate) fn follow_up(&mut self, session: &str, awaiting: Awaiting) {
        let since_ms = self.now_ms;
        self.follow_ups
            .insert(SessionName::from(session), FollowUp { awaiting, since_ms });
    }

    /// Drops the follow-ups whose screen change has shown (the phases acted on it in this
    /// turn) or whose window has passed.
    fn settle_follow_ups(&mut self) {
        let now_ms = self.now_ms;
        let sessions = &self.state.sessions;
        self.follow_ups.retain(|name, f| {
            let Some(s) = sessions.get(name) else { return false };
            if now_ms >= f.since_ms + limits::FOLLOW_UP_WINDOW_MS {
                return false;
            }
            match f.awaiting {
                Awaiting::Shell => !matches!(s.seen, Seen::Shell | Seen::Absent | Seen::Dead),
                Awaiting::Ready => matches!(s.activity, Activity::Launching { .. }) && s.seen != Seen::Idle,
                Awaiting::Keys(Pressed::Exit) => matches!(s.activity, Activity::Stopping { .. }),
                Awaiting::Keys(_) => matches!(s.activity, Activity::Stopping { exit_sent: false, .. }),
            }
        });
    }

    /// One turn. Phases run in a fixed order; see the module doc.
    pub fn step(&mut self, obs: &Observation) -> Vec<Action> {
        self.now_ms = obs.now_ms;
        self.out.clear();
        self.commands.clear();
        let mut captures = std::mem::take(&mut self.captures);
        self.last_screens = std::mem::take(&mut self.screens)
            .into_iter()
            .filter_map(|(name, analysis)| Some((name.clone(), (captures.remove(&name)?, analysis))))
            .collect();
        self.claude_pids.clear();
        self.missing_dirs = obs.missing_dirs.iter().cloned().collect();
        self.handle_sessions(obs);
        self.handle_requests(obs);
        self.poll_quota(obs);
        if obs.sessions.is_none() {
            // tmux could not be listed: what the core believes about the panes is last
            // turn's view, and acting on it could type into a session that changed or
            // count an idle turn nobody saw. No pane is touched until tmux answers again
            // (and start-up reconciliation waits for a turn that sees the sessions).
            return std::mem::take(&mut self.out);
        }
        self.scan_dispatch(obs);
        self.remember_inbox(obs);
        self.check_watcher(obs);
        self.step_swap(obs);
        self.settle_follow_ups();
        self.state.started = true;
        std::mem::take(&mut self.out)
    }

    // -- helpers shared by the phases -----------------------------------------------

    pub(crate) fn event(&mut self, event: Event) {
        self.out.push(Action::Event(event));
    }

    pub(crate) fn log(&mut self, message: impl Into<String>) {
        self.out.push(Action::Log {
            level: Level::Info,
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, message: impl Into<String>) {
        self.out.push(Action::Log {
            level: Level::Warn,
            message: message.into(),
        });
    }

    /// Queues an action. A move of a task out of `running/` is also kept in the state as
    /// an intent until an observation shows it done: every such move goes through here,
    /// so none can be lost to a crash between the state save and the move.
    pub(crate) fn push(&mut self, action: Action) {
        if let Some(task) = action.running_move() {
            self.state.moves.retain(|m| m.running_move().as_ref() != Some(&task));
            self.state.moves.push(action.clone());
        }
        self.out.push(action);
    }

    pub(crate) fn analysis(&self, session: &str) -> Option<&Analysis> {
        self.screens.get(session)
    }

    /// This turn's hook reports of `session` about the conversation it runs now, in the
    /// order Claude wrote them. Reports naming another conversation (a Claude that ran
    /// there before) are not about this one.
    pub(crate) fn signals_of<'a>(&self, obs: &'a Observation, session: &str) -> Vec<&'a HookEvent> {
        let current = self.state.sessions.get(session).and_then(|s| s.conversation.clone());
        obs.signals
            .iter()
            .filter(|s| s.session == session)
            .filter(|s| match s.event.conversation() {
                Some(c) => current.as_deref() == Some(c),
                None => true,
            })
            .map(|s| &s.event)
            .collect()
    }

    /// A new conversation id: a v4-shaped UUID from the seeded generator (splitmix64).
    pub(crate) fn new_conversation_id(&mut self) -> String {
        let mut next = || {
            self.state.id_seed = self.state.id_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.state.id_seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let hi = next();
        let lo = next();
        let hi = (hi & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
        let lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xFFFF,
            hi & 0xFFFF,
            lo >> 48,
            lo & 0xFFFF_FFFF_FFFF
        )
    }

    /// The turn's instant as a timestamp.
    pub(crate) fn timestamp(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.now_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// Limit, warning, login and wrap-up lines on a session's screen now: history once
    /// Claude is ready (a `--resume` redraws them). The gauge is not among them: it is a
    /// reading with its own reset time, true whenever it is seen.
    pub(crate) fn banner_lines(&self, session: &str) -> Vec<String> {
        let Some(a) = self.screens.get(session) else {
            return Vec::new();
        };
        a.quota
            .iter()
            .map(|q| q.line.clone())
            .chain(a.warning.iter().map(|w| w.line.clone()))
            .chain(a.unusable.iter().map(|u| u.line.clone()))
            .chain(a.wrap_up.iter().cloned())
            .collect()
    }

    pub(crate) fn analyze(&self, capture: &str) -> Analysis {
        screen::analyze_with(capture, self.timestamp(), &self.tz, &self.extra)
    }

    /// `analyze` of a managed session's capture. Most screens do not change between two
    /// turns, and analysing one is most of a turn's work at fleet scale, so an unchanged
    /// capture takes last turn's analysis. That is exactly what analysing it again would
    /// give: the time enters an analysis only through the reset time of a limit hit, and
    /// an analysis with a hit is always made afresh.
    pub(crate) fn analyze_screen(&self, session: &str, capture: &str) -> Analysis {
        match self.last_screens.get(session) {
            Some((last, analysis)) if last == capture && analysis.quota.is_none() => analysis.clone(),
            _ => self.analyze(capture),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `state.json` written by an older ccl kept paused queues as names with `"*"` for
    /// all; it must load with the same meaning, and the new form must round-trip.
    #[test]
    fn paused_queues_load_from_the_old_and_the_new_form() {
        let old: Paused = serde_json::from_str(r#"["*", "q2"]"#).unwrap();
        assert!(old.all_paused() && old.is_paused("q1") && old.is_paused("q2"));
        let old: Paused = serde_json::from_str(r#"["q2"]"#).unwrap();
        assert!(!old.is_paused("q1") && old.is_paused("q2"));
        let mut p = Paused::default();
        p.pause(None);
        p.resume(Some("q1"));
        let back: Paused = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert!(!back.is_paused("q1") && back.is_paused("q2") && !back.all_paused());
        p.pause(Some("q1"));
        assert!(p.all_paused());
    }

    /// A small configuration for core tests: two accounts, pool of 2, one dedicated, one queue.
    pub(crate) fn config() -> Config {
        let text = r#"
[daemon]
tick = "2s"
state_dir = "/state"
[[account]]
name = "a"
home = "/homes/a"
[[account]]
name = "b"
home = "/homes/b"
[shared]
target = "/shared"
[pool]
min = 2
max = 2
workdir = "/pool"
[[dedicated]]
name = "ops"
workdir = "/src/ops"
[[queue]]
name = "q"
project = "/src/q"
"#;
        Config::parse(
            text,
            std::path::Path::new("/etc/ccl.toml"),
            Some(std::path::Path::new("/root")),
        )
        .unwrap()
    }

    #[test]
    fn a_reload_brings_new_extra_wordings_into_force() {
        let mut core = Core::new(config(), State::fresh(&config(), 7), "UTC");
        let screen = "  ⎿  Plan quota used up · resets 9:23am (UTC)\n";
        assert!(core.analyze(screen).quota.is_none());
        let mut reloaded = config();
        reloaded.screen.extra_limit = vec!["Plan quota used up".into()];
        core.set_config(reloaded);
        assert_eq!(
            core.analyze(screen).quota.map(|q| q.pattern),
            Some("extra_limit_1".to_string())
        );
    }

    #[test]
    fn a_reload_that_would_strand_a_task_names_what_blocks_it() {
        let mut core = Core::new(config(), State::fresh(&config(), 7), "UTC");
        let mut s = SessionState::new(Kind::Pool);
        s.assignment = Some(Assignment {
            task: TaskRef {
                queue: "q".into(),
                task: "t.md".into(),
            },
            claimed_ms: 0,
            started_ms: Some(0),
            attempt: 1,
            adopted: None,
            worktree: None,
        });
        core.state.sessions.insert("ccl-auto-12".into(), s);
        assert!(core.reload_blockers(&config()).is_empty());

        let mut shrunk = config();
        shrunk.pool.max = 1;
        shrunk.pool.min = 1;
        assert_eq!(
            core.reload_blockers(&shrunk),
            ["ccl-auto-12 is working on q/t.md and would leave the pool"]
        );
        let mut no_queue = config();
        no_queue.queues.clear();
        assert_eq!(
            core.reload_blockers(&no_queue),
            ["queue q would be removed or moved while q/t.md in flight there"]
        );
        let mut moved = config();
        moved.queues[0].project = "/src/elsewhere".into();
        assert_eq!(core.reload_blockers(&moved).len(), 1);
    }

    #[test]
    fn conversation_ids_are_uuids_and_deterministic() {
        let mut c1 = Core::new(config(), State::fresh(&config(), 7), "UTC");
        let mut c2 = Core::new(config(), State::fresh(&config(), 7), "UTC");
        let a = c1.new_conversation_id();
        assert!(screen::is_uuid(&a), "{a}");
        assert_eq!(a, c2.new_conversation_id());
        assert_ne!(a, c1.new_conversation_id());
    }
}

/// Which queues are held by `ccl pause`. "Every queue" is a state of its own, with the
/// queues resumed one by one since then as exceptions, so `pause` then `resume q1`
/// really resumes q1. Saved as `{"all": bool, "queues": [...], "except": [...]}`; a
/// `state.json` of an older ccl (a list of names, `"*"` for all) still loads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "PausedRepr")]
pub struct Paused {
    /// Every queue is paused, except those in `except`.
    pub all: bool,
    /// Queues paused one by one (meaningful while `all` is false).
    pub queues: BTreeSet<String>,
    /// Queues resumed one by one while every queue is paused.
    pub except: BTreeSet<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PausedRepr {
    Current {
        #[serde(default)]
        all: bool,
        #[serde(default)]
        queues: BTreeSet<String>,
        #[serde(default)]
        except: BTreeSet<String>,
    },
    Names(BTreeSet<String>),
}

impl From<PausedRepr> for Paused {
    fn from(repr: PausedRepr) -> Paused {
        match repr {
            PausedRepr::Current { all, queues, except } => Paused { all, queues, except },
            PausedRepr::Names(mut names) => {
                let all = names.remove("*");
                Paused {
                    all,
                    queues: names,
                    except: BTreeSet::new(),
                }
            }
        }
    }
}

impl Paused {
    /// Pauses one queue, or every queue with `None`.
    pub fn pause(&mut self, queue: Option<&str>) {
        match queue {
            None => {
                *self = Paused {
                    all: true,
                    ..Paused::default()
                }
            }
            Some(q) if self.all => {
                self.except.remove(q);
            }
            Some(q) => {
                self.queues.insert(q.to_string());
            }
        }
    }

    /// Resumes one queue, or every queue with `None`.
    pub fn resume(&mut self, queue: Option<&str>) {
        match queue {
            None => *self = Paused::default(),
            Some(q) if self.all => {
                self.except.insert(q.to_string());
            }
            Some(q) => {
                self.queues.remove(q);
            }
        }
    }

    pub fn is_paused(&self, queue: &str) -> bool {
        if self.all {
            !self.except.contains(queue)
        } else {
            self.queues.contains(queue)
        }
    }

    /// Every queue is paused (none resumed one by one since).
    pub fn all_paused(&self) -> bool {
        self.all && self.except.is_empty()
    }
}
