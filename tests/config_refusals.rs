//! Configuration that `ccl check` used to accept although `ccl run` could not work with
//! it (a pool prefix tmux renames, a timeout that overflows, a pool past `u32::MAX`, a
//! control character in the launch environment, two account homes that are one
//! directory): both commands refuse each with `file:line:col`, before touching tmux or
//! any account. Runs the `ccl` binary with a `HOME` of its own; needs no tmux.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const CCL: &str = env!("CARGO_BIN_EXE_ccl");

fn ccl(home: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(CCL)
        .arg("-c")
        .arg(config)
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CCL_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn check_and_run_refuse_what_run_could_not_work_with_naming_line_and_column() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir(h.join("claude-a")).unwrap();
    std::os::unix::fs::symlink(h.join("claude-a"), h.join("claude-b")).unwrap();
    let accounts = format!("[[account]]\nname = \"a\"\nhome = \"{d}/claude-a\"\n", d = h.display());
    let second = format!("[[account]]\nname = \"b\"\nhome = \"{d}/claude-b\"\n", d = h.display());
    let cases: [(&str, String, &str); 5] = [
        (
            "prefix",
            format!("{accounts}[pool]\nprefix = \"ccl.auto-\"\n"),
            ":5:10: pool.prefix",
        ),
        (
            "timeout",
            format!("{accounts}[dispatch]\ntask_timeout = \"200000000000d\"\n"),
            ":5:16: dispatch.task_timeout: duration '200000000000d' is too large",
        ),
        (
            "start_index",
            format!("{accounts}[pool]\nstart_index = 4294967295\nmin = 1\nmax = 1\n"),
            ":5:15: pool.start_index + pool.max",
        ),
        (
            "env",
            format!("{accounts}[claude]\nenv = {{ TOKEN = \"abc\\ndef\" }}\n"),
            ":5:17: claude.env value of 'TOKEN' contains a control character",
        ),
        ("homes", format!("{accounts}{second}"), ":6:8: account 'b' home"),
    ];
    for (what, text, want) in cases {
        let config = h.join(format!("{what}.toml"));
        std::fs::write(&config, &text).unwrap();
        for command in ["check", "run"] {
            let out = ccl(h, &config, &[command]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what}: ccl {command}: {err}");
            let place = format!("{}{want}", config.display());
            assert!(err.contains(&place), "{what}: ccl {command}: want {place:?} in:\n{err}");
        }
    }
}
