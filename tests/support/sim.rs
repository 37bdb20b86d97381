//! A simulated world for the decision core, for tests that need no tmux and no process:
//! a few tmux panes that show captures from the screen corpus (`tests/screens/*.txt`),
//! Claude's session registry, and task queues held in memory. [`Sim::turn`] builds one
//! `Observation` from the world, runs `Core::step`, and applies the returned actions to
//! the world the way the shell and a real Claude would: a launch line at a shell starts
//! Claude (idle next turn, an old limit banner redrawn on `--resume`), a paste then Enter
//! makes it busy for a few turns and then shows a finished turn, `/exit` returns to the
//! shell with the resume hint, task actions move names between inbox, running, done and
//! failed. Every turn also checks the contract's invariants (only managed sessions are
//! touched, nothing is pasted into a shell, a dedicated session never gets a task or
//! `/exit`, a task's prompt is pasted once per attempt, a signal reaches only the Claude
//! that runs the pane's conversation, Enter is pressed only on ccl's own text in an
//! empty box or shell line — an operator's draft ([`World::type_draft`]) is never sent,
//! typed after or erased — no pane is acted on in a turn tmux could not be listed, and
//! a swap at turn boundaries never interrupts a running turn), so each scenario checks
//! them for free. Turns can be written as a trace with
//! `trace::Recorder` for the golden tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ccl::shell::trace::Recorder;
use ccl_core::config::Config;
use ccl_core::config::Isolation;
use ccl_core::core::{
    Action, Activity, ClaimError, Core, FirstPrompt, HookEvent, Observation, QueueObs, RegistrySeen, Request,
    RequestKind, SessionObs, SignalSeen, State, TaskRef, TranscriptSeen, WorkSeen, Worktree, WorktreeOutcome,
};
#[allow(unused_imports)]
pub use ccl_core::event::{Event, QuotaDecision};
use ccl_core::task::InboxEntry;
use ccl_core::trace::Header;
use ccl_core::transcript::RegistryEntry;

/// Every simulation starts at the instant the screen corpus is classified at, so the
/// corpus's reset times ("resets 9:23am (UTC)") fall later the same day.
pub const START: &str = "2026-11-24T06:00:00Z";
/// One turn of the simulated daemon: the configured `daemon.tick`.
pub const TICK_MS: i64 = 2_000;
/// How long after a hook's write the daemon's turn starts (the FIFO wake-up).
pub const SIGNAL_WAKE_MS: i64 = 20;
/// With [`World::lag`]: the shell shows this long after `SessionEnd` (measured: ~25 ms).
pub const EXIT_LAG_MS: i64 = 30;
/// ... the input box this long after `SessionStart` (measured: ~150 ms).
pub const START_LAG_MS: i64 = 150;
/// ... an interrupted turn shows idle this long after Escape (measured: ~100 ms).
pub const ESCAPE_LAG_MS: i64 = 100;
/// Turns a submitted prompt keeps Claude busy unless a test says otherwise (long enough
/// to be seen busy, short enough that a task is done in a few turns).
pub const BUSY_TURNS: u32 = 2;
/// The host time zone handed to the core.
pub const TZ: &str = "UTC";

pub fn ms(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("bad instant {rfc3339}: {e}"))
        .as_millisecond()
}

/// A pane capture from the corpus, read from disk.
pub fn corpus(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/screens")
        .join(format!("{name}.txt"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The corpus prints this id in the resume hint of `shell_after_exit`; the world puts
/// the pane's real conversation id in its place.
const CORPUS_HINT_ID: &str = "3f0c2a9e-8b1d-4c57-9e2a-6d4b7c1f0a52";
const SHELL_PROMPT: &str = "dev@build-01:~$ \n";

// ---------------------------------------------------------------------------------------
// Configuration

/// The knobs a scenario turns; everything else is a small fixed configuration.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Account names, in failover order; homes are `/homes/NAME`.
    pub accounts: Vec<&'static str>,
    /// Pool size (min = max); names are `ccl-auto-11`, `ccl-auto-12`, …
    pub pool: u32,
    /// Dedicated session names; workdirs are `/src/NAME`.
    pub dedicated: Vec<&'static str>,
    /// Queue names; projects are `/src/q-NAME`.
    pub queues: Vec<&'static str>,
    pub cooldown: &'static str,
    pub confirm_polls: u32,
    pub task_timeout: &'static str,
    /// `dispatch.settle`: how long an inbox file must be quiet before it is taken.
    pub settle: &'static str,
    /// `hooks.on_needs_attention` ("" = none).
    pub on_needs_attention: &'static str,
    /// `hooks.on_account_unhealthy` ("" = none).
    pub on_account_unhealthy: &'static str,
    /// `quota.swap_at`.
    pub swap_at: u32,
    /// `isolation` of every queue ("none" or "worktree").
    pub isolation: &'static str,
    /// `max_running` of every queue; None leaves the key out (its default applies).
    pub max_running: Option<u32>,
    /// Claudes launched with ccl's `--settings` report through its hooks.
    pub hooks: bool,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            accounts: vec!["a", "b"],
            pool: 3,
            dedicated: vec!["ccl-1-ops", "ccl-2-notes"],
            queues: vec!["alpha"],
            cooldown: "5m",
            confirm_polls: 2,
            task_timeout: "2h",
            settle: "2s",
            on_needs_attention: "",
            on_account_unhealthy: "",
            swap_at: 95,
            isolation: "none",
            max_running: None,
            hooks: false,
        }
    }
}

pub const CONTINUE_PROMPT: &str = "Continue where you left off.";

impl Setup {
    /// The default setup with every queue isolated in worktrees, so that several of its
    /// tasks run at once (one per pool session).
    pub fn parallel() -> Setup {
        Setup {
            isolation: "worktree",
            ..Setup::default()
        }
    }

    pub fn config(&self) -> Config {
        let mut text = String::from(
            "[daemon]\ntick = \"2s\"\nstate_dir = \"/state\"\n\
             [tmux]\nsocket = \"ccl-sim\"\n\
             [claude]\ncommand = \"claude\"\nargs = [\"--dangerously-skip-permissions\"]\n",
        );
        text += &format!("signals = {}\n", self.hooks);
        for a in &self.accounts {
            text += &format!("[[account]]\nname = \"{a}\"\nhome = \"/homes/{a}\"\n");
        }
        text += "[shared]\ntarget = \"/shared\"\n";
        text += &format!(
            "[pool]\nprefix = \"ccl-auto-\"\nstart_index = 11\nmin = {p}\nmax = {p}\nworkdir = \"/pool\"\n",
            p = self.pool
        );
        for d in &self.dedicated {
            text += &format!("[[dedicated]]\nname = \"{d}\"\nworkdir = \"/src/{d}\"\n");
        }
        for q in &self.queues {
            text += &format!(
                "[[queue]]\nname = \"{q}\"\nproject = \"/src/q-{q}\"\nisolation = \"{}\"\n",
                self.isolation
            );
            if let Some(n) = self.max_running {
                text += &format!("max_running = {n}\n");
            }
        }
        text += &format!(
            "[quota]\nreactivate_cooldown = \"{}\"\nconfirm_polls = {}\ndefault_reset = \"5h\"\nswap_at = {}\n",
            self.cooldown, self.confirm_polls, self.swap_at
        );
        text += &format!(
            "[dispatch]\nsettle = \"{}\"\nsubmit_delay = \"500ms\"\ntask_timeout = \"{}\"\ncontinue_prompt = \"{CONTINUE_PROMPT}\"\n",
            self.settle, self.task_timeout
        );
        text += &format!(
            "[hooks]\non_needs_attention = {:?}\non_account_unhealthy = {:?}\n",
            self.on_needs_attention, self.on_account_unhealthy
        );
        Config::parse(&text, Path::new("/etc/ccl.toml"), Some(Path::new("/home/dev")))
            .unwrap_or_else(|e| panic!("simulated configuration: {e:#}\n{text}"))
    }
}

// ---------------------------------------------------------------------------------------
// The world

