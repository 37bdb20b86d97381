//! The real-client tier for Claude's own reports: `ccl run` launches the real Claude Code
//! 2.1.328 with `--settings` carrying ccl's hooks and status line, against the mock API.
//! It proves that the pool session's conversation id comes from `SessionStart`, a task is
//! filed done from `Stop` (with Claude's last message as its result) well inside a tick,
//! a 5-hour limit is detected from `StopFailure` (`source=hook`), an account whose
//! `settings.json` has its own status line still shows it in a pool session, and no
//! account's `settings.json` is changed by ccl. Recorded runs replay action for action.
//! Gated by `CCL_TEST_TMUX=1 CCL_TEST_CLAUDE=1` (see `ccl_testkit::real`).

use std::fs;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use crate::BINS;
use ccl_testkit::fleet::FleetSpec;
use ccl_testkit::mockapi::Behaviour;
use ccl_testkit::real::{claude_bin, now_unix, token, RealFleet, WAIT};
use ccl_testkit::wait_until;

/// What account a's own status-line command prints.
const OWN_LINE: &str = "OPERATOR-OWN-STATUS-LINE";
/// The daemon tick: the shipped default.
const TICK_MS: i64 = 2_000;

fn fleet(tag: &str, bin: PathBuf) -> RealFleet {
    // The product's tick, so anything moved on by the tick rather than a signal shows.
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        tick: format!("{}ms", TICK_MS),
        ..Default::default()
    };
    let fleet = RealFleet::new(BINS, tag, spec, bin);
    // As an operator's homes are: Claude has already added its key (it writes the file
    // itself on a first start without it), and a has a status line of its own.
    let a = serde_json::json!({
        "skipDangerousModePermissionPrompt": true,
        "statusLine": {"type": "command", "command": format!("cat >/dev/null; printf '{OWN_LINE}'")},
    });
    fs::write(fleet.home("a").join("settings.json"), a.to_string()).unwrap();
    fs::write(
        fleet.home("b").join("settings.json"),
        "{\"skipDangerousModePermissionPrompt\":true}\n",
    )
    .unwrap();
    fleet
}

fn settings_bytes(fleet: &RealFleet) -> Vec<Vec<u8>> {
    ["a", "b"]
        .iter()
        .map(|a| fs::read(fleet.home(a).join("settings.json")).unwrap())
        .collect()
}

