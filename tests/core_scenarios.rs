//! Scenario tests of the decision core, with no tmux and no process: a simulated world
//! (tests/support/sim.rs) shows real pane captures from tests/screens/ and carries out
//! the core's actions, turn after turn. Each test drives one feature a user would notice
//! — when a usage limit swaps accounts and when it must not, what a swap does to every
//! kind of session, how tasks are dispatched, verified, retried and failed — and asserts
//! it through the actions the core returns. The simulator also checks the contract's
//! invariants on every turn (only managed sessions touched, nothing pasted into a shell,
//! a dedicated session never given a task or `/exit`, Enter only on ccl's own text in an
//! empty box or shell line, no pane action in a turn without a tmux listing).

use crate::support::sim;

use ccl_core::core::{Action, Activity, RequestKind, State, Usage, UsageWindow};
use ccl_core::screen::LimitKind;
use ccl_core::transcript::{Record, Signal};
use sim::*;

/// One limit detection about a session and what was decided (its forensic `quota:` line).
#[derive(Debug)]
struct Quota<'a> {
    account: &'a str,
    source: &'a str,
    pattern: &'a str,
    kind: Option<LimitKind>,
    reset_ms: Option<i64>,
    decision: &'a QuotaDecision,
    snippet: &'a str,
}

/// The limit detections about one session.
fn quota_lines<'a>(actions: &'a [Action], session: &str) -> Vec<Quota<'a>> {
    events(actions)
        .into_iter()
        .filter_map(|e| match e {
            Event::LimitDetected {
                session: s,
                account,
                source,
                pattern,
                kind,
                reset_ms,
                decision,
                snippet,
            } if s == session => Some(Quota {
                account,
                source,
                pattern,
                kind: *kind,
                reset_ms: *reset_ms,
                decision,
                snippet,
            }),
            _ => None,
        })
        .collect()
}

/// A line some decision or message of these actions logs contains `text`.
fn any_said(actions: &[Action], text: &str) -> bool {
    said(actions).iter().any(|l| l.contains(text))
}

fn limit_record(text: &str) -> Record {
    Record {
        uuid: format!("rec-{}", text.len()),
        timestamp: None,
        signal: Signal::LimitHit { text: text.into() },
    }
}

fn position(actions: &[Action], pred: impl Fn(&Action) -> bool) -> Option<usize> {
    actions.iter().position(pred)
}

fn exhausted_until(s: &Sim, account: &str) -> Option<i64> {
    s.state().accounts[account].exhausted_until_ms
}

// ---------------------------------------------------------------------------------------
// Quota: what counts as a usage-limit hit

#[test]
fn a_banner_redrawn_by_resume_is_not_a_new_hit() {
    // A short cooldown, so only the stale-banner rule can keep the redraw from swapping.
    let mut s = Sim::new(&Setup {
        cooldown: "2s",
        ..Setup::default()
    });
    operator_sessions(&mut s);
    // The operator's conversation hit a limit earlier; `--resume` redraws that banner.
    s.world.banners.insert(OPS_ID.into(), "limit_five_hour");
    s.run(2);
    s.world.request("r1", RequestKind::Swap { to: None });
    s.until(10, "the manual swap", |_, a| swap_done(a));
    let after = s.run(30);

    assert_eq!(s.world.pane(OPS).screen, Screen::Corpus("limit_five_hour"));
    assert!(!swap_began(&after), "a redrawn banner swapped:\n  {}", render(&after));
    assert_eq!((s.state().swaps, s.state().active.as_str()), (1, "b"));
    assert_eq!(exhausted_until(&s, "b"), None);
    let lines = quota_lines(&after, OPS);
    assert_eq!(lines.len(), 1, "logged once, not every turn: {lines:?}");
    assert_eq!(lines[0].decision, &QuotaDecision::Stale, "{:?}", lines[0]);
}

#[test]
fn a_banner_on_screen_when_ccl_starts_is_history() {
    let mut s = Sim::new(&Setup::default());
    operator_sessions(&mut s);
    s.world.show(OPS, "limit_five_hour");
    let acts = s.run(10);
    assert!(!swap_began(&acts), "{}", render(&acts));
    assert_eq!(exhausted_until(&s, "a"), None);
    assert!(quota_lines(&acts, OPS)
        .iter()
        .all(|l| l.decision == &QuotaDecision::Stale));
}

#[test]
fn a_hit_without_reset_time_needs_consecutive_confirmations() {
    let mut s = Sim::new(&Setup::default());
    start_work(&mut s, &[S11]);

    s.world.hit(S11, "legacy_api_429_json");
    let first = s.turn();
    assert!(!swap_began(&first));
    assert_eq!(quota_lines(&first, S11)[0].decision, &QuotaDecision::Confirming(1, 2));

    // The line is gone the next turn (Claude retried): the count starts again.
    s.world.pane(S11).screen = Screen::Busy { left: 10_000 };
    assert!(!swap_began(&s.turn()));
    s.world.show(S11, "legacy_api_429_json");
    let again = s.turn();
    assert!(!swap_began(&again), "{}", render(&again));
    assert_eq!(quota_lines(&again, S11)[0].decision, &QuotaDecision::Confirming(1, 2));

    let confirmed = s.turn();
    assert!(swap_began(&confirmed), "{}", render(&confirmed));
    let line = &quota_lines(&confirmed, S11)[0];
    assert!(
        line.decision == &QuotaDecision::Swap && line.reset_ms.is_none(),
        "{line:?}"
    );
}

#[test]
fn a_hit_during_the_cooldown_after_a_swap_is_logged_and_does_not_swap() {
    let mut s = Sim::new(&Setup::parallel());
    start_work(&mut s, &[S11, S12]);
    s.world.hit(S11, "limit_five_hour");
    s.until(10, "the first swap", |_, a| swap_done(a));
    s.until(10, "work continues", |s, _| working(s, S12));

    s.world.hit(S12, "hit_session_los_angeles");
    let acts = s.run(10);
    assert!(!swap_began(&acts), "{}", render(&acts));
    assert_eq!((s.state().swaps, s.state().active.as_str()), (1, "b"));
    let lines = quota_lines(&acts, S12);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].account == "b" && lines[0].decision == &QuotaDecision::Cooldown,
        "{:?}",
        lines[0]
    );
}

#[test]
fn server_errors_that_say_rate_limit_never_swap() {
    let mut s = Sim::new(&Setup::default());
    operator_sessions(&mut s);
    start_work(&mut s, &[S11]);
    // Claude stopped on the error and waits; no registry file says its turn ended.
    s.world.pane(S11).registry = false;
    s.world.show(S11, "server_500_json_rate_limit");
    // A limit line next to a 500 in the same region is vetoed by it.
    s.world.show(OPS, "hit_vetoed_by_a_newer_server_error");
    let acts = s.run(60);

    assert!(!swap_began(&acts), "{}", render(&acts));
    assert_eq!((s.state().swaps, s.state().active.as_str()), (0, "a"));
    assert_eq!((exhausted_until(&s, "a"), exhausted_until(&s, "b")), (None, None));
    assert!(on(&acts, S11).is_empty(), "{}", render(&acts));
    assert!(!acts.iter().any(|a| matches!(a, Action::StopClaude { .. })));
    let ops = quota_lines(&acts, OPS);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert!(
        ops[0].decision == &QuotaDecision::Vetoed && ops[0].pattern == "hit_limit",
        "{:?}",
        ops[0]
    );
}

#[test]
fn an_api_key_429_does_not_swap_but_a_subscription_limit_does() {
    let mut s = Sim::new(&Setup::default());
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    s.world.pane(S11).registry = false;
    s.world.show(S11, "api_key_rate_limit_429");
    // The transcript's 429 record carries the same text as the screen.
    s.world.transcripts.push(ccl_core::core::TranscriptSeen {
        session: S11.into(),
        conversation: id.clone().into(),
        records: vec![limit_record(
            "API Error: Request rejected (429) · This request would exceed your account's rate limit. Please try again later.",
        )],
    });
    let acts = s.run(20);
    assert!(!swap_began(&acts), "{}", render(&acts));
    assert_eq!(exhausted_until(&s, "a"), None);

    // The same structured signal with a subscription limit's text is a hit at once.
    s.world.transcripts.push(ccl_core::core::TranscriptSeen {
        session: S11.into(),
        conversation: id.into(),
        records: vec![limit_record("You've hit your 5-hour limit · resets 9:23am (UTC)")],
    });
    let acts = s.turn();
    assert!(swap_began(&acts), "{}", render(&acts));
    assert_eq!(quota_lines(&acts, S11)[0].source, "transcript");
}

#[test]
fn a_hit_blocks_dispatch_in_the_same_turn() {
    let mut s = Sim::new(&Setup::parallel());
    start_work(&mut s, &[S11]);
    s.run(2);
    // One observation holds a new task, two free pool sessions, and the limit.
    s.world.enqueue("alpha", "late.md");
    s.world.hit(S11, "limit_five_hour");
    let acts = s.turn();
    assert!(claims(&acts).is_empty(), "{}", render(&acts));
    assert!(swap_began(&acts));

    // Once the swap is done, the task goes out under the new account.
    let mut acts = s.until(10, "late.md claimed", |_, a| claims(a).iter().any(|c| c.2 == "late.md"));
    // Its worktree is made, then Claude is launched there.
    acts.extend(s.run(1));
    let (session, _, _) = claims(&acts).into_iter().find(|c| c.2 == "late.md").unwrap();
    assert!(swap_done(&acts));
    let launch = typed(&acts, &session).into_iter().find(|l| is_launch(l)).unwrap();
    assert!(launch.contains("CLAUDE_CONFIG_DIR=/homes/b"), "{launch}");
}

#[test]
fn only_hits_under_the_active_account_count() {
    let mut s = Sim::new(&Setup::default());
    // The operator runs this Claude under account b while ccl's active account is a.
    s.world.claude(OPS, "b", OPS_ID, "/src/ccl-1-ops", true);
    s.run(2);
    s.world.hit(OPS, "limit_five_hour");
    let acts = s.run(5);
    assert!(!swap_began(&acts), "{}", render(&acts));
    assert_eq!(s.state().active, "a");
    let lines = quota_lines(&acts, OPS);
    assert!(
        lines[0].account == "b" && lines[0].decision == &QuotaDecision::OtherAccount,
        "{lines:?}"
    );
    // Still worth knowing: b is not a swap target until its reset.
    assert_eq!(exhausted_until(&s, "b"), Some(ms("2026-11-24T09:23:00Z")));
}

#[test]
fn a_hit_in_a_dedicated_session_counts_and_is_logged_with_its_facts() {
    let mut s = Sim::new(&Setup::default());
    operator_sessions(&mut s);
    s.run(2);
    s.world.hit(OPS, "limit_five_hour");
    let acts = s.turn();
    assert!(swap_began(&acts), "{}", render(&acts));
    let lines = quota_lines(&acts, OPS);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert_eq!(
        (l.account, l.source, l.pattern, l.kind, l.reset_ms, l.decision),
        (
            "a",
            "pane",
            "hit_five_hour",
            Some(LimitKind::FiveHour),
            Some(ms("2026-11-24T09:23:00Z")),
            &QuotaDecision::Swap
        ),
        "{l:?}"
    );
    assert!(
        l.snippet.contains("You've hit your 5-hour limit · resets 9:23am (UTC)"),
        "{l:?}"
    );
    assert_eq!(exhausted_until(&s, "a"), Some(ms("2026-11-24T09:23:00Z")));
}

