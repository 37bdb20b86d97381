//! The shell's eyes: gathers one [`Observation`] per turn from tmux, Claude's session
//! registries and transcripts, the queue directories and the request files.
//!
//! Only managed sessions are captured; every other session on the server is listed by
//! name and pane pid only, and never touched. Transcripts are read incrementally (each
//! record once); a conversation first seen when the daemon starts is read from its end,
//! so old history is not taken as news.
//!
//! A pane is captured again only when its screen may have changed: tmux's
//! `#{window_activity}` moved (or the last capture was taken in the same second as that
//! activity, since the value has whole-second resolution), its pid, command, dead flag or
//! size changed, the executor acted on the session since, or the capture is older than a
//! bound. Otherwise the last capture is handed to the core again, so the core sees a
//! capture of every managed pane every turn, exactly as if it had been taken.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use crate::adapters::procs;
use crate::adapters::queue;
use crate::adapters::tmux::{PaneInfo, Tmux};
use crate::adapters::transcript::{self, TranscriptReader};
use crate::shell::hooks::Hooks;
use crate::shell::signals::SpoolReader;
use crate::shell::state;
use ccl_core::config::Config;
use ccl_core::core::{
    ClaimError, Core, FirstPrompt, HookDone, HookEvent, Observation, QueueObs, RegistrySeen, SessionObs, SignalSeen,
    TaskRef, TranscriptSeen, WorkSeen, WorktreeOutcome,
};
use ccl_core::screen;

/// The shell: owns the tmux port and everything with I/O that the loop needs between
/// turns (transcript offsets, running hooks, claims that failed).
pub struct Shell {
    pub tmux: Box<dyn Tmux>,
    pub(crate) transcripts: TranscriptReader,
    pub(crate) seen_transcripts: BTreeSet<PathBuf>,
    pub(crate) failed_claims: Vec<TaskRef>,
    pub(crate) claim_errors: Vec<ClaimError>,
    /// Outcomes of `AddWorktree` actions, for the next observation.
    pub(crate) worktrees: Vec<WorktreeOutcome>,
    pub(crate) hooks: Hooks,
    pub(crate) turns: u64,
    /// Per queue: verdicts on inbox files, so unchanged files are not re-read each turn.
    inbox_caches: std::collections::BTreeMap<String, queue::InboxCache>,
    /// Per managed session: its last capture and what tmux said about the pane then.
    captures: BTreeMap<String, Capture>,
    /// Sessions the executor acted on since the last observation: captured afresh.
    pub(crate) touched: BTreeSet<String>,
    /// Captures actually taken from tmux (not reused), for tests and benchmarks.
    n_captures: u64,
    /// One-shot inputs of a turn that was undone (its state could not be saved): given
    /// to the core again with the next observation, so no request, transcript record,
    /// hook report or failed claim is lost with the turn.
    again: Option<Observation>,
    /// Where the hooks' spool was read up to.
    spool: SpoolReader,
}

/// How old a reused capture may get: past this it is taken again even though tmux
/// reported no output, bounding the damage should a screen ever change without output
/// (or the clock step). Each session's bound is staggered down by up to half of this,
/// so a fleet started at once does not refresh every pane in the same turn.
pub const MAX_CAPTURE_AGE_MS: i64 = 10_000;

/// A capture kept for reuse, with the pane as tmux listed it when it was taken.
struct Capture {
    pane: PaneInfo,
    /// `now_ms` of the turn it was taken in; taken before the capture, so never later.
    taken_ms: i64,
    text: String,
}

impl Capture {
    /// Whether this capture still shows `pane`'s screen at `now_ms`.
    fn still_valid(&self, pane: &PaneInfo, now_ms: i64) -> bool {
        let Some(activity_s) = pane.activity_s else {
            return false;
        };
        let same_pane = self.pane.pane_pid == pane.pane_pid
            && self.pane.current_command == pane.current_command
            && self.pane.dead == pane.dead
            && self.pane.width == pane.width
            && self.pane.height == pane.height;
        // Activity is in whole seconds: output in the second the capture was taken may
        // have come after it without moving the value, so that second proves nothing.
        let quiet_since_taken = self.pane.activity_s == Some(activity_s) && (activity_s as i64) < self.taken_ms / 1000;
        same_pane && quiet_since_taken && now_ms - self.taken_ms < max_capture_age_ms(&pane.session)
    }
}

