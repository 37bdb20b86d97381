//! Phase 4 of a turn: the swap state machine, and the control requests that start one.
//!
//! A swap moves every managed session to another account across several turns, with no
//! sleeps: **save** (every member's conversation id and cwd go into the persisted state,
//! which the shell writes before it carries out the turn's actions), **stop** (SIGTERM
//! to the Claude of a dedicated session, which is never typed `/exit`, and of a pool
//! session while the signals are on; otherwise Escape where a menu or a turn holds the
//! keyboard, the Escape pair where the box holds text, then `/exit`; a pool pane that
//! does not come back to its shell in time is killed and recreated), **relaunch** under
//! the target account (dedicated sessions resume their own conversation, or stay at the
//! shell when no id is known; pool sessions with a task resume with the continue prompt,
//! on the launch line while the signals are on), then **cooldown**. With the signals on,
//! each member is relaunched in the turn it stops; without, once every member has. A
//! restart mid-swap picks up from the persisted `Swap`.
//!
//! A swap before the limit (`Swap::at_boundary`, started by the meters or Claude's
//! wrap-up) makes the target active at once, so new work starts there, and moves each
//! member at its own turn boundary: a pool session when its task's turn ends (a finished
//! task is recycled as usual and has nothing left to move; a turn cut short by the limit
//! or the wrap-up is stopped and resumed under the target with the continue prompt), a
//! taskless or dedicated Claude when it is idle. Busy turns are never interrupted. The
//! swap is complete when every member has moved.

use crate::core::{
    limits, Action, Activity, AfterLaunch, Awaiting, Core, Kind, Observation, Pressed, RequestKind, Seen, Swap,
    SwapMember, SwapRecord,
};
use crate::event::Event;
use crate::names::AccountName;
use crate::screen;
use crate::sessions::{Continue, FOREIGN_QUOTE_CHARS};
use crate::util::rfc3339;
use crate::util::snippet;

impl Core {
    /// Starts a swap to `to` (or the next available account). With none available, all
    /// accounts are exhausted: dispatch pauses until the earliest reset.
    pub(crate) fn begin_swap(&mut self, to: Option<String>, reason: String, request: Option<String>) -> bool {
        let from = self.state.active.clone();
        let target = to.or_else(|| self.pick_target(&from));
        let Some(to) = target else {
            if !self.state.all_exhausted {
                self.state.all_exhausted = true;
                let until = self
                    .earliest_reset()
                    .map(|(_, t)| rfc3339(t))
                    .unwrap_or_else(|| "-".into());
                self.event(Event::AllExhausted {
                    until: until.clone(),
                    reason: reason.clone(),
                });
                self.hook(
                    "on_all_exhausted",
                    vec![
                        ("CCL_REASON", reason.clone()),
                        ("CCL_RESET_AT", until),
                        ("CCL_FROM", from.to_string()),
                    ],
                );
            }
            if let Some(id) = request {
                self.push(Action::Reply {
                    id,
                    ok: false,
                    message: "refused: no other account is available".into(),
                });
            }
            return false;
        };

        let mut members = Vec::new();
        for (name, s) in self.state.sessions.iter_mut() {
            let running =
                matches!(s.seen, Seen::Idle | Seen::Busy | Seen::Menu | Seen::Unknown) || s.assignment.is_some();
            if !running || matches!(s.seen, Seen::Absent | Seen::Dead) {
                continue;
            }
            members.push(SwapMember::of(name, s));
            s.activity = Activity::Stopping {
                since_ms: self.now_ms,
                deadline_ms: self.now_ms + limits::STOP_TIMEOUT_MS,
                exit_sent: false,
                exit_at_ms: None,
                signalled: false,
            };
        }
        self.start_swap(from, to.into(), reason, request, members, false);
        true
    }

    /// Records a swap that begins now with `members` and says so.
    fn start_swap(
        &mut self,
        from: AccountName,
        to: AccountName,
        reason: String,
        request: Option<String>,
        members: Vec<SwapMember>,
        at_boundary: bool,
    ) {
        self.event(Event::SwapBegins {
            from: from.clone(),
            to: to.clone(),
            reason: reason.clone(),
            members: members.iter().map(|m| m.session.clone()).collect(),
            at_boundaries: at_boundary,
        });
        self.state.swap = Some(Swap {
            from,
            to,
            reason,
            started_ms: self.now_ms,
            request,
            members,
            at_boundary,
        });
    }