// ---------------------------------------------------------------------------------------
// Swap: what happens to every kind of session

#[test]
fn a_swap_moves_every_conversation_to_the_next_account() {
    let mut s = Sim::new(&Setup::parallel());
    operator_sessions(&mut s);
    // The operator's own background jobs in their sessions (the simulator fails the turn
    // should any of them be signalled).
    s.world.background_job(OPS);
    s.world.background_job(NOTES);
    start_work(&mut s, &[S11, S12]);
    let ids = [(S11, conversation(&s, S11)), (S12, conversation(&s, S12))];
    s.world.hit(S11, "limit_five_hour");
    let mut acts = s.until(10, "the swap", |_, a| swap_done(a));
    acts.extend(s.until(10, "both working again", |s, _| working(s, S11) && working(s, S12)));

    for (name, id) in &ids {
        let lines = typed(&acts, name);
        assert_eq!(lines.len(), 2, "{name}: {lines:?}");
        assert_eq!(lines[0], "/exit", "{name}");
        // Each task's conversation goes on in its own worktree.
        let task = &s.state().sessions[*name].assignment.as_ref().unwrap().task.task;
        let worktree = format!("/src/q-alpha/.agent-queue/worktrees/{}", task.trim_end_matches(".md"));
        assert!(
            lines[1].starts_with(&format!("cd {worktree} "))
                && lines[1].contains("CLAUDE_CONFIG_DIR=/homes/b")
                && lines[1].ends_with(&format!("--resume {id}")),
            "{name}: {}",
            lines[1]
        );
        let launched = position(
            &acts,
            |a| matches!(a, Action::TypeLine { session, line } if session == name && is_launch(line)),
        );
        let continued = position(
            &acts,
            |a| matches!(a, Action::PasteText { session, text } if session == name && text == CONTINUE_PROMPT),
        );
        assert!(launched < continued, "{name}: continue prompt before the launch");
    }
    // The busy session was interrupted before its /exit.
    assert_eq!(keys(&acts, S12)[0], ["Escape".to_string()]);
    // A pool session at its shell with no task is left alone.
    assert!(on(&acts, S13).is_empty(), "{}", render(&acts));

    // The operator's session with a known id: SIGTERM, then its own conversation resumed.
    let ops = on(&acts, OPS);
    let ops_claude = s.world.pane(OPS).claude_pid();
    assert!(
        matches!(ops[0], Action::StopClaude { pid, .. } if *pid == ops_claude),
        "exactly the Claude its registry entry names: {ops:?}"
    );
    assert!(render(&acts).contains(&format!("stop claude in ccl-1-ops (SIGTERM to pid {ops_claude})")));
    assert_eq!(
        typed(&acts, OPS),
        [format!(
            "cd /src/ccl-1-ops && CLAUDE_CONFIG_DIR=/homes/b claude --dangerously-skip-permissions --resume {OPS_ID}"
        )]
    );
    assert!(!ops.iter().any(|a| matches!(a, Action::PasteText { .. })));

    // The one whose id is unknown stays at its shell, and the log says why.
    let notes_claude = s.world.pane(NOTES).claude_pid();
    assert!(
        matches!(on(&acts, NOTES)[..], [Action::StopClaude { pid, .. }] if *pid == notes_claude),
        "no registry entry: the pane's foreground Claude: {}",
        render(&acts)
    );
    assert!(events(&acts).iter().any(|e| matches!(e,
        Event::LeftAtShell { session, conversation: None } if session == NOTES)));
    assert_eq!(s.world.pane(NOTES).screen, Screen::Shell { hint: None });
    assert_eq!(s.state().active, "b");
}

#[test]
fn a_weekly_limit_menu_gets_escape_before_anything_else() {
    let mut s = Sim::new(&Setup::default());
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    s.world.hit(S11, "limit_weekly_menu");
    let acts = s.until(10, "the swap", |_, a| swap_done(a));
    let mine = on(&acts, S11);
    assert!(
        matches!(mine[0], Action::SendKeys { keys, .. } if keys == &["Escape".to_string()]),
        "{mine:?}"
    );
    assert_eq!(typed(&acts, S11)[0], "/exit");
    assert!(typed(&acts, S11)[1].ends_with(&format!("--resume {id}")));
    let line = &quota_lines(&acts, S11)[0];
    assert!(
        line.kind == Some(LimitKind::Weekly) && line.reset_ms == Some(ms("2026-11-27T06:26:00Z")),
        "{line:?}"
    );
}

#[test]
fn three_accounts_take_turns() {
    let mut s = Sim::new(&Setup {
        accounts: vec!["a", "b", "c"],
        ..Setup::default()
    });
    start_work(&mut s, &[S11]);
    let hits = [
        ("limit_five_hour", "swapped from a to b"),
        ("hit_session_los_angeles", "swapped from b to c"),
        ("legacy_reset_at_zone", "swapped from c to a"),
    ];
    for (i, (screen, swapped)) in hits.iter().enumerate() {
        if i == 2 {
            // a's limit (9:23) has passed by now; b's (8:50) too.
            s.jump_to("2026-11-24T09:30:00Z");
        }
        s.world.hit(S11, screen);
        let acts = s.until(10, swapped, |_, a| swap_done(a));
        let (from, to) = swapped
            .strip_prefix("swapped from ")
            .and_then(|t| t.split_once(" to "))
            .expect("from and to");
        assert!(sim::swapped(&acts, from, to), "{}", render(&acts));
        s.until(10, "working again", |s, _| working(s, S11));
        // Past the cooldown before the next hit.
        s.jump(6 * 60_000);
    }
    let accounts: Vec<&str> = s.world.launches.iter().map(|(_, a, _, _)| a.as_str()).collect();
    assert_eq!(accounts, ["a", "b", "c", "a"]);
}

#[test]
fn a_swap_skips_an_exhausted_account() {
    let mut s = Sim::new(&Setup {
        accounts: vec!["a", "b", "c"],
        ..Setup::default()
    });
    // The operator's Claude under b hits b's limit: b is out until its reset.
    s.world.claude(NOTES, "b", NOTES_ID, "/src/ccl-2-notes", true);
    start_work(&mut s, &[S11]);
    s.world.hit(NOTES, "hit_session_los_angeles");
    s.turn();
    s.world.hit(S11, "limit_five_hour");
    let acts = s.until(10, "the swap", |_, a| swap_done(a));
    assert!(sim::swapped(&acts, "a", "c"), "{}", render(&acts));
}

#[test]
fn with_every_account_exhausted_work_waits_then_resumes_at_the_earliest_reset() {
    let mut s = Sim::new(&Setup::parallel());
    start_work(&mut s, &[S11]);
    s.world.hit(S11, "limit_five_hour"); // a: until 9:23
    s.until(10, "swap to b", |_, a| swap_done(a));
    s.until(10, "working under b", |s, _| working(s, S11));
    s.jump(6 * 60_000);
    s.world.hit(S11, "legacy_session_reached"); // b: until 20:00
    let acts = s.turn();
    assert!(s.state().all_exhausted);
    assert!(
        events(&acts)
            .iter()
            .any(|e| matches!(e, Event::AllExhausted { until, .. } if until == "2026-11-24T09:23:00Z")),
        "{}",
        render(&acts)
    );

    // Waiting: a new task and two free pool sessions, and still nothing moves.
    s.world.enqueue("alpha", "waiting.md");
    let acts = s.run(15);
    assert!(claims(&acts).is_empty() && !swap_began(&acts), "{}", render(&acts));
    assert!(acts.iter().all(|a| a.session().is_none()), "{}", render(&acts));
    let status = ccl::status::report(s.config(), Some(s.state()), None, s.now_ms);
    assert_eq!(status.all_exhausted_until.as_deref(), Some("2026-11-24T09:23:00Z"));
    assert_eq!(
        status.accounts[1].exhausted_until.as_deref(),
        Some("2026-11-24T20:00:00Z")
    );

    // a's reset passes: back to a, the task continues, the waiting one goes out.
    s.jump_to("2026-11-24T09:24:00Z");
    let acts = s.until(10, "swap back", |_, a| swap_done(a));
    assert!(sim::swapped(&acts, "b", "a"));
    assert!(!s.state().all_exhausted);
    let mut acts = s.until(10, "waiting.md claimed", |_, a| {
        claims(a).iter().any(|c| c.2 == "waiting.md")
    });
    acts.extend(s.run(1));
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::PasteText { session, text } if session == S11 && text == CONTINUE_PROMPT)));
    let claimed_by = &claims(&acts)[0].0;
    assert!(typed(&acts, claimed_by)[0].contains("CLAUDE_CONFIG_DIR=/homes/a"));
}

#[test]
fn a_manual_swap_is_answered_when_done() {
    let mut s = Sim::new(&Setup::default());
    operator_sessions(&mut s);
    start_work(&mut s, &[S11]);
    s.world.request("req-1", RequestKind::Swap { to: None });
    let acts = s.until(10, "a reply", |s, _| !s.world.replies.is_empty());
    assert!(swap_done(&acts), "answered before the swap was done");
    assert_eq!(
        s.world.replies,
        [("req-1".to_string(), true, "swapped from a to b".to_string())]
    );
    assert!(typed(&acts, S11)
        .iter()
        .any(|l| l.contains("CLAUDE_CONFIG_DIR=/homes/b") && l.contains("--resume")));
    // A manual swap does not make the old account exhausted.
    assert_eq!(exhausted_until(&s, "a"), None);
}

#[test]
fn a_manual_swap_to_an_unknown_or_exhausted_account_is_refused() {
    let mut s = Sim::new(&Setup::default());
    s.world.claude(OPS, "b", OPS_ID, "/src/ccl-1-ops", true);
    s.run(2);
    s.world.hit(OPS, "limit_five_hour"); // b: until 9:23
    s.turn();
    s.world
        .request("r-unknown", RequestKind::Swap { to: Some("zz".into()) });
    s.world
        .request("r-exhausted", RequestKind::Swap { to: Some("b".into()) });
    s.world.request("r-active", RequestKind::Swap { to: Some("a".into()) });
    s.world.request("r-any", RequestKind::Swap { to: None });
    let acts = s.turn();
    let replies: Vec<(&str, bool, &str)> = s
        .world
        .replies
        .iter()
        .map(|(id, ok, m)| (id.as_str(), *ok, m.as_str()))
        .collect();
    assert_eq!(
        replies,
        [
            ("r-unknown", false, "refused: no account named 'zz'"),
            (
                "r-exhausted",
                false,
                "refused: b is exhausted until 2026-11-24T09:23:00Z"
            ),
            ("r-active", false, "refused: a is already the active account"),
            ("r-any", false, "refused: no other account is available"),
        ]
    );
    // Refusing is all that happens: a is fine, so work does not stop.
    assert!(!swap_began(&acts) && !s.state().all_exhausted, "{}", render(&acts));
    assert!(!events(&acts).iter().any(|e| matches!(e, Event::AllExhausted { .. })));
    assert!(!any_said(&acts, "all accounts exhausted"));
    s.world.enqueue("alpha", "next.md");
    // Taken on the second scan that finds it unchanged (dispatch.settle).
    assert_eq!(claims(&s.run(2)).len(), 1);
}

