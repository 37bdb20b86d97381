//! `ccl show QUEUE TASK` and `ccl retry QUEUE TASK`: one task's record as an operator
//! wants to read it (where it is, which session and account ran it, its times, the
//! result, its conversation and transcript, why it failed and why it failed before), and
//! a failed task put back in the inbox with its old reason kept as history.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::Value;

use crate::adapters::queue;
use crate::adapters::transcript;
use crate::shell::state;
use ccl_core::config::{Config, Queue, STATES};
use ccl_core::core::{Activity, State};
use ccl_core::util;

/// Longest prompt excerpt `show` prints.
const PROMPT_CHARS: usize = 200;

/// The task's name from what the operator typed: a name, or a path to the file.
fn task_name(task: &str) -> String {
    Path::new(task)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(task)
        .to_string()
}

/// Where a task's file is, searched in the order a task moves.
fn find(q: &Queue, name: &str) -> Option<&'static str> {
    STATES.into_iter().find(|st| q.dir(st).join(name).is_file())
}

/// The text `ccl show` prints, or an error when the task is in none of the directories.
pub fn show(config: &Config, q: &Queue, task: &str) -> Result<String> {
    let name = task_name(task);
    let Some(where_) = find(q, &name) else {
        bail!(
            "no task '{name}' in queue '{}' (looked in inbox, running, done and failed of {})",
            q.name,
            q.dir("").display()
        );
    };
    let st = state::load_quiet(&config.state_file());
    let file = q.dir(where_).join(&name);
    let mut out = String::new();
    let mut row = |k: &str, v: &str| {
        let _ = writeln!(out, "{:<13} {v}", format!("{k}:"));
    };
    row("task", &format!("{}/{name}", q.name));
    row("state", where_);
    row("file", &file.display().to_string());
    if let Ok(body) = std::fs::read_to_string(&file) {
        row("prompt", &util::snippet(&body, PROMPT_CHARS));
    }
    let key = format!("{}/{name}", q.name);
    let mut conversation: Option<String> = None;
    let mut cwd: PathBuf = q.project.clone();
    match where_ {
        "inbox" => {
            let attempts = st.as_ref().and_then(|s| s.attempts.get(&key)).copied().unwrap_or(0);
            row("attempts", &format!("{attempts} so far; waiting in the inbox"));
        }
        "running" => match running_in(st.as_ref(), &q.name, &name) {
            Some((session, s)) => {
                row("session", &session);
                row("account", s.account.as_deref().unwrap_or("-"));
                if let Some(a) = &s.assignment {
                    row("attempt", &a.attempt.to_string());
                    row("claimed", &util::rfc3339(a.claimed_ms));
                    row(
                        "started",
                        &a.started_ms.map(util::rfc3339).unwrap_or_else(|| "not yet".into()),
                    );
                    if let Some(wt) = &a.worktree {
                        row("worktree", &format!("{} (branch {})", wt.path.display(), wt.branch));
                    }
                }
                row("activity", activity(&s.activity));
                conversation = s.conversation.clone().map(Into::into);
                if let Some(c) = &s.cwd {
                    cwd = c.clone();
                }
            }
            None => row(
                "session",
                "none (the daemon is not running it; it goes back to the inbox at the next start)",
            ),
        },
        "done" => {
            let record = q.dir("done").join(format!("{name}.json"));
            match std::fs::read(&record)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            {
                Some(Value::Object(fields)) => {
                    row("record", &record.display().to_string());
                    for k in ["session", "account", "attempts", "started", "finished"] {
                        if let Some(v) = fields.get(k) {
                            row(k, &plain(v));
                        }
                    }
                    if let Some(ms) = fields.get("duration_ms").and_then(Value::as_i64) {
                        row("duration", &format!("{}s", ms / 1000));
                    }
                    conversation = fields.get("conversation").and_then(Value::as_str).map(str::to_string);
                    // A task of an isolated queue ran (and left its transcript) in its worktree.
                    if let Some(path) = fields.get("worktree").and_then(|w| w["path"].as_str()) {
                        cwd = PathBuf::from(path);
                    }
                    // Every other field as it is (a result, its cost, the model, how it
                    // was recovered): the record only ever gains fields.
                    let known = [
                        "session",
                        "account",
                        "attempts",
                        "started",
                        "finished",
                        "duration_ms",
                        "conversation",
                    ];
                    for (k, v) in fields.iter().filter(|(k, _)| !known.contains(&k.as_str())) {
                        let text = plain(v);
                        if text.contains('\n') {
                            let indented: Vec<String> = text.lines().map(|l| format!("  {l}")).collect();
                            row(k, &format!("\n{}", indented.join("\n")));
                        } else {
                            row(k, &text);
                        }
                    }
                }
                _ => row("record", &format!("{} is missing or unreadable", record.display())),
            }
        }
        "failed" => {
            let error = q.dir("failed").join(format!("{name}.error"));
            match std::fs::read_to_string(&error) {
                Ok(text) => row("error", text.trim_end()),
                Err(_) => row("error", &format!("{} is missing", error.display())),
            }
            row("retry", &format!("ccl retry {} {name}", q.name));
        }
        _ => {}
    }
    for (file, text) in queue::failure_history(q, &name) {
        row("failed before", &format!("{} ({file})", text.trim_end()));
    }
    if let Some(id) = &conversation {
        row("conversation", id);
        let projects = config.shared.target.join("projects");
        match transcript::locate_transcript(&projects, &cwd, id) {
            Some(p) => row("transcript", &p.display().to_string()),
            None => row(
                "transcript",
                &format!(
                    "{} (not there)",
                    ccl_core::transcript::transcript_path(&projects, &cwd, id).display()
                ),
            ),
        }
    }
    Ok(out)
}

/// The session (and its state) whose assignment is this task.
fn running_in(
    st: Option<&State>,
    queue: &str,
    name: &str,
) -> Option<(ccl_core::names::SessionName, ccl_core::core::SessionState)> {
    st?.sessions
        .iter()
        .find(|(_, s)| {
            s.assignment
                .as_ref()
                .is_some_and(|a| a.task.queue == queue && a.task.task == name)
        })
        .map(|(n, s)| (n.clone(), s.clone()))
}

fn activity(a: &Activity) -> &'static str {
    match a {
        Activity::Free => "-",
        Activity::Preparing { .. } => "making its worktree",
        Activity::Launching { .. } => "launching claude",
        Activity::Pasted { .. } => "pasting the prompt",
        Activity::Submitted { .. } => "submitting the prompt",
        Activity::Working { .. } => "working",
        Activity::Exiting { .. } => "recycling the session",
        Activity::Stopping { .. } => "stopping for a swap",
    }
}

/// A JSON value as an operator reads it: strings without quotes.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `ccl retry`: the message to print.
pub fn retry(q: &Queue, task: &str) -> Result<String> {
    let name = task_name(task);
    match find(q, &name) {
        Some("failed") => {}
        Some(other) => bail!(
            "{}/{name} is in {other}/, not failed/: only a failed task can be retried",
            q.name
        ),
        None => bail!("no task '{name}' in queue '{}'", q.name),
    }
    let kept = queue::retry(q, &name)?;
    let mut msg = format!("{}/{name} is back in the inbox", q.name);
    if let Some(h) = kept {
        let _ = write!(
            msg,
            "; its last reason is kept as {}",
            q.dir("failed").join(h).display()
        );
    }
    Ok(msg)
}
