//! Real-tmux tier: tasks flow from the inbox through a pool session running the fake
//! Claude to `done/`, verbatim, and never into a dedicated session.
mod common;

use std::time::Duration;

use common::fleet::{Fleet, FleetSpec};

#[test]
fn a_nasty_task_arrives_verbatim_and_is_filed_done_while_the_operator_session_is_left_alone() {
    if !common::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        dedicated: vec!["ops".into()],
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new("queue-verbatim", spec);
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
    if !common::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new("queue-reused", spec);
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

    let received = fleet.received();
    for body in [monday, tuesday] {
        let n = received.iter().filter(|r| r["text"] == body).count();
        assert_eq!(n, 1, "{body:?} reached Claude {n} times: {received:#?}");
    }
}
