//! The real-client tier for worktree queues: a task of a queue with `isolation =
//! "worktree"` runs in the real Claude Code (the pinned 2.1.328) in its own git worktree
//! under the trusted project, and completes there without the client ever stopping at
//! its folder-trust question (a subdirectory of a trusted project is trusted). Gated by
//! `CCL_TEST_TMUX=1 CCL_TEST_CLAUDE=1` (see `ccl_testkit::real`).

use std::path::Path;

use crate::BINS;
use ccl_testkit::fleet::{git, FleetSpec};
use ccl_testkit::real::{claude_bin, token, RealFleet, WAIT};

#[test]
fn a_worktree_task_completes_on_the_real_client_without_a_trust_stop() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        worktrees: true,
        ..Default::default()
    };
    let mut fleet = RealFleet::new(BINS, "real-worktree", spec, bin);
    let project = fleet.project("q");
    let body = "Describe this repository in one line";
    let task = fleet.enqueue("q", body);
    fleet.start(None);
    fleet.wait_done("q", 1, WAIT);
    fleet.stop();

    let report = fleet.report("q", &task);
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
    assert_eq!(wt["clean"], true, "{report:#}");
    assert_eq!(
        git(Path::new(path), &["rev-parse", "--abbrev-ref", "HEAD"]),
        format!("ccl/{stem}")
    );

    // The task went out once, from the conversation the record names, under account a.
    let seen = fleet.wait_request("the task", |r| r.last_user_text.as_deref() == Some(body));
    assert_eq!(seen.token, token("a"));
    assert_eq!(
        report["conversation"].as_str(),
        seen.conversation.as_deref(),
        "{report:#}"
    );
    // Claude ran in the worktree: its transcript is filed under the worktree's directory.
    let slug = ccl_core::transcript::project_slug(Path::new(path));
    let transcript = fleet
        .root
        .join("shared/projects")
        .join(&slug)
        .join(format!("{}.jsonl", seen.conversation.as_deref().unwrap()));
    // Stop can fire before Claude has written its transcript: wait for the file.
    ccl_testkit::wait_until(
        &format!("a transcript at {}", transcript.display()),
        std::time::Duration::from_secs(10),
        || transcript.is_file().then_some(()),
    );
    // And it never stopped at a screen needing the operator (the trust question).
    let log = fleet.log();
    assert!(!log.contains("needs attention"), "{log}");
    assert!(!log.contains("Quick safety check"), "{log}");
}
