//! The task queue seen from outside (issue 7), with real tmux and the fake Claude: a
//! waiting task never goes to an idle dedicated session while the pool is busy, queues
//! take turns, every kind of bad inbox file is filed to `failed/` with the reason and
//! never reaches Claude, `ccl enqueue` refuses a bad body without writing anything,
//! `ccl status --json` counts each queue directory, and a swallowed Enter after a paste
//! is noticed and pressed again so the task runs exactly once.
//!
//! The `ccl enqueue` test only runs `ccl` against files and runs in every tier; the rest
//! need `CCL_TEST_TMUX=1`.

use std::fs;
use std::os::unix::fs::symlink;
use std::time::Duration;

use crate::BINS;
use ccl_testkit::fleet::{Fleet, FleetSpec};
use ccl_testkit::wait_until;

/// Texts of every prompt the fake Claudes received, without the `/exit`s ccl types to
/// recycle a session.
fn prompts(fleet: &Fleet) -> Vec<String> {
    fleet
        .received()
        .iter()
        .filter_map(|r| r["text"].as_str().map(str::to_string))
        .filter(|t| t.trim() != "/exit")
        .collect()
}

#[test]
fn a_waiting_task_is_not_sent_to_the_idle_operator_session_while_the_pool_is_busy() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        dedicated: vec!["ops".into()],
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "dispatch-dedicated", spec);
    let operator = fleet.start_operator();
    let long = fleet.enqueue("q", "a long task [fake:work=5s]");
    fleet.start(None);
    wait_until("the long task to be claimed", Duration::from_secs(20), || {
        fleet.tasks("q", "running").contains(&long).then_some(())
    });
    let waiting = fleet.enqueue("q", "a task that must wait for the pool");

    // For the five seconds the pool's only session works, the operator's idle Claude is
    // the only idle Claude there is.
    fleet.assert_waits_until_done(
        "q",
        &waiting,
        &long,
        Duration::from_secs(30),
        "the waiting task left the inbox while the only pool session was busy",
    );
    fleet.wait_done("q", 2, Duration::from_secs(30));
    fleet.stop();

    for task in [&long, &waiting] {
        assert_eq!(fleet.report("q", task)["session"], "ccl-auto-11", "{task}");
    }
    fleet.assert_left_alone(&operator);
    assert!(
        !fleet.capture("ops").contains("must wait"),
        "the task text never reached ops"
    );
}

