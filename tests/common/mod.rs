//! Helpers shared by the integration tests: the gate of the real-tmux tier, a private
//! tmux server per test that is killed when the test ends, and the one sanctioned way
//! to wait for something (poll with a deadline).
#![allow(dead_code)]

pub mod fleet;
pub mod real;
pub mod tmux_scenarios;

use std::path::Path;
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

/// Appends `tier` to the file `$CCL_TIER_LOG` names, when set: `.ci/run` fails when a
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
    pub fn home(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("{}-home", self.socket))
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
            let deadline = Instant::now() + Duration::from_secs(3);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = tmux_processes(&self.socket);
            if left.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in left {
                // SAFETY: kill(2) of a process whose command line names this test's own
                // private socket, so it is this test's server or one of its clients.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(self.socket_path());
        let _ = std::fs::remove_dir_all(self.home());
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
