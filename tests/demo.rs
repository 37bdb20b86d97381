//! Real-tmux tier: `ccl demo` end to end, as someone who just cloned the repository runs
//! it. It must finish on its own with exit 0 after every sample task is done and exactly
//! one account swap (with the interrupted conversations resumed), and leave nothing behind:
//! no tmux server on its private socket, no temporary directory, no session on the user's
//! default tmux server.

use crate::CCL;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The demo bounds itself at 120 s; this guard only catches a demo that ignores its own
/// bound, so the test fails instead of hanging.
const GUARD: Duration = Duration::from_secs(150);

/// The sample queue's size, as the demo's summary reports it.
const TASKS: usize = 8;

/// The running demo; if the test fails before it exits, it is interrupted as Ctrl-C
/// would (so it cleans up after itself) and killed when that does not end it.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: signalling our own child process, which has not been reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        if ccl_testkit::poll_within(Duration::from_secs(20), || self.0.try_wait().ok().flatten().is_some()) {
            return;
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Session names on the user's default tmux server, or None when none runs.
fn default_server_sessions() -> Option<Vec<String>> {
    let out = Command::new("tmux")
        .args(["list-sessions", "-F", "#{session_name}"])
        .env_remove("TMUX")
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    })
}

/// The value after `prefix` on the line that starts with it.
fn field<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
        .trim()
}

#[test]
fn the_demo_runs_every_task_through_one_swap_and_leaves_nothing_behind() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let before = default_server_sessions();
    let started = Instant::now();
    // A home of its own: the demo must not need (or touch) the real one.
    let home = tempfile::tempdir().unwrap();
    let child = Command::new(CCL)
        .arg("demo")
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ccl demo starts");
    let mut demo = Demo(child);
    // Read the pipes on their own threads so a chatty demo never blocks on a full pipe.
    let mut stdout_pipe = demo.0.stdout.take().unwrap();
    let mut stderr_pipe = demo.0.stderr.take().unwrap();
    let stdout_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout_pipe.read_to_string(&mut s).map(|_| s)
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr_pipe.read_to_string(&mut s).map(|_| s)
    });
    let status = ccl_testkit::wait_until("ccl demo to exit", GUARD, || demo.0.try_wait().unwrap());
    let stdout = stdout_reader.join().unwrap().unwrap();
    let stderr = stderr_reader.join().unwrap().unwrap();
    let elapsed = started.elapsed();
    eprintln!("ccl demo took {elapsed:.1?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");

    assert_eq!(status.code(), Some(0), "ccl demo exit status");
    assert!(
        stdout.contains(&format!("tasks done: {TASKS}/{TASKS} (failed 0")),
        "the summary says every task is done:\n{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("swaps: 1 (alpha -> beta")),
        "the summary says exactly one swap, from the first account to the second:\n{stdout}"
    );
    // The story was told while it happened: the limit, the swap and the resumes.
    for event in [
        "decision=swap",
        "swapped from alpha to beta in ",
        "every conversation resumed",
        "resuming task conversation",
        "ccl-1-operator: resuming conversation",
    ] {
        assert!(stdout.contains(event), "no {event:?} among the events shown:\n{stdout}");
    }
    assert!(
        stdout.contains("operator session ccl-1-operator: claude under beta"),
        "the operator's own conversation continues under the second account:\n{stdout}"
    );

    let dir = field(&stdout, "demo directory:");
    assert!(
        dir.contains("ccl-demo-"),
        "the demo works in a directory of its own: {dir}"
    );
    assert!(!Path::new(dir).exists(), "the demo directory {dir} was removed");
    let socket = field(&stdout, "tmux socket:");
    assert!(
        socket.starts_with("ccl-demo-"),
        "a private tmux socket, not the default server: {socket}"
    );
    let probe = Command::new("tmux")
        .args(["-L", socket, "list-sessions"])
        .env_remove("TMUX")
        .output()
        .unwrap();
    assert!(
        !probe.status.success(),
        "no tmux server answers on {socket} after the demo: {}",
        String::from_utf8_lossy(&probe.stdout)
    );
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let tmpdir = std::env::var_os("TMUX_TMPDIR").unwrap_or_else(|| "/tmp".into());
    let socket_file = Path::new(&tmpdir).join(format!("tmux-{uid}")).join(socket);
    assert!(
        !socket_file.exists(),
        "the socket file {} was removed",
        socket_file.display()
    );
    let after = default_server_sessions();
    let demo_names = |list: &Option<Vec<String>>| {
        list.iter()
            .flatten()
            .filter(|n| n.starts_with("ccl-auto-") || *n == "ccl-1-operator")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        demo_names(&after),
        demo_names(&before),
        "the demo created no session on the default tmux server"
    );
    if before.is_none() {
        assert!(after.is_none(), "the demo did not start the default tmux server");
    }
}
