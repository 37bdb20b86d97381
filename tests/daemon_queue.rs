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
