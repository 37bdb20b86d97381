//! The command line: clap definitions and one function per subcommand. Each returns
//! `Ok(true)` (exit 0), `Ok(false)` (ran and found problems: exit 1) or an error (exit 1,
//! or 2 when it is a [`UsageError`]: bad usage or an unreadable configuration).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::{daemon, links, queue, state, trace};
use ccl_core::config::{self, Config};
use ccl_core::core::{Activity, RequestKind, State};
use ccl_core::{screen, util};

#[derive(Parser, Debug)]
#[command(
    name = "ccl",
    version,
    about = "Keeps a fleet of Claude Code sessions in tmux working across several accounts"
)]
pub struct Cli {
    /// Configuration file; without it $CCL_CONFIG, else ./ccl.toml, else
    /// $XDG_CONFIG_HOME/ccl/ccl.toml (~/.config/ccl/ccl.toml)
    #[arg(short, long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon in the foreground until SIGINT/SIGTERM
    #[command(
        after_help = "Examples:\n  ccl run\n  ccl run --record /tmp/ccl.trace   # then: ccl replay --verbose /tmp/ccl.trace\n  tmux new -d -s ccl 'ccl run'"
    )]
    Run {
        /// Write a replayable trace (JSON Lines, one line per turn) to FILE
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
    },
    /// Check the configuration, every account's shared links, tmux, the claude command and
    /// every queue's project; prints every problem, not just the first
    #[command(after_help = "Examples:\n  ccl check\n  ccl -c ~/ccl-test.toml check")]
    Check,
    /// Show each account's shared links; --fix creates what is missing (never rewrites)
    #[command(
        after_help = "Examples:\n  ccl links          # what is linked, missing or divergent\n  ccl links --fix    # create what is safe; prints commands for the rest"
    )]
    Links {
        /// Create missing links and target directories; never rewrites a divergent link
        /// and never moves data
        #[arg(long)]
        fix: bool,
    },
    /// Accounts, sessions and queues
    #[command(
        after_help = "Examples:\n  ccl status\n  ccl status --watch\n  ccl status --json | jq '.sessions[] | select(.task != null)'"
    )]
    Status {
        /// Print JSON instead of tables (stable: fields are only ever added)
        #[arg(long)]
        json: bool,
        /// Redraw every tick until interrupted
        #[arg(long)]
        watch: bool,
    },
    /// Write a task (FILE or stdin) atomically into QUEUE's inbox; prints its name
    #[command(
        after_help = "Examples:\n  ccl enqueue filesecure fix-login.md\n  echo 'Add a --dry-run flag to the sync command' | ccl enqueue filesecure -"
    )]
    Enqueue {
        /// The queue's name, as in its [[queue]] entry
        queue: String,
        /// The task file (its text is the prompt); '-' or nothing reads standard input
        file: Option<PathBuf>,
    },
    /// One task's record: state, session, account, attempts, times, result, conversation,
    /// transcript, and why it failed
    #[command(
        after_help = "Examples:\n  ccl show filesecure 20261124-091500-fix-login.md\n  ccl show filesecure ~/src/filesecure/.agent-queue/failed/20261124-091500-fix-login.md"
    )]
    Show {
        /// The queue's name, as in its [[queue]] entry
        queue: String,
        /// The task's file name (as `ccl enqueue` printed it), or a path to it
        task: String,
    },
    /// Put a failed task back in the inbox; its old .error is kept as history
    #[command(after_help = "Examples:\n  ccl retry filesecure 20261124-091500-fix-login.md")]
    Retry {
        /// The queue's name, as in its [[queue]] entry
        queue: String,
        /// The failed task's file name, or a path to it
        task: String,
    },
    /// Ask the running daemon to swap accounts now
    #[command(after_help = "Examples:\n  ccl swap            # to the next available account\n  ccl swap --to second")]
    Swap {
        /// The account to swap to (default: the next available one in failover order)
        #[arg(long, value_name = "ACCOUNT")]
        to: Option<String>,
    },
    /// Classify one pane capture (FILE or stdin) and print JSON
    #[command(
        after_help = "Examples:\n  tmux capture-pane -p -t =ccl-auto-11: | ccl classify\n  ccl classify --now 2026-11-24T08:00:00Z --tz Europe/Berlin screen.txt"
    )]
    Classify {
        /// A pane capture (plain text); nothing reads standard input
        file: Option<PathBuf>,
        /// Evaluate reset times as of this instant (RFC 3339; default now)
        #[arg(long)]
        now: Option<String>,
        /// Time zone for reset times without one (default: the host's)
        #[arg(long)]
        tz: Option<String>,
    },
    /// Re-run the decision core over a recorded trace and compare actions
    #[command(after_help = "Examples:\n  ccl replay /tmp/ccl.trace\n  ccl replay --verbose /tmp/ccl.trace | less")]
    Replay {
        /// A trace written by `ccl run --record FILE`
        trace: PathBuf,
        /// Print every turn and each of its decisions (actions), not only the verdict
        #[arg(long, short)]
        verbose: bool,
    },
    /// Stop dispatching from one queue (or all); running tasks finish
    #[command(after_help = "Examples:\n  ccl pause filesecure\n  ccl pause            # every queue")]
    Pause {
        /// The queue to pause (default: all)
        queue: Option<String>,
    },
    /// Restart dispatching from one queue (or all)
    #[command(after_help = "Examples:\n  ccl resume filesecure\n  ccl resume           # every queue")]
    Resume {
        /// The queue to resume (default: all)
        queue: Option<String>,
    },
    /// Write a commented starter configuration to ~/.config/ccl/ccl.toml (never overwrites),
    /// with an [[account]] for each Claude home found (~/.claude, ~/.claude-*)
    #[command(
        after_help = "Examples:\n  ccl init && ccl links --fix && ccl check\n  XDG_CONFIG_HOME=/tmp/cfg ccl init"
    )]
    Init,
    /// Take an account out of rotation by hand, or back in (persisted)
    #[command(
        after_help = "Examples:\n  ccl account disable work   # never a swap target; the fleet leaves it if active\n  ccl account enable work    # back in rotation, also after its login was fixed"
    )]
    Account {
        #[command(subcommand)]
        action: AccountAction,
    },
    /// The task worktrees of isolated queues with their state; `prune` removes the clean, merged ones
    #[command(
        after_help = "Examples:\n  ccl worktrees\n  git -C ~/src/app log --oneline main..ccl/fix-login   # review a task's branch\n  ccl worktrees prune   # remove clean, merged ones; says why it kept the others"
    )]
    Worktrees {
        #[command(subcommand)]
        action: Option<WorktreesAction>,
    },
    /// A self-contained demonstration on a private tmux server; needs no Claude account
    #[command(
        after_help = "Examples:\n  ccl demo\n  ccl demo --keep     # keep its directory and tmux server to look around"
    )]
    Demo {
        /// Keep the demo's directory and tmux server for inspection
        #[arg(long)]
        keep: bool,
    },
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  ccl completions bash > ~/.local/share/bash-completion/completions/ccl\n  ccl completions zsh > ~/.zfunc/_ccl\n  ccl completions fish > ~/.config/fish/completions/ccl.fish"
    )]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    #[command(after_help = "Examples:\n  ccl man | man -l -\n  ccl man > ~/.local/share/man/man1/ccl.1")]
    Man,
    /// What Claude's hooks and status line run (from ccl's --settings): spools the report
    /// on stdin for the daemon; `status` also prints the status line. Always exits 0.
    #[command(
        hide = true,
        after_help = "Examples:\n  echo '{\"session_id\":\"…\"}' | ccl signal --dir ~/.local/state/ccl/signals --account main Stop"
    )]
    Signal {
        /// The spool directory (state_dir/signals)
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The account the settings file was written for (shown in ccl's status line)
        #[arg(long)]
        account: Option<String>,
        /// SessionStart, UserPromptSubmit, Stop, StopFailure, Notification or status
        event: String,
    },
}