/// What a pane shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    /// A shell prompt; after `/exit`, with the resume hint of that conversation.
    Shell { hint: Option<String> },
    /// Claude's empty input box.
    Idle,
    /// Text pasted into the input box and not submitted yet.
    Pasted,
    /// A turn runs; it ends after `left` more turns.
    Busy { left: u32 },
    /// A finished turn ("✻ Sautéed for 6s") above an empty input box.
    Finished,
    /// A corpus capture, Claude in front (limits, menus, errors…).
    Corpus(&'static str),
    /// Claude started and has not drawn its input box yet (a blank screen).
    Starting,
}

impl Screen {
    fn claude(&self) -> bool {
        !matches!(self, Screen::Shell { .. })
    }
}

#[derive(Debug, Clone)]
pub struct Pane {
    pub pid: u32,
    pub screen: Screen,
    /// The account Claude runs under (from `CLAUDE_CONFIG_DIR` of its launch line).
    pub account: Option<String>,
    pub conversation: Option<String>,
    pub cwd: PathBuf,
    /// Whether this Claude writes a session registry file.
    pub registry: bool,
    /// Enter presses the input box swallows after a paste (an old build).
    pub swallow_enters: u32,
    /// The next prompt makes Claude busy this many turns (then [`BUSY_TURNS`] again).
    pub next_busy: Option<u32>,
    /// Pids of the operator's background jobs in this pane (a dev server, a watcher,
    /// some named `node` or `claude`): nothing ccl does may reach them.
    pub background: Vec<u32>,
    /// This Claude ignores SIGTERM (hung, or trapping it).
    pub ignores_term: bool,
    /// The task whose body began this pane's conversation (what its transcript shows).
    pub first_task: Option<TaskRef>,
    /// The task whose body was pasted into the box and not yet submitted (it becomes the
    /// conversation's first prompt only with its Enter).
    pub pasted: Option<TaskRef>,
    /// Text the operator typed and did not send: on the shell's command line, or in
    /// Claude's input box. ccl must never press Enter on it, type after it or erase it.
    pub draft: String,
    /// Claude Code's own waiting at a usage limit: at this instant, a pane still showing
    /// a corpus screen (the limit) continues its turn by itself.
    pub continues_at_ms: Option<i64>,
    /// The next prompt submitted makes Claude exit normally (the prompt was `/exit`).
    pub exits_on_prompt: bool,
    /// The operator split the window: the session has a second pane, made active.
    pub split: bool,
    /// ... and then closed the pane Claude ran in: only the operator's pane is left of
    /// what ccl knew (still two panes while `split`).
    pub claude_pane_closed: bool,
    /// This Claude was launched with `--settings` in a world where hooks report.
    pub hooked: bool,
    /// The next launch line fails at once (claude not found): the shell prints the error
    /// and a new prompt that shows the directory the line `cd`-ed into.
    pub launch_fails: bool,
    /// What the shell shows instead of the plain prompt (after such a failed launch).
    pub shell_text: Option<String>,
    /// What the screen shows from this instant on (see [`World::lag`]).
    pub pending: Option<(i64, Screen)>,
}

impl Pane {
    /// The pid of the Claude running in the pane (a child of its shell; far from the
    /// pane pids, so a pid meant for one pane never matches another).
    pub fn claude_pid(&self) -> u32 {
        self.pid + 50_000
    }
}

/// A queue's four directories, in memory.
#[derive(Debug, Clone, Default)]
pub struct QueueDirs {
    pub inbox: Vec<InboxEntry>,
    pub running: Vec<String>,
    pub done: Vec<String>,
    pub failed: Vec<(String, String)>,
}

impl QueueDirs {
    fn take(&mut self, dir: &str, task: &str) -> bool {
        match dir {
            "inbox" => {
                let before = self.inbox.len();
                self.inbox.retain(|e| e.name != task);
                before != self.inbox.len()
            }
            "running" => {
                let before = self.running.len();
                self.running.retain(|n| n != task);
                before != self.running.len()
            }
            _ => false,
        }
    }
}

pub struct World {
    pub config: Config,
    pub panes: BTreeMap<String, Pane>,
    pub queues: BTreeMap<String, QueueDirs>,
    /// Accounts out of quota: a prompt submitted under one ends on this limit screen.
    pub exhausted: BTreeMap<String, &'static str>,
    /// The limit screen a conversation last showed; `--resume` redraws it.
    pub banners: BTreeMap<String, &'static str>,
    /// Delivered with the next observation, then cleared.
    pub requests: Vec<Request>,
    pub transcripts: Vec<TranscriptSeen>,
    failed_claims: Vec<TaskRef>,
    claim_errors: Vec<ClaimError>,
    /// Claims fail with this lasting cause while set (the inbox on another file system).
    pub claim_error: Option<String>,
    /// Inbox files that cannot be moved to `failed/` (the shell's move fails).
    pub unfileable: BTreeSet<String>,
    /// Exactly once: prompts pasted per running task since it was claimed.
    pastes: BTreeMap<TaskRef, u32>,
    /// Outcomes of `AddWorktree`, delivered with the next observation.
    worktree_outcomes: Vec<WorktreeOutcome>,
    /// Every worktree made: (task, path); a name is never made twice, as git refuses.
    pub worktrees: Vec<(TaskRef, PathBuf)>,
    /// Makes the next `AddWorktree` fail with this message (a project that is not a repository).
    pub worktree_error: Option<String>,
    /// Tasks claimed and not yet filed or handed back, by queue: what `max_running` bounds.
    pub in_flight: BTreeMap<String, BTreeSet<String>>,
    pub replies: Vec<(String, bool, String)>,
    pub logs: Vec<String>,
    /// Turns a submitted prompt keeps Claude busy (unless the pane says otherwise).
    pub busy_turns: u32,
    /// Report `work_seen` whenever the core asks for it, as the shell does (off by
    /// default so the golden traces' observations stay as they were recorded).
    pub report_work: bool,
    /// Report pane ids and counts as the shell does (off by default, as above).
    pub report_panes: bool,
    /// Every launch line typed: (session, account, conversation, resumed).
    pub launches: Vec<(String, String, String, bool)>,
    /// Configured working directories that do not exist (the operator removed one).
    pub missing_dirs: BTreeSet<PathBuf>,
    /// tmux cannot be listed this turn: the observation has no sessions, and the core
    /// must not act on any pane.
    pub tmux_down: bool,
    /// Whether Claudes launched with `--settings` report through the hooks.
    pub hooks: bool,
    /// Claude ignores a first prompt given on its command line (starts idle, as a build
    /// without that argument would).
    pub launch_prompts_lost: bool,
    /// Hook reports delivered with the next observation (stamped with its time), then cleared.
    pub signals: Vec<SignalSeen>,
    /// The real client's timing (hooked Claudes, measured on 2.1.328): the screen changes
    /// a moment after the hook that announces it. `/exit` reports `SessionEnd` and the
    /// shell shows `EXIT_LAG_MS` later; a launch reports `SessionStart` on a blank screen
    /// and the input box shows `START_LAG_MS` later; Escape on a busy turn (no hook) shows
    /// idle `ESCAPE_LAG_MS` later. A daemon turn woken by the hook sees the old screen.
    pub lag: bool,
    /// With `lag`: how long an interrupted turn takes to show idle after Escape (measured
    /// ~100 ms on an idle machine, much longer with ten Claudes redrawing on two cores).
    pub escape_lag_ms: i64,
    /// The time of the current turn (set by `observe`), for the lags above.
    now_ms: i64,
    /// Contract violations seen while applying actions; a turn panics on any.
    violations: Vec<String>,
    /// Tasks the core decided are done or failed (whether or not a crash kept the move
    /// from running), with the generation of the file: none of them may be claimed again.
    settled: BTreeMap<TaskRef, u32>,
    /// Per task name, how many files of that name were written into the inbox: a file
    /// dropped under the name of an earlier task is a new task, not that one again.
    generations: BTreeMap<TaskRef, u32>,
    /// The generation of the file of that name in `running/`.
    running_gen: BTreeMap<TaskRef, u32>,
    next_pid: u32,
    next_mtime_ms: i64,
    captures: BTreeMap<&'static str, String>,
}

