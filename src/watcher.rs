//! Phase 3 of a turn: the watcher. Moves each session's multi-turn state machine on:
//! launch → ready, paste → Enter after `submit_delay` → verified submission, working →
//! completion (`done/`, then `/exit` to recycle the context), and the failures in
//! between (Claude died mid-task, task timeout, a prompt that would not submit).
//!
//! A task is complete when its turn has ended (the transcript's `turn_duration` record,
//! the registry going idle, or a finished-turn line on an idle screen) and the session
//! then stays idle for [`limits::IDLE_TURNS_TO_FINISH`] turns with no usage limit
//! pending. A usage-limit hit mid-task is not a failure: the task stays in `running/`
//! and continues after the swap or the reset. A dedicated session is never sent `/exit`;
//! if one were ever marked working it is only marked idle.

use crate::core::{
    limits, Action, Activity, AfterLaunch, Core, Kind, Observation, PasteKind, Seen, TaskRef, TaskReport,
};
use crate::transcript::Signal;
use crate::util::{rfc3339, snippet};

impl Core {
    pub(crate) fn check_watcher(&mut self, obs: &Observation) {
        let names: Vec<String> = self.state.sessions.keys().cloned().collect();
        for name in names {
            if self.state.swap.is_some() && matches!(self.state.sessions[&name].activity, Activity::Stopping { .. }) {
                continue;
            }
            self.guard_dedicated(&name);
            let activity = self.state.sessions[&name].activity.clone();
            match activity {
                Activity::Free => {}
                Activity::Launching { deadline_ms, then } => self.watch_launch(&name, deadline_ms, then),
                Activity::Pasted { at_ms, text } => self.watch_pasted(&name, at_ms, text),
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
        self.warn(format!(
            "{name}: a dedicated session was marked as working on {}; marked idle, task back to the inbox",
            a.task
        ));
        self.push(Action::RequeueTask {
            queue: a.task.queue.clone(),
            task: a.task.task.clone(),
            reason: format!("{name} is a dedicated session"),
        });
    }

    fn watch_launch(&mut self, name: &str, deadline_ms: i64, then: AfterLaunch) {
        let s = &self.state.sessions[name];
        match s.seen {
            Seen::Idle => {
                let stale = self.banner_lines(name);
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.stale_hits = stale;
                s.activity = Activity::Free;
                match then {
                    AfterLaunch::Task => self.paste_task(name),
                    AfterLaunch::Continue => self.paste_continue(name),
                    AfterLaunch::Nothing => self.log(format!("{name}: claude is ready")),
                }
            }
            Seen::Attention => {
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.activity = Activity::Free;
                self.give_back(name, "claude stopped at a screen that needs the operator", false);
            }
            Seen::Absent | Seen::Dead => {
                self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Free;
                self.give_back(name, "the session went away while claude was starting", true);
            }
            // Back at a prompt after the launch line: Claude exited (a resume that found
            // no conversation, a command not found, …). Its last words say why.
            Seen::Shell if self.now_ms >= deadline_ms - limits::LAUNCH_TIMEOUT_MS + limits::LAUNCH_GRACE_MS => {
                let why = self.last_words(name);
                let s = self.state.sessions.get_mut(name).expect("session exists");
                s.activity = Activity::Free;
                s.conversation = None;
                s.account = None;
                match then {
                    AfterLaunch::Nothing => self.warn(format!(
                        "{name}: claude exited right after launch ({why}); left at its shell"
                    )),
                    _ => self.give_back(name, &format!("claude exited right after launch: {why}"), true),
                }
            }
            _ if self.now_ms >= deadline_ms => {
                let first = self
                    .analysis(name)
                    .map(|a| a.attention.clone().unwrap_or_default())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| format!("screen state {:?}", s.seen).to_lowercase());
                self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Free;
                self.needs_attention(
                    name,
                    &format!(
                        "claude did not become ready within {}s: {}",
                        limits::LAUNCH_TIMEOUT_MS / 1000,
                        snippet(&first, limits::SNIPPET_CHARS)
                    ),
                );
                self.give_back(name, "claude did not start", false);
            }
            _ => {}
        }
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
            text: PasteKind::Continue,
        };
    }

