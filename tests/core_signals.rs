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

// -- a swap moved on by the hooks ---------------------------------------------------

/// Three pool sessions busy on tasks under `a` when the operator asks for a swap to `b`,
/// in a world with the real client's timing (`World::lag`), the daemon's loop turning on
/// hook writes, the core's wake-ups and the tick (`Sim::daemon_turn`); runs until every
/// resumed session's continue prompt is taken. The turns from the swap's start on.
fn swap_of_busy_sessions(hooks: bool) -> Sim {
    swap_of_busy_sessions_redrawing_in(hooks, ESCAPE_LAG_MS)
}

/// As [`swap_of_busy_sessions`], with an interrupted turn showing idle `escape_lag_ms`
/// after its Escape.
fn swap_of_busy_sessions_redrawing_in(hooks: bool, escape_lag_ms: i64) -> Sim {
    let mut s = Sim::new(&Setup {
        hooks,
        ..Setup::parallel()
    });
    s.world.lag = true;
    s.world.escape_lag_ms = escape_lag_ms;
    start_work(&mut s, &[S11, S12, S13]);
    keys_only(&mut s, &[S11, S12, S13]);
    s.turns.clear();
    s.world.request(
        "1764000000000-42",
        ccl_core::core::RequestKind::Swap { to: Some("b".into()) },
    );
    let mut taken = 0;
    for _ in 0..200 {
        let acts = s.daemon_turn();
        taken += said(&acts)
            .iter()
            .filter(|l| l.contains("continue prompt submitted"))
            .count();
        if taken == 3 {
            return s;
        }
    }
    panic!("the swap never ended:\n  {}", render(&s.actions()));
}

/// The Claudes of `sessions` write no registry file, so ccl has no pid to signal: a swap
/// stops them with keys (Escape, the Escape pair that clears a box, `/exit`).
fn keys_only(s: &mut Sim, sessions: &[&str]) {
    for name in sessions {
        s.world.pane(name).registry = false;
    }
}

/// Time of the first turn whose actions match `pred`.
fn time_of(s: &Sim, pred: impl Fn(&Action) -> bool) -> i64 {
    s.turns
        .iter()
        .find(|(_, _, actions)| actions.iter().any(&pred))
        .map(|(_, obs, _)| obs.now_ms)
        .expect("no such action")
}

fn began(a: &Action) -> bool {
    said(std::slice::from_ref(a))
        .iter()
        .any(|l| l.starts_with("swap from a to b begins"))
}

fn continue_taken(a: &Action) -> bool {
    said(std::slice::from_ref(a))
        .iter()
        .any(|l| l.contains("continue prompt submitted"))
}

/// The turns after the one in which `pred` first held: (ms after that turn, actions).
fn after(s: &Sim, pred: impl Fn(&ccl_core::core::Observation, &[Action]) -> bool) -> Vec<(i64, Vec<Action>)> {
    let at = s
        .turns
        .iter()
        .position(|(_, obs, actions)| pred(obs, actions))
        .expect("no such turn");
    let t0 = s.turns[at].1.now_ms;
    s.turns[at + 1..]
        .iter()
        .map(|(_, obs, actions)| (obs.now_ms - t0, actions.clone()))
        .collect()
}

fn reported(obs: &ccl_core::core::Observation, session: &str, what: fn(&HookEvent) -> bool) -> bool {
    obs.signals.iter().any(|x| x.session == session && what(&x.event))
}

#[test]
fn a_hooked_swap_moves_from_stage_to_stage_within_a_tick_not_a_tick_per_stage() {
    let s = swap_of_busy_sessions(true);
    let took = time_of(&s, continue_taken) - time_of(&s, began);
    // Escape, Claude idle, /exit, SessionEnd, shell, relaunch, SessionStart, ready,
    // paste, submit_delay, Enter, UserPromptSubmit: all inside one 2 s tick.
    assert!(took < TICK_MS, "swap took {took} ms:\n  {}", render(&s.actions()));
    // The same world without hooks moves on at the tick, as before.
    let s = swap_of_busy_sessions(false);
    let took = time_of(&s, continue_taken) - time_of(&s, began);
    assert!(took >= 3 * TICK_MS, "swap took {took} ms without hooks");
    assert!(
        s.turns.iter().all(|(_, obs, acts)| obs.now_ms % TICK_MS == 0
            || acts
                .iter()
                .any(|a| matches!(a, Action::SendKeys { keys, .. } if keys == &["Enter"]))),
        "without hooks the only early turns are the Enter after a paste"
    );
}