/// The command was interrupted (SIGINT/SIGTERM): exit code 130, as a shell reports it.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

#[derive(Subcommand, Debug)]
pub enum AccountAction {
    /// Back into rotation (also clears an unhealthy mark: the login was fixed)
    Enable {
        /// The account's name in ccl.toml
        name: String,
    },
    /// Out of rotation: never a swap target; the fleet moves off it if it is active
    Disable {
        /// The account's name in ccl.toml
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum WorktreesAction {
    /// Remove every worktree that is clean, merged and unused (and its branch); say why each other one is kept
    Prune,
}

/// An error that maps to exit code 2.
#[derive(Debug)]
pub struct UsageError(pub anyhow::Error);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UsageError {}

fn load(path: &Path, origin: &config::Origin) -> Result<Config> {
    crate::config_file::load_from(path, origin).map_err(|e| UsageError(e).into())
}

pub fn run(cli: Cli) -> Result<bool> {
    let searched = crate::config_file::searched_from_env();
    let found = || -> Result<(PathBuf, config::Origin)> {
        crate::config_file::discover(cli.config.as_deref(), &searched).map_err(|e| UsageError(e).into())
    };
    let config = || -> Result<Config> {
        let (path, origin) = found()?;
        load(&path, &origin)
    };
    match cli.command {
        Command::Run { record } => {
            let (path, origin) = found()?;
            load(&path, &origin)?;
            daemon::run(&path, record).map(|()| true)
        }
        Command::Check => check(&config()?),
        Command::Links { fix } => links::cmd_links(&config()?, fix, &mut std::io::stdout()),
        Command::Status { json, watch } => status(&config()?, json, watch),
        Command::Enqueue { queue, file } => enqueue(&config()?, &queue, file.as_deref()),
        Command::Swap { to } => request(&config()?, RequestKind::Swap { to }),
        Command::Show { queue, task } => {
            let c = config()?;
            let q = queue_named(&c, &queue)?;
            print!("{}", crate::tasks::show(&c, q, &task)?);
            Ok(true)
        }
        Command::Retry { queue, task } => {
            let c = config()?;
            let q = queue_named(&c, &queue)?;
            println!("{}", crate::tasks::retry(q, &task)?);
            Ok(true)
        }
        Command::Classify { file, now, tz } => {
            // The configuration's extra wordings apply when there is one to read.
            let extra = match found() {
                Ok((path, origin)) => {
                    let c = load(&path, &origin)?;
                    screen::Extra::compile(
                        &c.screen.extra_limit,
                        &c.screen.extra_server_error,
                        &c.screen.extra_warning,
                    )
                    .unwrap_or_default()
                }
                Err(_) => screen::Extra::default(),
            };
            classify(file.as_deref(), now.as_deref(), tz.as_deref(), &extra)
        }
        Command::Replay { trace, verbose } => replay(&trace, verbose),
        Command::Pause { queue } => request(&config()?, RequestKind::Pause { queue }),
        Command::Resume { queue } => request(&config()?, RequestKind::Resume { queue }),
        Command::Init => {
            let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
            crate::init::run(&searched, home.as_deref())
        }
        Command::Account { action } => {
            let (account, enable) = match action {
                AccountAction::Enable { name } => (name, true),
                AccountAction::Disable { name } => (name, false),
            };
            request(&config()?, RequestKind::Account { account, enable })
        }
        Command::Worktrees { action } => {
            let config = config()?;
            let st = state::load_quiet(&config.state_file());
            let mut out = std::io::stdout();
            match action {
                None => crate::worktree::cmd_list(&config, st.as_ref(), &mut out),
                Some(WorktreesAction::Prune) => crate::worktree::cmd_prune(&config, st.as_ref(), &mut out),
            }
        }
        Command::Demo { keep } => crate::demo::run(keep),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "ccl", &mut std::io::stdout());
            Ok(true)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .context("cannot write the man page")?;
            Ok(true)
        }
        Command::Signal { dir, account, event } => {
            crate::signals::cmd_signal(&dir, account.as_deref(), &event);
            Ok(true)
        }
    }
}

