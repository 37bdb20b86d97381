//! `ccl status`: what the fleet is doing, as one report. [`report`] gathers it from the
//! configuration, `state.json` and the queues (the stable `--json` shape: fields are only
//! ever added); [`render`] draws it for a terminal. The daemon, the command line and the
//! demo all show the fleet through this module.

pub mod render;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::adapters::queue;
use ccl_core::config::{Config, Isolation};
use ccl_core::core::{Activity, Kind, Seen, State, Usage, UsageWindow};
use ccl_core::util;

pub use render::{render_status, terminal_size, terminal_width};

/// What `ccl status --json` prints: stable, fields are only ever added. Fields are
/// declared in alphabetical order, the order the JSON has always had.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    pub accounts: Vec<AccountReport>,
    pub active: String,
    /// When every account is exhausted: the earliest reset (RFC 3339).
    pub all_exhausted_until: Option<String>,
    /// The snapshot's time (RFC 3339).
    pub at: Option<String>,
    pub cooldown_until: Option<String>,
    pub daemon: DaemonReport,
    /// The account drained before its limit: no new tasks go out.
    pub draining: Option<String>,
    pub last_swap: Option<LastSwapReport>,
    pub paused_all: bool,
    pub queues: Vec<QueueReport>,
    pub sessions: Vec<SessionReport>,
    pub swap: Option<SwapReport>,
    pub swaps: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonReport {
    pub pid: Option<u32>,
    pub running: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountReport {
    pub active: bool,
    pub disabled: bool,
    pub exhausted_until: Option<String>,
    pub home: PathBuf,
    pub name: String,
    /// Why the account is exhausted, while it is.
    pub reason: Option<String>,
    /// Why the account cannot work (a revoked login), until enabled again.
    pub unhealthy: Option<String>,
    pub usage: Option<UsageReport>,
}

/// An account's meters; a window whose reset has passed is unknown (absent), as the daemon
/// treats it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageReport {
    pub five_hour: Option<WindowReport>,
    pub seen_at: Option<String>,
    pub seven_day: Option<WindowReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowReport {
    pub resets_at: Option<String>,
    pub used_pct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionReport {
    pub account: Option<String>,
    /// What ccl is doing there: `-`, `preparing`, `launching`, `pasting`, `submitting`,
    /// `working`, `recycling`, `stopping`.
    pub activity: String,
    /// The queue whose `running/` task this session was found working on after a restart.
    #[serde(default)]
    pub adopted: Option<String>,
    #[serde(default)]
    pub attention: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub conversation: Option<String>,
    pub kind: Kind,
    pub name: String,
    /// Whether this session's Claude reports through ccl's hooks.
    #[serde(default)]
    pub signals: bool,
    /// What the pane shows now.
    pub state: Seen,
    /// `QUEUE/TASK`.
    #[serde(default)]
    pub task: Option<String>,
    #[serde(default)]
    pub worktree: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueReport {
    pub done: usize,
    pub failed: usize,
    /// Tasks held back (an adopted task waiting for its session, say).
    pub held: Vec<String>,
    pub inbox: usize,
    pub isolation: Isolation,
    pub max_running: u32,
    pub name: String,
    pub paused: bool,
    pub project: PathBuf,
    pub renamed: Vec<RenamedReport>,
    pub running: usize,
}

/// A task filed under a numbered name because its own was taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenamedReport {
    pub dir: String,
    pub from: String,
    pub task: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SwapReport {
    pub from: String,
    pub reason: String,
    pub started: String,
    pub to: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LastSwapReport {
    pub at: String,
    pub from: String,
    pub reason: String,
    pub to: String,
}

/// The status of the fleet `config` describes, from its state `st` (none before the
/// daemon's first save) and the queue directories, at `now_ms`.
pub fn report(config: &Config, st: Option<&State>, daemon_pid: Option<u32>, now_ms: i64) -> Report {
    let active = st
        .map(|s| s.active.clone())
        .unwrap_or_else(|| config.accounts[0].name.clone());
    let accounts = config
        .accounts
        .iter()
        .map(|a| {
            let acc = st.and_then(|s| s.accounts.get(&a.name));
            let until = acc.and_then(|x| x.exhausted_until_ms).filter(|t| *t > now_ms);
            AccountReport {
                name: a.name.to_string(),
                home: a.home.clone(),
                active: a.name == active,
                exhausted_until: until.map(util::rfc3339),
                reason: until.and(acc.and_then(|x| x.reason.clone())),
                usage: acc.and_then(|x| x.usage.as_ref()).map(|u| usage(u, now_ms)),
                unhealthy: acc.and_then(|x| x.unhealthy.clone()),
                disabled: acc.is_some_and(|x| x.disabled),
            }
        })
        .collect();
    let sessions = config
        .pool
        .names()
        .chain(config.dedicated.iter().map(|d| d.name.clone()))
        .filter_map(|name| {
            let s = st.and_then(|s| s.sessions.get(&name))?;
            let worktree = s.assignment.as_ref().and_then(|a| a.worktree.as_ref());
            Some(SessionReport {
                kind: s.kind,
                state: s.seen,
                activity: activity_name(&s.activity).to_string(),
                account: s.account.clone().map(Into::into),
                conversation: s.conversation.clone().map(Into::into),
                task: s.assignment.as_ref().map(|a| a.task.to_string()),
                attention: s.attention.clone(),
                adopted: s.assignment.as_ref().and_then(|a| a.adopted.clone()),
                worktree: worktree.map(|w| w.path.clone()),
                branch: worktree.map(|w| w.branch.clone()),
                signals: s.hooked,
                name: name.to_string(),
            })
        })
        .collect();
    let queues = config
        .queues
        .iter()
        .map(|q| {
            let c = queue::counts(q).unwrap_or_default();
            QueueReport {
                name: q.name.to_string(),
                project: q.project.clone(),
                inbox: c.inbox,
                running: c.running,
                done: c.done,
                failed: c.failed,
                paused: st.is_some_and(|s| s.paused.is_paused(&q.name)),
                held: st
                    .map(|s| {
                        s.held
                            .iter()
                            .filter(|(t, _)| t.queue == q.name)
                            .map(|(t, _)| t.task.to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
                renamed: queue::renamed(q)
                    .into_iter()
                    .map(|r| RenamedReport {
                        dir: r.dir.to_string(),
                        task: r.task,
                        from: r.from,
                    })
                    .collect(),
                max_running: q.max_running,
                isolation: q.isolation,
            }
        })
        .collect();
    let all_exhausted_until = st.filter(|s| s.all_exhausted).and_then(|s| {
        config
            .accounts
            .iter()
            .filter_map(|a| s.accounts.get(&a.name)?.exhausted_until_ms)
            .min()
    });
    Report {
        daemon: DaemonReport {
            running: daemon_pid.is_some(),
            pid: daemon_pid,
        },
        active: active.to_string(),
        all_exhausted_until: all_exhausted_until.map(util::rfc3339),
        draining: (st.and_then(|s| s.draining.clone())).map(Into::into),
        paused_all: st.is_some_and(|s| s.paused.all_paused()),
        at: Some(util::rfc3339(now_ms)),
        swap: st.and_then(|s| s.swap.as_ref()).map(|w| SwapReport {
            from: w.from.to_string(),
            to: w.to.to_string(),
            reason: w.reason.clone(),
            started: util::rfc3339(w.started_ms),
        }),
        last_swap: st.and_then(|s| s.last_swap.as_ref()).map(|w| LastSwapReport {
            from: w.from.to_string(),
            to: w.to.to_string(),
            reason: w.reason.clone(),
            at: util::rfc3339(w.at_ms),
        }),
        swaps: st.map(|s| s.swaps).unwrap_or(0),
        cooldown_until: st
            .and_then(|s| s.cooldown_until_ms)
            .filter(|t| *t > now_ms)
            .map(util::rfc3339),
        accounts,
        sessions,
        queues,
    }
}

fn usage(u: &Usage, now_ms: i64) -> UsageReport {
    let window = |w: &Option<UsageWindow>| {
        w.as_ref()
            .filter(|w| w.resets_at_ms.is_none_or(|t| t > now_ms))
            .map(|w| WindowReport {
                used_pct: w.used_pct,
                resets_at: w.resets_at_ms.map(util::rfc3339),
            })
    };
    UsageReport {
        five_hour: window(&u.five_hour),
        seven_day: window(&u.seven_day),
        seen_at: Some(util::rfc3339(u.seen_ms)),
    }
}

fn activity_name(a: &Activity) -> &'static str {
    match a {
        Activity::Free => "-",
        Activity::Preparing { .. } => "preparing",
        Activity::Launching { .. } => "launching",
        Activity::Pasted { .. } => "pasting",
        Activity::Submitted { .. } => "submitting",
        Activity::Working { .. } => "working",
        Activity::Exiting { .. } => "recycling",
        Activity::Stopping { .. } => "stopping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// `ccl status --json` is a contract scripts read: every field it has always had keeps
    /// its name and its place (alphabetical, as the JSON has always been ordered).
    #[test]
    fn the_json_keeps_every_field_in_its_order() {
        let text = "[daemon]\nstate_dir = \"/state\"\n[[account]]\nname = \"a\"\nhome = \"/homes/a\"\n\
                    [[account]]\nname = \"b\"\nhome = \"/homes/b\"\n[shared]\ntarget = \"/shared\"\n\
                    [pool]\nmin = 1\nmax = 1\nworkdir = \"/pool\"\n\
                    [[queue]]\nname = \"q\"\nproject = \"/nonexistent-project\"\n";
        let config = Config::parse(text, Path::new("/etc/ccl.toml"), None).unwrap();
        let mut state = State::fresh(&config, 7);
        state
            .sessions
            .insert("ccl-auto-11".into(), ccl_core::core::SessionState::new(Kind::Pool));
        let json = serde_json::to_string(&report(&config, Some(&state), Some(42), 0)).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            keys(&v),
            [
                "accounts",
                "active",
                "all_exhausted_until",
                "at",
                "cooldown_until",
                "daemon",
                "draining",
                "last_swap",
                "paused_all",
                "queues",
                "sessions",
                "swap",
                "swaps"
            ]
        );
        assert_eq!(
            keys(&v["accounts"][0]),
            [
                "active",
                "disabled",
                "exhausted_until",
                "home",
                "name",
                "reason",
                "unhealthy",
                "usage"
            ]
        );
        assert_eq!(
            keys(&v["sessions"][0]),
            [
                "account",
                "activity",
                "adopted",
                "attention",
                "branch",
                "conversation",
                "kind",
                "name",
                "signals",
                "state",
                "task",
                "worktree"
            ]
        );
        assert_eq!(
            keys(&v["queues"][0]),
            [
                "done",
                "failed",
                "held",
                "inbox",
                "isolation",
                "max_running",
                "name",
                "paused",
                "project",
                "renamed",
                "running"
            ]
        );
        assert_eq!(v["daemon"], serde_json::json!({"pid": 42, "running": true}));
        assert_eq!(v["sessions"][0]["kind"], "pool");
        // Field order in the text, not only the key set: a key out of place shows here.
        let at = |k: &str| json.find(&format!("\"{k}\":")).unwrap();
        assert!(at("accounts") < at("active") && at("queues") < at("sessions") && at("swap") < at("swaps"));
    }
}
