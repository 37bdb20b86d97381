//! Text ccl did not type, with real tmux and the fake Claude: ccl presses Enter only on
//! its own text in an empty input box or command line. An operator's half-typed command
//! at a pool session's shell is never run (the task waits, the session needs attention
//! until the line is empty again); an operator's draft in a pool Claude's box is never
//! submitted with the `/exit` that recycles it; a dedicated session's draft survives a
//! swap, typed back into the resumed conversation's box and never sent. ccl's own paste,
//! cut off from its Enter by a crash that lost `state.json`, is not taken for a draft.
//!
//! All need `CCL_TEST_TMUX=1`.

use std::time::Duration;

use crate::BINS;
use ccl_testkit::fleet::{Fleet, FleetSpec};
use ccl_testkit::wait_until;

/// `wait_turns` reads the turn lines a debug log writes.
const DEBUG: &[(&str, &str)] = &[("RUST_LOG", "debug")];

/// Types `text` into `session`'s pane as keystrokes, without Enter, as an operator would.
fn operator_types(fleet: &Fleet, session: &str, text: &str) {
    fleet.tmux(&["send-keys", "-t", &format!("={session}:"), "-l", text]);
}

fn one_pool_session(tag: &str, work_ms: u64) -> Fleet {
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        work_ms,
        ..Default::default()
    };
    Fleet::new(BINS, tag, spec)
}

#[test]
fn a_command_half_typed_at_a_pool_shell_is_never_run() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let mut fleet = one_pool_session("draft-shell", 600);
    fleet.start_with_env(None, DEBUG);
    wait_until("ccl-auto-11 at its shell", Duration::from_secs(20), || {
        let s = fleet.status();
        let pool = s["sessions"]
            .as_array()?
            .iter()
            .find(|x| x["name"] == "ccl-auto-11")?
            .clone();
        (pool["state"] == "shell").then_some(())
    });
    fleet.wait_turns(3, Duration::from_secs(10));

    // The operator starts a command at the pool session's shell and walks away. It ends
    // in '#', as a root prompt does.
    let marker = fleet.root.join("X");
    let command = format!("touch {} #", marker.display());
    operator_types(&fleet, "ccl-auto-11", &command);
    wait_until("the command on the shell line", Duration::from_secs(10), || {
        fleet.capture("ccl-auto-11").contains(&command).then_some(())
    });
    let task = fleet.enqueue("q", "a task that must wait");
    fleet.wait_turns(8, Duration::from_secs(20));
    assert!(!marker.exists(), "the operator's command was run");
    fleet.wait_log(
        "shell command line holds text ccl did not type",
        Duration::from_secs(10),
    );
    assert_eq!(fleet.tasks("q", "inbox"), vec![task.clone()], "the task waits");
    let log = fleet.log();
    assert!(!log.contains("type into ccl-auto-11"), "{log}");
    assert_eq!(
        log.matches("shell command line holds text ccl did not type").count(),
        1,
        "{log}"
    );

    // The operator erases it: the line is the empty prompt again and the task runs.
    fleet.tmux(&["send-keys", "-t", "=ccl-auto-11:", "C-u"]);
    fleet.wait_done("q", 1, Duration::from_secs(30));
    fleet.stop();
    assert!(!marker.exists(), "the operator's command was run");
    let log = fleet.log();
    assert!(log.contains("ccl-auto-11: no longer needs attention"), "{log}");
    assert!(!log.contains("exited right after launch"), "{log}");
}

#[test]
fn a_draft_in_a_pool_claudes_box_is_never_submitted_with_exit() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let mut fleet = one_pool_session("draft-box", 600);
    let task = fleet.enqueue("q", "a task long enough to type beside [fake:work=4s]");
    fleet.start_with_env(None, DEBUG);
    wait_until("the task to be submitted", Duration::from_secs(30), || {
        fleet
            .received()
            .iter()
            .any(|r| r["text"].as_str().is_some_and(|t| t.contains("long enough")))
            .then_some(())
    });

    // While it works, the operator types a note into Claude's box and does not send it.
    let note = "operator note: also drop the staging tables";
    operator_types(&fleet, "ccl-auto-11", note);
    wait_until("the note in the input box", Duration::from_secs(10), || {
        fleet.capture("ccl-auto-11").contains(note).then_some(())
    });
    fleet.wait_done("q", 1, Duration::from_secs(30));
    fleet.wait_turns(8, Duration::from_secs(20));
    let sent: Vec<String> = fleet
        .received()
        .iter()
        .filter_map(|r| r["text"].as_str().map(str::to_string))
        .collect();
    assert!(
        sent.iter().all(|t| !t.contains("operator note")),
        "the draft was submitted: {sent:?}"
    );
    assert!(
        fleet.capture("ccl-auto-11").contains(note),
        "the draft is still in the box"
    );
    fleet.wait_log("input box holds text ccl did not type", Duration::from_secs(10));
    assert_eq!(fleet.tasks("q", "done"), vec![task]);
    fleet.stop();
    let log = fleet.log();
    assert!(!log.contains("type into ccl-auto-11: /exit"), "{log}");
    assert_eq!(log.matches("input box holds text ccl did not type").count(), 1, "{log}");
}