impl World {
    fn new(config: Config) -> World {
        let queues = config
            .queues
            .iter()
            .map(|q| (q.name.to_string(), QueueDirs::default()))
            .collect();
        World {
            config,
            panes: BTreeMap::new(),
            queues,
            exhausted: BTreeMap::new(),
            banners: BTreeMap::new(),
            requests: Vec::new(),
            transcripts: Vec::new(),
            failed_claims: Vec::new(),
            claim_errors: Vec::new(),
            claim_error: None,
            unfileable: BTreeSet::new(),
            pastes: BTreeMap::new(),
            worktree_outcomes: Vec::new(),
            worktrees: Vec::new(),
            worktree_error: None,
            in_flight: BTreeMap::new(),
            replies: Vec::new(),
            logs: Vec::new(),
            busy_turns: BUSY_TURNS,
            report_work: false,
            report_panes: false,
            launches: Vec::new(),
            tmux_down: false,
            hooks: false,
            launch_prompts_lost: false,
            signals: Vec::new(),
            lag: false,
            escape_lag_ms: ESCAPE_LAG_MS,
            now_ms: 0,
            violations: Vec::new(),
            missing_dirs: BTreeSet::new(),
            settled: BTreeMap::new(),
            generations: BTreeMap::new(),
            running_gen: BTreeMap::new(),
            next_pid: 1000,
            next_mtime_ms: ms("2026-11-24T05:00:00Z"),
            captures: BTreeMap::new(),
        }
    }

    fn pid(&mut self) -> u32 {
        self.next_pid += 1;
        self.next_pid
    }

    /// A tmux session at its shell prompt.
    pub fn shell(&mut self, name: &str, cwd: &str) {
        let pid = self.pid();
        self.panes.insert(
            name.into(),
            Pane {
                pid,
                screen: Screen::Shell { hint: None },
                account: None,
                conversation: None,
                cwd: cwd.into(),
                registry: true,
                swallow_enters: 0,
                next_busy: None,
                background: Vec::new(),
                ignores_term: false,
                first_task: None,
                pasted: None,
                draft: String::new(),
                continues_at_ms: None,
                exits_on_prompt: false,
                split: false,
                claude_pane_closed: false,
                hooked: false,
                launch_fails: false,
                shell_text: None,
                pending: None,
            },
        );
    }

    /// A tmux session with Claude idle in it (started before ccl, say), under `account`,
    /// holding conversation `id`; `registry` says whether Claude's registry file is there.
    pub fn claude(&mut self, name: &str, account: &str, id: &str, cwd: &str, registry: bool) {
        self.shell(name, cwd);
        let p = self.panes.get_mut(name).unwrap();
        p.screen = Screen::Idle;
        p.account = Some(account.into());
        p.conversation = Some(id.into());
        p.registry = registry;
    }

    pub fn pane(&mut self, name: &str) -> &mut Pane {
        self.panes
            .get_mut(name)
            .unwrap_or_else(|| panic!("no pane {name} in the world"))
    }

    /// The operator starts a background job in a pane (`npm run dev &`); its pid.
    pub fn background_job(&mut self, name: &str) -> u32 {
        let pid = self.pid() + 90_000;
        self.pane(name).background.push(pid);
        pid
    }

    /// Shows a corpus screen in a pane whose Claude is running.
    pub fn show(&mut self, name: &str, screen: &'static str) {
        self.pane(name).screen = Screen::Corpus(screen);
    }

    /// A usage limit appears in the pane: shown now and redrawn by a later `--resume`;
    /// a hooked Claude reports it with `StopFailure`.
    pub fn hit(&mut self, name: &str, screen: &'static str) {
        self.show(name, screen);
        if let Some(id) = self.pane(name).conversation.clone() {
            self.banners.insert(id.clone(), screen);
            let text = self.capture(screen);
            let line = text
                .lines()
                .map(|l| l.trim().trim_start_matches('⎿').trim())
                .find(|l| l.contains("hit your") || l.contains("limit reached"))
                .unwrap_or("You've hit your limit")
                .to_string();
            self.report(
                name,
                HookEvent::StopFailure {
                    conversation: id.into(),
                    error: "rate_limit".into(),
                    message: line,
                },
            );
        }
    }

    /// The operator types `text` (no Enter) into the pane's shell line or Claude's box.
    pub fn type_draft(&mut self, name: &str, text: &str) {
        self.pane(name).draft = text.into();
    }

    /// A hook report of the Claude in `name`, if it is hooked.
    pub fn report(&mut self, name: &str, event: HookEvent) {
        let Some(p) = self.panes.get(name) else { return };
        if !p.hooked {
            return;
        }
        self.signals.push(SignalSeen {
            session: name.into(),
            account: p.account.clone().map(Into::into),
            at_ms: 0,
            event,
        });
    }

    /// Claude crashes: the pane falls back to its shell.
    pub fn kill_claude(&mut self, name: &str) {
        let p = self.pane(name);
        p.screen = Screen::Shell { hint: None };
        p.account = None;
        p.conversation = None;
        p.hooked = false;
    }

    /// A task file appears in a queue's inbox (newer than every earlier one).
    pub fn enqueue(&mut self, queue: &str, task: &str) {
        self.enqueue_entry(queue, task, None);
    }

    /// A file in the inbox that cannot be a task, for the reason given.
    pub fn enqueue_bad(&mut self, queue: &str, task: &str, problem: &str) {
        self.enqueue_entry(queue, task, Some(problem.into()));
    }

    fn enqueue_entry(&mut self, queue: &str, task: &str, problem: Option<String>) {
        self.settled.remove(&TaskRef {
            queue: queue.into(),
            task: task.into(),
        });
        self.next_mtime_ms += 1_000;
        let entry = InboxEntry {
            name: task.into(),
            mtime_ms: self.next_mtime_ms,
            len: 100,
            problem,
        };
        self.new_file(queue, task);
        self.queue(queue).inbox.push(entry);
    }

    /// A file written under a name a finished task had is a new task (a script that
    /// drops `fix-tests.md` every night): it may be claimed like any other.
    fn new_file(&mut self, queue: &str, task: &str) {
        *self
            .generations
            .entry(TaskRef {
                queue: queue.into(),
                task: task.into(),
            })
            .or_default() += 1;
    }

    /// A file in the inbox is written to (created if new) at `mtime_ms`: it now holds
    /// `len` bytes, and `problem` is what a scan would say of it now.
    pub fn write(&mut self, queue: &str, task: &str, len: u64, mtime_ms: i64, problem: Option<&str>) {
        let entry = InboxEntry {
            name: task.into(),
            mtime_ms,
            len,
            problem: problem.map(String::from),
        };
        self.new_file(queue, task);
        let q = self.queue(queue);
        q.inbox.retain(|e| e.name != task);
        q.inbox.push(entry);
    }

    pub fn queue(&mut self, name: &str) -> &mut QueueDirs {
        self.queues.get_mut(name).unwrap_or_else(|| panic!("no queue {name}"))
    }

    pub fn request(&mut self, id: &str, kind: RequestKind) {
        self.requests.push(Request { id: id.into(), kind });
    }

    fn capture(&mut self, screen: &'static str) -> String {
        self.captures.entry(screen).or_insert_with(|| corpus(screen)).clone()
    }

    fn capture_of(&mut self, name: &str) -> String {
        let screen = self.panes[name].screen.clone();
        let draft = self.panes[name].draft.clone();
        let capture = match screen {
            Screen::Shell { hint: None } => self.panes[name]
                .shell_text
                .clone()
                .unwrap_or_else(|| SHELL_PROMPT.into()),
            Screen::Shell { hint: Some(id) } => self.capture("shell_after_exit").replace(CORPUS_HINT_ID, &id),
            Screen::Idle => self.capture("idle_2_1_328"),
            Screen::Starting => String::new(),
            Screen::Pasted => self.capture("pasted_placeholder"),
            Screen::Busy { .. } => self.capture("busy_thinking"),
            Screen::Finished => self.capture("turn_finished"),
            Screen::Corpus(c) => self.capture(c),
        };
        if draft.is_empty() {
            return capture;
        }
        // The draft stands after the prompt: the shell's, or Claude's `❯` in its box.
        let mut lines: Vec<String> = capture.lines().map(str::to_string).collect();
        let at = if self.panes[name].screen.claude() {
            lines.iter().rposition(|l| l.trim() == "❯")
        } else {
            lines.iter().rposition(|l| !l.trim().is_empty())
        };
        match at {
            Some(i) => lines[i] = format!("{} {draft}", lines[i].trim_end()),
            None => self
                .violations
                .push(format!("a draft in {name} has nowhere to stand on its screen")),
        }
        lines.join("\n") + "\n"
    }