#[test]
fn claude_gone_after_exit_is_seen_at_a_prompt_second_look_after_session_end() {
    let s = swap_of_busy_sessions(true);
    // The turn woken by SessionEnd still shows Claude (its shell follows a moment later):
    // nothing is relaunched then, and the next look comes well before the tick.
    let next = after(&s, |obs, _| {
        reported(obs, S13, |e| matches!(e, HookEvent::SessionEnd { .. }))
    });
    let (dt, acts) = next.first().expect("a turn after SessionEnd");
    assert!(
        *dt <= ccl_core::core::limits::FOLLOW_UP_MS,
        "next look {dt} ms after SessionEnd"
    );
    let relaunched = next
        .iter()
        .find(|(_, a)| !typed(a, S13).is_empty())
        .map(|(dt, _)| *dt)
        .expect("relaunched");
    assert!(
        relaunched < 500,
        "relaunched {relaunched} ms after SessionEnd: {}",
        render(acts)
    );
}

#[test]
fn a_resumed_task_gets_its_continue_prompt_on_the_launch_line_taken_as_claude_starts() {
    let s = swap_of_busy_sessions(true);
    let acts = s.actions();
    let relaunch: Vec<&str> = typed(&acts, S11).into_iter().filter(|l| is_launch(l)).collect();
    assert_eq!(relaunch.len(), 1, "{relaunch:?}");
    assert!(gives_continue(relaunch[0]), "{}", relaunch[0]);
    // Nothing waits for the idle box: no paste, no Enter.
    assert_eq!(continue_prompts(&acts, S11), 1, "{}", render(&acts));
    let next = after(&s, |obs, _| {
        reported(
            obs,
            S11,
            |e| matches!(e, HookEvent::SessionStart { source, .. } if source == "resume"),
        )
    });
    assert!(
        next.iter().all(|(_, a)| !a.iter().any(|x| x.session() == Some(S11))),
        "typed into S11 after its start: {next:?}"
    );
    let taken = s.turns.iter().find(|(_, obs, acts)| {
        reported(
            obs,
            S11,
            |e| matches!(e, HookEvent::SessionStart { source, .. } if source == "resume"),
        ) && said(acts)
            .iter()
            .any(|l| l.contains("ccl-auto-11: continue prompt submitted (UserPromptSubmit)"))
    });
    assert!(
        taken.is_some(),
        "the prompt counts as taken in the turn that sees Claude start:\n  {}",
        render(&acts)
    );
}

#[test]
fn an_escape_into_a_busy_hooked_claude_is_looked_at_again_before_the_tick_and_not_pressed_twice() {
    let s = swap_of_busy_sessions(true);
    let next = after(&s, |_, acts| {
        acts.iter()
            .any(|a| matches!(a, Action::SendKeys { session, keys } if session == S11 && keys == &["Escape"]))
    });
    let exit = next
        .iter()
        .find(|(_, a)| typed(a, S11).contains(&"/exit"))
        .map(|(dt, _)| *dt)
        .expect("/exit typed");
    assert!(exit < TICK_MS, "/exit {exit} ms after the Escape");
    let escapes = next
        .iter()
        .filter(|(dt, a)| {
            *dt < exit
                && a.iter()
                    .any(|x| matches!(x, Action::SendKeys { session, .. } if session == S11))
        })
        .count();
    assert_eq!(escapes, 0, "Escape pressed again before Claude could redraw");
}

#[test]
fn a_claude_slow_to_redraw_after_its_escape_is_not_pressed_again_before_the_retry_interval() {
    // Ten Claudes redrawing on two cores: the interrupted turn shows idle 1.5 s after the
    // Escape, long after the first early look.
    let s = swap_of_busy_sessions_redrawing_in(true, 1_500);
    let next = after(&s, |_, acts| {
        acts.iter()
            .any(|a| matches!(a, Action::SendKeys { session, keys } if session == S11 && keys == &["Escape"]))
    });
    let exit = next
        .iter()
        .find(|(_, a)| typed(a, S11).contains(&"/exit"))
        .map(|(dt, _)| *dt)
        .expect("/exit typed");
    let looks = next.iter().filter(|(dt, _)| *dt < exit).count();
    assert!(looks >= 1, "looked again while Claude redrew ({looks} turns)");
    let pressed = next
        .iter()
        .filter(|(dt, a)| *dt < exit && on(a, S11).iter().any(|x| matches!(x, Action::SendKeys { .. })))
        .count();
    assert_eq!(pressed, 0, "keys pressed again into a Claude still redrawing");
    assert!(exit < 2 * TICK_MS, "/exit {exit} ms after the Escape");
}

#[test]
fn turns_brought_early_by_other_sessions_do_not_finish_a_hooked_task_from_a_stale_idle_screen() {
    let mut s = swap_of_busy_sessions(true);
    // Right after its continue prompt was taken, the resumed Claude still shows its
    // conversation's last finished turn above an empty box (it draws the busy turn a
    // moment later), while other sessions' follow-ups bring a turn every 100 ms.
    s.world.pane(S11).screen = Screen::Finished;
    for _ in 0..5 {
        let acts = s.turn_after(ccl_core::core::limits::FOLLOW_UP_MS);
        assert!(
            !acts.iter().any(|a| matches!(a, Action::FinishTask { .. })),
            "a task filed done from a screen Claude had not redrawn:\n  {}",
            render(&acts)
        );
    }
}

