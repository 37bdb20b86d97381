//! Scenario tests of the decision core fed by Claude's hooks and status line (the
//! simulator's Claudes report `SessionStart`, `UserPromptSubmit`, `Stop` and
//! `StopFailure` when launched with ccl's `--settings`): a task is done in the turn its
//! `Stop` arrives, with Claude's last message as its result; a `Stop` that leaves
//! background tasks running is not the end; `StopFailure` `rate_limit` swaps with
//! `source=hook`, an API-key 429 does not, `authentication_failed` makes the account
//! unhealthy and moves the fleet without failing the task, `billing_error` spends it; the conversation id follows `SessionStart`
//! (a `/clear` changes it) even against an older registry; a permission prompt needs the
//! operator; the status line fills the account's meters. Sessions without hooks keep the
//! screen rules (`core_scenarios.rs`).

use crate::support::sim;

use ccl_core::core::{Action, HookEvent, TaskReport};
use sim::*;

/// The first limit detection about `session`: its source, reset and decision.
fn limit_detected<'a>(actions: &'a [Action], session: &str) -> Option<(&'a str, Option<i64>, &'a QuotaDecision)> {
    events(actions).into_iter().find_map(|e| match e {
        Event::LimitDetected {
            session: s,
            source,
            reset_ms,
            decision,
            ..
        } if s == session => Some((source.as_str(), *reset_ms, decision)),
        _ => None,
    })
}

fn hooked() -> Setup {
    Setup {
        hooks: true,
        ..Setup::default()
    }
}

/// The turn (1-based, within `turns`) of the first action matching `pred`.
fn turn_of(s: &Sim, pred: impl Fn(&Action) -> bool) -> Option<u64> {
    s.turns
        .iter()
        .find(|(_, _, actions)| actions.iter().any(&pred))
        .map(|(n, _, _)| *n)
}

fn finished_report(s: &Sim) -> Option<TaskReport> {
    s.turns.iter().flat_map(|(_, _, a)| a).find_map(|a| match a {
        Action::FinishTask { report, .. } => Some(report.clone()),
        _ => None,
    })
}

/// The turn whose observation first showed the pane's turn ended (the finished screen).
fn turn_finished_seen(s: &Sim, session: &str) -> Option<u64> {
    s.turns
        .iter()
        .find(|(_, obs, _)| {
            obs.sessions
                .iter()
                .flatten()
                .any(|p| p.name == session && p.capture.as_deref().is_some_and(|c| c.contains("✻")))
        })
        .map(|(n, _, _)| *n)
}

fn one_task(setup: &Setup) -> Sim {
    let mut s = Sim::new(setup);
    s.world.enqueue("alpha", "task-1.md");
    s.until(20, "the task done", |_, a| {
        a.iter().any(|x| matches!(x, Action::FinishTask { .. }))
    });
    s
}

#[test]
fn a_stop_files_the_task_done_in_the_turn_it_arrives_with_claudes_last_message() {
    let s = one_task(&hooked());
    let finished = turn_finished_seen(&s, S11).expect("the turn ended on screen");
    let done = turn_of(&s, |a| matches!(a, Action::FinishTask { .. })).unwrap();
    assert_eq!(done, finished, "done in the turn the Stop arrived, no idle-turn wait");
    let report = finished_report(&s).unwrap();
    assert_eq!(report.reported.result.as_deref(), Some("Done. The task is complete."));
    assert_eq!(report.reported.model.as_deref(), Some("claude-sim"));
    assert!(events(&s.actions()).iter().any(|e| matches!(e,
        Event::Submitted { session, continue_prompt: false, hook: true } if session == S11)));

    // Without hooks the same run waits for the idle turns, and has no result.
    let s = one_task(&Setup::default());
    let finished = turn_finished_seen(&s, S11).unwrap();
    let done = turn_of(&s, |a| matches!(a, Action::FinishTask { .. })).unwrap();
    assert_eq!(done, finished + 1, "the screen fallback needs two idle turns");
    assert_eq!(finished_report(&s).unwrap().reported.result, None);
}

