//! Real-tmux tier: a `claude.command` that is not named `claude` (issue 19). Operators
//! point it at wrapper scripts (`claude-work`, `cc`, an `npx` shim); a wrapper that does
//! not `exec` leaves its interpreter (`sh`) as the pane's foreground command, so the name
//! says nothing. ccl must still recognise the Claude it launched (by Claude's registry
//! entry and the pane's foreground process group), run tasks through it, and stop and
//! resume it on a swap.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::{BINS, FAKE_CLAUDE};
use ccl_testkit::fleet::{Fleet, FleetSpec};
use ccl_testkit::wait_until;

/// Writes `bin/NAME`: a shell wrapper that runs the fake Claude as a child (no `exec`).
fn wrapper(fleet: &Fleet, name: &str) -> String {
    let path = fleet.root.join("bin").join(name);
    fs::write(
        &path,
        format!("#!/bin/sh\n# a wrapper as operators write them\n{FAKE_CLAUDE} \"$@\"\n"),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn session(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["sessions"]
        .as_array()
        .and_then(|list| list.iter().find(|s| s["name"] == name))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_wrapper_with_another_name_runs_tasks_and_its_claude_is_stopped_and_resumed_on_a_swap() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        dedicated: vec!["ops".into()],
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "wrapper", spec);
    let claude_work = wrapper(&fleet, "claude-work");
    let link = fleet.root.join("bin/claude").display().to_string();
    fleet.write_config_edited("", &[(&link, &claude_work)]);

    // The operator's own Claude, started through the same wrapper.
    fleet.new_session("ops", &fleet.root.join("work/ops"));
    let line = format!(
        "CLAUDE_CONFIG_DIR={} FAKE_CLAUDE_LOG={} {claude_work} --dangerously-skip-permissions",
        fleet.home("a").display(),
        fleet.received_path.display(),
    );
    fleet.tmux(&["send-keys", "-t", "=ops:", "-l", &line]);
    fleet.tmux(&["send-keys", "-t", "=ops:", "Enter"]);
    let ops_id = wait_until("the operator's claude in its registry", Duration::from_secs(10), || {
        fleet.registry_conversation("a", "ops")
    });
    // The operator talks to it, so its conversation has a transcript to resume.
    wait_until("the operator's claude idle", Duration::from_secs(10), || {
        fleet.capture("ops").contains("bypass permissions on").then_some(())
    });
    fleet.tmux(&["send-keys", "-t", "=ops:", "-l", "hello from the operator"]);
    fleet.tmux(&["send-keys", "-t", "=ops:", "Enter"]);
    wait_until("the operator's prompt received", Duration::from_secs(10), || {
        fleet
            .received()
            .iter()
            .any(|r| r["text"] == "hello from the operator")
            .then_some(())
    });
    let ops_pane = fleet.pane_pid("ops").unwrap();
    assert_eq!(
        fleet.command_of("ops").as_deref(),
        Some("sh"),
        "the pane shows the wrapper's shell"
    );

    let task = fleet.enqueue("q", "a task through the wrapper");
    fleet.start(None);
    fleet.wait_done("q", 1, Duration::from_secs(30));
    let record = fleet.queue_dir("q", "done").join(format!("{task}.json"));
    wait_until("the task's record", Duration::from_secs(5), || {
        record.exists().then_some(())
    });
    let report = fleet.report("q", &task);
    assert_eq!(report["session"], "ccl-auto-11");
    let status = fleet.status();
    assert_eq!(session(&status, "ops")["state"], "idle", "{status:#}");
    assert_eq!(session(&status, "ops")["conversation"], ops_id.as_str(), "{status:#}");

    // A swap stops the operator's Claude (SIGTERM to Claude itself, under the wrapper)
    // and resumes its conversation under b in the same pane.
    let out = fleet.ccl_timeout(&["swap", "--to", "b"], Duration::from_secs(40));
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}\n{}", fleet.log());
    assert!(said.contains("swapped from a to b"), "{said}");
    wait_until("ops resumed under b", Duration::from_secs(20), || {
        (fleet.registry_conversation("b", "ops").as_deref() == Some(ops_id.as_str())).then_some(())
    });
    assert_eq!(
        fleet.pane_pid("ops"),
        Some(ops_pane),
        "the operator's session was not replaced"
    );
    fleet.stop();
}

#[test]
fn a_bare_claude_command_found_on_ccls_path_runs_even_where_a_login_shell_resets_path() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "bare-command", spec);
    // A name only ccl's own PATH has: the panes' login shells set PATH from the system
    // profile, as they do on a real machine for a claude installed under ~/.local/bin.
    let name = format!("ccl-test-claude-{}", std::process::id());
    let bin = fleet.root.join("mybin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(FAKE_CLAUDE, bin.join(&name)).unwrap();
    let link = fleet.root.join("bin/claude").display().to_string();
    fleet.write_config_edited("", &[(&link, &name)]);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let task = fleet.enqueue("q", "a task for a claude on ccl's PATH");
    fleet.start_with_env(None, &[("PATH", &path)]);
    fleet.wait_done("q", 1, Duration::from_secs(30));
    assert!(
        fleet
            .log()
            .contains(&format!("claude command: {}", bin.join(&name).display())),
        "the log says which claude runs:\n{}",
        fleet.log()
    );
    assert_eq!(fleet.tasks("q", "done"), vec![task]);
    fleet.stop();
}
