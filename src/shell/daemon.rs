//! `ccl run`: the main loop. One owner of state (the [`Core`]), one `select!` that blocks
//! on the tick, an early wake-up the core asked for, or a signal. Each turn: observe →
//! `core.step` → save state if it changed → carry out the actions → record the turn.
//!
//! Start-up order matters: configuration, then the shared-link check (refuse to start on
//! any problem, before any tmux session is touched), then the lock, then the state.
//! SIGINT/SIGTERM finish the turn in flight, save, and exit 0, leaving every tmux session
//! running; SIGHUP reloads the configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use crossbeam_channel::{select, tick, Receiver};

use crate::adapters::links;
use crate::adapters::queue;
use crate::adapters::tmux;
use crate::adapters::tmux::control;
use crate::shell::observe::Shell;
use crate::shell::state;
use crate::shell::trace::Recorder;
use ccl_core::config::Config;
use ccl_core::core::{Core, State};
use ccl_core::trace::Header;

/// While the state cannot be saved, the error is logged again at most this often.
const SAVE_ERROR_EVERY_MS: i64 = 60_000;

/// A loop event, one variant per thing that can wake the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Tick,
    Wake,
    /// A hook wrote to the spool: a turn now rather than at the next tick.
    Signal,
    Stop(i32),
    Reload,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Tick => f.write_str("tick"),
            Event::Wake => f.write_str("wake-up for a pending deadline"),
            Event::Signal => f.write_str("a signal from claude"),
            Event::Stop(sig) => write!(f, "stop signal {sig}"),
            Event::Reload => f.write_str("reload (SIGHUP)"),
        }
    }
}

/// The host's time zone name for reset times without a zone.
pub fn host_tz() -> String {
    jiff::tz::TimeZone::system().iana_name().unwrap_or("UTC").to_string()
}