    /// Starts a swap to `to` whose members move at their own turn boundaries (see the
    /// module doc). `to` becomes active now.
    pub(crate) fn begin_boundary_swap(&mut self, to: String, reason: String) {
        let from = self.state.active.clone();
        let mut members = Vec::new();
        for (name, s) in self.state.sessions.iter() {
            // Sessions at their shell have nothing to move: they launch under the active
            // account when they next get work.
            let runs_claude = matches!(
                s.seen,
                Seen::Idle | Seen::Busy | Seen::Menu | Seen::Attention | Seen::Unknown
            ) || !matches!(s.activity, Activity::Free);
            if !runs_claude || matches!(s.seen, Seen::Absent | Seen::Dead) || s.account.as_deref() == Some(&to) {
                continue;
            }
            members.push(SwapMember::of(name, s));
        }
        let to = AccountName::from(to);
        self.start_swap(from, to.clone(), reason, None, members, true);
        self.state.active = to;
        self.state.draining = None;
    }

    /// One turn of a swap at turn boundaries: each member not moved yet is stopped once
    /// it reaches its boundary and relaunched under the (already active) target.
    fn step_boundary_swap(&mut self, mut swap: Swap) {
        let mut all_moved = true;
        for i in 0..swap.members.len() {
            if swap.members[i].stopped {
                continue;
            }
            let mut m = swap.members[i].clone();
            let moved = self.step_boundary_member(&mut m);
            m.stopped = moved;
            all_moved &= moved;
            swap.members[i] = m;
        }
        if all_moved {
            self.finish_swap(swap);
        } else {
            self.state.swap = Some(swap);
        }
    }

    /// True once the member has moved (or has nothing left under the old account).
    fn step_boundary_member(&mut self, m: &mut SwapMember) -> bool {
        let Some(s) = self.state.sessions.get(&m.session) else {
            return true;
        };
        if matches!(s.activity, Activity::Stopping { .. }) {
            if !self.stop_member(m) {
                return false;
            }
            self.relaunch_member(m);
            return true;
        }
        let at_boundary = match (&s.activity, s.seen) {
            // Nothing of the old account is left here: a finished task recycled, a
            // Claude that exited, a pane that went away.
            (Activity::Free, Seen::Shell | Seen::Absent | Seen::Dead) if s.assignment.is_none() => return true,
            // A turn cut short by the limit or wrapped up before it: it continues under
            // the target.
            (Activity::Working { .. }, Seen::Idle | Seen::Menu) if s.limit_pending => true,
            (Activity::Working { turn_ended: true, .. }, Seen::Idle) if s.wrapped_up => true,
            // An idle Claude with nothing in flight: a taskless pool Claude, or the
            // operator's session between two of their prompts.
            (Activity::Free, Seen::Idle) => true,
            _ => false,
        };
        if !at_boundary {
            return false;
        }
        // What to resume is what the session holds now, not what it held when the swap began.
        m.conversation = s.conversation.clone().filter(|id| screen::is_uuid(id));
        m.cwd = s.cwd.clone();
        m.had_task = s.assignment.is_some();
        let name = m.session.clone();
        self.event(Event::MemberAtBoundary {
            session: name.clone(),
            to: self.state.active.clone(),
        });
        if let Some(s) = self.state.sessions.get_mut(&name) {
            s.activity = Activity::Stopping {
                since_ms: self.now_ms,
                deadline_ms: self.now_ms + limits::STOP_TIMEOUT_MS,
                exit_sent: false,
                exit_at_ms: None,
                signalled: false,
            };
        }
        if self.stop_member(m) {
            self.relaunch_member(m);
            return true;
        }
        false
    }

    pub(crate) fn step_swap(&mut self, _obs: &Observation) {
        let Some(mut swap) = self.state.swap.take() else { return };
        if swap.at_boundary {
            return self.step_boundary_swap(swap);
        }
        // With the signals on, each member is relaunched under the target as soon as it
        // is at its shell (or gone), not when the last one is: ten Claudes exit and start
        // on two cores in the same few seconds, and the first to stop need not wait for
        // the last. The old account stays the active one until every member has moved, so
        // a limit the target shows meanwhile is the target's, not the old account's.
        // Without the signals every member is stopped first, as it always was.
        let at_once = self.config.claude.signals;
        let mut all_stopped = true;
        for m in swap.members.iter_mut().filter(|m| !m.stopped) {
            if !self.stop_member(m) {
                all_stopped = false;
                continue;
            }
            m.stopped = true;
            if at_once {
                let from = std::mem::replace(&mut self.state.active, swap.to.clone());
                self.relaunch_member(m);
                m.relaunched = true;
                self.state.active = from;
            }
        }
        if !all_stopped {
            self.state.swap = Some(swap);
            return;
        }
        // Every member is at its shell (or gone): the rest relaunch under the target.
        self.state.active = swap.to.clone();
        self.state.draining = None;
        for m in swap.members.iter().filter(|m| !m.relaunched) {
            self.relaunch_member(m);
        }
        self.finish_swap(swap);
    }

