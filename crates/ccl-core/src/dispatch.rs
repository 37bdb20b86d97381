//! Phase 2 of a turn: the dispatch scan. Files bad task files to `failed/`, and hands
//! the oldest good task of the next queue in turn to a free pool session.
//!
//! Targets are pool sessions only — a dedicated session is never sent a task — that are
//! at their shell with nothing in flight and nothing needing attention. Nothing is
//! dispatched while a swap is in progress (except one at turn boundaries, whose target is
//! already active), while every account is exhausted, or while the active account is
//! exhausted, unhealthy or disabled; since the quota poll runs first, a hit seen in this
//! turn already blocks dispatch in this turn. Queues take turns (round robin from a
//! persisted cursor), so one busy project cannot starve another, and a queue with
//! `max_running` tasks assigned is passed over until one ends: a queue without isolation
//! never has two tasks in its checkout at once.
//!
//! A task of an isolated queue (`isolation = "worktree"`) is claimed, then its worktree
//! is asked for (`AddWorktree`); Claude is launched in it once the shell reports it made
//! (see `watcher.rs`). Each attempt asks for a new worktree, so a retry never lands in
//! the worktree of an earlier attempt.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Isolation;
use crate::core::{
    limits, Action, Activity, AfterLaunch, Assignment, BadFile, Core, FirstPrompt, Kind, Observation, Seen, TaskRef,
};
use crate::event::Event;
use crate::names::{QueueName, SessionName};
use crate::sessions::{Continue, ShellLine, FOREIGN_BOX_TEXT};
use crate::task::InboxEntry;

