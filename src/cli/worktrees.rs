//! `ccl worktrees [prune]`: the task worktrees of isolated queues, and removing those
//! that hold no work (the rule is `adapters::worktree::keep_reason`).

use std::io::Write;

use anyhow::Result;

use crate::adapters::worktree;
use ccl_core::config::Config;
use ccl_core::core::State;

/// `ccl worktrees`: one line per task worktree with its state.
pub fn list(config: &Config, state: Option<&State>, out: &mut dyn Write) -> Result<bool> {
    let listed = worktree::list(config);
    if listed.is_empty() {
        writeln!(out, "no task worktrees")?;
        return Ok(true);
    }
    let mut rows = vec![["QUEUE", "BRANCH", "STATE", "PATH"].map(String::from).to_vec()];
    for w in &listed {
        let state_text = match worktree::keep_reason(config, w, state) {
            None => "clean, merged (prune removes it)".to_string(),
            Some(why) => why,
        };
        rows.push(vec![
            w.queue.clone(),
            w.branch.clone().unwrap_or_else(|| "-".into()),
            state_text,
            w.path.display().to_string(),
        ]);
    }
    write!(out, "{}", crate::status::render::table(&rows))?;
    Ok(true)
}

/// `ccl worktrees prune`: removes every clean, merged task worktree no session uses, and
/// its branch; says for every other one why it was kept. Exit 1 when a removal failed.
pub fn prune(config: &Config, state: Option<&State>, out: &mut dyn Write) -> Result<bool> {
    let mut ok = true;
    let listed = worktree::list(config);
    if listed.is_empty() {
        writeln!(out, "no task worktrees")?;
    }
    for w in &listed {
        let branch = w.branch.clone().unwrap_or_else(|| "-".into());
        if let Some(why) = worktree::keep_reason(config, w, state) {
            writeln!(out, "kept {} ({branch}): {why}", w.path.display())?;
            continue;
        }
        let Some(project) = config.queue(&w.queue).map(|q| q.project.clone()) else {
            continue;
        };
        // Without --force, git itself refuses a worktree with changes.
        match worktree::remove(&project, &w.path, &branch) {
            Ok(()) => writeln!(out, "removed {} and its branch {branch}", w.path.display())?,
            Err(e) => {
                ok = false;
                writeln!(out, "kept {} ({branch}): {e:#}", w.path.display())?;
            }
        }
    }
    Ok(ok)
}