    /// Every member has moved: the swap is recorded, logged and announced.
    fn finish_swap(&mut self, swap: Swap) {
        self.state.active = swap.to.clone();
        self.state.cooldown_until_ms = Some(self.now_ms + self.config.quota.reactivate_cooldown.0 as i64);
        self.state.swaps += 1;
        self.state.last_swap = Some(SwapRecord {
            from: swap.from.clone(),
            to: swap.to.clone(),
            at_ms: self.now_ms,
            reason: swap.reason.clone(),
        });
        let took_s = (self.now_ms - swap.started_ms) / 1000;
        self.event(Event::Swapped {
            from: swap.from.clone(),
            to: swap.to.clone(),
            took_s,
            reason: swap.reason.clone(),
        });
        let reset_at = self
            .state
            .accounts
            .get(&swap.from)
            .and_then(|a| a.exhausted_until_ms)
            .map(rfc3339)
            .unwrap_or_default();
        self.hook(
            "on_swap",
            vec![
                ("CCL_FROM", swap.from.to_string()),
                ("CCL_TO", swap.to.to_string()),
                ("CCL_REASON", swap.reason.clone()),
                ("CCL_RESET_AT", reset_at),
            ],
        );
        if let Some(id) = swap.request {
            self.push(Action::Reply {
                id,
                ok: true,
                message: format!("swapped from {} to {}", swap.from, swap.to),
            });
        }
    }

