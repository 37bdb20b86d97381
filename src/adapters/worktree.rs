//! Git worktrees for isolated queues (`isolation = "worktree"`), the shell's side: making
//! a task's worktree (`git worktree add` on a new branch `ccl/NAME` from the project's
//! `HEAD`), reading a worktree's state (commits ahead of its base, clean or not, merged or
//! not), and what `ccl worktrees [prune]` may remove. Which task gets a worktree, and when, is decided by
//! the core; the outcome reaches it through the next observation.
//!
//! Its rules: a worktree is never reused — a name whose branch or directory exists is
//! passed over for the next free `NAME-N` — and never removed while it holds work: prune
//! removes only a worktree that no session uses, that is not locked, whose tree is clean
//! (no changed or untracked file) and whose every commit is also on a branch outside
//! `ccl/`, and it removes it with git's own non-forcing commands, which refuse a dirty
//! tree once more. Every git failure carries git's message.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use ccl_core::config::{Config, Isolation, Queue};
use ccl_core::core::{Activity, State, Worktree};
use ccl_core::names::QueueName;

/// Branches ccl makes live under this prefix; they never count as "another branch"
/// when deciding whether a worktree's commits are safe elsewhere.
use ccl_core::dispatch::BRANCH_PREFIX;

/// Names tried (`NAME`, `NAME-2`, …) before giving up on finding a free one.
const MAX_NAME_ATTEMPTS: u32 = 1000;

