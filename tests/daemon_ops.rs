//! Day-to-day operation of a running daemon (issues 8 and 11), with real tmux and the
//! fake Claude: a recorded run replays action for action and stores a pane capture only
//! when it changed; hooks fire once per event with their `CCL_*` environment, and one
//! that hangs is killed at its timeout while the loop keeps turning; a paused queue holds
//! its task across turns and across a restart until it is resumed; SIGHUP takes a larger
//! pool and refuses an invalid file or a changed tmux socket while work goes on; and a
//! near-limit warning drains the account (no new task) and swaps once the running task
//! is done, so the next task runs under the new account.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::BINS;
use ccl_testkit::fleet::{Fleet, FleetSpec};
use ccl_testkit::{wait_until, TmuxServer};

const DEBUG: &[(&str, &str)] = &[("RUST_LOG", "debug")];

/// Puts a task into the inbox the way any producer may (a dotfile renamed into place),
/// for when `ccl enqueue` cannot run because the configuration is broken on purpose.
fn drop_task(fleet: &Fleet, queue: &str, name: &str, body: &str) {
    let inbox = fleet.queue_dir(queue, "inbox");
    let tmp = inbox.join(format!(".{name}.tmp"));
    fs::write(&tmp, body).unwrap();
    fs::rename(&tmp, inbox.join(name)).unwrap();
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------
// Record and replay

#[test]
fn a_recorded_run_replays_with_every_action_matching_and_unchanged_captures_elided() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let mut fleet = Fleet::new(BINS, "ops-record", FleetSpec::default());
    let trace = fleet.root.join("run.trace");
    for i in 1..=3 {
        fleet.enqueue("q", &format!("recorded task {i}"));
    }
    fleet.start(Some(&trace));
    fleet.wait_done("q", 3, Duration::from_secs(40));
    fleet.stop();

    let out = fleet.ccl(&["replay", &trace.to_string_lossy()], None);
    let lines: Vec<serde_json::Value> = fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let turns: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("observation").is_some()).collect();
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (Some(0), format!("{} turns, all actions match\n", turns.len())),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines[0]["format"], "ccl-trace");
    let finished = turns
        .iter()
        .flat_map(|t| t["actions"].as_array().unwrap())
        .filter(|a| a["action"] == "finish_task")
        .count();
    assert_eq!(finished, 3, "the replayed turns include the three tasks being filed");

    // A capture is written only when it differs from the session's previous one; an
    // unchanged one is `capture_same`, which needs an earlier capture to stand for.
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let (mut same, mut written) = (0, 0);
    for t in &turns {
        for s in t["observation"]["sessions"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap().to_string();
            if s.get("capture_same").is_some() {
                assert!(
                    last.contains_key(&name),
                    "turn {}: capture_same for {name} with nothing before",
                    t["turn"]
                );
                same += 1;
            } else if let Some(c) = s["capture"].as_str() {
                assert_ne!(
                    last.get(&name).map(String::as_str),
                    Some(c),
                    "turn {}: {name}'s capture was stored again unchanged",
                    t["turn"]
                );
                last.insert(name, c.to_string());
                written += 1;
            } else {
                last.remove(&name);
            }
        }
    }
    assert!(same > 0 && written > 0, "{same} captures elided, {written} written");
}

// ---------------------------------------------------------------------------------------
// Hooks

/// A hook script that writes its `CCL_*` environment to `DIR/EVENT.PID.env` (renamed into
/// place, so a file the test sees is whole).
fn env_hook(fleet: &Fleet) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = fleet.root.join("hook-out");
    fs::create_dir_all(&dir).unwrap();
    let script = fleet.root.join("hook.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nout=\"{}/$CCL_EVENT.$$\"\nenv | grep '^CCL_' | sort > \"$out.tmp\" && mv \"$out.tmp\" \"$out.env\"\n",
            dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    (script, dir)
}

/// Every hook run so far: (event, its CCL_* variables).
fn hook_runs(dir: &Path) -> Vec<(String, BTreeMap<String, String>)> {
    let mut runs: Vec<(String, BTreeMap<String, String>)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".env"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let vars = fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (name.split('.').next().unwrap().to_string(), vars)
        })
        .collect();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    runs
}