fn check(config: &Config) -> Result<bool> {
    let mut problems: Vec<String> = Vec::new();
    println!("config: {} ok", config.source.display());
    let findings = links::validate_all(&config.accounts, &config.shared);
    for f in links::problems(&findings) {
        problems.push(format!("link: {f}"));
    }
    match crate::tmux::version().and_then(|v| crate::tmux::check_version(&v).map(|()| v)) {
        Ok(v) => println!("tmux: {v}"),
        Err(e) => problems.push(format!("tmux: {e:#}")),
    }
    match resolve_command(&config.claude.command) {
        Ok(p) => println!("claude: {}", p.display()),
        Err(e) => problems.push(format!("claude: {e:#}")),
    }
    for q in &config.queues {
        if let Err(e) = queue::check_project(q) {
            problems.push(format!("{e:#}"));
        }
    }
    for q in &config.queues {
        problems.extend(queue::check_dirs(q));
    }
    for w in crate::trust::warnings(config) {
        println!("warning: {w}");
    }
    if problems.is_empty() {
        println!(
            "links: every account shares {} with {}",
            config.shared.links.join(", "),
            config.shared.target.display()
        );
        println!("all checks passed");
        Ok(true)
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        println!(
            "{} problem{} found",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        Ok(false)
    }
}

/// `command` as the shell would find it: a path when it contains '/', else on PATH.
pub fn resolve_command(command: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.is_file()
            && p.metadata()
                .map(|m| m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
    };
    if command.contains('/') {
        let p = PathBuf::from(command);
        anyhow::ensure!(executable(&p), "{command} does not exist or is not executable");
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(command))
        .find(|p| executable(p))
        .with_context(|| format!("command '{command}' not found on PATH"))
}

/// The bytes of `file`, or of standard input when it is absent or `-`.
fn read_input(file: Option<&Path>) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    match file.filter(|f| *f != Path::new("-")) {
        Some(f) => {
            body = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut body)
                .context("cannot read standard input")?;
        }
    }
    Ok(body)
}

/// The queue called `name`, or a usage error naming the configuration.
fn queue_named<'a>(config: &'a Config, name: &str) -> Result<&'a config::Queue> {
    config.queue(name).ok_or_else(|| {
        UsageError(anyhow::anyhow!(
            "no queue named '{name}' in {}",
            config.source.display()
        ))
        .into()
    })
}

fn enqueue(config: &Config, name: &str, file: Option<&Path>) -> Result<bool> {
    let q = config.queue(name).ok_or_else(|| {
        UsageError(anyhow::anyhow!(
            "no queue named '{name}' in {}",
            config.source.display()
        ))
    })?;
    let body = read_input(file)?;
    let hint = file
        .filter(|f| *f != Path::new("-"))
        .and_then(|f| f.file_name())
        .and_then(|n| n.to_str());
    match queue::enqueue(q, &body, hint) {
        Ok(task) => {
            println!("{task}");
            Ok(true)
        }
        Err(e) => {
            eprintln!("ccl: task refused: {e:#}");
            Ok(false)
        }
    }
}

