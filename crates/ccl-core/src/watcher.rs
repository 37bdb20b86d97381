//! Phase 3 of a turn: the watcher. Moves each session's multi-turn state machine on:
//! launch → ready, paste → Enter after `submit_delay` → verified submission, working →
//! completion (`done/`, then `/exit` to recycle the context), and the failures in
//! between (Claude died mid-task, task timeout, a prompt that would not submit, a turn
//! that ended with an API error such as a 500).
//!
//! A task is complete when its turn has ended (the transcript's `turn_duration` record,
//! the registry going idle, or a finished-turn line on an idle screen) and the session
//! then stays idle for [`limits::IDLE_TURNS_TO_FINISH`] turns with no usage limit
//! pending. A usage-limit hit mid-task is not a failure: the task stays in `running/`
//! and continues after the swap or the reset. A dedicated session is never sent `/exit`;
//! if one were ever marked working it is only marked idle.

use crate::core::{
    limits, Action, Activity, AfterLaunch, Core, HookEvent, Kind, Observation, PasteKind, Seen, TaskRef, TaskReport,
};
use crate::event::Event;
use crate::names::SessionName;
use crate::sessions::{last_line, ShellLine, FOREIGN_BOX_TEXT, FOREIGN_QUOTE_CHARS};
use crate::transcript::Signal;
use crate::util::{rfc3339, snippet};

impl Core {
    pub(crate) fn check_watcher(&mut self, obs: &Observation) {
        self.handle_worktrees(obs);
        let names: Vec<SessionName> = self.state.sessions.keys().cloned().collect();
        for name in names {
            if self.state.sessions[&name].pane_lost {
                // Its Claude's pane is gone and the operator's panes remain: nothing
                // here can be told about the task, so nothing is decided about it.
                continue;
            }
            if self.state.swap.is_some() && matches!(self.state.sessions[&name].activity, Activity::Stopping { .. }) {
                self.note_taken_while_stopping(&name, obs);
                continue;
            }
            self.guard_dedicated(&name);
            let activity = self.state.sessions[&name].activity.clone();
            match activity {
                Activity::Free => {}
                Activity::Preparing { since_ms } => self.watch_preparing(&name, since_ms),
                Activity::Launching {
                    since_ms,
                    deadline_ms,
                    then,
                    line,
                } => self.watch_launch(&name, obs, since_ms, deadline_ms, then, &line),
                Activity::Pasted { enter_ms, text, .. } => self.watch_pasted(&name, enter_ms, text),
                Activity::Submitted { at_ms, enters, text } => self.watch_submitted(&name, obs, at_ms, enters, text),
                Activity::Working {
                    since_ms,
                    turn_ended,
                    idle_turns,
                } => self.watch_working(&name, obs, since_ms, turn_ended, idle_turns),
                Activity::Exiting { deadline_ms } => self.watch_exiting(&name, deadline_ms),
                Activity::Stopping { .. } => {
                    // A stop left over without a swap (e.g. state from an older run): settle.
                    self.state.sessions.get_mut(&name).expect("session exists").activity = Activity::Free;
                }
            }
        }
    }

    /// Last turn's `AddWorktree` outcomes: a made worktree is recorded with the task's
    /// assignment (whatever the session is doing now, so a swap that began meanwhile
    /// relaunches the task there); git's refusal fails the task with git's message.
    fn handle_worktrees(&mut self, obs: &Observation) {
        for outcome in &obs.worktrees {
            let Some(s) = self.state.sessions.get_mut(&outcome.session) else {
                continue;
            };
            let Some(a) = s.assignment.as_mut().filter(|a| a.task == outcome.task) else {
                continue;
            };
            match (&outcome.worktree, &outcome.error) {
                (Some(wt), _) => {
                    a.worktree = Some(wt.clone());
                    let event = Event::WorktreeMade {
                        session: outcome.session.clone(),
                        path: wt.path.display().to_string(),
                        branch: wt.branch.clone(),
                        task: outcome.task.to_string(),
                    };
                    self.event(event);
                }
                (None, error) => {
                    let task = a.task.clone();
                    s.assignment = None;
                    if matches!(s.activity, Activity::Preparing { .. }) {
                        s.activity = Activity::Free;
                    }
                    self.state.attempts.remove(&task.to_string());
                    let why = error.clone().unwrap_or_else(|| "git gave no reason".into());
                    self.fail_running(&outcome.session, &task, &format!("cannot make its git worktree: {why}"));
                }
            }
        }
    }

    /// A task waits for its worktree; once made, Claude is launched in it. On the first
    /// turn after a restart the outcome may have been lost with the old process: the
    /// worktree is asked for again, and a new one is made (one made just before the
    /// crash is never reused; it stays, clean, for `ccl worktrees prune`).
    fn watch_preparing(&mut self, name: &str, since_ms: i64) {
        let s = &self.state.sessions[name];
        match &s.assignment {
            Some(a) if a.worktree.is_some() => self.launch_task(name),
            Some(_) if !self.state.started && since_ms < self.now_ms => {
                self.log(format!(
                    "{name}: worktree request interrupted by a restart; asking again"
                ));
                self.launch_task(name);
            }
            Some(_) => {}
            None => self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Free,
        }
    }

    /// A swap can begin in the very turn that shows a task's prompt taken: the real client
    /// answers a limited account's first request within half a second of the Enter, so
    /// its limit record arrives before the busy screen was ever seen. The conversation
    /// exists then, and the relaunch must resume it rather than start the task afresh.
    fn note_taken_while_stopping(&mut self, name: &str, obs: &Observation) {
        let taken = prompt_recorded(obs, name) || self.hook_turn(obs, name).0;
        let now_ms = self.now_ms;
        let s = self.state.sessions.get_mut(name).expect("session exists");
        if let Some(a) = s.assignment.as_mut().filter(|a| taken && a.started_ms.is_none()) {
            a.started_ms = Some(now_ms);
        }
    }

