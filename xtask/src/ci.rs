//! `cargo xtask ci`: what CI runs (through `.ci/run`) and the README's test command. It
//! installs what the test tiers need when it is missing (tmux from Debian, the pinned
//! Claude Code from npm into a per-machine cache), then runs formatting, lints and every
//! test tier, each as a named, timed step; the first failing step ends the run.
//!
//! Tiers: unit and core tests always run; the real-tmux tier (`CCL_TEST_TMUX=1`) and the
//! real-Claude-Code tier (`CCL_TEST_CLAUDE=1` with `CCL_CLAUDE_BIN`) are switched on here.
//! `CCL_SKIP_CLAUDE=1` (or `--skip-claude`) leaves the real-client tier off on a machine
//! without npm access. A tier switched on that ran no test fails the run.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::step::{self, Steps};
use crate::{cargo, install_claude};

#[derive(clap::Args)]
pub struct CiArgs {
    /// Leave the real-Claude-Code tier off (as CCL_SKIP_CLAUDE=1 does).
    #[arg(long)]
    skip_claude: bool,
}

pub fn run(args: &CiArgs) -> Result<()> {
    let mut steps = Steps::default();
    let outcome = run_steps(args, &mut steps);
    steps.summary();
    outcome?;
    eprintln!("ci: every step passed");
    Ok(())
}

fn run_steps(args: &CiArgs, steps: &mut Steps) -> Result<()> {
    steps.run("tmux", ensure_tmux)?;

    // The tiers' switches go to every test run from here on. Setting them in our own
    // environment is sound: this program has one thread.
    std::env::set_var("CCL_TEST_TMUX", "1");
    let skip_claude = args.skip_claude || std::env::var_os("CCL_SKIP_CLAUDE").is_some_and(|v| v == "1");
    if !skip_claude {
        let bin = steps.run("installing Claude Code (pinned, cached per machine)", || {
            install_claude::install(&install_claude::default_dir())
        })?;
        eprintln!("claude: {}", bin.display());
        std::env::set_var("CCL_CLAUDE_BIN", &bin);
        std::env::set_var("CCL_TEST_CLAUDE", "1");
    }
    let switch = |name: &str| std::env::var(name).unwrap_or_else(|_| "0".into());
    let mut switched_on = vec!["tmux"];
    if switch("CCL_TEST_CLAUDE") == "1" {
        switched_on.push("claude");
    }

    steps.run("cargo fmt --check", || {
        step::run(cargo().args(["fmt", "--all", "--", "--check"]))
    })?;
    steps.run("cargo clippy --workspace --all-targets -- -D warnings", || {
        step::run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]))
    })?;

    // Every target but the bench targets, which `--all-targets` would run too: they print
    // figures on the real client, assert nothing and need CCL_CLAUDE_BIN (clippy above
    // compiles them; `cargo xtask bench` runs them).
    let tier_log = TierLog::create()?;
    std::env::set_var("CCL_TIER_LOG", &tier_log.path);
    let name = format!(
        "cargo test --workspace --lib --bins --tests --examples (tiers: tmux={} claude={})",
        switch("CCL_TEST_TMUX"),
        switch("CCL_TEST_CLAUDE")
    );
    steps.run(&name, || {
        step::run(cargo().args(["test", "--workspace", "--lib", "--bins", "--tests", "--examples"]))?;
        tier_log.check(&switched_on)
    })?;

    // The suite above runs the daemon on the default tmux backend (control); the daemon
    // tests run once more on the exec backend, which is also the fallback, so both stay
    // covered. The filter picks up every test of tests/daemon_*.rs (`daemon_swap::…`) in
    // the one integration-test binary.
    steps.run("daemon tests on the exec backend", || {
        step::run(
            cargo()
                .env("CCL_TEST_TMUX_BACKEND", "exec")
                .args(["test", "--test", "integration", "daemon_"]),
        )?;
        tier_log.check(&["tmux"])
    })?;
    Ok(())
}

