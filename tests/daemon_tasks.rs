//! Real-tmux tier: what did my task do (issue 19)? `ccl show` prints a done task's record
//! (session, account, times, conversation and its transcript) and a failed task's reason;
//! `ccl retry` puts a failed task back in the inbox and keeps its old reason, so a task
//! that fails again has both; hooks get the variables an operator needs.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::BINS;
use ccl_testkit::fleet::{Fleet, FleetSpec};
use ccl_testkit::wait_until;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `key:` in `ccl show` output.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}: in\n{text}"))
        .trim()
        .to_string()
}

/// A hook that writes its environment's `CCL_*` variables to `DIR/EVENT.PID`, whole: it
/// writes a dot file first and renames it, so a test that sees the file reads all of it.
fn env_hook(fleet: &Fleet) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = fleet.root.join("hook-env");
    fs::create_dir_all(&dir).unwrap();
    let script = fleet.root.join("hook.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv | grep '^CCL_' | sort > {d}/.part.$$ && mv {d}/.part.$$ {d}/$CCL_EVENT.$$\n",
            d = dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    (script, dir)
}

fn hook_vars(dir: &Path, event: &str) -> BTreeMap<String, String> {
    let file = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&format!("{event}.")))
        .unwrap_or_else(|| panic!("no {event} hook ran"));
    fs::read_to_string(file.path())
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn show_prints_a_tasks_record_retry_keeps_the_old_reason_and_hooks_get_the_facts() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "tasks-show", spec);
    let (script, hooks) = env_hook(&fleet);
    let s = script.display();
    fleet.write_config(&format!("[hooks]\non_task_done = \"{s}\"\non_task_failed = \"{s}\"\n"));
    let task = fleet.enqueue("q", "summarise the repository");
    fs::write(fleet.queue_dir("q", "inbox").join("empty.md"), b"").unwrap();
    fleet.start(None);
    fleet.wait_done("q", 1, Duration::from_secs(30));
    wait_until("the bad file failed", Duration::from_secs(10), || {
        fleet
            .queue_dir("q", "failed")
            .join("empty.md.error")
            .exists()
            .then_some(())
    });
    let record = fleet.queue_dir("q", "done").join(format!("{task}.json"));
    wait_until("the task's record", Duration::from_secs(5), || {
        record.exists().then_some(())
    });

    // A done task: its record, conversation and transcript.
    let out = fleet.ccl(&["show", "q", &task], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let report = fleet.report("q", &task);
    assert_eq!(field(&text, "state"), "done", "{text}");
    assert_eq!(field(&text, "session"), "ccl-auto-11", "{text}");
    assert_eq!(field(&text, "account"), "a", "{text}");
    assert_eq!(field(&text, "attempts"), "1", "{text}");
    assert_eq!(field(&text, "prompt"), "summarise the repository", "{text}");
    assert_eq!(
        field(&text, "conversation"),
        report["conversation"].as_str().unwrap(),
        "{text}"
    );
    let transcript = field(&text, "transcript");
    assert!(
        Path::new(&transcript).is_file(),
        "the transcript is where show says: {text}"
    );

    // Hooks: everything an operator's script needs, as paths that exist.
    wait_until("both hooks ran", Duration::from_secs(10), || {
        let whole = fs::read_dir(&hooks)
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count();
        (whole >= 2).then_some(())
    });
    let done = hook_vars(&hooks, "task_done");
    assert_eq!(done["CCL_ACCOUNT"], "a", "{done:?}");
    assert_eq!(done["CCL_CONVERSATION"], report["conversation"].as_str().unwrap());
    assert_eq!(done["CCL_TRANSCRIPT"], transcript);
    assert_eq!(done["CCL_PROJECT"], fleet.project("q").display().to_string());
    assert_eq!(done["CCL_RESULT_FILE"], record.display().to_string());
    assert_eq!(
        done["CCL_TASK_FILE"],
        fleet.queue_dir("q", "done").join(&task).display().to_string()
    );
    assert_eq!(done["CCL_ATTEMPTS"], "1");
    assert!(done["CCL_DURATION_S"].parse::<u64>().is_ok(), "{done:?}");
    let failed = hook_vars(&hooks, "task_failed");
    assert_eq!(
        failed["CCL_ERROR_FILE"],
        fleet
            .queue_dir("q", "failed")
            .join("empty.md.error")
            .display()
            .to_string()
    );
    assert_eq!(failed["CCL_PROJECT"], fleet.project("q").display().to_string());

    // A failed task: its reason, and how to retry it.
    let text = stdout(&fleet.ccl(&["show", "q", "empty.md"], None));
    assert_eq!(field(&text, "state"), "failed", "{text}");
    assert_eq!(field(&text, "error"), "empty task", "{text}");

    // Retry while the daemon runs: it fails again (it is still empty), and both reasons
    // are there, the old one kept aside, none overwritten.
    let out = fleet.ccl(&["retry", "q", "empty.md"], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("back in the inbox"), "{}", stdout(&out));
    let kept = fleet.queue_dir("q", "failed").join(".empty.md.error.1");
    assert_eq!(fs::read_to_string(&kept).unwrap(), "empty task\n");
    wait_until("the retried task failed again", Duration::from_secs(10), || {
        fleet
            .queue_dir("q", "failed")
            .join("empty.md.error")
            .exists()
            .then_some(())
    });
    let text = stdout(&fleet.ccl(&["show", "q", "empty.md"], None));
    assert_eq!(
        field(&text, "failed before"),
        "empty task (.empty.md.error.1)",
        "{text}"
    );
    assert_eq!(
        fleet.tasks("q", "failed"),
        vec!["empty.md".to_string()],
        "history is not a task"
    );
    assert_eq!(fleet.status()["queues"][0]["failed"], 1);

    // Only a failed task can be retried; an unknown one is an error.
    let out = fleet.ccl(&["retry", "q", &task], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only a failed task can be retried"));
    let out = fleet.ccl(&["show", "q", "nope.md"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        fleet.queue_dir("q", "done").join(&task).exists(),
        "the done task stayed"
    );
    fleet.stop();
}
