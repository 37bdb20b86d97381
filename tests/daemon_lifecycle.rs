//! The daemon's foundation, its refusal to start without shared links, and the life of
//! the sessions it manages, seen from outside as a user would: `ccl run` turns over and
//! stops within a tick of SIGTERM leaving tmux alone, a second daemon and a bad
//! configuration are refused with the right exit codes, `ccl check` and `ccl links`
//! report every problem, and with real tmux and the fake Claude: adoption without
//! restart, the pool kept at `min`, a vanished session recreated, sessions outside the
//! managed set never touched, a launch into an awkward path, a trust screen left to the
//! operator, and `ccl status` listing what ccl manages.
//!
//! Tests that need tmux start with the `CCL_TEST_TMUX=1` gate; the configuration and
//! link tests only run `ccl` against files and run in every tier.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::BINS;
use ccl_testkit::fleet::{Fleet, FleetSpec};
use ccl_testkit::wait_until;

const DEBUG: &[(&str, &str)] = &[("RUST_LOG", "debug")];

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `(session, pane pid)` of every session on the fleet's server, sorted.
fn pane_pids(fleet: &Fleet) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = fleet.panes().into_iter().map(|(n, p, _)| (n, p)).collect();
    v.sort();
    v
}

/// Waits until every named session exists on the server.
fn wait_sessions(fleet: &Fleet, names: &[&str]) {
    wait_until(&format!("sessions {names:?}"), Duration::from_secs(15), || {
        let panes = fleet.panes();
        names.iter().all(|n| panes.iter().any(|p| p.0 == *n)).then_some(())
    });
}

/// The entry of `session` in `ccl status --json`, once the daemon has saved a state
/// that holds it (the first turn's state is written a moment after the daemon starts).
fn status_of(fleet: &Fleet, session: &str) -> serde_json::Value {
    wait_until(&format!("{session} in ccl status"), Duration::from_secs(10), || {
        fleet.status()["sessions"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == session)
            .cloned()
    })
}

// -- foundation ----------------------------------------------------------------------

#[test]
fn run_turns_over_refuses_a_second_daemon_and_stops_within_a_tick_leaving_tmux_alone() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        dedicated: vec!["ops".into()],
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "foundation", spec);
    fleet.new_session("ops", &fleet.root.join("work/ops"));
    fleet.new_session("mine", &fleet.root);
    fleet.start_with_env(None, DEBUG);
    wait_sessions(&fleet, &["ccl-auto-11", "ccl-auto-12"]);
    fleet.wait_turns(3, Duration::from_secs(10));
    assert!(fleet.log().contains("turn 1 (tick)"), "log:\n{}", fleet.log());

    let pid = fleet.daemon_pid().unwrap();
    let second = fleet.ccl_timeout(&["run"], Duration::from_secs(10));
    assert_eq!(second.status.code(), Some(1), "stderr: {}", stderr(&second));
    assert!(
        stderr(&second).contains(&format!("pid {pid}")),
        "the refusal names the running daemon's pid {pid}: {}",
        stderr(&second)
    );
    // The first daemon is unaffected and still turning over.
    fleet.wait_turns(2, Duration::from_secs(10));

    let before = pane_pids(&fleet);
    assert_eq!(before.len(), 4, "pool of 2, ops, mine: {before:?}");
    let tick = Duration::from_millis(300);
    let asked = Instant::now();
    let code = fleet.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "exit code after SIGTERM; log:\n{}", fleet.log());
    assert!(
        took < tick + Duration::from_secs(1),
        "ccl took {took:?} to stop after SIGTERM (tick {tick:?})"
    );
    assert_eq!(pane_pids(&fleet), before, "every tmux session still runs, same panes");
    assert!(fleet.log().contains("every tmux session is left running"));
}