#[test]
fn each_hook_fires_once_with_its_environment() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        dedicated: vec!["ops".into()],
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "ops-hooks", spec);
    let (script, out_dir) = env_hook(&fleet);
    let s = script.display();
    fleet.write_config(&format!(
        "[hooks]\non_swap = \"{s}\"\non_all_exhausted = \"{s}\"\non_task_done = \"{s}\"\non_task_failed = \"{s}\"\non_needs_attention = \"{s}\"\n"
    ));
    // The operator's session shows the folder-trust dialog: it needs the operator.
    fleet.new_session("ops", &fleet.root.join("work/ops"));
    let line = format!(
        "CLAUDE_CONFIG_DIR={} FAKE_CLAUDE_SCREEN=trust {}",
        fleet.home("a").display(),
        fleet.root.join("bin/claude").display()
    );
    fleet.tmux(&["send-keys", "-t", "=ops:", "-l", &line]);
    fleet.tmux(&["send-keys", "-t", "=ops:", "Enter"]);
    wait_until("the trust dialog in ops", Duration::from_secs(10), || {
        fleet.capture("ops").contains("Quick safety check").then_some(())
    });
    // Account a is at its 5-hour limit: the task hits it, ccl swaps to b and the task
    // finishes there. An empty file in the inbox fails.
    fleet.set_limit("a", "five_hour 9:23am (UTC)");
    fs::create_dir_all(fleet.queue_dir("q", "inbox")).unwrap();
    fs::write(fleet.queue_dir("q", "inbox").join("empty.md"), b"").unwrap();
    let task = fleet.enqueue("q", "a task that meets the limit");

    fleet.start(None);
    fleet.wait_done("q", 1, Duration::from_secs(40));
    wait_until("four hook runs", Duration::from_secs(10), || {
        (hook_runs(&out_dir).len() >= 4).then_some(())
    });
    fleet.stop();

    let runs = hook_runs(&out_dir);
    let events: Vec<&str> = runs.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        events,
        ["needs_attention", "swap", "task_done", "task_failed"],
        "each hook fired exactly once: {runs:#?}; log:\n{}",
        fleet.log()
    );
    let vars = |event: &str| runs.iter().find(|(e, _)| e == event).unwrap().1.clone();

    let done = vars("task_done");
    assert_eq!(done["CCL_EVENT"], "task_done");
    assert_eq!(done["CCL_SESSION"], "ccl-auto-11");
    assert_eq!(done["CCL_QUEUE"], "q");
    assert_eq!(done["CCL_TASK"], task);

    let swap = vars("swap");
    assert_eq!((swap["CCL_FROM"].as_str(), swap["CCL_TO"].as_str()), ("a", "b"));
    assert!(swap["CCL_REASON"].contains("usage limit of a"), "{swap:?}");
    let reset: jiff::Timestamp = swap["CCL_RESET_AT"]
        .parse()
        .unwrap_or_else(|e| panic!("CCL_RESET_AT {:?} is not RFC 3339: {e}", swap["CCL_RESET_AT"]));
    assert!(swap["CCL_RESET_AT"].ends_with("T09:23:00Z"), "{swap:?}");
    let now = jiff::Timestamp::now();
    assert!(
        reset > now - jiff::SignedDuration::from_mins(5) && reset < now + jiff::SignedDuration::from_hours(25),
        "the next 9:23 UTC: {reset}"
    );

    let failed = vars("task_failed");
    assert_eq!(failed["CCL_QUEUE"], "q");
    assert_eq!(failed["CCL_TASK"], "empty.md");
    assert_eq!(failed["CCL_ERROR"], "empty task");

    let attention = vars("needs_attention");
    assert_eq!(attention["CCL_SESSION"], "ops");
    assert!(!attention["CCL_REASON"].is_empty(), "{attention:?}");
    assert_eq!(fleet.report("q", &task)["account"], "b");
}

