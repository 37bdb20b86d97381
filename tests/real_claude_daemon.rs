//! The real-client tier: `ccl run` driving the real Claude Code (the pinned 2.1.328 npm
//! build) against the in-process mock API, with two subscription accounts told apart by
//! their tokens and the homes sharing `projects/` as a real user's do. It proves, against
//! the real client rather than the fake: tasks flow from the inbox to `done/` under the
//! active account while the operator's own Claude and unmanaged sessions are left alone;
//! a 5-hour limit mid-task moves the task's conversation and the operator's conversation
//! to the other account under their own ids, and nothing swaps back; a 500 whose text
//! says "rate limit" never swaps (and files the task as failed, not done); a weekly limit
//! swaps without anything ever typed into its menu, and a menu left up while every
//! account is exhausted is dismissed with Escape before `/exit` once the other account
//! resets; at 97 % of a's 5-hour window (the mock's utilization headers, the client's
//! gauge) the fleet moves to b at its turn boundaries before any limit; an account whose
//! login was revoked (401) is reported unhealthy and skipped; and SIGTERM leaves every
//! session running for a restart to adopt. Recorded
//! runs replay action for action. Gated by `CCL_TEST_TMUX=1 CCL_TEST_CLAUDE=1` (see
//! `ccl_testkit::real`); with `CCL_SAVE_SCREENS=1` new real screens go to the corpus.

use crate::BINS;
use ccl_core::core::Action;
use ccl_core::trace::Line;
use ccl_testkit::fleet::{account_entry, typed_into, FleetSpec};
use ccl_testkit::mockapi::Behaviour;
use ccl_testkit::real::{actions_on, claude_bin, now_unix, token, RealFleet, CLAUDE_COMMAND, UNMANAGED, WAIT};

/// The operator's conversation in the dedicated session `ops`.
const OPS_ID: &str = "0f5e3c2a-7b1d-4e6f-8a9b-0c1d2e3f4a5b";
const OPS_PROMPT: &str = "hello from the operator";
const CONTINUE: &str = "Continue where you left off.";
/// The question of the menu the real client puts up after a weekly limit.
const WEEKLY_MENU: &str = "What do you want to do?";
/// `wait_turns` needs the daemon's per-turn debug line.
const DEBUG: &[(&str, &str)] = &[("RUST_LOG", "debug")];

/// One pool session and the operator's session `ops`, with the operator's Claude started
/// by hand under `a` and spoken to once, so its conversation has a transcript.
fn fleet_with_operator(tag: &str, bin: std::path::PathBuf) -> RealFleet {
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        dedicated: vec!["ops".into()],
        ..Default::default()
    };
    let fleet = RealFleet::new(BINS, tag, spec, bin);
    let ops_dir = fleet.root.join("work/ops");
    fleet.start_claude_by_hand("ops", "a", &ops_dir, OPS_ID);
    fleet.prompt_by_hand("ops", OPS_PROMPT);
    fleet
}

fn pool_only(tag: &str, bin: std::path::PathBuf) -> RealFleet {
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    RealFleet::new(BINS, tag, spec, bin)
}

/// The record ccl writes beside a done task (just after moving the task there).
fn report(fleet: &RealFleet, task: &str) -> serde_json::Value {
    let path = fleet.queue_dir("q", "done").join(format!("{task}.json"));
    let bytes = ccl_testkit::wait_until(&format!("{}", path.display()), WAIT, || std::fs::read(&path).ok());
    serde_json::from_slice(&bytes).unwrap()
}

/// The operator's session: same pane, the real Claude still in front, and no request
/// from its conversation but the operator's own prompt.
fn assert_operator_untouched(fleet: &RealFleet, ops_pid: u32) {
    assert_eq!(
        fleet.pane_pid("ops"),
        Some(ops_pid),
        "the operator's session keeps its pane"
    );
    assert_eq!(fleet.command_of("ops").as_deref(), Some(CLAUDE_COMMAND));
    assert_eq!(
        fleet.texts_of(OPS_ID),
        vec![OPS_PROMPT.to_string()],
        "only the operator's own prompt went out of the operator's conversation"
    );
}