    /// Defence in depth: a dedicated session never carries a task.
    fn guard_dedicated(&mut self, name: &str) {
        let s = self.state.sessions.get_mut(name).expect("session exists");
        if s.kind != Kind::Dedicated || s.assignment.is_none() {
            return;
        }
        let a = s.assignment.take().expect("checked");
        if !matches!(
            s.activity,
            Activity::Launching {
                then: AfterLaunch::Nothing,
                ..
            }
        ) {
            s.activity = Activity::Free;
        }
        self.event(Event::DedicatedHadTask {
            session: name.into(),
            task: a.task.to_string(),
        });
        self.push(Action::RequeueTask {
            queue: a.task.queue.clone(),
            task: a.task.task.clone(),
            reason: format!("{name} is a dedicated session"),
        });
    }

    fn watch_launch(
        &mut self,
        name: &str,
        obs: &Observation,
        since_ms: i64,
        deadline_ms: i64,
        then: AfterLaunch,
        line: &str,
    ) {
        let s = &self.state.sessions[name];
        // State is saved before a turn's actions run, so a daemon killed in the turn that
        // launched may never have typed the line, or typed it without its Enter (the
        // shell then shows it unexecuted). On the first turn after a start, a launch still
        // at the shell is typed again from a clean line.
        let launched_before_this_turn = since_ms < self.now_ms;
        if !self.state.started
            && launched_before_this_turn
            && matches!(s.seen, Seen::Shell | Seen::Other)
            && !line.is_empty()
        {
            // Only ccl's own text is erased: the line must be empty or hold exactly the
            // launch line typed before the restart.
            let erase = match self.shell_line(name) {
                ShellLine::Empty => false,
                ShellLine::Typed(text) if text == line.trim() => true,
                other => {
                    let reason = other.foreign_reason().unwrap_or_default();
                    self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Free;
                    self.flag_foreign_text(name, &reason);
                    return self.give_back(name, "its shell line holds text ccl did not type", false);
                }
            };
            self.log(format!("{name}: launch interrupted by a restart; typing it again"));
            if erase {
                self.push(Action::SendKeys {
                    session: name.into(),
                    keys: vec!["C-u".into()],
                });
            }
            self.push(Action::TypeLine {
                session: name.into(),
                line: line.to_string(),
            });
            let s = self.state.sessions.get_mut(name).expect("session exists");
            s.activity = Activity::Launching {
                since_ms: self.now_ms,
                deadline_ms: self.now_ms + limits::LAUNCH_TIMEOUT_MS,
                then,
                line: line.to_string(),
            };
            return;
        }
        // Claude took its first prompt from the launch line as it started: from here on it
        // is watched like a pasted one that was submitted (whose hook may already be in).
        let given = then == AfterLaunch::ContinueGiven;
        if given && (matches!(s.seen, Seen::Idle | Seen::Busy) || self.hook_turn(obs, name).0) {
            // `--resume` redraws the conversation, old limit banners included.
            let stale = self.banner_lines(name);
            let s = self.state.sessions.get_mut(name).expect("session exists");
            s.stale_hits = stale;
            s.activity = Activity::Submitted {
                at_ms: self.now_ms,
                enters: 0,
                text: PasteKind::ContinueGiven,
            };
            return self.watch_submitted(name, obs, self.now_ms, 0, PasteKind::ContinueGiven);
        }
        match s.seen {
            // The operator typed into the new Claude's box before ccl's prompt went in:
            // the prompt waits (the launch does not time out meanwhile) until it is empty.
            Seen::Idle if then != AfterLaunch::Nothing && self.box_text(name).is_some() => {
                let reason = self.foreign_text(name).unwrap_or_default();
                self.flag_foreign_text(name, &reason);
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.activity = Activity::Launching {
                    since_ms,
                    deadline_ms: self.now_ms + limits::LAUNCH_TIMEOUT_MS,
                    then,
                    line: line.to_string(),
                };
            }
            Seen::Idle => {
                let stale = self.banner_lines(name);
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.stale_hits = stale;
                s.activity = Activity::Free;
                match then {
                    AfterLaunch::Task => self.paste_task(name),
                    // (A given prompt never gets here: an idle Claude took it, above.)
                    AfterLaunch::Continue | AfterLaunch::ContinueGiven => self.paste_continue(name),
                    AfterLaunch::Nothing => self.ready_for_the_operator(name),
                }
            }
            Seen::Attention => {
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.activity = Activity::Free;
                self.drop_draft(name);
                self.give_back(name, "claude stopped at a screen that needs the operator", false);
            }
            Seen::Absent | Seen::Dead => {
                self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Free;
                self.drop_draft(name);
                self.give_back(name, "the session went away while claude was starting", true);
            }
            // Back at a prompt after the launch line: Claude exited (a resume that found
            // no conversation, a command not found, …). Its last words say why.
            Seen::Shell if self.now_ms >= since_ms + limits::LAUNCH_GRACE_MS => {
                let why = self.last_words(name);
                // The prompt now on screen was drawn after ccl's own line ran, so it is an
                // empty command line even when it differs from the one seen before (the
                // line `cd`-ed into the workdir, and the prompt shows the directory).
                let prompt = self
                    .captures
                    .get(name)
                    .map(|c| last_line(c).to_string())
                    .filter(|l| line.is_empty() || !l.contains(line));
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.activity = Activity::Free;
                s.conversation = None;
                s.account = None;
                if prompt.is_some() {
                    s.shell_prompt = prompt;
                }
                match then {
                    AfterLaunch::Nothing => {
                        self.event(Event::LaunchExited {
                            session: name.into(),
                            why: why.to_string(),
                        });
                        self.drop_draft(name);
                    }
                    _ => self.give_back(name, &format!("claude exited right after launch: {why}"), true),
                }
            }
            _ if self.now_ms >= deadline_ms => {
                let first = self
                    .analysis(name)
                    .map(|a| a.attention.clone().unwrap_or_default())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| format!("screen state {:?}", s.seen).to_lowercase());
                // Not recognised as Claude at all: say what runs instead, which is what
                // an operator needs to fix a claude.command that starts something else.
                let runs = match (s.seen, self.commands.get(name)) {
                    (Seen::Other | Seen::Shell, Some(cmd)) => format!("the pane runs '{cmd}', not claude; "),
                    _ => String::new(),
                };
                let why = format!(
                    "claude did not become ready within {}s: {runs}{}",
                    limits::LAUNCH_TIMEOUT_MS / 1000,
                    snippet(&first, limits::SNIPPET_CHARS)
                );
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.activity = Activity::Free;
                if s.kind == Kind::Pool {
                    // A pool session is ccl's own: start it over rather than leave it stuck
                    // behind whatever the pane shows.
                    s.conversation = None;
                    s.account = None;
                    s.cwd = None;
                    let workdir = self.config.pool.workdir.clone();
                    self.event(Event::LaunchTimedOut {
                        session: name.into(),
                        why: why.clone(),
                    });
                    self.push(Action::KillSession {
                        session: name.into(),
                        reason: "claude did not start".into(),
                    });
                    self.create_session(name, &workdir, "recreated after a launch that never became ready");
                    self.give_back(name, "claude did not start", true);
                } else {
                    self.drop_draft(name);
                    self.needs_attention(name, &why);
                }
            }
            _ => {}
        }
    }

    /// A resumed dedicated conversation is ready: the draft its box held before the swap
    /// goes back in, typed and never submitted.
    fn ready_for_the_operator(&mut self, name: &str) {
        let draft = self.state.sessions.get_mut(name).and_then(|s| s.draft.take());
        let Some(draft) = draft else {
            return self.event(Event::Ready { session: name.into() });
        };
        if let Some(text) = self.box_text(name) {
            // Someone typed into the new box already: never mix two texts.
            return self.event(Event::DraftNotRestored {
                session: name.into(),
                box_snippet: snippet(&text, FOREIGN_QUOTE_CHARS),
                draft_snippet: snippet(&draft, limits::MAX_DRAFT_LOG_CHARS),
            });
        }
        self.event(Event::DraftRestored {
            session: name.into(),
            snippet: snippet(&draft, FOREIGN_QUOTE_CHARS),
        });
        self.push(Action::PasteText {
            session: name.into(),
            text: draft,
        });
    }

    /// The last line above the shell prompt: what an exiting program said.
    fn last_words(&self, name: &str) -> String {
        let capture = self.captures.get(name).map(String::as_str).unwrap_or("");
        let mut lines = capture.lines().rev().map(str::trim).filter(|l| !l.is_empty());
        lines.next();
        snippet(lines.next().unwrap_or("no output"), limits::SNIPPET_CHARS)
    }

    fn paste_task(&mut self, name: &str) {
        let Some(a) = self.state.sessions[name].assignment.clone() else {
            return;
        };
        self.push(Action::PasteTask {
            session: name.into(),
            queue: a.task.queue.clone(),
            task: a.task.task.clone(),
        });
        self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Pasted {
            at_ms: self.now_ms,
            enter_ms: self.now_ms + self.config.dispatch.submit_delay.0 as i64,
            text: PasteKind::Task,
        };
    }

    fn paste_continue(&mut self, name: &str) {
        let text = self.config.dispatch.continue_prompt.clone();
        self.push(Action::PasteText {
            session: name.into(),
            text,
        });
        let s = self.state.sessions.get_mut(name).expect("session exists");
        s.limit_pending = false;
        s.activity = Activity::Pasted {
            at_ms: self.now_ms,
            enter_ms: self.now_ms + self.config.dispatch.submit_delay.0 as i64,
            text: PasteKind::Continue,
        };
    }

    fn watch_pasted(&mut self, name: &str, enter_ms: i64, text: PasteKind) {
        if !self.claude_alive(name) {
            return self.died(name, "claude went away before the prompt was sent");
        }
        if self.now_ms < enter_ms {
            return;
        }
        self.push(Action::SendKeys {
            session: name.into(),
            keys: vec!["Enter".into()],
        });
        self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Submitted {
            at_ms: self.now_ms,
            enters: 1,
            text,
        };
    }

    fn watch_submitted(&mut self, name: &str, obs: &Observation, at_ms: i64, enters: u32, text: PasteKind) {
        if self.exited_cleanly(name) {
            return self.exited_after_prompt(name, "right after this task's prompt was submitted");
        }
        if !self.claude_alive(name) {
            return self.died(name, "claude went away while the prompt was being sent");
        }
        let s = &self.state.sessions[name];
        let prompt_recorded = prompt_recorded(obs, name);
        let registry_busy = obs
            .registry
            .iter()
            .any(|r| r.session == name && r.entry.status.as_deref() == Some("busy"));
        let (box_clear, finished) = self
            .analysis(name)
            .map(|a| {
                (
                    a.input.as_deref().unwrap_or("").is_empty() && !a.pasted_placeholder,
                    a.turn_finished,
                )
            })
            .unwrap_or((false, false));
        let (hook_taken, hook_end) = self.hook_turn(obs, name);
        let taken = hook_taken
            || s.seen == Seen::Busy
            || prompt_recorded
            || registry_busy
            || s.limit_pending
            || (box_clear && finished);
        if taken {
            let s = self.state.sessions.get_mut(name).expect("session exists");
            if let Some(a) = s.assignment.as_mut() {
                a.started_ms.get_or_insert(self.now_ms);
            }
            let what = text != PasteKind::Task;
            s.activity = Activity::Working {
                since_ms: self.now_ms,
                turn_ended: false,
                idle_turns: 0,
            };
            self.event(Event::Submitted {
                session: name.into(),
                continue_prompt: what,
                hook: hook_taken,
            });
            if hook_end.is_some() {
                // The whole turn happened between two observations: end it now.
                let now_ms = self.now_ms;
                self.watch_working(name, obs, now_ms, false, 0);
            }
            return;
        }
        if self.now_ms < at_ms + limits::SUBMIT_VERIFY_MS {
            return;
        }
        // Nothing shows Claude took the prompt of its launch line, and its box is empty:
        // the prompt is pasted as it would have been without the launch line.
        if text == PasteKind::ContinueGiven {
            if s.seen == Seen::Idle && box_clear {
                self.log(format!(
                    "{name}: no sign claude took the continue prompt of its launch line; pasting it"
                ));
                return self.paste_continue(name);
            }
        } else if enters < limits::MAX_ENTERS {
            self.log(format!("{name}: prompt still in the input box; pressing Enter again"));
            self.push(Action::SendKeys {
                session: name.into(),
                keys: vec!["Enter".into()],
            });
            self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Submitted {
                at_ms: self.now_ms,
                enters: enters + 1,
                text,
            };
            return;
        }
        let shown = self.analysis(name).and_then(|a| a.input.clone()).unwrap_or_default();
        self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Free;
        self.needs_attention(
            name,
            &match text {
                PasteKind::ContinueGiven => format!(
                    "claude did not take the continue prompt of its launch line (input box: {})",
                    snippet(&shown, 60)
                ),
                _ => format!(
                    "prompt was not submitted after {enters} Enter presses (input box: {})",
                    snippet(&shown, 60)
                ),
            },
        );
        self.give_back(name, "the prompt could not be submitted", true);
    }

    fn watch_working(
        &mut self,
        name: &str,
        obs: &Observation,
        since_ms: i64,
        mut turn_ended: bool,
        mut idle_turns: u32,
    ) {
        let s = &self.state.sessions[name];
        let kind = s.kind;
        if self.exited_cleanly(name) {
            return self.exited_after_prompt(name, "while working on this task");
        }
        if !self.claude_alive(name) {
            return self.died(name, "claude exited or the pane fell back to a shell mid-task");
        }
        // Time stopped by a usage limit is not the task's: the timeout counts from the
        // latest submitted prompt (the task, or the continue prompt after the limit).
        if s.assignment.is_some()
            && !s.limit_pending
            && self.now_ms - since_ms >= self.config.dispatch.task_timeout.0 as i64
        {
            let reason = format!("task timed out after {}", self.config.dispatch.task_timeout);
            return self.fail_and_recycle(name, &reason);
        }
        // Cut off by a usage limit: not a failure. Continue once the account is usable.
        if s.limit_pending {
            let account = s.account.clone().unwrap_or_else(|| self.state.active.clone());
            let usable = self.state.swap.is_none()
                && account == self.state.active
                && self.usable(&account)
                && !self.state.all_exhausted;
            if self.claude_continues_by_itself(name, usable) {
                return;
            }
            if usable && kind == Kind::Pool {
                match self.state.sessions[name].seen {
                    Seen::Menu => self.push(Action::SendKeys {
                        session: name.into(),
                        keys: vec!["Escape".into()],
                    }),
                    Seen::Idle => {
                        self.event(Event::ContinueAfterReset {
                            session: name.into(),
                            account,
                        });
                        self.paste_continue(name);
                    }
                    _ => {}
                }
            }
            return;
        }
        // The hooks first: a `Stop` ends the turn at once, without the idle-turn wait.
        let (hook_taken, hook_end) = self.hook_turn(obs, name);
        if hook_taken && hook_end.is_none() {
            // A new prompt after a `Stop` that left background tasks: a new turn.
            self.state
                .sessions
                .get_mut(name)
                .expect("session exists")
                .background_tasks = 0;
        }
        match hook_end {
            Some(HookEnd::Done(message)) => {
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.last_message = message.map(|m| m.chars().take(limits::RESULT_CHARS).collect());
                s.background_tasks = 0;
                if s.wrapped_up {
                    // Ended early to wrap up before the limit: not the task's end.
                    return self.after_wrap_up(name, since_ms, limits::IDLE_TURNS_TO_FINISH);
                }
                if s.assignment.is_some() {
                    self.event(Event::TurnFinished { session: name.into() });
                }
                return self.finish(name);
            }
            Some(HookEnd::Background(n, message)) => {
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.background_tasks = n;
                s.last_message = message.map(|m| m.chars().take(limits::RESULT_CHARS).collect());
                s.activity = Activity::Working {
                    since_ms,
                    turn_ended: false,
                    idle_turns: 0,
                };
                return;
            }
            // A usage limit returned above (`limit_pending`, set by the quota phase); a
            // `rate_limit` that got here was not one (an API-key 429): an API error.
            Some(HookEnd::Failed { error, message }) => {
                let reason = format!(
                    "claude's turn ended with an API error ({error}): {}",
                    snippet(&message, limits::SNIPPET_CHARS)
                );
                return self.fail_and_recycle(name, &reason);
            }
            None => {}
        }
        let records = obs.records_of(name);
        let mut prompt_again = false;
        let mut api_error = None;
        for r in records {
            match &r.signal {
                Signal::TurnDone => turn_ended = true,
                Signal::UserPrompt { .. } => {
                    prompt_again = true;
                    api_error = None;
                }
                // Claude writes an API error record once it has given up on the turn (after
                // its retries, and with no `turn_duration`): the task's work was not done.
                // A usage limit never gets here (`limit_pending` above); an API-key 429 does.
                Signal::ApiError { text, .. } | Signal::LimitHit { text } => api_error = Some(text.clone()),
            }
        }
        if let Some(text) = api_error {
            let reason = format!(
                "claude's turn ended with an API error: {}",
                snippet(&text, limits::SNIPPET_CHARS)
            );
            return self.fail_and_recycle(name, &reason);
        }
        if prompt_again {
            turn_ended = false;
        }
        let registry_idle = obs
            .registry
            .iter()
            .any(|r| r.session == name && r.entry.status.as_deref() == Some("idle"));
        match self.state.sessions[name].seen {
            Seen::Busy => {
                turn_ended = false;
                idle_turns = 0;
            }
            Seen::Idle => {
                let finished_line = self.analysis(name).map(|a| a.turn_finished).unwrap_or(false);
                if finished_line || registry_idle {
                    turn_ended = true;
                }
                if turn_ended {
                    idle_turns += 1;
                }
            }
            _ => idle_turns = 0,
        }
        // A `Stop` said background tasks still run: the idle screen is not the end.
        let background = self.state.sessions[name].background_tasks > 0;
        // A Claude that reports through the hooks ends its turn with `Stop`; the screen's
        // verdict (for a lost line) waits at least as long as it would at the tick, since
        // turns that other sessions' hooks bring within milliseconds would otherwise count
        // a screen Claude has not redrawn yet (the resumed conversation's last finished
        // turn, right after the continue prompt was taken) as idle turns.
        let tick_ms = self.config.daemon.tick.0 as i64;
        let waited = !self.state.sessions[name].hooked
            || self.now_ms - since_ms >= limits::IDLE_TURNS_TO_FINISH as i64 * tick_ms;
        if turn_ended && idle_turns >= limits::IDLE_TURNS_TO_FINISH && !background && waited {
            if self.state.sessions[name].wrapped_up {
                return self.after_wrap_up(name, since_ms, idle_turns);
            }
            return self.finish(name);
        }
        self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Working {
            since_ms,
            turn_ended,
            idle_turns,
        };
    }

    /// Claude Code's own waiting (2.1.234+): in a session left waiting for the reset, it
    /// continues the turn by itself when the limit resets. That continuation is the same
    /// task's turn resumed: it is watched as such, and no continue prompt goes on top of
    /// it. True while Claude waits or has just resumed by itself; false when ccl's own
    /// continue prompt is needed (Claude cancelled its waiting, asks for Enter, or did not
    /// resume within [`limits::AUTO_CONTINUE_GRACE_MS`] of the account becoming usable).
    fn claude_continues_by_itself(&mut self, name: &str, usable: bool) -> bool {
        use crate::screen::AutoContinue;
        let now_ms = self.now_ms;
        let shown = self.analysis(name).and_then(|a| a.auto_continue);
        let s = self.state.sessions.get_mut(name).expect("session exists");
        let waiting_before = s.self_continuing;
        match shown {
            Some(AutoContinue::Waiting) if matches!(s.seen, Seen::Idle | Seen::Unknown) => {
                if !s.self_continuing {
                    s.self_continuing = true;
                    s.usable_since_ms = None;
                    self.event(Event::WaitsForReset { session: name.into() });
                }
                if !usable {
                    return true;
                }
                let s = self.state.sessions.get_mut(name).expect("session exists");
                let since = *s.usable_since_ms.get_or_insert(now_ms);
                if now_ms - since < limits::AUTO_CONTINUE_GRACE_MS {
                    return true;
                }
                s.self_continuing = false;
                s.usable_since_ms = None;
                self.event(Event::NoAutoContinue {
                    session: name.into(),
                    grace_s: limits::AUTO_CONTINUE_GRACE_MS / 1000,
                });
                false
            }
            _ if s.seen == Seen::Busy && (waiting_before || shown == Some(AutoContinue::Continuing)) => {
                // The turn resumed by itself: the same task, working again.
                s.limit_pending = false;
                s.self_continuing = false;
                s.usable_since_ms = None;
                s.activity = Activity::Working {
                    since_ms: now_ms,
                    turn_ended: false,
                    idle_turns: 0,
                };
                self.event(Event::AutoContinued { session: name.into() });
                true
            }
            _ => {
                s.self_continuing = false;
                s.usable_since_ms = None;
                false
            }
        }
    }

    /// A turn Claude wrapped up before the limit has ended: the task is not done. A swap at
    /// turn boundaries moves the session on (see `swap.rs`); with no swap to come, the task
    /// continues here.
    fn after_wrap_up(&mut self, name: &str, since_ms: i64, idle_turns: u32) {
        let moving = self
            .state
            .swap
            .as_ref()
            .is_some_and(|w| w.members.iter().any(|m| m.session == name && !m.stopped));
        if moving {
            self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Working {
                since_ms,
                turn_ended: true,
                idle_turns,
            };
            return;
        }
        self.event(Event::ContinueAfterWrapUp { session: name.into() });
        self.state.sessions.get_mut(name).expect("session exists").wrapped_up = false;
        self.paste_continue(name);
    }

    fn watch_exiting(&mut self, name: &str, deadline_ms: i64) {
        let s = &self.state.sessions[name];
        match s.seen {
            Seen::Shell | Seen::Absent | Seen::Dead => {
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.activity = Activity::Free;
                s.conversation = None;
                s.account = None;
                s.cwd = None;
            }
            // The state is saved before a turn's actions are carried out, so a daemon
            // killed in that turn comes back believing it typed `/exit` when it may not
            // have. On the first turn after a start an idle pool Claude with an empty box
            // gets `/exit` again, instead of holding the session until the deadline.
            Seen::Idle
                if !self.state.started
                    && deadline_ms - limits::EXIT_TIMEOUT_MS < self.now_ms
                    && s.kind == Kind::Pool
                    && self.input_empty(name) =>
            {
                self.log(format!("{name}: claude still idle after a restart; typing /exit again"));
                self.push(Action::TypeLine {
                    session: name.into(),
                    line: "/exit".into(),
                });
            }
            _ if self.now_ms >= deadline_ms && s.kind == Kind::Pool => {
                let workdir = self.config.pool.workdir.clone();
                self.push(Action::KillSession {
                    session: name.into(),
                    reason: "claude did not exit in time".into(),
                });
                self.create_session(name, &workdir, "recycled after /exit timed out");
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.activity = Activity::Free;
                s.conversation = None;
                s.account = None;
                s.cwd = None;
            }
            _ => {}
        }
    }

    fn input_empty(&self, name: &str) -> bool {
        self.analysis(name)
            .is_some_and(|a| a.input.as_deref().unwrap_or("").is_empty() && !a.pasted_placeholder)
    }

    fn claude_alive(&self, name: &str) -> bool {
        !matches!(
            self.state.sessions[name].seen,
            Seen::Shell | Seen::Absent | Seen::Dead | Seen::Other
        )
    }

    /// The task's turn is done: file it, then recycle the context with `/exit`.
    fn finish(&mut self, name: &str) {
        let s = self.state.sessions.get_mut(name).expect("session exists");
        let Some(a) = s.assignment.take() else {
            s.activity = Activity::Free;
            return;
        };
        let started = a.started_ms.unwrap_or(a.claimed_ms);
        let report = TaskReport {
            session: name.into(),
            account: s.account.clone().unwrap_or_else(|| self.state.active.clone()),
            conversation: s.conversation.clone(),
            started: rfc3339(started),
            finished: rfc3339(self.now_ms),
            duration_ms: self.now_ms - started,
            attempts: a.attempt,
            adopted: a.adopted.clone(),
            recovered: None,
            worktree: a.worktree.clone().map(Box::new),
            reported: Box::new(crate::core::Reported {
                result: s.last_message.take(),
                cost_usd: s.cost_usd,
                model: s.model.clone(),
            }),
        };
        let kind = s.kind;
        s.activity = Activity::Free;
        self.state.attempts.remove(&a.task.to_string());
        let (account, attempts, duration_ms) = (report.account.clone(), report.attempts, report.duration_ms);
        self.push(Action::FinishTask {
            queue: a.task.queue.clone(),
            task: a.task.task.clone(),
            report,
        });
        let mut env = vec![
            ("CCL_SESSION", name.to_string()),
            ("CCL_QUEUE", a.task.queue.to_string()),
            ("CCL_TASK", a.task.task.to_string()),
            ("CCL_ACCOUNT", account.to_string()),
            ("CCL_ATTEMPTS", attempts.to_string()),
            ("CCL_DURATION_S", (duration_ms / 1000).to_string()),
        ];
        env.extend(self.task_file_vars(&a.task.queue, &a.task.task, "done"));
        env.extend(self.conversation_vars(name));
        self.hook("on_task_done", env);
        self.recycle(name, kind);
    }

    fn recycle(&mut self, name: &str, kind: Kind) {
        if kind == Kind::Dedicated {
            return;
        }
        // `/exit` and its Enter would submit whatever the operator left in the box with
        // it. The context waits for the box to be empty; `recycle_idle_for_waiting`
        // recycles it then, when work waits for the session.
        if let Some(text) = self.box_text(name) {
            self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Free;
            let reason = format!("{FOREIGN_BOX_TEXT}: \"{}\"", snippet(&text, FOREIGN_QUOTE_CHARS));
            return self.flag_foreign_text(name, &reason);
        }
        self.push(Action::TypeLine {
            session: name.into(),
            line: "/exit".into(),
        });
        self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Exiting {
            deadline_ms: self.now_ms + limits::EXIT_TIMEOUT_MS,
        };
    }

    fn fail_and_recycle(&mut self, name: &str, reason: &str) {
        let s = self.state.sessions.get_mut(name).expect("session exists");
        let kind = s.kind;
        s.activity = Activity::Free;
        if let Some(a) = s.assignment.take() {
            self.state.attempts.remove(&a.task.to_string());
            self.fail_running(name, &a.task, &with_worktree(reason, &a));
        }
        if self.state.sessions[name].seen == Seen::Busy {
            self.push(Action::SendKeys {
                session: name.into(),
                keys: vec!["Escape".into()],
            });
        }
        self.recycle(name, kind);
    }

    /// `running/TASK` → `failed/` with the reason, a log line and the hook.
    pub(crate) fn fail_running(&mut self, name: &str, task: &TaskRef, reason: &str) {
        self.event(Event::TaskFailed {
            session: name.into(),
            task: task.to_string(),
            reason: reason.to_string(),
        });
        self.push(Action::FailTask {
            queue: task.queue.clone(),
            task: task.task.clone(),
            from: "running".into(),
            reason: reason.into(),
        });
        let mut env = vec![
            ("CCL_SESSION", name.to_string()),
            ("CCL_QUEUE", task.queue.to_string()),
            ("CCL_TASK", task.task.to_string()),
            ("CCL_ERROR", reason.to_string()),
        ];
        if let Some(account) = self.state.sessions.get(name).and_then(|s| s.account.clone()) {
            env.push(("CCL_ACCOUNT", account.to_string()));
        }
        env.extend(self.task_file_vars(&task.queue, &task.task, "failed"));
        env.extend(self.conversation_vars(name));
        self.hook("on_task_failed", env);
    }

    /// `CCL_PROJECT`, `CCL_TASK_FILE` (where the task's file now is) and, for a task
    /// filed to `done/` or `failed/`, `CCL_RESULT_FILE` or `CCL_ERROR_FILE`.
    pub(crate) fn task_file_vars(&self, queue: &str, task: &str, to: &str) -> Vec<(&'static str, String)> {
        let Some(q) = self.config.queue(queue) else {
            return Vec::new();
        };
        let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
        let mut env = vec![
            ("CCL_PROJECT", path(q.project.clone())),
            ("CCL_TASK_FILE", path(q.dir(to).join(task))),
        ];
        match to {
            "done" => env.push(("CCL_RESULT_FILE", path(q.dir(to).join(format!("{task}.json"))))),
            "failed" => env.push(("CCL_ERROR_FILE", path(q.dir(to).join(format!("{task}.error"))))),
            _ => {}
        }
        env
    }

    /// `CCL_CONVERSATION` and `CCL_TRANSCRIPT` (where Claude writes that conversation's
    /// transcript, in the shared `projects/`), when the session has a conversation.
    pub(crate) fn conversation_vars(&self, name: &str) -> Vec<(&'static str, String)> {
        let Some(s) = self.state.sessions.get(name) else {
            return Vec::new();
        };
        let (Some(id), Some(cwd)) = (&s.conversation, &s.cwd) else {
            return Vec::new();
        };
        let projects = self.config.shared.target.join("projects");
        vec![
            ("CCL_CONVERSATION", id.to_string()),
            (
                "CCL_TRANSCRIPT",
                crate::transcript::transcript_path(&projects, cwd, id)
                    .to_string_lossy()
                    .into_owned(),
            ),
        ]
    }

    /// Claude ended this session's conversation itself: the pane is back at its shell and
    /// shows the resume hint Claude prints when it exits normally, for this very
    /// conversation. A crash prints no such hint.
    fn exited_cleanly(&self, name: &str) -> bool {
        let s = &self.state.sessions[name];
        s.seen == Seen::Shell
            && s.conversation.is_some()
            && self.analysis(name).and_then(|a| a.resume_hint.as_deref()) == s.conversation.as_deref()
    }

    /// The task's own prompt made Claude exit (a body such as `/exit`): running it again
    /// would do the same, so it is failed at once, saying so, not retried as a crash.
    fn exited_after_prompt(&mut self, name: &str, when: &str) {
        let s = self.state.sessions.get_mut(name).expect("session exists");
        s.activity = Activity::Free;
        s.conversation = None;
        if let Some(a) = s.assignment.take() {
            self.state.attempts.remove(&a.task.to_string());
            let reason =
                format!("claude exited normally {when} (the prompt ended the session, as /exit does); not retried");
            self.fail_running(name, &a.task, &reason);
        }
    }

    fn died(&mut self, name: &str, reason: &str) {
        let s = self.state.sessions.get_mut(name).expect("session exists");
        s.activity = Activity::Free;
        s.conversation = None;
        self.give_back(name, reason, true);
    }

    /// The session's task goes back to the inbox (attempt counted), or to `failed/` once
    /// it has used up its attempts.
    pub(crate) fn give_back(&mut self, name: &str, reason: &str, counted: bool) {
        let s = self.state.sessions.get_mut(name).expect("session exists");
        let Some(a) = s.assignment.take() else { return };
        let key = a.task.to_string();
        if !counted {
            let n = self.state.attempts.get(&key).copied().unwrap_or(1);
            self.state.attempts.insert(key.clone(), n.saturating_sub(1));
        }
        let attempts = self.state.attempts.get(&key).copied().unwrap_or(0);
        if counted && attempts >= limits::MAX_ATTEMPTS {
            self.state.attempts.remove(&key);
            let why = format!("{reason} (after {attempts} attempts)");
            self.fail_running(name, &a.task, &with_worktree(&why, &a));
        } else {
            self.event(Event::TaskRequeued {
                session: name.into(),
                task: a.task.to_string(),
                reason: reason.to_string(),
                attempt: attempts,
            });
            self.push(Action::RequeueTask {
                queue: a.task.queue.clone(),
                task: a.task.task.clone(),
                reason: reason.into(),
            });
        }
    }
}