    /// Time passes by one turn: busy turns run down and end finished, or on the limit
    /// screen when the account is out of quota.
    fn advance(&mut self, now_ms: i64) {
        let names: Vec<String> = self.panes.keys().cloned().collect();
        for name in names {
            let p = self.panes.get_mut(&name).unwrap();
            if let (Screen::Corpus(_), Some(at)) = (&p.screen, p.continues_at_ms) {
                if at <= now_ms {
                    p.continues_at_ms = None;
                    p.screen = Screen::Busy { left: BUSY_TURNS };
                    continue;
                }
            }
            let Screen::Busy { left } = p.screen else { continue };
            if left > 1 {
                p.screen = Screen::Busy { left: left - 1 };
                continue;
            }
            let limit = p.account.as_ref().and_then(|a| self.exhausted.get(a)).copied();
            match limit {
                Some(screen) => self.hit(&name, screen),
                None => {
                    let p = self.panes.get_mut(&name).unwrap();
                    p.screen = Screen::Finished;
                    if let Some(id) = p.conversation.clone() {
                        self.report(
                            &name,
                            HookEvent::Stop {
                                conversation: id.into(),
                                last_message: Some("Done. The task is complete.".into()),
                                background_running: 0,
                            },
                        );
                    }
                }
            }
        }
    }

    /// What the shell's `observe_work` would report: pool panes with Claude and a
    /// registry entry in a queue's project, when that queue has files in `running/`.
    fn work_seen(&self) -> Vec<WorkSeen> {
        let mut out = Vec::new();
        for (name, p) in &self.panes {
            if !self.config.pool.contains(name) || !p.registry || !p.screen.claude() || p.conversation.is_none() {
                continue;
            }
            let Some(q) = self.config.queues.iter().find(|q| q.holds_workdir(&p.cwd)) else {
                continue;
            };
            let running = &self.queues[q.name.as_str()].running;
            if running.is_empty() {
                continue;
            }
            let prompt = match (&p.first_task, &p.pasted) {
                // As the shell does: an unsent paste of a running task's body in the box.
                (None, Some(t))
                    if p.screen == Screen::Pasted && t.queue == q.name && running.iter().any(|r| *r == t.task) =>
                {
                    FirstPrompt::InBox {
                        task: t.task.to_string(),
                    }
                }
                (None, _) => FirstPrompt::Pending,
                (Some(t), _) if t.queue == q.name && running.iter().any(|r| *r == t.task) => FirstPrompt::Task {
                    task: t.task.to_string(),
                },
                (Some(_), _) => FirstPrompt::Other,
            };
            out.push(WorkSeen {
                session: name.clone().into(),
                queue: q.name.clone(),
                prompt,
            });
        }
        out
    }