impl Core {
    pub(crate) fn scan_dispatch(&mut self, obs: &Observation) {
        self.settle_moves(obs);
        if !self.state.started {
            self.recover_running(obs);
        } else if !self.state.held.is_empty() {
            self.recheck_held(obs);
        }
        self.drop_failed_claims(obs);
        self.handle_claim_errors(obs);
        self.file_bad_tasks(obs);

        // A swap at turn boundaries has made its target active already: new work starts there.
        if self.state.swap.as_ref().is_some_and(|w| !w.at_boundary)
            || self.state.draining.is_some()
            || self.state.all_exhausted
            || !self.usable(&self.state.active.clone())
        {
            return;
        }
        let free: Vec<SessionName> = self
            .state
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.kind == Kind::Pool
                    && s.seen == Seen::Shell
                    && matches!(s.activity, Activity::Free)
                    && s.assignment.is_none()
                    && s.attention.is_none()
            })
            .map(|(n, _)| n.clone())
            .collect();
        // The launch line goes only onto an empty command line; a session whose line holds
        // the operator's text is needs-attention (see `track_attention`), and the task waits.
        let mut free: Vec<SessionName> = free
            .into_iter()
            .filter(|n| self.shell_line(n) == ShellLine::Empty)
            .collect();
        self.sort_pool(&mut free);

        let n_queues = self.config.queues.len();
        if n_queues == 0 {
            return;
        }
        let mut taken: BTreeSet<TaskRef> = BTreeSet::new();
        let mut running = self.running_per_queue();
        for session in free {
            let mut picked = None;
            for k in 0..n_queues {
                let qi = (self.state.queue_cursor + k) % n_queues;
                let qname = self.config.queues[qi].name.clone();
                if self.state.paused.is_paused(&qname) {
                    continue;
                }
                if self
                    .state
                    .claim_blocked
                    .get(&qname)
                    .is_some_and(|b| b.probing || self.now_ms < b.retry_ms)
                {
                    continue;
                }
                if running.get(&qname).copied().unwrap_or(0) >= self.config.queues[qi].max_running {
                    continue;
                }
                let Some(q) = obs.queues.iter().find(|q| q.name == qname) else {
                    continue;
                };
                let entry = q.inbox.iter().find(|e| {
                    e.problem.is_none()
                        && self.settled(&qname, e)
                        // A task of that name still runs: a claim could not move this
                        // one into running/ (a move never replaces), so it waits its turn.
                        && !q.running.contains(&e.name)
                        && !taken.contains(&TaskRef {
                            queue: qname.clone(),
                            task: e.name.clone(),
                        })
                });
                if let Some(e) = entry {
                    if let Some(block) = self.state.claim_blocked.get_mut(&qname) {
                        block.probing = true;
                    }
                    picked = Some((
                        qi,
                        TaskRef {
                            queue: qname.clone(),
                            task: e.name.clone(),
                        },
                    ));
                    break;
                }
            }
            let Some((qi, task)) = picked else { break };
            self.state.queue_cursor = (qi + 1) % n_queues;
            taken.insert(task.clone());
            *running.entry(task.queue.clone()).or_default() += 1;
            self.start_task(&session, task);
        }
        self.recycle_idle_for_waiting(obs, &taken, &running);
    }

    /// Tasks assigned to a session, per queue: what `max_running` bounds. A task counts
    /// from its claim until it is filed or handed back, whatever its session is doing
    /// meanwhile (preparing, launching, working, stopped by a limit or a swap).
    pub(crate) fn running_per_queue(&self) -> BTreeMap<QueueName, u32> {
        let mut running = BTreeMap::new();
        for s in self.state.sessions.values() {
            if let Some(a) = &s.assignment {
                *running.entry(a.task.queue.clone()).or_default() += 1;
            }
        }
        running
    }

    /// A pool Claude left idle with no task (adopted at start, say) keeps its context
    /// until work waits for it; then it is sent `/exit` so the next turn can dispatch.
    fn recycle_idle_for_waiting(
        &mut self,
        obs: &Observation,
        taken: &BTreeSet<TaskRef>,
        running: &BTreeMap<QueueName, u32>,
    ) {
        // Only work that could be dispatched counts: a queue at its bound waits anyway.
        let waiting = obs
            .queues
            .iter()
            .filter(|q| !self.state.paused.is_paused(&q.name))
            .map(|q| {
                let room = self.config.queue(&q.name).map_or(0, |c| {
                    c.max_running.saturating_sub(running.get(&q.name).copied().unwrap_or(0)) as usize
                });
                let n = q
                    .inbox
                    .iter()
                    .filter(|e| {
                        e.problem.is_none()
                            && self.settled(&q.name, e)
                            && !q.running.contains(&e.name)
                            && !taken.contains(&TaskRef {
                                queue: q.name.clone(),
                                task: e.name.clone(),
                            })
                    })
                    .count();
                n.min(room)
            });
        let mut waiting: usize = waiting.sum();
        let idle: Vec<SessionName> = self
            .state
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.kind == Kind::Pool
                    && s.seen == Seen::Idle
                    && matches!(s.activity, Activity::Free)
                    && s.assignment.is_none()
                    && s.attention.is_none()
                    && !s.limit_pending
            })
            .map(|(n, _)| n.clone())
            .filter(|n| self.box_text(n).is_none())
            .collect();
        for name in idle {
            if waiting == 0 {
                break;
            }
            waiting -= 1;
            self.log(format!(
                "{name}: idle claude with no task; recycling it (/exit) to take waiting work"
            ));
            self.push(Action::TypeLine {
                session: name.clone(),
                line: "/exit".into(),
            });
            let deadline_ms = self.now_ms + limits::EXIT_TIMEOUT_MS;
            self.state.sessions.get_mut(&name).expect("session exists").activity = Activity::Exiting { deadline_ms };
        }
    }

    fn sort_pool(&self, names: &mut [SessionName]) {
        let prefix = &self.config.pool.prefix;
        names.sort_by_key(|n| {
            n.strip_prefix(prefix.as_str())
                .and_then(|i| i.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        });
    }

    /// Claims `task` for `session` and launches a fresh conversation in its project (or
    /// asks for its worktree first).
    fn start_task(&mut self, session: &str, task: TaskRef) {
        if self.config.queue(&task.queue).is_none() {
            return;
        }
        let key = task.to_string();
        let attempt = self.state.attempts.get(&key).copied().unwrap_or(0) + 1;
        self.state.attempts.insert(key, attempt);
        self.event(Event::Dispatching {
            session: session.into(),
            task: task.to_string(),
            attempt,
            account: self.state.active.clone(),
        });
        self.push(Action::ClaimTask {
            session: session.into(),
            queue: task.queue.clone(),
            task: task.task.clone(),
        });
        let s = self.state.sessions.get_mut(session).expect("session exists");
        s.assignment = Some(Assignment {
            task,
            claimed_ms: self.now_ms,
            started_ms: None,
            attempt,
            adopted: None,
            worktree: None,
        });
        self.launch_task(session);
    }

    /// Starts the session's assigned task in a fresh conversation: in its worktree, in
    /// its project when the queue has no isolation, or, for an isolated queue whose
    /// worktree is not made yet, by asking for it (the launch follows its outcome). A
    /// task of an isolated queue is never launched in the project's own checkout.
    pub(crate) fn launch_task(&mut self, session: &str) {
        let Some(a) = self.state.sessions.get(session).and_then(|s| s.assignment.clone()) else {
            return;
        };
        let Some(q) = self.config.queue(&a.task.queue).cloned() else {
            return;
        };
        let workdir = match (&a.worktree, q.isolation) {
            (Some(wt), _) => wt.path.clone(),
            (None, Isolation::None) => q.project.clone(),
            (None, Isolation::Worktree) => {
                self.push(Action::AddWorktree {
                    session: session.into(),
                    queue: a.task.queue.clone(),
                    task: a.task.task.clone(),
                    name: worktree_name(&a.task.task),
                });
                let s = self.state.sessions.get_mut(session).expect("session exists");
                s.conversation = None;
                s.activity = Activity::Preparing { since_ms: self.now_ms };
                return;
            }
        };
        let id = self.new_conversation_id();
        if !self.launch(session, &workdir, &id, Continue::New, AfterLaunch::Task) {
            self.give_back(session, "its shell line holds text ccl did not type", false);
        }
    }

    /// A claim that failed last turn because the file was gone (another process took
    /// it first): forget the task.
    fn drop_failed_claims(&mut self, obs: &Observation) {
        for failed in &obs.failed_claims {
            if let Some(name) = self.release_claim(failed) {
                self.event(Event::ClaimLost {
                    session: name.into(),
                    task: failed.to_string(),
                });
            }
        }
    }

    /// A claim that failed for a lasting reason (not a lost race): the session is free
    /// again, and the queue waits [`limits::CLAIM_RETRY_MS`] before its next claim. The
    /// cause is reported once, not at every retry that meets it again; a retry that
    /// works says so.
    fn handle_claim_errors(&mut self, obs: &Observation) {
        for err in &obs.claim_errors {
            self.release_claim(&err.task);
            let queue = err.task.queue.clone();
            let retry_ms = self.now_ms + limits::CLAIM_RETRY_MS;
            let known = self
                .state
                .claim_blocked
                .get(&queue)
                .is_some_and(|b| b.cause == err.cause);
            if !known {
                self.event(Event::ClaimBlocked {
                    queue: queue.clone(),
                    task: err.task.to_string(),
                    cause: err.cause.clone(),
                    retry_s: limits::CLAIM_RETRY_MS / 1000,
                });
            }
            self.state.claim_blocked.insert(
                queue,
                crate::core::ClaimBlock {
                    cause: err.cause.clone(),
                    retry_ms,
                    probing: false,
                },
            );
        }
        // A retry sent last turn that met no error worked.
        let recovered: Vec<QueueName> = self
            .state
            .claim_blocked
            .iter()
            .filter(|(q, b)| b.probing && !obs.claim_errors.iter().any(|e| &e.task.queue == *q))
            .map(|(q, _)| q.clone())
            .collect();
        for q in recovered {
            self.state.claim_blocked.remove(&q);
            self.event(Event::ClaimsWorkAgain { queue: q });
        }
    }

    /// The session holding a claim that did not happen is free again.
    fn release_claim(&mut self, task: &TaskRef) -> Option<String> {
        let holder = self
            .state
            .sessions
            .iter()
            .find(|(_, s)| s.assignment.as_ref().is_some_and(|a| a.task == *task))
            .map(|(n, _)| n.clone())?;
        let s = self.state.sessions.get_mut(&holder).expect("session exists");
        s.assignment = None;
        s.activity = Activity::Free;
        s.conversation = None;
        self.state.attempts.remove(&task.to_string());
        Some(holder.to_string())
    }

    /// Whether an inbox file is quiet enough to take: the same size and mtime as at the
    /// last observation, and its mtime at least `dispatch.settle` old. A file written in
    /// steps (`cat > inbox/x`, an editor saving in place, a slow copy) is otherwise taken
    /// half-written: failed as empty, or sent as a truncated prompt. With a settle of 0
    /// every file counts as quiet (inboxes fed only by atomic renames).
    pub(crate) fn settled(&self, queue: &str, e: &InboxEntry) -> bool {
        let settle_ms = i64::try_from(self.config.dispatch.settle.0).unwrap_or(i64::MAX);
        if settle_ms == 0 {
            return true;
        }
        let same = self.inbox_seen.get(&(queue.into(), e.name.clone())) == Some(&(e.len, e.mtime_ms));
        same && self.now_ms.saturating_sub(e.mtime_ms) >= settle_ms
    }

    /// Keeps this observation's inbox stamps for [`Core::settled`] next turn, and
    /// forgets filed bad files that are gone from the inbox or changed.
    pub(crate) fn remember_inbox(&mut self, obs: &Observation) {
        self.inbox_seen = obs
            .queues
            .iter()
            .flat_map(|q| {
                q.inbox
                    .iter()
                    .map(|e| ((q.name.clone(), e.name.clone()), (e.len, e.mtime_ms)))
            })
            .collect();
        let present: BTreeSet<String> = obs
            .queues
            .iter()
            .flat_map(|q| q.inbox.iter().map(|e| format!("{}/{}", q.name, e.name)))
            .collect();
        // A queue taken out of the configuration has no claims left to wait for.
        let configured: BTreeSet<&str> = self.config.queues.iter().map(|q| q.name.as_str()).collect();
        self.state.claim_blocked.retain(|q, _| configured.contains(q.as_str()));
        // A queue that could not be listed this turn says nothing about its files.
        let observed: BTreeSet<&str> = obs.queues.iter().map(|q| q.name.as_str()).collect();
        self.state.bad_files.retain(|key, _| {
            let queue = key.split('/').next().unwrap_or_default();
            present.contains(key) || !observed.contains(queue)
        });
    }

    /// Bad files never reach Claude: each goes to `failed/` with the reason, once. One
    /// whose move failed (the shell logged why) stays in the inbox and is said once to
    /// be left there; it is looked at again when it changes.
    fn file_bad_tasks(&mut self, obs: &Observation) {
        for q in &obs.queues {
            let bad: Vec<&InboxEntry> = q
                .inbox
                .iter()
                .filter(|e| e.problem.is_some() && self.settled(&q.name, e))
                .collect();
            let mut n_filed = 0;
            for e in bad {
                let key = format!("{}/{}", q.name, e.name);
                if let Some(filed) = self.state.bad_files.get_mut(&key) {
                    if (filed.len, filed.mtime_ms) == (e.len, e.mtime_ms) {
                        if !filed.noted {
                            filed.noted = true;
                            self.warn(format!(
                                "{key}: could not be moved to failed/ (see the error above); left in the inbox, and looked at again once it changes"
                            ));
                        }
                        continue;
                    }
                }
                if n_filed == limits::MAX_BAD_PER_TURN {
                    break;
                }
                n_filed += 1;
                self.state.bad_files.insert(
                    key,
                    BadFile {
                        len: e.len,
                        mtime_ms: e.mtime_ms,
                        noted: false,
                    },
                );
                let reason = e.problem.clone().unwrap_or_default();
                self.push(Action::FailTask {
                    queue: q.name.clone(),
                    task: e.name.clone(),
                    from: "inbox".into(),
                    reason: reason.clone(),
                });
                let mut env = vec![
                    ("CCL_QUEUE", q.name.to_string()),
                    ("CCL_TASK", e.name.to_string()),
                    ("CCL_ERROR", reason),
                ];
                env.extend(self.task_file_vars(&q.name, &e.name, "failed"));
                self.hook("on_task_failed", env);
            }
        }
    }

    /// File moves decided in earlier turns: one whose file has left `running/` is done and
    /// forgotten; one whose file is still there was cut off by a crash (the state is saved
    /// before the moves run) and is carried out again on the first turn after a start.
    /// Each move checks its source and destination, so doing one twice files nothing twice.
    fn settle_moves(&mut self, obs: &Observation) {
        let moves = std::mem::take(&mut self.state.moves);
        for m in moves {
            let Some(task) = m.running_move() else { continue };
            let Some(q) = obs.queues.iter().find(|q| q.name == task.queue) else {
                // A queue not observed this turn says nothing about the move: keep it.
                self.state.moves.push(m);
                continue;
            };
            if !q.running.contains(&task.task) {
                continue;
            }
            if self.state.started {
                // Decided this turn's predecessor and failed (the error was logged then):
                // kept so a restart does not take the file for an abandoned task.
                self.state.moves.push(m);
                continue;
            }
            let redo = match m {
                Action::FinishTask {
                    queue,
                    task: name,
                    mut report,
                } => {
                    report.recovered = Some(format!(
                        "filed to done/ at a restart: ccl stopped after deciding it was done at {}",
                        report.finished
                    ));
                    Action::FinishTask {
                        queue,
                        task: name,
                        report,
                    }
                }
                other => other,
            };
            self.log(format!(
                "{task}: carrying out a move decided before the restart: {redo}"
            ));
            self.push(redo);
        }
    }

    /// Tasks held at start: each turn, adopted once a session shows it works on it,
    /// back to the inbox once no session may (or the hold ran out), forgotten when the
    /// file left `running/`.
    fn recheck_held(&mut self, obs: &Observation) {
        let held = std::mem::take(&mut self.state.held);
        for (t, since_ms) in held {
            let running = obs
                .queues
                .iter()
                .find(|q| q.name == t.queue)
                .is_none_or(|q| q.running.contains(&t.task));
            if running {
                self.place_unowned(t, since_ms, obs);
            }
        }
    }

    /// A task in `running/` with no owner: adopted by the pool session whose Claude is
    /// working on it (its conversation began with the task's body), held while a pool
    /// Claude in its project has no prompt yet (it may be the one, about to show it),
    /// else back to the inbox. Requeueing a task a Claude still works on would run it
    /// twice, which is what losing `state.json` used to do.
    fn place_unowned(&mut self, t: TaskRef, held_since_ms: i64, obs: &Observation) {
        let free = |core: &Core, session: &str| {
            core.state.sessions.get(session).is_some_and(|s| {
                s.kind == Kind::Pool
                    && s.assignment.is_none()
                    && s.claude_in_front()
                    && matches!(s.activity, Activity::Free)
            })
        };
        let working = obs.work_seen.iter().find(|w| {
            w.queue == t.queue
                && matches!(&w.prompt, FirstPrompt::Task { task } if *task == t.task)
                && free(self, &w.session)
        });
        if let Some(w) = working {
            let session = w.session.clone();
            return self.adopt(&session, t);
        }
        let pasted = obs.work_seen.iter().find(|w| {
            w.queue == t.queue
                && matches!(&w.prompt, FirstPrompt::InBox { task } if *task == t.task)
                && free(self, &w.session)
        });
        if let Some(w) = pasted {
            let session = w.session.clone();
            return self.adopt_pasted(&session, t);
        }
        let maybe: Vec<SessionName> = obs
            .work_seen
            .iter()
            .filter(|w| w.queue == t.queue && w.prompt == FirstPrompt::Pending && free(self, &w.session))
            // One that needs the operator (text in its box ccl does not know it typed)
            // will not show anything by itself, and ccl never submits that text.
            .filter(|w| {
                self.state
                    .sessions
                    .get(&w.session)
                    .is_some_and(|s| s.attention.is_none())
            })
            .map(|w| w.session.clone())
            .collect();
        let fresh = held_since_ms == self.now_ms;
        if !maybe.is_empty() && self.now_ms - held_since_ms < limits::HOLD_UNOWNED_MS {
            if fresh {
                self.event(Event::TaskHeld {
                    task: t.to_string(),
                    sessions: maybe.clone(),
                });
            }
            self.state.held.push((t, held_since_ms));
            return;
        }
        let reason = if fresh {
            "no session is working on it (recovered at start)".to_string()
        } else {
            format!(
                "no session showed it works on it within {}s of the start (recovered at start)",
                (self.now_ms - held_since_ms) / 1000
            )
        };
        self.push(Action::RequeueTask {
            queue: t.queue.clone(),
            task: t.task.clone(),
            reason,
        });
    }

    /// The worktree of an adopted task of an isolated queue: where its Claude works (the
    /// base commit it started from is not known any more).
    fn adopted_worktree(&self, session: &str, task: &TaskRef) -> Option<crate::core::Worktree> {
        let dir = self
            .config
            .queue(&task.queue)
            .filter(|q| q.isolation == Isolation::Worktree)
            .map(|q| q.worktree_dir.clone())?;
        let cwd = self.state.sessions.get(session)?.cwd.clone()?;
        if !cwd.starts_with(&dir) || cwd == dir {
            return None;
        }
        let name = cwd.file_name()?.to_string_lossy().into_owned();
        Some(crate::core::Worktree {
            branch: format!("{BRANCH_PREFIX}{name}"),
            path: cwd,
            base: String::new(),
        })
    }

    /// Takes `task` as the work of `session`, whose input box holds the task's body
    /// unsent: ccl's own paste, so its Enter is ccl's to press (this turn, by the watcher).
    fn adopt_pasted(&mut self, session: &str, task: TaskRef) {
        let key = task.to_string();
        let attempt = self.state.attempts.get(&key).copied().unwrap_or(1).max(1);
        self.state.attempts.insert(key, attempt);
        let now_ms = self.now_ms;
        self.event(Event::Adopted {
            session: session.into(),
            task: task.to_string(),
            in_box: true,
        });
        let worktree = self.adopted_worktree(session, &task);
        let s = self.state.sessions.get_mut(session).expect("session exists");
        // The text flagged as not ccl's turned out to be ccl's own paste.
        if s.attention.as_deref().is_some_and(|a| a.starts_with(FOREIGN_BOX_TEXT)) {
            s.attention = None;
        }
        s.assignment = Some(Assignment {
            task,
            claimed_ms: now_ms,
            started_ms: None,
            attempt,
            adopted: Some(format!(
                "adopted from {session} at {}: ccl had no record of it, and its body was unsent in that session's input box",
                crate::util::rfc3339(now_ms)
            )),
            worktree,
        });
        // Pasted before the restart, so its Enter is due now.
        s.activity = Activity::Pasted {
            at_ms: now_ms,
            enter_ms: now_ms,
            text: crate::core::PasteKind::Task,
        };
    }

    /// Takes `task` as the work of `session`, whose Claude was found working on it.
    fn adopt(&mut self, session: &str, task: TaskRef) {
        let key = task.to_string();
        let attempt = self.state.attempts.get(&key).copied().unwrap_or(1).max(1);
        self.state.attempts.insert(key, attempt);
        let now_ms = self.now_ms;
        let how = format!(
            "adopted from {session} at {}: ccl had no record of it, and that session's Claude was working on it",
            crate::util::rfc3339(now_ms)
        );
        self.event(Event::Adopted {
            session: session.into(),
            task: task.to_string(),
            in_box: false,
        });
        let worktree = self.adopted_worktree(session, &task);
        let s = self.state.sessions.get_mut(session).expect("session exists");
        s.assignment = Some(Assignment {
            task,
            claimed_ms: now_ms,
            started_ms: Some(now_ms),
            attempt,
            adopted: Some(how),
            worktree,
        });
        s.activity = Activity::Working {
            since_ms: now_ms,
            turn_ended: false,
            idle_turns: 0,
        };
    }

    /// Start-up: a task in `running/` that no session owns goes back to the inbox; a
    /// session that believes it owns a task no longer in `running/` forgets it.
    fn recover_running(&mut self, obs: &Observation) {
        // A task with a move pending is being filed (settle_moves redid it): not abandoned.
        let owned: BTreeSet<TaskRef> = self
            .state
            .sessions
            .values()
            .filter_map(|s| s.assignment.as_ref().map(|a| a.task.clone()))
            .chain(self.state.moves.iter().filter_map(Action::running_move))
            .collect();
        // Held before a restart or not, every unowned task is looked at afresh.
        self.state.held.clear();
        let unowned: Vec<TaskRef> = obs
            .queues
            .iter()
            .flat_map(|q| {
                q.running.iter().map(|name| TaskRef {
                    queue: q.name.clone(),
                    task: name.clone(),
                })
            })
            .filter(|t| !owned.contains(t))
            .collect();
        for t in unowned {
            self.place_unowned(t, self.now_ms, obs);
        }
        let names: Vec<SessionName> = self.state.sessions.keys().cloned().collect();
        for name in names {
            let s = self.state.sessions.get_mut(&name).expect("session exists");
            let Some(a) = s.assignment.clone() else { continue };
            let in_running = obs
                .queues
                .iter()
                .any(|q| q.name == a.task.queue && q.running.contains(&a.task.task));
            if !in_running {
                s.assignment = None;
                if matches!(
                    s.activity,
                    Activity::Preparing { .. }
                        | Activity::Launching { .. }
                        | Activity::Pasted { .. }
                        | Activity::Submitted { .. }
                        | Activity::Working { .. }
                ) {
                    s.activity = Activity::Free;
                }
                self.event(Event::TaskForgotten {
                    session: name,
                    task: a.task.to_string(),
                });
            }
        }
    }
}

