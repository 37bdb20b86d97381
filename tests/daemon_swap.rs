//! Real-tmux tier: account swaps as the operator sees them. A 5-hour limit on the active
//! account moves every managed session that had a conversation to the next account and
//! resumes it there (the pool task finishes, the operator's Claude continues its own
//! conversation, a dedicated session at a bare shell is left alone, unmanaged sessions are
//! untouched, and nothing swaps back); the weekly-limit menu is dismissed with Escape
//! before `/exit`; a server error whose text says "rate limit" never swaps; `ccl swap`
//! talks to the running daemon (and says so when there is none); and a restart adopts
//! every session instead of recreating it.

use std::time::Duration;

use crate::BINS;
use ccl_testkit::fleet::{account_entry, typed_into, Fleet, FleetSpec};
use ccl_testkit::wait_until;

const DEBUG: &[(&str, &str)] = &[("RUST_LOG", "debug")];

/// The conversation id of the first prompt whose text contains `needle`, once a fake
/// Claude has received it.
fn wait_received(fleet: &Fleet, needle: &str) -> String {
    wait_until(
        &format!("a prompt containing {needle:?}"),
        Duration::from_secs(30),
        || {
            fleet
                .received()
                .iter()
                .find(|r| r["text"].as_str().is_some_and(|t| t.contains(needle)))
                .and_then(|r| r["sessionId"].as_str().map(String::from))
        },
    )
}

#[test]
fn a_five_hour_limit_moves_every_conversation_to_the_next_account_and_stays_there() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        dedicated: vec!["ops".into(), "bare".into()],
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "swap-5h", spec);
    let ops_dir = fleet.root.join("work/ops");
    let ops_id = fleet.start_claude_by_hand("ops", "a", &ops_dir);
    // The operator talks to their Claude once, so its conversation has a transcript.
    fleet.tmux(&["send-keys", "-t", "=ops:", "-l", "hello from the operator"]);
    fleet.tmux(&["send-keys", "-t", "=ops:", "Enter"]);
    assert_eq!(wait_received(&fleet, "hello from the operator"), ops_id);
    wait_until("the operator's turn finished", Duration::from_secs(10), || {
        fleet
            .capture("ops")
            .contains("Done: hello from the operator")
            .then_some(())
    });
    fleet.new_session("bare", &fleet.root.join("work/bare"));
    fleet.new_session("mine", &fleet.root);
    let bare_screen = fleet.capture("bare");
    let pids: Vec<(&str, u32)> = ["ops", "bare", "mine"]
        .into_iter()
        .map(|n| (n, fleet.pane_pid(n).unwrap()))
        .collect();

    let task = fleet.enqueue("q", "[fake:work=30s] a long job");
    fleet.start_with_env(None, DEBUG);
    let pool_id = wait_received(&fleet, "a long job");
    fleet.wait_log("ccl-auto-11: task submitted", Duration::from_secs(10));
    fleet.set_limit("a", "five_hour 9:23am (UTC)");
    fleet.wait_log("swapped from a to b", Duration::from_secs(30));
    fleet.wait_done("q", 1, Duration::from_secs(30));

    let home_b = format!("CLAUDE_CONFIG_DIR={}", fleet.home("b").display());
    let pool_lines = typed_into(&fleet.log(), "ccl-auto-11");
    assert!(
        pool_lines
            .iter()
            .any(|l| l.contains(&home_b) && l.ends_with(&format!("--resume {pool_id} 'Continue where you left off.'"))),
        "the pool task was resumed under b with its own id and the continue prompt: {pool_lines:#?}"
    );
    let ops_lines = typed_into(&fleet.log(), "ops");
    assert_eq!(
        ops_lines.len(),
        1,
        "one line typed into ops: its relaunch: {ops_lines:#?}"
    );
    assert!(
        ops_lines[0].contains(&home_b) && ops_lines[0].ends_with(&format!("--resume {ops_id}")),
        "the operator's claude was resumed under b with its own id: {ops_lines:#?}"
    );
    let resumed = wait_until("ops registered under b", Duration::from_secs(10), || {
        fleet.registry_conversation("b", "ops")
    });
    assert_eq!(resumed, ops_id, "the operator's conversation continues under b");
    assert_eq!(fleet.command_of("ops").as_deref(), Some("claude"));
    assert!(
        fleet
            .received()
            .iter()
            .filter(|r| r["sessionId"] == ops_id.as_str())
            .all(|r| r["text"] == "hello from the operator"),
        "nothing but the operator's own prompt reached the operator's claude (no /exit): {:#?}",
        fleet.received()
    );

    assert!(typed_into(&fleet.log(), "bare").is_empty(), "no launch line in bare");
    assert_eq!(fleet.capture("bare"), bare_screen, "bare sits at its shell as before");
    assert_ne!(fleet.command_of("bare").as_deref(), Some("claude"));

    let report = fleet.report("q", &task);
    assert_eq!(report["account"], "b", "{report}");
    assert_eq!(report["conversation"], pool_id.as_str(), "{report}");
    let on_b: Vec<_> = fleet
        .received()
        .into_iter()
        .filter(|r| r["sessionId"] == pool_id.as_str() && r["account"] == fleet.home("b").to_string_lossy().as_ref())
        .filter(|r| r["text"] != "/exit")
        .collect();
    assert_eq!(
        on_b.len(),
        1,
        "one prompt under b, besides the /exit that recycles it: {on_b:#?}"
    );
    assert_eq!(on_b[0]["text"], "Continue where you left off.");

    for (name, pid) in &pids {
        assert_eq!(fleet.pane_pid(name), Some(*pid), "{name} keeps its pane");
    }

    // Past the 2s cooldown, and a while more: still on b, one swap.
    fleet.wait_turns(12, Duration::from_secs(20));
    let status = fleet.status();
    assert_eq!(status["active"], "b", "{status:#}");
    assert_eq!(status["swaps"], 1, "{status:#}");
    assert!(!account_entry(&status, "a")["exhausted_until"].is_null(), "{status:#}");
    assert_eq!(account_entry(&status, "b")["active"], true, "{status:#}");
    assert!(account_entry(&status, "b")["exhausted_until"].is_null(), "{status:#}");
    assert_eq!(fleet.log().matches("swap from").count(), 1, "{}", fleet.log());
    fleet.stop();
}

