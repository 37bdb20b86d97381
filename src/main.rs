//! The `ccl` binary: parse arguments, set up logging, run the command, print an error
//! once and map the outcome to the exit code (0 ok, 1 problems or failure, 2 bad usage
//! or unreadable configuration).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match ccl::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if cli.command.ends_with_its_reader() {
        // Rust ignores SIGPIPE, so a print into a closed pipe panics; the default action
        // ends the process quietly, as a shell pipeline expects.
        // SAFETY: resetting a signal's disposition before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    match ccl::cli::run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ccl: {e:#}");
            if e.downcast_ref::<ccl::exit::UsageError>().is_some() {
                ExitCode::from(2)
            } else if e.downcast_ref::<ccl::exit::Interrupted>().is_some() {
                ExitCode::from(130)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
