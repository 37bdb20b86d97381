//! Benchmark of how fast ccl reacts on the real Claude Code (2.1.328) against the mock
//! API, reusing the real-client test fixtures (`ccl_testkit::real`, `ccl_testkit::mockapi`).
//! Prints one JSON line:
//!
//! - `done_ms`: for each of `--runs` tasks, from the mock's last answer in the task's
//!   conversation (`SeenRequest::answered_ms`) to its `done/NAME.json` (its mtime), at
//!   the `--tick` (default the shipped 2 s);
//! - `limit_to_swap_ms`: for each of `--runs` usage limits, from the mock's 429 to ccl's
//!   first swap action on the session (its executor log line), at the same tick;
//! - `swap`: `--sessions` pool sessions (default 10) each busy on a task under account
//!   `a` (the mock holds every answer), then `ccl swap --to b`: `swap_s` from the
//!   decision (`swap from a to b begins`) until the last resumed session's continue prompt
//!   is taken (`continue prompt submitted`); `first_relaunch_s` and `last_relaunch_s`
//!   (decision until the first and the last relaunch line: each member is relaunched as
//!   soon as it is back at its shell) and `relaunch_s` (first relaunch line until the last
//!   continue prompt is taken); at `--swap-tick` (default 1 s). The swap begins once every
//!   task's request is at the API (held there), so every conversation is on disk.
//!
//! Needs the real client: `cargo xtask bench signal_bench` (release; installs it unless
//! `CCL_CLAUDE_BIN` is set), `CCL_CLAUDE_BIN=$(cargo xtask install-claude) cargo bench
//! --bench signal_bench` (release), or `cargo test
//! --bench signal_bench` for a debug build; arguments go after `--`. Figures, not a
//! timed test: nothing here asserts a bound.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use ccl_testkit::fleet::FleetSpec;
use ccl_testkit::mockapi::Behaviour;
use ccl_testkit::real::{actions_on, is_message, now_unix, token, RealFleet};
use ccl_testkit::Bins;
use serde_json::json;

/// The binaries under test, whose paths cargo gives bench targets as it does tests.
const CCL: &str = env!("CARGO_BIN_EXE_ccl");
const BINS: Bins = Bins {
    ccl: CCL,
    fake_claude: env!("CARGO_BIN_EXE_ccl-fake-claude"),
};
/// How long one task, limit or swap may take before the benchmark gives up.
const WAIT: Duration = Duration::from_secs(120);
/// How long the mock holds each answer while the fleet is busy (its longest delay).
const HELD_MS: u64 = ccl_testkit::mockapi::MAX_DELAY_MS;
/// The accounts the limit runs walk through, each limited in turn.
const ACCOUNTS: [&str; 4] = ["a", "b", "c", "d"];

struct Args {
    runs: usize,
    sessions: u32,
    tick: String,
    swap_tick: String,
    only: Option<String>,
    /// Where to copy the swap run's daemon log.
    swap_log: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        runs: 3,
        sessions: 10,
        tick: "2s".into(),
        swap_tick: "1s".into(),
        only: None,
        swap_log: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => args.runs = value()?.parse()?,
            "--sessions" => args.sessions = value()?.parse()?,
            "--tick" => args.tick = value()?,
            "--swap-tick" => args.swap_tick = value()?,
            "--only" => args.only = Some(value()?),
            "--swap-log" => args.swap_log = Some(value()?.into()),
            // What `cargo bench` passes to every bench target.
            "--bench" => {}
            other => bail!(
                "unknown argument {other} (--runs N --sessions N --tick DURATION --swap-tick DURATION --only done|limit|swap --swap-log FILE)"
            ),
        }
    }
    if args.runs == 0 || args.runs > ACCOUNTS.len() - 1 {
        bail!("--runs must be 1..={}", ACCOUNTS.len() - 1);
    }
    if args.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    Ok(args)
}

fn claude() -> Result<PathBuf> {
    let bin = std::env::var_os("CCL_CLAUDE_BIN")
        .map(PathBuf::from)
        .context("set CCL_CLAUDE_BIN=$(cargo xtask install-claude), or run `cargo xtask bench signal_bench`")?;
    if !bin.is_file() {
        bail!("CCL_CLAUDE_BIN={} is not a file", bin.display());
    }
    Ok(bin)
}

