//! Scenario tests of the decision core about task files as a careless writer or a
//! failing disk leaves them: a file still being written, a bad file that cannot be filed,
//! a name reused while a task of that name runs, a claim that fails for a lasting reason.
//! Each asserts what a user would notice — a task failed for being empty although it got
//! its text a moment later, a truncated prompt, a warning and a hook every tick — through
//! the actions the core returns in the simulated world (tests/support/sim.rs), which also
//! checks on every turn that each task's prompt is pasted once per attempt.

use crate::support::sim;

use ccl_core::core::{Action, Level};
use sim::*;

fn claims_of(actions: &[Action], task: &str) -> usize {
    claims(actions).iter().filter(|(_, _, t)| t == task).count()
}

fn fails_of(actions: &[Action], task: &str) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::FailTask { task: t, .. } if t == task))
        .count()
}

fn hooks(actions: &[Action], event: &str) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::RunHook { event: e, .. } if e == event))
        .count()
}

/// Every line logged at WARN, free-form or a decision.
fn warnings(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log {
                level: Level::Warn,
                message,
            } => Some(message.clone()),
            Action::Event(e) if e.level() == Level::Warn => Some(e.to_string()),
            _ => None,
        })
        .collect()
}

/// Claims lost to another process (the claim is dropped, the session free again).
fn claims_lost(actions: &[Action]) -> usize {
    events(actions)
        .iter()
        .filter(|e| matches!(e, Event::ClaimLost { .. }))
        .count()
}

/// A setup with a hook on failed tasks, so each filing shows as one hook run.
fn with_fail_hook() -> Sim {
    let mut config = Setup::default().config();
    config.hooks.on_task_failed = "notify-failed".into();
    Sim::with_state(config.clone(), ccl_core::core::State::fresh(&config, SEED))
}

#[test]
fn an_empty_file_that_later_gets_its_text_is_not_failed_as_empty() {
    let mut s = Sim::new(&Setup::default());
    // `touch task.md` (or `cat > task.md` before the first line): empty for a moment.
    let t = s.now_ms + TICK_MS;
    s.world.write("alpha", "task.md", 0, t, Some("empty task"));
    let mut actions = s.turn();
    // Then its text arrives.
    let t = s.now_ms + TICK_MS;
    s.world.write("alpha", "task.md", 42, t, None);
    actions.extend(s.until(20, "the task is done", |s, _| {
        s.world.queues["alpha"].done.contains(&"task.md".to_string())
    }));
    assert_eq!(fails_of(&actions, "task.md"), 0, "{}", render(&actions));
    assert_eq!(s.world.queues["alpha"].failed, vec![]);
}

#[test]
fn a_file_written_in_steps_is_taken_only_once_it_is_quiet() {
    let mut s = Sim::new(&Setup::default());
    // A slow copy: the file grows on each of five turns.
    let mut actions = Vec::new();
    let mut last_write_ms = 0;
    for step in 1..=5u64 {
        last_write_ms = s.now_ms + TICK_MS;
        s.world.write("alpha", "copy.md", step * 4096, last_write_ms, None);
        let turn = s.turn();
        assert_eq!(
            claims_of(&turn, "copy.md"),
            0,
            "claimed at step {step} while still being written"
        );
        actions.extend(turn);
    }
    let settle_ms = s.config().dispatch.settle.0 as i64;
    let rest = s.until(20, "the copy is claimed", |_, a| claims_of(a, "copy.md") == 1);
    // Not before it was quiet for `dispatch.settle`.
    assert!(
        s.now_ms - last_write_ms >= settle_ms,
        "taken {} ms after the last write",
        s.now_ms - last_write_ms
    );
    actions.extend(rest);
    actions.extend(s.until(20, "the copy is done", |s, _| s.world.queues["alpha"].done.len() == 1));
    assert_eq!(claims_of(&actions, "copy.md"), 1);
}

#[test]
fn with_settle_zero_an_atomically_renamed_file_is_taken_at_first_sight() {
    let mut s = Sim::new(&Setup {
        settle: "0s",
        ..Setup::default()
    });
    s.world.enqueue("alpha", "renamed.md");
    let first = s.turn();
    assert_eq!(claims_of(&first, "renamed.md"), 1, "{}", render(&first));
}