#[test]
fn a_claude_at_the_weekly_limit_menu_is_stopped_with_one_sigterm_and_nothing_typed() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "swap-weekly", spec);
    fleet.enqueue("q", "[fake:work=30s] a weekly job");
    fleet.start_with_env(None, DEBUG);
    let pool_id = wait_received(&fleet, "a weekly job");
    fleet.wait_log("ccl-auto-11: task submitted", Duration::from_secs(10));
    fleet.set_limit("a", "weekly");
    wait_until("the weekly menu on screen", Duration::from_secs(10), || {
        fleet
            .capture("ccl-auto-11")
            .contains("What do you want to do?")
            .then_some(())
    });
    fleet.wait_log("swapped from a to b", Duration::from_secs(20));
    fleet.wait_done("q", 1, Duration::from_secs(30));
    fleet.stop();

    let log = fleet.log();
    let swapped = log.find("swapped from a to b").expect("the swap");
    let stopped = log
        .find("stop claude in ccl-auto-11 (SIGTERM")
        .expect("SIGTERM to the menu's Claude");
    assert!(stopped < swapped, "{log}");
    // The menu holds the keyboard, and nothing needs it: no key went into that Claude.
    let during = &log[..swapped];
    assert!(
        !during.contains("send Escape to ccl-auto-11") && !during.contains("type into ccl-auto-11: /exit"),
        "{log}"
    );
    let home_a = fleet.home("a").to_string_lossy().into_owned();
    assert!(
        !fleet.received().iter().any(|r| r["sessionId"] == pool_id.as_str()
            && r["account"] == home_a.as_str()
            && r["text"] != "[fake:work=30s] a weekly job"),
        "nothing but the task reached Claude under a: {:#?}",
        fleet.received()
    );
    assert!(!log.contains("kill session ccl-auto-11"), "{log}");
}

#[test]
fn a_server_error_that_mentions_a_rate_limit_never_swaps() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "swap-500", spec);
    fleet.set_limit("a", "error500 rate limit exceeded");
    fleet.enqueue("q", "a job that meets a server error");
    fleet.start_with_env(None, DEBUG);
    wait_received(&fleet, "a job that meets a server error");
    wait_until("the 500 on screen", Duration::from_secs(10), || {
        fleet
            .capture("ccl-auto-11")
            .contains("rate limit exceeded")
            .then_some(())
    });
    fleet.wait_turns(10, Duration::from_secs(20));

    let status = fleet.status();
    assert_eq!(status["active"], "a", "{status:#}");
    assert_eq!(status["swaps"], 0, "{status:#}");
    assert!(status["swap"].is_null(), "{status:#}");
    assert!(account_entry(&status, "a")["exhausted_until"].is_null(), "{status:#}");
    let log = fleet.log();
    assert!(!log.contains("swap from") && !log.contains("swapped from"), "{log}");
    assert!(
        typed_into(&fleet.log(), "ccl-auto-11")
            .iter()
            .all(|l| !l.contains("--resume")),
        "{log}"
    );
    fleet.stop();
}

#[test]
fn ccl_swap_asks_the_running_daemon_and_says_when_there_is_none() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "swap-manual", spec);
    let out = fleet.ccl_timeout(&["swap", "--to", "b"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("no ccl daemon is running"), "{said}");

    fleet.start(None);
    wait_until("ccl-auto-11 at its shell", Duration::from_secs(10), || {
        let status = fleet.status();
        let s = status["sessions"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "ccl-auto-11")?
            .clone();
        (s["state"] == "shell").then_some(())
    });
    let out = fleet.ccl_timeout(&["swap", "--to", "b"], Duration::from_secs(40));
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("swapped from a to b"), "{said}");
    let status = fleet.status();
    assert_eq!(status["active"], "b", "{status:#}");
    assert_eq!(status["swaps"], 1, "{status:#}");
    // A manual swap marks nothing exhausted.
    assert!(account_entry(&status, "a")["exhausted_until"].is_null(), "{status:#}");
    fleet.stop();
}

