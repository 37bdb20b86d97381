//! The decision core never reads a clock, a file, the environment or a process, and
//! never iterates a hash map (whose order would leak into the actions): replay depends
//! on it. This test reads the core's source files and fails on any such use outside
//! comments and test modules.

const CORE_FILES: &[&str] = &[
    "core.rs",
    "quota.rs",
    "dispatch.rs",
    "watcher.rs",
    "swap.rs",
    "sessions.rs",
    "accounts.rs",
    "meters.rs",
    "screen.rs",
];

const FORBIDDEN: &[&str] = &[
    "Instant::now",
    "SystemTime::now",
    "Timestamp::now",
    "Zoned::now",
    "TimeZone::system",
    "std::fs",
    "std::process",
    "Command::new",
    "std::env",
    "std::net",
    "HashMap",
    "HashSet",
    "rand::",
];

#[test]
fn the_core_modules_touch_no_clock_file_process_or_hash_order() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for file in CORE_FILES {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        // Unit tests at the bottom of a file may use the file system (fixtures).
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let code_part = line.split("//").next().unwrap_or("");
            for pattern in FORBIDDEN {
                if code_part.contains(pattern) {
                    found.push(format!("src/{file}:{}: {pattern}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "the core must stay sans-IO:\n{}", found.join("\n"));
}

#[test]
fn the_check_itself_catches_a_clock_read() {
    // Guards against the scan above silently matching nothing (a renamed file, say).
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in CORE_FILES {
        assert!(src.join(file).is_file(), "src/{file} is missing: update CORE_FILES");
    }
    let sample = "let t = std::time::SystemTime::now();";
    assert!(FORBIDDEN.iter().any(|p| sample.contains(p)));
}
