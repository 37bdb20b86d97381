//! Real-tmux tier: tasks flow from the inbox through a pool session running the fake
//! Claude to `done/`, verbatim, and never into a dedicated session.

use std::time::Duration;

use crate::BINS;
use ccl_testkit::fleet::{Fleet, FleetSpec};

#[test]
fn a_nasty_task_arrives_verbatim_and_is_filed_done_while_the_operator_session_is_left_alone() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        dedicated: vec!["ops".into()],
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "queue-verbatim", spec);
    let operator = fleet.start_operator();
    let body = "-leading dash; then `backticks` $HOME \"double\" 'single' é ✓ 日本\nsecond line ends with;\n";
    let name = fleet.enqueue("q", body);
    fleet.start(None);
    fleet.wait_done("q", 1, Duration::from_secs(30));
    fleet.stop();

    assert_eq!(fleet.tasks("q", "done"), vec![name.clone()]);
    assert!(fleet.tasks("q", "running").is_empty() && fleet.tasks("q", "inbox").is_empty());
    let report = fleet.report("q", &name);
    assert_eq!(report["session"], "ccl-auto-11");
    assert_eq!(report["account"], "a");

    let received = fleet.received();
    let task: Vec<_> = received.iter().filter(|r| r["text"] == body).collect();
    assert_eq!(
        task.len(),
        1,
        "the task reached Claude exactly once, verbatim: {received:#?}"
    );
    assert_eq!(task[0]["cwd"], fleet.project("q").to_string_lossy().as_ref());
    fleet.assert_left_alone(&operator);
}

/// Writes `body` into the inbox as `name` the fast way: elsewhere first, then renamed in.
fn drop_task(fleet: &Fleet, queue: &str, name: &str, body: &str) {
    std::fs::create_dir_all(fleet.queue_dir(queue, "inbox")).unwrap();
    let tmp = fleet.queue_dir(queue, "inbox").join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, fleet.queue_dir(queue, "inbox").join(name)).unwrap();
}

#[test]
fn a_reused_name_runs_once_and_is_filed_next_to_the_earlier_record() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "queue-reused", spec);
    // A nightly script drops the same name every night.
    let monday = "monday: make the failing tests pass\n";
    let tuesday = "tuesday: make the failing tests pass\n";
    drop_task(&fleet, "q", "fix-tests.md", monday);
    fleet.start_with_env(None, &[("RUST_LOG", "debug")]);
    fleet.wait_done("q", 1, Duration::from_secs(30));
    drop_task(&fleet, "q", "fix-tests.md", tuesday);
    fleet.wait_done("q", 2, Duration::from_secs(30));
    // A restart finds nothing left to run.
    fleet.stop();
    fleet.start_with_env(None, &[("RUST_LOG", "debug")]);
    fleet.wait_turns(4, Duration::from_secs(30));
    fleet.stop();

    assert_eq!(fleet.tasks("q", "done"), ["fix-tests-2.md", "fix-tests.md"]);
    assert!(fleet.tasks("q", "running").is_empty() && fleet.tasks("q", "inbox").is_empty());
    let first = fleet.report("q", "fix-tests.md");
    let second = fleet.report("q", "fix-tests-2.md");
    assert_eq!(first.get("renamed_from"), None, "{first}");
    assert_eq!(second["renamed_from"], "fix-tests.md", "{second}");
    assert_eq!(
        std::fs::read_to_string(fleet.queue_dir("q", "done").join("fix-tests.md")).unwrap(),
        monday
    );
    assert_eq!(
        std::fs::read_to_string(fleet.queue_dir("q", "done").join("fix-tests-2.md")).unwrap(),
        tuesday
    );
    let log = fleet.log();
    assert!(log.contains("filed as done/fix-tests-2.md"), "{log}");
    let status = fleet.status();
    assert_eq!(
        status["queues"][0]["renamed"],
        serde_json::json!([{"dir": "done", "task": "fix-tests-2.md", "from": "fix-tests.md"}]),
        "{status}"
    );
    let table = fleet.ccl(&["status"], None);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("renamed: q/done/fix-tests-2.md (its own name fix-tests.md was taken)"),
        "{table}"
    );

    let received = fleet.received();
    for body in [monday, tuesday] {
        let n = received.iter().filter(|r| r["text"] == body).count();
        assert_eq!(n, 1, "{body:?} reached Claude {n} times: {received:#?}");
    }
}