/// Per turn, the pane text of `session` and the actions on it, from a recorded trace.
fn turns_of(trace: &std::path::Path, session: &str) -> Vec<(u64, String, Vec<Action>)> {
    let trace = ccl::shell::trace::read(trace).expect("the trace reads back");
    trace
        .lines
        .into_iter()
        .filter_map(|line| match line {
            Line::Turn {
                turn,
                observation,
                actions,
            } => {
                let capture = observation
                    .sessions
                    .unwrap_or_default()
                    .into_iter()
                    .find(|s| s.name == session)
                    .and_then(|s| s.capture)
                    .unwrap_or_default();
                let mine = actions.into_iter().filter(|a| a.session() == Some(session)).collect();
                Some((turn, capture, mine))
            }
            Line::Reload { .. } => None,
        })
        .collect()
}

fn is_exit(a: &Action) -> bool {
    matches!(a, Action::TypeLine { line, .. } if line == "/exit")
}

fn is_escape(a: &Action) -> bool {
    matches!(a, Action::SendKeys { keys, .. } if keys.first().map(String::as_str) == Some("Escape"))
}

/// Nothing is ever typed into the weekly menu ccl sees on the screen (the menu would take
/// the Enter). Returns the turns that saw the menu.
fn assert_nothing_typed_into_the_menu(trace: &std::path::Path, session: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    for (turn, capture, actions) in turns_of(trace, session) {
        if !capture.contains(WEEKLY_MENU) {
            continue;
        }
        seen.push(turn);
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                Action::TypeLine { .. } | Action::PasteText { .. } | Action::PasteTask { .. }
            )),
            "turn {turn} typed into the menu: {actions:?}\n{capture}"
        );
    }
    seen
}

#[test]
fn tasks_flow_to_done_on_the_active_account_and_the_operator_and_unmanaged_sessions_are_left_alone() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let mut fleet = fleet_with_operator("real-flow", bin);
    let pids = fleet.pids(&["ops", UNMANAGED[0], UNMANAGED[1]]);
    let first_body = "Summarise the first queued task\nits second line stays with it";
    let second_body = "Summarise the second queued task";
    let first = fleet.enqueue_as("q", "1", first_body);
    let second = fleet.enqueue_as("q", "2", second_body);
    fleet.start(None);
    fleet.wait_done("q", 2, WAIT);
    fleet.stop();

    assert_eq!(fleet.tasks("q", "done"), vec![first.clone(), second.clone()]);
    for (task, body) in [(&first, first_body), (&second, second_body)] {
        let seen = fleet.wait_request(&format!("the task {task:?}"), |r| {
            r.last_user_text.as_deref() == Some(body)
        });
        assert_eq!(seen.token, token("a"), "{task} went to the active account");
        let report = report(&fleet, task);
        assert_eq!(report["account"], "a", "{report}");
        assert_eq!(report["session"], "ccl-auto-11", "{report}");
        assert_eq!(
            report["conversation"].as_str(),
            seen.conversation.as_deref(),
            "the report names the conversation the mock saw: {report}"
        );
        assert_eq!(
            fleet.texts_of(seen.conversation.as_deref().unwrap()),
            vec![body.to_string()],
            "each task ran in a conversation of its own, sent once"
        );
    }
    assert!(
        fleet.messages().iter().all(|r| r.token == token("a")),
        "nothing went to b"
    );
    assert_operator_untouched(&fleet, pids[0].1);
    let touched = actions_on(&fleet.log(), "ops");
    assert!(touched.is_empty(), "ccl acted on the operator's session: {touched:#?}");
    fleet.assert_panes_kept(&pids);
}