/// A failure reason that names the attempt's worktree, which is kept for review.
fn with_worktree(reason: &str, a: &crate::core::Assignment) -> String {
    match &a.worktree {
        Some(wt) => format!(
            "{reason}; its worktree {} (branch {}) is kept",
            wt.path.display(),
            wt.branch
        ),
        None => reason.to_string(),
    }
}

/// How this turn's hook reports end a session's turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HookEnd {
    /// `Stop` with nothing running in the background; Claude's last message.
    Done(Option<String>),
    /// `Stop` while this many background tasks still run.
    Background(u32, Option<String>),
    /// `StopFailure`.
    Failed { error: String, message: String },
}

impl Core {
    /// Whether the hooks said this turn that the session's prompt was taken, and how
    /// its turn ended (the last report after the last prompt decides).
    pub(crate) fn hook_turn(&self, obs: &Observation, name: &str) -> (bool, Option<HookEnd>) {
        let mut taken = false;
        let mut end = None;
        for event in self.signals_of(obs, name) {
            match event {
                HookEvent::PromptSubmitted { .. } => {
                    taken = true;
                    end = None;
                }
                HookEvent::Stop {
                    last_message,
                    background_running,
                    ..
                } => {
                    taken = true;
                    // A turn whose last words are a usage-limit line is no finished task,
                    // even when Claude ends it with `Stop` rather than `StopFailure`: the
                    // transcript and the screen decide it (a quote by the model finishes
                    // there after the idle turns).
                    if last_message.as_deref().is_some_and(|m| self.analyze(m).quota.is_some()) {
                        end = None;
                        continue;
                    }
                    end = Some(if *background_running > 0 {
                        HookEnd::Background(*background_running, last_message.clone())
                    } else {
                        HookEnd::Done(last_message.clone())
                    });
                }
                HookEvent::StopFailure { error, message, .. } => {
                    taken = true;
                    end = Some(HookEnd::Failed {
                        error: error.clone(),
                        message: message.clone(),
                    });
                }
                _ => {}
            }
        }
        (taken, end)
    }
}