    /// One turn of stopping one member; true once Claude is gone from it.
    fn stop_member(&mut self, m: &mut SwapMember) -> bool {
        let name = m.session.clone();
        let Some(s) = self.state.sessions.get(&name) else {
            return true;
        };
        let seen = s.seen;
        let (since_ms, deadline_ms, exit_sent, mut exit_at_ms, mut signalled) = match s.activity {
            Activity::Stopping {
                since_ms,
                deadline_ms,
                exit_sent,
                exit_at_ms,
                signalled,
            } => (since_ms, deadline_ms, exit_sent, exit_at_ms, signalled),
            _ => (self.now_ms, self.now_ms + limits::STOP_TIMEOUT_MS, false, None, false),
        };
        match seen {
            Seen::Shell => {
                if m.conversation.is_none() {
                    // /exit printed "claude --resume <uuid>": the id the operator would use.
                    if let Some(hint) = self.analysis(&name).and_then(|a| a.resume_hint.clone()) {
                        m.conversation = Some(hint.into());
                    }
                }
                return true;
            }
            Seen::Absent | Seen::Dead => return true,
            _ => {}
        }
        if self.now_ms >= deadline_ms && m.kind == Kind::Dedicated {
            // The operator's session is never killed, and nothing else in it is signalled:
            // their Claude stays as it is, under the old account, for them to deal with.
            self.needs_attention(
                &name,
                &format!(
                    "needs attention: claude did not stop within {}s for the swap; left running, not relaunched",
                    limits::STOP_TIMEOUT_MS / 1000
                ),
            );
            m.left_running = true;
            return true;
        }
        if self.now_ms >= deadline_ms {
            let workdir = self.workdir_of(&name);
            self.event(Event::StopTimedOut {
                session: name.clone(),
                timeout_s: limits::STOP_TIMEOUT_MS / 1000,
            });
            self.push(Action::KillSession {
                session: name.clone(),
                reason: "claude did not stop for the swap".into(),
            });
            self.create_session(&name, &workdir, "recreated for the swap");
            return true;
        }
        let input_empty = self
            .analysis(&name)
            .map(|a| a.input.as_deref().unwrap_or("").is_empty() && !a.pasted_placeholder)
            .unwrap_or(true);
        let mut exit_now = exit_sent;
        let dedicated = m.kind == Kind::Dedicated;
        let keys_before = self.out.len();
        // A hooked Claude looked at again soon after ccl typed into it may not have
        // redrawn yet (ten Claudes redrawing on two cores take a while): nothing is typed
        // that the last input could still be answering. A second Escape pair on a box
        // Claude has already cleared opens its rewind menu; an Escape or a clear after
        // `/exit` (still in the box, or its completion menu up) cancels the exit. After
        // `KEYS_RETRY_MS` (`EXIT_RETRY_MS` for `/exit`) the screen is believed as before.
        let clear = seen == Seen::Idle && !input_empty;
        let keys = matches!(seen, Seen::Menu | Seen::Busy);
        let redrawing = self.follow_ups.get(&name).is_some_and(|f| match f.awaiting {
            Awaiting::Keys(Pressed::Escape) => {
                self.now_ms < f.since_ms + limits::KEYS_FOLLOW_UP_MS
                    || (self.now_ms < f.since_ms + limits::KEYS_RETRY_MS && keys)
            }
            Awaiting::Keys(Pressed::Clear) => self.now_ms < f.since_ms + limits::KEYS_RETRY_MS && (keys || clear),
            Awaiting::Keys(Pressed::Exit) => self.now_ms < f.since_ms + limits::EXIT_RETRY_MS && (keys || clear),
            _ => false,
        });
        // With the signals on, a pool session's Claude is stopped as a dedicated one is:
        // one SIGTERM to it and to nothing else. Nothing is typed, so no Escape can pair
        // with another, and no `/exit` can land after a prompt Claude puts back into its
        // box once an interrupt completes (it would be submitted with it). Its
        // conversation is saved as it goes, and `SessionEnd` reports the exit. Without a
        // pid for it this turn, it is stopped by the keys below.
        let pool_pid = (!dedicated && self.config.claude.signals)
            .then(|| self.claude_pids.get(name.as_str()).copied())
            .flatten();
        match seen {
            _ if signalled => {}
            _ if redrawing => {}
            _ if pool_pid.is_some() && !exit_sent => {
                if let Some(text) = self.box_text(&name) {
                    self.event(Event::BoxCleared {
                        session: name.clone(),
                        snippet: snippet(&text, limits::MAX_DRAFT_LOG_CHARS),
                    });
                }
                self.push(Action::StopClaude {
                    session: name.clone(),
                    pid: pool_pid.expect("checked"),
                });
                exit_now = true;
                signalled = true;
            }
            Seen::Menu => self.push(Action::SendKeys {
                session: name.clone(),
                keys: vec!["Escape".into()],
            }),
            // The operator's session is never typed `/exit`: its Claude, and only that
            // process, gets SIGTERM. Without a pid for it this turn, nothing is signalled.
            // An unsent draft in its box is read first and typed back after the resume.
            _ if dedicated && !exit_sent => match self.claude_pids.get(name.as_str()).copied() {
                Some(pid) => {
                    if let Some(draft) = self.box_text(&name) {
                        self.event(Event::DraftKept {
                            session: name.clone(),
                            snippet: snippet(&draft, FOREIGN_QUOTE_CHARS),
                        });
                        if let Some(s) = self.state.sessions.get_mut(&name) {
                            s.draft = Some(draft);
                        }
                    }
                    self.push(Action::StopClaude {
                        session: name.clone(),
                        pid,
                    });
                    exit_now = true;
                }
                None => self.event(Event::NothingToStop { session: name.clone() }),
            },
            _ if dedicated => {}
            // A busy turn ignores /exit: Escape first.
            Seen::Busy => self.push(Action::SendKeys {
                session: name.clone(),
                keys: vec!["Escape".into()],
            }),
            // A pool session's box is cleared so `/exit` goes in alone; what it held is
            // logged, so nothing goes without a trace.
            Seen::Idle if !input_empty => {
                let text = self.box_text(&name).unwrap_or_default();
                self.event(Event::BoxCleared {
                    session: name.clone(),
                    snippet: snippet(&text, limits::MAX_DRAFT_LOG_CHARS),
                });
                self.push(Action::SendKeys {
                    session: name.clone(),
                    keys: vec!["Escape".into(), "Escape".into()],
                })
            }
            Seen::Idle if !exit_sent => {
                self.push(Action::TypeLine {
                    session: name.clone(),
                    line: "/exit".into(),
                });
                exit_now = true;
                exit_at_ms = Some(self.now_ms);
            }
            // The real client draws the weekly-limit menu about half a second after the
            // limit line; a `/exit` typed just then is taken by the menu, which closes and
            // leaves Claude idle. Still idle well after `/exit`: type it again.
            Seen::Idle if exit_at_ms.unwrap_or(since_ms) + limits::EXIT_RETRY_MS <= self.now_ms => {
                self.event(Event::ExitRetyped { session: name.clone() });
                self.push(Action::TypeLine {
                    session: name.clone(),
                    line: "/exit".into(),
                });
                exit_at_ms = Some(self.now_ms);
            }
            _ => {}
        }
        // No hook reports an interrupted turn or a cleared box, but a Claude that reports
        // through the hooks redraws within milliseconds: it is looked at again soon, not
        // at the next tick. (`/exit` is followed by its `SessionEnd`.)
        let pressed = self.out[keys_before..].iter().find_map(|a| match a {
            Action::TypeLine { .. } => Some(Pressed::Exit),
            Action::SendKeys { .. } if clear => Some(Pressed::Clear),
            Action::SendKeys { .. } => Some(Pressed::Escape),
            _ => None,
        });
        let hooked = self.state.sessions.get(&name).is_some_and(|s| s.hooked);
        if let (Some(pressed), true) = (pressed, hooked) {
            self.follow_up(&name, Awaiting::Keys(pressed));
        }
        if let Some(s) = self.state.sessions.get_mut(&name) {
            s.activity = Activity::Stopping {
                since_ms,
                deadline_ms,
                exit_sent: exit_now,
                exit_at_ms,
                signalled,
            };
        }
        false
    }