#[test]
fn a_five_hour_limit_mid_task_moves_the_task_and_the_operator_to_b_under_their_own_ids_and_stays_there() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let mut fleet = fleet_with_operator("real-5h", bin);
    let pids = fleet.pids(&["ops", UNMANAGED[0], UNMANAGED[1]]);
    // From here on a's next request is refused: the first one is the task's own, so the
    // limit strikes after the task was dispatched and its conversation written.
    let reset_unix = now_unix() + 3 * 3600;
    fleet.mock.set_behaviour(&token("a"), Behaviour::Limit5h { reset_unix });
    let body = "Refactor the parser in small steps";
    let task = fleet.enqueue("q", body);
    let trace = fleet.root.join("5h.trace");
    fleet.start_with_env(Some(&trace), DEBUG);

    let refused = fleet.wait_request("the task under a", |r| r.last_user_text.as_deref() == Some(body));
    assert_eq!(refused.token, token("a"));
    let task_id = refused
        .conversation
        .clone()
        .expect("the task's request names its conversation");
    fleet.wait_log("swapped from a to b", WAIT);
    // The refused prompt has no answer, so the client sends it again together with the
    // new one as a single user turn: the continue prompt ends the last user text.
    let continued = fleet.wait_request("the continue prompt under b", |r| {
        r.token == token("b") && r.last_user_text.as_deref().is_some_and(|t| t.ends_with(CONTINUE))
    });
    assert_eq!(
        continued.conversation.as_deref(),
        Some(task_id.as_str()),
        "the task's conversation continues on b under its own id"
    );
    fleet.wait_done("q", 1, WAIT);
    let report = report(&fleet, &task);
    assert_eq!(report["account"], "b", "{report}");
    assert_eq!(report["conversation"], task_id.as_str(), "{report}");
    assert_eq!(
        fleet.texts_of(&task_id).len(),
        2,
        "the task was sent once (refused under a) and continued once under b: {:#?}",
        fleet.messages()
    );

    // The operator's Claude was stopped without a keystroke and resumed under b.
    let home_b = format!("CLAUDE_CONFIG_DIR={}", fleet.home("b").display());
    let ops_lines = typed_into(&fleet.log(), "ops");
    assert_eq!(
        ops_lines.len(),
        1,
        "one line typed into ops, its relaunch: {ops_lines:#?}"
    );
    assert!(
        ops_lines[0].contains(&home_b) && ops_lines[0].ends_with(&format!("--resume {OPS_ID}")),
        "the operator's Claude resumed under b with its own id: {ops_lines:#?}"
    );
    let registered = ccl_testkit::wait_until("ops registered under b", WAIT, || {
        fleet.registry_conversation("b", "ops")
    });
    assert_eq!(
        registered, OPS_ID,
        "the resumed Claude runs the operator's conversation"
    );
    fleet.wait_screen("ops", "the resumed Claude idle", ccl_testkit::real::is_idle);
    assert_operator_untouched(&fleet, pids[0].1);

    // Past the cooldown, and a while more: still on b after one swap, a exhausted.
    fleet.wait_turns(12, WAIT);
    let status = fleet.status();
    assert_eq!(status["active"], "b", "{status:#}");
    assert_eq!(status["swaps"], 1, "{status:#}");
    assert!(!account_entry(&status, "a")["exhausted_until"].is_null(), "{status:#}");
    assert!(account_entry(&status, "b")["exhausted_until"].is_null(), "{status:#}");
    assert_eq!(fleet.log().matches("swap from").count(), 1, "one swap only");
    fleet.assert_panes_kept(&pids);

    // The operator goes on talking: the conversation is theirs, now billed to b.
    fleet.prompt_by_hand("ops", "and now under b");
    let after = fleet.wait_request("the operator's prompt under b", |r| {
        r.last_user_text.as_deref() == Some("and now under b")
    });
    assert_eq!(after.token, token("b"));
    assert_eq!(after.conversation.as_deref(), Some(OPS_ID));
    fleet.stop();

    // The recorded run replays action for action through a fresh core.
    fleet.assert_replays(&trace);
    // `--resume` redraws the old limit line: a screen the corpus should know.
    let turns = turns_of(&trace, "ccl-auto-11");
    let resumed_at = turns.iter().position(|(_, _, actions)| {
        actions
            .iter()
            .any(|a| matches!(a, Action::TypeLine { line, .. } if line.contains("--resume")))
    });
    let redrawn = turns
        .iter()
        .skip(resumed_at.expect("the task was resumed") + 1)
        .map(|(_, capture, _)| capture)
        .find(|c| c.contains("hit your 5-hour limit") && ccl_testkit::real::is_idle(c));
    if let Some(screen) = redrawn {
        fleet.save_screen("resumed-limit-5h-redrawn", screen);
    }
}