#[test]
fn two_queues_take_turns_while_both_have_work() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        queues: vec!["q1".into(), "q2".into()],
        pool_min: 1,
        pool_max: 1,
        tick: "200ms".into(),
        work_ms: 200,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "dispatch-round-robin", spec);
    let mut names = Vec::new();
    for i in 1..=4 {
        names.push(fleet.enqueue_as("q1", &format!("{i}.md"), &format!("first queue, task {i}")));
    }
    for i in 1..=2 {
        names.push(fleet.enqueue_as("q2", &format!("{i}.md"), &format!("second queue, task {i}")));
    }
    fleet.start(None);
    fleet.wait_done("q1", 4, Duration::from_secs(60));
    fleet.wait_done("q2", 2, Duration::from_secs(60));
    fleet.stop();

    // "ccl-auto-11: dispatching q1/NAME under a", in the order ccl decided.
    let log = fleet.log();
    let dispatched: Vec<(String, String)> = log
        .lines()
        .filter_map(|l| l.split_once(": dispatching ")?.1.split_once(' '))
        .filter_map(|(task, _)| task.split_once('/'))
        .map(|(q, t)| (q.to_string(), t.to_string()))
        .collect();
    let order: Vec<&str> = dispatched.iter().map(|(q, _)| q.as_str()).collect();
    assert_eq!(
        order,
        ["q1", "q2", "q1", "q2", "q1", "q1"],
        "queues alternate while both have work, then the rest of q1 follows; log:\n{log}"
    );
    // Oldest first within a queue, and the reports agree with the log's order.
    let expected_tasks: Vec<&str> = [0, 4, 1, 5, 2, 3].iter().map(|&i| names[i].as_str()).collect();
    let tasks: Vec<&str> = dispatched.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(tasks, expected_tasks, "log:\n{log}");
    let started: Vec<String> = dispatched
        .iter()
        .map(|(q, t)| fleet.report(q, t)["started"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = started.clone();
    sorted.sort();
    assert_eq!(started, sorted, "done/*.json `started` follows the dispatch order");
}

#[test]
fn every_kind_of_bad_inbox_file_is_failed_with_its_reason_and_never_reaches_claude() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "dispatch-bad-files", spec);
    let inbox = fleet.queue_dir("q", "inbox");
    fs::create_dir_all(&inbox).unwrap();
    // Each bad file carries a marker that would show in the received log if it were sent.
    let outside = fleet.root.join("outside.md");
    fs::write(&outside, "BAD-SYMLINK target body\n").unwrap();
    symlink(&outside, inbox.join("link.md")).unwrap();
    fs::create_dir(inbox.join("dir.md")).unwrap();
    fs::write(inbox.join("dir.md/inner.md"), "BAD-DIR inner body\n").unwrap();
    fs::write(inbox.join("empty.md"), b"").unwrap();
    let mut huge = b"BAD-HUGE ".to_vec();
    huge.resize(256 * 1024 + 1, b'x');
    fs::write(inbox.join("huge.md"), &huge).unwrap();
    fs::write(inbox.join("latin1.md"), b"BAD-LATIN1 caf\xe9 au lait\n").unwrap();
    fs::write(inbox.join("escape.md"), "BAD-ESCAPE clear \x1b[2J the screen\n").unwrap();
    let good_body = "the one good task";
    let good = fleet.enqueue("q", good_body);

    fleet.start(None);
    fleet.wait_done("q", 1, Duration::from_secs(30));
    wait_until("six bad files in failed/", Duration::from_secs(10), || {
        (fleet.tasks("q", "failed").len() == 6).then_some(())
    });
    fleet.stop();

    let expected = [
        ("link.md", "symbolic link"),
        ("dir.md", "directory, not a regular file"),
        ("empty.md", "empty task"),
        ("huge.md", "larger than 262144 bytes"),
        ("latin1.md", "not valid UTF-8"),
        ("escape.md", "control character U+001B"),
    ];
    let failed = fleet.queue_dir("q", "failed");
    for (name, why) in expected {
        let error = fs::read_to_string(failed.join(format!("{name}.error")))
            .unwrap_or_else(|e| panic!("failed/{name}.error: {e}; log:\n{}", fleet.log()));
        assert!(
            error.contains(why),
            "failed/{name}.error says {error:?}, expected {why:?}"
        );
    }
    assert!(
        fs::symlink_metadata(failed.join("link.md"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link itself was moved, not its target copied"
    );
    assert_eq!(fs::read_to_string(&outside).unwrap(), "BAD-SYMLINK target body\n");
    assert_eq!(
        fs::read_to_string(failed.join("dir.md/inner.md")).unwrap(),
        "BAD-DIR inner body\n"
    );
    assert_eq!(
        fs::read(failed.join("huge.md")).unwrap(),
        huge,
        "a failed file keeps its bytes"
    );
    assert_eq!(fleet.tasks("q", "done"), vec![good]);
    assert!(fleet.tasks("q", "inbox").is_empty() && fleet.tasks("q", "running").is_empty());
    assert_eq!(
        prompts(&fleet),
        vec![good_body.to_string()],
        "only the good task reached Claude"
    );
    assert!(
        fleet
            .received()
            .iter()
            .all(|r| !r["text"].as_str().unwrap_or("").contains("BAD-")),
        "no bad file's text reached Claude"
    );
}

#[test]
fn enqueue_refuses_a_bad_body_with_exit_1_and_writes_nothing() {
    let fleet = Fleet::new(BINS, "dispatch-enqueue", FleetSpec::default());
    let queue_root = fleet.project("q").join(".agent-queue");
    let files_under = |dir: &std::path::Path| -> Vec<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, &mut out);
        out
    };
    let mut huge = vec![b'x'; 256 * 1024 + 1];
    huge[0] = b'y';
    let cases: [(&str, Vec<u8>, &str); 6] = [
        ("empty", Vec::new(), "empty task"),
        ("blank", b" \n\t\n".to_vec(), "only whitespace"),
        ("huge", huge, "larger than 262144 bytes"),
        ("latin1", b"caf\xe9\n".to_vec(), "not valid UTF-8"),
        ("escape", b"red \x1b[31m text\n".to_vec(), "control character U+001B"),
        (
            "carriage return",
            b"line one\r\nline two\n".to_vec(),
            "control character U+000D",
        ),
    ];
    for (what, body, why) in &cases {
        let out = fleet.ccl(&["enqueue", "q"], Some(body));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: exit code; stderr: {stderr}");
        assert!(stderr.contains(why), "{what}: stderr {stderr:?} should say {why:?}");
        assert!(out.stdout.is_empty(), "{what}: no task name printed");
        assert_eq!(
            files_under(&queue_root),
            Vec::<String>::new(),
            "{what}: nothing written"
        );
    }
    // The same refusal for a FILE argument.
    let draft = fleet.root.join("draft.md");
    fs::write(&draft, b"bell \x07 rings\n").unwrap();
    let out = fleet.ccl(&["enqueue", "q", &draft.to_string_lossy()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("U+0007"));
    assert_eq!(files_under(&queue_root), Vec::<String>::new());
    // An unknown queue is bad usage.
    assert_eq!(fleet.ccl(&["enqueue", "nosuch"], Some(b"hello")).status.code(), Some(2));

    // And a good body goes in whole, byte for byte, as the only file.
    let body = "a good task\twith a tab\nand a second line é\n";
    let name = fleet.enqueue("q", body);
    assert_eq!(
        fs::read_to_string(fleet.queue_dir("q", "inbox").join(&name)).unwrap(),
        body
    );
    assert_eq!(
        files_under(&queue_root),
        vec![fleet.queue_dir("q", "inbox").join(&name).display().to_string()]
    );
}