    fn observe(&mut self, now_ms: i64) -> Observation {
        self.now_ms = now_ms;
        // What lagged behind its hook is on screen once its time has come.
        for p in self.panes.values_mut() {
            if p.pending.as_ref().is_some_and(|(at, _)| *at <= now_ms) {
                p.screen = p.pending.take().expect("checked").1;
            }
        }
        let names: Vec<String> = self.panes.keys().cloned().collect();
        let mut sessions = Vec::new();
        let mut registry = Vec::new();
        for name in names {
            let managed = self.config.is_managed(&name);
            // Like the shell, only managed sessions are captured.
            let capture = managed.then(|| self.capture_of(&name));
            let p = &self.panes[&name];
            let dedicated = self.config.dedicated.iter().any(|d| d.name == name);
            sessions.push(SessionObs {
                name: name.clone().into(),
                pane_pid: p.pid,
                command: if p.screen.claude() { "claude" } else { "bash" }.into(),
                dead: false,
                capture,
                // As the shell reports them: the registry's Claude in the pane's foreground,
                // and for dedicated sessions the foreground process itself.
                claude_pid: (managed && p.registry && p.screen.claude()).then(|| Pane::claude_pid(p)),
                foreground_pid: (dedicated && p.screen.claude()).then(|| Pane::claude_pid(p)),
                pane_id: self.report_panes.then(|| {
                    if p.claude_pane_closed {
                        format!("%op{}", p.pid)
                    } else {
                        format!("%{}", p.pid)
                    }
                }),
                n_panes: if self.report_panes && p.split { 2 } else { 1 },
            });
            if let (true, true, true, Some(id), Some(account)) =
                (managed, p.registry, p.screen.claude(), &p.conversation, &p.account)
            {
                registry.push(RegistrySeen {
                    session: name.clone().into(),
                    account: account.clone().into(),
                    entry: RegistryEntry {
                        pid: Pane::claude_pid(p),
                        session_id: id.clone(),
                        cwd: p.cwd.clone(),
                        status: Some(
                            if matches!(p.screen, Screen::Busy { .. }) {
                                "busy"
                            } else {
                                "idle"
                            }
                            .into(),
                        ),
                        tmux_session: Some(name.clone()),
                        tmux_pane: None,
                        updated_at_ms: None,
                    },
                });
            }
        }
        let queues = self
            .config
            .queues
            .iter()
            .map(|q| {
                let dirs = &self.queues[q.name.as_str()];
                let mut inbox = dirs.inbox.clone();
                inbox.sort_by(|a, b| (a.mtime_ms, &a.name).cmp(&(b.mtime_ms, &b.name)));
                let mut running = dirs.running.clone();
                running.sort();
                QueueObs {
                    name: q.name.clone(),
                    inbox,
                    running: running.into_iter().map(Into::into).collect(),
                }
            })
            .collect();
        let mut signals = std::mem::take(&mut self.signals);
        for s in &mut signals {
            // Reported since the last turn.
            s.at_ms = now_ms - 1;
        }

        Observation {
            now_ms,
            sessions: (!self.tmux_down).then_some(sessions),
            registry,
            transcripts: std::mem::take(&mut self.transcripts),
            queues,
            requests: std::mem::take(&mut self.requests),
            failed_claims: std::mem::take(&mut self.failed_claims),
            claim_errors: std::mem::take(&mut self.claim_errors),
            hooks_done: Vec::new(),
            missing_dirs: self.missing_dirs.iter().cloned().collect(),
            work_seen: Vec::new(),
            worktrees: std::mem::take(&mut self.worktree_outcomes),
            signals,
        }
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// The rule "each task's prompt is submitted once per attempt, and its file ends in
    /// exactly one place" as the core's decisions show it: a task decided done or failed
    /// is never claimed again, whatever restarts come between.
    fn note_decisions(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::FinishTask { queue, task, .. } | Action::FailTask { queue, task, .. } => {
                    let t = TaskRef {
                        queue: queue.clone(),
                        task: task.clone(),
                    };
                    let from_inbox = matches!(action, Action::FailTask { from, .. } if from == "inbox");
                    let gen = if from_inbox {
                        self.generations.get(&t)
                    } else {
                        self.running_gen.get(&t).or(self.generations.get(&t))
                    };
                    let gen = gen.copied().unwrap_or(0);
                    self.settled.insert(t, gen);
                }
                Action::ClaimTask { queue, task, .. } => {
                    let t = TaskRef {
                        queue: queue.clone(),
                        task: task.clone(),
                    };
                    let gen = self.generations.get(&t).copied().unwrap_or(0);
                    if self.settled.get(&t) == Some(&gen) {
                        self.violation(format!("{t} claimed again after it was decided done or failed"));
                    }
                    self.running_gen.insert(t, gen);
                }
                _ => {}
            }
        }
    }

    /// Carries out one turn's actions, in order, as the shell would.
    fn apply(&mut self, actions: &[Action]) {
        let mut skip: BTreeSet<String> = BTreeSet::new();
        for action in actions {
            if let Some(s) = action.session() {
                if skip.contains(s) {
                    continue;
                }
                if self.tmux_down {
                    self.violation(format!("acted on a pane in a turn tmux could not be listed: {action}"));
                }
                if !self.config.is_managed(s) {
                    self.violation(format!("action on unmanaged session {s}: {action}"));
                    continue;
                }
                let operators_pane = self.panes.get(s).is_some_and(|p| p.split && p.claude_pane_closed);
                let typing = matches!(
                    action,
                    Action::TypeLine { .. }
                        | Action::PasteText { .. }
                        | Action::PasteTask { .. }
                        | Action::SendKeys { .. }
                );
                if operators_pane && typing {
                    self.violation(format!("typed into the operator's pane of {s}: {action}"));
                }
                let dedicated = self.config.dedicated.iter().any(|d| d.name == s);
                let forbidden = match action {
                    Action::ClaimTask { .. } | Action::PasteTask { .. } => true,
                    Action::TypeLine { line, .. } => line.trim() == "/exit",
                    _ => false,
                };
                if dedicated && forbidden {
                    self.violation(format!("dedicated session {s} got: {action}"));
                }
            }
            self.check_exactly_once(action);
            match action {
                Action::CreateSession { session, workdir, .. } => {
                    if self.panes.contains_key(session.as_str()) {
                        self.violation(format!("created {session}, which exists"));
                    }
                    if self.missing_dirs.contains(workdir) {
                        // The shell refuses it (no fallback directory): nothing is created.
                        self.violation(format!(
                            "created {session} in {}, which does not exist",
                            workdir.display()
                        ));
                        continue;
                    }
                    self.shell(session, &workdir.to_string_lossy());
                }
                Action::KillSession { session, .. } => {
                    self.panes.remove(session.as_str());
                }
                Action::TypeLine { session, line } => self.type_line(session, line),
                Action::PasteText { session, .. } | Action::PasteTask { session, .. } => {
                    if let (Action::PasteTask { queue, task, .. }, Some(p)) =
                        (action, self.panes.get_mut(session.as_str()))
                    {
                        p.pasted = Some(TaskRef {
                            queue: queue.clone(),
                            task: task.clone(),
                        });
                    }
                    let Some(p) = self.panes.get_mut(session.as_str()) else {
                        self.violation(format!("paste into missing {session}"));
                        continue;
                    };
                    if !p.draft.is_empty() {
                        self.violations.push(format!(
                            "text pasted after the operator's draft in {session}: {:?}",
                            p.draft
                        ));
                    }
                    match p.screen {
                        Screen::Shell { .. } => {
                            self.violations.push(format!("text pasted into the shell of {session}"))
                        }
                        Screen::Busy { .. } => self.violations.push(format!("text pasted into busy {session}")),
                        _ => p.screen = Screen::Pasted,
                    }
                }
                Action::SendKeys { session, keys } => {
                    for key in keys {
                        self.key(session, key);
                    }
                }
                Action::StopClaude { session, pid } => {
                    // A signal reaches only the conversation's Claude: never the shell,
                    // an operator's background process, or a Claude in another pane.
                    let Some(p) = self.panes.get_mut(session.as_str()) else {
                        self.violations
                            .push(format!("signal to pid {pid} for missing {session}"));
                        continue;
                    };
                    if !p.screen.claude() || *pid != Pane::claude_pid(p) {
                        let what = if p.background.contains(pid) {
                            "an operator's background process"
                        } else if *pid == p.pid {
                            "the pane's shell"
                        } else {
                            "not the conversation's claude"
                        };
                        self.violations
                            .push(format!("SIGTERM to pid {pid} in {session}: {what}"));
                        continue;
                    }
                    if p.ignores_term {
                        continue;
                    }
                    if self.lag && p.hooked {
                        // As after `/exit`: `SessionEnd`, then the shell a moment later.
                        let id = p.conversation.clone().unwrap_or_default();
                        p.pending = Some((self.now_ms + EXIT_LAG_MS, Screen::Shell { hint: None }));
                        p.draft.clear();
                        self.report(
                            session,
                            HookEvent::SessionEnd {
                                conversation: id.into(),
                                reason: "other".into(),
                            },
                        );
                        let p = self.panes.get_mut(session.as_str()).unwrap();
                        p.account = None;
                        p.conversation = None;
                        p.hooked = false;
                        continue;
                    }
                    p.screen = Screen::Shell { hint: None };
                    p.account = None;
                    p.conversation = None;
                    p.draft.clear();
                    p.hooked = false;
                }
                Action::ClaimTask { session, queue, task } => {
                    let t = TaskRef {
                        queue: queue.clone(),
                        task: task.clone(),
                    };
                    if let Some(cause) = self.claim_error.clone() {
                        // As the shell does for an error that is not a lost race.
                        self.claim_errors.push(ClaimError { task: t, cause });
                        skip.insert(session.to_string());
                        continue;
                    }
                    let isolated = self.isolated(queue);
                    let flying = self.in_flight.entry(queue.to_string()).or_default();
                    if !isolated && !flying.is_empty() {
                        let others: Vec<String> = flying.iter().cloned().collect();
                        self.violation(format!(
                            "{queue}/{task} claimed while {others:?} of the same checkout still run"
                        ));
                    }
                    let bound = self.config.queue(queue).map_or(1, |q| q.max_running) as usize;
                    let flying = self.in_flight.entry(queue.to_string()).or_default();
                    flying.insert(task.to_string());
                    if flying.len() > bound {
                        let n = flying.len();
                        self.violation(format!("{queue} has {n} tasks running, over its max_running {bound}"));
                    }
                    let q = self.queue(queue);
                    // A rename never replaces: a task of that name still running stays.
                    let in_the_way = q.running.iter().any(|r| r == task);
                    if !in_the_way && q.take("inbox", task) {
                        q.running.push(task.to_string());
                        self.pastes.insert(t, 0);
                    } else {
                        self.in_flight
                            .entry(queue.to_string())
                            .or_default()
                            .remove(task.as_str());
                        // As the shell does: the claim failed, so the session's remaining
                        // actions this turn are skipped and the core hears of it next turn.
                        self.failed_claims.push(TaskRef {
                            queue: queue.clone(),
                            task: task.clone(),
                        });
                        skip.insert(session.to_string());
                    }
                }
                Action::AddWorktree {
                    session,
                    queue,
                    task,
                    name,
                } => {
                    let task = TaskRef {
                        queue: queue.clone(),
                        task: task.clone(),
                    };
                    let outcome = match self.worktree_error.take() {
                        Some(error) => WorktreeOutcome {
                            session: session.clone(),
                            task,
                            worktree: None,
                            error: Some(error),
                        },
                        None => {
                            let dir = self.config.queue(queue).unwrap().worktree_dir.clone();
                            let free = (1..)
                                .map(|n| if n == 1 { name.clone() } else { format!("{name}-{n}") })
                                .find(|n| self.worktrees.iter().all(|(_, p)| *p != dir.join(n)))
                                .unwrap();
                            let path = dir.join(&free);
                            self.worktrees.push((task.clone(), path.clone()));
                            WorktreeOutcome {
                                session: session.clone(),
                                task,
                                worktree: Some(Worktree {
                                    path,
                                    branch: format!("ccl/{free}"),
                                    base: "0123abcd".into(),
                                }),
                                error: None,
                            }
                        }
                    };
                    self.worktree_outcomes.push(outcome);
                }
                Action::FinishTask { queue, task, .. } => {
                    self.land(queue, task);
                    let q = self.queue(queue);
                    if q.take("running", task) {
                        q.done.push(task.to_string());
                    } else {
                        self.violation(format!("finished {queue}/{task}, which is not running"));
                    }
                }
                Action::FailTask {
                    queue,
                    task,
                    from,
                    reason,
                } => {
                    if from == "inbox" && self.unfileable.contains(task.as_str()) {
                        // The shell's move failed (and it logged why); the file stays.
                        continue;
                    }
                    self.land(queue, task);
                    let q = self.queue(queue);
                    if q.take(from, task) {
                        q.failed.push((task.to_string(), reason.clone()));
                    } else {
                        self.violation(format!("failed {queue}/{task} from {from}, where it is not"));
                    }
                }
                Action::RequeueTask { queue, task, .. } => {
                    self.land(queue, task);
                    let mtime_ms = self.next_mtime_ms;
                    let q = self.queue(queue);
                    if q.take("running", task) {
                        q.inbox.push(InboxEntry {
                            name: task.clone(),
                            mtime_ms,
                            len: 100,
                            problem: None,
                        });
                    } else {
                        self.violation(format!("requeued {queue}/{task}, which is not running"));
                    }
                }
                Action::Reply { id, ok, message } => self.replies.push((id.clone(), *ok, message.clone())),
                Action::RunHook { .. } => {}
                Action::Log { message, .. } => self.logs.push(message.clone()),
                Action::Event(e) => self.logs.push(e.to_string()),
            }
        }
    }

    /// The contract's "each task's prompt is submitted once per attempt": a task's body
    /// is pasted only while it is in `running/`, and at most once per claim.
    fn check_exactly_once(&mut self, action: &Action) {
        match action {
            Action::PasteTask { queue, task, .. } => {
                let t = TaskRef {
                    queue: queue.clone(),
                    task: task.clone(),
                };
                match self.pastes.get_mut(&t) {
                    Some(n) if *n == 0 => *n = 1,
                    Some(_) => self.violation(format!("prompt of {t} pasted twice in one attempt")),
                    None => self.violation(format!("prompt of {t} pasted while it is not running")),
                }
            }
            Action::FinishTask { queue, task, .. }
            | Action::FailTask { queue, task, .. }
            | Action::RequeueTask { queue, task, .. } => {
                self.pastes.remove(&TaskRef {
                    queue: queue.clone(),
                    task: task.clone(),
                });
            }
            _ => {}
        }
    }

    /// The daemon dies between making a worktree and hearing of it.
    pub fn lose_worktree_outcomes(&mut self) {
        self.worktree_outcomes.clear();
    }

    fn isolated(&self, queue: &str) -> bool {
        self.config
            .queue(queue)
            .is_some_and(|q| q.isolation == Isolation::Worktree)
    }

    /// A task leaves `running/`: it no longer counts against its queue's bound.
    fn land(&mut self, queue: &str, task: &str) {
        if let Some(flying) = self.in_flight.get_mut(queue) {
            flying.remove(task);
        }
    }

    fn type_line(&mut self, session: &str, line: &str) {
        let homes: Vec<(String, String)> = self
            .config
            .accounts
            .iter()
            .map(|a| (a.name.to_string(), a.home.to_string_lossy().into_owned()))
            .collect();
        let Some(p) = self.panes.get_mut(session) else {
            return self.violation(format!("typed into missing {session}: {line}"));
        };
        if !p.draft.is_empty() {
            // The line and its Enter would run (or send) the operator's text with ccl's.
            let what = if p.screen.claude() {
                "claude's input box"
            } else {
                "the shell line"
            };
            return self.violations.push(format!(
                "Enter pressed on {what} of {session} holding text ccl did not type ({:?}): {line}",
                p.draft
            ));
        }
        match (&p.screen, line.trim()) {
            (Screen::Shell { .. }, line) => match parse_launch(line) {
                Some(l) if p.launch_fails => {
                    let p = self.panes.get_mut(session).unwrap();
                    p.launch_fails = false;
                    p.shell_text = Some(format!(
                        "{}{line}\nsh: 1: claude: not found\ndev@build-01:{}$ \n",
                        SHELL_PROMPT.trim_end_matches('\n'),
                        l.cwd
                    ));
                }
                Some(mut l) => {
                    l.prompt &= !self.launch_prompts_lost;
                    let Some((account, _)) = homes.iter().find(|(_, h)| *h == l.home) else {
                        return self
                            .violations
                            .push(format!("launch with unknown home in {session}: {line}"));
                    };
                    if !l.resume {
                        let outside = self.config.queues.iter().any(|q| {
                            q.isolation == Isolation::Worktree
                                && Path::new(&l.cwd).starts_with(&q.project)
                                && !Path::new(&l.cwd).starts_with(&q.worktree_dir)
                        });
                        if outside {
                            self.violations
                                .push(format!("a task of an isolated queue launched in its checkout: {line}"));
                        }
                    }
                    let p = self.panes.get_mut(session).unwrap();
                    p.account = Some(account.clone());
                    if p.conversation.as_deref() != Some(l.id.as_str()) {
                        p.first_task = None;
                        p.pasted = None;
                    }
                    p.conversation = Some(l.id.clone());
                    p.cwd = l.cwd.into();
                    p.shell_text = None;
                    p.screen = match (l.resume, self.banners.get(&l.id)) {
                        // A first prompt on the command line: Claude takes it as it starts.
                        _ if l.prompt => Screen::Busy {
                            left: p.next_busy.take().unwrap_or(self.busy_turns),
                        },
                        (true, Some(banner)) => Screen::Corpus(banner),
                        _ => Screen::Idle,
                    };
                    p.hooked = self.hooks && l.settings;
                    if self.lag && p.hooked {
                        let ready = std::mem::replace(&mut p.screen, Screen::Starting);
                        p.pending = Some((self.now_ms + START_LAG_MS, ready));
                    }
                    let start = HookEvent::SessionStart {
                        conversation: l.id.clone().into(),
                        cwd: p.cwd.clone(),
                        source: if l.resume { "resume" } else { "startup" }.into(),
                        model: Some("claude-sim".into()),
                    };
                    self.launches
                        .push((session.into(), account.clone(), l.id.clone(), l.resume));
                    self.report(session, start);
                    if l.prompt {
                        self.report(
                            session,
                            HookEvent::PromptSubmitted {
                                conversation: l.id.into(),
                            },
                        );
                    }
                }
                None => self.violations.push(format!("a shell in {session} was typed: {line}")),
            },
            (Screen::Busy { .. }, "/exit") => {}
            (_, "/exit") if self.lag && p.hooked => {
                let shell = Screen::Shell {
                    hint: p.conversation.clone(),
                };
                p.pending = Some((self.now_ms + EXIT_LAG_MS, shell));
                let id = p.conversation.clone().unwrap_or_default();
                self.report(
                    session,
                    HookEvent::SessionEnd {
                        conversation: id.into(),
                        reason: "prompt_input_exit".into(),
                    },
                );
                let p = self.panes.get_mut(session).unwrap();
                p.account = None;
                p.conversation = None;
                p.hooked = false;
            }
            (_, "/exit") => {
                p.screen = Screen::Shell {
                    hint: p.conversation.clone(),
                };
                p.account = None;
                p.conversation = None;
                p.hooked = false;
            }
            (_, line) => self
                .violations
                .push(format!("claude in {session} was typed a line: {line}")),
        }
    }

    fn key(&mut self, session: &str, key: &str) {
        let busy_turns = self.busy_turns;
        let Some(p) = self.panes.get_mut(session) else { return };
        if !p.draft.is_empty() {
            let wrong = match key {
                "Enter" | "C-m" | "C-j" => Some(format!("Enter pressed in {session} on text ccl did not type")),
                "C-u" | "C-c" | "C-w" => Some(format!("{key} erased the operator's text in {session}")),
                // Escape twice clears Claude's box (a swap of a pool session does, and logs it).
                "Escape" if p.screen.claude() => {
                    p.draft.clear();
                    None
                }
                _ => None,
            };
            if let Some(wrong) = wrong {
                let draft = p.draft.clone();
                return self.violations.push(format!("{wrong}: {draft:?}"));
            }
        }
        match (key, &p.screen) {
            ("Enter", Screen::Pasted) if p.swallow_enters > 0 => p.swallow_enters -= 1,
            ("Enter", Screen::Pasted) if p.exits_on_prompt => {
                p.exits_on_prompt = false;
                p.screen = Screen::Shell {
                    hint: p.conversation.take(),
                };
                p.account = None;
            }
            ("Enter", Screen::Pasted) => {
                if let Some(t) = p.pasted.take() {
                    p.first_task.get_or_insert(t);
                }
                let left = p.next_busy.take().unwrap_or(busy_turns);
                p.screen = Screen::Busy { left };
                if let Some(id) = p.conversation.clone() {
                    self.report(
                        session,
                        HookEvent::PromptSubmitted {
                            conversation: id.into(),
                        },
                    );
                }
            }
            ("Escape", Screen::Busy { .. }) if self.lag && p.hooked => {
                p.pending = Some((self.now_ms + self.escape_lag_ms, Screen::Idle))
            }
            ("Escape", Screen::Busy { .. } | Screen::Pasted) => p.screen = Screen::Idle,
            ("Escape", Screen::Corpus(c)) if c.contains("menu") => p.screen = Screen::Idle,
            _ => {}
        }
    }
}