#[test]
fn a_server_error_that_says_rate_limit_never_swaps() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let mut fleet = pool_only("real-500", bin);
    let message = "rate limit exceeded";
    fleet.mock.set_behaviour(
        &token("a"),
        Behaviour::Error500 {
            message: message.into(),
        },
    );
    let body = "Run the flaky migration";
    let task = fleet.enqueue("q", body);
    fleet.start_with_env(None, DEBUG);
    fleet.wait_request("the task under a", |r| r.last_user_text.as_deref() == Some(body));
    // The turn ended without the task being worked on: failed, with the error as reason.
    let error_path = fleet.queue_dir("q", "failed").join(format!("{task}.error"));
    let error = ccl_testkit::wait_until("the task filed as failed, with its reason", WAIT, || {
        std::fs::read_to_string(&error_path).ok()
    });
    assert_eq!(fleet.tasks("q", "failed"), vec![task.clone()]);
    assert!(fleet.tasks("q", "done").is_empty(), "a task that met a 500 is not done");
    assert!(
        error.contains("API error") && error.contains(message),
        "the reason names the error: {error}"
    );
    // Several more ticks, with the error still in the pane's scrollback or at its shell.
    fleet.wait_turns(10, WAIT);
    let status = fleet.status();
    assert_eq!(status["active"], "a", "{status:#}");
    assert_eq!(status["swaps"], 0, "{status:#}");
    assert!(account_entry(&status, "a")["exhausted_until"].is_null(), "{status:#}");
    assert!(!fleet.log().contains("swap from"), "no swap began:\n{}", fleet.log());
    assert!(
        fleet.messages().iter().all(|r| r.token == token("a")),
        "nothing went to b: {:#?}",
        fleet.messages()
    );
    fleet.stop();
}

#[test]
fn a_weekly_limit_swaps_to_b_without_typing_into_its_menu_and_the_task_continues_there() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let mut fleet = pool_only("real-weekly", bin);
    let reset_unix = now_unix() + 3 * 86_400 + 1234;
    fleet
        .mock
        .set_behaviour(&token("a"), Behaviour::LimitWeekly { reset_unix });
    let body = "Write the weekly report";
    let task = fleet.enqueue("q", body);
    let trace = fleet.root.join("weekly.trace");
    fleet.start_with_env(Some(&trace), DEBUG);

    let refused = fleet.wait_request("the task under a", |r| r.last_user_text.as_deref() == Some(body));
    let task_id = refused
        .conversation
        .clone()
        .expect("the task's request names its conversation");
    fleet.wait_log("swapped from a to b", WAIT);
    let continued = fleet.wait_request("the continue prompt under b", |r| {
        r.token == token("b") && r.last_user_text.as_deref().is_some_and(|t| t.ends_with(CONTINUE))
    });
    assert_eq!(continued.conversation.as_deref(), Some(task_id.as_str()));
    fleet.wait_done("q", 1, WAIT);
    assert_eq!(report(&fleet, &task)["account"], "b");
    let status = fleet.status();
    assert!(
        account_entry(&status, "a")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("weekly")),
        "{status:#}"
    );
    fleet.stop();

    // The menu comes up about half a second after the limit line, so whether ccl sees
    // it depends on the tick; either way it never types into it, and the swap is not
    // held up until the stop timeout recreates the pane.
    assert_nothing_typed_into_the_menu(&trace, "ccl-auto-11");
    fleet.assert_replays(&trace);
    let before_menu = turns_of(&trace, "ccl-auto-11")
        .into_iter()
        .map(|(_, capture, _)| capture)
        .find(|c| c.contains("hit your weekly limit") && !c.contains(WEEKLY_MENU) && !c.contains("--resume"));
    if let Some(screen) = before_menu {
        fleet.save_screen("limit-weekly-before-menu", &screen);
    }
    let log = fleet.log();
    assert!(!log.contains("did not stop"), "the swap was held up:\n{log}");
    let pool = actions_on(&log, "ccl-auto-11");
    assert!(
        pool.iter().all(|l| !l.contains("kill session")),
        "the pane was not killed: {pool:#?}"
    );
}