#[test]
fn status_json_counts_each_queue_directory() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "dispatch-status", spec);
    fleet.start(None);
    let first = fleet.enqueue("q", "a quick task");
    fleet.wait_done("q", 1, Duration::from_secs(30));
    fs::write(fleet.queue_dir("q", "inbox").join("broken.md"), b"").unwrap();
    wait_until("the empty file in failed/", Duration::from_secs(10), || {
        (fleet.tasks("q", "failed") == ["broken.md"]).then_some(())
    });
    let working = fleet.enqueue("q", "a task that keeps the pool busy [fake:work=8s]");
    let task = format!("q/{working}");
    wait_until("the long task working in ccl-auto-11", Duration::from_secs(20), || {
        let s = fleet.status();
        let session = s["sessions"]
            .as_array()?
            .iter()
            .find(|x| x["name"] == "ccl-auto-11")?
            .clone();
        (session["task"] == task.as_str() && session["activity"] == "working").then_some(())
    });
    let waiting = fleet.enqueue("q", "a task that waits");

    let status = fleet.status();
    assert_eq!(status["daemon"]["running"], true);
    let q = &status["queues"][0];
    assert_eq!(q["name"], "q");
    assert_eq!(
        (&q["inbox"], &q["running"], &q["done"], &q["failed"], &q["paused"]),
        (&1.into(), &1.into(), &1.into(), &1.into(), &false.into()),
        "sidecars (done/*.json, failed/*.error) are not counted: {status:#}"
    );
    assert_eq!(fleet.tasks("q", "done"), vec![first]);
    assert_eq!(fleet.tasks("q", "inbox"), vec![waiting]);
    fleet.stop();
}

#[test]
fn a_swallowed_enter_after_the_paste_is_pressed_again_and_the_task_runs_once() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let spec = FleetSpec {
        pool_min: 1,
        pool_max: 1,
        ..Default::default()
    };
    let mut fleet = Fleet::new(BINS, "dispatch-enter", spec);
    // The fake Claude swallows an Enter that comes within 400 ms of a paste, as older
    // builds did; ccl presses Enter 100 ms after pasting, so its first Enter is lost.
    fleet.write_config_edited(
        "",
        &[
            ("submit_delay = \"200ms\"", "submit_delay = \"100ms\""),
            ("env = { ", "env = { FAKE_CLAUDE_ENTER_GRACE_MS = \"400\", "),
        ],
    );
    let body = "a task of three lines\nthat is pasted\nand must be submitted once\n";
    let name = fleet.enqueue("q", body);
    fleet.start(None);
    fleet.wait_done("q", 1, Duration::from_secs(40));
    fleet.stop();

    let log = fleet.log();
    assert_eq!(
        log.matches("ccl-auto-11: prompt still in the input box; pressing Enter again")
            .count(),
        1,
        "ccl saw the text still in the box and pressed Enter once more; log:\n{log}"
    );
    assert!(!log.contains("needs attention"), "log:\n{log}");
    assert_eq!(
        prompts(&fleet),
        vec![body.to_string()],
        "the task reached Claude exactly once"
    );
    assert_eq!(fleet.tasks("q", "done"), vec![name.clone()]);
    assert_eq!(fleet.report("q", &name)["attempts"], 1);
}