struct Launch {
    cwd: String,
    home: String,
    id: String,
    resume: bool,
    /// Launched with `--settings` (ccl's hooks).
    settings: bool,
    /// With a first prompt after the id.
    prompt: bool,
}

/// `cd DIR && CLAUDE_CONFIG_DIR=HOME … claude ARGS --session-id|--resume ID [PROMPT]`.
fn parse_launch(line: &str) -> Option<Launch> {
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .collect();
    let cwd = (words.first()? == "cd").then(|| words[1].clone())?;
    let home = words
        .iter()
        .find_map(|w| w.strip_prefix("CLAUDE_CONFIG_DIR="))?
        .to_string();
    let at = words.iter().position(|w| w == "--session-id" || w == "--resume")?;
    Some(Launch {
        cwd,
        home,
        id: words.get(at + 1)?.clone(),
        resume: words[at] == "--resume",
        settings: words.iter().any(|w| w == "--settings"),
        prompt: words.len() > at + 2,
    })
}

// ---------------------------------------------------------------------------------------
// The simulation

pub struct Sim {
    pub core: Core,
    pub world: World,
    pub now_ms: i64,
    /// When the last tick turn ran (early turns come between ticks; see [`Sim::daemon_turn`]).
    pub last_tick_ms: i64,
    pub turn_no: u64,
    /// Every turn since the core was (re)built: what it saw and what it did.
    pub turns: Vec<(u64, Observation, Vec<Action>)>,
    /// The state the current core started from (a trace header holds it).
    start_state: State,
    start_ms: i64,
}