#[test]
fn an_exit_claude_has_not_taken_yet_is_not_cleared_from_its_box() {
    let mut s = Sim::new(&Setup {
        hooks: true,
        ..Setup::parallel()
    });
    s.world.lag = true;
    start_work(&mut s, &[S11]);
    keys_only(&mut s, &[S11]);
    s.world.request(
        "1764000000000-43",
        ccl_core::core::RequestKind::Swap { to: Some("b".into()) },
    );
    s.until(10, "/exit typed", |_, a| typed(a, S11).contains(&"/exit"));
    // Ten Claudes exiting on two cores: this one has not taken its `/exit` yet (no
    // SessionEnd), which still stands in its box, while other sessions' follow-ups bring
    // turns every few hundred milliseconds.
    let p = s.world.pane(S11);
    p.pending = None;
    p.screen = Screen::Idle;
    p.draft = "/exit".into();
    s.world.signals.clear();
    for _ in 0..10 {
        let acts = s.turn_after(300);
        assert!(
            on(&acts, S11).is_empty(),
            "typed into a Claude that has its /exit pending:\n  {}",
            render(&acts)
        );
    }
}

#[test]
fn with_the_signals_on_a_member_that_has_stopped_is_relaunched_before_the_others_have() {
    for hooks in [true, false] {
        let mut s = Sim::new(&Setup {
            hooks,
            ..Setup::parallel()
        });
        s.world.lag = true;
        operator_sessions(&mut s);
        start_work(&mut s, &[S11]);
        keys_only(&mut s, &[S11]);
        s.world.request(
            "1764000000000-43",
            ccl_core::core::RequestKind::Swap { to: Some("b".into()) },
        );
        let acts = s.until(40, "the swap", |_, a| swap_done(a));
        let at = |pred: &dyn Fn(&Action) -> bool| acts.iter().position(pred).expect("no such action");
        // The operator's Claude stops at once (SIGTERM); the busy pool session needs an
        // Escape, then its /exit.
        let ops_relaunched =
            at(&|a| matches!(a, Action::TypeLine { session, line } if session == OPS && is_launch(line)));
        let s11_exit = at(&|a| matches!(a, Action::TypeLine { session, line } if session == S11 && line == "/exit"));
        let s11_relaunched =
            at(&|a| matches!(a, Action::TypeLine { session, line } if session == S11 && is_launch(line)));
        if hooks {
            assert!(
                ops_relaunched < s11_exit,
                "the operator's conversation waited for the pool:\n  {}",
                render(&acts)
            );
        } else {
            assert!(
                s11_exit < ops_relaunched,
                "without the signals every member stops first, as before:\n  {}",
                render(&acts)
            );
        }
        assert!(ops_relaunched < s11_relaunched || !hooks, "{}", render(&acts));
        assert!(typed(&acts, OPS)
            .iter()
            .any(|l| l.contains("CLAUDE_CONFIG_DIR=/homes/b")));
        assert!(typed(&acts, S11)
            .iter()
            .any(|l| l.contains("CLAUDE_CONFIG_DIR=/homes/b")));
    }
}

#[test]
fn nothing_more_is_typed_into_a_claude_within_a_double_press_of_its_interrupting_escape() {
    let mut s = Sim::new(&Setup {
        hooks: true,
        ..Setup::parallel()
    });
    s.world.lag = true;
    // Claude shows the interrupted turn idle at once…
    s.world.escape_lag_ms = 10;
    start_work(&mut s, &[S11, S12]);
    keys_only(&mut s, &[S11, S12]);
    s.world.request(
        "1764000000000-44",
        ccl_core::core::RequestKind::Swap { to: Some("b".into()) },
    );
    let escaped = |acts: &[Action]| {
        acts.iter().any(
            |a| matches!(a, Action::SendKeys { session, keys } if session == S11 && keys == &["Escape".to_string()]),
        )
    };
    let mut escape_at = None;
    for _ in 0..20 {
        let acts = s.daemon_turn();
        if escaped(&acts) {
            escape_at = Some(s.now_ms);
            break;
        }
    }
    let escape_at = escape_at.expect("S11 got its Escape");
    // …and another session's status line wakes the loop a few milliseconds later.
    let id = conversation(&s, S12);
    s.world.report(
        S12,
        HookEvent::Status {
            conversation: id.into(),
            model: None,
            cost_usd: None,
            five_hour: None,
            seven_day: None,
        },
    );
    let mut next_key = None;
    for _ in 0..50 {
        let acts = s.daemon_turn();
        if acts
            .iter()
            .any(|a| a.session() == Some(S11) && !matches!(a, Action::Event(_) | Action::Log { .. }))
        {
            next_key = Some(s.now_ms);
            break;
        }
    }
    let next_key = next_key.expect("S11 typed into again");
    assert!(
        next_key - escape_at >= ccl_core::core::limits::KEYS_FOLLOW_UP_MS,
        "typed into S11 {} ms after its Escape:\n  {}",
        next_key - escape_at,
        render(&s.actions())
    );
}