/// `swap`, `pause`, `resume`: a request file for the running daemon. Pause and resume
/// also work without a daemon (they edit the saved state, so they survive a restart).
fn request(config: &Config, kind: RequestKind) -> Result<bool> {
    let dir = &config.daemon.state_dir;
    if let RequestKind::Pause { queue: Some(q) } | RequestKind::Resume { queue: Some(q) } = &kind {
        if config.queue(q).is_none() {
            return Err(UsageError(anyhow::anyhow!("no queue named '{q}' in {}", config.source.display())).into());
        }
    }
    if let RequestKind::Account { account, .. } = &kind {
        if config.account(account).is_none() {
            return Err(UsageError(anyhow::anyhow!(
                "no account named '{account}' in {}",
                config.source.display()
            ))
            .into());
        }
    }
    if state::daemon_pid(dir).is_none() {
        let pause = matches!(kind, RequestKind::Pause { .. });
        return match kind {
            RequestKind::Swap { .. } => {
                println!("no ccl daemon is running on {}; nothing to swap", dir.display());
                Ok(false)
            }
            RequestKind::Pause { queue } | RequestKind::Resume { queue } => pause_offline(config, queue, pause),
            RequestKind::Account { account, enable } => account_offline(config, &account, enable),
        };
    }
    let id = state::write_request(dir, kind)?;
    match state::wait_reply(dir, &id, Duration::from_secs(30)) {
        Some(reply) => {
            println!("{}", reply.message);
            Ok(reply.ok)
        }
        None => {
            println!("the daemon did not answer within 30s (request {id} stays queued)");
            Ok(false)
        }
    }
}

/// Pause/resume with no daemon running: edit the saved state, which the next start reads.
fn pause_offline(config: &Config, queue: Option<String>, pause: bool) -> Result<bool> {
    let path = config.state_file();
    let mut st = state::load_quiet(&path).unwrap_or_else(|| State::fresh(config, daemon::now_ms() as u64));
    let what = queue
        .as_ref()
        .map_or("all queues".to_string(), |q| format!("queue {q}"));
    if pause {
        st.paused.pause(queue.as_deref());
    } else {
        st.paused.resume(queue.as_deref());
    }
    std::fs::create_dir_all(&config.daemon.state_dir)
        .with_context(|| format!("cannot create {}", config.daemon.state_dir.display()))?;
    state::save(&path, &st)?;
    println!(
        "{what} {} (no daemon running; saved for its next start)",
        if pause { "paused" } else { "resumed" }
    );
    Ok(true)
}

/// Account enable/disable with no daemon running: edit the saved state, which the next
/// start reads (a disabled active account is left at that start).
fn account_offline(config: &Config, account: &str, enable: bool) -> Result<bool> {
    let path = config.state_file();
    let mut st = state::load_quiet(&path).unwrap_or_else(|| State::fresh(config, daemon::now_ms() as u64));
    st.align(config);
    let acc = st.accounts.entry(account.to_string()).or_default();
    let message = if enable {
        let was = acc.unhealthy.take();
        acc.disabled = false;
        match was {
            Some(why) => format!("account {account} enabled (was unhealthy: {why})"),
            None => format!("account {account} enabled"),
        }
    } else {
        acc.disabled = true;
        format!("account {account} disabled: never a swap target until enabled")
    };
    std::fs::create_dir_all(&config.daemon.state_dir)
        .with_context(|| format!("cannot create {}", config.daemon.state_dir.display()))?;
    state::save(&path, &st)?;
    println!("{message} (no daemon running; saved for its next start)");
    Ok(true)
}

fn classify(file: Option<&Path>, now: Option<&str>, tz: Option<&str>, extra: &screen::Extra) -> Result<bool> {
    let body = read_input(file)?;
    let text = String::from_utf8_lossy(&body);
    let now = match now {
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map_err(|e| UsageError(anyhow::anyhow!("--now '{t}': {e}")))?,
        None => jiff::Timestamp::now(),
    };
    let tz = match tz {
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| UsageError(anyhow::anyhow!("--tz '{name}': {e}")))?,
        None => jiff::tz::TimeZone::system(),
    };
    let analysis = screen::analyze_with(&text, now, &tz, extra);
    println!("{}", serde_json::to_string_pretty(&screen::classify_json(&analysis))?);
    Ok(true)
}

fn replay(path: &Path, verbose: bool) -> Result<bool> {
    let t = trace::read(path).map_err(UsageError)?;
    let (verdict, all) = ccl_core::trace::replay(&t);
    if verbose {
        // Every turn that was replayed (all of them up to a divergence), each action on its
        // own indented line.
        let mut replayed = all.iter();
        for line in &t.lines {
            match line {
                ccl_core::trace::Line::Reload { turn, .. } => println!("turn {turn}: configuration reloaded"),
                ccl_core::trace::Line::Turn { turn, observation, .. } => {
                    let Some(actions) = replayed.next() else { break };
                    println!(
                        "turn {turn} at {}: {} action{}",
                        util::rfc3339(observation.now_ms),
                        actions.len(),
                        if actions.len() == 1 { "" } else { "s" }
                    );
                    for a in actions {
                        println!("  {a}");
                    }
                }
            }
        }
    }
    match verdict {
        ccl_core::trace::Replay::AllMatch { turns } => {
            println!("{turns} turns, all actions match");
            Ok(true)
        }
        ccl_core::trace::Replay::Diverged { turn, expected, actual } => {
            print!("{}", ccl_core::trace::render_divergence(turn, &expected, &actual));
            Ok(false)
        }
    }
}