/// Polls `f` until it gives a value, or fails naming `what` after `timeout`.
fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Milliseconds since the epoch of a daemon log line (`[2026-…T01:30:29.123Z INFO …`).
fn log_ms(line: &str) -> Option<i64> {
    let stamp = line.strip_prefix('[')?.split_whitespace().next()?;
    stamp.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

fn mtime_ms(path: &std::path::Path) -> Result<i64> {
    let modified = std::fs::metadata(path)
        .with_context(|| path.display().to_string())?
        .modified()?;
    Ok(modified.duration_since(UNIX_EPOCH)?.as_millis() as i64)
}

/// The last lines of a daemon log, for a run that gave up.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(120)..].join("\n")
}

fn median(values: &[i64]) -> Option<i64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn normal(delay_ms: u64) -> Behaviour {
    Behaviour::Normal {
        reply: "Done: {prompt}".into(),
        delay_ms,
        usage: None,
    }
}

/// `done_ms` and `limit_to_swap_ms`: one pool session at `args.tick`.
fn latencies(args: &Args, bin: PathBuf) -> Result<(Vec<i64>, Vec<i64>)> {
    let spec = FleetSpec {
        accounts: ACCOUNTS.iter().map(|a| a.to_string()).collect(),
        pool_min: 1,
        pool_max: 1,
        tick: args.tick.clone(),
        ..Default::default()
    };
    let mut fleet = RealFleet::new(BINS, "signal-bench", spec, bin);
    fleet.start(None);
    let session = "ccl-auto-11";

    let mut done = Vec::new();
    if args.only.as_deref().is_none_or(|o| o == "done") {
        for run in 0..args.runs {
            let task = fleet.enqueue("q", &format!("Say hello, run {run}"));
            let report_path = fleet.queue_dir("q", "done").join(format!("{task}.json"));
            wait(&format!("task {task} done"), WAIT, || {
                report_path.is_file().then_some(())
            })?;
            // The report is written in place: read it once it parses.
            let report: serde_json::Value = wait("its report", WAIT, || {
                serde_json::from_slice(&std::fs::read(&report_path).ok()?).ok()
            })?;
            let id = report["conversation"]
                .as_str()
                .context("a conversation in the report")?;
            let answered = fleet
                .messages()
                .into_iter()
                .filter(|r| r.conversation.as_deref() == Some(id))
                .filter_map(|r| r.answered_ms)
                .max()
                .context("the task's answer was sent")?;
            done.push(mtime_ms(&report_path)? - answered);
        }
    }

    let mut limits = Vec::new();
    if args.only.as_deref().is_none_or(|o| o == "limit") {
        for run in 0..args.runs {
            let (from, to) = (ACCOUNTS[run], ACCOUNTS[run + 1]);
            let seen = fleet.mock.requests().len();
            fleet.mock.set_behaviour(
                &token(from),
                Behaviour::Limit5h {
                    reset_unix: now_unix() + 3 * 3600,
                },
            );
            let begins = format!("swap from {from} to {to} begins");
            let log_from = fleet.log().len();
            let task = fleet.enqueue("q", &format!("Refactor the parser, run {run}"));
            wait(&begins, WAIT, || fleet.log().contains(&begins).then_some(()))?;
            let refused = wait("the 429", WAIT, || {
                fleet
                    .mock
                    .requests()
                    .into_iter()
                    .skip(seen)
                    .filter(|r| r.token == token(from))
                    .filter_map(|r| r.answered_ms)
                    .min()
            })?;
            let acted = wait("a swap action on the session", WAIT, || {
                let log = fleet.log();
                let after = &log[log_from..];
                let start = after.find(&begins)?;
                actions_on(&after[start..], session).first().and_then(|l| log_ms(l))
            })?;
            limits.push(acted - refused);
            // The task finishes under the next account before the next run limits it.
            let report = fleet.queue_dir("q", "done").join(format!("{task}.json"));
            wait(&format!("task {task} done under {to}"), WAIT, || {
                report.is_file().then_some(())
            })?;
        }
    }
    fleet.stop();
    Ok((done, limits))
}

