//! `ccl demo`: a self-contained demonstration for someone who just cloned the repository
//! and has no Claude account. It builds a whole fleet in a fresh temporary directory —
//! two simulated accounts whose homes share `projects/`, `file-history/` and
//! `session-env/` through the links `ccl links` expects, a queue of eight tasks of varying
//! length, an operator's own (dedicated) session — with the fake Claude
//! (`ccl-fake-claude`, found next to the running `ccl`) standing in for Claude Code, on a
//! private tmux server (`tmux -L ccl-demo-<pid>`). Then it runs the real daemon, `ccl run`
//! as a child process of this same binary, and tells the story while it happens: tasks
//! flow, the active account hits a simulated 5-hour limit (the demo writes that account's
//! `fake-limit` file), the daemon swaps accounts and resumes every conversation, and the
//! remaining tasks finish on the second account.
//!
//! The demo never touches the user's default tmux server or real Claude homes: every tmux
//! call names the private socket, every Claude runs with `CLAUDE_CONFIG_DIR` inside the
//! demo directory, and the daemon and the tmux server run with `HOME` there too, so login
//! shells in the panes read no profile of the user. At the end (or on Ctrl-C, or when the
//! run exceeds its time bound) it stops the daemon with SIGTERM, kills the private server
//! and removes the directory, unless `--keep` asks to leave them for inspection.

use std::collections::VecDeque;
use std::fs;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::adapters::links;
use crate::adapters::queue;
use crate::adapters::tmux::{ExecTmux, Tmux};
use crate::shell::state;
use crate::status::Report;
use ccl_core::config::Config;
use ccl_core::core::{Action, Seen, State};
use ccl_core::event::{Event, QuotaDecision};
use ccl_core::screen::{self, ScreenState};
use ccl_core::util::shell_quote;

/// The whole run must end within this; otherwise the demo says what is stuck, exits 1.
const DEMO_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the demo looks at the fleet and redraws its view (about twice a second).
const REFRESH: Duration = Duration::from_millis(500);
/// How often Ctrl-C is looked for between refreshes, so it is answered at once.
const SIGNAL_POLL: Duration = Duration::from_millis(50);
/// A shell prompt, or the fake Claude's idle screen, must show within this.
const SCREEN_WAIT: Duration = Duration::from_secs(15);
/// The daemon must exit within this after SIGTERM; then it is killed.
const DAEMON_STOP_WAIT: Duration = Duration::from_secs(10);
/// Tasks finished on the first account before the demo makes it hit its limit.
const DONE_BEFORE_LIMIT: usize = 3;
/// Notable log lines kept on screen.
const EVENTS_SHOWN: usize = 10;
/// Last log lines kept for the report of a stuck or failed run.
const LOG_LINES_KEPT: usize = 25;
/// Bytes of the daemon's log read per refresh; the rest waits for the next one.
const LOG_READ_BYTES: u64 = 1 << 20;
/// Width of the sessions the demo creates itself, as wide as the daemon's own.
const SESSION_WIDTH: &str = "200";
const SESSION_HEIGHT: &str = "50";

const ACCOUNTS: [&str; 2] = ["alpha", "beta"];
const OPERATOR: &str = "ccl-1-operator";
const QUEUE: &str = "demo";
const POOL_SIZE: u32 = 3;
/// Work time of a turn with no `[fake:work=…]` directive (the continue prompt after a swap).
const DEFAULT_WORK_MS: u64 = 2_000;

/// The sample queue: (file name hint, body). The `[fake:work=…]` directive tells the fake
/// Claude how long to work on it; one task is several lines, as real tasks often are.
const TASKS: &[(&str, &str)] = &[
    ("01-readme-typos", "Fix the typos in README.md. [fake:work=3s]"),
    (
        "02-verbose-flag",
        "Add a --verbose flag to the command line and document it. [fake:work=6s]",
    ),
    (
        "03-date-parser-tests",
        "Write unit tests for the date parser, including leap years. [fake:work=8s]",
    ),
    (
        "04-rename-load-cfg",
        "Rename `load_cfg` to `load_config` everywhere. [fake:work=4s]",
    ),
    (
        "05-startup-profile",
        "Profile the start-up path and remove the slowest allocation. [fake:work=9s]",
    ),
    (
        "06-changelog-review",
        "Review this changelog entry and tighten the wording:\n\
         - the parser now accepts ISO weeks\n\
         - `--json` output gained a `version` field\n\
         - fixed a crash on empty input\n\
         [fake:work=5s]",
    ),
    (
        "07-ci-image",
        "Move the CI image to the current LTS release. [fake:work=5s]",
    ),
    ("08-release-notes", "Draft the release notes for 0.2.0. [fake:work=3s]"),
];

/// The operator's own question to their Claude before the daemon starts, so that the
/// conversation the swap must carry over has something in it.
const OPERATOR_PROMPT: &str = "Explain what this repository does. [fake:work=1s]";

/// The daemon's decisions worth showing as they happen: the limit and the swap, the
/// resumes, finished and failed tasks, and anything that needs the operator. They are read
/// as data from the run's trace (`ccl run --record`), not out of the log's words.
fn notable(action: &Action) -> bool {
    match action {
        Action::FinishTask { .. } | Action::FailTask { .. } => true,
        Action::Event(event) => matches!(
            event,
            Event::LimitDetected {
                decision: QuotaDecision::Swap | QuotaDecision::Exhausted,
                ..
            } | Event::SwapBegins { .. }
                | Event::SwapGivenUp { .. }
                | Event::Resuming { .. }
                | Event::TaskRestarted { .. }
                | Event::AllExhausted { .. }
                | Event::LeftAtShell { .. }
                | Event::LaunchExited { .. }
                | Event::StopTimedOut { .. }
                | Event::NeedsAttention { .. }
                | Event::AttentionCleared { .. }
        ),
        _ => false,
    }
}