// ---------------------------------------------------------------------------------------
// status

/// What `ccl status --json` prints; stable (fields are only ever added).
pub fn status_json(config: &Config, st: Option<&State>, daemon_pid: Option<u32>, now_ms: i64) -> serde_json::Value {
    let active = st
        .map(|s| s.active.clone())
        .unwrap_or_else(|| config.accounts[0].name.clone());
    let accounts: Vec<_> = config
        .accounts
        .iter()
        .map(|a| {
            let acc = st.and_then(|s| s.accounts.get(&a.name));
            let until = acc.and_then(|x| x.exhausted_until_ms).filter(|t| *t > now_ms);
            json!({
                "name": a.name,
                "home": a.home,
                "active": a.name == active,
                "exhausted_until": until.map(util::rfc3339),
                "reason": until.and(acc.and_then(|x| x.reason.clone())),
                "usage": acc.and_then(|x| x.usage.as_ref()).map(|u| usage_json(u, now_ms)),
                "unhealthy": acc.and_then(|x| x.unhealthy.clone()),
                "disabled": acc.is_some_and(|x| x.disabled),
            })
        })
        .collect();
    let sessions: Vec<_> = config
        .pool
        .names()
        .chain(config.dedicated.iter().map(|d| d.name.clone()))
        .filter_map(|name| {
            let s = st.and_then(|s| s.sessions.get(&name))?;
            Some(json!({
                "name": name,
                "kind": s.kind,
                "state": s.seen,
                "activity": activity_name(&s.activity),
                "account": s.account,
                "conversation": s.conversation,
                "task": s.assignment.as_ref().map(|a| a.task.to_string()),
                "attention": s.attention,
                "adopted": s.assignment.as_ref().and_then(|a| a.adopted.clone()),
                "worktree": s.assignment.as_ref().and_then(|a| a.worktree.as_ref()).map(|w| &w.path),
                "branch": s.assignment.as_ref().and_then(|a| a.worktree.as_ref()).map(|w| &w.branch),
                "signals": s.hooked,
            }))
        })
        .collect();
    let paused_all = st.is_some_and(|s| s.paused.all_paused());
    let queues: Vec<_> = config
        .queues
        .iter()
        .map(|q| {
            let c = queue::counts(q).unwrap_or_default();
            let renamed: Vec<_> = queue::renamed(q)
                .into_iter()
                .map(|r| json!({"dir": r.dir, "task": r.task, "from": r.from}))
                .collect();
            json!({
                "name": q.name,
                "project": q.project,
                "inbox": c.inbox, "running": c.running, "done": c.done, "failed": c.failed,
                "paused": st.is_some_and(|s| s.paused.is_paused(&q.name)),
                "held": st.map(|s| s.held.iter().filter(|(t, _)| t.queue == q.name).map(|(t, _)| t.task.clone()).collect::<Vec<_>>()).unwrap_or_default(),
                "renamed": renamed,
                "max_running": q.max_running,
                "isolation": q.isolation,
            })
        })
        .collect();
    let all_exhausted_until = st.filter(|s| s.all_exhausted).and_then(|s| {
        config
            .accounts
            .iter()
            .filter_map(|a| s.accounts.get(&a.name)?.exhausted_until_ms)
            .min()
    });
    json!({
        "daemon": {"running": daemon_pid.is_some(), "pid": daemon_pid},
        "active": active,
        "all_exhausted_until": all_exhausted_until.map(util::rfc3339),
        "draining": st.and_then(|s| s.draining.clone()),
        "paused_all": paused_all,
        "at": util::rfc3339(now_ms),
        "swap": st.and_then(|s| s.swap.as_ref()).map(|w| json!({"from": w.from, "to": w.to, "reason": w.reason, "started": util::rfc3339(w.started_ms)})),
        "last_swap": st.and_then(|s| s.last_swap.as_ref()).map(|w| json!({"from": w.from, "to": w.to, "reason": w.reason, "at": util::rfc3339(w.at_ms)})),
        "swaps": st.map(|s| s.swaps).unwrap_or(0),
        "cooldown_until": st.and_then(|s| s.cooldown_until_ms).filter(|t| *t > now_ms).map(util::rfc3339),
        "accounts": accounts,
        "sessions": sessions,
        "queues": queues,
    })
}

/// An account's meters as `status --json` shows them; a window whose reset has passed
/// is shown as unknown (null), as the daemon will treat it.
fn usage_json(u: &ccl_core::core::Usage, now_ms: i64) -> serde_json::Value {
    let window = |w: &Option<ccl_core::core::UsageWindow>| {
        w.as_ref()
            .filter(|w| w.resets_at_ms.is_none_or(|t| t > now_ms))
            .map(|w| json!({"used_pct": w.used_pct, "resets_at": w.resets_at_ms.map(util::rfc3339)}))
    };
    json!({
        "five_hour": window(&u.five_hour),
        "seven_day": window(&u.seven_day),
        "seen_at": util::rfc3339(u.seen_ms),
    })
}