/// Runs `git ARGS` in `dir`; stdout (trimmed) or an error with git's own message.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run git in {}", dir.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let msg = err
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        bail!(
            "git {} failed in {}: {}",
            args.first().copied().unwrap_or(""),
            dir.display(),
            if msg.is_empty() {
                format!("exit status {}", out.status)
            } else {
                msg
            }
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether `git ARGS` succeeds in `dir` (for questions git answers by exit status).
fn git_ok(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes the worktree of one task: branch `ccl/NAME` (or the first free `NAME-N`) from
/// the project's current `HEAD`, checked out in `worktree_dir/NAME`.
pub fn add(q: &Queue, name: &str) -> Result<Worktree> {
    let base = git(&q.project, &["rev-parse", "--verify", "HEAD^{commit}"])?;
    fs::create_dir_all(&q.worktree_dir)
        .with_context(|| format!("queue '{}': cannot create {}", q.name, q.worktree_dir.display()))?;
    exclude_from_project(q)?;
    for n in 1..=MAX_NAME_ATTEMPTS {
        let candidate = if n == 1 {
            name.to_string()
        } else {
            format!("{name}-{n}")
        };
        let path = q.worktree_dir.join(&candidate);
        let branch = format!("{BRANCH_PREFIX}{candidate}");
        let taken = fs::symlink_metadata(&path).is_ok()
            || git_ok(
                &q.project,
                &["show-ref", "--verify", "--quiet", &format!("refs/heads/{branch}")],
            );
        if taken {
            continue;
        }
        let path_arg = path.to_string_lossy().into_owned();
        git(&q.project, &["worktree", "add", "-b", &branch, &path_arg, &base])?;
        return Ok(Worktree { path, branch, base });
    }
    bail!(
        "queue '{}': no free worktree name for {name} in {} after {MAX_NAME_ATTEMPTS} attempts",
        q.name,
        q.worktree_dir.display()
    )
}

/// Keeps ccl's files out of the project's own `git status` (and out of an agent's
/// `git add -A` there): the queue's `.agent-queue/` and, when it lies elsewhere in the
/// checkout, `worktree_dir` are added (once) to the repository's `info/exclude`, which
/// is local to the clone and never committed.
fn exclude_from_project(q: &Queue) -> Result<()> {
    let top = PathBuf::from(git(&q.project, &["rev-parse", "--show-toplevel"])?);
    let top = top.canonicalize().unwrap_or(top);
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let queue_root = canonical(&q.project.join(".agent-queue"));
    let worktrees = canonical(&q.worktree_dir);
    let mut patterns = Vec::new();
    for dir in [&queue_root, &worktrees] {
        if dir != &queue_root && dir.starts_with(&queue_root) {
            continue;
        }
        if let Ok(relative) = dir.strip_prefix(&top) {
            patterns.push(format!("/{}/", relative.to_string_lossy()));
        }
    }
    if patterns.is_empty() {
        return Ok(());
    }
    let common = PathBuf::from(git(&q.project, &["rev-parse", "--git-common-dir"])?);
    let common = if common.is_absolute() {
        common
    } else {
        q.project.join(common)
    };
    let exclude = common.join("info").join("exclude");
    let existing = fs::read_to_string(&exclude).unwrap_or_default();
    let missing: Vec<&String> = patterns
        .iter()
        .filter(|p| !existing.lines().any(|l| l.trim() == p.as_str()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let info = common.join("info");
    fs::create_dir_all(&info).with_context(|| format!("cannot create {}", info.display()))?;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&exclude)
        .with_context(|| format!("cannot open {}", exclude.display()))?;
    let mut text = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# task queue and worktrees of ccl\n");
    for p in missing {
        text.push_str(p);
        text.push('\n');
    }
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", exclude.display()))
}

/// What a worktree holds that is not safe elsewhere yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Lines of `git status --porcelain` (changed, staged or untracked files).
    pub changes: usize,
    /// Commits of its branch that no branch outside `ccl/` has.
    pub unmerged: usize,
}

impl Inspection {
    pub fn clean(&self) -> bool {
        self.changes == 0
    }
}

/// Commits on `base..branch`: the task's own commits. With the base unknown (a task
/// adopted after `state.json` was lost), its commits on no branch outside `ccl/`.
pub fn commits_ahead(project: &Path, wt: &Worktree) -> Result<usize> {
    if wt.base.is_empty() {
        return unmerged_commits(project, &wt.branch);
    }
    let range = format!("{}..{}", wt.base, wt.branch);
    let n = git(project, &["rev-list", "--count", &range])?;
    n.parse().with_context(|| format!("git rev-list gave {n:?}"))
}

/// Changed files in the worktree at `path`, and commits of `branch` on no other branch.
pub fn inspect(project: &Path, path: &Path, branch: &str) -> Result<Inspection> {
    let status = git(path, &["status", "--porcelain"])?;
    let changes = status.lines().filter(|l| !l.trim().is_empty()).count();
    let unmerged = unmerged_commits(project, branch)?;
    Ok(Inspection { changes, unmerged })
}

/// Commits reachable from `branch` and from no local branch outside `ccl/`.
fn unmerged_commits(project: &Path, branch: &str) -> Result<usize> {
    let heads = git(project, &["for-each-ref", "--format=%(refname)", "refs/heads/"])?;
    let mut args: Vec<String> = vec!["rev-list".into(), "--count".into(), format!("refs/heads/{branch}")];
    let others: Vec<&str> = heads
        .lines()
        .filter(|r| !r.starts_with(&format!("refs/heads/{BRANCH_PREFIX}")))
        .collect();
    if !others.is_empty() {
        args.push("--not".into());
        args.extend(others.iter().map(|r| r.to_string()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let n = git(project, &args)?;
    n.parse().with_context(|| format!("git rev-list gave {n:?}"))
}

/// The `done/NAME.json` record of a task's worktree: where, which branch from which base,
/// how many commits it made and whether it left changes uncommitted.
pub fn record(project: &Path, wt: &Worktree) -> serde_json::Value {
    let ahead = commits_ahead(project, wt);
    let clean = git(&wt.path, &["status", "--porcelain"]).map(|s| s.trim().is_empty());
    let mut v = serde_json::json!({
        "path": wt.path,
        "branch": wt.branch,
        "base": wt.base,
        "commits_ahead": ahead.as_ref().ok(),
        "clean": clean.as_ref().ok(),
    });
    // A record is still written when git cannot answer; it says why instead.
    let errors: Vec<String> = [ahead.err(), clean.err()]
        .into_iter()
        .flatten()
        .map(|e| format!("{e:#}"))
        .collect();
    if !errors.is_empty() {
        v["error"] = serde_json::json!(errors.join("; "));
    }
    v
}

// ---------------------------------------------------------------------------------------
// `ccl worktrees [prune]`

/// One task worktree as `git worktree list` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub queue: String,
    pub path: PathBuf,
    pub branch: Option<String>,
    pub locked: bool,
    /// Its directory is gone (git calls it prunable).
    pub missing: bool,
}

/// The worktrees of every queue's `worktree_dir`, from `git worktree list --porcelain`.
/// A queue whose project is not a git repository, or has no worktree there, has none.
pub fn list(config: &Config) -> Vec<Listed> {
    let mut out = Vec::new();
    for q in &config.queues {
        if q.isolation != Isolation::Worktree && !q.worktree_dir.is_dir() {
            continue;
        }
        let Ok(text) = git(&q.project, &["worktree", "list", "--porcelain"]) else {
            continue;
        };
        let dir = q.worktree_dir.canonicalize().unwrap_or_else(|_| q.worktree_dir.clone());
        for block in text.split("\n\n") {
            let mut path = None;
            let mut branch = None;
            let (mut locked, mut missing) = (false, false);
            for line in block.lines() {
                if let Some(p) = line.strip_prefix("worktree ") {
                    path = Some(PathBuf::from(p));
                } else if let Some(b) = line.strip_prefix("branch refs/heads/") {
                    branch = Some(b.to_string());
                } else if line == "locked" || line.starts_with("locked ") {
                    locked = true;
                } else if line == "prunable" || line.starts_with("prunable ") {
                    missing = true;
                }
            }
            let Some(path) = path else { continue };
            let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
            if !canonical.starts_with(&dir) && !path.starts_with(&q.worktree_dir) {
                continue;
            }
            out.push(Listed {
                queue: q.name.to_string(),
                path,
                branch,
                locked,
                missing: missing || !canonical.is_dir(),
            });
        }
    }
    out
}

/// Worktrees a session of the daemon uses (its task's, or where its Claude runs), and the
/// names of tasks still waiting for theirs: a worktree of such a task may have been made
/// just now, before the daemon could record it.
fn in_use(state: Option<&State>) -> (BTreeSet<PathBuf>, Vec<(QueueName, String)>) {
    let mut paths = BTreeSet::new();
    let mut preparing = Vec::new();
    for s in state.iter().flat_map(|st| st.sessions.values()) {
        if let Some(a) = &s.assignment {
            if let Some(wt) = &a.worktree {
                paths.insert(wt.path.clone());
            }
            if matches!(s.activity, Activity::Preparing { .. }) || a.worktree.is_none() {
                preparing.push((a.task.queue.clone(), ccl_core::dispatch::worktree_name(&a.task.task)));
            }
        }
        if let Some(cwd) = &s.cwd {
            paths.insert(cwd.clone());
        }
    }
    (paths, preparing)
}

/// Why a worktree must stay, or None when prune may remove it.
/// Why `w` must stay (work in it, a session using it, changes, unmerged commits); `None`
/// when prune may remove it.
pub fn keep_reason(config: &Config, w: &Listed, state: Option<&State>) -> Option<String> {
    let (paths, preparing) = in_use(state);
    if paths.iter().any(|p| p == &w.path || p.starts_with(&w.path)) {
        return Some("in use by a running task".into());
    }
    let dir_name = w.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if preparing
        .iter()
        .any(|(q, name)| *q == w.queue && (dir_name == name || dir_name.starts_with(&format!("{name}-"))))
    {
        return Some("its task is starting".into());
    }
    if w.locked {
        return Some("locked (git worktree unlock to release it)".into());
    }
    if w.missing {
        return Some("its directory is missing (git worktree prune cleans up after it)".into());
    }
    let Some(branch) = &w.branch else {
        return Some("detached HEAD: its commits are on no branch".into());
    };
    let project = &config.queue(&w.queue)?.project;
    match inspect(project, &w.path, branch) {
        Err(e) => Some(format!("cannot read its state: {e:#}")),
        Ok(i) if !i.clean() => Some(format!("{} uncommitted change{}", i.changes, plural(i.changes))),
        Ok(i) if i.unmerged > 0 => Some(format!(
            "{} commit{} on no other branch",
            i.unmerged,
            plural(i.unmerged)
        )),
        Ok(_) => None,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Removes the worktree at `path` of `project` and its branch, with git's own
/// non-forcing commands: git refuses a worktree with changes once more.
pub fn remove(project: &Path, path: &Path, branch: &str) -> Result<()> {
    let path_arg = path.to_string_lossy().into_owned();
    git(project, &["worktree", "remove", &path_arg])?;
    git(project, &["branch", "-D", branch]).map(|_| ())
}