/// `MAX_CAPTURE_AGE_MS` less a stable per-session stagger of up to half of it.
fn max_capture_age_ms(session: &str) -> i64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    session.hash(&mut hasher);
    let half = MAX_CAPTURE_AGE_MS / 2;
    MAX_CAPTURE_AGE_MS - (hasher.finish() % half as u64) as i64
}

impl Shell {
    pub fn new(tmux: Box<dyn Tmux>) -> Shell {
        Shell {
            tmux,
            transcripts: TranscriptReader::default(),
            seen_transcripts: BTreeSet::new(),
            failed_claims: Vec::new(),
            claim_errors: Vec::new(),
            worktrees: Vec::new(),
            hooks: Hooks::default(),
            turns: 0,
            inbox_caches: Default::default(),
            captures: BTreeMap::new(),
            touched: BTreeSet::new(),
            n_captures: 0,
            again: None,
            spool: SpoolReader::default(),
        }
    }

    /// How many pane captures were taken from tmux so far (reused ones not counted).
    pub fn n_captures(&self) -> u64 {
        self.n_captures
    }

    pub fn observe(&mut self, core: &Core, now_ms: i64) -> Observation {
        let config = core.config();
        // Each session is looked at (and later acted on) through the pane its Claude runs
        // in, whatever pane the operator made active (see `tmux::parse_panes`): the pane
        // ccl knows, else the one Claude's registry entry names (a session met already
        // split, after state was lost).
        let entries = read_registries(config);
        let mut pins = core.pane_pins();
        for (_, e) in &entries {
            if let (Some(session), Some(pane)) = (&e.tmux_session, &e.tmux_pane) {
                if config.is_managed(session) {
                    pins.entry(session.clone().into()).or_insert_with(|| pane.clone());
                }
            }
        }
        self.tmux.pin_panes(&pins);
        let mut sessions = self.observe_tmux(config, now_ms);
        let registry = match &sessions {
            Some(list) => observe_registry(config, list, entries),
            None => Vec::new(),
        };
        for s in sessions
            .iter_mut()
            .flatten()
            .filter(|s| config.is_managed(&s.name) && !s.dead)
        {
            let pids: Vec<u32> = registry
                .iter()
                .filter(|r| r.session == s.name)
                .map(|r| r.entry.pid)
                .collect();
            s.claude_pid = procs::foreground_claude(s.pane_pid, &pids);
        }
        // A turn without the tmux listing acts on nothing, so the transcripts' new records
        // wait for the next turn rather than be handed to a core that cannot use them.
        let transcripts = match &sessions {
            Some(_) => self.observe_transcripts(core),
            None => Vec::new(),
        };
        let signals = match &sessions {
            Some(_) => self.observe_signals(config),
            None => Vec::new(),
        };
        let queues = self.observe_queues(config);
        let work_seen = if core.wants_work_seen() {
            observe_work(core, &registry, &queues, sessions.as_deref().unwrap_or(&[]))
        } else {
            Vec::new()
        };
        let requests = state::take_requests(&config.daemon.state_dir);
        let hooks_done: Vec<HookDone> = self.hooks.reap(now_ms);
        let missing_dirs = std::iter::once(&config.pool.workdir)
            .chain(config.dedicated.iter().map(|d| &d.workdir))
            .filter(|dir| !dir.is_dir())
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.turns += 1;
        let mut obs = Observation {
            now_ms,
            sessions,
            registry,
            transcripts,
            queues,
            requests,
            failed_claims: std::mem::take(&mut self.failed_claims),
            claim_errors: std::mem::take(&mut self.claim_errors),
            hooks_done,
            missing_dirs,
            work_seen,
            worktrees: std::mem::take(&mut self.worktrees),
            signals,
        };
        if let Some(mut again) = self.again.take() {
            again.transcripts.append(&mut obs.transcripts);
            again.requests.append(&mut obs.requests);
            again.failed_claims.append(&mut obs.failed_claims);
            again.hooks_done.append(&mut obs.hooks_done);
            again.worktrees.append(&mut obs.worktrees);
            again.signals.append(&mut obs.signals);
            obs.transcripts = again.transcripts;
            obs.requests = again.requests;
            obs.failed_claims = again.failed_claims;
            obs.hooks_done = again.hooks_done;
            obs.worktrees = again.worktrees;
            obs.signals = again.signals;
        }
        obs
    }

