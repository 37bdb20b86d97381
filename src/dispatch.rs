//! Phase 2 of a turn: the dispatch scan. Files bad task files to `failed/`, and hands
//! the oldest good task of the next queue in turn to a free pool session.
//!
//! Targets are pool sessions only — a dedicated session is never sent a task — that are
//! at their shell with nothing in flight and nothing needing attention. Nothing is
//! dispatched while a swap is in progress, while every account is exhausted, or while
//! the active account is exhausted; since the quota poll runs first, a hit seen in this
//! turn already blocks dispatch in this turn. Queues take turns (round robin from a
//! persisted cursor), so one busy project cannot starve another.

use std::collections::BTreeSet;

use crate::core::{limits, Action, Activity, AfterLaunch, Assignment, Core, Kind, Observation, Seen, TaskRef};
use crate::sessions::Continue;

impl Core {
    pub(crate) fn scan_dispatch(&mut self, obs: &Observation) {
        self.settle_moves(obs);
        if !self.state.started {
            self.recover_running(obs);
        }
        self.drop_failed_claims(obs);
        self.file_bad_tasks(obs);

        if self.state.swap.is_some()
            || self.state.draining.is_some()
            || self.state.all_exhausted
            || !self.available(&self.state.active.clone())
        {
            return;
        }
        let free: Vec<String> = self
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
        let mut free = free;
        self.sort_pool(&mut free);

        let n_queues = self.config.queues.len();
        if n_queues == 0 {
            return;
        }
        let mut taken: BTreeSet<TaskRef> = BTreeSet::new();
        for session in free {
            let mut picked = None;
            for k in 0..n_queues {
                let qi = (self.state.queue_cursor + k) % n_queues;
                let qname = self.config.queues[qi].name.clone();
                if self.state.paused.is_paused(&qname) {
                    continue;
                }
                let Some(q) = obs.queues.iter().find(|q| q.name == qname) else {
                    continue;
                };
                let entry = q.inbox.iter().find(|e| {
                    e.problem.is_none()
                        && !taken.contains(&TaskRef {
                            queue: qname.clone(),
                            task: e.name.clone(),
                        })
                });
                if let Some(e) = entry {
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
            self.start_task(&session, task);
        }
        self.recycle_idle_for_waiting(obs, &taken);
    }

    /// A pool Claude left idle with no task (adopted at start, say) keeps its context
    /// until work waits for it; then it is sent `/exit` so the next turn can dispatch.
    fn recycle_idle_for_waiting(&mut self, obs: &Observation, taken: &BTreeSet<TaskRef>) {
        let waiting = obs
            .queues
            .iter()
            .filter(|q| !self.state.paused.is_paused(&q.name))
            .map(|q| {
                q.inbox
                    .iter()
                    .filter(|e| {
                        e.problem.is_none()
                            && !taken.contains(&TaskRef {
                                queue: q.name.clone(),
                                task: e.name.clone(),
                            })
                    })
                    .count()
            });
        let mut waiting: usize = waiting.sum();
        let idle: Vec<String> = self
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

    fn sort_pool(&self, names: &mut [String]) {
        let prefix = &self.config.pool.prefix;
        names.sort_by_key(|n| {
            n.strip_prefix(prefix.as_str())
                .and_then(|i| i.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        });
    }

    /// Claims `task` for `session` and launches a fresh conversation in its project.
    fn start_task(&mut self, session: &str, task: TaskRef) {
        let Some(project) = self.config.queue(&task.queue).map(|q| q.project.clone()) else {
            return;
        };
        let key = task.to_string();
        let attempt = self.state.attempts.get(&key).copied().unwrap_or(0) + 1;
        self.state.attempts.insert(key, attempt);
        let again = if attempt > 1 {
            format!(" (attempt {attempt})")
        } else {
            String::new()
        };
        self.log(format!(
            "{session}: dispatching {task}{again} under {}",
            self.state.active
        ));
        self.push(Action::ClaimTask {
            session: session.into(),
            queue: task.queue.clone(),
            task: task.task.clone(),
        });
        let id = self.new_conversation_id();
        let s = self.state.sessions.get_mut(session).expect("session exists");
        s.assignment = Some(Assignment {
            task,
            claimed_ms: self.now_ms,
            started_ms: None,
            attempt,
        });
        self.launch(session, &project, &id, Continue::New, AfterLaunch::Task);
    }

    /// A claim that failed last turn (another process took the file): forget the task.
    fn drop_failed_claims(&mut self, obs: &Observation) {
        for failed in &obs.failed_claims {
            let holder = self
                .state
                .sessions
                .iter()
                .find(|(_, s)| s.assignment.as_ref().is_some_and(|a| a.task == *failed))
                .map(|(n, _)| n.clone());
            if let Some(name) = holder {
                self.log(format!(
                    "{name}: claim of {failed} failed (taken elsewhere); session is free again"
                ));
                let s = self.state.sessions.get_mut(&name).expect("session exists");
                s.assignment = None;
                s.activity = Activity::Free;
                s.conversation = None;
                self.state.attempts.remove(&failed.to_string());
            }
        }
    }

    /// Bad files never reach Claude: each goes to `failed/` with the reason.
    fn file_bad_tasks(&mut self, obs: &Observation) {
        for q in &obs.queues {
            for e in q
                .inbox
                .iter()
                .filter(|e| e.problem.is_some())
                .take(limits::MAX_BAD_PER_TURN)
            {
                let reason = e.problem.clone().unwrap_or_default();
                self.push(Action::FailTask {
                    queue: q.name.clone(),
                    task: e.name.clone(),
                    from: "inbox".into(),
                    reason: reason.clone(),
                });
                self.hook(
                    "on_task_failed",
                    vec![
                        ("CCL_QUEUE", q.name.clone()),
                        ("CCL_TASK", e.name.clone()),
                        ("CCL_ERROR", reason),
                    ],
                );
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
        for q in &obs.queues {
            for name in &q.running {
                let t = TaskRef {
                    queue: q.name.clone(),
                    task: name.clone(),
                };
                if !owned.contains(&t) {
                    self.push(Action::RequeueTask {
                        queue: q.name.clone(),
                        task: name.clone(),
                        reason: "no session is working on it (recovered at start)".into(),
                    });
                }
            }
        }
        let names: Vec<String> = self.state.sessions.keys().cloned().collect();
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
                    Activity::Launching { .. }
                        | Activity::Pasted { .. }
                        | Activity::Submitted { .. }
                        | Activity::Working { .. }
                ) {
                    s.activity = Activity::Free;
                }
                self.warn(format!(
                    "{name}: its task {} is no longer in running/ (recovered at start); forgotten",
                    a.task
                ));
            }
        }
    }
}