#[test]
fn a_restart_in_the_middle_of_a_swap_finishes_it() {
    let mut s = Sim::new(&Setup::parallel());
    operator_sessions(&mut s);
    start_work(&mut s, &[S11, S12]);
    let (c11, c12) = (conversation(&s, S11), conversation(&s, S12));
    s.world.hit(S11, "limit_five_hour");
    let began = s.turn();
    assert!(swap_began(&began));
    assert!(!swap_done(&began));

    s.restart();
    assert!(s.state().swap.is_some(), "the swap survives state.json");
    let acts = s.until(10, "the swap", |_, a| swap_done(a));
    // S11 had its /exit before the restart; S12 (busy) only its Escape.
    assert!(typed(&acts, S11)[0].ends_with(&format!("--resume {c11}")));
    assert_eq!(typed(&acts, S12)[0], "/exit");
    assert!(typed(&acts, S12)[1].ends_with(&format!("--resume {c12}")));
    assert!(typed(&acts, OPS)[0].ends_with(&format!("--resume {OPS_ID}")));
    assert!(!acts.iter().any(|a| matches!(a, Action::RequeueTask { .. })));
    let acts = s.until(10, "both continue", |s, _| working(s, S11) && working(s, S12));
    assert_eq!(
        acts.iter()
            .filter(|a| matches!(a, Action::PasteText { text, .. } if text == CONTINUE_PROMPT))
            .count(),
        2
    );
}

// ---------------------------------------------------------------------------------------
// Dispatch and the watcher

#[test]
fn a_dedicated_session_never_gets_a_task_even_when_it_is_the_only_idle_one() {
    let mut s = Sim::new(&Setup::parallel());
    operator_sessions(&mut s);
    s.world.kill_claude(NOTES); // one at its shell, one with Claude idle
    start_work(&mut s, &[S11, S12, S13]);
    s.world.enqueue("alpha", "extra-1.md");
    s.world.enqueue("alpha", "extra-2.md");
    let acts = s.run(30);
    assert!(
        on(&acts, OPS).is_empty() && on(&acts, NOTES).is_empty(),
        "{}",
        render(&acts)
    );
    assert_eq!(s.world.queue("alpha").inbox.len(), 2);
}

#[test]
fn a_dedicated_session_marked_working_is_only_marked_idle() {
    // A state as the old system left it: the operator's session "working" on a task.
    let config = Setup::default().config();
    let mut state = State::fresh(&config, SEED);
    let mut ops = sim::dedicated_marked_working("old.md");
    ops.account = Some("a".into());
    ops.conversation = Some(OPS_ID.into());
    state.sessions.insert(OPS.into(), ops);
    state.started = true;
    let mut s = Sim::with_state(config, state);
    s.world.claude(OPS, "a", OPS_ID, "/src/ccl-1-ops", true);
    s.world.pane(OPS).screen = Screen::Finished;
    s.world.queue("alpha").running.push("old.md".into());

    let acts = s.run(10);
    assert!(on(&acts, OPS).is_empty(), "{}", render(&acts));
    assert!(!acts.iter().any(|a| match a {
        Action::FinishTask { report, .. } => report.session == OPS,
        Action::FailTask { .. } => true,
        _ => false,
    }));
    let requeue = acts
        .iter()
        .find_map(|a| match a {
            Action::RequeueTask { task, reason, .. } if task == "old.md" => Some(reason.clone()),
            _ => None,
        })
        .expect("the task goes back to the inbox");
    assert!(requeue.contains("dedicated"), "{requeue}");
    let ops = &s.state().sessions[OPS];
    assert!(ops.assignment.is_none() && matches!(ops.activity, Activity::Free));
    // And then it is done by a pool session.
    assert_eq!(claims(&acts)[0], (S11.into(), "alpha".into(), "old.md".into()));
}

#[test]
fn queues_take_turns() {
    let mut s = Sim::new(&Setup {
        queues: vec!["alpha", "beta"],
        dedicated: vec![],
        ..Setup::default()
    });
    for i in 1..=3 {
        s.world.enqueue("alpha", &format!("a{i}.md"));
    }
    for i in 1..=3 {
        s.world.enqueue("beta", &format!("b{i}.md"));
    }
    let acts = s.until(30, "six claims", |s, _| {
        s.world
            .queues
            .values()
            .map(|q| q.running.len() + q.done.len())
            .sum::<usize>()
            == 6
    });
    let order: Vec<String> = claims(&acts).into_iter().map(|c| c.2).collect();
    assert_eq!(order, ["a1.md", "b1.md", "a2.md", "b2.md", "a3.md", "b3.md"]);
}

#[test]
fn bad_inbox_files_are_failed_from_the_inbox() {
    let mut s = Sim::new(&Setup::default());
    s.world.enqueue_bad("alpha", "link.md", "a symlink, not a regular file");
    s.world.enqueue("alpha", "good.md");
    // Both are judged once quiet: unchanged on two scans in a row.
    let acts = s.run(2);
    assert!(acts.contains(&Action::FailTask {
        queue: "alpha".into(),
        task: "link.md".into(),
        from: "inbox".into(),
        reason: "a symlink, not a regular file".into(),
    }));
    assert_eq!(claims(&acts), [(S11.into(), "alpha".into(), "good.md".into())]);
    let q = s.world.queue("alpha");
    assert_eq!(q.failed, [("link.md".into(), "a symlink, not a regular file".into())]);
}

#[test]
fn tasks_in_running_that_no_session_owns_go_back_at_start() {
    let mut s = Sim::new(&Setup::default());
    s.world.queue("alpha").running.push("orphan.md".into());
    let first = s.turn();
    assert!(
        first
            .iter()
            .any(|a| matches!(a, Action::RequeueTask { task, reason, .. }
            if task == "orphan.md" && reason.contains("recovered at start"))),
        "{}",
        render(&first)
    );

    // After a restart from state.json too: a task some session works on stays, a file
    // nobody owns goes back.
    start_work(&mut s, &[S11]);
    s.world.queue("alpha").running.push("stray.md".into());
    s.restart();
    let acts = s.turn();
    let requeued: Vec<&str> = acts
        .iter()
        .filter_map(|a| match a {
            Action::RequeueTask { task, .. } => Some(task.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(requeued, ["stray.md"], "{}", render(&acts));
}

/// Which tasks ended where, and how often each was claimed: "exactly once".
fn outcome(s: &mut Sim, task: &str) -> (usize, usize, usize, usize) {
    let q = s.world.queue("alpha").clone();
    let count = |v: &[String]| v.iter().filter(|n| *n == task).count();
    (
        count(&q.done),
        q.failed.iter().filter(|(n, _)| n == task).count(),
        count(&q.running),
        q.inbox.iter().filter(|e| e.name == task).count(),
    )
}

#[test]
fn a_crash_between_deciding_done_and_the_move_files_the_task_at_start() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        ..Setup::default()
    });
    s.world.enqueue("alpha", "t.md");
    // Killed right after the turn that decided "done" was saved: no move ran.
    s.crash_when(60, "the task done", |a| matches!(a, Action::FinishTask { .. }));
    assert_eq!(
        outcome(&mut s, "t.md"),
        (0, 0, 1, 0),
        "still in running/ after the crash"
    );
    let after = s.run(10);
    assert_eq!(
        outcome(&mut s, "t.md"),
        (1, 0, 0, 0),
        "filed once, never requeued:\n  {}",
        render(&after)
    );
    assert!(claims(&after).is_empty(), "claimed again:\n  {}", render(&after));
    let report = after.iter().find_map(|a| match a {
        Action::FinishTask { report, .. } => Some(report.clone()),
        _ => None,
    });
    let recovered = report.and_then(|r| r.recovered).unwrap_or_default();
    assert!(recovered.contains("restart"), "done/t.md.json says so: {recovered:?}");
}

#[test]
fn a_crash_between_deciding_failed_and_the_move_files_the_task_at_start() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        task_timeout: "1m",
        ..Setup::default()
    });
    s.world.busy_turns = 10_000;
    s.world.enqueue("alpha", "endless.md");
    s.crash_when(80, "the task failed", |a| matches!(a, Action::FailTask { .. }));
    let after = s.run(10);
    assert_eq!(outcome(&mut s, "endless.md"), (0, 1, 0, 0), "{}", render(&after));
    assert!(claims(&after).is_empty(), "run again:\n  {}", render(&after));
}

#[test]
fn a_crash_after_deciding_a_requeue_gives_the_task_back_once() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        ..Setup::default()
    });
    s.world.busy_turns = 10_000;
    s.world.enqueue("alpha", "fragile.md");
    s.until(10, "working", |s, _| working(s, S11));
    s.world.kill_claude(S11);
    s.crash_when(3, "the task given back", |a| matches!(a, Action::RequeueTask { .. }));
    let after = s.turn();
    let requeues = after.iter().filter(|a| matches!(a, Action::RequeueTask { .. })).count();
    assert_eq!(requeues, 1, "{}", render(&after));
    assert_eq!(
        s.state().attempts.get("alpha/fragile.md"),
        Some(&1),
        "the attempt is counted once"
    );
}

#[test]
fn a_lost_state_adopts_the_session_still_working_on_its_task() {
    let mut s = Sim::new(&Setup {
        dedicated: vec![],
        ..Setup::parallel()
    });
    s.world.report_work = true;
    start_work(&mut s, &[S11, S12]);
    s.restart_without_state();
    let first = s.turn();
    let requeued: Vec<&Action> = first
        .iter()
        .filter(|a| matches!(a, Action::RequeueTask { .. }))
        .collect();
    assert!(requeued.is_empty(), "requeued work in progress:\n  {}", render(&first));
    for (session, task) in [(S11, "task-1.md"), (S12, "task-2.md")] {
        let a = s.state().sessions[session].assignment.clone().expect("adopted");
        assert_eq!(a.task.task, task);
        // Its worktree (where its Claude works) is still the task's.
        let wt = a.worktree.clone().expect("the adopted task's worktree");
        assert!(wt.path.ends_with(task.trim_end_matches(".md")), "{wt:?}");
        assert!(a.adopted.unwrap_or_default().contains("adopted from"));
    }
    // Each task then finishes where it ran, once, with the adoption on its record.
    s.world.pane(S11).screen = Screen::Finished;
    s.world.pane(S12).screen = Screen::Finished;
    let acts = s.until(10, "both done", |s, _| s.world.queues["alpha"].done.len() == 2);
    assert!(claims(&acts).is_empty(), "run again:\n  {}", render(&acts));
    let adopted = acts
        .iter()
        .filter(|a| matches!(a, Action::FinishTask { report, .. } if report.adopted.is_some()))
        .count();
    assert_eq!(adopted, 2, "{}", render(&acts));
}

