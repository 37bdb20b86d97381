//! Real-tmux tier: parallel work on one project. A queue without isolation never has two
//! tasks running at once, however many pool sessions are free; a queue with
//! `isolation = "worktree"` runs up to `max_running` tasks at once, each in a git
//! worktree and on a branch of its own, recorded in `done/`; a swap and a daemon restart
//! mid-task continue in the same worktree; a project that is not a git repository fails
//! its task with git's message; and `ccl worktrees prune` removes only the clean, merged
//! worktrees, saying why it kept each other one.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::BINS;
use ccl_testkit::fleet::{git, typed_into, Fleet, FleetSpec};
use ccl_testkit::wait_until;

const DEBUG: &[(&str, &str)] = &[("RUST_LOG", "debug")];

/// Polls until `n` tasks of `queue` are done, and returns the most tasks that were in
/// `running/` at once meanwhile.
fn most_running_until_done(fleet: &Fleet, queue: &str, n: usize, timeout: Duration) -> usize {
    let mut most = 0;
    wait_until(&format!("{n} tasks of {queue} done"), timeout, || {
        most = most.max(fleet.tasks(queue, "running").len());
        if fleet.tasks(queue, "done").len() >= n {
            Ok(())
        } else {
            Err(fleet.queue_listing(queue))
        }
    });
    most
}

/// The working directories the fake Claudes reported for prompts containing `needle`.
fn cwds_of(fleet: &Fleet, needle: &str) -> BTreeSet<String> {
    fleet
        .received()
        .iter()
        .filter(|r| r["text"].as_str().is_some_and(|t| t.contains(needle)))
        .filter_map(|r| r["cwd"].as_str().map(String::from))
        .collect()
}

/// `git worktree list` of a project: the paths, the main checkout first.
fn worktree_paths(project: &Path) -> Vec<PathBuf> {
    git(project, &["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree ").map(PathBuf::from))
        .collect()
}

#[test]
fn a_queue_without_isolation_never_runs_two_tasks_at_once() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 3,
        pool_max: 3,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "wt-serial", spec);
    for i in 1..=6 {
        fleet.enqueue_as("q", &format!("{i}.md"), &format!("serial task {i} [fake:work=700ms]"));
    }
    fleet.start(None);
    let most = most_running_until_done(&fleet, "q", 6, Duration::from_secs(120));
    assert_eq!(most, 1, "one task at a time in one checkout; log:\n{}", fleet.log());
    // Every prompt ran in the project's own checkout, one after the other.
    let project = fleet.project("q").to_string_lossy().into_owned();
    assert_eq!(cwds_of(&fleet, "serial task"), BTreeSet::from([project]));
    let status = fleet.status();
    assert_eq!(status["queues"][0]["max_running"], 1, "{status:#}");
    fleet.stop();
}

