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
    let ops_id = fleet.start_claude_by_hand("ops", "a", &fleet.root.join("work/ops"));
    let ops_pid = fleet.pane_pid("ops").unwrap();
    let body = "-leading dash; then `backticks` $HOME \"double\" 'single' é ✓ 日本\nsecond line ends with;\n";
    let name = fleet.enqueue("q", body);
    fleet.start(None);
    fleet.wait_done("q", 1, Duration::from_secs(30));
    fleet.stop();

    assert_eq!(fleet.tasks("q", "done"), vec![name.clone()]);
    assert!(fleet.tasks("q", "running").is_empty() && fleet.tasks("q", "inbox").is_empty());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fleet.queue_dir("q", "done").join(format!("{name}.json"))).unwrap())
            .unwrap();
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
    assert!(
        received.iter().all(|r| r["sessionId"] != ops_id.as_str()),
        "nothing was typed into the operator's Claude: {received:#?}"
    );
    assert_eq!(
        fleet.pane_pid("ops"),
        Some(ops_pid),
        "the operator's session was not recreated"
    );
    assert_eq!(
        fleet.command_of("ops").as_deref(),
        Some("claude"),
        "the operator's Claude still runs"
    );
}