    fn relaunch_member(&mut self, m: &SwapMember) {
        self.relaunch_one(m);
        // A draft read before the stop that no resumed Claude will get back: the log
        // keeps it, so the operator can copy it from there.
        let name = &m.session;
        let Some(s) = self.state.sessions.get_mut(name) else {
            return;
        };
        if !matches!(s.activity, Activity::Launching { .. }) {
            self.drop_draft(name);
        }
    }

    /// A kept draft that no resumed Claude will get back: the log keeps it, so the
    /// operator can copy it from there.
    pub(crate) fn drop_draft(&mut self, name: &str) {
        let draft = self.state.sessions.get_mut(name).and_then(|s| s.draft.take());
        if let Some(draft) = draft {
            self.event(Event::DraftLost {
                session: name.into(),
                snippet: snippet(&draft, limits::MAX_DRAFT_LOG_CHARS),
            });
        }
    }

    fn relaunch_one(&mut self, m: &SwapMember) {
        let name = m.session.clone();
        let Some(s) = self.state.sessions.get_mut(&name) else {
            return;
        };
        s.activity = Activity::Free;
        if m.left_running {
            return;
        }
        s.limit_pending = false;
        s.wrapped_up = false;
        s.self_continuing = false;
        s.account = None;
        if s.seen == Seen::Absent {
            self.event(Event::MemberAbsent { session: name });
            return;
        }
        // Claude writes a transcript with the first prompt, so a task that was claimed or
        // pasted but never seen submitted has no conversation `--resume` could find.
        let unsubmitted = s.assignment.as_ref().is_some_and(|a| a.started_ms.is_none());
        let task_worktree = s
            .assignment
            .as_ref()
            .and_then(|a| a.worktree.as_ref())
            .map(|wt| wt.path.clone());
        let valid_id = m.conversation.clone().filter(|id| screen::is_uuid(id));
        let cwd = m.cwd.clone().unwrap_or_else(|| self.workdir_of(&name));
        match (m.kind, valid_id) {
            (Kind::Pool, _) if unsubmitted => {
                self.event(Event::TaskRestarted {
                    session: name.clone(),
                    account: self.state.active.clone(),
                });
                // In its worktree if it has one (or once it is made), else its project.
                self.launch_task(&name);
            }
            (Kind::Dedicated, Some(id)) => {
                self.event(Event::Resuming {
                    session: name.clone(),
                    conversation: id.clone(),
                    account: self.state.active.clone(),
                    task: false,
                });
                if !self.launch(&name, &cwd, &id, Continue::Resume, AfterLaunch::Nothing) {
                    self.event(Event::LeftAtShell {
                        session: name,
                        conversation: Some(id),
                    });
                }
            }
            (Kind::Dedicated, None) => {
                self.event(Event::LeftAtShell {
                    session: name,
                    conversation: None,
                });
            }
            (Kind::Pool, Some(id)) if m.had_task => {
                // A task's conversation lives in its worktree, whatever the pane showed.
                let cwd = task_worktree.unwrap_or(cwd);
                self.event(Event::Resuming {
                    session: name.clone(),
                    conversation: id.clone(),
                    account: self.state.active.clone(),
                    task: true,
                });
                if !self.launch(&name, &cwd, &id, Continue::Resume, AfterLaunch::Continue) {
                    self.give_back(&name, "its shell line holds text ccl did not type", false);
                }
            }
            (Kind::Pool, None) if m.had_task => {
                let s = self.state.sessions.get_mut(&name).expect("session exists");
                if let Some(a) = s.assignment.take() {
                    self.push(Action::RequeueTask {
                        queue: a.task.queue.clone(),
                        task: a.task.task.clone(),
                        reason: format!("{name} had no conversation id to resume after the swap"),
                    });
                }
            }
            (Kind::Pool, _) => {
                let s = self.state.sessions.get_mut(&name).expect("session exists");
                s.conversation = None;
            }
        }
    }