#[test]
fn a_worktree_queue_runs_three_at_once_each_in_its_own_worktree_and_branch() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 3,
        pool_max: 3,
        worktrees: true,
        max_running: Some(3),
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "wt-parallel", spec);
    let project = fleet.project("q");
    let base = git(&project, &["rev-parse", "HEAD"]);
    let tasks: Vec<String> = (1..=3)
        .map(|i| fleet.enqueue_as("q", &format!("{i}.md"), &format!("parallel task {i} [fake:work=5s]")))
        .collect();
    fleet.start(None);

    // All three at once, each shown with its worktree.
    let status = wait_until("three tasks working at once", Duration::from_secs(40), || {
        let status = fleet.status();
        let working = status["sessions"]
            .as_array()?
            .iter()
            .filter(|s| s["activity"] == "working" && !s["worktree"].is_null())
            .count();
        (working == 3).then_some(status)
    });
    assert_eq!(status["queues"][0]["max_running"], 3, "{status:#}");
    let shown: BTreeSet<&str> = status["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["worktree"].as_str())
        .collect();
    assert_eq!(shown.len(), 3, "three different worktrees: {status:#}");
    let table = String::from_utf8(fleet.ccl(&["status"], None).stdout).unwrap();
    assert!(table.contains("3/3"), "running/max per queue:\n{table}");
    for x in status["sessions"].as_array().unwrap() {
        if let Some(branch) = x["branch"].as_str() {
            let line = table
                .lines()
                .find(|l| l.contains(branch))
                .unwrap_or_else(|| panic!("the worktree of a running task is shown:\n{table}"));
            assert!(line.starts_with(x["name"].as_str().unwrap()), "{line}");
        }
    }

    fleet.wait_done("q", 3, Duration::from_secs(60));
    let mut paths = BTreeSet::new();
    for task in &tasks {
        let report = fleet.report("q", task);
        let wt = &report["worktree"];
        let path = wt["path"]
            .as_str()
            .unwrap_or_else(|| panic!("no worktree in {report:#}"));
        let stem = task.trim_end_matches(".md");
        assert_eq!(
            Path::new(path),
            project.join(".agent-queue/worktrees").join(stem),
            "{report:#}"
        );
        assert_eq!(wt["branch"], format!("ccl/{stem}"), "{report:#}");
        assert_eq!(wt["base"], base.as_str(), "{report:#}");
        assert_eq!(wt["commits_ahead"], 0, "{report:#}");
        assert_eq!(wt["clean"], true, "{report:#}");
        // Its prompt ran there, and the branch exists with the worktree checked out.
        let n = task.split('-').next_back().unwrap().trim_end_matches(".md");
        assert_eq!(
            cwds_of(&fleet, &format!("parallel task {n}")),
            BTreeSet::from([path.to_string()])
        );
        assert_eq!(
            git(Path::new(path), &["rev-parse", "--abbrev-ref", "HEAD"]),
            format!("ccl/{stem}")
        );
        paths.insert(path.to_string());
    }
    assert_eq!(paths.len(), 3);
    // `ccl show` finds a done task's transcript where its Claude ran: in its worktree.
    let shown = String::from_utf8(fleet.ccl(&["show", "q", &tasks[0]], None).stdout).unwrap();
    let line = shown
        .lines()
        .find(|l| l.trim_start().starts_with("transcript"))
        .unwrap_or_else(|| panic!("no transcript line:\n{shown}"));
    assert!(!line.contains("not there"), "{shown}");
    assert_eq!(worktree_paths(&project).len(), 4, "the checkout and three worktrees");
    // The project's own checkout stays clean: queue and worktrees are excluded locally.
    assert_eq!(
        git(&project, &["status", "--porcelain"]),
        "",
        "the project is not dirty"
    );
    fleet.stop();
}

#[test]
fn a_swap_and_a_restart_mid_task_continue_in_the_same_worktree() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    // Every turn of the fake Claude, the continue prompt's too, takes a while.
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        worktrees: true,
        work_ms: 6_000,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "wt-resume", spec);
    let task = fleet.enqueue("q", "a long task in its worktree");
    fleet.start_with_env(None, DEBUG);
    fleet.wait_log("ccl-auto-11: task submitted", Duration::from_secs(30));
    let worktree = fleet.status()["sessions"][0]["worktree"]
        .as_str()
        .expect("the running task's worktree")
        .to_string();

    fleet.set_limit("a", "five_hour 9:23am (UTC)");
    fleet.wait_log("swapped from a to b", Duration::from_secs(30));
    fleet.clear_limit("a");
    let at = fleet.log().len();
    fleet.wait_log_from(at, "ccl-auto-11: continue prompt submitted", Duration::from_secs(30));

    // The daemon restarts while the continued turn still works.
    fleet.stop();
    assert!(fleet.tasks("q", "done").is_empty(), "still running at the restart");
    fleet.start_with_env(None, DEBUG);
    fleet.wait_done("q", 1, Duration::from_secs(60));

    let report = fleet.report("q", &task);
    assert_eq!(report["worktree"]["path"], worktree.as_str(), "{report:#}");
    assert_eq!(report["account"], "b", "{report:#}");
    let launches: Vec<String> = typed_into(&fleet.log(), "ccl-auto-11")
        .into_iter()
        .filter(|l| l.contains("CLAUDE_CONFIG_DIR="))
        .collect();
    assert_eq!(
        launches.len(),
        2,
        "the start and the resume after the swap: {launches:#?}"
    );
    for l in &launches {
        assert!(
            l.starts_with(&format!("cd {worktree} ")),
            "launched in the worktree: {l}"
        );
    }
    let cwds: BTreeSet<String> = fleet
        .received()
        .iter()
        .filter(|r| r["text"] != "/exit")
        .filter_map(|r| r["cwd"].as_str().map(String::from))
        .collect();
    assert_eq!(
        cwds,
        BTreeSet::from([worktree.clone()]),
        "every prompt ran in the worktree"
    );
    assert_eq!(
        worktree_paths(&fleet.project("q")).len(),
        2,
        "one worktree, never a second"
    );
    fleet.stop();
}

