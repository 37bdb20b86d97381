//! `ccl-mock-api`: the mock Anthropic API of `ccl_testkit::mockapi` as a process, for `ccl demo` and
//! scripts that drive the real Claude Code without an account. It prints
//! `listening on 127.0.0.1:PORT` once bound and serves until SIGINT or SIGTERM. Behaviour
//! per account comes from `--control FILE` (JSON object token → behaviour, `*` for the
//! rest; re-read on every request), and every request is appended to `--log FILE` as a
//! JSON line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use ccl_testkit::mockapi::{MockApi, MockOptions};

/// A mock Anthropic API on 127.0.0.1 for running Claude Code offline.
#[derive(Parser, Debug)]
#[command(name = "ccl-mock-api")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Append every request seen here as one JSON line.
    #[arg(long)]
    log: Option<PathBuf>,
    /// JSON object token → behaviour, re-read on every request, e.g.
    /// {"sk-ant-oat01-a": {"kind": "limit5h", "reset_unix": 1764000000}, "*": {"kind": "normal"}}.
    #[arg(long)]
    control: Option<PathBuf>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ccl-mock-api: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // Signals are registered before the announcement so a quick SIGTERM after it is not lost.
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot register signal handlers")?;
    let mock = MockApi::start_with(MockOptions {
        port: args.port,
        control_path: args.control,
        log_path: args.log,
    })?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", mock.addr()).context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")?;
    let _ = signals.forever().next();
    mock.stop();
    Ok(())
}