#[test]
fn a_restart_after_sigterm_adopts_every_session_and_finishes_the_running_task_once() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 2,
        pool_max: 2,
        dedicated: vec!["ops".into()],
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "restart", spec);
    let ops_id = fleet.start_claude_by_hand("ops", "a", &fleet.root.join("work/ops"));
    let task = fleet.enqueue("q", "[fake:work=4s] survive a restart");
    fleet.start_with_env(None, DEBUG);
    let pool_id = wait_received(&fleet, "survive a restart");
    fleet.wait_log("task submitted", Duration::from_secs(10));
    let mut before: Vec<(String, u32)> = fleet.panes().into_iter().map(|(n, p, _)| (n, p)).collect();
    before.sort();
    assert_eq!(before.len(), 3, "{before:?}");
    fleet.stop();

    let first_run = fleet.log().len();
    fleet.start_with_env(None, DEBUG);
    fleet.wait_turns(3, Duration::from_secs(10));
    fleet.wait_done("q", 1, Duration::from_secs(30));
    fleet.stop();

    let mut after: Vec<(String, u32)> = fleet.panes().into_iter().map(|(n, p, _)| (n, p)).collect();
    after.sort();
    assert_eq!(after, before, "no session was created or replaced");
    let second = fleet.log()[first_run..].to_string();
    assert!(!second.contains("create session"), "{second}");
    assert!(
        !second.contains("back to inbox"),
        "the running task was not requeued: {second}"
    );
    assert!(!second.contains("type into ops"), "{second}");
    let received = fleet.received();
    assert_eq!(
        received
            .iter()
            .filter(|r| r["text"] == "[fake:work=4s] survive a restart")
            .count(),
        1,
        "the task reached claude once: {received:#?}"
    );
    assert!(
        received.iter().all(|r| r["sessionId"] != ops_id.as_str()),
        "{received:#?}"
    );
    let report = fleet.report("q", &task);
    assert_eq!(report["conversation"], pool_id.as_str(), "{report}");
    assert_eq!(fleet.registry_conversation("a", "ops"), Some(ops_id));
}

/// The pids of the processes named `name` whose parent is `parent` (from /proc).
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid: Option<u32> = stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if &stat[open + 1..close] == name && ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// The operator runs background jobs in their dedicated session (a dev server is a
/// `node`; some tool is called `claude`): a swap stops their Claude, exactly that one
/// process (its pid in the log), and every background job lives on.
#[test]
fn a_swap_signals_only_the_operators_claude_and_their_background_jobs_live_on() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        dedicated: vec!["ops".into()],
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "swap-bg-jobs", spec);
    let jobs = fleet.root.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("a sleep binary");
    for name in ["node", "claude"] {
        std::fs::copy(sleep, jobs.join(name)).unwrap();
    }
    fleet.new_session("ops", &fleet.root.join("work/ops"));
    let line = format!("{0}/node 600 & {0}/claude 600 &", jobs.display());
    fleet.tmux(&["send-keys", "-t", "=ops:", "-l", &line]);
    fleet.tmux(&["send-keys", "-t", "=ops:", "Enter"]);
    let shell = fleet.pane_pid("ops").unwrap();
    let background: Vec<u32> = wait_until("both background jobs", Duration::from_secs(10), || {
        let mut pids = children_named(shell, "node");
        pids.extend(children_named(shell, "claude"));
        (pids.len() == 2).then_some(pids)
    });
    fleet.start_claude_in("ops", "a");
    let claude: Vec<u32> = children_named(shell, "claude")
        .into_iter()
        .filter(|p| !background.contains(p))
        .collect();
    assert_eq!(claude.len(), 1, "the operator's Claude: {claude:?}");

    fleet.start_with_env(None, DEBUG);
    fleet.wait_turns(2, Duration::from_secs(10));
    let out = fleet.ccl_timeout(&["swap", "--to", "b"], Duration::from_secs(40));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = fleet.log();
    let survivors: Vec<bool> = background.iter().map(|&p| alive(p)).collect();
    for &pid in &background {
        // SAFETY: ending the sleepers this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    fleet.stop();
    assert_eq!(out.status.code(), Some(0), "{said}\n{log}");
    assert_eq!(
        survivors,
        [true, true],
        "the operator's background jobs survive the swap\n{log}"
    );
    assert!(
        log.contains(&format!("stop claude in ops (SIGTERM to pid {})", claude[0])),
        "the log names the one pid signalled:\n{log}"
    );
}
