//! Benchmark of an account swap at fleet scale: how long from the moment ccl decides to
//! swap until every pool session is working again under the next account, and how many
//! ticks pass between a limit line showing up and the first swap action.
//!
//! It lays out a fleet in a temporary directory the way the real-tmux tests do (two
//! account homes with their shared links, the fake Claude reachable as `claude`, one
//! queue, `HOME` inside the directory, a private tmux server), starts `ccl run --record`
//! as a child, enqueues one long task per pool session and waits until every one is
//! submitted under account `a`. Then it makes `a` hit its 5-hour limit (the fake Claude's
//! `accounts/a/fake-limit`) and waits until every session has resumed its conversation
//! under `b` and has its continue prompt submitted. Prints one JSON line:
//!
//! `{"sessions": N, "tick_ms": …, "swap_s": …, "resumed": N, "limit_to_decision_ms": …,
//!   "limit_to_swap_turns": …, "limit_to_swap_ms": …, "limit_to_swap_ticks": …}`
//!
//! `swap_s` runs from the log line of the decision (`quota: … decision=swap`) to the last
//! `continue prompt submitted` line; `limit_to_decision_ms` from writing `fake-limit` to
//! that decision (the fake Claude's poll of the file, then at most one tick). The limit-to-action latency comes from the recorded
//! trace: from the first turn whose observation holds the limit (a capture showing it, or
//! a transcript record of it) to the first turn that acts on a swap member (Escape,
//! `/exit` or a stop). Run (after `cargo build --release --bins --examples`):
//! `cargo run --release --example swap_bench -- --sessions 20`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ccl::shell::trace;
use ccl_core::core::Action;
use ccl_core::trace::Line;
use ccl_core::transcript::Signal;

/// How long the fleet may take to start and have every task submitted.
const SETUP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the swap may take before the benchmark gives up (far above the 15 s target).
const SWAP_TIMEOUT: Duration = Duration::from_secs(180);
/// The limit line the fake Claude shows (`fake-limit` syntax).
const LIMIT: &str = "five_hour 9:23am (UTC)";

struct Args {
    sessions: u32,
    tick: String,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        sessions: 20,
        tick: "2s".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sessions" => args.sessions = value()?.parse()?,
            "--tick" => args.tick = value()?,
            other => bail!("unknown argument {other} (--sessions N --tick DURATION)"),
        }
    }
    if args.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    Ok(args)
}

/// Where tmux keeps the socket of `tmux -L SOCKET`; tmux leaves the file behind when its
/// server is killed, so the benchmark removes it.
fn socket_path(socket: &str) -> PathBuf {
    let dir = std::env::var_os("TMUX_TMPDIR").unwrap_or_else(|| "/tmp".into());
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    Path::new(&dir).join(format!("tmux-{uid}")).join(socket)
}