/// Did the transcript show this turn that the session's prompt was taken (the prompt
/// itself, a finished turn, or a limit answering it)?
fn prompt_recorded(obs: &Observation, name: &str) -> bool {
    obs.records_of(name).any(|r| {
        matches!(
            r.signal,
            Signal::UserPrompt { .. } | Signal::TurnDone | Signal::LimitHit { .. }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tests::config;
    use crate::core::{Assignment, SessionObs, SessionState, State};

    const LINE: &str =
        "cd /src/q && CLAUDE_CONFIG_DIR=/homes/a claude --session-id 0b1c2d3e-0000-4000-8000-000000000001";

    /// A core restarted with `ccl-auto-11` launching a task since `launched_ms`.
    fn restarted(launched_ms: i64) -> Core {
        let config = config();
        let mut state = State::fresh(&config, 1);
        let mut s = SessionState::new(Kind::Pool);
        s.seen = Seen::Shell;
        s.shell_prompt = Some("bash-5.2$".into());
        s.activity = Activity::Launching {
            since_ms: launched_ms,
            deadline_ms: launched_ms + limits::LAUNCH_TIMEOUT_MS,
            then: AfterLaunch::Task,
            line: LINE.into(),
        };
        s.assignment = Some(Assignment {
            task: TaskRef {
                queue: "q".into(),
                task: "t.md".into(),
            },
            claimed_ms: launched_ms,
            started_ms: None,
            attempt: 1,
            adopted: None,
            worktree: None,
        });
        state.sessions.insert("ccl-auto-11".into(), s);
        state.started = true;
        Core::new(config, state, "UTC")
    }

    fn observe(now_ms: i64, screen: &str) -> Observation {
        let pane = |name: &str, capture: &str| SessionObs {
            name: name.into(),
            pane_pid: 100,
            command: "bash".into(),
            dead: false,
            capture: Some(capture.into()),
            claude_pid: None,
            foreground_pid: None,
            pane_id: None,
            n_panes: 1,
        };
        Observation {
            now_ms,
            sessions: Some(vec![pane("ccl-auto-11", screen), pane("ccl-auto-12", "bash-5.2$ ")]),
            queues: vec![crate::core::QueueObs {
                name: "q".into(),
                inbox: vec![],
                running: vec!["t.md".into()],
            }],
            ..Default::default()
        }
    }

    fn typed(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::TypeLine { session, line } if session == "ccl-auto-11" => Some(line.clone()),
                Action::SendKeys { session, keys } if session == "ccl-auto-11" => Some(keys.join(" ")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_launch_line_left_unexecuted_by_a_crash_is_typed_again_from_a_clean_line() {
        // Killed between pasting the line and its Enter: the shell shows it unexecuted.
        let mut core = restarted(1_000);
        let actions = core.step(&observe(5_000, &format!("bash-5.2$ {LINE}")));
        assert_eq!(typed(&actions), vec!["C-u".to_string(), LINE.to_string()]);
        // Killed before typing anything: the shell shows its bare prompt.
        let mut core = restarted(1_000);
        let actions = core.step(&observe(5_000, "bash-5.2$ "));
        assert_eq!(typed(&actions), vec![LINE.to_string()]);
        // The operator's text on the line is neither erased nor run: the task goes back
        // without spending an attempt.
        let mut core = restarted(1_000);
        let actions = core.step(&observe(5_000, "bash-5.2$ rm -rf build #"));
        assert!(typed(&actions).is_empty(), "{actions:?}");
        assert!(
            actions
                .iter()
                .any(|a| a.to_string().starts_with("task q/t.md back to inbox")),
            "{actions:?}"
        );
        // Only on the first turn after a start.
        let actions = core.step(&observe(6_000, &format!("bash-5.2$ {LINE}")));
        assert!(typed(&actions).is_empty(), "{actions:?}");
    }

    #[test]
    fn a_launch_that_never_becomes_ready_says_what_the_pane_runs_instead() {
        let mut core = restarted(1_000);
        core.state.started = true;
        let after = 1_000 + limits::LAUNCH_TIMEOUT_MS;
        let mut obs = observe(after, "Welcome to the other tool\n> ");
        obs.sessions.as_mut().unwrap()[0].command = "my-agent".into();
        let actions = core.step(&obs);
        let said: Vec<&Event> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        assert!(
            said.iter().any(|e| matches!(e, Event::LaunchTimedOut { session, why }
                if session == "ccl-auto-11"
                    && why.starts_with("claude did not become ready within 60s: the pane runs 'my-agent', not claude"))),
            "{said:#?}"
        );
    }

    #[test]
    fn claude_is_recognised_by_the_configured_command_name_but_never_as_a_shell() {
        use crate::sessions::is_claude_name;
        assert!(is_claude_name("claude.exe", "/opt/bin/cc"));
        assert!(is_claude_name("cc", "/opt/bin/cc"));
        assert!(is_claude_name("claude-work", "claude-work"));
        assert!(!is_claude_name("bash", "/opt/bin/bash"));
        assert!(!is_claude_name("vim", "/opt/bin/cc"));
    }

    #[test]
    fn a_pool_launch_that_never_becomes_ready_recreates_the_session_and_requeues_the_task() {
        let mut core = restarted(1_000);
        core.state.started = true;
        let after = 1_000 + limits::LAUNCH_TIMEOUT_MS;
        let actions = core.step(&observe(after, &format!("bash-5.2$ {LINE}")));
        let kinds: Vec<String> = actions
            .iter()
            .filter(|a| !matches!(a, Action::Log { .. } | Action::Event(_)))
            .map(|a| a.to_string())
            .collect();
        assert!(
            kinds.iter().any(|a| a.starts_with("kill session ccl-auto-11")),
            "{kinds:#?}"
        );
        assert!(
            kinds.iter().any(|a| a.starts_with("create session ccl-auto-11")),
            "{kinds:#?}"
        );
        assert!(
            kinds.iter().any(|a| a.starts_with("task q/t.md back to inbox")),
            "{kinds:#?}"
        );
        assert!(core.state().sessions["ccl-auto-11"].attention.is_none());
    }
}