fn activity_name(a: &Activity) -> &'static str {
    match a {
        Activity::Free => "-",
        Activity::Preparing { .. } => "preparing",
        Activity::Launching { .. } => "launching",
        Activity::Pasted { .. } => "pasting",
        Activity::Submitted { .. } => "submitting",
        Activity::Working { .. } => "working",
        Activity::Exiting { .. } => "recycling",
        Activity::Stopping { .. } => "stopping",
    }
}

/// Below this many columns `render_status` uses its compact layout.
pub const WIDE_COLUMNS: usize = 120;

/// The one-line legend under the sessions table.
pub const STATUS_LEGEND: &str = "STATE = what the pane shows now; ACTIVITY = what ccl is doing there";

/// Columns of the terminal on stdout; else `$COLUMNS`; else 80, which every layout fits.
pub fn terminal_width() -> usize {
    terminal_size().0
}

/// (columns, rows) of the terminal on stdout; else `$COLUMNS` and `$LINES`; else 80×24.
pub fn terminal_size() -> (usize, usize) {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        // SAFETY: TIOCGWINSZ fills the winsize we pass; a failure leaves it zeroed.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 && ws.ws_row > 0
        {
            return (ws.ws_col as usize, ws.ws_row as usize);
        }
    }
    let var = |k: &str, min: usize, default: usize| {
        std::env::var(k)
            .ok()
            .and_then(|c| c.parse().ok())
            .filter(|c| *c >= min)
            .unwrap_or(default)
    };
    (var("COLUMNS", 40, 80), var("LINES", 10, 24))
}

/// Renders the status as aligned tables no wider than `width` columns, reset times in the
/// host's zone: long cells are cut with `…`, and below [`WIDE_COLUMNS`] the sessions table
/// is compact (short conversation ids, attention reasons on their own lines).
pub fn render_status(v: &serde_json::Value, width: usize) -> String {
    render_status_in(v, width, &jiff::tz::TimeZone::system())
}

/// Cells of a meter bar of `width` cells.
fn bar(used_pct: f64, width: usize) -> String {
    let full = ((used_pct.clamp(0.0, 100.0) / 100.0) * width as f64).round() as usize;
    "█".repeat(full) + &"░".repeat(width - full)
}

/// One account's meters on one line, e.g. `main  5h ████████░░ 82% resets 21:48  7d ███░░ 31%
/// resets Nov 27`: the 5-hour reset as a time of day, the weekly one as a date.
pub fn meter_line(name: &str, name_width: usize, usage: &serde_json::Value, tz: &jiff::tz::TimeZone) -> String {
    let reset = |w: &serde_json::Value, format: &str| {
        w["resets_at"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| format!(" resets {}", t.to_zoned(tz.clone()).strftime(format)))
            .unwrap_or_default()
    };
    let window = |label: &str, w: &serde_json::Value, width: usize, format: &str| match w["used_pct"].as_f64() {
        Some(pct) => format!("{label} {} {pct:>3.0}%{}", bar(pct, width), reset(w, format)),
        None => format!("{label} {} ?", "·".repeat(width)),
    };
    format!(
        "{name:<name_width$}  {}  {}",
        window("5h", &usage["five_hour"], 10, "%H:%M"),
        window("7d", &usage["seven_day"], 5, "%b %-d")
    )
}