#[test]
fn a_config_with_an_unknown_key_exits_2_naming_file_line_and_column() {
    let fleet = Fleet::new(BINS, "badkey", FleetSpec::default());
    fleet.write_config("[hooks]\non_swapp = \"true\"\n");
    let text = fs::read_to_string(&fleet.config_path).unwrap();
    let line = text.lines().position(|l| l.starts_with("on_swapp")).unwrap() + 1;
    for args in [&["run"][..], &["check"], &["status"]] {
        let out = fleet.ccl_timeout(args, Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2), "ccl {args:?}: {}", stderr(&out));
        let expected = format!("{}:{line}:1: unknown field", fleet.config_path.display());
        assert!(
            stderr(&out).contains(&expected),
            "ccl {args:?} names {expected:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("on_swapp"), "{}", stderr(&out));
    }
}

#[test]
fn check_prints_every_problem_at_once_and_exits_1() {
    let fleet = Fleet::new(BINS, "check", FleetSpec::default());
    fs::remove_file(fleet.home("a").join("projects")).unwrap();
    fs::remove_file(fleet.home("b").join("session-env")).unwrap();
    let command = format!("command = \"{}\"", fleet.root.join("bin/claude").display());
    fleet.write_config_edited("", &[(&command, "command = \"no-such-claude-here\"")]);

    let out = fleet.ccl_timeout(&["check"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    // Without tmux on PATH (the tier that does not ask for it) that is one more problem.
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("problem:") && !l.starts_with("problem: tmux:"))
        .collect();
    let has = |needles: &[&str]| problems.iter().any(|p| needles.iter().all(|n| p.contains(n)));
    assert!(has(&["'a'", "projects", "missing"]), "{text}");
    assert!(has(&["'b'", "session-env", "missing"]), "{text}");
    assert!(has(&["claude", "no-such-claude-here", "not found"]), "{text}");
    assert_eq!(problems.len(), 3, "exactly the three problems, nothing else: {text}");
    let n = text.lines().filter(|l| l.starts_with("problem:")).count();
    assert!(text.contains(&format!("{n} problems found")), "{text}");
}

// -- links ---------------------------------------------------------------------------

#[test]
fn run_refuses_a_missing_link_on_the_second_account_before_starting_tmux() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let fleet = Fleet::new(BINS, "links-refuse", FleetSpec::default());
    let link = fleet.home("b").join("session-env");
    fs::remove_file(&link).unwrap();
    let out = fleet.ccl_timeout(&["run"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("account 'b'") && err.contains("session-env") && err.contains("missing"),
        "names the account and the link: {err}"
    );
    assert!(err.contains("ccl links --fix"), "says how to fix it: {err}");
    assert!(!err.contains("account 'a'"), "account a is fine: {err}");
    let listed = fleet.tmux_raw(&["list-sessions"]);
    assert!(
        !listed.status.success(),
        "no tmux server was started on the configured socket: {}",
        String::from_utf8_lossy(&listed.stdout)
    );
    assert!(!fleet.state_dir().join("state.json").exists(), "no state was written");
}

/// Every path under `dir`, with its inode and, for a symlink, where it points: what
/// `--fix` might change.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, Option<PathBuf>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let dest = meta.file_type().is_symlink().then(|| fs::read_link(&p).unwrap());
            if meta.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p, (meta.ino(), dest));
        }
    }
    out
}