/// The spool lines the hooks wrote.
fn spool(fleet: &RealFleet) -> Vec<serde_json::Value> {
    fs::read_to_string(fleet.state_dir().join("signals/spool.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn session<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

fn mtime_ms(path: &std::path::Path) -> i64 {
    fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_task_is_done_from_stop_its_conversation_comes_from_session_start_and_the_own_status_line_shows() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let mut fleet = fleet("real-signals", bin);
    let before = settings_bytes(&fleet);
    // The answer is held a few seconds, so the pool session's footer can be read while
    // the task runs.
    fleet.mock.set_behaviour(
        &token("a"),
        Behaviour::Normal {
            reply: "Done: {prompt}".into(),
            delay_ms: 4_000,
            usage: None,
        },
    );
    let body = "Say hello from the hooks";
    let task = fleet.enqueue("q", body);
    let trace = fleet.root.join("signals.trace");
    fleet.start(Some(&trace));

    // The account's own status line, not ccl's, is in the pool session's footer.
    let screen = fleet.wait_screen("ccl-auto-11", "a's own status line", |s| s.contains(OWN_LINE));
    assert!(
        !screen.contains("ccl · a"),
        "ccl's line replaced the operator's:\n{screen}"
    );

    // The conversation in `ccl status --json` is the one SessionStart reported.
    let started = wait_until("a SessionStart in the spool", WAIT, || {
        spool(&fleet)
            .into_iter()
            .find(|l| l["event"] == "SessionStart" && l["session"] == "ccl-auto-11")
    });
    let id = started["conversation"].as_str().unwrap().to_string();
    assert_eq!(started["config_dir"], fleet.home("a").to_string_lossy().as_ref());
    assert!(
        started["pane"].as_str().is_some_and(|p| p.starts_with('%')),
        "{started}"
    );
    let status = wait_until("the session reporting through its hooks", WAIT, || {
        let st = fleet.status();
        (session(&st, "ccl-auto-11")["signals"] == true).then_some(st)
    });
    assert_eq!(session(&status, "ccl-auto-11")["conversation"], id.as_str());
    assert!(fleet.log().contains(&format!(
        "ccl-auto-11: claude runs conversation {id} (SessionStart startup)"
    )));

    // Filed done from Stop, within the latency goal of the mock's answer, not a tick later.
    fleet.wait_done("q", 1, WAIT);
    let report = fleet.report("q", &task);
    let answered = fleet
        .messages()
        .into_iter()
        .filter(|r| r.conversation.as_deref() == Some(id.as_str()))
        .filter_map(|r| r.answered_ms)
        .max()
        .expect("the task's answer was sent");
    let filed = mtime_ms(&fleet.queue_dir("q", "done").join(format!("{task}.json")));
    let latency = filed - answered;
    eprintln!("answer → done/: {latency} ms");
    assert!(
        fleet.log().contains("ccl-auto-11: turn finished (Stop)"),
        "{}",
        fleet.log()
    );
    assert!(
        latency < 300,
        "done {latency} ms after the answer: not moved on by Stop\n{}",
        fleet.log()
    );
    assert_eq!(report["conversation"], id.as_str(), "{report}");
    assert_eq!(report["result"], format!("Done: {body}").as_str(), "{report}");
    assert!(report["model"].as_str().is_some_and(|m| !m.is_empty()), "{report}");
    fleet.stop();

    assert_eq!(settings_bytes(&fleet), before, "an account's settings.json changed");
    let settings = fleet.state_dir().join("signals/settings-a.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&settings).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", settings.display());
    fleet.assert_replays(&trace);
}

#[test]
fn a_five_hour_limit_is_detected_from_stop_failure() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let Some(bin) = claude_bin() else { return };
    let mut fleet = fleet("real-signals-5h", bin);
    let before = settings_bytes(&fleet);
    let reset_unix = now_unix() + 3 * 3600;
    fleet.mock.set_behaviour(&token("a"), Behaviour::Limit5h { reset_unix });
    let body = "Refactor the parser in small steps";
    let task = fleet.enqueue("q", body);
    let trace = fleet.root.join("5h.trace");
    fleet.start(Some(&trace));

    fleet.wait_log("swapped from a to b", WAIT);
    let log = fleet.log();
    let line = log
        .lines()
        .find(|l| l.contains("quota: session=ccl-auto-11") && l.contains("decision=swap"))
        .unwrap_or_else(|| panic!("no swap decision:\n{log}"));
    assert!(line.contains("source=hook"), "{line}");
    // From the mock's 429 to ccl's first swap action (its log line's timestamp).
    let refused = fleet
        .messages()
        .into_iter()
        .filter(|r| r.token == token("a"))
        .filter_map(|r| r.answered_ms)
        .min()
        .expect("the 429 was answered");
    let begins = log
        .lines()
        .find(|l| l.contains("swap from a to b begins"))
        .and_then(|l| l.get(1..25))
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .expect("a timestamped swap line")
        .as_millisecond();
    eprintln!("429 → swap: {} ms", begins - refused);
    assert!(begins - refused < 300, "swap {} ms after the 429", begins - refused);
    assert!(line.contains("pattern=hit_five_hour"), "{line}");
    assert!(
        spool(&fleet)
            .iter()
            .any(|l| l["event"] == "StopFailure" && l["error"] == "rate_limit"),
        "the hook reported the limit"
    );
    fleet.wait_done("q", 1, WAIT);
    assert_eq!(fleet.report("q", &task)["account"], "b");
    fleet.stop();
    assert_eq!(settings_bytes(&fleet), before, "an account's settings.json changed");
    fleet.assert_replays(&trace);
}