    /// The turn that saw `obs` was undone: what it alone could see comes again next turn
    /// (tmux, registries and queues are simply observed afresh).
    pub fn give_again(&mut self, obs: Observation) {
        self.again = Some(obs);
    }

    /// The spool's new lines as signals of managed sessions, in the order written; of
    /// the status lines (one per redraw) only each session's latest is kept.
    fn observe_signals(&mut self, config: &Config) -> Vec<SignalSeen> {
        let lines = self.spool.read(&config.signals_dir());
        let mut out: Vec<SignalSeen> = Vec::new();
        for line in lines {
            let Some(session) = line.session.clone().filter(|s| config.is_managed(s)) else {
                continue;
            };
            let Some(event) = line.event() else { continue };
            let account = line.config_dir.as_ref().and_then(|dir| {
                config
                    .accounts
                    .iter()
                    .find(|a| a.home.as_os_str() == dir.as_str())
                    .map(|a| a.name.clone())
            });
            if matches!(event, HookEvent::Status { .. }) {
                out.retain(|s| !(s.session == session && matches!(s.event, HookEvent::Status { .. })));
            }
            out.push(SignalSeen {
                session: session.into(),
                account,
                at_ms: line.at_ms,
                event,
            });
        }
        out
    }

    fn observe_tmux(&mut self, config: &Config, now_ms: i64) -> Option<Vec<SessionObs>> {
        let panes = match self.tmux.list_sessions() {
            Ok(p) => p,
            Err(e) => {
                log::warn!("cannot list tmux sessions: {e:#}");
                return None;
            }
        };
        // Whatever was listed for a managed session is the pane every later command of
        // this turn goes to: the pinned pane while it exists, else the active one.
        let pins: ccl_core::sessions::Pins = panes
            .iter()
            .filter(|p| config.is_managed(&p.session) && !p.pane_id.is_empty())
            .map(|p| (p.session.as_str().into(), p.pane_id.clone()))
            .collect();
        self.tmux.pin_panes(&pins);
        let touched = std::mem::take(&mut self.touched);
        // Sessions gone from the server (or no longer captured) drop their captures.
        let mut kept = std::mem::take(&mut self.captures);
        let stale: Vec<&PaneInfo> = panes
            .iter()
            .filter(|p| config.is_managed(&p.session) && !p.dead)
            .filter(|p| match kept.remove(&p.session) {
                Some(last) if !touched.contains(&p.session) && last.still_valid(p, now_ms) => {
                    self.captures.insert(p.session.clone(), last);
                    false
                }
                _ => true,
            })
            .collect();
        self.capture_all(&stale, now_ms);
        let mut out = Vec::with_capacity(panes.len());
        for p in panes {
            let capture = if config.is_managed(&p.session) && !p.dead {
                self.captures.get(&p.session).map(|c| c.text.clone())
            } else {
                None
            };
            // Only dedicated sessions are ever stopped by signal, and only Claude: a few
            // /proc reads, not one per pane of the fleet.
            let foreground_pid = (config.dedicated.iter().any(|d| d.name == p.session)
                && !p.dead
                && ccl_core::sessions::is_claude_name(&p.current_command, &config.claude.command))
            .then(|| procs::foreground_pid(p.pane_pid))
            .flatten();
            out.push(SessionObs {
                name: p.session.into(),
                pane_pid: p.pane_pid,
                command: p.current_command,
                dead: p.dead,
                capture,
                claude_pid: None,
                foreground_pid,
                pane_id: Some(p.pane_id).filter(|id| !id.is_empty()),
                n_panes: p.n_panes,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Some(out)
    }

    /// Captures `panes` from tmux (all in one go where the backend can) and keeps each
    /// capture for reuse; a pane that cannot be captured has none this turn.
    fn capture_all(&mut self, panes: &[&PaneInfo], now_ms: i64) {
        let names: Vec<&str> = panes.iter().map(|p| p.session.as_str()).collect();
        let screens = self.tmux.capture_all(&names);
        self.n_captures += panes.len() as u64;
        for (pane, screen) in panes.iter().zip(screens) {
            match screen {
                Ok(text) => {
                    let capture = Capture {
                        pane: (*pane).clone(),
                        taken_ms: now_ms,
                        text,
                    };
                    self.captures.insert(pane.session.clone(), capture);
                }
                Err(e) => log::warn!("cannot capture {}: {e:#}", pane.session),
            }
        }
    }

    fn observe_transcripts(&mut self, core: &Core) -> Vec<TranscriptSeen> {
        let projects = core.config().shared.target.join("projects");
        let mut out = Vec::new();
        for (session, cwd, id) in core.watch_list() {
            let path = transcript::locate_transcript(&projects, &cwd, &id)
                .unwrap_or_else(|| ccl_core::transcript::transcript_path(&projects, &cwd, &id));
            if self.seen_transcripts.insert(path.clone()) && self.turns == 0 {
                // Adopted at start: history before this run is not news.
                if let Err(e) = self.transcripts.skip_to_end(&path) {
                    log::warn!("cannot read transcript {}: {e:#}", path.display());
                }
                continue;
            }
            match self.transcripts.read_new(&path) {
                Ok(records) if !records.is_empty() => out.push(TranscriptSeen {
                    session,
                    conversation: id,
                    records,
                }),
                Ok(_) => {}
                Err(e) => log::warn!("cannot read transcript {}: {e:#}", path.display()),
            }
        }
        out
    }
}

/// For each pool session that carries no task and whose Claude works in the project of a
/// queue with files in `running/`: its conversation's first prompt, matched against the
/// bodies of those files (read once per turn per queue).
fn observe_work(core: &Core, registry: &[RegistrySeen], queues: &[QueueObs], panes: &[SessionObs]) -> Vec<WorkSeen> {
    let config = core.config();
    let projects = config.shared.target.join("projects");
    let mut bodies: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut out = Vec::new();
    for r in registry {
        let carries = core
            .state()
            .sessions
            .get(&r.session)
            .is_some_and(|s| s.assignment.is_some());
        if carries || !config.pool.contains(&r.session) {
            continue;
        }
        let Some(q) = config.queues.iter().find(|q| q.holds_workdir(&r.entry.cwd)) else {
            continue;
        };
        let Some(running) = queues.iter().find(|o| o.name == q.name).map(|o| &o.running) else {
            continue;
        };
        if running.is_empty() {
            continue;
        }
        let path = transcript::locate_transcript(&projects, &r.entry.cwd, &r.entry.session_id)
            .unwrap_or_else(|| ccl_core::transcript::transcript_path(&projects, &r.entry.cwd, &r.entry.session_id));
        let prompt = match transcript::first_prompt(&path) {
            Ok(Some(text)) => {
                let bodies = bodies.entry(q.name.to_string()).or_insert_with(|| {
                    running
                        .iter()
                        .filter_map(|name| queue::read_running(q, name).ok().map(|b| (name.to_string(), b)))
                        .collect()
                });
                match bodies
                    .iter()
                    .find(|(_, body)| ccl_core::transcript::prompt_is(&text, body))
                {
                    Some((name, _)) => FirstPrompt::Task { task: name.clone() },
                    None => FirstPrompt::Other,
                }
            }
            Ok(None) => {
                // No prompt yet: a task's body unsent in the box is ccl's own paste from
                // before a crash (what else matches a file in running/). Claude shows a
                // paste of several lines collapsed, which only its line count tells
                // apart: a box that could be more than one task's is nobody's, as
                // adopting the wrong one would run the other's prompt under its name.
                let in_box = panes
                    .iter()
                    .find(|p| p.name == r.session)
                    .and_then(|p| p.capture.as_deref())
                    .and_then(|c| screen::analyze(c, jiff::Timestamp::UNIX_EPOCH, &jiff::tz::TimeZone::UTC).input);
                let bodies = bodies.entry(q.name.to_string()).or_insert_with(|| {
                    running
                        .iter()
                        .filter_map(|name| queue::read_running(q, name).ok().map(|b| (name.to_string(), b)))
                        .collect()
                });
                let owned = |name: &str| {
                    core.state().sessions.values().any(|s| {
                        s.assignment
                            .as_ref()
                            .is_some_and(|a| a.task.queue == q.name && a.task.task == name)
                    })
                };
                let candidates: Vec<&String> = in_box
                    .map(|text| {
                        bodies
                            .iter()
                            .filter(|(name, body)| !owned(name) && screen::box_holds_paste(&text, body))
                            .map(|(name, _)| name)
                            .collect()
                    })
                    .unwrap_or_default();
                match candidates.as_slice() {
                    [name] => FirstPrompt::InBox { task: (*name).clone() },
                    _ => FirstPrompt::Pending,
                }
            }
            Err(e) => {
                // Unreadable is not proof of anything: treated as "no prompt yet".
                log::warn!("cannot read transcript {}: {e:#}", path.display());
                FirstPrompt::Pending
            }
        };
        out.push(WorkSeen {
            session: r.session.clone(),
            queue: q.name.clone(),
            prompt,
        });
    }
    out
}

/// Registry entries of running Claudes that sit in managed sessions.
/// Every account's registry entries, with the account's name.
pub(crate) fn read_registries(
    config: &Config,
) -> Vec<(ccl_core::names::AccountName, ccl_core::transcript::RegistryEntry)> {
    config
        .accounts
        .iter()
        .flat_map(|a| {
            transcript::read_registry(&a.home)
                .into_iter()
                .map(move |e| (a.name.clone(), e))
        })
        .collect()
}

/// The registry entries of Claudes in listed managed sessions.
pub(crate) fn observe_registry(
    config: &Config,
    sessions: &[SessionObs],
    entries: Vec<(ccl_core::names::AccountName, ccl_core::transcript::RegistryEntry)>,
) -> Vec<RegistrySeen> {
    let managed: BTreeSet<&str> = sessions
        .iter()
        .filter(|s| config.is_managed(&s.name))
        .map(|s| s.name.as_str())
        .collect();
    let mut out = Vec::new();
    for (account, entry) in entries {
        let Some(session) = entry.tmux_session.clone() else {
            continue;
        };
        if managed.contains(session.as_str()) {
            out.push(RegistrySeen {
                session: session.into(),
                account,
                entry,
            });
        }
    }
    out
}

impl Shell {
    fn observe_queues(&mut self, config: &Config) -> Vec<QueueObs> {
        config
            .queues
            .iter()
            .map(|q| {
                let cache = self.inbox_caches.entry(q.name.to_string()).or_default();
                let inbox = queue::scan_inbox_with(q, cache).unwrap_or_else(|e| {
                    log::warn!("cannot scan queue {}: {e:#}", q.name);
                    Vec::new()
                });
                let running = queue::list(q, "running").unwrap_or_else(|e| {
                    log::warn!("cannot list running tasks of queue {}: {e:#}", q.name);
                    Vec::new()
                });
                QueueObs {
                    name: q.name.clone(),
                    inbox,
                    running: running.into_iter().map(Into::into).collect(),
                }
            })
            .collect()
    }
}