/// The whole swap of `args.sessions` busy pool sessions at `args.swap_tick`.
fn swap(args: &Args, bin: PathBuf) -> Result<serde_json::Value> {
    let n = args.sessions;
    let spec = FleetSpec {
        pool_min: n,
        pool_max: n,
        tick: args.swap_tick.clone(),
        worktrees: true,
        max_running: Some(n),
        ..Default::default()
    };
    let mut fleet = RealFleet::new(BINS, "signal-bench-swap", spec, bin);
    fleet.mock.set_default(normal(HELD_MS));
    for i in 0..n {
        fleet.enqueue("q", &format!("Long task {i}"));
    }
    fleet.start(None);
    let count = |needle: &str| fleet.log().lines().filter(|l| l.contains(needle)).count();
    wait("every task submitted under a", WAIT, || {
        (count(": task submitted") >= n as usize).then_some(())
    })
    .inspect_err(|_| eprintln!("{}", tail(&fleet.log())))?;
    // Busy on the task: its request is at the API (held there), so its conversation is on
    // disk for `--resume`. A Claude stopped before that has nothing to resume, and ccl
    // starts its task afresh instead.
    wait("every task's request at the API", WAIT, || {
        let asked: std::collections::BTreeSet<String> = fleet
            .mock
            .requests()
            .into_iter()
            .filter(|r| is_message(r) && r.last_user_text.as_deref().is_some_and(|t| t.starts_with("Long task")))
            .filter_map(|r| r.conversation)
            .collect();
        (asked.len() >= n as usize).then_some(())
    })?;

    let mut request = Command::new(CCL);
    request
        .arg("-c")
        .arg(&fleet.config_path)
        .args(["swap", "--to", "b"])
        .env("HOME", fleet.root.join("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut request = request.spawn().context("cannot run ccl swap")?;
    let resumed = wait("every continue prompt taken", WAIT, || {
        let n_taken = count("continue prompt submitted");
        (n_taken >= n as usize).then_some(n_taken)
    })
    .inspect_err(|_| eprintln!("{}", tail(&fleet.log())))?;
    let _ = request.wait();
    let log = fleet.log();
    if let Some(path) = &args.swap_log {
        std::fs::write(path, &log).with_context(|| path.display().to_string())?;
    }
    let first = |needle: &str| log.lines().find(|l| l.contains(needle)).and_then(log_ms);
    let last = |needle: &str| log.lines().filter(|l| l.contains(needle)).filter_map(log_ms).max();
    let decided = first("swap from a to b begins").context("no swap line")?;
    let relaunched = first("resuming task conversation").context("no relaunch line")?;
    let last_relaunched = last("resuming task conversation").context("no relaunch line")?;
    let taken = last("continue prompt submitted").context("no continue prompt line")?;
    let by_hook = log
        .lines()
        .filter(|l| l.contains("continue prompt submitted (UserPromptSubmit)"))
        .count();
    fleet.stop();
    let s = |ms: i64| ms as f64 / 1000.0;
    Ok(json!({
        "sessions": n,
        "tick": args.swap_tick,
        "swap_s": s(taken - decided),
        // Members are relaunched one by one as each stops: the first and the last.
        "first_relaunch_s": s(relaunched - decided),
        "last_relaunch_s": s(last_relaunched - decided),
        "relaunch_s": s(taken - relaunched),
        "resumed": resumed,
        "taken_by_hook": by_hook,
    }))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let bin = claude()?;
    let version = ccl_testkit::real::claude_version(&bin);
    let (done, limits) = if args.only.as_deref().is_none_or(|o| o != "swap") {
        latencies(&args, bin.clone())?
    } else {
        (Vec::new(), Vec::new())
    };
    let swap = if args.only.as_deref().is_none_or(|o| o == "swap") {
        swap(&args, bin)?
    } else {
        serde_json::Value::Null
    };
    println!(
        "{}",
        json!({
            "claude": version,
            "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
            "tick": args.tick,
            "done_ms": done,
            "done_ms_median": median(&done),
            "limit_to_swap_ms": limits,
            "limit_to_swap_ms_median": median(&limits),
            "swap": swap,
        })
    );
    Ok(())
}
