//! A whole fleet in a temporary directory, for the real-tmux tier: account homes with
//! their shared links, a fake Claude reachable as `claude`, queues, a `ccl.toml`, a
//! private tmux server, and `ccl run` as a child process whose log is kept in a file.
//!
//! Everything runs with `HOME` set to a directory inside the fleet, so login shells in
//! the panes read no profile of the machine's user (a slow profile would make every
//! test wait for it).
//!
//! `CCL_TEST_TMUX_BACKEND=exec|control` picks the daemon's tmux backend
//! (`tmux.backend`); unset, the configuration's default applies. CI runs the daemon tests
//! once more with the backend that is not the default, so both stay covered.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{output_within, wait_until, Bins, TmuxServer};

/// `HOME` and the XDG base directories inside `home` (see [`crate::isolate`]), for
/// commands built here; `TMUX` is removed separately where it matters.
fn home_env(home: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("HOME", home.to_path_buf()),
        ("XDG_CONFIG_HOME", home.join(".config")),
        ("XDG_DATA_HOME", home.join(".local/share")),
        ("XDG_STATE_HOME", home.join(".local/state")),
        ("XDG_CACHE_HOME", home.join(".cache")),
    ]
}

/// How a fleet is laid out.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    pub accounts: Vec<String>,
    pub pool_min: u32,
    pub pool_max: u32,
    pub dedicated: Vec<String>,
    pub queues: Vec<String>,
    pub tick: String,
    /// Fake Claude's default work time per prompt.
    pub work_ms: u64,
    /// Extra TOML appended to the generated configuration.
    pub extra_toml: String,
    /// Each project is a git repository with one commit, and its queue runs every task
    /// in a worktree of its own (`isolation = "worktree"`).
    pub worktrees: bool,
    /// `max_running` of every queue; None leaves the key out (its default applies).
    pub max_running: Option<u32>,
}

impl Default for FleetSpec {
    fn default() -> Self {
        FleetSpec {
            accounts: vec!["a".into(), "b".into()],
            pool_min: 2,
            pool_max: 2,
            dedicated: Vec::new(),
            queues: vec!["q".into()],
            tick: "300ms".into(),
            work_ms: 600,
            extra_toml: String::new(),
            worktrees: false,
            max_running: None,
        }
    }
}

pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub spec: FleetSpec,
    pub tmux: TmuxServer,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    /// Every prompt any fake Claude received, one JSON line each.
    pub received_path: PathBuf,
    /// The `ccl` this fleet runs and the fake Claude its accounts launch.
    pub bins: Bins,
    daemon: Option<Child>,
}