#[test]
fn links_fix_creates_what_is_missing_once_and_then_changes_nothing() {
    let fleet = Fleet::new(BINS, "links-fix", FleetSpec::default());
    fs::remove_file(fleet.home("a").join("projects")).unwrap();
    fs::remove_file(fleet.home("b").join("file-history")).unwrap();
    fs::remove_file(fleet.home("b").join("session-env")).unwrap();
    fs::remove_dir(fleet.root.join("shared/session-env")).unwrap();

    let out = fleet.ccl_timeout(&["links"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // Three missing links, and a's session-env now leads to a target that is gone.
    assert!(stdout(&out).contains("4 problems"), "{}", stdout(&out));
    assert!(stdout(&out).contains("dangling"), "{}", stdout(&out));

    let out = fleet.ccl_timeout(&["links", "--fix"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    for (account, link) in [("a", "projects"), ("b", "file-history"), ("b", "session-env")] {
        let path = fleet.home(account).join(link);
        assert_eq!(
            fs::read_link(&path)
                .ok()
                .and_then(|d| fs::canonicalize(path.parent().unwrap().join(d)).ok()),
            Some(fleet.root.join("shared").join(link)),
            "{account}/{link} leads to the shared target"
        );
    }
    assert!(fleet.root.join("shared/session-env").is_dir());

    let out = fleet.ccl_timeout(&["links"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let before = tree(&fleet.root.join("accounts"));
    let shared_before = tree(&fleet.root.join("shared"));
    let out = fleet.ccl_timeout(&["links", "--fix"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("nothing to create"), "{}", stdout(&out));
    assert_eq!(
        tree(&fleet.root.join("accounts")),
        before,
        "a second --fix changed the homes"
    );
    assert_eq!(
        tree(&fleet.root.join("shared")),
        shared_before,
        "a second --fix changed the target"
    );
}

#[test]
fn links_fix_leaves_a_divergent_link_exactly_as_it_was() {
    let fleet = Fleet::new(BINS, "links-divergent", FleetSpec::default());
    let elsewhere = fleet.root.join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::write(elsewhere.join("keep.txt"), "the operator's data").unwrap();
    let link = fleet.home("a").join("file-history");
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    // A missing one beside it: --fix must still create that one.
    fs::remove_file(fleet.home("b").join("projects")).unwrap();

    let before = fs::symlink_metadata(&link).unwrap().ino();
    let out = fleet.ccl_timeout(&["links", "--fix"], Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a divergent link is a problem --fix does not settle: {}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("divergent"), "{}", stdout(&out));
    assert_eq!(
        fs::read_link(&link).unwrap(),
        elsewhere,
        "the link still points elsewhere"
    );
    assert_eq!(
        fs::symlink_metadata(&link).unwrap().ino(),
        before,
        "the link was not recreated"
    );
    assert_eq!(
        fs::read_to_string(elsewhere.join("keep.txt")).unwrap(),
        "the operator's data"
    );
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 1, "nothing moved into it");
    assert!(
        fleet.home("b").join("projects").is_symlink(),
        "the missing link beside it was created"
    );
    let out = fleet.ccl_timeout(&["links"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

// -- session lifecycle ---------------------------------------------------------------

/// The pid of the Claude whose registry file in `account`'s home names `conversation`.
fn registry_pid(fleet: &Fleet, account: &str, conversation: &str) -> Option<u32> {
    fs::read_dir(fleet.home(account).join("sessions"))
        .ok()?
        .flatten()
        .find_map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
            (v["sessionId"] == conversation).then(|| v["pid"].as_u64().map(|p| p as u32))?
        })
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[test]
fn a_pool_session_already_running_claude_is_adopted_without_a_restart() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "adopt", spec);
    let id = fleet.start_claude_by_hand("ccl-auto-11", "a", &fleet.root.join("pool"));
    let pane = fleet.pane_pid("ccl-auto-11").unwrap();
    let claude = registry_pid(&fleet, "a", &id).expect("registry entry of the hand-started claude");
    let screen = fleet.capture("ccl-auto-11");

    fleet.start_with_env(None, DEBUG);
    wait_until("ccl-auto-11 adopted as idle", Duration::from_secs(10), || {
        let s = status_of(&fleet, "ccl-auto-11");
        (s["state"] == "idle").then_some(s)
    });
    fleet.wait_turns(5, Duration::from_secs(10));
    let s = status_of(&fleet, "ccl-auto-11");
    assert_eq!(s["conversation"], id.as_str(), "{s}");
    assert_eq!(s["account"], "a", "{s}");
    fleet.stop();

    assert_eq!(fleet.pane_pid("ccl-auto-11"), Some(pane), "the pane was not recreated");
    assert!(alive(claude), "the adopted claude (pid {claude}) still runs");
    assert_eq!(
        registry_pid(&fleet, "a", &id),
        Some(claude),
        "same claude, same conversation"
    );
    assert_eq!(fleet.capture("ccl-auto-11"), screen, "nothing was typed into it");
    assert!(fleet.received().is_empty(), "{:?}", fleet.received());
    let log = fleet.log();
    assert!(!log.contains("create session ccl-auto-11"), "{log}");
    assert!(!log.contains("type into ccl-auto-11"), "{log}");
}

#[test]
fn the_pool_is_filled_up_to_min_only_and_status_lists_every_managed_session() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 3,
        dedicated: vec!["ops".into()],
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "min-max", spec);
    fleet.new_session("ops", &fleet.root.join("work/ops"));
    fleet.start_with_env(None, DEBUG);
    wait_sessions(&fleet, &["ccl-auto-11"]);
    wait_until("ccl-auto-11 at its shell", Duration::from_secs(10), || {
        (status_of(&fleet, "ccl-auto-11")["state"] == "shell").then_some(())
    });
    fleet.wait_turns(5, Duration::from_secs(10));
    let names: Vec<String> = fleet.panes().into_iter().map(|p| p.0).collect();
    assert!(
        !names.iter().any(|n| n == "ccl-auto-12" || n == "ccl-auto-13"),
        "sessions beyond min are not created: {names:?}"
    );
    assert!(
        fleet.log().contains("create session ccl-auto-11") && fleet.log().contains("pool below min"),
        "{}",
        fleet.log()
    );

    let out = fleet.ccl(&["status"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    let row = |name: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{table}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert!(
        table.contains(&format!("daemon: running (pid {})", fleet.daemon_pid().unwrap())),
        "{table}"
    );
    assert_eq!(row("ccl-auto-11")[1..3], ["pool", "shell"], "{table}");
    assert_eq!(row("ccl-auto-12")[1..3], ["pool", "absent"], "{table}");
    assert_eq!(row("ccl-auto-13")[1..3], ["pool", "absent"], "{table}");
    assert_eq!(row("ops")[1..3], ["dedicated", "shell"], "{table}");
    assert!(row("a").contains(&"active".to_string()), "{table}");
    fleet.stop();
}

#[test]
fn a_killed_pool_session_is_recreated_and_the_log_says_why() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "recreate", spec);
    fleet.start(None);
    wait_sessions(&fleet, &["ccl-auto-11"]);
    let first = fleet.pane_pid("ccl-auto-11").unwrap();
    fleet.tmux(&["kill-session", "-t", "=ccl-auto-11"]);
    let second = wait_until("ccl-auto-11 recreated", Duration::from_secs(10), || {
        fleet.pane_pid("ccl-auto-11").filter(|p| *p != first)
    });
    assert_ne!(first, second);
    // The session exists a moment before the executor logs its creation: wait for the
    // line itself (the first creation's line would satisfy a looser wait).
    fleet.wait_log("create session ccl-auto-11 in", Duration::from_secs(5));
    let log = wait_until("the recreation's log line", Duration::from_secs(5), || {
        let log = fleet.log();
        log.contains("(session vanished)").then_some(log)
    });
    assert!(
        log.lines()
            .any(|l| l.contains("create session ccl-auto-11") && l.contains("(session vanished)")),
        "the recreation says why: {log}"
    );
    fleet.stop();
}

#[test]
fn sessions_outside_the_pool_range_and_unmanaged_ones_are_never_touched() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    // start_index 11, max 2: ccl manages ccl-auto-11 and ccl-auto-12 only.
    let spec = FleetSpec {
        pool_min: 2,
        pool_max: 2,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "unmanaged", spec);
    let outsiders = ["ccl-auto-10", "ccl-auto-1x", "ccl-0", "ccl-auto-1", "ccl-auto-011"];
    for name in outsiders {
        fleet.new_session(name, &fleet.root);
        fleet.tmux(&[
            "send-keys",
            "-t",
            &format!("={name}:"),
            "-l",
            &format!("echo mark-{name}"),
        ]);
        fleet.tmux(&["send-keys", "-t", &format!("={name}:"), "Enter"]);
        wait_until(&format!("{name} echoed"), Duration::from_secs(10), || {
            let c = fleet.capture(name);
            (c.matches(&format!("mark-{name}")).count() == 2 && c.trim_end().ends_with(['$', '#'])).then_some(())
        });
    }
    // Just above the range, an idle Claude: the most tempting target there is.
    let tempting = fleet.start_claude_by_hand("ccl-auto-13", "a", &fleet.root.join("pool"));
    let mut before = BTreeMap::new();
    for name in outsiders.iter().chain(&["ccl-auto-13"]) {
        before.insert(name.to_string(), (fleet.pane_pid(name).unwrap(), fleet.capture(name)));
    }

    for i in 0..3 {
        fleet.enqueue("q", &format!("task {i}"));
    }
    fleet.start(None);
    fleet.wait_done("q", 3, Duration::from_secs(60));
    fleet.stop();

    for (name, (pid, screen)) in &before {
        assert_eq!(fleet.pane_pid(name), Some(*pid), "{name} keeps its pane");
        assert_eq!(&fleet.capture(name), screen, "{name} got no keystrokes");
    }
    assert!(
        fleet.received().iter().all(|r| r["sessionId"] != tempting.as_str()),
        "{:?}",
        fleet.received()
    );
    let log = fleet.log();
    for name in outsiders.iter().chain(&["ccl-auto-13"]) {
        assert!(
            !log.contains(&format!("{name}:")) && !log.contains(&format!("{name} ")),
            "the log never acts on {name}: {log}"
        );
    }
    let names: Vec<String> = fleet.panes().into_iter().map(|p| p.0).collect();
    assert_eq!(names.len(), outsiders.len() + 3, "nothing else was created: {names:?}");
}

#[test]
fn a_task_runs_in_a_project_whose_path_has_spaces_and_a_quote() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        queues: Vec::new(),
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "quoting", spec);
    let project = fleet.root.join("proj dir").join("it's");
    fs::create_dir_all(&project).unwrap();
    fleet.write_config(&format!(
        "[[queue]]\nname = \"odd\"\nproject = \"{}\"\n",
        project.display()
    ));
    let body = "say where you are";
    let name = fleet.enqueue("odd", body);
    fleet.start(None);
    let done = project.join(".agent-queue/done");
    wait_until("the task in done/", Duration::from_secs(30), || {
        done.join(&name).exists().then_some(())
    });
    fleet.stop();
    let received = fleet.received();
    let task: Vec<_> = received.iter().filter(|r| r["text"] == body).collect();
    assert_eq!(task.len(), 1, "{received:#?}");
    assert_eq!(
        task[0]["cwd"],
        project.to_string_lossy().as_ref(),
        "claude ran in the project"
    );
    assert!(!project.join(".agent-queue/failed").join(&name).exists());
}

#[test]
fn a_trust_screen_is_left_to_the_operator_and_the_task_goes_back_to_the_inbox() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "trust", spec);
    fleet.write_config_edited(
        "",
        &[(
            "FAKE_CLAUDE_WORK_MS = ",
            "FAKE_CLAUDE_SCREEN = \"trust\", FAKE_CLAUDE_WORK_MS = ",
        )],
    );
    let name = fleet.enqueue("q", "a task for a trusted folder");
    fleet.start_with_env(None, DEBUG);
    wait_until("ccl-auto-11 needs attention", Duration::from_secs(20), || {
        let s = status_of(&fleet, "ccl-auto-11");
        (!s["attention"].is_null()).then_some(())
    });
    wait_until("the task back in the inbox", Duration::from_secs(10), || {
        (fleet.tasks("q", "inbox") == [name.clone()]).then_some(())
    });
    // Several ticks later nothing has changed: no key was sent, no retry was made.
    fleet.wait_turns(6, Duration::from_secs(10));
    let s = status_of(&fleet, "ccl-auto-11");
    assert!(!s["attention"].is_null(), "{s}");
    assert!(s["task"].is_null(), "{s}");
    assert_eq!(fleet.tasks("q", "inbox"), [name]);
    assert!(fleet.tasks("q", "running").is_empty() && fleet.tasks("q", "failed").is_empty());
    // Enter or Escape would have made the trust screen exit; it is still up.
    assert_eq!(fleet.command_of("ccl-auto-11").as_deref(), Some("claude"));
    assert!(fleet.capture("ccl-auto-11").contains("Quick safety check"));
    assert!(fleet.received().is_empty(), "{:?}", fleet.received());
    let log = fleet.log();
    assert_eq!(
        log.matches("ccl-auto-11: needs attention").count(),
        1,
        "said once, not every tick (the on_needs_attention hook fires with it): {log}"
    );
    assert_eq!(
        log.matches("paste task").count() + log.matches("send Enter to ccl-auto-11").count(),
        0,
        "{log}"
    );
    fleet.stop();
}

