//! The shell's hands: carries out the core's actions in order — tmux commands, task file
//! moves, replies, hooks, log lines — with one log line per action naming what it
//! touched. A failing action is logged and does not stop the others, except that a
//! failed claim skips the rest of that session's actions this turn (the core learns of
//! it in the next observation).
//!
//! Last line of defence for "task text never reaches a shell": right before text meant
//! for Claude is pasted, the pane's foreground command is checked again.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};

use crate::adapters::procs;
use crate::adapters::queue;
use crate::adapters::tmux::NewSession;
use crate::shell::observe::Shell;
use crate::shell::state;
use ccl_core::config::Config;
use ccl_core::core::{limits, Action, ClaimError, Level, TaskRef, WorktreeOutcome};
use ccl_core::sessions::is_claude_name;

/// The level a failed action is logged at. A Claude that could not be stopped breaks an
/// invariant (a swap moves every member; nothing but that checked pid is signalled), so
/// ERROR; any other failed action is degraded work the core hears of and handles, so WARN.
fn failure_level(action: &Action) -> Level {
    match action {
        Action::StopClaude { .. } => Level::Error,
        _ => Level::Warn,
    }
}

/// One log line at the level the core (or the executor) gave it.
fn log_at(level: Level, message: &str) {
    match level {
        Level::Info => log::info!("{message}"),
        Level::Warn => log::warn!("{message}"),
        Level::Error => log::error!("{message}"),
    }
}

impl Shell {
    pub fn execute(&mut self, config: &Config, actions: &[Action], now_ms: i64) {
        let mut skip: BTreeSet<String> = BTreeSet::new();
        for action in actions {
            if let Some(s) = action.session() {
                if skip.contains(s) {
                    log::info!("skipped after a failed claim: {action}");
                    continue;
                }
                // Whatever this does to the pane, the next observation captures it afresh
                // rather than trusting tmux's activity time alone.
                self.touched.insert(s.to_string());
            }
            match action {
                Action::Log { level, message } => log_at(*level, message),
                Action::Event(event) => log_at(event.level(), &event.to_string()),
                _ => match self.carry_out(config, action, now_ms) {
                    Ok(()) => log::info!("{action}"),
                    Err(e) => {
                        log_at(failure_level(action), &format!("failed: {action}: {e:#}"));
                        if let Action::ClaimTask { session, queue, task } = action {
                            skip.insert(session.to_string());
                            let task = TaskRef {
                                queue: queue.clone(),
                                task: task.clone(),
                            };
                            // The core retries a lost race at once, but waits out a
                            // failure that lasts, and reports that one once.
                            if queue::is_race(&e) {
                                self.failed_claims.push(task);
                            } else {
                                self.claim_errors.push(ClaimError {
                                    task,
                                    cause: format!("{e:#}"),
                                });
                            }
                        }
                    }
                },
            }
        }
    }