/// Bytes of the run's trace read per refresh; the rest waits for the next one.
const TRACE_READ_BYTES: u64 = 8 << 20;

pub fn run(keep: bool) -> Result<bool> {
    let started = Instant::now();
    // Ctrl-C (and a SIGTERM or SIGHUP) only raises a flag: the demo then cleans up in
    // order instead of dying with the daemon and the tmux server left behind.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot install signal handlers")?;
    }
    let ccl = std::env::current_exe().context("cannot find the running ccl executable")?;
    let fake = ccl.with_file_name("ccl-fake-claude");
    if !fake.is_file() {
        bail!(
            "the demo needs the fake Claude, but {} does not exist; build it with `cargo build` \
             (or `cargo build --release` for a release ccl)",
            fake.display()
        );
    }
    crate::adapters::tmux::version().context("the demo needs tmux on PATH")?;
    // Refuse before anything is created: the clean-up kills the server on this socket,
    // and it must only ever kill the one the demo started.
    let socket = socket_name();
    if ExecTmux::new(&socket).server_running()? {
        bail!("a tmux server already runs on the socket '{socket}'; stop it with `tmux -L {socket} kill-server`");
    }

    let mut demo = Demo::create(keep)?;
    let outcome = demo.prepare(&fake).and_then(|()| {
        demo.print_intro();
        demo.start_daemon(&ccl)?;
        demo.watch(&stop, started)
    });
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            // The guard's Drop cleans up; say where things were first.
            let tail = demo.log.tail();
            if !tail.is_empty() {
                eprintln!("last lines of the daemon log:\n{tail}");
            }
            return Err(e);
        }
    };
    let report = demo.stop_daemon();
    let summary = demo.summary(&outcome, started);
    let cleaned = demo.clean_up();
    println!();
    print!("{summary}");
    for line in report.into_iter().chain(cleaned) {
        println!("{line}");
    }
    if matches!(outcome, Outcome::Interrupted) {
        return Err(crate::exit::Interrupted("demo interrupted; cleaned up".into()).into());
    }
    Ok(matches!(outcome, Outcome::Finished))
}

/// How the watched part of the run ended.
enum Outcome {
    Finished,
    TimedOut,
    Interrupted,
    DaemonExited(Option<i32>),
}

/// The demo's directory, private tmux server and daemon. Dropping it cleans up, so an
/// error or a panic half way leaves nothing running.
struct Demo {
    root: PathBuf,
    socket: String,
    keep: bool,
    config: Config,
    config_path: PathBuf,
    log: LogTail,
    /// The run's trace, where the daemon's decisions are read as they happen.
    trace: LogTail,
    daemon: Option<Child>,
    /// The account made to hit its limit, and when, once it happened.
    limited: Option<(String, Instant)>,
    events: VecDeque<String>,
    /// When the daemon decided that a swap begins, until the demo has said it is complete.
    swap_began: Option<Instant>,
    /// The swap's completion (every conversation resumed) has been told.
    swap_told: bool,
    /// The private tmux server was started by this demo (and so is its to kill).
    server_started: bool,
    cleaned: bool,
}

impl Demo {
    /// Creates the directory and writes the configuration; nothing runs yet.
    fn create(keep: bool) -> Result<Demo> {
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("ccl-demo-{pid}-{nanos:08x}"));
        fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let root = dir.canonicalize().unwrap_or(dir);
        let socket = socket_name();
        let config_path = root.join("ccl.toml");
        let layout = || -> Result<Config> {
            let accounts = ACCOUNTS.map(|a| format!("accounts/{a}"));
            let subs = ["home", "bin", "shared", "pool", "operator", "project", "state"];
            for sub in subs.iter().copied().chain(accounts.iter().map(String::as_str)) {
                let dir = root.join(sub);
                fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            fs::write(&config_path, config_text(&root, &socket))
                .with_context(|| format!("cannot write {}", config_path.display()))?;
            crate::shell::config_file::load(&config_path).context("the demo's own configuration is invalid")
        };
        let config = match layout() {
            Ok(config) => config,
            Err(e) => {
                // No guard owns the directory yet.
                let _ = fs::remove_dir_all(&root);
                return Err(e);
            }
        };
        Ok(Demo {
            log: LogTail::new(root.join("ccl.log"), LOG_READ_BYTES),
            trace: LogTail::new(root.join("ccl.trace"), TRACE_READ_BYTES),
            root,
            socket,
            keep,
            config,
            config_path,
            daemon: None,
            limited: None,
            events: VecDeque::new(),
            swap_began: None,
            swap_told: false,
            server_started: false,
            cleaned: false,
        })
    }

