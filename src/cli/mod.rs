//! The command line: clap definitions and one function per subcommand. Each returns
//! `Ok(true)` (exit 0), `Ok(false)` (ran and found problems: exit 1) or an error (exit 1,
//! or 2 when it is a [`UsageError`]: bad usage or an unreadable configuration).

pub mod init;
pub mod tasks;
pub mod worktrees;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::exit::UsageError;
use clap::{Parser, Subcommand};

use crate::adapters::links;
use crate::adapters::queue;
use crate::shell::daemon;
use crate::shell::state;
use crate::shell::trace;
use ccl_core::config::{self, Config};
use ccl_core::core::{RequestKind, State};
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

impl Command {
    /// Whether the command only prints and ends: such a command ends quietly when its
    /// reader goes away (`ccl status --watch | head`), as other command-line tools do. The
    /// daemon, the demo (which must clean up its tmux server) and the hooks' `ccl signal`
    /// keep treating a closed pipe as an error they handle.
    pub fn ends_with_its_reader(&self) -> bool {
        !matches!(
            self,
            Command::Run { .. } | Command::Demo { .. } | Command::Signal { .. }
        )
    }
}

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

fn load(path: &Path, origin: &config::Origin) -> Result<Config> {
    crate::shell::config_file::load_from(path, origin).map_err(|e| UsageError(e).into())
}

pub fn run(cli: Cli) -> Result<bool> {
    let searched = crate::shell::config_file::searched_from_env();
    let found = || -> Result<(PathBuf, config::Origin)> {
        crate::shell::config_file::discover(cli.config.as_deref(), &searched).map_err(|e| UsageError(e).into())
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
            print!("{}", crate::cli::tasks::show(&c, q, &task)?);
            Ok(true)
        }
        Command::Retry { queue, task } => {
            let c = config()?;
            let q = queue_named(&c, &queue)?;
            println!("{}", crate::cli::tasks::retry(q, &task)?);
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
            crate::cli::init::run(&searched, home.as_deref())
        }
        Command::Account { action } => {
            let (account, enable) = match action {
                AccountAction::Enable { name } => (name, true),
                AccountAction::Disable { name } => (name, false),
            };
            request(
                &config()?,
                RequestKind::Account {
                    account: account.into(),
                    enable,
                },
            )
        }
        Command::Worktrees { action } => {
            let config = config()?;
            let st = state::load_quiet(&config.state_file());
            let mut out = std::io::stdout();
            match action {
                None => worktrees::list(&config, st.as_ref(), &mut out),
                Some(WorktreesAction::Prune) => worktrees::prune(&config, st.as_ref(), &mut out),
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
            crate::shell::signals::cmd_signal(&dir, account.as_deref(), &event);
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
    match crate::adapters::tmux::version().and_then(|v| crate::adapters::tmux::check_version(&v).map(|()| v)) {
        Ok(v) => println!("tmux: {v}"),
        Err(e) => problems.push(format!("tmux: {e:#}")),
    }
    match crate::shell::config_file::resolve_command(&config.claude.command) {
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
    for w in crate::adapters::trust::warnings(config) {
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
    let mut st = state::load_quiet(&path).unwrap_or_else(|| State::fresh(config, crate::shell::now_ms() as u64));
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
    let mut st = state::load_quiet(&path).unwrap_or_else(|| State::fresh(config, crate::shell::now_ms() as u64));
    st.align(config);
    let acc = st.accounts.entry(account.into()).or_default();
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

fn status(config: &Config, as_json: bool, watch: bool) -> Result<bool> {
    loop {
        let st = state::load_quiet(&config.state_file());
        let pid = state::daemon_pid(&config.daemon.state_dir);
        let v = crate::status::report(config, st.as_ref(), pid, crate::shell::now_ms());
        let text = if as_json {
            serde_json::to_string_pretty(&v)?
        } else {
            crate::status::render_status(&v, crate::status::terminal_width())
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
}