#[test]
fn a_bad_file_that_cannot_be_filed_is_reported_once_not_every_tick() {
    let mut s = with_fail_hook();
    // Its `.error` sidecar name would be too long, say: the move to failed/ fails.
    let long = format!("{}.md", "x".repeat(250));
    s.world
        .enqueue_bad("alpha", &long, "file name is longer than 200 bytes");
    s.world.unfileable.insert(long.clone());
    let actions = s.run(30);
    assert_eq!(fails_of(&actions, &long), 1, "{}", render(&actions));
    assert_eq!(hooks(&actions, "on_task_failed"), 1, "{}", render(&actions));
    let about: Vec<String> = warnings(&actions).into_iter().filter(|w| w.contains(&long)).collect();
    assert_eq!(about.len(), 1, "{about:?}");
    assert!(about[0].contains("left in the inbox"), "{about:?}");

    // Once it changes (the operator renamed it, fixed it), it is looked at again.
    s.world.unfileable.clear();
    s.world.queue("alpha").inbox.clear();
    s.world.enqueue_bad("alpha", "short.md", "empty task");
    let later = s.run(4);
    assert_eq!(fails_of(&later, "short.md"), 1);
    assert_eq!(s.world.queues["alpha"].failed.len(), 1);
}

#[test]
fn a_bad_file_is_filed_once_and_its_hook_runs_once() {
    let mut s = with_fail_hook();
    s.world.enqueue_bad("alpha", "empty.md", "empty task");
    let actions = s.run(10);
    assert_eq!(fails_of(&actions, "empty.md"), 1);
    assert_eq!(hooks(&actions, "on_task_failed"), 1);
    // A new bad file of the same name is a new file: filed (and reported) again.
    s.world.enqueue_bad("alpha", "empty.md", "empty task");
    let again = s.run(10);
    assert_eq!(fails_of(&again, "empty.md"), 1);
    assert_eq!(s.world.queues["alpha"].failed.len(), 2);
}

#[test]
fn a_reused_name_waits_while_a_task_of_that_name_runs_then_runs_once() {
    let mut s = Sim::new(&Setup::default());
    s.world.busy_turns = 8;
    s.world.enqueue("alpha", "fix-tests.md");
    s.until(10, "the first run works", |s, _| {
        s.world.queues["alpha"].running.contains(&"fix-tests.md".to_string())
    });
    // Tomorrow's script drops the same name while today's still runs.
    s.world.enqueue("alpha", "fix-tests.md");
    let actions = s.until(40, "both are done", |s, _| s.world.queues["alpha"].done.len() == 2);
    assert_eq!(claims_of(&actions, "fix-tests.md"), 1, "{}", render(&actions));
    assert!(warnings(&actions).is_empty(), "{:?}", warnings(&actions));
    assert_eq!(claims_lost(&actions), 0, "{}", render(&actions));
}

#[test]
fn a_claim_that_fails_for_a_lasting_reason_is_reported_once_with_its_cause() {
    let mut s = Sim::new(&Setup::default());
    let cause = "cannot move inbox/a.md to running/: Invalid cross-device link (os error 18)";
    s.world.claim_error = Some(cause.into());
    s.world.enqueue("alpha", "a.md");
    s.world.enqueue("alpha", "b.md");
    let actions = s.run(40);
    let told: Vec<&Event> = events(&actions)
        .into_iter()
        .filter(|e| matches!(e, Event::ClaimBlocked { queue, cause: c, .. } if queue == "alpha" && c == cause))
        .collect();
    assert_eq!(told.len(), 1, "{}", render(&actions));
    let about: Vec<String> = warnings(&actions)
        .into_iter()
        .filter(|w| w.contains("Invalid cross-device link"))
        .collect();
    assert_eq!(about, vec![told[0].to_string()], "{}", render(&actions));
    assert_eq!(claims_lost(&actions), 0, "{}", render(&actions));
    // Not retried every tick: a handful of attempts in 40 turns at most.
    assert!(claims(&actions).len() <= 3, "{}", render(&actions));

    // The operator fixes it: the queue works again without a restart.
    s.world.claim_error = None;
    let after = s.until(200, "both tasks are done", |s, _| {
        s.world.queues["alpha"].done.len() == 2
    });
    assert!(
        events(&after)
            .iter()
            .any(|e| matches!(e, Event::ClaimsWorkAgain { queue } if queue == "alpha")),
        "{}",
        render(&after)
    );
}

#[test]
fn a_blocked_queue_taken_out_of_the_configuration_is_forgotten() {
    let setup = Setup {
        queues: vec!["alpha", "beta"],
        ..Setup::default()
    };
    let mut s = Sim::new(&setup);
    s.world.claim_error = Some("Permission denied (os error 13)".into());
    s.world.enqueue("beta", "b.md");
    s.run(4);
    assert!(s.state().claim_blocked.contains_key("beta"));
    s.core.set_config(
        Setup {
            queues: vec!["alpha"],
            ..Setup::default()
        }
        .config(),
    );
    s.run(1);
    assert!(s.state().claim_blocked.is_empty(), "{:?}", s.state().claim_blocked);
}