/// [`render_status`] in a given zone.
pub fn render_status_in(v: &serde_json::Value, width: usize, tz: &jiff::tz::TimeZone) -> String {
    let width = width.max(40);
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(x) => x.clone(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let daemon = &v["daemon"];
    let at = if v["at"].is_null() {
        String::new()
    } else {
        format!(" · status at {}", s(&v["at"]))
    };
    if daemon["running"].as_bool() == Some(true) {
        out.push_str(&format!("daemon: running (pid {}){at}\n", s(&daemon["pid"])));
    } else {
        out.push_str(&format!("daemon: not running{at}\n"));
    }
    if !v["draining"].is_null() {
        out.push_str(&format!(
            "draining account {} before its usage limit: no new tasks; swap when the pool's tasks are done\n",
            s(&v["draining"])
        ));
    }
    if !v["all_exhausted_until"].is_null() {
        out.push_str(&format!(
            "all accounts exhausted until {}\n",
            s(&v["all_exhausted_until"])
        ));
    }
    if !v["swap"].is_null() {
        out.push_str(&format!(
            "swap in progress: {} -> {} ({})\n",
            s(&v["swap"]["from"]),
            s(&v["swap"]["to"]),
            s(&v["swap"]["reason"])
        ));
    }
    if !v["last_swap"].is_null() {
        out.push_str(&format!(
            "last swap: {} -> {} at {} ({})\n",
            s(&v["last_swap"]["from"]),
            s(&v["last_swap"]["to"]),
            s(&v["last_swap"]["at"]),
            s(&v["last_swap"]["reason"])
        ));
    }
    let mut rows = vec![vec!["ACCOUNT".to_string(), "STATE".into(), "HOME".into()]];
    for a in v["accounts"].as_array().into_iter().flatten() {
        let state = if !a["unhealthy"].is_null() {
            format!("unhealthy: {}", util::snippet(&s(&a["unhealthy"]), 60))
        } else if a["disabled"].as_bool() == Some(true) {
            "disabled".into()
        } else if !a["exhausted_until"].is_null() {
            format!("exhausted until {}", s(&a["exhausted_until"]))
        } else if a["active"].as_bool() == Some(true) {
            "active".into()
        } else {
            "available".into()
        };
        let state = if a["active"].as_bool() == Some(true) && !a["exhausted_until"].is_null() {
            format!("active, {state}")
        } else {
            state
        };
        rows.push(vec![s(&a["name"]), state, s(&a["home"])]);
    }
    out.push('\n');
    out.push_str(&fit_table(&rows, width, &[2, 1]));
    let metered: Vec<&serde_json::Value> = v["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| !a["usage"].is_null())
        .collect();
    let name_width = metered.iter().map(|a| s(&a["name"]).chars().count()).max().unwrap_or(0);
    if !metered.is_empty() {
        out.push('\n');
    }
    for a in metered {
        out.push_str(&cut(&meter_line(&s(&a["name"]), name_width, &a["usage"], tz), width));
        out.push('\n');
    }
    let mut rows = vec![[
        "SESSION",
        "KIND",
        "STATE",
        "ACTIVITY",
        "ACCOUNT",
        "CONVERSATION",
        "TASK",
        "ATTENTION",
    ]
    .map(String::from)
    .to_vec()];
    for x in v["sessions"].as_array().into_iter().flatten() {
        rows.push(
            [
                "name",
                "kind",
                "state",
                "activity",
                "account",
                "conversation",
                "task",
                "attention",
            ]
            .iter()
            .map(|k| match *k {
                "task" if x["adopted"].is_string() => format!("{} (adopted)", util::snippet(&s(&x[*k]), 60)),
                _ => util::snippet(&s(&x[*k]), 60),
            })
            .collect(),
        );
    }
    let compact = width < WIDE_COLUMNS;
    let mut attention = Vec::new();
    if compact {
        // Short conversation ids; attention reasons go below the table, where they have the
        // whole width.
        for r in rows.iter_mut().skip(1) {
            if r[7] != "-" {
                attention.push(format!("! {}: {}", r[0], r[7]));
            }
            r.truncate(7);
            r[5] = r[5].chars().take(8).collect();
        }
        rows[0].truncate(7);
        rows[0][5] = "CONV".into();
    }
    out.push('\n');
    out.push_str(&fit_table(&rows, width, &[6, 7, 5, 0, 3, 2]));
    for line in attention {
        out.push_str(&cut(&line, width));
        out.push('\n');
    }
    out.push_str(&cut(STATUS_LEGEND, width));
    out.push('\n');
    // The worktree of each running task of an isolated queue.
    let mut worktrees = vec![["SESSION", "BRANCH", "WORKTREE"].map(String::from).to_vec()];
    for x in v["sessions"].as_array().into_iter().flatten() {
        if !x["worktree"].is_null() {
            worktrees.push(vec![s(&x["name"]), s(&x["branch"]), s(&x["worktree"])]);
        }
    }
    if worktrees.len() > 1 {
        out.push('\n');
        out.push_str(&fit_table(&worktrees, width, &[2, 1]));
    }
    let mut rows = vec![["QUEUE", "INBOX", "RUNNING", "DONE", "FAILED", "HELD", "PAUSED"]
        .map(String::from)
        .to_vec()];
    for q in v["queues"].as_array().into_iter().flatten() {
        let paused = if q["paused"].as_bool() == Some(true) {
            "paused"
        } else {
            "-"
        };
        rows.push(vec![
            s(&q["name"]),
            s(&q["inbox"]),
            format!("{}/{}", s(&q["running"]), s(&q["max_running"])),
            s(&q["done"]),
            s(&q["failed"]),
            q["held"].as_array().map_or(0, Vec::len).to_string(),
            paused.into(),
        ]);
    }
    out.push('\n');
    out.push_str(&fit_table(&rows, width, &[0]));
    // Tasks filed next to an earlier task of the same name, so a reused name is visible.
    for q in v["queues"].as_array().into_iter().flatten() {
        for r in q["renamed"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "renamed: {}/{}/{} (its own name {} was taken)\n",
                s(&q["name"]),
                s(&r["dir"]),
                s(&r["task"]),
                s(&r["from"])
            ));
        }
    }
    out
}

/// `text` cut to `width` characters, the last one `…` when anything was cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Like [`table`], no wider than `width`: the columns in `shrink` (widest first, in that
/// order of preference on ties) give up characters down to a floor, their cells cut with `…`.
pub fn fit_table(rows: &[Vec<String>], width: usize, shrink: &[usize]) -> String {
    const FLOOR: usize = 6;
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
    while total(&widths) > width {
        let Some(&col) = shrink
            .iter()
            .filter(|c| widths.get(**c).is_some_and(|w| *w > FLOOR))
            .max_by_key(|c| (widths[**c], std::cmp::Reverse(shrink.iter().position(|x| x == *c))))
        else {
            break;
        };
        widths[col] -= 1;
    }
    let cut_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().enumerate().map(|(i, c)| cut(c, widths[i])).collect())
        .collect();
    table(&cut_rows)
}