    pub(crate) fn workdir_of(&self, name: &str) -> std::path::PathBuf {
        self.config
            .dedicated
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.workdir.clone())
            .unwrap_or_else(|| self.config.pool.workdir.clone())
    }

    /// Control requests from `ccl swap`, `ccl pause`, `ccl resume`.
    pub(crate) fn handle_requests(&mut self, obs: &Observation) {
        for r in &obs.requests {
            match &r.kind {
                RequestKind::Swap { to } => self.request_swap(&r.id, to.clone()),
                RequestKind::Account { account, enable } => {
                    let (ok, message) = self.set_account_enabled(account, *enable);
                    self.push(Action::Reply {
                        id: r.id.clone(),
                        ok,
                        message,
                    });
                }
                RequestKind::Pause { queue } | RequestKind::Resume { queue } => {
                    let pause = matches!(r.kind, RequestKind::Pause { .. });
                    if let Some(q) = queue.as_ref().filter(|q| self.config.queue(q).is_none()) {
                        self.push(Action::Reply {
                            id: r.id.clone(),
                            ok: false,
                            message: format!("refused: no queue named '{q}'"),
                        });
                        continue;
                    }
                    let what = queue
                        .as_ref()
                        .map_or("all queues".to_string(), |q| format!("queue {q}"));
                    if pause {
                        self.state.paused.pause(queue.as_deref());
                    } else {
                        self.state.paused.resume(queue.as_deref());
                    }
                    let verb = if pause { "paused" } else { "resumed" };
                    self.log(format!("{what} {verb}"));
                    self.push(Action::Reply {
                        id: r.id.clone(),
                        ok: true,
                        message: format!("{what} {verb}"),
                    });
                }
            }
        }
    }

    /// `ccl account enable|disable NAME`: enabling also clears an unhealthy mark (the
    /// operator says the login is fixed); disabling the active account moves the fleet
    /// off it as a hit would, when another account can take it.
    pub(crate) fn set_account_enabled(&mut self, account: &str, enable: bool) -> (bool, String) {
        let Some(acc) = self.state.accounts.get_mut(account) else {
            return (false, format!("refused: no account named '{account}'"));
        };
        if enable {
            let was = (acc.disabled, acc.unhealthy.take());
            acc.disabled = false;
            let message = match was {
                (false, None) => format!("account {account} is already enabled"),
                (_, Some(why)) => format!("account {account} enabled (was unhealthy: {why})"),
                (true, None) => format!("account {account} enabled"),
            };
            self.log(message.clone());
            return (true, message);
        }
        if acc.disabled {
            return (true, format!("account {account} is already disabled"));
        }
        let target = (self.state.active == account).then(|| self.pick_target(account));
        if let Some(None) = target {
            return (
                false,
                format!("refused: {account} is the active account and no other account can take the fleet"),
            );
        }
        if let Some(acc) = self.state.accounts.get_mut(account) {
            acc.disabled = true;
        }
        let mut message = format!("account {account} disabled: never a swap target until enabled");
        if let (Some(Some(to)), None) = (target, &self.state.swap) {
            message += &format!("; the fleet moves to {to}");
            self.begin_swap(
                Some(to),
                format!("account {account} was disabled by the operator"),
                None,
            );
        }
        self.log(message.clone());
        (true, message)
    }

    fn request_swap(&mut self, id: &str, to: Option<String>) {
        let refuse = |core: &mut Core, why: String| {
            core.push(Action::Reply {
                id: id.to_string(),
                ok: false,
                message: format!("refused: {why}"),
            });
        };
        if self.state.swap.is_some() {
            return refuse(self, "a swap is already in progress".into());
        }
        if let Some(to) = &to {
            if self.config.account(to).is_none() {
                return refuse(self, format!("no account named '{to}'"));
            }
            if *to == self.state.active {
                return refuse(self, format!("{to} is already the active account"));
            }
            if !self.available(to) {
                let until = self
                    .state
                    .accounts
                    .get(to)
                    .and_then(|a| a.exhausted_until_ms)
                    .map(rfc3339)
                    .unwrap_or_default();
                return refuse(self, format!("{to} is exhausted until {until}"));
            }
            let acc = self.state.accounts.get(to).cloned().unwrap_or_default();
            if let Some(why) = acc.unhealthy {
                return refuse(
                    self,
                    format!("{to} is unhealthy ({why}); `ccl account enable {to}` first"),
                );
            }
            if acc.disabled {
                return refuse(self, format!("{to} is disabled; `ccl account enable {to}` first"));
            }
        } else if self.pick_target(&self.state.active.clone()).is_none() {
            // Refused before `begin_swap`, which would take "no target" to mean that every
            // account is exhausted and stop dispatch, while the active one is fine.
            return refuse(self, "no other account is available".into());
        }
        let reason = format!("requested by the operator ({id})");
        if self.begin_swap(to, reason, Some(id.to_string())) {
            self.state.all_exhausted = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{tests::config, Assignment, SessionState, State, TaskRef};

    const ID: &str = "0b1c2d3e-0000-4000-8000-000000000001";

    /// A core in a swap from a to b whose one member, ccl-auto-11, carries task t.md in
    /// conversation ID; `started_ms` says whether its prompt was seen submitted.
    fn swapping(started_ms: Option<i64>, stopped: bool, activity: Activity) -> Core {
        let config = config();
        let mut state = State::fresh(&config, 1);
        let mut s = SessionState::new(Kind::Pool);
        s.seen = Seen::Shell;
        s.shell_prompt = Some("bash-5.2$".into());
        s.conversation = Some(ID.into());
        s.cwd = Some("/src/q".into());
        s.activity = activity;
        s.assignment = Some(Assignment {
            task: TaskRef {
                queue: "q".into(),
                task: "t.md".into(),
            },
            claimed_ms: 0,
            started_ms,
            attempt: 1,
            adopted: None,
            worktree: None,
        });
        state.sessions.insert("ccl-auto-11".into(), s);
        state.swap = Some(Swap {
            from: "a".into(),
            to: "b".into(),
            reason: "test".into(),
            started_ms: 0,
            request: None,
            members: vec![SwapMember {
                session: "ccl-auto-11".into(),
                kind: Kind::Pool,
                conversation: Some(ID.into()),
                cwd: Some("/src/q".into()),
                had_task: true,
                stopped,
                relaunched: false,
                left_running: false,
            }],
            at_boundary: false,
        });
        let mut core = Core::new(config, state, "UTC");
        core.now_ms = 1_000;
        core.captures.insert("ccl-auto-11".into(), "bash-5.2$ \n".into());
        core
    }

    /// The launch line typed into ccl-auto-11 this turn.
    fn launch_line(core: &Core) -> String {
        core.out
            .iter()
            .find_map(|a| match a {
                Action::TypeLine { session, line } if session == "ccl-auto-11" => Some(line.clone()),
                _ => None,
            })
            .expect("a launch line")
    }

    /// The launch line typed when the swap ends, for a task whose prompt was (or was not
    /// yet) seen submitted.
    fn relaunch_line(started_ms: Option<i64>) -> (String, Core) {
        let mut core = swapping(started_ms, true, Activity::Free);
        core.step_swap(&Observation::default());
        (launch_line(&core), core)
    }

    #[test]
    fn a_task_never_seen_submitted_starts_afresh_under_the_new_account() {
        let (line, core) = relaunch_line(None);
        assert!(line.starts_with("cd /src/q && CLAUDE_CONFIG_DIR=/homes/b "), "{line}");
        assert!(
            line.contains("--session-id") && !line.contains(ID),
            "no resume of a conversation that was never written: {line}"
        );
        let s = &core.state().sessions["ccl-auto-11"];
        assert!(matches!(
            s.activity,
            Activity::Launching {
                then: AfterLaunch::Task,
                ..
            }
        ));
        assert_eq!(s.assignment.as_ref().map(|a| a.task.task.as_str()), Some("t.md"));
    }

    #[test]
    fn a_prompt_seen_taken_only_as_the_swap_began_is_resumed_not_restarted() {
        // The limit record of the task's first request is the first sign it was taken:
        // the swap it starts must still resume that conversation.
        let stopping = Activity::Stopping {
            since_ms: 0,
            deadline_ms: limits::STOP_TIMEOUT_MS,
            exit_sent: true,
            exit_at_ms: Some(0),
            signalled: false,
        };
        let mut core = swapping(None, false, stopping);
        let obs = Observation {
            transcripts: vec![crate::core::TranscriptSeen {
                session: "ccl-auto-11".into(),
                conversation: ID.into(),
                records: vec![crate::transcript::Record {
                    uuid: "r1".into(),
                    timestamp: None,
                    signal: crate::transcript::Signal::LimitHit {
                        text: "You've hit your 5-hour limit · resets 10:30am (UTC)".into(),
                    },
                }],
            }],
            ..Default::default()
        };
        core.check_watcher(&obs);
        core.step_swap(&obs);
        let line = launch_line(&core);
        assert!(
            line.ends_with(&format!("--resume {ID} 'Continue where you left off.'")),
            "{line}"
        );
    }

    #[test]
    fn an_exit_that_left_claude_idle_is_typed_again_after_a_while() {
        let config = config();
        let mut state = State::fresh(&config, 1);
        let mut s = SessionState::new(Kind::Pool);
        s.seen = Seen::Idle;
        s.activity = Activity::Stopping {
            since_ms: 0,
            deadline_ms: limits::STOP_TIMEOUT_MS,
            exit_sent: true,
            exit_at_ms: Some(0),
            signalled: false,
        };
        state.sessions.insert("ccl-auto-11".into(), s);
        let mut core = Core::new(config, state, "UTC");
        let mut member = SwapMember {
            session: "ccl-auto-11".into(),
            kind: Kind::Pool,
            conversation: Some(ID.into()),
            cwd: None,
            had_task: true,
            stopped: false,
            relaunched: false,
            left_running: false,
        };
        let mut exits_at = |core: &mut Core, now_ms: i64| {
            core.now_ms = now_ms;
            core.out.clear();
            assert!(!core.stop_member(&mut member));
            core.out
                .iter()
                .filter(|a| matches!(a, Action::TypeLine { line, .. } if line == "/exit"))
                .count()
        };
        assert_eq!(
            exits_at(&mut core, limits::EXIT_RETRY_MS - 1),
            0,
            "claude may still be exiting"
        );
        assert_eq!(
            exits_at(&mut core, limits::EXIT_RETRY_MS),
            1,
            "idle long after /exit: again"
        );
        assert_eq!(
            exits_at(&mut core, limits::EXIT_RETRY_MS + 300),
            0,
            "once per retry interval"
        );
    }

    #[test]
    fn a_submitted_task_resumes_its_conversation_with_the_continue_prompt_on_the_launch_line() {
        let (line, core) = relaunch_line(Some(500));
        assert!(
            line.ends_with(&format!("--resume {ID} 'Continue where you left off.'")),
            "{line}"
        );
        let s = &core.state().sessions["ccl-auto-11"];
        assert!(
            matches!(
                s.activity,
                Activity::Launching {
                    then: AfterLaunch::ContinueGiven,
                    ..
                }
            ),
            "{:?}",
            s.activity
        );
    }

    #[test]
    fn a_continue_prompt_that_cannot_go_on_the_launch_line_is_pasted_once_claude_is_up() {
        let mut core = swapping(Some(500), true, Activity::Free);
        core.config.dispatch.continue_prompt = "Continue.\nThen say what you did.".into();
        core.step_swap(&Observation::default());
        let line = launch_line(&core);
        assert!(line.ends_with(&format!("--resume {ID}")), "{line}");
        let s = &core.state().sessions["ccl-auto-11"];
        assert!(
            matches!(
                s.activity,
                Activity::Launching {
                    then: AfterLaunch::Continue,
                    ..
                }
            ),
            "{:?}",
            s.activity
        );
    }
}