#[test]
fn a_lost_state_holds_a_task_while_a_claude_in_its_project_has_no_prompt_yet() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        ..Setup::default()
    });
    s.world.report_work = true;
    // Killed after the launch, before the paste: Claude is up in the project, the task
    // is in running/, and state.json is gone.
    s.world.enqueue("alpha", "t.md");
    s.until(10, "launched", |s, _| s.world.launches.len() == 1);
    s.restart_without_state();
    let held = s.run(3);
    assert!(
        !held.iter().any(|a| matches!(a, Action::RequeueTask { .. })),
        "{}",
        render(&held)
    );
    assert!(
        events(&held)
            .iter()
            .any(|e| matches!(e, Event::TaskHeld { sessions, .. } if sessions.first().is_some_and(|s| s == S11))),
        "{}",
        render(&held)
    );
    // That Claude goes away without ever taking it: the task goes back, and runs once.
    s.world.kill_claude(S11);
    let acts = s.until(10, "requeued", |_, a| {
        a.iter().any(|a| matches!(a, Action::RequeueTask { .. }))
    });
    assert!(!events(&acts).iter().any(|e| matches!(e, Event::Adopted { .. })));
    assert!(!any_said(&acts, "adopted"));
    s.world.busy_turns = 2;
    s.until(40, "done", |s, _| s.world.queues["alpha"].done.len() == 1);
}

#[test]
fn a_split_window_is_not_claude_exiting_and_a_closed_claude_pane_waits_for_the_operator() {
    let mut s = Sim::new(&Setup {
        dedicated: vec![],
        ..Setup::default()
    });
    s.world.report_panes = true;
    s.world.busy_turns = 6;
    s.world.enqueue("alpha", "t.md");
    s.until(10, "working", |s, _| working(s, S11));
    // Split: ccl keeps following Claude's pane, and the task finishes where it runs.
    s.world.pane(S11).split = true;
    let acts = s.until(20, "done", |s, _| s.world.queues["alpha"].done.len() == 1);
    assert!(
        !acts.iter().any(|a| matches!(a, Action::RequeueTask { .. })),
        "{}",
        render(&acts)
    );

    // Claude's pane closed, the operator's pane left: attention, no requeue, nothing typed.
    s.world.pane(S11).split = false;
    s.run(5);
    s.world.enqueue("alpha", "u.md");
    s.world.busy_turns = 10_000;
    s.until(20, "working", |s, _| working(s, S11));
    s.world.pane(S11).split = true;
    s.world.kill_claude(S11);
    s.world.pane(S11).claude_pane_closed = true;
    let acts = s.run(10);
    assert!(
        !acts.iter().any(|a| matches!(a, Action::RequeueTask { .. })),
        "{}",
        render(&acts)
    );
    assert!(on(&acts, S11).is_empty(), "{}", render(&acts));
    assert!(s.state().sessions[S11].attention.is_some());
    // Down to that one pane: now Claude has exited for ccl, and the task goes back.
    s.world.pane(S11).split = false;
    let acts = s.until(5, "given back", |_, a| {
        a.iter().any(|a| matches!(a, Action::RequeueTask { .. }))
    });
    assert!(
        logs(&acts).iter().any(|l| l.contains("one pane again")),
        "{}",
        render(&acts)
    );
}

#[test]
fn a_prompt_left_in_the_input_box_gets_enter_again_then_the_task_goes_back() {
    let mut s = Sim::new(&Setup {
        dedicated: vec![],
        ..Setup::default()
    });
    // This pane's Claude eats every Enter: the text stays in the box.
    s.world.pane(S11).swallow_enters = 100;
    s.world.enqueue("alpha", "t.md");
    let acts = s.until(20, "the task given back", |_, a| {
        a.iter().any(|a| matches!(a, Action::RequeueTask { .. }))
    });
    let mine: Vec<String> = on(&acts, S11)
        .iter()
        .map(|a| match a {
            Action::TypeLine { line, .. } if is_launch(line) => "launch".into(),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        mine,
        [
            "claim alpha/t.md for ccl-auto-11",
            "launch",
            "paste task alpha/t.md into ccl-auto-11",
            "send Enter to ccl-auto-11",
            "send Enter to ccl-auto-11",
        ]
    );
    assert!(attention(&acts)
        .iter()
        .any(|(s, r)| *s == S11 && r.starts_with("prompt was not submitted after 2 Enter presses")));
    assert!(s.state().sessions[S11].attention.is_some());

    // The task goes to another session; the one needing attention gets nothing more.
    let acts = s.until(10, "claimed again", |_, a| !claims(a).is_empty());
    assert_eq!(claims(&acts)[0].0, S12);
    assert!(on(&s.run(10), S11).is_empty());
}

#[test]
fn claude_dying_mid_task_requeues_it_and_the_third_time_fails_it() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        ..Setup::default()
    });
    s.world.busy_turns = 10_000;
    s.world.enqueue("alpha", "fragile.md");
    for attempt in 1..=3 {
        s.until(10, "working", |s, _| working(s, S11));
        s.world.kill_claude(S11);
        let acts = s.turn();
        let outcome = acts
            .iter()
            .find(|a| matches!(a, Action::RequeueTask { .. } | Action::FailTask { .. }));
        match (attempt, outcome) {
            (1 | 2, Some(Action::RequeueTask { reason, .. })) => assert!(reason.contains("claude exited"), "{reason}"),
            (3, Some(Action::FailTask { from, reason, .. })) => {
                assert_eq!(from, "running");
                assert!(reason.contains("after 3 attempts"), "{reason}");
            }
            _ => panic!("attempt {attempt}: {}", render(&acts)),
        }
    }
    assert_eq!(s.world.queue("alpha").failed.len(), 1);
    assert!(s.world.queue("alpha").inbox.is_empty());
}

#[test]
fn a_task_that_runs_too_long_is_failed_and_its_session_recycled() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        task_timeout: "1m",
        ..Setup::default()
    });
    s.world.busy_turns = 10_000;
    s.world.enqueue("alpha", "endless.md");
    let acts = s.until(60, "failed", |_, a| {
        a.iter().any(|a| matches!(a, Action::FailTask { .. }))
    });
    let at = acts
        .iter()
        .position(|a| matches!(a, Action::FailTask { reason, from, .. } if reason == "task timed out after 1m" && from == "running"))
        .expect("failed for its timeout");
    let rest: Vec<String> = on(&acts[at..], S11).iter().map(|a| a.to_string()).collect();
    assert_eq!(rest, ["send Escape to ccl-auto-11", "type into ccl-auto-11: /exit"]);
    assert_eq!(s.world.queue("alpha").failed[0].0, "endless.md");
}

#[test]
fn a_limit_mid_task_is_not_a_failure_and_not_a_finish() {
    // One account: a hit leaves nothing to swap to, so the task waits for the reset.
    let mut s = Sim::new(&Setup {
        accounts: vec!["a"],
        pool: 1,
        dedicated: vec![],
        ..Setup::default()
    });
    start_work(&mut s, &[S11]);
    // Claude's own waiting is off here ("Continue automatically at usage limit" in
    // /config): ccl's continue prompt carries the task on.
    s.world.hit(S11, "limit_five_hour_waiting_off");
    let acts = s.run(20);
    assert!(s.state().all_exhausted);
    let task_moves = |acts: &[Action]| {
        acts.iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::FinishTask { .. } | Action::FailTask { .. } | Action::RequeueTask { .. }
                )
            })
            .count()
    };
    assert_eq!(task_moves(&acts), 0, "{}", render(&acts));
    assert_eq!(s.world.queue("alpha").running, ["task-1.md"]);

    // Hours later the limit resets: the same conversation continues and completes.
    s.jump_to("2026-11-24T09:24:00Z");
    s.world.pane(S11).next_busy = Some(2);
    let acts = s.until(10, "finished", |_, a| {
        a.iter().any(|a| matches!(a, Action::FinishTask { .. }))
    });
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::PasteText { text, .. } if text == CONTINUE_PROMPT)));
    assert_eq!(task_moves(&acts), 1, "{}", render(&acts));
    assert_eq!(s.world.queue("alpha").done, ["task-1.md"]);
}

/// `ccl pause` (every queue) then `ccl resume q1` must really resume q1: its tasks are
/// claimed while the other queue stays held, and the replies say what is true.
#[test]
fn resuming_one_queue_after_pausing_all_resumes_that_queue_only() {
    let mut s = Sim::new(&Setup {
        queues: vec!["alpha", "beta"],
        dedicated: vec![],
        ..Setup::default()
    });
    s.world.request("p-all", RequestKind::Pause { queue: None });
    s.run(2);
    s.world.request(
        "r-alpha",
        RequestKind::Resume {
            queue: Some("alpha".into()),
        },
    );
    s.world.enqueue("alpha", "a1.md");
    s.world.enqueue("beta", "b1.md");
    let acts = s.until(10, "alpha's task claimed", |s, _| {
        !s.world.queues["alpha"].running.is_empty()
    });
    assert!(
        acts.iter().any(|a| matches!(a, Action::Reply { id, ok: true, message } if id == "r-alpha" && message == "queue alpha resumed")),
        "{}",
        render(&acts)
    );
    let acts = s.run(5);
    assert!(claims(&acts).iter().all(|c| c.1 != "beta"), "{}", render(&acts));
    assert!(s.world.queues["beta"].running.is_empty() && s.world.queues["beta"].inbox.len() == 1);
    // Resuming every queue releases beta too.
    s.world.request("r-all", RequestKind::Resume { queue: None });
    s.until(10, "beta's task claimed", |s, _| {
        !s.world.queues["beta"].running.is_empty()
    });
}

/// A dedicated Claude that ignores SIGTERM is left running for the operator: the swap
/// neither kills their session (with their background jobs) nor types into it.
#[test]
fn a_dedicated_claude_that_will_not_stop_is_left_running_never_killed() {
    let mut s = Sim::new(&Setup::default());
    operator_sessions(&mut s);
    s.world.background_job(OPS);
    s.world.pane(OPS).ignores_term = true;
    s.run(2);
    let ops_pid = s.world.pane(OPS).pid;
    s.world.hit(NOTES, "limit_five_hour");
    let acts = s.until(40, "the swap ends", |_, a| swap_done(a));
    let ops = on(&acts, OPS);
    assert!(
        ops.iter().all(|a| matches!(a, Action::StopClaude { .. })) && ops.len() == 1,
        "one SIGTERM to its Claude and nothing else: {}",
        render(&acts)
    );
    assert_eq!(s.world.pane(OPS).pid, ops_pid, "the operator's session is the same one");
    assert_eq!(s.world.pane(OPS).screen, Screen::Idle);
    assert!(
        attention(&acts)
            .iter()
            .any(|(s, r)| *s == OPS && r.starts_with("needs attention: claude did not stop")),
        "{}",
        render(&acts)
    );
}