/// `claude.env` values are secrets: they reach Claude (the fake Claude finds its prompt
/// log through them) but never a log line, a trace, or the pane (the typed line and the
/// shell's scrollback); `state_dir` is private and so is the trace.
#[test]
fn claude_env_values_reach_claude_but_no_log_trace_or_pane_and_state_is_private() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "secrets", spec);
    let secret = "sk-ant-secret-7f3a9c";
    fleet.write_config_edited("", &[("env = { ", &format!("env = {{ API_TOKEN = \"{secret}\", "))]);
    let body = "a task under a secret environment";
    let name = fleet.enqueue("q", body);
    let trace = fleet.root.join("run.trace");
    fleet.start_with_env(Some(&trace), DEBUG);
    fleet.wait_done("q", 1, Duration::from_secs(30));
    fleet.stop();
    assert!(
        fleet.received().iter().any(|r| r["text"] == body),
        "claude got its environment (its prompt log is named there)"
    );
    assert!(fleet.queue_dir("q", "done").join(&name).exists());
    let scrollback = fleet.tmux(&["capture-pane", "-p", "-S", "-", "-t", "=ccl-auto-11:"]);
    for (what, text) in [
        ("the daemon's log", fleet.log()),
        ("the trace", fs::read_to_string(&trace).unwrap()),
        ("the pane's scrollback", scrollback),
    ] {
        assert!(!text.contains(secret), "{what} holds the secret:\n{text}");
    }
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&fleet.state_dir()), 0o700, "state_dir");
    assert_eq!(mode(&trace), 0o600, "trace");
    assert_eq!(mode(&fleet.state_dir().join("claude.env")), 0o600, "claude.env");
}

