//! `cargo xtask bench [NAME] [-- ARGS]`: runs every benchmark, or the one named, each
//! printing its JSON line. Benchmarks are the examples `examples/*_bench.rs` (on the fake
//! Claude; run after a release build of the binaries, since they start the release
//! `ccl-fake-claude` from beside them) and the bench targets `benches/*.rs` (`cargo bench
//! --bench NAME`). A benchmark whose source reads `CCL_CLAUDE_BIN` runs on the real
//! client: when the variable is unset, the pinned Claude Code is installed into the
//! per-machine cache first. ARGS go to each benchmark run; without them each uses its own
//! defaults.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::step::{self, Steps};
use crate::{cargo, install_claude, project_root};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `examples/NAME.rs`, NAME ending in `_bench`.
    Example,
    /// `benches/NAME.rs`, a bench target.
    Bench,
}

#[derive(Debug)]
struct Benchmark {
    name: String,
    kind: Kind,
    source: PathBuf,
}

impl Benchmark {
    fn needs_claude(&self) -> bool {
        fs::read_to_string(&self.source).is_ok_and(|text| text.contains("\"CCL_CLAUDE_BIN\""))
    }
}

pub fn run(name: Option<&str>, args: &[String]) -> Result<()> {
    let all = benchmarks(project_root())?;
    let chosen: Vec<&Benchmark> = match name {
        None => all.iter().collect(),
        Some(name) => match all.iter().find(|b| b.name == name) {
            Some(bench) => vec![bench],
            None => {
                let names: Vec<&str> = all.iter().map(|b| b.name.as_str()).collect();
                bail!("no benchmark {name}; there are: {}", names.join(", "))
            }
        },
    };
    let mut steps = Steps::default();
    let outcome = run_steps(&chosen, args, &mut steps);
    steps.summary();
    outcome
}

fn run_steps(chosen: &[&Benchmark], args: &[String], steps: &mut Steps) -> Result<()> {
    if chosen.iter().any(|b| b.kind == Kind::Example) {
        steps.run("cargo build --release --bins --examples", || {
            step::run(cargo().args(["build", "--release", "--bins", "--examples"]))
        })?;
    }
    if chosen.iter().any(|b| b.needs_claude()) && std::env::var_os("CCL_CLAUDE_BIN").is_none() {
        let bin = steps.run("installing Claude Code (pinned, cached per machine)", || {
            install_claude::install(&install_claude::default_dir())
        })?;
        eprintln!("claude: {}", bin.display());
        // One thread: setting our own environment for the runs below is sound.
        std::env::set_var("CCL_CLAUDE_BIN", &bin);
    }
    for bench in chosen {
        let mut cmd = cargo();
        match bench.kind {
            Kind::Example => cmd.args(["run", "--release", "--quiet", "--example", &bench.name, "--"]),
            Kind::Bench => cmd.args(["bench", "--quiet", "--bench", &bench.name, "--"]),
        };
        steps.run(&bench.name, || step::run(cmd.args(args)))?;
    }
    Ok(())
}

/// Every benchmark, sorted by name: `examples/*_bench.rs` and `benches/*.rs`.
fn benchmarks(root: &Path) -> Result<Vec<Benchmark>> {
    let mut found = Vec::new();
    for (dir, kind) in [("examples", Kind::Example), ("benches", Kind::Bench)] {
        let dir = root.join(dir);
        if !dir.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let source = entry?.path();
            if source.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let Some(name) = source.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            if kind == Kind::Bench || name.ends_with("_bench") {
                found.push(Benchmark { name, kind, source });
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_benchmark_is_found_and_the_real_client_one_asks_for_claude() {
        let all = benchmarks(project_root()).unwrap();
        let find = |name: &str| {
            all.iter()
                .find(|b| b.name == name)
                .unwrap_or_else(|| panic!("{name}: {all:?}"))
        };
        assert_eq!(find("tick_bench").kind, Kind::Example);
        assert_eq!(find("swap_bench").kind, Kind::Example);
        assert!(!find("swap_bench").needs_claude());
        let signal = find("signal_bench");
        assert_eq!(signal.kind, Kind::Bench);
        assert!(signal.needs_claude());
    }
}