#[test]
fn a_stop_with_background_tasks_running_is_not_the_end() {
    let mut s = Sim::new(&hooked());
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    s.world.pane(S11).screen = Screen::Finished;
    s.world.report(
        S11,
        HookEvent::Stop {
            conversation: id.clone().into(),
            last_message: Some("Started the build in the background.".into()),
            background_running: 1,
        },
    );
    let acts = s.run(6);
    assert!(
        !acts.iter().any(|a| matches!(a, Action::FinishTask { .. })),
        "{}",
        render(&acts)
    );
    assert!(working(&s, S11));
    s.world.report(
        S11,
        HookEvent::Stop {
            conversation: id.into(),
            last_message: Some("Build passed.".into()),
            background_running: 0,
        },
    );
    let acts = s.turn();
    let report = acts.iter().find_map(|a| match a {
        Action::FinishTask { report, .. } => Some(report.clone()),
        _ => None,
    });
    assert_eq!(report.and_then(|r| r.reported.result).as_deref(), Some("Build passed."));
}

#[test]
fn a_stop_failure_rate_limit_swaps_at_once_with_source_hook() {
    let mut s = Sim::new(&hooked());
    start_work(&mut s, &[S11]);
    s.world.exhausted.insert("a".into(), "limit_five_hour");
    s.world.hit(S11, "limit_five_hour");
    let acts = s.turn();
    assert!(swap_began(&acts), "{}", render(&acts));
    let (source, reset_ms, decision) = limit_detected(&acts, S11).expect("a forensic line");
    assert!(
        source == "hook" && decision == &QuotaDecision::Swap,
        "{source} {decision}"
    );
    assert_eq!(
        reset_ms,
        Some(ms("2026-11-24T09:23:00Z")),
        "reset parsed from the message"
    );
}

#[test]
fn an_api_key_429_reported_by_stop_failure_fails_the_task_without_a_swap() {
    let mut s = Sim::new(&hooked());
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    s.world.pane(S11).screen = Screen::Idle;
    s.world.report(
        S11,
        HookEvent::StopFailure {
            conversation: id.into(),
            error: "rate_limit".into(),
            message: "API Error: Request rejected (429) · This request would exceed your account's rate limit. Please try again later.".into(),
        },
    );
    let acts = s.turn();
    assert!(!swap_began(&acts), "{}", render(&acts));
    assert_eq!(s.state().accounts["a"].exhausted_until_ms, None);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::FailTask { reason, .. } if reason.contains("API error"))),
        "{}",
        render(&acts)
    );
}

#[test]
fn the_conversation_follows_session_start_even_against_an_older_registry() {
    let mut s = Sim::new(&hooked());
    start_work(&mut s, &[S11]);
    let old = conversation(&s, S11);
    let new = "0b1c2d3e-0000-4000-8000-00000000c1ea";
    // `/clear`: Claude reports the new conversation; its registry file still names the old.
    s.world.report(
        S11,
        HookEvent::SessionStart {
            conversation: new.into(),
            cwd: "/src/q-alpha".into(),
            source: "clear".into(),
            model: None,
        },
    );
    let acts = s.run(3);
    assert_ne!(old, new);
    assert_eq!(conversation(&s, S11), new);
    assert!(logs(&acts)
        .iter()
        .any(|l| l.contains(&format!("conversation {new} (SessionStart clear)"))));
}