#[test]
fn a_dedicated_sessions_draft_survives_a_swap_unsent() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        dedicated: vec!["ops".into()],
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "draft-swap", spec);
    let operator = fleet.start_operator();
    // The operator talks to it once (so the conversation exists to resume), then starts
    // a next message and leaves it unsent.
    operator_types(&fleet, "ops", "hello");
    fleet.tmux(&["send-keys", "-t", "=ops:", "Enter"]);
    wait_until("the operator's first message taken", Duration::from_secs(10), || {
        fleet.received().iter().any(|r| r["text"] == "hello").then_some(())
    });
    let draft = "refactor the chunker, then";
    operator_types(&fleet, "ops", draft);
    wait_until("the draft in the operator's box", Duration::from_secs(10), || {
        fleet.capture("ops").contains(draft).then_some(())
    });
    fleet.start_with_env(None, DEBUG);
    fleet.wait_turns(3, Duration::from_secs(10));
    let out = fleet.ccl_timeout(&["swap", "--to", "b"], Duration::from_secs(40));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The resumed conversation (a new Claude under b) shows the draft in its box, unsent.
    wait_until("the conversation resumed under b", Duration::from_secs(20), || {
        (fleet.registry_conversation("b", "ops")? == operator.id).then_some(())
    });
    fleet.wait_turns(5, Duration::from_secs(10));
    let screen = fleet.capture("ops");
    assert!(
        screen.contains(&format!("❯ {draft}")),
        "the draft is back in the box:\n{screen}"
    );
    assert!(
        fleet
            .received()
            .iter()
            .all(|r| !r["text"].as_str().unwrap_or("").contains(draft)),
        "the draft was submitted: {:#?}",
        fleet.received()
    );
    fleet.stop();
    let log = fleet.log();
    assert!(
        log.contains(&format!("ops: keeping its unsent draft across the swap: \"{draft}\"")),
        "{log}"
    );
    assert!(
        log.contains("ops: claude is ready; its unsent draft is back in the input box"),
        "{log}"
    );
}

/// Killed between pasting a several-line task and its Enter, with `state.json` lost: the
/// box shows Claude's `[Pasted text #1 +M lines]` for ccl's own paste. After the restart
/// that text is recognised as the task's, sent with one Enter, and the task finishes
/// where it was pasted; nobody is asked to look at the box.
#[test]
fn a_collapsed_paste_cut_off_by_a_crash_that_lost_the_state_is_sent_once() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        tick: "200ms".into(),
        work_ms: 300,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "draft-crashpaste", spec);
    // An Enter that waits a minute: the kill lands between the paste and it.
    let slow = [("submit_delay = \"200ms\"", "submit_delay = \"60s\"")];
    fleet.write_config_edited("", &slow);
    fleet.start(None);
    let body = "a task of several lines\nfirst, read the chunker\nthen, keep byte offsets\nthen, test the boundaries\nlast, say what changed";
    fleet.enqueue("q", body);
    wait_until("the paste collapsed in the box", Duration::from_secs(30), || {
        fleet
            .capture("ccl-auto-11")
            .contains("[Pasted text #1 +4 lines]")
            .then_some(())
    });
    fleet.crash();
    std::fs::remove_file(fleet.state_dir().join("state.json")).unwrap();
    fleet.write_config_edited("", &[]);
    let from = fleet.log().len();
    fleet.start(None);
    fleet.wait_done("q", 1, Duration::from_secs(30));
    fleet.stop();
    let log = fleet.log();
    assert!(
        !log[from..].contains("did not type") && !log[from..].contains("back to the inbox"),
        "taken for a draft or given back:\n{log}"
    );
    let n = fleet
        .received()
        .iter()
        .filter(|r| r["text"].as_str().is_some_and(|t| t.trim() == body))
        .count();
    assert_eq!(n, 1, "the prompt reached Claude {n} times; log:\n{log}");
}