#[test]
fn the_claude_left_at_the_weekly_menu_while_every_account_is_exhausted_is_stopped_when_b_resets() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let mut fleet = pool_only("real-weekly-wait", bin);
    // ccl remembers from an earlier run that b is exhausted for a few seconds more.
    let config = ccl::shell::config_file::load(&fleet.config_path).unwrap();
    let mut state = ccl_core::core::State::fresh(&config, 7);
    let b_back_ms = (now_unix() + 12) * 1000;
    let b = state.accounts.get_mut("b").unwrap();
    b.exhausted_until_ms = Some(b_back_ms);
    b.reason = Some("hit earlier".into());
    ccl::shell::state::save(&config.state_file(), &state).unwrap();
    let reset_unix = now_unix() + 3 * 86_400 + 1234;
    fleet
        .mock
        .set_behaviour(&token("a"), Behaviour::LimitWeekly { reset_unix });
    let body = "Write the weekly digest";
    let task = fleet.enqueue("q", body);
    let trace = fleet.root.join("weekly-wait.trace");
    fleet.start_with_env(Some(&trace), DEBUG);

    let refused = fleet.wait_request("the task under a", |r| r.last_user_text.as_deref() == Some(body));
    let task_id = refused.conversation.clone().unwrap();
    fleet.wait_log("all accounts exhausted", WAIT);
    fleet.wait_screen("ccl-auto-11", "the weekly menu", |s| s.contains(WEEKLY_MENU));
    // The daemon looks at the menu for a few turns before b is back, and waits.
    fleet.wait_turns(3, WAIT);
    assert!(
        now_unix() * 1000 < b_back_ms,
        "b came back before the menu was up: the machine is too slow for this test"
    );
    let status = fleet.status();
    assert!(!status["all_exhausted_until"].is_null(), "{status:#}");
    assert_eq!(status["active"], "a", "{status:#}");

    fleet.wait_log("swapped from a to b", WAIT);
    let continued = fleet.wait_request("the continue prompt under b", |r| {
        r.token == token("b") && r.last_user_text.as_deref().is_some_and(|t| t.ends_with(CONTINUE))
    });
    assert_eq!(continued.conversation.as_deref(), Some(task_id.as_str()));
    fleet.wait_done("q", 1, WAIT);
    assert_eq!(report(&fleet, &task)["account"], "b");
    fleet.stop();

    let menu_turns = assert_nothing_typed_into_the_menu(&trace, "ccl-auto-11");
    assert!(!menu_turns.is_empty(), "ccl saw the menu");
    let turns = turns_of(&trace, "ccl-auto-11");
    // The menu holds the keyboard, and nothing needs it: one SIGTERM stops that Claude,
    // and nothing is typed into it (no Escape, no /exit) before it is resumed under b.
    let stopped = turns
        .iter()
        .find(|(_, capture, actions)| {
            capture.contains(WEEKLY_MENU) && actions.iter().any(|a| matches!(a, Action::StopClaude { .. }))
        })
        .map(|(turn, ..)| *turn)
        .expect("the Claude at the menu was stopped with SIGTERM");
    let keys_before: Vec<u64> = turns
        .iter()
        .filter(|(turn, _, actions)| *turn <= stopped && actions.iter().any(|a| is_escape(a) || is_exit(a)))
        .map(|(turn, ..)| *turn)
        .collect();
    assert!(
        keys_before.is_empty(),
        "keys typed into the stopping Claude in turns {keys_before:?}"
    );
    fleet.assert_replays(&trace);
    assert!(!fleet.log().contains("did not stop"), "{}", fleet.log());
}