/// Left-aligned columns separated by two spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn status(config: &Config, as_json: bool, watch: bool) -> Result<bool> {
    loop {
        let st = state::load_quiet(&config.state_file());
        let pid = state::daemon_pid(&config.daemon.state_dir);
        let v = status_json(config, st.as_ref(), pid, daemon::now_ms());
        let text = if as_json {
            serde_json::to_string_pretty(&v)?
        } else {
            render_status(&v, terminal_width())
        };
        if !watch {
            println!("{text}");
            return Ok(true);
        }
        // On a terminal: clear and redraw. Into a pipe or a file: one snapshot after the
        // other, no control codes (each says its time on its first line).
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            print!("\x1b[H\x1b[2J{text}");
        } else {
            println!("{text}");
        }
        std::io::stdout().flush()?;
        std::thread::sleep(Duration::from_millis(config.daemon.tick.0.max(200)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status as a busy fleet has it: long names, ids, reasons and homes.
    fn busy_status() -> serde_json::Value {
        let session = |name: &str, kind: &str, attention: serde_json::Value| {
            json!({
                "name": name, "kind": kind, "state": "busy", "activity": "working", "account": "second",
                "conversation": "0b1c2d3e-0000-4000-8000-000000000001",
                "task": "filesecure/20261124-091500-refactor-the-upload-pipeline-and-its-tests.md",
                "attention": attention,
            })
        };
        json!({
            "daemon": {"running": true, "pid": 4242},
            "at": "2026-11-24T09:15:00Z",
            "active": "second",
            "accounts": [
                {"name": "main", "home": "/home/operator/.claude-main-subscription-account", "active": false,
                 "exhausted_until": "2026-11-24T14:00:00Z", "reason": "usage limit"},
                {"name": "second", "home": "/home/operator/.claude-second", "active": true, "exhausted_until": null},
            ],
            "sessions": [
                session("ccl-auto-11", "pool", serde_json::Value::Null),
                session("ccl-auto-12", "pool", serde_json::Value::Null),
                session("ccl-1-conformvault", "dedicated", json!("claude shows a screen that needs the operator: Do you trust the files in this folder?")),
            ],
            "queues": [{"name": "filesecure", "inbox": 12, "running": 2, "done": 340, "failed": 3, "paused": false}],
        })
    }

    #[test]
    fn status_fits_80_columns_with_cut_cells_a_legend_and_attention_below() {
        let text = render_status(&busy_status(), 80);
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{} columns: {line}\n{text}",
                line.chars().count()
            );
        }
        assert!(text.contains('…'), "{text}");
        assert!(
            text.contains("daemon: running (pid 4242) · status at 2026-11-24T09:15:00Z"),
            "{text}"
        );
        assert!(text.contains(STATUS_LEGEND), "{text}");
        assert!(text.contains("CONV"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("! ccl-1-conformvault: claude shows")),
            "{text}"
        );
        assert!(text.lines().count() <= 18, "{} lines:\n{text}", text.lines().count());
        // Wide terminals get every column in full.
        let wide = render_status(&busy_status(), 250);
        assert!(wide.contains("0b1c2d3e-0000-4000-8000-000000000001"), "{wide}");
        assert!(wide.contains("ATTENTION"), "{wide}");
    }

    #[test]
    fn every_argument_has_help_and_every_command_an_example() {
        let cmd = <Cli as clap::CommandFactory>::command();
        for sub in cmd.get_subcommands() {
            assert!(sub.get_about().is_some(), "ccl {} has no description", sub.get_name());
            let after = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(after.starts_with("Examples:"), "ccl {} has no examples", sub.get_name());
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" || arg.is_global_set() {
                    continue;
                }
                assert!(arg.get_help().is_some(), "ccl {} {id} has no help text", sub.get_name());
            }
        }
    }

    /// The meter line draws both windows as bars with the 5-hour reset as a time of day in
    /// the host's zone, and fits an 80-column terminal with a 12-character account name.
    #[test]
    fn meter_lines_show_bars_and_resets_within_80_columns() {
        let usage = json!({
            "five_hour": {"used_pct": 82.0, "resets_at": "2026-11-24T21:48:00Z"},
            "seven_day": {"used_pct": 31.0, "resets_at": "2026-11-27T06:26:00Z"},
            "seen_at": "2026-11-24T20:00:00Z",
        });
        let tz = jiff::tz::TimeZone::UTC;
        let line = meter_line("main", 4, &usage, &tz);
        assert_eq!(
            line,
            "main  5h ████████░░  82% resets 21:48  7d ██░░░  31% resets Nov 27"
        );
        let long = meter_line("twelve-chars", 12, &usage, &tz);
        assert!(long.chars().count() <= 80, "{} columns: {long}", long.chars().count());
        let unknown = json!({"five_hour": {"used_pct": 5.0, "resets_at": null}, "seven_day": null});
        assert_eq!(meter_line("b", 1, &unknown, &tz), "b  5h █░░░░░░░░░   5%  7d ····· ?");
    }
}