#[test]
fn a_project_that_is_not_a_git_repository_fails_the_task_with_gits_message() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        worktrees: true,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "wt-norepo", spec);
    fs::remove_dir_all(fleet.project("q").join(".git")).unwrap();
    let task = fleet.enqueue("q", "a task for a project without git");
    fleet.start(None);
    let error_file = fleet.queue_dir("q", "failed").join(format!("{task}.error"));
    let error = wait_until("the task failed", Duration::from_secs(30), || {
        fs::read_to_string(&error_file).ok()
    });
    assert!(error.contains("not a git repository"), "{error}");
    assert!(
        fleet.received().is_empty(),
        "no Claude ran the task: {:#?}",
        fleet.received()
    );
    fleet.stop();
}

#[test]
fn prune_keeps_a_dirty_worktree_and_one_with_unmerged_commits_and_removes_a_clean_merged_one() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 3,
        pool_max: 3,
        worktrees: true,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "wt-prune", spec);
    let project = fleet.project("q");
    let tasks: Vec<String> = ["dirty", "unmerged", "merged"]
        .iter()
        .map(|h| fleet.enqueue_as("q", &format!("{h}.md"), &format!("task {h}")))
        .collect();
    fleet.start(None);
    fleet.wait_done("q", 3, Duration::from_secs(60));
    let path_of = |task: &str| PathBuf::from(fleet.report("q", task)["worktree"]["path"].as_str().unwrap());
    let (dirty, unmerged, merged) = (path_of(&tasks[0]), path_of(&tasks[1]), path_of(&tasks[2]));
    let branch_of = |p: &Path| git(p, &["rev-parse", "--abbrev-ref", "HEAD"]);
    let (unmerged_branch, merged_branch) = (branch_of(&unmerged), branch_of(&merged));
    // The agents' work, as a reviewer finds it.
    fs::write(dirty.join("notes.txt"), "not committed yet\n").unwrap();
    fs::write(unmerged.join("feature.txt"), "committed on the task branch\n").unwrap();
    git(&unmerged, &["add", "feature.txt"]);
    git(&unmerged, &["commit", "-q", "-m", "the task's work"]);
    // Sessions are back at their shells: nothing uses the worktrees any more.
    wait_until("every session recycled", Duration::from_secs(30), || {
        let status = fleet.status();
        status["sessions"]
            .as_array()?
            .iter()
            .all(|s| s["activity"] == "-" && s["state"] == "shell")
            .then_some(())
    });

    let listing = fleet.ccl(&["worktrees"], None);
    assert!(listing.status.success());
    let listing = String::from_utf8(listing.stdout).unwrap();
    for (p, state) in [
        (&dirty, "1 uncommitted change"),
        (&unmerged, "1 commit on no other branch"),
        (&merged, "clean, merged"),
    ] {
        let line = listing
            .lines()
            .find(|l| l.contains(&*p.to_string_lossy()))
            .unwrap_or_else(|| panic!("{} not listed:\n{listing}", p.display()));
        assert!(line.contains(state), "{line}");
    }

    let out = fleet.ccl(&["worktrees", "prune"], None);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("kept {} ", dirty.display())) && text.contains("1 uncommitted change"),
        "{text}"
    );
    assert!(
        text.contains(&format!("kept {} ", unmerged.display())) && text.contains("1 commit on no other branch"),
        "{text}"
    );
    assert!(text.contains(&format!("removed {}", merged.display())), "{text}");
    assert!(dirty.join("notes.txt").exists() && unmerged.join("feature.txt").exists());
    assert!(!merged.exists(), "the clean, merged worktree is gone");
    let branches = git(&project, &["branch", "--list", "ccl/*"]);
    assert!(!branches.contains(&merged_branch), "{branches}");
    assert!(branches.contains(&unmerged_branch), "{branches}");

    // Once its branch is merged, the second one goes too; the dirty one still stays.
    git(&project, &["merge", "-q", "--ff-only", &unmerged_branch]);
    let text = String::from_utf8(fleet.ccl(&["worktrees", "prune"], None).stdout).unwrap();
    assert!(text.contains(&format!("removed {}", unmerged.display())), "{text}");
    assert!(text.contains(&format!("kept {} ", dirty.display())), "{text}");
    assert!(dirty.join("notes.txt").exists());
    fleet.stop();
}