/// The pool's workdir is gone: a vanished pool session is not recreated (and never in
/// another directory instead); it needs the operator, said once, until the directory is
/// back, and then it is created there.
#[test]
fn a_missing_pool_workdir_is_a_needs_attention_never_a_session_elsewhere() {
    let mut s = Sim::new(&Setup::default());
    s.run(2);
    s.world.missing_dirs.insert("/pool".into());
    s.world.panes.remove(S11);
    let acts = s.run(5);
    assert!(
        !acts.iter().any(|a| matches!(a, Action::CreateSession { .. })),
        "{}",
        render(&acts)
    );
    let said: Vec<(&str, &str)> = attention(&acts)
        .into_iter()
        .filter(|(s, r)| *s == S11 && r.starts_with("needs attention: workdir /pool does not exist"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {}", render(&acts));
    assert!(s.state().sessions[S11]
        .attention
        .as_deref()
        .is_some_and(|a| a.contains("/pool does not exist")));
    s.world.missing_dirs.clear();
    let acts = s.run(2);
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::CreateSession { session, workdir, .. } if session == S11 && workdir.as_path() == std::path::Path::new("/pool"))),
        "{}",
        render(&acts)
    );
    assert_eq!(s.state().sessions[S11].attention, None);
}

/// The `on_needs_attention` hooks run for `session`.
fn attention_hooks(actions: &[Action], session: &str) -> usize {
    actions
        .iter()
        .filter(|a| {
            matches!(a, Action::RunHook { event, env, .. }
            if event == "on_needs_attention" && env.iter().any(|(k, v)| k == "CCL_SESSION" && v == session))
        })
        .count()
}

fn one_pool_session() -> Setup {
    Setup {
        pool: 1,
        dedicated: vec![],
        on_needs_attention: "notify-send ccl",
        ..Setup::default()
    }
}

#[test]
fn an_operator_draft_in_a_pool_box_is_never_submitted_with_exit() {
    let mut s = Sim::new(&one_pool_session());
    start_work(&mut s, &[S11]);
    // While the task runs, the operator types a note into the box and does not send it.
    let note = "operator note: also drop the staging tables";
    s.world.type_draft(S11, note);
    s.world.pane(S11).screen = sim::Screen::Finished;
    let acts = s.until(10, "the task done", |s, _| s.world.queues["alpha"].done.len() == 1);
    let acts = [acts, s.run(5)].concat();
    assert!(typed(&acts, S11).is_empty(), "{}", render(&acts));
    let flagged: Vec<(&str, &str)> = attention(&acts)
        .into_iter()
        .filter(|(_, r)| r.contains("input box holds text ccl did not type"))
        .collect();
    assert_eq!(flagged.len(), 1, "one log line: {flagged:?}");
    assert!(flagged[0].0 == S11 && flagged[0].1.contains(note), "{flagged:?}");
    assert_eq!(
        said(&acts)
            .iter()
            .filter(|l| l.contains("input box holds text ccl did not type"))
            .count(),
        1
    );
    assert_eq!(attention_hooks(&acts, S11), 1);

    // Work waits: the idle Claude is not recycled while the draft is there.
    s.world.enqueue("alpha", "next.md");
    let acts = s.run(5);
    assert!(typed(&acts, S11).is_empty(), "{}", render(&acts));
    assert_eq!(s.world.queue("alpha").inbox.len(), 1);

    // The operator erases it: the session is ccl's again and is recycled for the work.
    s.world.type_draft(S11, "");
    let acts = s.until(10, "the next task claimed", |_, a| !claims(a).is_empty());
    assert!(events(&acts)
        .iter()
        .any(|e| matches!(e, Event::AttentionCleared { session } if session == S11)));
    assert!(typed(&acts, S11).contains(&"/exit"));
}

#[test]
fn an_idle_pool_claude_with_a_draft_is_not_recycled_for_waiting_work() {
    let mut s = Sim::new(&one_pool_session());
    s.world.claude(S11, "a", OPS_ID, "/pool", true);
    s.world.type_draft(S11, "what does the chunker do?");
    s.world.enqueue("alpha", "t.md");
    let acts = s.run(6);
    assert!(on(&acts, S11).is_empty(), "{}", render(&acts));
    assert_eq!(s.world.queue("alpha").inbox.len(), 1, "the task waits");
    assert!(s.state().attempts.is_empty(), "no attempt is spent");
    assert_eq!(attention_hooks(&acts, S11), 1);
}

#[test]
fn a_half_typed_shell_command_is_never_run_and_the_task_waits() {
    let mut s = Sim::new(&one_pool_session());
    s.run(1);
    // The operator types a command at the pool session's shell and leaves it there; it
    // ends in '#', as a prompt does.
    s.world.type_draft(S11, "touch X #");
    s.world.enqueue("alpha", "t.md");
    let acts = s.run(6);
    assert!(on(&acts, S11).is_empty(), "{}", render(&acts));
    assert_eq!(s.world.queue("alpha").inbox.len(), 1, "the task waits");
    assert!(s.state().attempts.is_empty(), "no attempt is spent");
    let flagged: Vec<(&str, &str)> = attention(&acts)
        .into_iter()
        .filter(|(_, r)| r.contains("shell command line holds text ccl did not type"))
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert!(
        flagged[0].0 == S11 && flagged[0].1.contains("\"touch X #\""),
        "{flagged:?}"
    );
    assert_eq!(
        said(&acts)
            .iter()
            .filter(|l| l.contains("shell command line holds text ccl did not type"))
            .count(),
        1
    );
    assert_eq!(attention_hooks(&acts, S11), 1);

    // Erased: the line is the empty prompt again, and the task goes there.
    s.world.type_draft(S11, "");
    let acts = s.until(5, "claimed", |_, a| !claims(a).is_empty());
    assert_eq!(claims(&acts)[0].0, S11);
}

#[test]
fn a_dedicated_sessions_draft_is_kept_across_a_swap_and_never_sent() {
    let mut s = Sim::new(&Setup::default());
    operator_sessions(&mut s);
    s.run(2);
    let draft = "refactor the chunker, then";
    s.world.type_draft(OPS, draft);
    s.world.request("req-1", RequestKind::Swap { to: None });
    let acts = s.until(10, "the swap done", |_, a| swap_done(a));
    let acts = [acts, s.run(3)].concat();
    assert!(
        events(&acts)
            .iter()
            .any(|e| matches!(e, Event::DraftKept { session, snippet } if session == OPS && snippet.contains(draft))),
        "{}",
        render(&acts)
    );
    let ops: Vec<String> = on(&acts, OPS).iter().map(|a| a.to_string()).collect();
    let resumed = ops.iter().position(|a| a.contains("--resume")).expect("resumed");
    assert_eq!(
        ops[resumed + 1..],
        [format!("paste into ccl-1-ops: {draft}")],
        "the draft goes back, with no Enter after it"
    );
}

#[test]
fn a_turn_without_a_tmux_listing_touches_no_pane() {
    let mut s = Sim::new(&one_pool_session());
    start_work(&mut s, &[S11]);
    s.world.pane(S11).screen = sim::Screen::Finished;
    s.run(1);
    // tmux stops answering: last turn's view is all the core has.
    s.world.tmux_down = true;
    s.world.enqueue("alpha", "next.md");
    let acts = s.run(4);
    assert!(
        acts.iter().all(|a| a.session().is_none()),
        "pane actions without a listing:\n  {}",
        render(&acts)
    );
    assert!(s.world.queue("alpha").done.is_empty(), "no stale idle turn counts");
    // Back: the finished task is seen idle afresh, then filed.
    s.world.tmux_down = false;
    s.until(10, "the task done", |s, _| s.world.queues["alpha"].done.len() == 1);
}

// ---------------------------------------------------------------------------------------
// Meters: the swap before the limit, the choice of target, kinds of limit, sick accounts

/// A state in which the named accounts' 5-hour meters read these percents, resetting at
/// `resets` (RFC 3339).
fn metered(setup: &Setup, meters: &[(&str, f64, &str)]) -> Sim {
    let config = setup.config();
    let mut state = State::fresh(&config, 1);
    for (account, pct, resets) in meters {
        state.accounts.get_mut(*account).unwrap().usage = Some(Usage {
            five_hour: Some(UsageWindow {
                used_pct: *pct,
                resets_at_ms: Some(ms(resets)),
            }),
            seven_day: None,
            seen_ms: ms(START),
            session: S11.into(),
        });
    }
    Sim::with_state(config, state)
}

fn task_moves(acts: &[Action]) -> Vec<String> {
    acts.iter()
        .filter(|a| {
            matches!(
                a,
                Action::FinishTask { .. } | Action::FailTask { .. } | Action::RequeueTask { .. }
            )
        })
        .map(|a| a.to_string())
        .collect()
}

#[test]
fn the_passive_gauge_is_a_meter_reading_and_moves_the_fleet_at_turn_boundaries() {
    let mut s = Sim::new(&Setup::parallel());
    operator_sessions(&mut s);
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    // The operator's Claude under a shows "You've used 97% of your 5-hour limit".
    s.world.show(OPS, "gauge_five_hour_97");
    let acts = s.run(3);

    // A reading, not a hit: a is not exhausted, and nothing was cut off.
    assert_eq!(exhausted_until(&s, "a"), None);
    let a = &s.state().accounts["a"];
    let five = a
        .usage
        .as_ref()
        .and_then(|u| u.five_hour.clone())
        .expect("a 5-hour meter");
    assert_eq!(
        (five.used_pct, five.resets_at_ms),
        (97.0, Some(ms("2026-11-24T21:48:00Z")))
    );
    assert!(
        events(&acts)
            .iter()
            .any(|e| matches!(e, Event::SwapBegins { from, to, at_boundaries: true, .. } if from == "a" && to == "b")),
        "{}",
        render(&acts)
    );
    assert_eq!(s.state().active, "b", "new work starts under b at once");
    // The busy task is left alone: no Escape, no /exit.
    assert!(on(&acts, S11).is_empty(), "{}", render(&acts));
    assert!(working(&s, S11));
    // The idle operator session moved at once: SIGTERM, then its conversation under b.
    assert!(matches!(on(&acts, OPS)[0], Action::StopClaude { .. }));
    assert!(typed(&acts, OPS)
        .iter()
        .any(|l| l.contains("CLAUDE_CONFIG_DIR=/homes/b") && l.ends_with(&format!("--resume {OPS_ID}"))));

    // New work goes to b while a's task still runs.
    s.world.enqueue("alpha", "task-2.md");
    let acts = s.until(10, "task-2 launched", |_, a| {
        a.iter()
            .any(|a| matches!(a, Action::TypeLine { line, .. } if is_launch(line)))
    });
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::TypeLine { line, .. } if is_launch(line) && line.contains("/homes/b"))));
    assert!(s.state().swap.is_some(), "S11 has not moved yet");

    // S11's turn ends: its task is done (not cut off), and the swap completes.
    s.world.pane(S11).screen = Screen::Busy { left: 1 };
    let acts = s.until(10, "the swap completes", |_, a| swap_done(a));
    assert!(sim::swapped(&acts, "a", "b"));
    let all = s.actions();
    let moves = task_moves(&all);
    assert_eq!(moves.iter().filter(|m| m.contains("task-1.md")).count(), 1, "{moves:?}");
    assert!(
        task_moves(&all).iter().all(|m| m.contains(" done in ")),
        "{:?}",
        task_moves(&all)
    );
    assert!(!keys(&all, S11).iter().any(|k| k.contains(&"Escape".to_string())));
    assert_eq!(continue_prompts(&all, S11), 0, "a finished task is not continued");
    assert!(!typed(&all, S11).iter().any(|l| l.ends_with(&format!("--resume {id}"))));

    // `ccl status --json` shows a's 97 % and its reset.
    let v = ccl::status::report(s.config(), Some(s.state()), None, ms("2026-11-24T07:00:00Z"));
    let a = v.accounts.iter().find(|x| x.name == "a").unwrap();
    let five_hour = a.usage.as_ref().and_then(|u| u.five_hour.as_ref()).unwrap();
    assert_eq!(five_hour.used_pct, 97.0);
    assert_eq!(five_hour.resets_at.as_deref(), Some("2026-11-24T21:48:00Z"));
    // And so does its JSON, the shape scripts read.
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["accounts"][0]["usage"]["five_hour"]["used_pct"], 97.0);
}