/// Seed of the conversation-id generator, so runs (and traces) are repeatable.
pub const SEED: u64 = 42;

impl Sim {
    /// A world with every pool session at its shell and every dedicated session at its
    /// shell; scenarios then put Claude, tasks and screens where they need them.
    pub fn new(setup: &Setup) -> Sim {
        let config = setup.config();
        let state = State::fresh(&config, SEED);
        let mut sim = Sim::with_state(config, state);
        sim.world.hooks = setup.hooks;
        sim
    }

    /// A simulation whose core starts from `state` (a restart, or a forged state).
    pub fn with_state(config: Config, state: State) -> Sim {
        let mut world = World::new(config.clone());
        let pool: Vec<String> = config.pool.names().map(String::from).collect();
        for name in pool {
            world.shell(&name, "/pool");
        }
        for d in &config.dedicated {
            world.shell(&d.name, &d.workdir.to_string_lossy());
        }
        let core = Core::new(config, state.clone(), TZ);
        let now_ms = ms(START);
        Sim {
            core,
            world,
            now_ms,
            last_tick_ms: now_ms,
            turn_no: 0,
            turns: Vec::new(),
            start_state: state,
            start_ms: now_ms,
        }
    }

    pub fn state(&self) -> &State {
        self.core.state()
    }

    pub fn config(&self) -> &Config {
        self.core.config()
    }

    /// One turn: time moves on a tick, the world runs, the core observes and acts, the
    /// world carries the actions out. Panics on any contract violation.
    pub fn turn(&mut self) -> Vec<Action> {
        self.turn_at(self.now_ms + TICK_MS)
    }

    /// One turn at `now_ms` (the daemon woke before the tick: `Core::next_wake_ms`); the
    /// world's turns run down as at a tick.
    pub fn turn_at(&mut self, now_ms: i64) -> Vec<Action> {
        assert!(now_ms >= self.now_ms, "a turn back in time");
        self.turn_when(now_ms, true)
    }

    /// One turn when the daemon's loop would take it: at once (`SIGNAL_WAKE_MS`) when a
    /// hook wrote since the last turn (its byte in the wake-up FIFO), else at the core's
    /// `next_wake_ms` when that comes before the next tick, else at the tick. Only tick
    /// turns run the world's turns down.
    pub fn daemon_turn(&mut self) -> Vec<Action> {
        let tick_at = self.last_tick_ms + TICK_MS;
        let signal = (!self.world.signals.is_empty()).then_some(self.now_ms + SIGNAL_WAKE_MS);
        let wake = [signal, self.core.next_wake_ms()].into_iter().flatten().min();
        match wake.filter(|w| *w < tick_at) {
            Some(w) => {
                let at = w.max(self.now_ms + 1);
                self.turn_when(at, false)
            }
            None => self.turn_when(tick_at, true),
        }
    }

    /// A turn `ms` after the last one that is no tick (one another session's hook or
    /// follow-up brought): the world's turns do not run down.
    pub fn turn_after(&mut self, ms: i64) -> Vec<Action> {
        let at = self.now_ms + ms;
        self.turn_when(at, false)
    }

    fn turn_when(&mut self, at_ms: i64, tick: bool) -> Vec<Action> {
        self.now_ms = at_ms;
        self.turn_no += 1;
        if tick {
            self.last_tick_ms = at_ms;
            self.world.advance(self.now_ms);
        }
        let mut obs = self.world.observe(self.now_ms);
        if self.world.report_work && self.core.wants_work_seen() {
            obs.work_seen = self.world.work_seen();
        }
        let actions = self.core.step(&obs);
        self.world.note_decisions(&actions);
        // A swap at turn boundaries never interrupts a running turn.
        let at_boundary = self.core.state().swap.as_ref().is_some_and(|w| w.at_boundary);
        if at_boundary {
            for a in &actions {
                if let Action::SendKeys { session, keys } = a {
                    let busy = matches!(
                        self.world.panes.get(session.as_str()).map(|p| &p.screen),
                        Some(Screen::Busy { .. })
                    );
                    if busy && keys.iter().any(|k| k == "Escape") {
                        self.world
                            .violation(format!("a swap at turn boundaries interrupted busy {session}"));
                    }
                }
            }
        }
        self.world.apply(&actions);
        let violations = std::mem::take(&mut self.world.violations);
        assert!(
            violations.is_empty(),
            "turn {}: contract violated:\n  {}\nactions:\n  {}",
            self.turn_no,
            violations.join("\n  "),
            render(&actions)
        );
        self.turns.push((self.turn_no, obs, actions.clone()));
        actions
    }

    /// `n` turns; all their actions, in order.
    pub fn run(&mut self, n: usize) -> Vec<Action> {
        (0..n).flat_map(|_| self.turn()).collect()
    }

    /// Turns until `done` holds after one (at most `max`); all their actions. Panics
    /// with the last turns' actions when it never holds.
    pub fn until(&mut self, max: usize, what: &str, mut done: impl FnMut(&Sim, &[Action]) -> bool) -> Vec<Action> {
        let mut all = Vec::new();
        for _ in 0..max {
            let actions = self.turn();
            all.extend(actions.iter().cloned());
            if done(self, &actions) {
                return all;
            }
        }
        let tail = all.len().saturating_sub(40);
        panic!(
            "not reached within {max} turns: {what}\nlast actions:\n  {}",
            render(&all[tail..])
        );
    }

    /// Time passes with no turn (the daemon was idle, or the clock jumps in a test).
    pub fn jump(&mut self, ms: i64) {
        self.now_ms += ms;
    }

    pub fn jump_to(&mut self, rfc3339: &str) {
        let t = ms(rfc3339);
        assert!(t >= self.now_ms, "jump back in time to {rfc3339}");
        self.now_ms = t;
    }

    /// The daemon restarts: its state goes through `state.json` (JSON) into a new core.
    /// The world (tmux, queues) stays as it is. Recorded turns start again from here.
    pub fn restart(&mut self) {
        let json = serde_json::to_string(self.core.state()).expect("state serialises");
        let state: State = serde_json::from_str(&json).expect("state deserialises");
        self.core = Core::new(self.core.config().clone(), state.clone(), TZ);
        self.start_state = state;
        self.start_ms = self.now_ms;
        self.turns.clear();
    }

    /// Turns until one decides something `crash_on` matches; that turn's state is kept
    /// (the daemon saves it first) but none of its actions is carried out, and the
    /// daemon restarts: a kill -9 between the save and the actions. Returns that turn's
    /// actions.
    pub fn crash_when(&mut self, max: usize, what: &str, crash_on: impl Fn(&Action) -> bool) -> Vec<Action> {
        for _ in 0..max {
            self.now_ms += TICK_MS;
            self.turn_no += 1;
            self.world.advance(self.now_ms);
            let mut obs = self.world.observe(self.now_ms);
            if self.world.report_work && self.core.wants_work_seen() {
                obs.work_seen = self.world.work_seen();
            }
            let actions = self.core.step(&obs);
            self.world.note_decisions(&actions);
            if actions.iter().any(&crash_on) {
                self.restart();
                return actions;
            }
            self.world.apply(&actions);
            let violations = std::mem::take(&mut self.world.violations);
            assert!(
                violations.is_empty(),
                "contract violated:\n  {}",
                violations.join("\n  ")
            );
            self.turns.push((self.turn_no, obs, actions));
        }
        panic!("not reached within {max} turns: {what}");
    }