#[test]
fn a_hook_that_hangs_is_killed_at_its_timeout_while_the_loop_keeps_turning() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "ops-hook-timeout", spec);
    let pids = fleet.root.join("sleepers");
    fleet.write_config(&format!(
        "[hooks]\non_task_done = \"sleep 30 & echo $! >> {}; wait\"\ntimeout = \"1s\"\n",
        pids.display()
    ));
    fleet.enqueue("q", "first task");
    fleet.start_with_env(None, DEBUG);
    let started_at = fleet.wait_log_from(0, "hook on_task_done started", Duration::from_secs(30));
    let hook_started = Instant::now();
    let second = fleet.enqueue("q", "second task");
    let killed_at = fleet.wait_log_from(
        started_at,
        "hook on_task_done ended: killed after its timeout",
        Duration::from_secs(10),
    );
    let log = fleet.log();
    let turns_meanwhile = log[started_at..killed_at]
        .lines()
        .filter(|l| l.contains("] turn "))
        .count();
    assert!(
        turns_meanwhile >= 2,
        "the loop turned while the hook hung ({turns_meanwhile} turns); log:\n{log}"
    );
    // The second task completes well within the first hook's 30 seconds of sleep.
    fleet.wait_done("q", 2, Duration::from_secs(20));
    assert!(hook_started.elapsed() < Duration::from_secs(25));
    fleet.wait_log_from(
        killed_at + 1,
        "hook on_task_done ended: killed after its timeout",
        Duration::from_secs(10),
    );
    fleet.stop();

    assert!(fleet.tasks("q", "done").contains(&second));
    // The hook's whole process group went: its `sleep` is gone too.
    let sleepers = fs::read_to_string(&pids).unwrap();
    for pid in sleepers.split_whitespace() {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]).unwrap_or("gone");
        assert!(
            state == "gone" || state == "Z",
            "the hook's sleep {pid} still runs: {stat}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Pause and resume

#[test]
fn a_paused_queue_holds_its_task_across_turns_and_a_restart_until_resumed() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        queues: vec!["q1".into(), "q2".into()],
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "ops-pause", spec);
    fleet.start_with_env(None, DEBUG);
    fleet.wait_log(" turn 2 (", Duration::from_secs(10));
    let out = fleet.ccl(&["pause", "q1"], None);
    assert_eq!((out.status.code(), stdout(&out).trim()), (Some(0), "queue q1 paused"));
    let held = fleet.enqueue("q1", "held while q1 is paused");
    let other = fleet.enqueue("q2", "a task of the other queue");

    // The other queue's task runs although the held one is older.
    fleet.wait_done("q2", 1, Duration::from_secs(30));
    fleet.wait_turns(5, Duration::from_secs(10));
    assert_eq!(fleet.tasks("q1", "inbox"), vec![held.clone()]);
    assert!(fleet.tasks("q1", "running").is_empty());
    assert_eq!(fleet.tasks("q2", "done"), vec![other]);

    let text = stdout(&fleet.ccl(&["status"], None));
    let row = |q: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(q))
            .unwrap_or_else(|| panic!("no row for {q} in:\n{text}"))
            .to_string()
    };
    assert!(row("q1").ends_with("paused"), "{text}");
    assert!(!row("q2").contains("paused"), "{text}");
    let status = fleet.status();
    assert_eq!(status["queues"][0]["paused"], true);
    assert_eq!(status["queues"][1]["paused"], false);

    // Stopped and started again, the queue is still paused.
    fleet.stop();
    let from = fleet.log().len();
    fleet.start_with_env(None, DEBUG);
    fleet.wait_log_from(from, " turn 6 (", Duration::from_secs(10));
    assert_eq!(fleet.tasks("q1", "inbox"), vec![held.clone()]);
    assert_eq!(fleet.status()["queues"][0]["paused"], true);

    let out = fleet.ccl(&["resume", "q1"], None);
    assert_eq!((out.status.code(), stdout(&out).trim()), (Some(0), "queue q1 resumed"));
    fleet.wait_done("q1", 1, Duration::from_secs(30));
    assert_eq!(fleet.status()["queues"][0]["paused"], false);
    fleet.stop();
    assert_eq!(fleet.tasks("q1", "done"), vec![held]);
}

// ---------------------------------------------------------------------------------------
// SIGHUP