impl Fleet {
    pub fn new(bins: Bins, tag: &str, spec: FleetSpec) -> Fleet {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ccl-{tag}-"))
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        for sub in ["home", "bin", "pool", "state", "shared"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::os::unix::fs::symlink(bins.fake_claude, root.join("bin/claude")).unwrap();
        let links = ["projects", "file-history", "session-env"];
        for l in links {
            fs::create_dir_all(root.join("shared").join(l)).unwrap();
        }
        for a in &spec.accounts {
            let home = root.join("accounts").join(a);
            fs::create_dir_all(&home).unwrap();
            for l in links {
                std::os::unix::fs::symlink(root.join("shared").join(l), home.join(l)).unwrap();
            }
        }
        for q in &spec.queues {
            let project = root.join("projects").join(q);
            fs::create_dir_all(&project).unwrap();
            if spec.worktrees {
                fs::write(project.join("README.md"), format!("project {q}\n")).unwrap();
                git(&project, &["init", "-q"]);
                git(&project, &["add", "README.md"]);
                git(&project, &["commit", "-q", "-m", "first"]);
            }
        }
        for d in &spec.dedicated {
            fs::create_dir_all(root.join("work").join(d)).unwrap();
        }
        let fleet = Fleet {
            config_path: root.join("ccl.toml"),
            log_path: root.join("ccl.log"),
            received_path: root.join("received.jsonl"),
            tmux: TmuxServer::new(tag),
            bins,
            spec,
            root,
            dir,
            daemon: None,
        };
        fleet.write_config("");
        fleet
    }

    /// The generated configuration plus `extra` TOML.
    pub fn config_text(&self, extra: &str) -> String {
        let r = &self.root;
        let mut t = format!(
            "[daemon]\ntick = \"{}\"\nstate_dir = \"{}\"\n\n[tmux]\nsocket = \"{}\"\n{}\n[claude]\ncommand = \"{}\"\nenv = {{ FAKE_CLAUDE_LOG = \"{}\", FAKE_CLAUDE_WORK_MS = \"{}\" }}\n\n",
            self.spec.tick,
            r.join("state").display(),
            self.tmux.socket,
            backend_line(),
            r.join("bin/claude").display(),
            self.received_path.display(),
            self.spec.work_ms,
        );
        for a in &self.spec.accounts {
            t.push_str(&format!(
                "[[account]]\nname = \"{a}\"\nhome = \"{}\"\n\n",
                self.home(a).display()
            ));
        }
        t.push_str(&format!("[shared]\ntarget = \"{}\"\n\n", r.join("shared").display()));
        t.push_str(&format!(
            "[pool]\nmin = {}\nmax = {}\nworkdir = \"{}\"\n\n",
            self.spec.pool_min,
            self.spec.pool_max,
            r.join("pool").display()
        ));
        for d in &self.spec.dedicated {
            t.push_str(&format!(
                "[[dedicated]]\nname = \"{d}\"\nworkdir = \"{}\"\n\n",
                r.join("work").join(d).display()
            ));
        }
        for q in &self.spec.queues {
            t.push_str(&format!(
                "[[queue]]\nname = \"{q}\"\nproject = \"{}\"\n",
                self.project(q).display()
            ));
            if self.spec.worktrees {
                t.push_str("isolation = \"worktree\"\n");
            }
            if let Some(n) = self.spec.max_running {
                t.push_str(&format!("max_running = {n}\n"));
            }
            t.push('\n');
        }
        t.push_str("[quota]\nreactivate_cooldown = \"2s\"\n\n[dispatch]\nsubmit_delay = \"200ms\"\n\n");
        t.push_str(&self.spec.extra_toml);
        t.push_str(extra);
        t
    }

    /// (Re)writes `ccl.toml` with the spec plus `extra` TOML.
    pub fn write_config(&self, extra: &str) {
        fs::write(&self.config_path, self.config_text(extra)).unwrap();
    }

    /// Like [`Fleet::write_config`], with each `(from, to)` replaced in the generated text
    /// (for keys the generator already writes, such as `submit_delay`, the `[quota]`
    /// section or the claude `env` table, which appended TOML cannot set twice). Panics
    /// when a `from` is not in the text, so a changed generator fails loudly.
    pub fn write_config_edited(&self, extra: &str, edits: &[(&str, &str)]) {
        let mut text = self.config_text(extra);
        for (from, to) in edits {
            assert!(text.contains(from), "{from:?} is not in the generated config:\n{text}");
            text = text.replacen(from, to, 1);
        }
        fs::write(&self.config_path, text).unwrap();
    }

    pub fn home(&self, account: &str) -> PathBuf {
        self.root.join("accounts").join(account)
    }

    pub fn project(&self, queue: &str) -> PathBuf {
        self.root.join("projects").join(queue)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    // -- the daemon ------------------------------------------------------------------

    /// Starts `ccl run` (with `--record FILE` when given); its output goes to `ccl.log`.
    pub fn start(&mut self, record: Option<&Path>) {
        self.start_with_env(record, &[]);
    }

    /// Like [`Fleet::start`], with extra environment for the daemon (applied last, so
    /// `("RUST_LOG", "debug")` overrides the default).
    pub fn start_with_env(&mut self, record: Option<&Path>, env: &[(&str, &str)]) {
        assert!(self.daemon.is_none(), "daemon already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut cmd = Command::new(self.bins.ccl);
        cmd.arg("-c").arg(&self.config_path).arg("run");
        if let Some(r) = record {
            cmd.arg("--record").arg(r);
        }
        let child = cmd
            .envs(home_env(&self.root.join("home")))
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|c| c.id())
    }

    /// Sends `signal` to the daemon and waits for it to exit; returns its exit code
    /// (None when killed by a signal).
    pub fn signal_and_wait(&mut self, signal: i32, timeout: Duration) -> Option<i32> {
        self.send_signal(signal);
        self.wait_daemon_exit(&format!("the daemon to exit on signal {signal}"), timeout)
    }

    /// SIGTERM and wait; asserts a clean exit 0.
    pub fn stop(&mut self) {
        let code = self.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
        assert_eq!(code, Some(0), "daemon exit code after SIGTERM; log:\n{}", self.log());
    }

    /// Sends `signal` to the running daemon without waiting (SIGHUP, say).
    pub fn send_signal(&self, signal: i32) {
        let pid = self.daemon_pid().expect("daemon running");
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid as i32, signal) };
    }

    /// kill -9, as a crash would.
    pub fn crash(&mut self) {
        self.signal_and_wait(libc::SIGKILL, Duration::from_secs(10));
    }