/// `target/<profile>/NAME`, next to the directory of this example.
fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("no target directory")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo build --release --bins` first",
            path.display()
        );
    }
    Ok(path)
}

/// The fleet's files and the running daemon; the daemon and the tmux server go when
/// this is dropped, whatever happened.
struct Fleet {
    root: PathBuf,
    socket: String,
    ccl: PathBuf,
    daemon: Option<Child>,
}

impl Fleet {
    fn log(&self) -> String {
        fs::read_to_string(self.root.join("ccl.log")).unwrap_or_default()
    }

    fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Polls until `done` holds, or fails with the log's tail.
    fn wait(&self, what: &str, timeout: Duration, done: impl Fn(&Fleet) -> bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if Instant::now() >= deadline {
                let log = self.log();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                bail!(
                    "timed out after {timeout:?} waiting for {what}; log tail:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn ccl(&self) -> Command {
        let mut command = Command::new(&self.ccl);
        command
            .arg("-c")
            .arg(self.root.join("ccl.toml"))
            .env("HOME", self.root.join("home"))
            .env_remove("TMUX");
        command
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_file(socket_path(&self.socket));
    }
}

fn lay_out(root: &Path, args: &Args, socket: &str) -> Result<()> {
    for sub in ["home", "bin", "pool", "state", "projects/q"] {
        fs::create_dir_all(root.join(sub))?;
    }
    // Every session works on a task of the one queue at once: each in its own worktree.
    let project = root.join("projects/q");
    fs::write(project.join("README.md"), "bench\n")?;
    for args in [
        &["init", "-q"][..],
        &["add", "README.md"],
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "bench",
        ],
    ] {
        let status = Command::new("git").arg("-C").arg(&project).args(args).status()?;
        anyhow::ensure!(
            status.success(),
            "git {} failed in {}",
            args.join(" "),
            project.display()
        );
    }
    std::os::unix::fs::symlink(sibling_binary("ccl-fake-claude")?, root.join("bin/claude"))?;
    let links = ["projects", "file-history", "session-env"];
    for l in links {
        fs::create_dir_all(root.join("shared").join(l))?;
    }
    for account in ["a", "b"] {
        let home = root.join("accounts").join(account);
        fs::create_dir_all(&home)?;
        for l in links {
            std::os::unix::fs::symlink(root.join("shared").join(l), home.join(l))?;
        }
    }
    let r = root.display();
    let n = args.sessions;
    let config = format!(
        "[daemon]\ntick = \"{tick}\"\nstate_dir = \"{r}/state\"\n\n\
         [tmux]\nsocket = \"{socket}\"\n\n\
         [claude]\ncommand = \"{r}/bin/claude\"\nenv = {{ FAKE_CLAUDE_WORK_MS = \"600000\" }}\n\n\
         [[account]]\nname = \"a\"\nhome = \"{r}/accounts/a\"\n\n\
         [[account]]\nname = \"b\"\nhome = \"{r}/accounts/b\"\n\n\
         [shared]\ntarget = \"{r}/shared\"\n\n\
         [pool]\nmin = {n}\nmax = {n}\nworkdir = \"{r}/pool\"\n\n\
         [[queue]]\nname = \"q\"\nproject = \"{r}/projects/q\"\nisolation = \"worktree\"\n",
        tick = args.tick,
    );
    fs::write(root.join("ccl.toml"), config)?;
    Ok(())
}

/// Milliseconds since the epoch of an env_logger line (`[2026-…T07:31:26.123Z INFO …`).
fn log_time_ms(line: &str) -> Option<i64> {
    let stamp = line.strip_prefix('[')?.split_whitespace().next()?;
    stamp.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

/// (first turn observing the limit, first turn acting on the swap), as (turn, t_ms).
fn limit_to_swap(trace_path: &Path) -> Result<((u64, i64), (u64, i64))> {
    let trace = trace::read(trace_path)?;
    let mut seen = None;
    for line in &trace.lines {
        let Line::Turn {
            turn,
            observation,
            actions,
        } = line
        else {
            continue;
        };
        if seen.is_none() {
            let on_screen = observation.sessions.iter().flatten().any(|s| {
                s.capture
                    .as_deref()
                    .is_some_and(|c| c.contains("hit your 5-hour limit"))
            });
            let in_transcript = observation
                .transcripts
                .iter()
                .flat_map(|t| &t.records)
                .any(|r| matches!(r.signal, Signal::LimitHit { .. }));
            if on_screen || in_transcript {
                seen = Some((*turn, observation.now_ms));
            }
        }
        let Some(first) = seen else { continue };
        let acts = actions.iter().any(|a| match a {
            Action::SendKeys { keys, .. } => keys.iter().any(|k| k == "Escape"),
            Action::TypeLine { line, .. } => line == "/exit",
            Action::StopClaude { .. } => true,
            _ => false,
        });
        if acts {
            return Ok((first, (*turn, observation.now_ms)));
        }
    }
    bail!("the trace shows no limit followed by a swap action")
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let tmp = tempfile::Builder::new().prefix("ccl-swap-bench-").tempdir()?;
    let root = tmp.path().canonicalize()?;
    let socket = format!("ccl-swap-bench-{}", std::process::id());
    lay_out(&root, &args, &socket)?;
    let mut fleet = Fleet {
        root: root.clone(),
        socket,
        ccl: sibling_binary("ccl")?,
        daemon: None,
    };

    let log = fs::File::create(root.join("ccl.log"))?;
    let trace_path = root.join("trace.jsonl");
    let daemon = fleet
        .ccl()
        .arg("run")
        .arg("--record")
        .arg(&trace_path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start ccl run")?;
    fleet.daemon = Some(daemon);

    let n = args.sessions as usize;
    for i in 0..n {
        let out = fleet
            .ccl()
            .args(["enqueue", "q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin is piped")
                    .write_all(format!("[fake:work=600s] long task {i}\n").as_bytes())?;
                child.wait()
            })?;
        if !out.success() {
            bail!("ccl enqueue failed");
        }
    }
    fleet.wait("every task submitted under a", SETUP_TIMEOUT, |f| {
        f.count(": task submitted") >= n
    })?;

    fs::write(root.join("accounts/a/fake-limit"), format!("{LIMIT}\n"))?;
    let limit_written_ms = ccl::shell::now_ms();
    fleet.wait("every session resumed under b", SWAP_TIMEOUT, |f| {
        f.count("continue prompt submitted") >= n
    })?;

    let log = fleet.log();
    let decided_ms = log
        .lines()
        .find(|l| l.contains("decision=swap"))
        .and_then(log_time_ms)
        .context("no decision=swap line with a time")?;
    let ready_ms = log
        .lines()
        .filter(|l| l.contains("continue prompt submitted"))
        .filter_map(log_time_ms)
        .max()
        .context("no continue prompt submitted line with a time")?;
    let resumed = log.lines().filter(|l| l.contains("resuming task conversation")).count();
    let ((limit_turn, limit_ms), (action_turn, action_ms)) = limit_to_swap(&trace_path)?;
    let tick_ms = ccl_core::config::DurationMs::parse(&args.tick)
        .map_err(anyhow::Error::msg)?
        .0 as f64;
    drop(fleet);

    let latency_ms = action_ms - limit_ms;
    println!(
        "{}",
        serde_json::json!({
            "sessions": n,
            "tick_ms": tick_ms,
            "swap_s": (ready_ms - decided_ms) as f64 / 1000.0,
            "resumed": resumed,
            "limit_to_decision_ms": decided_ms - limit_written_ms,
            "limit_to_swap_turns": action_turn - limit_turn,
            "limit_to_swap_ms": latency_ms,
            "limit_to_swap_ticks": (latency_ms as f64 / tick_ms * 100.0).round() / 100.0,
        })
    );
    Ok(())
}
