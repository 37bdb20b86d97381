//! The screen corpus: every `tests/screens/NAME.txt` pane capture is classified and its
//! `ccl classify` JSON compared with `NAME.json`. Adding a case is adding those two files
//! (see tests/screens/README.md); `UPDATE_EXPECT=1 cargo test --test integration screen_corpus`
//! rewrites the .json files from the actual output instead of failing.

use std::fs;
use std::path::{Path, PathBuf};

use ccl_core::screen::{analyze, classify_json};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The instant every capture is classified at.
const NOW: &str = "2026-11-24T06:00:00Z";

/// Fewest cases the corpus must hold, so a broken directory walk cannot pass silently.
const MIN_CASES: usize = 20;

#[test]
fn screen_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/screens");
    // Cases sit in tests/screens/ and one level of subdirectories (e.g. real-2.1.328/,
    // screens captured from the real client by its test tier).
    let dirs = case_dirs(&dir);
    let mut captures: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| fs::read_dir(d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display())))
        .map(|entry| entry.expect("listing tests/screens").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    captures.sort();
    assert!(
        captures.len() >= MIN_CASES,
        "only {} captures in {}",
        captures.len(),
        dir.display()
    );
    let mut failures: Vec<String> = captures.iter().filter_map(|p| check(p).err()).collect();
    failures.extend(dirs.iter().flat_map(|d| orphans(d)));
    assert!(
        failures.is_empty(),
        "{} problem(s) in {} screen cases (UPDATE_EXPECT=1 to accept new output):\n\n{}",
        failures.len(),
        captures.len(),
        failures.join("\n\n")
    );
}

/// `dir` and its immediate subdirectories.
fn case_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![dir.to_path_buf()];
    let mut subs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("listing tests/screens").path())
        .filter(|p| p.is_dir())
        .collect();
    subs.sort();
    dirs.extend(subs);
    dirs
}

/// Classifies one capture and compares the JSON with the expected file next to it.
fn check(capture_path: &Path) -> Result<(), String> {
    let name = capture_path.display().to_string();
    let capture = fs::read_to_string(capture_path).map_err(|e| format!("{name}: {e}"))?;
    let tz = zone_for(capture_path)?;
    let now: Timestamp = NOW.parse().unwrap();
    let actual = classify_json(&analyze(&capture, now, &tz));
    let actual_text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
    let expect_path = capture_path.with_extension("json");

    if std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1") {
        let current = fs::read_to_string(&expect_path).unwrap_or_default();
        if current != actual_text {
            fs::write(&expect_path, &actual_text).map_err(|e| format!("{name}: {e}"))?;
        }
        return Ok(());
    }

    let expected_text = fs::read_to_string(&expect_path)
        .map_err(|e| format!("{name}: no expected output ({e}); run with UPDATE_EXPECT=1"))?;
    let expected: serde_json::Value =
        serde_json::from_str(&expected_text).map_err(|e| format!("{name}: {}: {e}", expect_path.display()))?;
    if expected == actual {
        return Ok(());
    }
    let expected_pretty = serde_json::to_string_pretty(&expected).unwrap() + "\n";
    Err(format!(
        "{name} (- expected, + actual):\n{}",
        diff(&expected_pretty, &actual_text)
    ))
}

/// Expected files and zone files whose capture is gone (a renamed or deleted case).
fn orphans(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(dir)
        .expect("listing tests/screens")
        .map(|entry| entry.expect("listing tests/screens").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "tz"))
        .filter(|p| !p.with_extension("txt").exists())
        .map(|p| format!("{}: no capture {}", p.display(), p.with_extension("txt").display()))
        .collect();
    found.sort();
    found
}

/// The host zone a case is classified in: UTC, or the zone named in `NAME.tz`.
fn zone_for(capture_path: &Path) -> Result<TimeZone, String> {
    let tz_path = capture_path.with_extension("tz");
    match fs::read_to_string(&tz_path) {
        Ok(name) => TimeZone::get(name.trim()).map_err(|e| format!("{}: {e}", tz_path.display())),
        Err(_) => Ok(TimeZone::UTC),
    }
}

/// A line diff (longest common subsequence) of two short texts.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out += &format!("  {}\n", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("- {}\n", a[i]);
            i += 1;
        } else {
            out += &format!("+ {}\n", b[j]);
            j += 1;
        }
    }
    out
}