#[test]
fn sigterm_leaves_every_claude_running_and_a_restart_adopts_them_without_relaunching() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let mut fleet = fleet_with_operator("real-restart", bin);
    // The task's answer takes a while, so the daemon stops and starts again mid-turn.
    fleet.mock.set_behaviour(
        &token("a"),
        Behaviour::Normal {
            reply: "Done: {prompt}".into(),
            delay_ms: 6_000,
            usage: None,
        },
    );
    let body = "Audit the dependency tree";
    let task = fleet.enqueue("q", body);
    fleet.start(None);
    let asked = fleet.wait_request("the task under a", |r| r.last_user_text.as_deref() == Some(body));
    fleet.wait_log("ccl-auto-11: task submitted", WAIT);
    let pids = fleet.pids(&["ccl-auto-11", "ops", UNMANAGED[0], UNMANAGED[1]]);
    fleet.stop();

    for name in ["ccl-auto-11", "ops"] {
        assert_eq!(
            fleet.command_of(name).as_deref(),
            Some(CLAUDE_COMMAND),
            "claude still runs in {name} after SIGTERM"
        );
    }
    fleet.assert_panes_kept(&pids);
    assert_eq!(
        fleet.tasks("q", "running"),
        vec![task.clone()],
        "the task stays claimed"
    );

    let restart_at = fleet.log().len();
    fleet.start(None);
    fleet.wait_done("q", 1, WAIT);
    fleet.stop();

    let after = fleet.log()[restart_at..].to_string();
    assert!(!after.contains("create session"), "no session was created:\n{after}");
    let pool = typed_into(&after, "ccl-auto-11");
    assert!(
        pool.iter().all(|l| l == "/exit"),
        "the running Claude was adopted, not relaunched (only the recycling /exit): {pool:#?}"
    );
    assert!(actions_on(&after, "ops").is_empty(), "nothing done to ops:\n{after}");
    assert!(!after.contains("back to inbox"), "the task was not requeued:\n{after}");
    let report = report(&fleet, &task);
    assert_eq!(
        report["conversation"].as_str(),
        asked.conversation.as_deref(),
        "{report}"
    );
    assert_eq!(
        fleet.texts_of(asked.conversation.as_deref().unwrap()),
        vec![body.to_string()]
    );
    assert_operator_untouched(&fleet, pids[1].1);
    fleet.assert_panes_kept(&pids);
}

/// Account a reports 97 % of its 5-hour window with an answer: the operator's Claude
/// draws the gauge, ccl reads it as a's meter, and the fleet moves to b at its turn
/// boundaries before a ever refuses a request: the task running under a finishes there
/// (not cut off), the idle operator's Claude moves at once, the next task starts under b,
/// and `status --json` shows a's 97 % with its reset.
#[test]
fn at_97_percent_on_a_the_fleet_moves_to_b_at_turn_boundaries_before_any_limit() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let mut fleet = fleet_with_operator("real-meter", bin);
    // a's task takes a while, so the swap begins while it runs.
    let slow = Behaviour::Normal {
        reply: "Done: {prompt}".into(),
        delay_ms: 10_000,
        usage: None,
    };
    fleet.mock.set_behaviour(&token("a"), slow);
    let first = "First task, under a";
    let first_task = fleet.enqueue("q", first);
    fleet.start_with_env(None, DEBUG);
    let sent = fleet.wait_request("the first task under a", |r| r.last_user_text.as_deref() == Some(first));
    assert_eq!(sent.token, token("a"));

    // From now on a's answers say it is at 97 %; the operator's next answer shows it.
    let reset_unix = now_unix() + 2 * 3600;
    let usage = ccl_testkit::mockapi::Utilization {
        five_hour_pct: 97.0,
        five_hour_reset_unix: reset_unix,
        seven_day_pct: 31.0,
        seven_day_reset_unix: reset_unix + 3 * 86_400,
    };
    let metered = Behaviour::Normal {
        reply: "Done: {prompt}".into(),
        delay_ms: 0,
        usage: Some(usage),
    };
    fleet.mock.set_behaviour(&token("a"), metered);
    fleet.prompt_by_hand("ops", "how much is left?");
    fleet.wait_log("swap from a to b begins at turn boundaries", WAIT);
    let second = "Second task, after the meter said 97";
    let second_task = fleet.enqueue("q", second);
    fleet.wait_done("q", 2, WAIT);
    fleet.wait_log("swapped from a to b", WAIT);

    assert_eq!(
        report(&fleet, &first_task)["account"],
        "a",
        "the running task finished under a"
    );
    assert_eq!(report(&fleet, &second_task)["account"], "b", "new work started under b");
    let log = fleet.log();
    assert!(!log.contains("decision=swap"), "no limit was ever hit:\n{log}");
    assert!(
        !actions_on(&log, "ccl-auto-11").iter().any(|a| a.contains("Escape")),
        "the running turn was not interrupted: {:#?}",
        actions_on(&log, "ccl-auto-11")
    );
    let home_b = format!("CLAUDE_CONFIG_DIR={}", fleet.home("b").display());
    let ops_lines = typed_into(&log, "ops");
    assert!(
        ops_lines.len() == 1 && ops_lines[0].contains(&home_b) && ops_lines[0].ends_with(&format!("--resume {OPS_ID}")),
        "the operator's Claude moved to b with its own conversation: {ops_lines:#?}"
    );
    let status = fleet.status();
    assert_eq!(status["active"], "b", "{status:#}");
    let a = account_entry(&status, "a");
    assert_eq!(a["usage"]["five_hour"]["used_pct"], 97.0, "{status:#}");
    // The gauge prints the reset to the minute; the status line gives it exactly.
    let shown: jiff::Timestamp = a["usage"]["five_hour"]["resets_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a's reset: {status:#}"));
    assert!(
        (shown.as_second() - reset_unix).abs() < 60,
        "{shown} vs {reset_unix}: {status:#}"
    );
    assert!(a["exhausted_until"].is_null(), "a was never refused: {status:#}");
    fleet.stop();
}