    /// The fleet before the daemon: links, trust, tasks, the fake Claude as `claude`, the
    /// private tmux server with the operator's session running Claude under `alpha`.
    fn prepare(&mut self, fake: &Path) -> Result<()> {
        // `#{pane_current_command}` shows the name a program was started by: through this
        // link the fake Claude shows as `claude`, as the real one does.
        std::os::unix::fs::symlink(fake, self.root.join("bin/claude")).with_context(|| {
            format!(
                "cannot link {} to {}",
                self.root.join("bin/claude").display(),
                fake.display()
            )
        })?;
        let report = links::fix(&self.config.accounts, &self.config.shared)?;
        if !report.remaining.is_empty() {
            let problems: Vec<String> = report.remaining.iter().map(|(f, _)| f.to_string()).collect();
            bail!("the demo's shared links are not in place: {}", problems.join("; "));
        }
        for account in &self.config.accounts {
            write_trust(&account.home, &self.config)?;
        }
        let q = self.config.queues[0].clone();
        init_repo(&q.project)?;
        for (hint, body) in TASKS {
            queue::enqueue(&q, body.as_bytes(), Some(hint))?;
        }

        let mut tmux = ExecTmux::new(&self.socket);
        // The first command starts the server, and the server's environment is what every
        // pane inherits: HOME inside the demo (no user profile), a plain POSIX shell, and no
        // configuration file, so the demo looks the same on every machine.
        self.server_started = true;
        let output = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                OPERATOR,
            ])
            .args(["-x", SESSION_WIDTH, "-y", SESSION_HEIGHT, "-c"])
            .arg(self.root.join("operator"))
            .env("HOME", self.root.join("home"))
            .envs(xdg_inside(&self.root.join("home")))
            .env("SHELL", "/bin/sh")
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .stdin(Stdio::null())
            .output()
            .context("cannot run tmux")?;
        if !output.status.success() {
            bail!(
                "cannot start the demo's tmux server: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        wait_for_screen(&mut tmux, OPERATOR, ScreenState::Shell, "a shell prompt")?;
        // The operator starts Claude by hand, as they would: ccl adopts it, never starts it.
        let home = self.config.accounts[0].home.clone();
        let line = format!(
            "cd {} && CLAUDE_CONFIG_DIR={} FAKE_CLAUDE_WORK_MS={DEFAULT_WORK_MS} {} --dangerously-skip-permissions",
            shell_quote(&self.root.join("operator").to_string_lossy()),
            shell_quote(&home.to_string_lossy()),
            shell_quote(&self.root.join("bin/claude").to_string_lossy()),
        );
        tmux.paste(OPERATOR, &line, false)?;
        tmux.send_keys(OPERATOR, &["Enter"])?;
        wait_for_screen(&mut tmux, OPERATOR, ScreenState::Idle, "claude's input box")?;
        tmux.paste(OPERATOR, OPERATOR_PROMPT, true)?;
        tmux.send_keys(OPERATOR, &["Enter"])?;
        Ok(())
    }

    fn print_intro(&self) {
        println!("{}", self.header());
    }

    fn header(&self) -> String {
        let s = &self.socket;
        format!(
            "ccl demo: {} tasks, accounts {} and {} (simulated), a pool of {POOL_SIZE}, one operator session\n\
             demo directory: {}\n\
             tmux socket: {s}\n\
             watch the agents:        tmux -L {s} attach -t ccl-auto-11   (Ctrl-b d detaches, Ctrl-b s lists)\n\
             the operator's session:  tmux -L {s} attach -t {OPERATOR}\n\
             daemon log: {}",
            TASKS.len(),
            ACCOUNTS[0],
            ACCOUNTS[1],
            self.root.display(),
            self.log.path.display()
        )
    }

    /// `ccl run` on the demo's configuration, as a child of this same binary.
    fn start_daemon(&mut self, ccl: &Path) -> Result<()> {
        let log =
            fs::File::create(&self.log.path).with_context(|| format!("cannot create {}", self.log.path.display()))?;
        let mut command = Command::new(ccl);
        command
            .arg("-c")
            .arg(&self.config_path)
            .arg("run")
            .arg("--record")
            .arg(&self.trace.path)
            .env("HOME", self.root.join("home"))
            .envs(xdg_inside(&self.root.join("home")))
            .env("SHELL", "/bin/sh")
            .env("RUST_LOG", "info")
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot share the log file")?)
            .stderr(log)
            // Its own process group: Ctrl-C in the terminal reaches only the demo, which
            // then stops the daemon in order (SIGTERM) as part of its clean-up.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches only the child being started.
        // Should the demo itself be killed outright, the daemon gets SIGTERM rather than
        // running on alone.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {} run", ccl.display()))?;
        self.daemon = Some(child);
        Ok(())
    }

    /// Watches the fleet until every task is done after one swap, the time bound passes,
    /// Ctrl-C, or the daemon exits by itself.
    fn watch(&mut self, stop: &AtomicBool, started: Instant) -> Result<Outcome> {
        let tty = std::io::stdout().is_terminal();
        let mut last_progress = String::new();
        let mut last_story = String::new();
        loop {
            let new_lines = self.log.read_new();
            let decisions = decisions(&self.trace.read_new());
            let view = self.view();
            if self.swap_began.is_none()
                && decisions
                    .iter()
                    .any(|(_, a)| matches!(a, Action::Event(Event::SwapBegins { .. })))
            {
                self.swap_began = Some(Instant::now());
            }
            let shown = decisions
                .iter()
                .filter(|(_, a)| notable(a))
                .map(|(t_ms, a)| format!("{} {a}", clock(*t_ms)))
                // A broken invariant is the shell's to see, so only its log says it.
                .chain(
                    new_lines
                        .iter()
                        .filter(|l| l.contains(" ERROR "))
                        .map(|l| event_line(l)),
                )
                .collect::<Vec<_>>();
            for event in shown {
                if !tty {
                    println!("  {event}");
                }
                self.push_event(event);
            }
            if self.limited.is_none() && view.done >= DONE_BEFORE_LIMIT {
                self.hit_limit(&view.active)?;
                if !tty {
                    println!("  {}", self.events.back().map(String::as_str).unwrap_or_default());
                }
            }
            // The daemon logs its swap once the relaunch lines are typed; the demo says it is
            // done only when every conversation runs again under the new account.
            if let (Some(began), false) = (self.swap_began, self.swap_told) {
                if every_conversation_resumed(&view.status) {
                    self.swap_told = true;
                    let (from, to) = view
                        .status
                        .last_swap
                        .as_ref()
                        .map(|w| (w.from.as_str(), w.to.as_str()))
                        .unwrap_or(("-", "-"));
                    let event = format!(
                        "swapped from {from} to {to} in {}s: every conversation resumed",
                        began.elapsed().as_secs()
                    );
                    if !tty {
                        println!("  {event}");
                    }
                    self.push_event(event);
                }
            }
            let story = self.story(&view);
            if tty {
                let frame = self.frame(&view, &story, started);
                print!("\x1b[H\x1b[2J{frame}");
                let _ = std::io::stdout().flush();
            } else {
                if story != last_story {
                    println!("{story}");
                    last_story = story;
                }
                let progress = view.progress();
                if progress != last_progress {
                    println!("[{:5.1}s] {progress}", started.elapsed().as_secs_f64());
                    last_progress = progress;
                }
            }

            if view.finished() {
                return Ok(Outcome::Finished);
            }
            if let Some(code) = self.daemon_exit()? {
                self.log.read_new();
                return Ok(Outcome::DaemonExited(code));
            }
            if started.elapsed() >= DEMO_TIMEOUT {
                return Ok(Outcome::TimedOut);
            }
            let next = Instant::now() + REFRESH;
            while Instant::now() < next {
                if stop.load(Ordering::Relaxed) {
                    return Ok(Outcome::Interrupted);
                }
                std::thread::sleep(SIGNAL_POLL);
            }
        }
    }

    /// The account that is active now hits its 5-hour limit: from its next answer on, the
    /// fake Claude of that account shows the limit screen and writes the 429 record.
    fn hit_limit(&mut self, account: &str) -> Result<()> {
        let reset = reset_text(jiff::Timestamp::now());
        let file = self.root.join("accounts").join(account).join("fake-limit");
        fs::write(&file, format!("five_hour {reset}\n")).with_context(|| format!("cannot write {}", file.display()))?;
        self.limited = Some((account.to_string(), Instant::now()));
        self.push_event(format!(
            "demo: account {account} hits its 5-hour limit now (resets {reset}); watch ccl swap"
        ));
        Ok(())
    }

    fn push_event(&mut self, event: String) {
        if self.events.len() == EVENTS_SHOWN {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// One line saying where the story stands.
    fn story(&self, view: &View) -> String {
        match (&self.limited, view.swaps) {
            (None, _) => format!(
                "tasks flow on account {}; its 5-hour limit comes after {DONE_BEFORE_LIMIT} are done",
                view.active
            ),
            (Some((account, _)), 0) => {
                format!("account {account} hit its limit: ccl stops its sessions and swaps accounts")
            }
            (Some(_), _) if !view.finished() => format!(
                "swapped to {}: the interrupted conversations resume, the remaining tasks finish there",
                view.active
            ),
            (Some(_), _) => "all tasks done".to_string(),
        }
    }

    fn frame(&self, view: &View, story: &str, started: Instant) -> String {
        let (width, height) = crate::status::terminal_size();
        let top = format!(
            "ccl demo · watch: tmux -L {} attach -t ccl-auto-11 · Ctrl-C stops",
            self.socket
        );
        let clock = format!(
            "[{:5.1}s/{}s] {story}",
            started.elapsed().as_secs_f64(),
            DEMO_TIMEOUT.as_secs()
        );
        let events: Vec<&str> = self.events.iter().map(String::as_str).collect();
        render_frame(&top, &clock, &view.status, &events, width, height)
    }

    /// What the daemon's saved state and the queue directories say now.
    fn view(&self) -> View {
        let st = state::load_quiet(&self.config.state_file());
        let pid = self.daemon.as_ref().map(Child::id);
        let status = crate::status::report(&self.config, st.as_ref(), pid, crate::shell::now_ms());
        let counts = queue::counts(&self.config.queues[0]).unwrap_or_default();
        View::new(status, st, counts.inbox, counts.running, counts.done, counts.failed)
    }

    fn daemon_exit(&mut self) -> Result<Option<Option<i32>>> {
        let Some(child) = self.daemon.as_mut() else {
            return Ok(Some(None));
        };
        match child.try_wait().context("cannot wait for the daemon")? {
            Some(status) => {
                self.daemon = None;
                Ok(Some(status.code()))
            }
            None => Ok(None),
        }
    }

    /// SIGTERM to the daemon and wait for it (kill it after `DAEMON_STOP_WAIT`).
    fn stop_daemon(&mut self) -> Vec<String> {
        let Some(mut child) = self.daemon.take() else {
            return Vec::new();
        };
        // SAFETY: a plain kill(2) of our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + DAEMON_STOP_WAIT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return vec!["daemon stopped (SIGTERM)".into()],
                Ok(Some(status)) => return vec![format!("daemon stopped: {status}")],
                Ok(None) if Instant::now() < deadline => std::thread::sleep(SIGNAL_POLL),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return vec![format!(
                        "the daemon did not stop within {}s of SIGTERM and was killed",
                        DAEMON_STOP_WAIT.as_secs()
                    )];
                }
            }
        }
    }

    fn summary(&mut self, outcome: &Outcome, started: Instant) -> String {
        self.log.read_new();
        let view = self.view();
        let elapsed = started.elapsed().as_secs_f64();
        let mut out = String::new();
        match outcome {
            Outcome::Finished => out.push_str(&format!("demo finished in {elapsed:.1}s\n")),
            Outcome::TimedOut => out.push_str(&format!(
                "demo timed out after {}s; what is stuck:\n{}",
                DEMO_TIMEOUT.as_secs(),
                self.stuck(&view)
            )),
            Outcome::Interrupted => out.push_str(&format!("demo interrupted after {elapsed:.1}s\n")),
            Outcome::DaemonExited(code) => out.push_str(&format!(
                "the daemon exited by itself ({}) after {elapsed:.1}s; last lines of its log:\n{}\n",
                code.map(|c| format!("exit code {c}"))
                    .unwrap_or_else(|| "killed by a signal".into()),
                self.log.tail()
            )),
        }
        out.push_str(&format!(
            "tasks done: {}/{} (failed {}, still queued {}, running {})\n",
            view.done,
            TASKS.len(),
            view.failed,
            view.inbox,
            view.running
        ));
        match &view.status.last_swap {
            None => out.push_str(&format!("swaps: {}\n", view.swaps)),
            Some(last) => out.push_str(&format!(
                "swaps: {} ({} -> {}: {})\n",
                view.swaps, last.from, last.to, last.reason
            )),
        }
        if let Some(s) = view.state.as_ref().and_then(|st| st.sessions.get(OPERATOR)) {
            out.push_str(&format!(
                "operator session {OPERATOR}: claude under {}, conversation {}\n",
                s.account.as_deref().unwrap_or("-"),
                s.conversation.as_deref().unwrap_or("-")
            ));
        }
        if view.failed > 0 {
            out.push_str(&self.failures());
        }
        out.push_str(&format!("daemon log: {}", self.log.path.display()));
        if self.keep {
            out.push_str(" (kept)\n");
        } else {
            out.push_str(" (removed with the demo directory; `ccl demo --keep` keeps it)\n");
        }
        out
    }

    /// The report of a run that did not finish in time: queue, accounts, every session,
    /// and the end of the log.
    fn stuck(&self, view: &View) -> String {
        let q = &self.config.queues[0];
        let names = |dir: &str| queue::list(q, dir).unwrap_or_default().join(", ");
        let mut out = format!(
            "  queue {QUEUE}: inbox [{}] running [{}] done {} failed {}\n",
            names("inbox"),
            names("running"),
            view.done,
            view.failed
        );
        out.push_str(&format!(
            "  active account {}, swaps {}, swap in progress: {}, limit hit by the demo: {}\n",
            view.active,
            view.swaps,
            if view.status.swap.is_none() { "no" } else { "yes" },
            match &self.limited {
                Some((account, at)) => format!("{account}, {:.0}s ago", at.elapsed().as_secs_f64()),
                None => "not yet".into(),
            }
        ));
        for s in &view.status.sessions {
            let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "  {}: screen {:?}, activity {}, account {}, task {}, attention {}\n",
                s.name,
                s.state,
                s.activity,
                or_dash(&s.account),
                or_dash(&s.task),
                or_dash(&s.attention)
            ));
        }
        out.push_str(&format!("  last lines of the daemon log:\n{}\n", self.log.tail()));
        out
    }

    /// Why each failed task failed (its `.error` sidecar).
    fn failures(&self) -> String {
        let q = &self.config.queues[0];
        let mut out = String::new();
        for name in queue::list(q, "failed").unwrap_or_default() {
            let why = fs::read_to_string(q.dir("failed").join(format!("{name}.error"))).unwrap_or_default();
            out.push_str(&format!("  failed: {name}: {}\n", why.trim()));
        }
        out
    }

    /// Kills the private tmux server and removes the directory, unless `--keep`.
    fn clean_up(&mut self) -> Vec<String> {
        self.cleaned = true;
        let mut notes = self.stop_daemon();
        if self.keep {
            notes.push(format!(
                "kept: tmux server '{s}' (its sessions still run) and {dir}\n\
                 start the daemon again:  HOME={home} {exe} -c {config} run\n\
                 clean up afterwards:     tmux -L {s} kill-server; rm -rf {dir}",
                s = self.socket,
                dir = shell_quote(&self.root.to_string_lossy()),
                home = shell_quote(&self.root.join("home").to_string_lossy()),
                exe = std::env::current_exe()
                    .map(|p| shell_quote(&p.to_string_lossy()))
                    .unwrap_or_else(|_| "ccl".into()),
                config = shell_quote(&self.config_path.to_string_lossy()),
            ));
            return notes;
        }
        if self.server_started {
            match ExecTmux::new(&self.socket).kill_server() {
                Ok(()) => notes.push(format!("tmux server '{}' killed", self.socket)),
                Err(e) => notes.push(format!("cannot kill the tmux server '{}': {e:#}", self.socket)),
            }
            // tmux leaves its socket file behind when the server is killed.
            let socket_path = socket_path(&self.socket);
            if fs::symlink_metadata(&socket_path).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = fs::remove_file(&socket_path);
            }
        }
        match fs::remove_dir_all(&self.root) {
            Ok(()) => notes.push(format!("removed {}", self.root.display())),
            Err(e) => notes.push(format!("cannot remove {}: {e}", self.root.display())),
        }
        notes
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if !self.cleaned {
            for note in self.clean_up() {
                eprintln!("ccl demo: {note}");
            }
        }
    }
}

