//! `cargo xtask update-expect`: regenerates every expectation file the tests compare
//! with (the golden traces in `tests/traces/`, the screen corpus in `tests/screens/`) by
//! running, with `UPDATE_EXPECT=1`, the tests of each module of the integration-test
//! binary (`tests/NAME.rs`, tests named `NAME::…`) whose code reads that variable, then
//! shows what changed for review. The modules are found in the source, not listed here,
//! so a new expectation-driven test file is picked up without touching this file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::step::{self, Steps};
use crate::{cargo, project_root};

/// What a test reads to write its expectations instead of comparing with them.
const VAR: &str = "UPDATE_EXPECT";

pub fn run() -> Result<()> {
    let modules = expect_modules(project_root())?;
    if modules.is_empty() {
        bail!("no test module reads {VAR}");
    }
    let mut steps = Steps::default();
    let mut test = cargo();
    test.env(VAR, "1").args(["test", "--tests", "--"]);
    // The slow tiers write no expectation; leave them off whatever the shell says.
    test.env_remove("CCL_TEST_TMUX").env_remove("CCL_TEST_CLAUDE");
    for module in &modules {
        test.arg(format!("{module}::"));
    }
    steps.run("regenerating expectations", || step::run(&mut test))?;
    steps.run("what changed (git diff --stat)", || {
        let mut diff = Command::new("git");
        diff.current_dir(project_root()).args(["--no-pager", "diff", "--stat"]);
        step::run(&mut diff)?;
        let new = Command::new("git")
            .current_dir(project_root())
            .args(["ls-files", "--others", "--exclude-standard", "--", "tests"])
            .output()
            .context("cannot run git ls-files")?;
        for file in String::from_utf8_lossy(&new.stdout).lines() {
            eprintln!(" {file} (new)");
        }
        Ok(())
    })?;
    Ok(())
}

/// The modules of the root package's integration-test binary (`tests/NAME.rs`, or a
/// folder `tests/NAME/`) whose code reads `UPDATE_EXPECT`.
fn expect_modules(root: &Path) -> Result<Vec<String>> {
    let tests = root.join("tests");
    let mut modules = Vec::new();
    for entry in fs::read_dir(&tests).with_context(|| format!("cannot read {}", tests.display()))? {
        let path = entry?.path();
        let module = if path.is_dir() {
            path.file_name()
        } else if path.extension().is_some_and(|e| e == "rs") {
            path.file_stem()
        } else {
            continue;
        };
        let module = module.map(|t| t.to_string_lossy().into_owned());
        if let Some(module) = module.filter(|m| m != "main") {
            if rust_files(&path)?.iter().any(|file| reads_var(file)) {
                modules.push(module);
            }
        }
    }
    modules.sort();
    Ok(modules)
}

fn rust_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))? {
        files.extend(rust_files(&entry?.path())?);
    }
    files.retain(|f| f.extension().is_some_and(|e| e == "rs"));
    Ok(files)
}

/// Whether the file reads the variable (names it as a string literal), not merely
/// mentions it in a comment or a message.
fn reads_var(file: &Path) -> bool {
    let needle = format!("var_os(\"{VAR}\")");
    let needle_var = format!("var(\"{VAR}\")");
    fs::read_to_string(file).is_ok_and(|text| text.contains(&needle) || text.contains(&needle_var))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two expectation-driven suites are found; were the search to miss one, its
    /// expectations would silently stay as they are.
    #[test]
    fn the_golden_traces_and_the_screen_corpus_are_found() {
        let modules = expect_modules(project_root()).unwrap();
        for suite in ["golden_traces", "screen_corpus"] {
            assert!(modules.iter().any(|m| m == suite), "{suite} missing from {modules:?}");
        }
    }
}