    fn carry_out(&mut self, config: &Config, action: &Action, now_ms: i64) -> Result<()> {
        let queue_of = |name: &str| {
            config
                .queue(name)
                .with_context(|| format!("no queue named '{name}' in the configuration"))
        };
        match action {
            Action::CreateSession { session, workdir, .. } => {
                // Never a fallback to another directory: the core learns of a missing
                // workdir through `Observation::missing_dirs` and marks the session.
                if !workdir.is_dir() {
                    bail!("workdir {} does not exist: '{session}' not created", workdir.display());
                }
                let cwd = workdir.clone();
                self.tmux.new_session(&NewSession {
                    name: session.to_string(),
                    cwd,
                    env: Vec::new(),
                    width: limits::SESSION_WIDTH,
                    height: limits::SESSION_HEIGHT,
                    command: None,
                })
            }
            Action::KillSession { session, .. } => self.tmux.kill_session(session),
            Action::TypeLine { session, line } => {
                self.tmux.paste(session, line, false)?;
                self.tmux.send_keys(session, &["Enter"])
            }
            Action::PasteText { session, text } => {
                self.ensure_claude(config, session)?;
                self.tmux.paste(session, text, true)
            }
            Action::PasteTask { session, queue, task } => {
                let q = queue_of(queue)?;
                let body = queue::read_running(q, task)?;
                self.ensure_claude(config, session)?;
                self.tmux.paste(session, &body, true)
            }
            Action::SendKeys { session, keys } => {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                self.tmux.send_keys(session, &keys)
            }
            Action::StopClaude { session, pid } => {
                let panes = self.tmux.list_sessions()?;
                let pane = panes
                    .iter()
                    .find(|p| p.session == *session)
                    .with_context(|| format!("session '{session}' is gone"))?;
                // The core chose the pid from last observation; check it is still a Claude
                // under this very pane (not a reused pid, not another session's process)
                // before anything is signalled.
                let registered = registry_pids(config, session);
                procs::check_claude_under_pane(
                    *pid,
                    pane.pane_pid,
                    |comm| is_claude_name(comm, &config.claude.command),
                    &registered,
                )?;
                // SAFETY: a plain kill(2) of one process just checked to be that Claude.
                if unsafe { libc::kill(*pid as i32, libc::SIGTERM) } != 0 {
                    bail!("cannot signal pid {pid}: {}", std::io::Error::last_os_error());
                }
                Ok(())
            }
            Action::ClaimTask { queue, task, .. } => {
                if !queue::claim(queue_of(queue)?, task)? {
                    return Err(std::io::Error::from(std::io::ErrorKind::NotFound))
                        .with_context(|| format!("{queue}/{task} is no longer in the inbox"));
                }
                Ok(())
            }
            Action::FinishTask { queue, task, report } => {
                let q = queue_of(queue)?;
                let mut record = serde_json::to_value(report)?;
                if let Some(wt) = &report.worktree {
                    record["worktree"] = crate::adapters::worktree::record(&q.project, wt);
                }
                let filed = queue::finish(q, task, &record)?;
                log_renamed(queue, task, "done", filed);
                Ok(())
            }
            Action::AddWorktree {
                session,
                queue,
                task,
                name,
            } => {
                let made = crate::adapters::worktree::add(queue_of(queue)?, name);
                let task = TaskRef {
                    queue: queue.clone(),
                    task: task.clone(),
                };
                let (worktree, error) = match made {
                    Ok(wt) => (Some(wt), None),
                    Err(e) => (None, Some(format!("{e:#}"))),
                };
                let failed = error.clone();
                self.worktrees.push(WorktreeOutcome {
                    session: session.clone(),
                    task,
                    worktree,
                    error,
                });
                match failed {
                    Some(e) => bail!("{e}"),
                    None => Ok(()),
                }
            }
            Action::FailTask {
                queue,
                task,
                from,
                reason,
            } => {
                let filed = queue::fail(queue_of(queue)?, from, task, reason)?;
                log_renamed(queue, task, "failed", filed);
                Ok(())
            }
            Action::RequeueTask { queue, task, .. } => {
                let filed = queue::requeue(queue_of(queue)?, task)?;
                log_renamed(queue, task, "inbox", filed);
                Ok(())
            }
            Action::Reply { id, ok, message } => state::write_reply(&config.daemon.state_dir, id, *ok, message),
            Action::RunHook { event, command, env } => {
                let dir = config.daemon.state_dir.join("hooks");
                self.hooks
                    .spawn(&dir, event, command, env, config.hooks.timeout.0, now_ms);
                Ok(())
            }
            Action::Log { .. } | Action::Event(_) => Ok(()),
        }
    }

    /// Text for Claude goes only where Claude is in the foreground: by its name, or by
    /// its registry entry naming a process in the pane's foreground process group.
    fn ensure_claude(&mut self, config: &Config, session: &str) -> Result<()> {
        let panes = self.tmux.list_sessions()?;
        let pane = panes
            .iter()
            .find(|p| p.session == session)
            .with_context(|| format!("session '{session}' is gone"))?;
        let claude = is_claude_name(&pane.current_command, &config.claude.command)
            || procs::foreground_claude(pane.pane_pid, &registry_pids(config, session)).is_some();
        if pane.dead || !claude {
            bail!(
                "refusing to paste into '{session}': its foreground is '{}', not claude",
                pane.current_command
            );
        }
        Ok(())
    }
}

/// Pids of the Claudes whose registry entries (in any account's home) name `session`.
fn registry_pids(config: &Config, session: &str) -> Vec<u32> {
    config
        .accounts
        .iter()
        .flat_map(|a| crate::adapters::transcript::read_registry(&a.home))
        .filter(|e| e.tmux_session.as_deref() == Some(session))
        .map(|e| e.pid)
        .collect()
}

/// A task filed under another name (its own was taken by an earlier task, or too long for
/// its sidecar) says so in the log, next to the action's own line.
fn log_renamed(queue: &str, task: &str, dir: &str, filed: Option<String>) {
    if let Some(new) = filed {
        log::info!("{queue}/{task}: {dir}/{task} is taken or too long; filed as {dir}/{new}, the earlier file kept");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_stop_is_an_error_and_other_failures_are_warnings() {
        let stop = Action::StopClaude {
            session: "ccl-1-ops".into(),
            pid: 4242,
        };
        let claim = Action::ClaimTask {
            session: "ccl-auto-11".into(),
            queue: "alpha".into(),
            task: "t.md".into(),
        };
        assert_eq!(failure_level(&stop), Level::Error);
        assert_eq!(failure_level(&claim), Level::Warn);
    }
}