/// tmux on `PATH`, installed from Debian with apt when it is missing; prints its version.
fn ensure_tmux() -> Result<()> {
    let present = match Command::new("tmux").arg("-V").output() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => return Err(e).context("cannot run tmux"),
    };
    if !present {
        eprintln!("installing tmux");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        let apt = |args: &[&str]| {
            let mut cmd = if root {
                Command::new("apt-get")
            } else {
                Command::new("sudo")
            };
            if !root {
                cmd.arg("apt-get");
            }
            cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            cmd
        };
        step::run(&mut apt(&["update", "-qq"]))?;
        step::run(apt(&["install", "-y", "-qq", "tmux"]).stdout(std::process::Stdio::null()))?;
    }
    step::run(Command::new("tmux").arg("-V"))
}

/// A file each test of a slow tier appends its tier's name to (`tests/common`'s
/// `note_tier_ran`, told where by `CCL_TIER_LOG`): a tier switched on with no line here
/// ran no test (a gate gone wrong, a filter), which must not pass as green. Removed on drop.
struct TierLog {
    path: PathBuf,
}

impl TierLog {
    /// In the build's target directory, where cargo's lock already keeps two runs of one
    /// checkout apart: a run that is interrupted leaves at most this one small file there,
    /// emptied by the next run, instead of a new one in `/tmp` each time.
    fn create() -> Result<TierLog> {
        let root = crate::project_root();
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| root.join(d))
            .unwrap_or_else(|| root.join("target"));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        TierLog::at(dir.join("ccl-tiers.log"))
    }

    /// A log at `path`, emptied.
    fn at(path: PathBuf) -> Result<TierLog> {
        File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TierLog { path })
    }

    /// Fails unless every tier in `tiers` noted a test since the last check; then empties
    /// the log for the next step.
    fn check(&self, tiers: &[&str]) -> Result<()> {
        let log = fs::read_to_string(&self.path).with_context(|| format!("cannot read {}", self.path.display()))?;
        for tier in tiers {
            if !log.lines().any(|line| line == *tier) {
                bail!("the {tier} tier was switched on but ran no test");
            }
        }
        File::create(&self.path).with_context(|| format!("cannot empty {}", self.path.display()))?;
        Ok(())
    }
}

impl Drop for TierLog {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI runs `.ci/run`; it must run what the README tells a developer to run, so a
    /// green CI means the README's test command passes.
    #[test]
    fn ci_runs_the_readme_test_command() {
        let root = crate::project_root();
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        let first_block: Vec<&str> = readme
            .split("```")
            .nth(1)
            .expect("README opens with a code block")
            .lines()
            .skip(1)
            .collect();
        assert_eq!(
            first_block.len(),
            2,
            "the run command and the test command: {first_block:?}"
        );
        let test_command = first_block[1].split('#').next().unwrap().trim();
        assert_eq!(test_command, "cargo xtask ci");

        let script = fs::read_to_string(root.join(".ci/run")).unwrap();
        let last = script.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
        assert_eq!(last, format!("exec {test_command} \"$@\""));
        assert!(script.contains("cd \"$(dirname \"$0\")/..\""), "{script}");
    }

    #[test]
    fn a_tier_that_ran_no_test_fails_the_check() {
        // Not the CI's own log: this test runs inside `cargo xtask ci`.
        let dir = std::env::temp_dir().join(format!("xtask-tier-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = TierLog::at(dir.join("ccl-tiers.log")).unwrap();
        fs::write(&log.path, "tmux\ntmux\n").unwrap();
        let err = log.check(&["tmux", "claude"]).unwrap_err();
        assert_eq!(err.to_string(), "the claude tier was switched on but ran no test");

        fs::write(&log.path, "tmux\nclaude\n").unwrap();
        log.check(&["tmux", "claude"]).unwrap();
        // Each check starts the next step from an empty log.
        assert!(log.check(&["tmux"]).is_err());
        let path = log.path.clone();
        drop(log);
        assert!(!path.exists());
        fs::remove_dir(&dir).unwrap();
    }
}
