//! The decision core (`crates/ccl-core`) never reads a clock, a file, the environment or a
//! process, and never iterates a hash map (whose order would leak into the actions):
//! replay depends on it. Two mechanisms keep it so, and these tests check that each one
//! really holds the line:
//!
//! - the crate boundary: `ccl-core` depends on no crate that does IO;
//! - `crates/ccl-core/clippy.toml`: a type-aware list of forbidden methods and types that
//!   `cargo clippy -- -D warnings` (run by `cargo xtask ci`) turns into a build failure. The second
//!   test runs clippy on a copy of the core with IO slipped in under renamed imports and
//!   expects every one of them refused.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates that do IO (or exist to): none may appear among ccl-core's normal dependencies,
/// direct or not.
const IO_CRATES: &[&str] = &[
    "libc",
    "nix",
    "signal-hook",
    "signal-hook-registry",
    "crossbeam-channel",
    "tempfile",
    "notify",
    "env_logger",
    "mio",
    "tokio",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

#[test]
fn the_core_crate_depends_on_no_io_crate() {
    let out = cargo()
        .current_dir(root())
        .args([
            "tree",
            "-p",
            "ccl-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    // The listing is real: the core's own name and a dependency it cannot do without.
    assert!(crates.contains(&"ccl-core") && crates.contains(&"jiff"), "{tree}");
    let io: Vec<&&str> = IO_CRATES.iter().filter(|c| crates.contains(c)).collect();
    assert!(io.is_empty(), "ccl-core depends on IO crates {io:?}:\n{tree}");
}

/// Copies the core crate (sources, manifest, clippy.toml) into `dir` as a workspace of its
/// own, with the project's lock file so that the same versions build offline.
fn copy_core(dir: &Path) {
    let from = root().join("crates/ccl-core");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    for entry in std::fs::read_dir(from.join("src")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("src").join(entry.file_name())).unwrap();
    }
    std::fs::copy(from.join("clippy.toml"), dir.join("clippy.toml")).unwrap();
    let manifest = std::fs::read_to_string(from.join("Cargo.toml")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), format!("{manifest}\n[workspace]\n")).unwrap();
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
}

#[test]
fn clippy_refuses_clocks_files_environment_processes_and_hash_order_in_the_core() {
    let tmp = tempfile::tempdir().unwrap();
    let krate = tmp.path().join("ccl-core");
    copy_core(&krate);
    // Each leak hides behind a renamed or grouped import, which a text search would miss.
    let leak = r#"
pub mod leak {
    use std::collections::HashMap as Table;
    use std::fs::read as slurp;
    use std::{env, process, time};

    pub fn leaks() -> usize {
        let bytes = slurp("/etc/hostname").unwrap_or_default();
        let home = env::var_os("HOME");
        let started = time::Instant::now();
        let zone = jiff::tz::TimeZone::get("Europe/Paris").ok();
        let mut seen: Table<u32, u32> = Table::new();
        seen.insert(process::id(), 1);
        bytes.len() + home.map_or(0, |h| h.len()) + started.elapsed().as_secs() as usize
            + zone.map_or(0, |_| 1)
            + seen.len()
    }
}
"#;
    let lib = krate.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, format!("{text}{leak}")).unwrap();

    // Its own target directory beside the project's, kept between runs so only the first
    // one checks the dependencies.
    let target = root().join("target").join("core-purity-check");
    let out = cargo()
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("CLIPPY_CONF_DIR")
        .args(["clippy", "--offline", "--quiet", "--", "-D", "warnings"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "clippy accepted IO in the core:\n{stderr}");
    for refused in [
        "disallowed method `std::fs::read`",
        "disallowed method `std::env::var_os`",
        "disallowed method `std::time::Instant::now`",
        "disallowed method `jiff::tz::TimeZone::get`",
        "disallowed method `std::process::id`",
        "disallowed type `std::collections::HashMap`",
    ] {
        assert!(stderr.contains(refused), "clippy did not refuse {refused}:\n{stderr}");
    }
    // Nothing but the slipped-in module was refused: the core itself is clean.
    let elsewhere: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("--> ") && !l.contains("src/lib.rs"))
        .collect();
    assert!(elsewhere.is_empty(), "clippy refused the core itself:\n{stderr}");
}
