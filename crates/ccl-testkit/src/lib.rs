//! What ccl's tests, benchmarks and offline runs of the real Claude Code stand on, kept out
//! of the product (`publish = false`; `cargo install` never installs it): the gates of the
//! slow tiers ([`tmux_tier`], [`real::claude_bin`]) with the `CCL_TIER_LOG` note that
//! proves a switched-on tier ran, the one sanctioned way to wait for something
//! ([`wait_until`]: poll with a deadline), a home of its own for every process a test
//! starts ([`isolate`]), a private tmux server per test that takes every process on its
//! socket with it ([`TmuxServer`]), a whole fleet under `ccl run` ([`fleet::Fleet`]), the
//! real Claude Code's account homes ([`real`]), and the mock Anthropic API ([`mockapi`],
//! and the `ccl-mock-api` binary around it).
//!
//! The testkit does not depend on the `ccl` package: the binaries under test exist only
//! for the root package's integration tests (`env!("CARGO_BIN_EXE_ccl")`), which hand
//! their paths in as [`Bins`].

pub mod fleet;
pub mod mockapi;
pub mod real;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The binaries of the root package a fixture runs, as its integration tests know them:
/// `Bins { ccl: env!("CARGO_BIN_EXE_ccl"), fake_claude: env!("CARGO_BIN_EXE_ccl-fake-claude") }`.
#[derive(Clone, Copy, Debug)]
pub struct Bins {
    /// `ccl`.
    pub ccl: &'static str,
    /// `ccl-fake-claude`, which fleets run as `claude`.
    pub fake_claude: &'static str,
}

/// The workspace's root directory (the `ccl` package's), which holds `tests/screens/`
/// and the default `.cache/claude`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/ccl-testkit sits two levels below the workspace root")
        .to_path_buf()
}

/// Whether the real-tmux tier runs: `CCL_TEST_TMUX=1` asks for it, and then tmux must
/// exist, since a tier that was asked for must not pass by skipping.
pub fn tmux_tier() -> bool {
    if std::env::var("CCL_TEST_TMUX").as_deref() != Ok("1") {
        eprintln!("real-tmux tier skipped: set CCL_TEST_TMUX=1 to run it");
        return false;
    }
    let found = Command::new("tmux").arg("-V").output();
    match found {
        Ok(output) if output.status.success() => {
            note_tier_ran("tmux");
            true
        }
        Ok(output) => panic!(
            "CCL_TEST_TMUX=1 but `tmux -V` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(err) => panic!("CCL_TEST_TMUX=1 but tmux is not on PATH: {err}"),
    }
}

/// Points `cmd` at a home of its own: `HOME` and every XDG base directory inside `home`,
/// and no `TMUX`. A tmux server passes its environment on to its panes, so a shell or a
/// Claude started there writes its history, caches and URL-handler files under `home`,
/// never into the real home of whoever runs the tests.
pub fn isolate<'a>(cmd: &'a mut Command, home: &Path) -> &'a mut Command {
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
}

/// Pids of live processes whose command line names tmux socket `socket` (`-L SOCKET`):
/// the server, which keeps the command line of the client that started it, and clients.
pub fn tmux_processes(socket: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.windows(2).any(|w| w[0] == b"-L" && w[1] == socket.as_bytes())
        })
        .collect()
}

/// Appends `tier` to the file `$CCL_TIER_LOG` names, when set: `cargo xtask ci` fails when a
/// tier it switched on has no line there, i.e. ran no test at all.
pub fn note_tier_ran(tier: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("CCL_TIER_LOG") else {
        return;
    };
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
    if let Ok(mut f) = file {
        let _ = writeln!(f, "{tier}");
    }
}