/// Three accounts, b's login revoked (every request under it answered 401). The
/// operator's Claude under b shows it: b is reported unhealthy with that reason. Then a's
/// 5-hour limit sends the fleet to c, skipping b, the task finishes there (not failed),
/// and b is never chosen.
#[test]
fn with_b_answering_401_a_limit_sends_the_fleet_to_c_and_b_is_reported_unhealthy() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let spec = ccl_testkit::fleet::FleetSpec {
        accounts: vec!["a".into(), "b".into(), "c".into()],
        pool_min: 1,
        pool_max: 1,
        dedicated: vec!["ops".into()],
        ..Default::default()
    };
    let mut fleet = RealFleet::new(BINS, "real-401", spec, bin);
    fleet.mock.set_behaviour(
        &token("b"),
        Behaviour::Unauthorized401 {
            message: "OAuth token has been revoked. Please obtain a new token.".into(),
        },
    );
    let ops_dir = fleet.root.join("work/ops");
    fleet.start_claude_by_hand("ops", "b", &ops_dir, OPS_ID);
    fleet.start_with_env(None, DEBUG);
    fleet.wait_turns(3, WAIT);
    // The operator speaks to their Claude under b: the answer is a 401.
    let target = "=ops:";
    fleet.tmux(&["send-keys", "-t", target, "-l", "--", OPS_PROMPT]);
    fleet.wait_screen("ops", "the prompt in the box", |s| {
        s.replace('\u{a0}', " ").contains(&format!("❯ {OPS_PROMPT}"))
    });
    fleet.tmux(&["send-keys", "-t", target, "Enter"]);
    fleet.wait_log("account b is unhealthy", WAIT);
    let status = fleet.status();
    let reason = account_entry(&status, "b")["unhealthy"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("revoked"), "the reason is shown: {status:#}");
    if let Some(screen) = fleet
        .capture("ops")
        .contains("OAuth token has been revoked")
        .then(|| fleet.capture("ops"))
    {
        fleet.save_screen("login-revoked-401", &screen);
    }

    // a's limit: the fleet goes to c, never to b.
    let reset_unix = now_unix() + 3 * 3600;
    fleet.mock.set_behaviour(&token("a"), Behaviour::Limit5h { reset_unix });
    let task = fleet.enqueue("q", "A task that meets a spent account");
    fleet.wait_log("swapped from a to c", WAIT);
    fleet.wait_done("q", 1, WAIT);
    assert_eq!(report(&fleet, &task)["account"], "c", "the task finished under c");
    let log = fleet.log();
    assert!(!log.contains(" to b "), "b was never chosen:\n{log}");
    let status = fleet.status();
    assert_eq!(status["active"], "c", "{status:#}");
    assert!(!account_entry(&status, "b")["unhealthy"].is_null(), "{status:#}");
    let failed = fleet.queue_dir("q", "failed");
    assert!(
        std::fs::read_dir(&failed)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "no task failed"
    );
    fleet.stop();
}