    /// The daemon restarts with its `state.json` lost (deleted, or corrupt and set
    /// aside): a fresh state, the world as it is.
    pub fn restart_without_state(&mut self) {
        let state = State::fresh(self.core.config(), SEED + 1);
        self.core = Core::new(self.core.config().clone(), state.clone(), TZ);
        self.start_state = state;
        self.start_ms = self.now_ms;
        self.turns.clear();
    }

    /// Every action of every recorded turn.
    pub fn actions(&self) -> Vec<Action> {
        self.turns.iter().flat_map(|(_, _, a)| a.iter().cloned()).collect()
    }

    /// Writes the recorded turns as a trace (header + one line per turn).
    pub fn write_trace(&self, path: &Path) {
        let header = Header {
            format: ccl_core::trace::FORMAT.into(),
            version: ccl_core::trace::VERSION,
            ccl_version: env!("CARGO_PKG_VERSION").into(),
            config: self.core.config().clone(),
            state: self.start_state.clone(),
            tz: TZ.into(),
            start_ms: self.start_ms,
        };
        let mut r = Recorder::create(path, &header).expect("trace file");
        for (turn, obs, actions) in &self.turns {
            r.turn(*turn, obs, actions).expect("trace line");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Scenario pieces shared by the scenario and golden tests

pub const S11: &str = "ccl-auto-11";
pub const S12: &str = "ccl-auto-12";
pub const S13: &str = "ccl-auto-13";
pub const OPS: &str = "ccl-1-ops";
pub const NOTES: &str = "ccl-2-notes";
pub const OPS_ID: &str = "0b1c2d3e-0000-4000-8000-00000000a001";
pub const NOTES_ID: &str = "0b1c2d3e-0000-4000-8000-00000000a002";

/// The operator's two Claudes under account a: one whose registry file gives ccl its
/// conversation id, one (an older build, say) that writes none.
pub fn operator_sessions(s: &mut Sim) {
    s.world.claude(OPS, "a", OPS_ID, "/src/ccl-1-ops", true);
    s.world.claude(NOTES, "a", NOTES_ID, "/src/ccl-2-notes", false);
}

pub fn working(s: &Sim, name: &str) -> bool {
    matches!(
        s.state().sessions.get(name).map(|x| &x.activity),
        Some(Activity::Working { .. })
    )
}

/// Gives each named pool session (in pool order) a long task and runs until every one
/// of them is working on it.
pub fn start_work(s: &mut Sim, sessions: &[&str]) {
    s.world.busy_turns = 10_000;
    for i in 0..sessions.len() {
        s.world.enqueue("alpha", &format!("task-{}.md", i + 1));
    }
    let names: Vec<String> = sessions.iter().map(|n| n.to_string()).collect();
    s.until(20, "every session working", move |s, _| {
        names.iter().all(|n| working(s, n))
    });
}

pub fn conversation(s: &Sim, name: &str) -> String {
    (s.state().sessions[name]
        .conversation
        .clone()
        .unwrap_or_else(|| panic!("{name} has no conversation")))
    .to_string()
}

// ---------------------------------------------------------------------------------------
// Reading actions

pub fn render(actions: &[Action]) -> String {
    actions.iter().map(|a| a.to_string()).collect::<Vec<_>>().join("\n  ")
}

/// The actions that touch `session`.
pub fn on<'a>(actions: &'a [Action], session: &str) -> Vec<&'a Action> {
    actions.iter().filter(|a| a.session() == Some(session)).collect()
}

/// Lines typed into `session`'s shell or Claude.
pub fn typed<'a>(actions: &'a [Action], session: &str) -> Vec<&'a str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::TypeLine { session: s, line } if s == session => Some(line.as_str()),
            _ => None,
        })
        .collect()
}

/// The free-form log lines (not the typed decisions: see [`events`]).
pub fn logs(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect()
}

/// The core's typed decisions (quota, swap steps, task outcomes).
pub fn events(actions: &[Action]) -> Vec<&Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// Every line the daemon's log shows for these actions' decisions and messages, as an
/// operator reads it: for assertions that nothing at all says something.
pub fn said(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log { message, .. } => Some(message.clone()),
            Action::Event(e) => Some(e.to_string()),
            _ => None,
        })
        .collect()
}

/// Every needs-attention decision: (session, reason as logged).
pub fn attention(actions: &[Action]) -> Vec<(&str, &str)> {
    events(actions)
        .into_iter()
        .filter_map(|e| match e {
            Event::NeedsAttention { session, reason } => Some((session.as_str(), reason.as_str())),
            _ => None,
        })
        .collect()
}

/// A swap from `from` to `to` was completed.
pub fn swapped(actions: &[Action], from: &str, to: &str) -> bool {
    events(actions)
        .iter()
        .any(|e| matches!(e, Event::Swapped { from: f, to: t, .. } if f == from && t == to))
}

/// A swap from `from` to `to` began.
pub fn swap_begins(actions: &[Action], from: &str, to: &str) -> bool {
    events(actions)
        .iter()
        .any(|e| matches!(e, Event::SwapBegins { from: f, to: t, .. } if f == from && t == to))
}

/// (session, queue, task) of every claim.
pub fn claims(actions: &[Action]) -> Vec<(String, String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ClaimTask { session, queue, task } => {
                Some((session.to_string(), queue.to_string(), task.to_string()))
            }
            _ => None,
        })
        .collect()
}

pub fn keys<'a>(actions: &'a [Action], session: &str) -> Vec<&'a [String]> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendKeys { session: s, keys } if s == session => Some(keys.as_slice()),
            _ => None,
        })
        .collect()
}

/// Launch lines are `… --resume ID` or `… --session-id ID`.
/// Continue prompts `session` was given: pasted into its box, or on the launch line that
/// resumed its conversation.
pub fn continue_prompts(acts: &[Action], session: &str) -> usize {
    acts.iter()
        .filter(|a| match a {
            Action::PasteText { session: s, text } => s == session && text == CONTINUE_PROMPT,
            Action::TypeLine { session: s, line } => s == session && gives_continue(line),
            _ => false,
        })
        .count()
}

/// A launch line that gives Claude the continue prompt as its first prompt.
pub fn gives_continue(line: &str) -> bool {
    is_launch(line) && line.ends_with(&format!(" '{CONTINUE_PROMPT}'"))
}

/// The launch line that resumes conversation `id` with the continue prompt.
pub fn resumes_with_continue(line: &str, id: &str) -> bool {
    gives_continue(line) && line.contains(&format!(" --resume {id} "))
}

pub fn is_launch(line: &str) -> bool {
    line.contains("CLAUDE_CONFIG_DIR=")
}

pub fn swap_began(actions: &[Action]) -> bool {
    events(actions).iter().any(|e| matches!(e, Event::SwapBegins { .. }))
}

pub fn swap_done(actions: &[Action]) -> bool {
    events(actions).iter().any(|e| matches!(e, Event::Swapped { .. }))
}

/// The operator's session as the original system left it: marked as working on
/// `alpha/TASK` for a minute (a state ccl itself never creates).
pub fn dedicated_marked_working(task: &str) -> ccl_core::core::SessionState {
    use ccl_core::core::{Activity, Assignment, Kind, SessionState, TaskRef};
    let mut ops = SessionState::new(Kind::Dedicated);
    ops.activity = Activity::Working {
        since_ms: ms(START) - 60_000,
        turn_ended: true,
        idle_turns: 1,
    };
    ops.assignment = Some(Assignment {
        task: TaskRef {
            queue: "alpha".into(),
            task: task.into(),
        },
        claimed_ms: ms(START) - 120_000,
        started_ms: Some(ms(START) - 60_000),
        attempt: 1,
        adopted: None,
        worktree: None,
    });
    ops
}