/// One look at the fleet.
struct View {
    status: Report,
    state: Option<State>,
    active: String,
    swaps: u64,
    inbox: usize,
    running: usize,
    done: usize,
    failed: usize,
}

impl View {
    fn new(status: Report, state: Option<State>, inbox: usize, running: usize, done: usize, failed: usize) -> View {
        View {
            active: status.active.clone(),
            swaps: u64::from(status.swaps),
            status,
            state,
            inbox,
            running,
            done,
            failed,
        }
    }

    /// Every task filed, after a completed swap, with the operator's conversation carried
    /// over to the new account.
    fn finished(&self) -> bool {
        let operator_moved = self
            .state
            .as_ref()
            .and_then(|st| st.sessions.get(OPERATOR))
            .is_some_and(|s| {
                s.account.as_deref() == Some(self.active.as_str()) && s.seen == ccl_core::core::Seen::Idle
            });
        self.done + self.failed == TASKS.len()
            && self.inbox == 0
            && self.running == 0
            && self.swaps >= 1
            && self.status.swap.is_none()
            && operator_moved
    }

    fn progress(&self) -> String {
        format!(
            "active {}  inbox {}  running {}  done {}  failed {}  swaps {}",
            self.active, self.inbox, self.running, self.done, self.failed, self.swaps
        )
    }
}