#[test]
fn a_hit_goes_to_the_account_with_most_headroom_skipping_sick_ones() {
    let setup = Setup {
        accounts: vec!["a", "b", "c", "d"],
        ..Setup::default()
    };
    // b is next in failover order but 60 % used; c has 20 %, d is unknown (fresh) but
    // unhealthy.
    let mut s = metered(
        &setup,
        &[("b", 60.0, "2026-11-24T09:00:00Z"), ("c", 20.0, "2026-11-24T09:00:00Z")],
    );
    let mut state = s.state().clone();
    state.accounts.get_mut("d").unwrap().unhealthy = Some("OAuth token has been revoked".into());
    s = Sim::with_state(setup.config(), state);
    start_work(&mut s, &[S11]);
    s.world.hit(S11, "limit_five_hour");
    let acts = s.until(10, "the swap", |_, a| swap_done(a));
    assert!(sim::swapped(&acts, "a", "c"), "{}", render(&acts));

    // Unknown meters count as fresh, and ties go to failover order.
    let mut s = metered(
        &Setup {
            accounts: vec!["a", "b", "c"],
            ..Setup::default()
        },
        &[],
    );
    start_work(&mut s, &[S11]);
    s.world.hit(S11, "limit_five_hour");
    let acts = s.until(10, "the swap", |_, a| swap_done(a));
    assert!(sim::swapped(&acts, "a", "b"), "{}", render(&acts));
}

#[test]
fn with_every_account_above_swap_at_the_fleet_keeps_working_on_the_most_headroom() {
    let setup = Setup {
        accounts: vec!["a", "b", "c"],
        ..Setup::default()
    };
    let mut s = metered(
        &setup,
        &[
            ("a", 97.0, "2026-11-24T21:00:00Z"),
            ("b", 99.0, "2026-11-24T21:00:00Z"),
            ("c", 96.0, "2026-11-24T21:00:00Z"),
        ],
    );
    start_work(&mut s, &[S11]);
    let acts = s.actions();
    assert!(!swap_began(&acts), "no account is below swap_at: {}", render(&acts));
    assert_eq!(
        events(&acts)
            .iter()
            .filter(|e| matches!(e, Event::MeterNoTarget { .. }))
            .count(),
        1,
        "logged once"
    );
    // Work is not held back.
    assert!(working(&s, S11));
    // a's limit: the fleet goes to c (most headroom), not to b (next in order).
    s.world.hit(S11, "limit_five_hour");
    let acts = s.until(10, "the swap", |_, a| swap_done(a));
    assert!(sim::swapped(&acts, "a", "c"), "{}", render(&acts));
    assert!(!s.state().all_exhausted);
}

#[test]
fn a_meter_expires_when_its_window_resets() {
    let setup = Setup::default();
    let mut s = metered(
        &setup,
        &[("a", 97.0, "2026-11-24T06:10:00Z"), ("b", 98.0, "2026-11-24T21:00:00Z")],
    );
    let acts = s.run(3);
    assert!(!swap_began(&acts));
    assert_eq!(
        s.state().accounts["a"]
            .usage
            .as_ref()
            .unwrap()
            .five_hour
            .as_ref()
            .unwrap()
            .used_pct,
        97.0
    );
    s.jump_to("2026-11-24T06:10:00Z");
    let acts = s.run(1);
    assert!(
        events(&acts)
            .iter()
            .any(|e| matches!(e, Event::MeterWindowReset { account, window } if account == "a" && window == "5-hour")),
        "{}",
        render(&acts)
    );
    assert_eq!(s.state().accounts["a"].usage, None);
    assert!(!s.state().all_over_swap_at);
    let v = ccl::status::report(s.config(), Some(s.state()), None, ms("2026-11-24T06:10:02Z"));
    assert!(v.accounts[0].usage.is_none());
}

#[test]
fn a_wrapped_up_turn_is_not_done_and_continues_after_the_swap() {
    let mut s = Sim::new(&Setup {
        dedicated: vec![],
        ..Setup::default()
    });
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    // Claude announces the wrap-up while its turn runs…
    s.world.show(S11, "wrap_up_notice");
    let acts = s.run(2);
    assert!(
        events(&acts)
            .iter()
            .any(|e| matches!(e, Event::SwapBegins { from, to, at_boundaries: true, .. } if from == "a" && to == "b")),
        "{}",
        render(&acts)
    );
    assert!(
        on(&acts, S11).is_empty(),
        "the wrapping turn runs on: {}",
        render(&acts)
    );
    // …and ends it with a checkpoint, which is not the task's end.
    s.world.show(S11, "wrap_up_checkpoint");
    let acts = s.until(10, "the swap completes", |_, a| swap_done(a));
    assert!(task_moves(&acts).is_empty(), "{:?}", task_moves(&acts));
    assert_eq!(typed(&acts, S11)[0], "/exit");
    assert!(typed(&acts, S11)[1].contains("/homes/b") && typed(&acts, S11)[1].ends_with(&format!("--resume {id}")));
    s.world.busy_turns = 2;
    let acts = s.until(20, "task-1 done", |_, a| !task_moves(a).is_empty());
    assert_eq!(continue_prompts(&s.actions(), S11), 1);
    assert_eq!(task_moves(&acts).len(), 1);
    assert!(task_moves(&acts)[0].contains("task-1.md done"));
}

#[test]
fn a_continue_prompt_a_hooked_claude_did_not_take_from_its_launch_line_is_pasted() {
    let mut s = Sim::new(&Setup {
        hooks: true,
        ..Setup::parallel()
    });
    start_work(&mut s, &[S11]);
    let id = conversation(&s, S11);
    s.world.launch_prompts_lost = true;
    s.world.hit(S11, "limit_five_hour");
    let swap = s.until(10, "the swap", |_, a| swap_done(a));
    let relaunch = typed(&swap, S11)
        .into_iter()
        .find(|l| is_launch(l))
        .expect("relaunched");
    assert!(resumes_with_continue(relaunch, &id), "{relaunch}");
    let acts = s.until(10, "working again", |s, _| working(s, S11));
    // Claude came up idle with an empty box: the prompt goes in the usual way, once.
    assert_eq!(continue_prompts(&acts, S11), 1, "{}", render(&acts));
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::PasteText { session, text } if session == S11 && text == CONTINUE_PROMPT)),
        "{}",
        render(&acts)
    );
    assert!(
        said(&acts).iter().any(|l| l.contains("pasting it")),
        "{}",
        render(&acts)
    );
}

#[test]
fn claudes_own_continue_while_all_are_spent_is_the_same_task_resumed() {
    let mut s = Sim::new(&Setup {
        accounts: vec!["a"],
        pool: 1,
        dedicated: vec![],
        ..Setup::default()
    });
    start_work(&mut s, &[S11]);
    // The limit; Claude says it continues by itself at 9:23, and will.
    s.world.hit(S11, "limit_five_hour");
    s.world.pane(S11).continues_at_ms = Some(ms("2026-11-24T09:23:20Z"));
    let acts = s.run(10);
    assert!(s.state().all_exhausted);
    assert!(
        events(&acts)
            .iter()
            .any(|e| matches!(e, Event::WaitsForReset { session } if session == S11)),
        "{}",
        render(&acts)
    );
    s.jump_to("2026-11-24T09:23:00Z");
    s.world.pane(S11).next_busy = Some(2);
    let acts = s.until(30, "task-1 done", |_, a| !task_moves(a).is_empty());
    assert!(
        events(&acts)
            .iter()
            .any(|e| matches!(e, Event::AutoContinued { session } if session == S11)),
        "{}",
        render(&acts)
    );
    assert_eq!(
        continue_prompts(&acts, S11),
        0,
        "no second continue on top: {}",
        render(&acts)
    );
    assert_eq!(task_moves(&acts), [task_moves(&acts)[0].clone()]);
    assert!(
        task_moves(&acts)[0].starts_with("task alpha/task-1.md done"),
        "{:?}",
        task_moves(&acts)
    );
    assert_eq!(s.world.queue("alpha").done, ["task-1.md"]);
}

#[test]
fn when_claude_does_not_continue_by_itself_ccl_does_after_a_grace() {
    let mut s = Sim::new(&Setup {
        accounts: vec!["a"],
        pool: 1,
        dedicated: vec![],
        ..Setup::default()
    });
    start_work(&mut s, &[S11]);
    s.world.hit(S11, "limit_five_hour");
    s.run(5);
    s.jump_to("2026-11-24T09:22:58Z");
    s.world.pane(S11).next_busy = Some(2);
    let acts = s.run(25);
    assert_eq!(continue_prompts(&acts, S11), 0, "{}", render(&acts));
    let acts = s.until(30, "task-1 done", |_, a| !task_moves(a).is_empty());
    assert_eq!(continue_prompts(&acts, S11), 1, "{}", render(&acts));
    assert!(events(&acts)
        .iter()
        .any(|e| matches!(e, Event::NoAutoContinue { session, .. } if session == S11)));
}