#[test]
fn a_permission_prompt_needs_the_operator_and_the_status_line_fills_the_meters() {
    let mut s = Sim::new(&hooked());
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    s.world.report(
        S11,
        HookEvent::Notification {
            kind: "permission_prompt".into(),
            message: "Claude needs your permission to use Bash".into(),
        },
    );
    s.world.report(
        S11,
        HookEvent::Status {
            conversation: id.clone().into(),
            model: Some("claude-opus".into()),
            cost_usd: Some(0.5),
            five_hour: Some(ccl_core::core::UsageWindow {
                used_pct: 42.0,
                resets_at_ms: Some(ms("2026-11-24T09:00:00Z")),
            }),
            seven_day: None,
        },
    );
    s.turn();
    let st = &s.state().sessions[S11];
    assert_eq!(
        st.attention.as_deref(),
        Some("claude asks: Claude needs your permission to use Bash")
    );
    assert_eq!(st.cost_usd, Some(0.5));
    let usage = s.state().accounts["a"].usage.clone().expect("meters of a");
    assert_eq!(usage.five_hour.map(|w| w.used_pct), Some(42.0));
    assert_eq!(usage.session, S11);
    // Answered: Claude goes on, and the attention clears.
    s.world.report(
        S11,
        HookEvent::PromptSubmitted {
            conversation: id.into(),
        },
    );
    s.turn();
    assert_eq!(s.state().sessions[S11].attention, None);
}

#[test]
fn a_stop_whose_last_words_are_a_limit_line_is_left_to_the_transcript_and_screen() {
    let mut s = Sim::new(&hooked());
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    // The screen has not drawn the limit yet; the transcript's record comes a turn later.
    s.world.pane(S11).screen = Screen::Idle;
    s.world.report(
        S11,
        HookEvent::Stop {
            conversation: id.clone().into(),
            last_message: Some("You've hit your 5-hour limit · resets 9:23am (UTC)".into()),
            background_running: 0,
        },
    );
    let acts = s.turn();
    assert!(
        !acts.iter().any(|a| matches!(a, Action::FinishTask { .. })),
        "{}",
        render(&acts)
    );
    s.world.transcripts.push(ccl_core::core::TranscriptSeen {
        session: S11.into(),
        conversation: id.into(),
        records: vec![ccl_core::transcript::Record {
            uuid: "rec-limit".into(),
            timestamp: None,
            signal: ccl_core::transcript::Signal::LimitHit {
                text: "You've hit your 5-hour limit · resets 9:23am (UTC)".into(),
            },
        }],
    });
    let acts = s.turn();
    let (source, _, decision) = limit_detected(&acts, S11).expect("the transcript's record decides");
    assert!(
        source == "transcript" && decision == &QuotaDecision::Swap,
        "{source} {decision}"
    );
    assert!(!s.actions().iter().any(|a| matches!(a, Action::FinishTask { .. })));
}

/// `StopFailure` `authentication_failed` is Claude's own word that the login is gone: the
/// account is unhealthy, the task is not failed, and the fleet moves to another account.
#[test]
fn a_stop_failure_authentication_failed_makes_the_account_unhealthy_and_moves_the_fleet() {
    let mut s = Sim::new(&Setup {
        accounts: vec!["a", "b", "c"],
        ..hooked()
    });
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    s.world.pane(S11).screen = Screen::Idle;
    s.world.report(
        S11,
        HookEvent::StopFailure {
            conversation: id.into(),
            error: "authentication_failed".into(),
            message: "Please run /login · API Error: 401 OAuth token has been revoked. Please obtain a new token."
                .into(),
        },
    );
    let acts = s.until(10, "the swap", |_, a| swapped(a, "a", "b"));
    let why = s.state().accounts["a"].unhealthy.clone().unwrap_or_default();
    assert!(why.starts_with("authentication_failed: Please run /login"), "{why}");
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::FailTask { .. } | Action::FinishTask { .. })),
        "{}",
        render(&acts)
    );
}

/// `StopFailure` `billing_error` (out of extra usage or credits) spends the account like a
/// limit: the fleet moves on and the task is not failed.
#[test]
fn a_stop_failure_billing_error_spends_the_account_like_a_limit() {
    let mut s = Sim::new(&hooked());
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    s.world.pane(S11).screen = Screen::Idle;
    s.world.report(
        S11,
        HookEvent::StopFailure {
            conversation: id.into(),
            error: "billing_error".into(),
            message: "You're out of extra usage".into(),
        },
    );
    let acts = s.until(10, "the swap", |_, a| swapped(a, "a", "b"));
    assert!(s.state().accounts["a"].exhausted_until_ms.is_some());
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, Action::FailTask { .. } | Action::FinishTask { .. })),
        "{}",
        render(&acts)
    );
}