/// A file the daemon appends lines to (its log, the run's trace), read as it grows.
struct LogTail {
    path: PathBuf,
    /// Bytes read per call at most.
    chunk: u64,
    offset: u64,
    partial: String,
    last: VecDeque<String>,
}

impl LogTail {
    fn new(path: PathBuf, chunk: u64) -> LogTail {
        LogTail {
            path,
            chunk,
            offset: 0,
            partial: String::new(),
            last: VecDeque::new(),
        }
    }

    /// Complete lines written since the last call.
    fn read_new(&mut self) -> Vec<String> {
        let Ok(mut file) = fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        let Ok(n) = file.take(self.chunk).read_to_end(&mut bytes) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut lines = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            let line = line.trim_end().to_string();
            if self.last.len() == LOG_LINES_KEPT {
                self.last.pop_front();
            }
            self.last.push_back(line.clone());
            lines.push(line);
        }
        lines
    }

    /// The last lines read, indented.
    fn tail(&self) -> String {
        self.last
            .iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The actions of the trace lines read, each with its turn's time; the header and reload
/// lines have none, and a line that does not parse is passed over.
fn decisions(lines: &[String]) -> Vec<(i64, Action)> {
    #[derive(serde::Deserialize)]
    struct TurnActions {
        #[serde(default)]
        t: i64,
        #[serde(default)]
        actions: Vec<Action>,
    }
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<TurnActions>(l).ok())
        .flat_map(|turn| turn.actions.into_iter().map(move |a| (turn.t, a)))
        .collect()
}