    /// Waits for the daemon to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        self.wait_daemon_exit("the daemon to exit by itself", timeout)
    }

    /// Waits for the daemon to exit and reaps it; returns its exit code. The child stays
    /// in the fleet until then, so a timeout's panic still kills it on drop.
    fn wait_daemon_exit(&mut self, what: &str, timeout: Duration) -> Option<i32> {
        let child = self.daemon.as_mut().expect("daemon running");
        let status = wait_until(what, timeout, || child.try_wait().unwrap());
        self.daemon = None;
        status.code()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the daemon's log contains `needle`; panics otherwise (and the fleet's
    /// drop prints the log, as it does for every failed test).
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        wait_until(&format!("{needle:?} in the log"), timeout, || {
            self.log().contains(needle).then_some(())
        });
    }

    /// The number of the last turn the daemon logged (`turn N (…)` lines, which only
    /// a daemon started with `RUST_LOG=debug` writes).
    pub fn last_turn(&self) -> Option<u64> {
        self.log()
            .lines()
            .rev()
            .find_map(|l| l.split_once("turn ")?.1.split_once(" (")?.0.parse().ok())
    }

    /// Waits until the daemon has run `n` more turns than it had when called; needs a
    /// daemon started with `RUST_LOG=debug`. This is how a test lets time pass "for a
    /// few ticks" without sleeping.
    pub fn wait_turns(&self, n: u64, timeout: Duration) {
        let from = self.last_turn().unwrap_or(0);
        wait_until(&format!("{n} turns after turn {from}"), timeout, || {
            (self.last_turn().unwrap_or(0) >= from + n).then_some(())
        });
    }

    /// Runs `ccl -c CONFIG ARGS` like [`Fleet::ccl`], but kills it and panics when it
    /// has not exited within `timeout` (for commands that would hang if they misbehaved,
    /// such as a `ccl run` expected to refuse to start).
    pub fn ccl_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        let child = Command::new(self.bins.ccl)
            .arg("-c")
            .arg(&self.config_path)
            .args(args)
            .envs(home_env(&self.root.join("home")))
            .env("RUST_LOG", "warn")
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        output_within(child, &format!("ccl {args:?} to exit"), timeout)
    }

    /// Waits until the log holds `needle` at or after byte `from` (a position taken from
    /// `log().len()` earlier, e.g. before a restart); returns where it starts.
    pub fn wait_log_from(&self, from: usize, needle: &str, timeout: Duration) -> usize {
        wait_until(&format!("{needle:?} in the log after byte {from}"), timeout, || {
            let at = self.log().get(from..)?.find(needle)?;
            Some(from + at)
        })
    }

    /// Runs `ccl -c CONFIG ARGS` (stdin from `input`).
    pub fn ccl(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(self.bins.ccl);
        cmd.arg("-c")
            .arg(&self.config_path)
            .args(args)
            .envs(home_env(&self.root.join("home")))
            .env("RUST_LOG", "warn");
        cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(bytes) = input {
            // A command that refuses its input may exit before reading all of it; its
            // exit status and output are what the test checks, not the write.
            if let Err(e) = child.stdin.take().unwrap().write_all(bytes) {
                assert_eq!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe,
                    "writing stdin of ccl {args:?}: {e}"
                );
            }
        }
        child.wait_with_output().unwrap()
    }

    // -- queues ----------------------------------------------------------------------

    /// Enqueues a task through `ccl enqueue`; returns its name.
    pub fn enqueue(&self, queue: &str, body: &str) -> String {
        let out = self.ccl(&["enqueue", queue], Some(body.as_bytes()));
        assert!(
            out.status.success(),
            "enqueue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Enqueues a task from a file named `hint` (through `ccl enqueue QUEUE FILE`), so
    /// the task's name ends in `-HINT`: names sort as the hints do when tasks are
    /// enqueued within the same second, which keeps "oldest first" predictable.
    pub fn enqueue_as(&self, queue: &str, hint: &str, body: &str) -> String {
        let drafts = self.root.join("drafts");
        fs::create_dir_all(&drafts).unwrap();
        let file = drafts.join(hint);
        fs::write(&file, body).unwrap();
        let out = self.ccl(&["enqueue", queue, &file.to_string_lossy()], None);
        assert!(
            out.status.success(),
            "enqueue failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn queue_dir(&self, queue: &str, state: &str) -> PathBuf {
        self.project(queue).join(".agent-queue").join(state)
    }

    /// Task files (no sidecars) in one state directory, sorted.
    pub fn tasks(&self, queue: &str, state: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.queue_dir(queue, state))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.retain(|n| !n.starts_with('.') && !n.ends_with(".json") && !n.ends_with(".error"));
        names.sort();
        names
    }

    pub fn wait_done(&self, queue: &str, n: usize, timeout: Duration) {
        wait_until(&format!("{n} tasks of {queue} done"), timeout, || {
            if self.tasks(queue, "done").len() >= n {
                Ok(())
            } else {
                Err(self.queue_listing(queue))
            }
        });
    }

    /// `inbox [..] running [..] done [..] failed [..]` of `queue`, for a failure message.
    pub fn queue_listing(&self, queue: &str) -> String {
        format!(
            "inbox {:?} running {:?} done {:?} failed {:?}",
            self.tasks(queue, "inbox"),
            self.tasks(queue, "running"),
            self.tasks(queue, "done"),
            self.tasks(queue, "failed"),
        )
    }

    /// The report ccl filed next to a done task (`done/TASK.json`). It is written right
    /// after the task moves into `done/`, so a test that just saw the task there waits
    /// for it.
    pub fn report(&self, queue: &str, task: &str) -> serde_json::Value {
        // The record is written (and synced) just after the task is moved to done/, so a
        // test that saw the move may be a moment early.
        let path = self.queue_dir(queue, "done").join(format!("{task}.json"));
        let bytes = wait_until(&format!("{}", path.display()), Duration::from_secs(10), || {
            fs::read(&path).ok()
        });
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Holds until task `running` of `queue` is filed to done/, asserting all the while
    /// that task `waiting` stays in the inbox (`why` says what its leaving would mean);
    /// panics too when `running` is not done within `timeout`. The inbox is read before
    /// done/, so a claim of `waiting` just before `running` is filed cannot slip between
    /// the two reads.
    pub fn assert_waits_until_done(&self, queue: &str, waiting: &str, running: &str, timeout: Duration, why: &str) {
        wait_until(&format!("task {running} done"), timeout, || {
            let still_waiting = self.tasks(queue, "inbox").iter().any(|t| t == waiting);
            if self.tasks(queue, "done").iter().any(|t| t == running) {
                return Some(());
            }
            assert!(still_waiting, "{why}");
            None
        });
    }

    // -- tmux and the fake Claude ------------------------------------------------------

    /// `tmux -L SOCKET -f /dev/null ARGS` with the fleet's HOME; stdout, or panic.
    pub fn tmux(&self, args: &[&str]) -> String {
        let out = self.tmux_raw(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn tmux_raw(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.tmux.socket, "-f", "/dev/null"])
            .args(args)
            .envs(home_env(&self.root.join("home")))
            .env_remove("TMUX")
            .output()
            .unwrap()
    }

    /// `name -> (pane_pid, current_command)` for every session on the server.
    pub fn panes(&self) -> Vec<(String, u32, String)> {
        let out = self.tmux_raw(&[
            "list-panes",
            "-a",
            "-F",
            "#{session_name}\t#{pane_pid}\t#{pane_current_command}",
        ]);
        if !out.status.success() {
            return Vec::new();
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?.to_string(), f.next()?.parse().ok()?, f.next()?.to_string()))
            })
            .collect()
    }

    pub fn pane_pid(&self, session: &str) -> Option<u32> {
        self.panes().into_iter().find(|p| p.0 == session).map(|p| p.1)
    }

    pub fn command_of(&self, session: &str) -> Option<String> {
        self.panes().into_iter().find(|p| p.0 == session).map(|p| p.2)
    }

    pub fn capture(&self, session: &str) -> String {
        let out = self.tmux_raw(&["capture-pane", "-p", "-t", &format!("={session}:")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a detached session by hand (as the operator would), at a shell prompt.
    pub fn new_session(&self, name: &str, cwd: &Path) {
        self.tmux(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "200",
            "-y",
            "50",
            "-c",
            &cwd.to_string_lossy(),
        ]);
        wait_until(&format!("a shell prompt in {name}"), Duration::from_secs(10), || {
            self.capture(name).trim_end().ends_with(['$', '#']).then_some(())
        });
    }

    /// Starts the fake Claude by hand in session `name` under `account` (the operator's
    /// own session), waits for its idle screen, and returns its conversation id.
    pub fn start_claude_by_hand(&self, name: &str, account: &str, cwd: &Path) -> String {
        self.new_session(name, cwd);
        self.start_claude_in(name, account)
    }

    /// Starts the fake Claude by hand at the shell of the existing session `name`, as
    /// [`Fleet::start_claude_by_hand`] does.
    pub fn start_claude_in(&self, name: &str, account: &str) -> String {
        let line = format!(
            "CLAUDE_CONFIG_DIR={} FAKE_CLAUDE_LOG={} FAKE_CLAUDE_WORK_MS={} {} --dangerously-skip-permissions",
            self.home(account).display(),
            self.received_path.display(),
            self.spec.work_ms,
            self.root.join("bin/claude").display()
        );
        self.tmux(&["send-keys", "-t", &format!("={name}:"), "-l", &line]);
        self.tmux(&["send-keys", "-t", &format!("={name}:"), "Enter"]);
        wait_until(&format!("claude idle in {name}"), Duration::from_secs(10), || {
            self.capture(name).contains("bypass permissions on").then_some(())
        });
        wait_until(&format!("registry entry of {name}"), Duration::from_secs(10), || {
            self.registry_conversation(account, name)
        })
    }

    /// The conversation of the Claude running in `session`, from the registry in the
    /// home of `account` (Claude writes `"tmux": "SESSION:@W.%P"` there).
    pub fn registry_conversation(&self, account: &str, session: &str) -> Option<String> {
        fs::read_dir(self.home(account).join("sessions"))
            .ok()?
            .flatten()
            .find_map(|e| {
                let v: serde_json::Value = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
                let tmux = v["tmux"].as_str()?;
                (tmux.split(':').next() == Some(session)).then(|| v["sessionId"].as_str().map(String::from))?
            })
    }

    /// Starts the operator's own Claude by hand in the dedicated session `ops` under
    /// account a, for tests that prove ccl leaves it alone ([`Fleet::assert_left_alone`]).
    pub fn start_operator(&self) -> Operator {
        let id = self.start_claude_by_hand("ops", "a", &self.root.join("work/ops"));
        let pid = self.pane_pid("ops").unwrap();
        Operator { id, pid }
    }

    /// Asserts ccl left the operator's Claude alone: nothing reached it, its session was
    /// not recreated, and it still runs.
    pub fn assert_left_alone(&self, operator: &Operator) {
        let received = self.received();
        assert!(
            received.iter().all(|r| r["sessionId"] != operator.id.as_str()),
            "nothing was typed into the operator's Claude: {received:#?}"
        );
        assert_eq!(
            self.pane_pid("ops"),
            Some(operator.pid),
            "the operator's session was not recreated"
        );
        assert_eq!(
            self.command_of("ops").as_deref(),
            Some("claude"),
            "the operator's Claude still runs"
        );
    }

    /// Makes the fake Claude of `account` hit a usage limit (`five_hour 9:23am (UTC)`,
    /// `weekly …`, `error500 MESSAGE`) from now on.
    pub fn set_limit(&self, account: &str, line: &str) {
        fs::write(self.home(account).join("fake-limit"), format!("{line}\n")).unwrap();
    }

    pub fn clear_limit(&self, account: &str) {
        let _ = fs::remove_file(self.home(account).join("fake-limit"));
    }

    /// Every prompt the fake Claudes received: `{sessionId, cwd, account, text}`.
    pub fn received(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(&self.received_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The daemon's `ccl status --json`.
    pub fn status(&self) -> serde_json::Value {
        let out = self.ccl(&["status", "--json"], None);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// `git -C DIR ARGS` with a fixed identity and no signing (whatever the tester's git
/// configuration says); stdout, or a panic with git's message.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=ccl test",
            "-c",
            "user.email=test@localhost",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `backend = "…"` from `CCL_TEST_TMUX_BACKEND`, or nothing (the default backend).
fn backend_line() -> String {
    match std::env::var("CCL_TEST_TMUX_BACKEND") {
        Ok(backend) if backend == "exec" || backend == "control" => format!("backend = \"{backend}\"\n"),
        Ok(backend) if !backend.is_empty() => panic!("CCL_TEST_TMUX_BACKEND must be exec or control, not {backend:?}"),
        _ => String::new(),
    }
}

/// The lines the daemon typed into `session` at its shell (launch lines, `/exit`), from
/// its `log`.
pub fn typed_into(log: &str, session: &str) -> Vec<String> {
    let prefix = format!("type into {session}: ");
    log.lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest.to_string()))
        .collect()
}

/// The entry of account `name` in `ccl status --json`.
pub fn account_entry(status: &serde_json::Value, name: &str) -> serde_json::Value {
    status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no account {name} in {status:#}"))
}

/// The operator's own Claude in session `ops`, as [`Fleet::start_operator`] started it.
pub struct Operator {
    /// Its conversation id.
    pub id: String,
    /// Its pane's process.
    pub pid: u32,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- ccl log of the failed test ({}) ---\n{}",
                self.root.display(),
                self.log()
            );
            for queue in &self.spec.queues {
                eprintln!("--- queue {queue}: {}", self.queue_listing(queue));
            }
        }
    }
}
