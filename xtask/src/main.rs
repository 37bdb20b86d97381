//! The project's developer commands, run as `cargo xtask …` (the alias is in
//! `.cargo/config.toml`): `ci` (what CI runs, through `.ci/run`, and the README's test
//! command), `install-claude` (the pinned Claude Code for the real-client tier),
//! `update-expect` (regenerates the golden traces and the screen corpus expectations) and
//! `bench` (the benchmark examples). Plain std and blocking child processes: each command
//! is a list of steps, each step a program run to completion.

mod bench;
mod ci;
mod install_claude;
mod step;
mod update_expect;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", about = "Developer commands of ccl")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything CI checks: fmt, clippy, every test with the real-tmux and
    /// real-Claude-Code tiers on (installs tmux and the pinned Claude Code when missing).
    /// CCL_SKIP_CLAUDE=1 leaves the real-client tier off.
    Ci(ci::CiArgs),
    /// Installs the pinned Claude Code from npm into DIR (default: the per-machine cache)
    /// and prints the path of its binary.
    InstallClaude {
        /// Install directory; default ${CCL_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/ccl}/claude-code.
        dir: Option<PathBuf>,
    },
    /// Regenerates the golden traces and screen corpus expectations (UPDATE_EXPECT=1),
    /// then shows what changed.
    UpdateExpect,
    /// Builds release and runs the benchmark examples (examples/*_bench.rs), or one.
    Bench {
        /// One benchmark, e.g. tick_bench; all of them when left out.
        name: Option<String>,
        /// Arguments for the benchmark (after `--`), e.g. `-- --sessions 200`.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Ci(args) => ci::run(&args),
        Command::InstallClaude { dir } => {
            let dir = dir.unwrap_or_else(install_claude::default_dir);
            let bin = install_claude::install(&dir)?;
            println!("{}", bin.display());
            Ok(())
        }
        Command::UpdateExpect => update_expect::run(),
        Command::Bench { name, args } => bench::run(name.as_deref(), &args),
    }
}

/// The workspace root (this package's parent directory): every command runs from there.
fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
}

/// The cargo that runs us (`cargo xtask` sets `CARGO`), else the one on `PATH`.
fn cargo() -> std::process::Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(program);
    cmd.current_dir(project_root());
    cmd
}