#[test]
fn sighup_takes_a_larger_pool_and_refuses_a_broken_file_or_another_tmux_socket() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "ops-reload", spec);
    let socket = fleet.tmux.socket.clone();
    // Killed when the test ends, in case a refused reload started a server there anyway.
    let other = TmuxServer {
        socket: format!("{socket}-other"),
    };
    fleet.start(None);
    wait_until("ccl-auto-11", Duration::from_secs(10), || fleet.pane_pid("ccl-auto-11"));

    // An invalid file: refused, the old configuration stays and work goes on.
    fs::write(&fleet.config_path, "[daemon\ntick = \n").unwrap();
    let from = fleet.log().len();
    fleet.send_signal(libc::SIGHUP);
    fleet.wait_log_from(
        from,
        "reload refused, the old configuration stays",
        Duration::from_secs(10),
    );
    drop_task(&fleet, "q", "after-broken.md", "a task after a broken reload");
    fleet.wait_done("q", 1, Duration::from_secs(30));

    // Another tmux socket (with a larger pool): refused and named; nothing changes.
    fleet.spec.pool_min = 2;
    fleet.spec.pool_max = 2;
    fleet.write_config_edited(
        "",
        &[(
            &format!("socket = \"{socket}\""),
            &format!("socket = \"{}\"", other.socket),
        )],
    );
    let from = fleet.log().len();
    fleet.send_signal(libc::SIGHUP);
    let at = fleet.wait_log_from(from, "reload refused", Duration::from_secs(10));
    let line = fleet.log()[at..].lines().next().unwrap().to_string();
    assert!(line.contains("tmux.socket"), "the refusal names the socket: {line}");
    drop_task(&fleet, "q", "after-socket.md", "a task after a refused socket change");
    fleet.wait_done("q", 2, Duration::from_secs(30));
    assert!(
        fleet.pane_pid("ccl-auto-12").is_none(),
        "the refused pool size did not apply"
    );
    let sessions = fleet.panes().into_iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(sessions, ["ccl-auto-11"]);
    let elsewhere = std::process::Command::new("tmux")
        .args(["-L", &other.socket, "list-sessions"])
        .output()
        .unwrap();
    assert!(!elsewhere.status.success(), "nothing was started on the other socket");

    // A valid file with a larger pool: the new session appears and takes work.
    fleet.write_config("");
    let from = fleet.log().len();
    fleet.send_signal(libc::SIGHUP);
    fleet.wait_log_from(from, "configuration reloaded from", Duration::from_secs(10));
    wait_until("ccl-auto-12 created", Duration::from_secs(10), || {
        fleet.pane_pid("ccl-auto-12")
    });
    let t3 = fleet.enqueue_as("q", "3.md", "third task [fake:work=2s]");
    let t4 = fleet.enqueue_as("q", "4.md", "fourth task [fake:work=2s]");
    fleet.wait_done("q", 4, Duration::from_secs(30));
    fleet.stop();
    let mut used = vec![
        fleet.report("q", &t3)["session"].as_str().unwrap().to_string(),
        fleet.report("q", &t4)["session"].as_str().unwrap().to_string(),
    ];
    used.sort();
    assert_eq!(used, ["ccl-auto-11", "ccl-auto-12"], "both sessions took a task");
}

// ---------------------------------------------------------------------------------------
// Drain before the limit

