//! `ccl status`: what the fleet is doing, as one report. [`report`] gathers it from the
//! configuration, `state.json` and the queues (the stable `--json` shape: fields are only
//! ever added); [`render`] draws it for a terminal. The daemon, the command line and the
//! demo all show the fleet through this module.

pub mod render;

use serde_json::json;

use crate::adapters::queue;
use ccl_core::config::Config;
use ccl_core::core::{Activity, State};
use ccl_core::util;

pub use render::{render_status, terminal_size, terminal_width};

/// What `ccl status --json` prints; stable (fields are only ever added).
pub fn report(config: &Config, st: Option<&State>, daemon_pid: Option<u32>, now_ms: i64) -> serde_json::Value {
    let active = st
        .map(|s| s.active.clone())
        .unwrap_or_else(|| config.accounts[0].name.clone());
    let accounts: Vec<_> = config
        .accounts
        .iter()
        .map(|a| {
            let acc = st.and_then(|s| s.accounts.get(&a.name));
            let until = acc.and_then(|x| x.exhausted_until_ms).filter(|t| *t > now_ms);
            json!({
                "name": a.name,
                "home": a.home,
                "active": a.name == active,
                "exhausted_until": until.map(util::rfc3339),
                "reason": until.and(acc.and_then(|x| x.reason.clone())),
                "usage": acc.and_then(|x| x.usage.as_ref()).map(|u| usage_json(u, now_ms)),
                "unhealthy": acc.and_then(|x| x.unhealthy.clone()),
                "disabled": acc.is_some_and(|x| x.disabled),
            })
        })
        .collect();
    let sessions: Vec<_> = config
        .pool
        .names()
        .chain(config.dedicated.iter().map(|d| d.name.clone()))
        .filter_map(|name| {
            let s = st.and_then(|s| s.sessions.get(&name))?;
            Some(json!({
                "name": name,
                "kind": s.kind,
                "state": s.seen,
                "activity": activity_name(&s.activity),
                "account": s.account,
                "conversation": s.conversation,
                "task": s.assignment.as_ref().map(|a| a.task.to_string()),
                "attention": s.attention,
                "adopted": s.assignment.as_ref().and_then(|a| a.adopted.clone()),
                "worktree": s.assignment.as_ref().and_then(|a| a.worktree.as_ref()).map(|w| &w.path),
                "branch": s.assignment.as_ref().and_then(|a| a.worktree.as_ref()).map(|w| &w.branch),
                "signals": s.hooked,
            }))
        })
        .collect();
    let paused_all = st.is_some_and(|s| s.paused.all_paused());
    let queues: Vec<_> = config
        .queues
        .iter()
        .map(|q| {
            let c = queue::counts(q).unwrap_or_default();
            let renamed: Vec<_> = queue::renamed(q)
                .into_iter()
                .map(|r| json!({"dir": r.dir, "task": r.task, "from": r.from}))
                .collect();
            json!({
                "name": q.name,
                "project": q.project,
                "inbox": c.inbox, "running": c.running, "done": c.done, "failed": c.failed,
                "paused": st.is_some_and(|s| s.paused.is_paused(&q.name)),
                "held": st.map(|s| s.held.iter().filter(|(t, _)| t.queue == q.name).map(|(t, _)| t.task.clone()).collect::<Vec<_>>()).unwrap_or_default(),
                "renamed": renamed,
                "max_running": q.max_running,
                "isolation": q.isolation,
            })
        })
        .collect();
    let all_exhausted_until = st.filter(|s| s.all_exhausted).and_then(|s| {
        config
            .accounts
            .iter()
            .filter_map(|a| s.accounts.get(&a.name)?.exhausted_until_ms)
            .min()
    });
    json!({
        "daemon": {"running": daemon_pid.is_some(), "pid": daemon_pid},
        "active": active,
        "all_exhausted_until": all_exhausted_until.map(util::rfc3339),
        "draining": st.and_then(|s| s.draining.clone()),
        "paused_all": paused_all,
        "at": util::rfc3339(now_ms),
        "swap": st.and_then(|s| s.swap.as_ref()).map(|w| json!({"from": w.from, "to": w.to, "reason": w.reason, "started": util::rfc3339(w.started_ms)})),
        "last_swap": st.and_then(|s| s.last_swap.as_ref()).map(|w| json!({"from": w.from, "to": w.to, "reason": w.reason, "at": util::rfc3339(w.at_ms)})),
        "swaps": st.map(|s| s.swaps).unwrap_or(0),
        "cooldown_until": st.and_then(|s| s.cooldown_until_ms).filter(|t| *t > now_ms).map(util::rfc3339),
        "accounts": accounts,
        "sessions": sessions,
        "queues": queues,
    })
}

/// An account's meters as `status --json` shows them; a window whose reset has passed
/// is shown as unknown (null), as the daemon will treat it.
fn usage_json(u: &ccl_core::core::Usage, now_ms: i64) -> serde_json::Value {
    let window = |w: &Option<ccl_core::core::UsageWindow>| {
        w.as_ref()
            .filter(|w| w.resets_at_ms.is_none_or(|t| t > now_ms))
            .map(|w| json!({"used_pct": w.used_pct, "resets_at": w.resets_at_ms.map(util::rfc3339)}))
    };
    json!({
        "five_hour": window(&u.five_hour),
        "seven_day": window(&u.seven_day),
        "seen_at": util::rfc3339(u.seen_ms),
    })
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