/// A private tmux server (`tmux -L SOCKET`), unique per test, with a home of its own
/// ([`isolate`]); on drop the server, any client of it still running and the socket file
/// are gone, even when the server no longer answers (stopped by a test, say).
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
        let home = self.home();
        let _ = std::fs::create_dir_all(&home);
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket, "-f", "/dev/null"]).args(args);
        isolate(&mut command, &home);
        command
    }

    /// The home its panes get: a directory named after the socket, removed on drop.
    pub fn home(&self) -> PathBuf {
        std::env::temp_dir().join(format!("{}-home", self.socket))
    }

    /// Where tmux puts this server's socket: `$TMUX_TMPDIR/tmux-UID/SOCKET`.
    fn socket_path(&self) -> PathBuf {
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
        // should outlive the test, and tmux leaves the socket file behind. A server that
        // does not answer (stopped) would block kill-server forever: it gets a deadline,
        // and whatever still runs on this socket afterwards is killed.
        if let Ok(mut child) = self
            .command(&["kill-server"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            poll_within(Duration::from_secs(3), || child.try_wait().ok().flatten().is_some());
            let _ = child.kill();
            let _ = child.wait();
        }
        poll_within(Duration::from_secs(5), || {
            let left = tmux_processes(&self.socket);
            for &pid in &left {
                // SAFETY: kill(2) of a process whose command line names this test's own
                // private socket, so it is this test's server or one of its clients.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            left.is_empty()
        });
        let _ = std::fs::remove_file(self.socket_path());
        let _ = std::fs::remove_dir_all(self.home());
    }
}

/// How often [`wait_until`] looks at its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What a [`wait_until`] condition returns at each look: `Option<T>` (`Some` when the
/// wait is over), or `Result<T, E>` whose `Err` says what was seen instead; the last one
/// goes into the timeout's panic (the last screen, the files in a queue).
pub trait Outcome {
    type Value;
    type Seen: std::fmt::Display;
    /// The value when the wait is over, else what was seen instead, if anything.
    fn into_ready(self) -> Result<Self::Value, Option<Self::Seen>>;
}

impl<T> Outcome for Option<T> {
    type Value = T;
    type Seen = std::convert::Infallible;
    fn into_ready(self) -> Result<T, Option<Self::Seen>> {
        self.ok_or(None)
    }
}

impl<T, E: std::fmt::Display> Outcome for Result<T, E> {
    type Value = T;
    type Seen = E;
    fn into_ready(self) -> Result<T, Option<E>> {
        self.map_err(Some)
    }
}

/// Polls `f` about every 20 ms until it says the wait is over, and returns its value;
/// panics naming `what` (and what `f` saw last, when it says) when `timeout` passes
/// first. The one way tests wait for something: never a sleep as synchronisation.
pub fn wait_until<O: Outcome>(what: &str, timeout: Duration, mut f: impl FnMut() -> O) -> O::Value {
    let mut ready = None;
    let mut seen = None;
    poll_within(timeout, || match f().into_ready() {
        Ok(value) => {
            ready = Some(value);
            true
        }
        Err(last) => {
            seen = last;
            false
        }
    });
    match (ready, seen) {
        (Some(value), _) => value,
        (None, Some(seen)) => panic!("timed out after {timeout:?} waiting for {what}; last seen:\n{seen}"),
        (None, None) => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// The loop under [`wait_until`], for clean-up code that must not panic (a destructor
/// waiting for a process it stopped, before it kills it): polls `f` about every 20 ms
/// until it holds or `timeout` passes; returns whether it held.
pub fn poll_within(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits for `child` to exit and returns its output; when `timeout` passes first, kills
/// it, prints its stderr and panics naming `what`: a command that would hang if it
/// misbehaved (a `ccl run` expected to refuse to start) outlives no test.
pub fn output_within(mut child: Child, what: &str, timeout: Duration) -> Output {
    let exited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(what, timeout, || child.try_wait().unwrap())
    }));
    if let Err(panic) = exited {
        let _ = child.kill();
        if let Ok(out) = child.wait_with_output() {
            eprintln!(
                "stderr of the killed command:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::panic::resume_unwind(panic);
    }
    child.wait_with_output().unwrap()
}