#[test]
fn an_account_that_cannot_work_is_unhealthy_never_chosen_and_its_sessions_move() {
    let mut s = Sim::new(&Setup {
        accounts: vec!["a", "b", "c"],
        dedicated: vec![],
        on_account_unhealthy: "notify-send unhealthy",
        ..Setup::default()
    });
    // b's login was revoked: any prompt under it ends on the 401.
    s.world.exhausted.insert("b".into(), "login_revoked_401");
    start_work(&mut s, &[S11]);
    s.world.hit(S11, "limit_five_hour");
    s.world.busy_turns = 2;
    s.until(10, "a to b", |_, a| swap_done(a));
    let acts = s.until(20, "b to c", |_, a| swap_done(a));
    assert!(
        events(&acts).iter().any(
            |e| matches!(e, Event::AccountUnhealthy { account, reason } if account == "b" && reason.starts_with("Please run /login"))
        ),
        "{}",
        render(&acts)
    );
    assert!(sim::swapped(&acts, "b", "c"), "{}", render(&acts));
    let hooks: Vec<&Action> = acts
        .iter()
        .filter(|a| matches!(a, Action::RunHook { event, .. } if event == "on_account_unhealthy"))
        .collect();
    assert!(
        matches!(hooks[..], [Action::RunHook { env, .. }] if env.iter().any(|(k, v)| k == "CCL_ACCOUNT" && v == "b")
            && env.iter().any(|(k, v)| k == "CCL_REASON" && v.contains("revoked"))),
        "the hook once, naming b and why: {hooks:?}"
    );
    assert!(s.state().accounts["b"]
        .unhealthy
        .as_deref()
        .unwrap()
        .contains("OAuth token has been revoked"));
    assert!(
        task_moves(&s.actions()).is_empty(),
        "the task was neither failed nor finished"
    );
    let v = ccl::status::report(s.config(), Some(s.state()), None, ms(START));
    assert!(v.accounts[1].unhealthy.as_deref().unwrap().contains("401"));

    // c's limit: a is exhausted, b unhealthy: never b; every account is out.
    s.until(10, "working under c", |s, _| working(s, S11));
    s.jump(6 * 60_000);
    s.world.hit(S11, "hit_session_los_angeles");
    let acts = s.run(10);
    assert!(
        !events(&acts)
            .iter()
            .any(|e| matches!(e, Event::SwapBegins { to, .. } | Event::Swapped { to, .. } if to == "b")),
        "{}",
        render(&acts)
    );
    assert!(!any_said(&acts, "to b"), "{}", render(&acts));
    assert!(s.state().all_exhausted);

    let fired = s
        .actions()
        .iter()
        .filter(|a| matches!(a, Action::RunHook { event, .. } if event == "on_account_unhealthy"))
        .count();
    assert_eq!(fired, 1, "on_account_unhealthy fires once");
    // The operator fixed b's login.
    s.world.exhausted.remove("b");
    s.world.request(
        "r1",
        RequestKind::Account {
            account: "b".into(),
            enable: true,
        },
    );
    let acts = s.until(10, "the swap to b", |_, a| swap_done(a));
    assert!(s
        .world
        .replies
        .iter()
        .any(|(id, ok, m)| id == "r1" && *ok && m.contains("was unhealthy")));
    assert!(sim::swapped(&acts, "c", "b"), "{}", render(&acts));
}

#[test]
fn a_disabled_account_is_never_a_target_and_the_fleet_leaves_it() {
    let mut s = Sim::new(&Setup {
        accounts: vec!["a", "b", "c"],
        dedicated: vec![],
        ..Setup::default()
    });
    start_work(&mut s, &[S11]);
    s.world.request(
        "r1",
        RequestKind::Account {
            account: "b".into(),
            enable: false,
        },
    );
    s.run(1);
    s.world.request(
        "r2",
        RequestKind::Account {
            account: "a".into(),
            enable: false,
        },
    );
    let acts = s.until(10, "the swap", |_, a| swap_done(a));
    assert!(sim::swapped(&acts, "a", "c"), "{}", render(&acts));
    assert!(s.state().accounts["a"].disabled && s.state().accounts["b"].disabled);
    // The only usable account cannot be disabled while it carries the fleet.
    s.world.request(
        "r3",
        RequestKind::Account {
            account: "c".into(),
            enable: false,
        },
    );
    s.run(1);
    assert!(s.world.replies.iter().any(|(id, ok, _)| id == "r3" && !*ok));
    assert!(!s.state().accounts["c"].disabled);
}

#[test]
fn a_server_throttle_that_is_not_your_limit_is_no_hit() {
    let mut s = Sim::new(&Setup::default());
    start_work(&mut s, &[S11]);
    s.world.show(S11, "server_throttle_not_your_limit");
    let acts = s.run(5);
    assert!(!swap_began(&acts), "{}", render(&acts));
    assert_eq!(exhausted_until(&s, "a"), None);
}

/// A task whose prompt makes Claude exit (its body was `/exit` on a queue that allows
/// slash commands): failed at once with the reason, never retried as a crash.
#[test]
fn a_prompt_after_which_claude_exits_fails_once_saying_so_not_retried() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        ..Setup::default()
    });
    s.run(2);
    s.world.pane(S11).exits_on_prompt = true;
    s.world.enqueue("alpha", "exit.md");
    let acts = s.until(20, "the task filed to failed/", |s, _| {
        !s.world.queues["alpha"].failed.is_empty()
    });
    let failed = &s.world.queues["alpha"].failed;
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]
            .1
            .contains("claude exited normally right after this task's prompt was submitted"),
        "{failed:?}"
    );
    assert!(
        !acts.iter().any(|a| matches!(a, Action::RequeueTask { .. })),
        "not retried: {}",
        render(&acts)
    );
    assert_eq!(s.world.launches.len(), 1, "one launch: {:?}", s.world.launches);
}

#[test]
fn a_gauge_on_screen_when_ccl_starts_is_a_reading_not_history() {
    let mut s = Sim::new(&Setup::default());
    operator_sessions(&mut s);
    s.world.show(OPS, "gauge_weekly_88");
    let acts = s.run(2);
    let week = s.state().accounts["a"].usage.as_ref().and_then(|u| u.seven_day.clone());
    assert_eq!(week.map(|w| w.used_pct), Some(88.0), "{}", render(&acts));
    assert!(!swap_began(&acts), "88 % is below swap_at");
}

#[test]
fn a_limit_on_the_target_of_a_swap_before_the_limit_moves_the_fleet_on() {
    let mut s = Sim::new(&Setup {
        accounts: vec!["a", "b", "c"],
        ..Setup::parallel()
    });
    operator_sessions(&mut s);
    start_work(&mut s, &[S11]);
    s.world.show(OPS, "gauge_five_hour_97");
    s.until(5, "the swap before the limit", |_, a| swap_began(a));
    assert_eq!(s.state().active, "b");
    // A task under b hits b's limit while S11 still works under a.
    s.world.enqueue("alpha", "task-2.md");
    s.until(20, "task-2 working", |s, _| working(s, S12));
    s.world.hit(S12, "limit_five_hour");
    let acts = s.until(10, "the swap from b", |_, a| swap_begins(a, "b", "c"));
    assert!(
        events(&acts)
            .iter()
            .any(|e| matches!(e, Event::SwapGivenUp { from, to } if from == "a" && to == "b")),
        "{}",
        render(&acts)
    );
    let acts = s.until(20, "the swap to c done", |_, a| swap_done(a));
    assert!(sim::swapped(&acts, "b", "c"), "{}", render(&acts));
    assert!(
        task_moves(&s.actions()).is_empty(),
        "no task failed or finished on the way"
    );
}

#[test]
fn a_lost_state_finds_its_own_paste_unsent_and_presses_its_enter() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        on_needs_attention: "notify-send ccl",
        ..Setup::default()
    });
    s.world.report_work = true;
    // Killed between the paste and its Enter, and state.json is gone: the task's body
    // sits unsent in the box, the task in running/.
    s.world.enqueue("alpha", "t.md");
    s.until(10, "pasted", |_, a| {
        a.iter().any(|a| matches!(a, Action::PasteTask { .. }))
    });
    s.restart_without_state();
    let acts = s.until(5, "submitted", |s, _| working(s, S11));
    assert!(
        events(&acts)
            .iter()
            .any(|e| matches!(e, Event::Adopted { session, in_box: true, .. } if session == S11)),
        "{}",
        render(&acts)
    );
    assert_eq!(
        attention_hooks(&acts, S11),
        0,
        "ccl's own paste is not the operator's text"
    );
    assert!(!acts.iter().any(|a| matches!(a, Action::RequeueTask { .. })));
    s.world.busy_turns = 2;
    let acts = s.until(20, "done", |s, _| s.world.queues["alpha"].done.len() == 1);
    assert!(claims(&acts).is_empty(), "run again:\n  {}", render(&acts));
}

// ---------------------------------------------------------------------------------------
// The bound per queue, and a worktree per task

/// Pool sessions working on a task of `queue` right now.
fn running_in(s: &Sim, queue: &str) -> usize {
    s.state()
        .sessions
        .values()
        .filter(|x| x.assignment.as_ref().is_some_and(|a| a.task.queue == queue))
        .count()
}

fn all_done(s: &Sim, n: usize) -> bool {
    s.world.queues.values().map(|q| q.done.len()).sum::<usize>() == n
}

#[test]
fn a_queue_without_isolation_runs_one_task_at_a_time_while_queues_take_turns() {
    // Three free pool sessions and six waiting tasks in two queues sharing no checkout.
    let mut s = Sim::new(&Setup {
        queues: vec!["alpha", "beta"],
        dedicated: vec![],
        ..Setup::default()
    });
    for i in 1..=3 {
        s.world.enqueue("alpha", &format!("a{i}.md"));
        s.world.enqueue("beta", &format!("b{i}.md"));
    }
    let mut most = (0, 0);
    let mut both_at_once = false;
    s.until(200, "all six done", |s, _| {
        let (a, b) = (running_in(s, "alpha"), running_in(s, "beta"));
        most = (most.0.max(a), most.1.max(b));
        both_at_once |= a == 1 && b == 1;
        all_done(s, 6)
    });
    // (The simulator also fails any turn that claims a second task of one checkout.)
    assert_eq!(most, (1, 1), "at most one task per queue without isolation");
    assert!(both_at_once, "the two queues still ran side by side");
}

#[test]
fn a_worktree_queue_runs_up_to_max_running_tasks_each_in_a_worktree_of_its_own() {
    let mut s = Sim::new(&Setup {
        dedicated: vec![],
        max_running: Some(2),
        ..Setup::parallel()
    });
    for i in 1..=4 {
        s.world.enqueue("alpha", &format!("t{i}.md"));
    }
    let mut most = 0;
    let acts = s.until(200, "all four done", |s, _| {
        most = most.max(running_in(s, "alpha"));
        all_done(s, 4)
    });
    assert_eq!(most, 2, "max_running = 2 with three free sessions");
    // Every task launched once, in the worktree made for it, on a branch of its own.
    let launches: Vec<&str> = [S11, S12, S13]
        .iter()
        .flat_map(|n| typed(&acts, n))
        .filter(|l| is_launch(l))
        .collect();
    assert_eq!(launches.len(), 4, "{launches:#?}");
    for i in 1..=4 {
        let dir = format!("cd /src/q-alpha/.agent-queue/worktrees/t{i} ");
        assert_eq!(
            launches.iter().filter(|l| l.starts_with(&dir)).count(),
            1,
            "{launches:#?}"
        );
    }
    let reports: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::FinishTask { task, report, .. } => Some((task.clone(), report.worktree.clone().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 4);
    for (task, wt) in reports {
        assert_eq!(wt.branch, format!("ccl/{}", task.trim_end_matches(".md")));
    }
}

#[test]
fn a_task_whose_worktree_git_refuses_fails_with_gits_message() {
    let mut s = Sim::new(&Setup {
        dedicated: vec![],
        ..Setup::parallel()
    });
    s.world.worktree_error = Some(
        "git rev-parse failed in /src/q-alpha: fatal: not a git repository (or any of the parent directories): .git"
            .into(),
    );
    s.world.enqueue("alpha", "t1.md");
    let acts = s.until(10, "the task failed", |s, _| !s.world.queues["alpha"].failed.is_empty());
    let (task, reason) = &s.world.queues["alpha"].failed[0];
    assert_eq!(task, "t1.md");
    assert!(reason.contains("fatal: not a git repository"), "{reason}");
    // Claude was never launched for it, and the session is free for the next task.
    assert!(!acts
        .iter()
        .any(|a| matches!(a, Action::TypeLine { line, .. } if is_launch(line))));
    s.world.enqueue("alpha", "t2.md");
    s.until(20, "the next task done", |s, _| all_done(s, 1));
}

#[test]
fn a_retried_task_gets_a_fresh_worktree_and_a_swap_resumes_in_the_same_one() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        ..Setup::parallel()
    });
    s.world.busy_turns = 10_000;
    s.world.enqueue("alpha", "fragile.md");
    s.until(10, "working", |s, _| working(s, S11));
    let first = s.state().sessions[S11].cwd.clone().unwrap();
    assert_eq!(first.to_str(), Some("/src/q-alpha/.agent-queue/worktrees/fragile"));

    // A swap mid-task: the conversation goes on in the same worktree.
    s.world.hit(S11, "limit_five_hour");
    let acts = s.until(10, "the swap", |_, a| swap_done(a));
    let resumed = typed(&acts, S11)
        .into_iter()
        .find(|l| is_launch(l))
        .unwrap()
        .to_string();
    assert!(resumed.starts_with(&format!("cd {} ", first.display())), "{resumed}");
    s.until(10, "working again", |s, _| working(s, S11));

    // Claude dies: the task goes back and its next attempt gets a new worktree.
    s.world.kill_claude(S11);
    s.until(10, "working again", |s, _| working(s, S11));
    let second = s.state().sessions[S11].cwd.clone().unwrap();
    assert_eq!(second.to_str(), Some("/src/q-alpha/.agent-queue/worktrees/fragile-2"));
    let branch = &s.state().sessions[S11]
        .assignment
        .as_ref()
        .unwrap()
        .worktree
        .as_ref()
        .unwrap()
        .branch;
    assert_eq!(branch, "ccl/fragile-2");
}