/// The pool's workdir does not exist: no pool session is started anywhere else (such as
/// `$HOME`); `ccl status` shows the session needing attention with the reason, and once
/// the directory exists the session is created in it.
#[test]
fn a_missing_pool_workdir_is_refused_visibly_never_a_session_in_home() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "missing-workdir", spec);
    let pool = fleet.root.join("pool");
    fs::remove_dir(&pool).unwrap();
    fleet.start_with_env(None, DEBUG);
    fleet.wait_turns(3, Duration::from_secs(10));
    let names: Vec<String> = fleet.panes().into_iter().map(|(n, _, _)| n).collect();
    assert!(
        !names.contains(&"ccl-auto-11".to_string()),
        "created anyway: {names:?}\n{}",
        fleet.log()
    );
    let status = fleet.status();
    let session = status["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ccl-auto-11")
        .cloned()
        .unwrap_or_default();
    assert!(
        session["attention"]
            .as_str()
            .is_some_and(|a| a.contains("does not exist")),
        "{status:#}"
    );
    fs::create_dir(&pool).unwrap();
    wait_until(
        "ccl-auto-11 created in the pool workdir",
        Duration::from_secs(10),
        || {
            let path = fleet.tmux_raw(&["display-message", "-p", "-t", "=ccl-auto-11:", "#{pane_current_path}"]);
            (path.status.success() && String::from_utf8_lossy(&path.stdout).trim() == pool.to_string_lossy())
                .then_some(())
        },
    );
    fleet.stop();
}