/// Fails with every shared-link problem of every account, one line each.
pub fn check_links(config: &Config) -> Result<()> {
    let findings = links::validate_all(&config.accounts, &config.shared);
    let problems = links::problems(&findings);
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems.iter().map(|f| format!("  {f}")).collect();
    bail!(
        "refusing to start: shared links are not in place ({} problem{}):\n{}\nrun `ccl links --fix` for what is safe to fix",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

/// Fails, naming each, when the claude command does not resolve or a queue's project
/// does not exist: a daemon started anyway would burn every task's attempts in seconds
/// (or create a mistyped project path).
pub fn check_startable(config: &Config) -> Result<()> {
    let mut problems = Vec::new();
    if let Err(e) = crate::shell::config_file::resolve_command(&config.claude.command) {
        problems.push(format!("claude: {e}"));
    }
    for q in &config.queues {
        if let Err(e) = queue::check_project(q) {
            problems.push(format!("{e:#}"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!("refusing to start:\n  {}", problems.join("\n  "))
}

fn signals() -> Result<Receiver<i32>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let (tx, rx) = crossbeam_channel::bounded(16);
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(rx)
}

/// Builds the tmux port named by the configuration.
pub fn tmux_port(config: &Config) -> Box<dyn tmux::Tmux> {
    match config.tmux.backend {
        ccl_core::config::Backend::Exec => Box::new(tmux::ExecTmux::new(&config.tmux.socket)),
        ccl_core::config::Backend::Control => Box::new(control::AutoTmux::new(&config.tmux.socket)),
    }
}

/// A bare `claude.command` (a name looked up on PATH) becomes the path ccl found it at:
/// the launch line runs in each pane's login shell, whose profile may set a PATH without
/// the directory ccl found it in (`~/.local/bin`, an npm prefix), and then the pane
/// would not find the command that `ccl check` and this start found.
pub fn pin_claude_command(config: &mut Config) -> Result<()> {
    if !config.claude.command.contains('/') {
        let found = crate::shell::config_file::resolve_command(&config.claude.command)?;
        config.claude.command = found.to_string_lossy().into_owned();
    }
    Ok(())
}

pub fn run(config_path: &Path, record: Option<PathBuf>) -> Result<()> {
    let mut config = crate::shell::config_file::load(config_path)?;
    check_links(&config)?;
    check_startable(&config)?;
    pin_claude_command(&mut config)?;
    log::info!("claude command: {}", config.claude.command);
    let _lock = state::lock(&config.daemon.state_dir)?;
    state::remove_stale_temps(&config.daemon.state_dir);
    state::write_env_file(&config)?;
    let start_ms = super::now_ms();
    let state_path = config.state_file();
    let state = match state::load(&state_path, start_ms)? {
        Some(s) => {
            log::info!(
                "state loaded from {} (active account {})",
                state_path.display(),
                s.active
            );
            s
        }
        None => {
            let seed = (start_ms as u64) ^ ((std::process::id() as u64) << 32);
            State::fresh(&config, seed)
        }
    };
    for q in &config.queues {
        queue::ensure_dirs(q).with_context(|| format!("cannot prepare queue {}", q.name))?;
    }
    let tz = host_tz();
    let mut recorder = match &record {
        Some(path) => {
            let header = Header {
                format: ccl_core::trace::FORMAT.into(),
                version: ccl_core::trace::VERSION,
                ccl_version: env!("CARGO_PKG_VERSION").into(),
                config: config.clone(),
                state: state.clone(),
                tz: tz.clone(),
                start_ms,
            };
            Some(Recorder::create(path, &header)?)
        }
        None => None,
    };
    let signal_wake = prepare_signals(&config)?;
    let mut shell = Shell::new(tmux_port(&config));
    let mut core = Core::new(config, state, &tz);
    let signals = signals()?;
    let mut ticker = tick(Duration::from_millis(core.config().daemon.tick.0));
    let mut saved = serde_json::to_vec(core.state()).unwrap_or_default();
    let mut turn: u64 = 0;
    // Turns undone in a row because the state could not be saved, and when that was last
    // logged (a full disk must not also flood the log).
    let mut failed_saves: u32 = 0;
    let mut failed_save_logged_ms: i64 = 0;
    log::info!(
        "ccl {} running: tick {}, tmux {}, {} pool sessions ({}..), {} dedicated, {} queues, active account {}",
        env!("CARGO_PKG_VERSION"),
        core.config().daemon.tick,
        if core.config().tmux.socket.is_empty() {
            "default server".to_string()
        } else {
            format!("socket '{}'", core.config().tmux.socket)
        },
        core.config().pool.max,
        core.config().pool.names().next().unwrap_or_default(),
        core.config().dedicated.len(),
        core.config().queues.len(),
        core.state().active
    );

    let mut event = Event::Tick;
    loop {
        match event {
            Event::Stop(sig) => {
                log::info!("signal {sig}: stopping; every tmux session is left running");
                break;
            }
            Event::Reload => {
                reload(config_path, &mut core, recorder.as_mut(), turn);
                ticker = tick(Duration::from_millis(core.config().daemon.tick.0));
            }
            Event::Tick | Event::Wake | Event::Signal => 'turn: {
                turn += 1;
                let now = super::now_ms();
                log::debug!("turn {turn} ({event})");
                let observation = shell.observe(&core, now);
                // The state as saved (every turn either saves its state or is undone).
                let before = core.state().clone();
                let actions = core.step(&observation);
                let snapshot = serde_json::to_vec(core.state()).unwrap_or_default();
                if snapshot != saved {
                    if let Err(e) = state::save(&state_path, core.state()) {
                        // Carrying out a turn whose state is not on disk would leave
                        // obligations (a claimed file, a launched Claude, a pasted prompt)
                        // that a crash forgets: the turn is undone instead, and its
                        // one-shot inputs are given again next turn.
                        failed_saves += 1;
                        if failed_saves == 1 || now - failed_save_logged_ms >= SAVE_ERROR_EVERY_MS {
                            failed_save_logged_ms = now;
                            log::error!(
                                "cannot save state: {e:#}; this turn's {} actions are not carried out (nothing is claimed, launched, typed, stopped or moved); retrying every turn ({failed_saves} undone so far)",
                                actions.len()
                            );
                        }
                        core.restore(before);
                        shell.give_again(observation);
                        break 'turn;
                    }
                    saved = snapshot;
                    if failed_saves > 0 {
                        log::info!("state saved again after {failed_saves} undone turns");
                        failed_saves = 0;
                    }
                }
                shell.execute(core.config(), &actions, now);
                if let Some(r) = recorder.as_mut() {
                    if let Err(e) = r.turn(turn, &observation, &actions) {
                        log::warn!("cannot record turn {turn}: {e:#}");
                    }
                }
            }
        }
        let wake = core
            .next_wake_ms()
            .map(|t| Duration::from_millis((t - super::now_ms()).max(0) as u64));
        let wake_rx = match wake {
            Some(d) => crossbeam_channel::after(d),
            None => crossbeam_channel::never(),
        };
        event = select! {
            recv(ticker) -> _ => Event::Tick,
            recv(wake_rx) -> _ => Event::Wake,
            recv(signal_wake) -> _ => Event::Signal,
            recv(signals) -> sig => match sig {
                Ok(signal_hook::consts::SIGHUP) => Event::Reload,
                Ok(s) => Event::Stop(s),
                Err(_) => Event::Stop(0),
            },
        };
    }
    if let Err(e) = state::save(&state_path, core.state()) {
        log::error!("cannot save state on exit: {e:#}");
    }
    Ok(())
}

/// The `--settings` files and the wake-up FIFO (when `claude.signals` is on), and the
/// channel the FIFO wakes; a never-ready channel when signals are off.
fn prepare_signals(config: &Config) -> Result<Receiver<()>> {
    if !config.claude.signals {
        return Ok(crossbeam_channel::never());
    }
    let exe = std::env::current_exe().context("cannot find ccl's own executable for the hooks")?;
    crate::shell::signals::prepare(config, &exe).context("cannot prepare the signal settings")?;
    crate::shell::signals::wake_channel(config)
}

/// SIGHUP: a valid new configuration takes effect at the next turn; what cannot change
/// live (state_dir, tmux socket and backend) is refused; an invalid file changes nothing.
fn reload(path: &Path, core: &mut Core, recorder: Option<&mut Recorder>, turn: u64) {
    let mut new = match crate::shell::config_file::load(path) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("reload refused, the old configuration stays: {e:#}");
            return;
        }
    };
    if let Err(e) = pin_claude_command(&mut new) {
        log::warn!("reload refused, the old configuration stays: claude: {e:#}");
        return;
    }
    let old = core.config();
    let mut fixed = Vec::new();
    if new.daemon.state_dir != old.daemon.state_dir {
        fixed.push("daemon.state_dir");
    }
    if new.tmux != old.tmux {
        fixed.push("tmux.socket/backend");
    }
    if !fixed.is_empty() {
        log::warn!(
            "reload refused: {} cannot change while ccl runs; restart it for that",
            fixed.join(", ")
        );
        return;
    }
    if let Err(e) = check_links(&new) {
        log::warn!("reload refused: {e:#}");
        return;
    }
    let mut busy = core.reload_blockers(&new);
    // Files in running/ of a queue that would go: nobody could file them afterwards.
    for q in &old.queues {
        if new.queue(&q.name).is_some_and(|n| n.project == q.project) {
            continue;
        }
        match queue::list(q, "running") {
            Ok(names) if !names.is_empty() => busy.push(format!(
                "queue {} would be removed or moved with {} in its running/",
                q.name,
                names.join(", ")
            )),
            Ok(_) => {}
            Err(e) => busy.push(format!("cannot list running/ of queue {}: {e:#}", q.name)),
        }
    }
    if !busy.is_empty() {
        busy.dedup();
        log::warn!(
            "reload refused while work is in flight there (send SIGHUP again once it is done): {}",
            busy.join("; ")
        );
        return;
    }
    for q in &new.queues {
        if let Err(e) = queue::ensure_dirs(q) {
            log::warn!("reload refused: cannot prepare queue {}: {e:#}", q.name);
            return;
        }
    }
    if let Err(e) = state::write_env_file(&new) {
        log::warn!("reload refused: {e:#}");
        return;
    }
    if new.claude.signals {
        // Accounts may have been added: each needs its settings file before a launch.
        let written = std::env::current_exe()
            .map_err(anyhow::Error::from)
            .and_then(|exe| crate::shell::signals::prepare(&new, &exe));
        if let Err(e) = written {
            log::warn!("reload refused: cannot prepare the signal settings: {e:#}");
            return;
        }
    }
    if let Some(r) = recorder {
        if let Err(e) = r.reload(turn, &new) {
            log::warn!("cannot record reload: {e:#}");
        }
    }
    core.set_config(new);
    log::info!("configuration reloaded from {}", path.display());
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// `claude.env` values are secrets: the typed line names the env file, never a value,
    /// and running the line gives Claude every variable, quoted as it was configured. The
    /// core builds the line; running it in a real shell with the env file the daemon writes
    /// is the shell's side, so the test lives here and the core's files touch no process.
    #[test]
    fn claude_env_reaches_claude_through_the_env_file_never_the_typed_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[daemon]\nstate_dir = \"/state\"\n[[account]]\nname = \"a\"\nhome = \"/homes/a\"\n\
                    [[account]]\nname = \"b\"\nhome = \"/homes/b\"\n[shared]\ntarget = \"/shared\"\n\
                    [pool]\nmin = 1\nmax = 1\nworkdir = \"/pool\"\n";
        let mut config = ccl_core::config::Config::parse(text, std::path::Path::new("/etc/ccl.toml"), None).unwrap();
        config.daemon.state_dir = dir.path().to_path_buf();
        config.claude.env = vec![
            ("API_TOKEN".into(), "sk-secret-4242".into()),
            ("ODD".into(), "it's $HOME `x`".into()),
        ];
        config.claude.command = "sh".into();
        config.claude.args = vec![
            "-c".into(),
            "printf '%s|%s|%s|%s' \"$API_TOKEN\" \"$ODD\" \"$CCL_SESSION\" \"$0\"".into(),
        ];
        let line = ccl_core::sessions::launch_line(
            &config,
            "ccl-auto-11",
            "a",
            dir.path(),
            Path::new("/h/a"),
            "id-1",
            ccl_core::sessions::Continue::New,
            None,
        );
        assert!(!line.contains("sk-secret-4242") && !line.contains("it's"), "{line}");
        std::fs::write(config.env_file(), ccl_core::sessions::env_file_text(&config)).unwrap();
        let out = std::process::Command::new("sh").arg("-c").arg(&line).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "sk-secret-4242|it's $HOME `x`|ccl-auto-11|--settings",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn quoting_survives_a_real_shell() {
        for s in ["plain", "/a b/c", "it's", "$HOME `x` \"q\"", "-dash", "semi;", "", "é✓"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", ccl_core::util::shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }
}