#[test]
fn a_claim_that_cannot_work_is_reported_once_with_its_cause_and_check_finds_it() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "queue-exdev", spec);
    // The inbox on another file system than running/: a tmpfs, through a symlink.
    let Ok(elsewhere) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("skipped: no /dev/shm");
        return;
    };
    let dev = |p: &std::path::Path| std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(p).unwrap());
    if dev(elsewhere.path()) == dev(&fleet.project("q")) {
        eprintln!("skipped: /dev/shm is not a separate file system here");
        return;
    }
    for state in ["running", "done", "failed"] {
        std::fs::create_dir_all(fleet.queue_dir("q", state)).unwrap();
    }
    std::os::unix::fs::symlink(elsewhere.path(), fleet.queue_dir("q", "inbox")).unwrap();
    std::fs::write(elsewhere.path().join("a.md"), "a task that cannot be claimed\n").unwrap();

    let check = fleet.ccl(&["check"], None);
    let said = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{said}");
    assert!(said.contains("are on different file systems"), "{said}");

    fleet.start_with_env(None, &[("RUST_LOG", "debug")]);
    fleet.wait_log("Invalid cross-device link", Duration::from_secs(30));
    fleet.wait_turns(15, Duration::from_secs(30));
    fleet.stop();
    let log = fleet.log();
    let told = log
        .lines()
        .filter(|l| l.contains("queue q: cannot claim q/a.md"))
        .count();
    assert_eq!(told, 1, "{log}");
    assert!(!log.contains("taken elsewhere"), "{log}");
    assert!(fleet.received().is_empty());
    assert!(elsewhere.path().join("a.md").is_file());
}

#[test]
fn bad_files_that_could_not_be_filed_are_filed_once_and_hooked_once() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "queue-bad-once", spec);
    let hooked = fleet.queue_dir("q", "").parent().unwrap().join("hooked.txt");
    fleet.write_config(&format!(
        "[hooks]\non_task_failed = 'printf \"%s\\n\" \"$CCL_TASK\" >> {}'\n",
        hooked.display()
    ));
    for state in ["inbox", "failed"] {
        std::fs::create_dir_all(fleet.queue_dir("q", state)).unwrap();
    }
    // A name so long that NAME.error would not fit in a file name.
    let long = format!("{}.md", "l".repeat(249));
    std::fs::write(fleet.queue_dir("q", "inbox").join(&long), "a task with a long name\n").unwrap();
    // A bad name used before: failed/empty.md is last week's.
    std::fs::write(fleet.queue_dir("q", "failed").join("empty.md"), "").unwrap();
    std::fs::write(fleet.queue_dir("q", "failed").join("empty.md.error"), "empty task\n").unwrap();
    std::fs::write(fleet.queue_dir("q", "inbox").join("empty.md"), "").unwrap();

    fleet.start_with_env(None, &[("RUST_LOG", "debug")]);
    ccl_testkit::wait_until("both bad files filed", Duration::from_secs(30), || {
        (fleet.tasks("q", "failed").len() == 3).then_some(())
    });
    fleet.wait_turns(15, Duration::from_secs(30));
    fleet.stop();

    assert!(fleet.tasks("q", "inbox").is_empty());
    let failed = fleet.tasks("q", "failed");
    assert!(failed.contains(&"empty-2.md".to_string()), "{failed:?}");
    assert_eq!(
        std::fs::read_to_string(fleet.queue_dir("q", "failed").join("empty.md.error")).unwrap(),
        "empty task\n"
    );
    let short = failed
        .iter()
        .find(|n| n.starts_with("lll"))
        .expect("the long name filed");
    let why = std::fs::read_to_string(fleet.queue_dir("q", "failed").join(format!("{short}.error"))).unwrap();
    assert!(why.contains(&format!("renamed from {long}")), "{why}");

    let log = fleet.log();
    let filings = log.lines().filter(|l| l.contains("failed from inbox")).count();
    assert_eq!(filings, 2, "{log}");
    let hooks = std::fs::read_to_string(&hooked).unwrap_or_default();
    let mut lines: Vec<&str> = hooks.lines().collect();
    lines.sort();
    assert_eq!(lines, ["empty.md", long.as_str()], "{hooks}");
}

/// A task body that is a slash command never reaches Claude unless its queue allows
/// them: `/logout` (which logs the whole account out on the real client) goes to
/// `failed/` saying why. Where a queue does allow them, a `/exit` task ends Claude's
/// session: it is filed to `failed/` once, saying so, and not retried as a crash.
#[test]
fn slash_command_tasks_are_refused_and_one_that_exits_claude_is_not_retried() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        queues: vec!["q".into(), "slashy".into()],
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "queue-slash", spec);
    fleet.write_config_edited(
        "",
        &[("name = \"slashy\"\n", "name = \"slashy\"\nslash_commands = true\n")],
    );
    let logout = fleet.enqueue("q", "\n  /logout\n");
    let exit = fleet.enqueue("slashy", "/exit");
    fleet.start(None);
    let error_of = |queue: &str, name: &str| {
        std::fs::read_to_string(fleet.queue_dir(queue, "failed").join(format!("{name}.error"))).ok()
    };
    let (refused, exited) = ccl_testkit::wait_until("both tasks in failed/", Duration::from_secs(40), || {
        Some((error_of("q", &logout)?, error_of("slashy", &exit)?))
    });
    fleet.stop();
    assert!(refused.contains("slash command"), "{refused}");
    assert!(exited.contains("claude exited normally"), "{exited}");
    let received = fleet.received();
    assert!(
        !received
            .iter()
            .any(|r| r["text"].as_str().is_some_and(|t| t.contains("/logout"))),
        "{received:#?}"
    );
    let exits = received.iter().filter(|r| r["text"] == "/exit").count();
    assert_eq!(exits, 1, "the /exit task ran once, not retried: {received:#?}");
}