#[test]
fn a_near_limit_warning_drains_the_account_and_the_next_task_runs_after_the_swap() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    // Two tasks of the queue run at once: each in a worktree of its own.
    let spec = FleetSpec {
        pool_min: 2,
        pool_max: 2,
        worktrees: true,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "ops-drain", spec);
    fleet.write_config_edited("", &[("[quota]\n", "[quota]\non_warning = \"drain\"\n")]);
    // Every answer under account a ends with "Approaching your 5-hour usage limit".
    fleet.set_limit("a", "warning");
    let short = fleet.enqueue_as("q", "1-short.md", "a short task [fake:work=300ms]");
    let long = fleet.enqueue_as("q", "2-long.md", "a long task [fake:work=6s]");
    let next = fleet.enqueue_as("q", "3-next.md", "the task that waits for the swap");
    fleet.start(None);

    // The short task ends with the warning while the long one still works.
    fleet.wait_done("q", 1, Duration::from_secs(30));
    assert_eq!(fleet.tasks("q", "done"), vec![short.clone()], "log:\n{}", fleet.log());
    wait_until("status to say account a is draining", Duration::from_secs(10), || {
        (fleet.status()["draining"] == "a").then_some(())
    });
    assert!(
        fleet.log().contains("approaching the limit of a"),
        "the log says why: {}",
        fleet.log()
    );
    // From now until the long task is filed, the third task waits in the inbox although
    // the short task's session is free again.
    fleet.assert_waits_until_done(
        "q",
        &next,
        &long,
        Duration::from_secs(30),
        "a task was dispatched under a draining account",
    );
    fleet.wait_done("q", 3, Duration::from_secs(40));
    fleet.stop();

    assert_eq!(fleet.report("q", &short)["account"], "a");
    assert_eq!(
        fleet.report("q", &long)["account"],
        "a",
        "the long task was not cut by the swap"
    );
    assert_eq!(
        fleet.report("q", &next)["account"],
        "b",
        "the next task ran under the new account"
    );
    let long_finished = fleet.report("q", &long)["finished"].as_str().unwrap().to_string();
    let next_started = fleet.report("q", &next)["started"].as_str().unwrap().to_string();
    assert!(next_started >= long_finished, "{next_started} < {long_finished}");
    let status = fleet.status();
    assert_eq!(status["active"], "b");
    assert_eq!(
        (&status["last_swap"]["from"], &status["last_swap"]["to"]),
        (&"a".into(), &"b".into())
    );
    let received = fleet.received();
    let next_run: Vec<_> = received
        .iter()
        .filter(|r| r["text"] == "the task that waits for the swap")
        .collect();
    assert_eq!(next_run.len(), 1, "{received:#?}");
    assert_eq!(next_run[0]["account"], fleet.home("b").to_string_lossy().as_ref());
    assert!(
        received.iter().all(|r| r["text"] != "Continue where you left off."),
        "no task was interrupted and continued: {received:#?}"
    );
}

#[test]
fn sighup_that_would_strand_running_work_is_refused_until_that_work_is_done() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 2,
        pool_max: 2,
        queues: vec!["q".into(), "r".into()],
        tick: "200ms".into(),
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "ops-shrink", spec);
    fleet.start(None);
    let body_r = "work in queue r [fake:work=3s]";
    let body_q = "work in ccl-auto-12 [fake:work=3s]";
    let in_r = fleet.enqueue_as("r", "r1.md", body_r);
    fleet.wait_log(": task submitted", Duration::from_secs(30));
    let in_q = fleet.enqueue_as("q", "q1.md", body_q);
    ccl_testkit::wait_until("both tasks running", Duration::from_secs(30), || {
        (fleet.tasks("q", "running").len() + fleet.tasks("r", "running").len() == 2
            && fleet.log().matches(": task submitted").count() == 2)
            .then_some(())
    });

    // Queue r removed and the pool shrunk to one while both run: refused, and why.
    fleet.spec.queues = vec!["q".into()];
    fleet.spec.pool_min = 1;
    fleet.spec.pool_max = 1;
    fleet.write_config("");
    let from = fleet.log().len();
    fleet.send_signal(libc::SIGHUP);
    let at = fleet.wait_log_from(from, "reload refused", Duration::from_secs(10));
    let line = fleet.log()[at..].lines().next().unwrap().to_string();
    assert!(line.contains("queue r") && line.contains("ccl-auto-12"), "{line}");

    // The work finishes where it was, each task once.
    fleet.wait_done("r", 1, Duration::from_secs(30));
    fleet.wait_done("q", 1, Duration::from_secs(30));
    assert_eq!(fleet.tasks("r", "done"), [in_r]);
    assert_eq!(fleet.tasks("q", "done"), [in_q]);

    // Once nothing is in flight there, the same file is taken (the daemon may not have
    // seen the last move through yet: ask again until it answers yes).
    wait_until("the reload taken", Duration::from_secs(10), || {
        let from = fleet.log().len();
        fleet.send_signal(libc::SIGHUP);
        let at = fleet.wait_log_from(from, "reload", Duration::from_secs(5));
        fleet.log()[at..].starts_with("reloaded").then_some(())
    });
    wait_until("ccl-auto-12 no longer managed", Duration::from_secs(10), || {
        fleet.status()["sessions"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["name"] != "ccl-auto-12"))
            .then_some(())
    });
    fleet.stop();
    for body in [body_r, body_q] {
        let n = fleet.received().iter().filter(|r| r["text"] == body).count();
        assert_eq!(n, 1, "{body:?} received {n} times; log:\n{}", fleet.log());
    }
}
