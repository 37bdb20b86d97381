//! Helpers shared by the integration tests: the gate of the real-tmux tier, a private
//! tmux server per test that is killed when the test ends, and the one sanctioned way
//! to wait for something (poll with a deadline).
#![allow(dead_code)]

pub mod fleet;
pub mod real;
pub mod tmux_scenarios;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Whether the real-tmux tier runs: `CCL_TEST_TMUX=1` asks for it, and then tmux must
/// exist, since a tier that was asked for must not pass by skipping.
pub fn tmux_tier() -> bool {
    if std::env::var("CCL_TEST_TMUX").as_deref() != Ok("1") {
        eprintln!("real-tmux tier skipped: set CCL_TEST_TMUX=1 to run it");
        return false;
    }
    let found = Command::new("tmux").arg("-V").output();
    match found {
        Ok(output) if output.status.success() => true,
        Ok(output) => panic!(
            "CCL_TEST_TMUX=1 but `tmux -V` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(err) => panic!("CCL_TEST_TMUX=1 but tmux is not on PATH: {err}"),
    }
}

/// A private tmux server (`tmux -L SOCKET`), unique per test; killed on drop together
/// with its socket file. The server itself starts with its first session.
pub struct TmuxServer {
    pub socket: String,
}

static SERVER_COUNT: AtomicUsize = AtomicUsize::new(0);

impl TmuxServer {
    pub fn new(tag: &str) -> Self {
        let n = SERVER_COUNT.fetch_add(1, Ordering::Relaxed);
        TmuxServer {
            socket: format!("ccl-test-{tag}-{}-{n}", std::process::id()),
        }
    }

    /// Runs `tmux -L SOCKET -f /dev/null ARGS` and returns stdout; panics with tmux's
    /// stderr when it fails.
    pub fn cmd(&self, args: &[&str]) -> String {
        let output = self
            .command(args)
            .output()
            .unwrap_or_else(|err| panic!("cannot run tmux {args:?}: {err}"));
        assert!(
            output.status.success(),
            "tmux {args:?} on {} failed: {}",
            self.socket,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket, "-f", "/dev/null"]).args(args);
        command
    }

    /// Where tmux puts this server's socket: `$TMUX_TMPDIR/tmux-UID/SOCKET`.
    fn socket_path(&self) -> std::path::PathBuf {
        let dir = std::env::var_os("TMUX_TMPDIR").unwrap_or_else(|| "/tmp".into());
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        std::path::Path::new(&dir)
            .join(format!("tmux-{uid}"))
            .join(&self.socket)
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        // The server may already be gone (the test killed it); either way nothing of it
        // should outlive the test, and tmux leaves the socket file behind.
        let _ = self.command(&["kill-server"]).output();
        let _ = std::fs::remove_file(self.socket_path());
    }
}

/// Polls `f` about every 20 ms until it returns Some, and returns that value; panics
/// naming `what` when `timeout` passes first.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