#[test]
fn a_restart_while_a_worktree_is_being_made_asks_for_a_new_one() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        ..Setup::parallel()
    });
    s.world.enqueue("alpha", "t1.md");
    s.until(10, "the worktree asked for", |_, a| {
        a.iter().any(|x| matches!(x, Action::AddWorktree { .. }))
    });
    // The daemon dies after git made it, before it heard back: the outcome is lost.
    s.world.lose_worktree_outcomes();
    s.restart();
    let acts = s.until(20, "the task done", |s, _| all_done(s, 1));
    let asked = acts.iter().filter(|a| matches!(a, Action::AddWorktree { .. })).count();
    assert_eq!(asked, 1, "{}", render(&acts));
    // The one made before the crash is not reused: the task ran in a new one.
    let launch = typed(&acts, S11)
        .into_iter()
        .find(|l| is_launch(l))
        .unwrap()
        .to_string();
    assert!(
        launch.starts_with("cd /src/q-alpha/.agent-queue/worktrees/t1-2 "),
        "{launch}"
    );
}

/// How often the task's prompt was pasted and Enter pressed in `session`.
fn pastes_and_enters(acts: &[Action], session: &str) -> (usize, usize) {
    let mine = on(acts, session);
    let pastes = mine.iter().filter(|a| matches!(a, Action::PasteTask { .. })).count();
    let enters = mine
        .iter()
        .filter(|a| matches!(a, Action::SendKeys { keys, .. } if keys.iter().any(|k| k == "Enter")))
        .count();
    (pastes, enters)
}

/// After a restart with the prompt in Claude's box and `state.json` as the kill left it:
/// the task is submitted with one Enter and finishes where it was pasted, never pasted
/// again, given back or taken for an operator's draft.
fn after_a_restart_the_pasted_prompt_is_sent_once(mut s: Sim, before: Vec<Action>) {
    let acts = s.until(40, "the task done", |s, _| s.world.queues["alpha"].done.len() == 1);
    let all = [before, acts.clone()].concat();
    assert_eq!(
        pastes_and_enters(&all, S11),
        (1, 1),
        "one paste and one Enter:\n  {}",
        render(&acts)
    );
    assert!(claims(&acts).is_empty(), "claimed again:\n  {}", render(&acts));
    assert!(
        !acts.iter().any(|a| matches!(a, Action::RequeueTask { .. })),
        "given back:\n  {}",
        render(&acts)
    );
    assert!(
        !any_said(&acts, "needs attention"),
        "ccl's own prompt taken for a draft:\n  {}",
        render(&acts)
    );
    assert_eq!(attention_hooks(&acts, S11), 0);
    assert_eq!(outcome(&mut s, "t.md"), (1, 0, 0, 0));
}

#[test]
fn a_prompt_pasted_before_a_restart_is_submitted_once_after_it() {
    let mut s = Sim::new(&one_pool_session());
    s.world.enqueue("alpha", "t.md");
    // The paste is carried out; the daemon is killed before the turn of its Enter. The
    // saved state says `Pasted`: the Enter is ccl's to press.
    let before = s.until(20, "pasted", |_, a| {
        a.iter().any(|a| matches!(a, Action::PasteTask { .. }))
    });
    s.restart();
    after_a_restart_the_pasted_prompt_is_sent_once(s, before);
}

#[test]
fn a_prompt_pasted_before_a_kill_that_cut_off_its_enter_is_submitted_once() {
    let mut s = Sim::new(&one_pool_session());
    s.world.enqueue("alpha", "t.md");
    // The turn that decided the Enter was saved (`Submitted`); the Enter never went out.
    let before = s.until(20, "pasted", |_, a| {
        a.iter().any(|a| matches!(a, Action::PasteTask { .. }))
    });
    s.crash_when(
        5,
        "the Enter decided",
        |a| matches!(a, Action::SendKeys { keys, .. } if keys.iter().any(|k| k == "Enter")),
    );
    after_a_restart_the_pasted_prompt_is_sent_once(s, before);
}

#[test]
fn a_draft_in_a_new_claude_after_state_json_was_lost_is_never_taken_for_a_prompt() {
    let mut s = Sim::new(&one_pool_session());
    s.world.report_work = true;
    s.world.enqueue("alpha", "t.md");
    s.until(10, "launched", |s, _| s.world.launches.len() == 1);
    s.restart_without_state();
    // The operator types into the new Claude's box before any prompt went in: theirs,
    // though a task waits in running/ for that very Claude.
    s.world.type_draft(S11, "what does the chunker do?");
    let acts = s.run(3);
    assert_eq!(pastes_and_enters(&acts, S11), (0, 0), "{}", render(&acts));
    assert!(
        attention(&acts)
            .iter()
            .any(|(s, r)| *s == S11 && r.starts_with("needs attention: claude's input box holds text ccl did not type")),
        "{}",
        render(&acts)
    );
    assert!(s.state().sessions[S11].assignment.is_none());
}

/// A launch line that fails at once (here: claude not found) leaves the shell at a new
/// prompt that shows the directory the line `cd`-ed into. That prompt follows ccl's own
/// line, so it is an empty command line: the session is used again, never left waiting
/// for an operator because its prompt changed.
#[test]
fn a_launch_that_fails_at_once_leaves_a_usable_shell_not_one_needing_the_operator() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        ..Setup::default()
    });
    s.world.pane(S11).launch_fails = true;
    s.world.enqueue("alpha", "t.md");
    let acts = s.until(20, "the task launched again after the failed launch", |s, _| {
        !s.world.launches.is_empty()
    });
    assert!(
        events(&acts)
            .iter()
            .any(|e| matches!(e, Event::TaskRequeued { session, reason, .. }
            if session == S11 && reason.starts_with("claude exited right after launch"))),
        "{}",
        render(&acts)
    );
    assert!(!any_said(&acts, "text ccl did not type"), "{}", render(&acts));
    s.until(40, "done", |s, _| s.world.queues["alpha"].done.len() == 1);
}

/// The daemon sleeps until the tick or `Core::next_wake_ms`, whichever comes first: a
/// paste asks to be woken when its Enter is due (`submit_delay` later), and the Enter goes
/// out in the turn at that time, not a tick later. Nothing pending, no early wake.
#[test]
fn the_core_asks_to_wake_when_a_pastes_enter_is_due() {
    let mut s = Sim::new(&Setup {
        pool: 1,
        dedicated: vec![],
        ..Setup::default()
    });
    assert_eq!(s.core.next_wake_ms(), None, "nothing pending");
    s.world.enqueue("alpha", "t.md");
    s.until(10, "pasted", |_, a| {
        a.iter().any(|a| matches!(a, Action::PasteTask { .. }))
    });
    let delay = s.config().dispatch.submit_delay.0 as i64;
    assert!(delay > 0 && delay < TICK_MS, "a delay shorter than the tick: {delay}");
    let pasted_at = s.now_ms;
    assert_eq!(s.core.next_wake_ms(), Some(pasted_at + delay));

    // The daemon wakes at that time, before the next tick: the Enter goes out then.
    let acts = s.turn_at(pasted_at + delay);
    assert!(
        acts.iter().any(
            |a| matches!(a, Action::SendKeys { session, keys } if session == S11 && keys.iter().any(|k| k == "Enter"))
        ),
        "Enter when it is due:\n  {}",
        render(&acts)
    );
    assert_eq!(s.core.next_wake_ms(), None, "the Enter is sent: nothing pending");
}

/// Start times are kept beside deadlines, so no phase re-derives one by subtracting a
/// timeout. A `state.json` written before they were kept still loads: the missing start
/// reads as long ago, so a paste's Enter is due at once and a launch counts as typed
/// before this run.
#[test]
fn activities_saved_before_start_times_were_kept_still_load() {
    let strip = |a: Activity, field: &str| -> Activity {
        // Internally tagged: `{"activity": "pasted", "at_ms": …}`.
        let mut v = serde_json::to_value(&a).unwrap();
        assert!(v.as_object_mut().unwrap().remove(field).is_some(), "{field} in {a:?}");
        serde_json::from_value(v).unwrap()
    };
    let pasted = strip(
        Activity::Pasted {
            at_ms: 1_000,
            enter_ms: 1_500,
            text: ccl_core::core::PasteKind::Task,
        },
        "enter_ms",
    );
    assert!(
        matches!(
            pasted,
            Activity::Pasted {
                at_ms: 1_000,
                enter_ms: 0,
                ..
            }
        ),
        "{pasted:?}"
    );
    let launching = strip(
        Activity::Launching {
            since_ms: 1_000,
            deadline_ms: 61_000,
            then: ccl_core::core::AfterLaunch::Task,
            line: "claude".into(),
        },
        "since_ms",
    );
    assert!(
        matches!(
            launching,
            Activity::Launching {
                since_ms: 0,
                deadline_ms: 61_000,
                ..
            }
        ),
        "{launching:?}"
    );
    let stopping = strip(
        Activity::Stopping {
            since_ms: 1_000,
            deadline_ms: 31_000,
            exit_sent: true,
            exit_at_ms: None,
            signalled: false,
        },
        "since_ms",
    );
    assert!(
        matches!(stopping, Activity::Stopping { since_ms: 0, .. }),
        "{stopping:?}"
    );
}