    fn watch_pasted(&mut self, name: &str, at_ms: i64, text: PasteKind) {
        if !self.claude_alive(name) {
            return self.died(name, "claude went away before the prompt was sent");
        }
        if self.now_ms < at_ms + self.config.dispatch.submit_delay.0 as i64 {
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
        if !self.claude_alive(name) {
            return self.died(name, "claude went away while the prompt was being sent");
        }
        let s = &self.state.sessions[name];
        let prompt_recorded = obs
            .transcripts
            .iter()
            .filter(|t| t.session == name)
            .flat_map(|t| &t.records)
            .any(|r| {
                matches!(
                    r.signal,
                    Signal::UserPrompt { .. } | Signal::TurnDone | Signal::LimitHit { .. }
                )
            });
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
        let taken =
            s.seen == Seen::Busy || prompt_recorded || registry_busy || s.limit_pending || (box_clear && finished);
        if taken {
            let s = self.state.sessions.get_mut(name).expect("session exists");
            if let Some(a) = s.assignment.as_mut() {
                a.started_ms.get_or_insert(self.now_ms);
            }
            let what = if text == PasteKind::Task {
                "task"
            } else {
                "continue prompt"
            };
            s.activity = Activity::Working {
                since_ms: self.now_ms,
                turn_ended: false,
                idle_turns: 0,
            };
            self.log(format!("{name}: {what} submitted"));
            return;
        }
        if self.now_ms < at_ms + limits::SUBMIT_VERIFY_MS {
            return;
        }
        if enters < limits::MAX_ENTERS {
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
            &format!(
                "prompt was not submitted after {enters} Enter presses (input box: {})",
                snippet(&shown, 60)
            ),
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
                && self.available(&account)
                && !self.state.all_exhausted;
            if usable && kind == Kind::Pool {
                match s.seen {
                    Seen::Menu => self.push(Action::SendKeys {
                        session: name.into(),
                        keys: vec!["Escape".into()],
                    }),
                    Seen::Idle => {
                        self.log(format!(
                            "{name}: account {account} is usable again; sending the continue prompt"
                        ));
                        self.paste_continue(name);
                    }
                    _ => {}
                }
            }
            return;
        }
        let records = obs
            .transcripts
            .iter()
            .filter(|t| t.session == name)
            .flat_map(|t| &t.records);
        let mut prompt_again = false;
        for r in records {
            match r.signal {
                Signal::TurnDone => turn_ended = true,
                Signal::UserPrompt { .. } => prompt_again = true,
                _ => {}
            }
        }
        if prompt_again {
            turn_ended = false;
        }
        let registry_idle = obs
            .registry
            .iter()
            .any(|r| r.session == name && r.entry.status.as_deref() == Some("idle"));
        match s.seen {
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
        if turn_ended && idle_turns >= limits::IDLE_TURNS_TO_FINISH {
            return self.finish(name);
        }
        self.state.sessions.get_mut(name).expect("session exists").activity = Activity::Working {
            since_ms,
            turn_ended,
            idle_turns,
        };
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
            Seen::Idle if !self.state.started && s.kind == Kind::Pool && self.input_empty(name) => {
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
                self.push(Action::CreateSession {
                    session: name.into(),
                    workdir,
                    reason: "recycled after /exit timed out".into(),
                });
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
        };
        let kind = s.kind;
        s.activity = Activity::Free;
        self.state.attempts.remove(&a.task.to_string());
        self.push(Action::FinishTask {
            queue: a.task.queue.clone(),
            task: a.task.task.clone(),
            report,
        });
        self.hook(
            "on_task_done",
            vec![
                ("CCL_SESSION", name.to_string()),
                ("CCL_QUEUE", a.task.queue.clone()),
                ("CCL_TASK", a.task.task.clone()),
            ],
        );
        self.recycle(name, kind);
    }

    fn recycle(&mut self, name: &str, kind: Kind) {
        if kind == Kind::Dedicated {
            return;
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
            self.fail_running(name, &a.task, reason);
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
    fn fail_running(&mut self, name: &str, task: &TaskRef, reason: &str) {
        self.warn(format!("{name}: {task}: {reason}"));
        self.push(Action::FailTask {
            queue: task.queue.clone(),
            task: task.task.clone(),
            from: "running".into(),
            reason: reason.into(),
        });
        self.hook(
            "on_task_failed",
            vec![
                ("CCL_SESSION", name.to_string()),
                ("CCL_QUEUE", task.queue.clone()),
                ("CCL_TASK", task.task.clone()),
                ("CCL_ERROR", reason.to_string()),
            ],
        );
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
            self.fail_running(name, &a.task, &why);
        } else {
            self.warn(format!(
                "{name}: {}: {reason}; back to the inbox (attempt {attempts})",
                a.task
            ));
            self.push(Action::RequeueTask {
                queue: a.task.queue.clone(),
                task: a.task.task.clone(),
                reason: reason.into(),
            });
        }
    }
}