/// A turn's time as the log shows it (UTC): `10:11:12`.
fn clock(t_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(t_ms)
        .map(|t| t.strftime("%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `[2026-01-02T10:11:12.345Z WARN  ccl::executor] message` → `10:11:12 message`.
fn event_line(line: &str) -> String {
    let Some(rest) = line.strip_prefix('[') else {
        return line.to_string();
    };
    let Some((prefix, message)) = rest.split_once("] ") else {
        return line.to_string();
    };
    let time = prefix
        .split_whitespace()
        .next()
        .and_then(|stamp| stamp.split_once('T'))
        .map(|(_, t)| t.chars().take(8).collect::<String>())
        .unwrap_or_default();
    format!("{time} {message}")
}

/// No swap in progress, and every session holding a conversation runs Claude (idle or
/// busy) under the active account, past its launch.
fn every_conversation_resumed(status: &Report) -> bool {
    status.swap.is_none()
        && status.last_swap.is_some()
        && status.sessions.iter().filter(|s| s.conversation.is_some()).all(|s| {
            s.account.as_deref() == Some(status.active.as_str())
                && matches!(s.state, Seen::Idle | Seen::Busy)
                && !matches!(s.activity.as_str(), "launching" | "stopping")
        })
}

/// One screen of the demo, no wider than `width` and no taller than `height` (80×24 at
/// least fits): a top line, the clock and story, the status tables, and as many of the
/// latest events as there is room for, each cut with `…`.
pub fn render_frame(top: &str, clock: &str, status: &Report, events: &[&str], width: usize, height: usize) -> String {
    let cut = |s: &str| -> String {
        if s.chars().count() <= width {
            s.to_string()
        } else {
            let mut c: String = s.chars().take(width.saturating_sub(1)).collect();
            c.push('…');
            c
        }
    };
    let mut lines = vec![cut(top), cut(clock)];
    lines.extend(crate::status::render_status(status, width).lines().map(&cut));
    // The status tables put a blank line before each; the first is not needed here.
    if lines.get(2).is_some_and(|l| l.starts_with("daemon:")) {
        lines.remove(2);
    }
    let room = height.saturating_sub(lines.len() + 1).max(1);
    let shown: Vec<&&str> = events.iter().rev().take(room).collect();
    lines.push(cut(&format!("events ({} of {}):", shown.len(), events.len())));
    if events.is_empty() {
        lines.push("  (none yet)".into());
    }
    for e in shown.into_iter().rev() {
        lines.push(cut(&format!("  {e}")));
    }
    lines.truncate(height);
    lines.join("\n") + "\n"
}

/// A reset time five hours from `now` as the limit banner writes it: `2:15pm (UTC)`.
fn reset_text(now: jiff::Timestamp) -> String {
    let at = now
        .checked_add(jiff::SignedDuration::from_hours(5))
        .unwrap_or(now)
        .to_zoned(jiff::tz::TimeZone::UTC);
    let (hour, minute) = (at.hour(), at.minute());
    let (h12, half) = match hour {
        0 => (12, "am"),
        1..=11 => (hour, "am"),
        12 => (12, "pm"),
        _ => (hour - 12, "pm"),
    };
    format!("{h12}:{minute:02}{half} (UTC)")
}

/// Polls the session's screen until it shows `want`, within [`SCREEN_WAIT`].
fn wait_for_screen(tmux: &mut ExecTmux, session: &str, want: ScreenState, what: &str) -> Result<()> {
    let deadline = Instant::now() + SCREEN_WAIT;
    loop {
        let capture = tmux.capture(session)?;
        let now = jiff::Timestamp::now();
        if screen::analyze(&capture, now, &jiff::tz::TimeZone::UTC).state == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{session} did not show {what} within {}s; its screen:\n{capture}",
                SCREEN_WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Marks the demo's directories trusted and onboarding done in an account's
/// `.claude.json`, as a real login would have, so `ccl check` on a kept demo is clean.
fn write_trust(home: &Path, config: &Config) -> Result<()> {
    let mut projects = serde_json::Map::new();
    let dirs = std::iter::once(&config.pool.workdir)
        .chain(config.dedicated.iter().map(|d| &d.workdir))
        .chain(config.queues.iter().map(|q| &q.project));
    for dir in dirs {
        projects.insert(
            dir.to_string_lossy().into_owned(),
            serde_json::json!({"hasTrustDialogAccepted": true}),
        );
    }
    let body = serde_json::json!({
        "hasCompletedOnboarding": true,
        "bypassPermissionsModeAccepted": true,
        "projects": projects,
    });
    let path = home.join(".claude.json");
    fs::write(&path, serde_json::to_vec_pretty(&body)?).with_context(|| format!("cannot write {}", path.display()))
}

/// The XDG base directories inside `home`: with `HOME`, the demo's panes and daemon
/// write nothing (shell history, caches, Claude's files) into the user's own home.
fn xdg_inside(home: &Path) -> [(&'static str, PathBuf); 4] {
    [
        ("XDG_CONFIG_HOME", home.join(".config")),
        ("XDG_DATA_HOME", home.join(".local/share")),
        ("XDG_STATE_HOME", home.join(".local/state")),
        ("XDG_CACHE_HOME", home.join(".cache")),
    ]
}

/// The demo's private tmux socket: `tmux -L ccl-demo-<pid>`.
fn socket_name() -> String {
    format!("ccl-demo-{}", std::process::id())
}

/// Where tmux keeps the socket of `tmux -L NAME`: `$TMUX_TMPDIR/tmux-UID/NAME`.
fn socket_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("TMUX_TMPDIR")
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/tmp".into());
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    Path::new(&dir).join(format!("tmux-{uid}")).join(name)
}

/// The demo's `ccl.toml`: everything inside `root`, tmux on the private `socket`.
fn config_text(root: &Path, socket: &str) -> String {
    let path = |p: &str| toml_string(&root.join(p).to_string_lossy());
    let mut t = String::new();
    t.push_str("# Written by `ccl demo`: a fleet on a private tmux server with simulated accounts.\n");
    t.push_str(&format!(
        "[daemon]\ntick = \"500ms\"\nstate_dir = {}\n\n",
        path("state")
    ));
    t.push_str(&format!("[tmux]\nsocket = {}\n\n", toml_string(socket)));
    t.push_str(&format!(
        "[claude]\ncommand = {}\nargs = [\"--dangerously-skip-permissions\"]\nenv = {{ FAKE_CLAUDE_WORK_MS = \"{DEFAULT_WORK_MS}\" }}\n\n",
        path("bin/claude")
    ));
    for a in ACCOUNTS {
        t.push_str(&format!(
            "[[account]]\nname = \"{a}\"\nhome = {}\n\n",
            path(&format!("accounts/{a}"))
        ));
    }
    t.push_str(&format!("[shared]\ntarget = {}\n\n", path("shared")));
    t.push_str(&format!(
        "[pool]\nprefix = \"ccl-auto-\"\nstart_index = 11\nmin = {POOL_SIZE}\nmax = {POOL_SIZE}\nworkdir = {}\n\n",
        path("pool")
    ));
    t.push_str(&format!(
        "[[dedicated]]\nname = \"{OPERATOR}\"\nworkdir = {}\n\n",
        path("operator")
    ));
    // Each task in a git worktree of its own, so the pool works on the project in parallel.
    t.push_str(&format!(
        "[[queue]]\nname = \"{QUEUE}\"\nproject = {}\nisolation = \"worktree\"\n\n",
        path("project")
    ));
    t.push_str("[dispatch]\nsubmit_delay = \"200ms\"\n");
    t
}

/// Makes the demo's project a git repository with one commit, for its task worktrees.
fn init_repo(project: &Path) -> Result<()> {
    std::fs::create_dir_all(project).with_context(|| format!("cannot create {}", project.display()))?;
    std::fs::write(project.join("README.md"), "A project for the ccl demo.\n")
        .with_context(|| format!("cannot write {}", project.join("README.md").display()))?;
    for args in [
        &["init", "-q"][..],
        &["add", "README.md"],
        &[
            "-c",
            "user.name=ccl demo",
            "-c",
            "user.email=demo@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "the demo project",
        ],
    ] {
        let out = Command::new("git")
            .arg("-C")
            .arg(project)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("the demo needs git for its task worktrees")?;
        if !out.status.success() {
            bail!(
                "git {} failed in {}: {}",
                args.join(" "),
                project.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// A TOML basic string (paths may hold quotes or backslashes).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_fits_80_by_24_and_shows_the_latest_events() {
        let status: Report = serde_json::from_value(serde_json::json!({
            "daemon": {"running": true, "pid": 1},
            "at": "2026-11-24T09:15:00Z",
            "active": "beta",
            "accounts": [{"name": "alpha", "home": "/tmp/ccl-demo-123/accounts/alpha", "active": false, "exhausted_until": "2026-11-24T14:00:00Z"},
                         {"name": "beta", "home": "/tmp/ccl-demo-123/accounts/beta", "active": true}],
            "sessions": (11..14).map(|i| serde_json::json!({"name": format!("ccl-auto-{i}"), "kind": "pool", "state": "busy",
                "activity": "working", "account": "beta", "conversation": "0b1c2d3e-0000-4000-8000-000000000001",
                "task": "demo/20261124-091500-08-release-notes.md", "attention": null}))
                .chain(std::iter::once(serde_json::json!({"name": "ccl-1-operator", "kind": "dedicated", "state": "idle",
                "activity": "-", "account": "beta", "conversation": "0b1c2d3e-0000-4000-8000-000000000002", "task": null, "attention": null})))
                .collect::<Vec<_>>(),
            "queues": [{"name": "demo", "inbox": 2, "running": 3, "done": 3, "failed": 0, "paused": false}],
        }))
        .unwrap();
        let events: Vec<String> = (0..10)
            .map(|i| format!("09:15:{i:02} quota: session=ccl-auto-11 account=alpha source=transcript pattern=hit_five_hour kind=FiveHour decision=swap {i}"))
            .collect();
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        let frame = render_frame(
            "ccl demo · watch: tmux -L ccl-demo-123 attach -t ccl-auto-11",
            "[ 12.3s/120s] swapped to beta",
            &status,
            &events,
            80,
            24,
        );
        let lines: Vec<&str> = frame.lines().collect();
        assert!(lines.len() <= 24, "{} lines:\n{frame}", lines.len());
        assert!(lines.iter().all(|l| l.chars().count() <= 80), "{frame}");
        assert!(
            lines.last().unwrap().starts_with("  09:15:09 quota"),
            "the latest event is shown:\n{frame}"
        );
        assert!(frame.contains("ccl-1-operator"), "{frame}");
    }

    #[test]
    fn the_runs_decisions_are_read_from_its_trace_and_the_notable_ones_shown() {
        let begins = Action::Event(Event::SwapBegins {
            from: "alpha".into(),
            to: "beta".into(),
            reason: "usage limit of alpha".into(),
            members: vec!["ccl-1-operator".into()],
            at_boundaries: false,
        });
        let routine = Action::Event(Event::Submitted {
            session: "ccl-auto-11".into(),
            continue_prompt: false,
            hook: true,
        });
        let turn =
            serde_json::json!({"turn": 7, "t": 1_767_348_672_000_i64, "observation": {}, "actions": [begins, routine]});
        let lines = vec![
            r#"{"format": "ccl-trace", "version": 2}"#.to_string(),
            turn.to_string(),
            r#"{"turn": 8, "reload": {}}"#.to_string(),
            "{\"turn\": 9, \"t\": ".to_string(),
        ];
        let read = decisions(&lines);
        assert_eq!(
            read,
            vec![
                (1_767_348_672_000, begins.clone()),
                (1_767_348_672_000, routine.clone())
            ]
        );
        let shown: Vec<String> = read
            .iter()
            .filter(|(_, a)| notable(a))
            .map(|(t, a)| format!("{} {a}", clock(*t)))
            .collect();
        assert_eq!(
            shown,
            ["10:11:12 swap from alpha to beta begins: usage limit of alpha; sessions to move: ccl-1-operator"]
        );
    }

    #[test]
    fn log_lines_become_short_events() {
        assert_eq!(
            event_line("[2026-01-02T10:11:12.345Z WARN  ccl::executor] swapped from alpha to beta in 3s"),
            "10:11:12 swapped from alpha to beta in 3s"
        );
        assert_eq!(event_line("plain line"), "plain line");
    }

    #[test]
    fn reset_times_read_like_the_banner() {
        let t: jiff::Timestamp = "2026-01-02T09:07:00Z".parse().unwrap();
        assert_eq!(reset_text(t), "2:07pm (UTC)");
        let t: jiff::Timestamp = "2026-01-02T19:30:00Z".parse().unwrap();
        assert_eq!(reset_text(t), "12:30am (UTC)");
        // The daemon must read it back as a reset time in the future.
        let now: jiff::Timestamp = "2026-01-02T09:07:00Z".parse().unwrap();
        let screen = format!("  ⎿  You've hit your 5-hour limit · resets {}", reset_text(now));
        let a = screen::analyze(&screen, now, &jiff::tz::TimeZone::UTC);
        let reset = a.quota.and_then(|q| q.reset_at).expect("a parsed reset time");
        assert_eq!(reset, "2026-01-02T14:07:00Z".parse::<jiff::Timestamp>().unwrap());
    }

    #[test]
    fn the_demo_configuration_is_valid_and_private() {
        let root = Path::new("/tmp/ccl-demo-x");
        let text = config_text(root, "ccl-demo-1");
        let demo_config = Config::parse(&text, &root.join("ccl.toml"), Some(Path::new("/nonexistent"))).unwrap();
        assert_eq!(demo_config.tmux.socket, "ccl-demo-1");
        assert!(demo_config.accounts.iter().all(|a| a.home.starts_with(root)));
        assert!(demo_config.shared.target.starts_with(root));
        assert_eq!(demo_config.pool.names().next().as_deref(), Some("ccl-auto-11"));
        assert!(demo_config.is_managed(OPERATOR));
        assert_eq!(demo_config.daemon.tick.0, 500);
    }
}
