//! Named, timed steps and the one way a child program is run: its output goes straight
//! to the terminal, and a failure names the command and its exit status.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Steps run so far, with how long each took, for the summary at the end.
#[derive(Default)]
pub struct Steps {
    done: Vec<(String, Duration)>,
}

impl Steps {
    /// Runs `body` as the step `name`: prints its name, then its duration; a failure
    /// stops here with the step's name in the error.
    pub fn run<T>(&mut self, name: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
        eprintln!("\n==> {name}");
        let start = Instant::now();
        let outcome = body();
        let took = start.elapsed();
        match outcome {
            Ok(value) => {
                eprintln!("<== {name}: ok in {}", secs(took));
                self.done.push((name.to_string(), took));
                Ok(value)
            }
            Err(e) => Err(e.context(format!("step `{name}` failed after {}", secs(took)))),
        }
    }

    /// Prints every step with its duration, and the total.
    pub fn summary(&self) {
        let total: Duration = self.done.iter().map(|(_, d)| *d).sum();
        eprintln!();
        for (name, took) in &self.done {
            eprintln!("{:>9}  {name}", secs(*took));
        }
        eprintln!("{:>9}  total", secs(total));
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Runs `cmd` with the terminal as its stdin/stdout/stderr; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = show(cmd);
    let status = cmd.status().with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// The command as a shell line, with the variables set for it alone in front.
pub fn show(cmd: &Command) -> String {
    let mut words: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    let program = cmd.get_program().to_string_lossy();
    // `cargo xtask` hands us cargo's full path; `cargo` reads better.
    words.push(if program.ends_with("/cargo") {
        "cargo".into()
    } else {
        program.into_owned()
    });
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_command_is_named_with_its_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]).env("X", "1");
        let err = run(&mut cmd).unwrap_err();
        assert_eq!(format!("{err:#}"), "`X=1 sh -c exit 3` failed (exit status: 3)");
    }

    #[test]
    fn a_failing_step_is_named_and_stops_the_rest() {
        let mut steps = Steps::default();
        steps.run("first", || Ok(())).unwrap();
        let err = steps.run("second", || -> Result<()> { bail!("boom") }).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.starts_with("step `second` failed after "), "{message}");
        assert!(message.ends_with(": boom"), "{message}");
        assert_eq!(steps.done.len(), 1);
    }
}