/// Task branches are `ccl/NAME`.
pub const BRANCH_PREFIX: &str = "ccl/";

/// Longest worktree name (directory and branch suffix) made from a task name, in bytes.
const MAX_WORKTREE_NAME: usize = 80;

/// The worktree and branch name for a task: its file name without the extension, with
/// every character git refuses in a branch name (or a shell would mangle) replaced by
/// `-`, and never starting with `.` or `-` nor ending in `.lock` or `.`.
pub fn worktree_name(task: &str) -> String {
    let stem = match task.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => task,
    };
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while name.contains("..") {
        name = name.replace("..", ".");
    }
    name.truncate(MAX_WORKTREE_NAME);
    let mut name = name.trim_start_matches(['.', '-']).to_string();
    loop {
        let before = name.len();
        if let Some(s) = name.strip_suffix(".lock") {
            name = s.to_string();
        }
        name = name.trim_end_matches('.').to_string();
        if name.len() == before {
            break;
        }
    }
    if name.is_empty() {
        "task".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::worktree_name;

    #[test]
    fn worktree_names_are_safe_branch_names() {
        assert_eq!(
            worktree_name("20261129-223000-fix-login.md"),
            "20261129-223000-fix-login"
        );
        assert_eq!(worktree_name("a b:c~d^e?f*g[h]\\i@{j}.txt"), "a-b-c-d-e-f-g-h--i--j-");
        assert_eq!(worktree_name(".hidden..x.lock.md"), "hidden.x");
        assert_eq!(worktree_name("..."), "task");
        assert_eq!(worktree_name("plain"), "plain");
        assert_eq!(worktree_name(&"x".repeat(300)).len(), 80);
    }
}
