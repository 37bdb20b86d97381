//! Setting ccl up on a new machine (issue 19): where the configuration is found
//! (`-c`, `$CCL_CONFIG`, `./ccl.toml`, the XDG path) and what the error says when there
//! is none; `ccl init` writing a starter configuration from the Claude homes it finds;
//! a `claude.command` with `~` or a path that does not exist; a queue whose project does
//! not exist. Each runs the `ccl` binary with its own `HOME` and no tmux server.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::{BINS, CCL};
use ccl_testkit::fleet::{Fleet, FleetSpec};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A bare machine: an empty `HOME`, a working directory, no configuration anywhere.
struct Machine {
    _dir: tempfile::TempDir,
    home: PathBuf,
    cwd: PathBuf,
}

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::Builder::new().prefix("ccl-setup-").tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let home = root.join("home");
        let cwd = root.join("cwd");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&cwd).unwrap();
        Machine { _dir: dir, home, cwd }
    }

    /// `ccl ARGS` in `cwd` with this `HOME`, no `XDG_CONFIG_HOME` and no `CCL_CONFIG`
    /// unless `env` sets them.
    fn ccl(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new(CCL);
        cmd.args(args)
            .current_dir(&self.cwd)
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CCL_CONFIG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// A minimal valid configuration whose state_dir says which file it is.
    fn write_config(&self, path: &Path, tag: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\n[[account]]\nname = \"{tag}\"\nhome = \"~/.claude-{tag}\"\n",
            self.home.join("state").join(tag).display()
        );
        fs::write(path, text).unwrap();
    }
}

/// Which configuration `ccl status --json` read: its one account's name.
fn read_by(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["accounts"][0]["name"].as_str().unwrap().to_string()
}

#[test]
fn configuration_is_found_in_the_documented_order() {
    let m = Machine::new();
    let xdg = m.home.join(".config/ccl/ccl.toml");
    let env_file = m.home.join("elsewhere/env.toml");
    let local = m.cwd.join("ccl.toml");
    let explicit = m.home.join("explicit.toml");
    for (path, tag) in [
        (&xdg, "xdg"),
        (&env_file, "env"),
        (&local, "local"),
        (&explicit, "flag"),
    ] {
        m.write_config(path, tag);
    }
    let status = ["status", "--json"];
    let with_env: &[(&str, &Path)] = &[("CCL_CONFIG", &env_file)];
    let flag = ["-c", explicit.to_str().unwrap(), "status", "--json"];
    assert_eq!(read_by(&m.ccl(&flag, with_env)), "flag", "-c wins over everything");
    assert_eq!(
        read_by(&m.ccl(&status, with_env)),
        "env",
        "$CCL_CONFIG wins over ./ccl.toml"
    );
    assert_eq!(read_by(&m.ccl(&status, &[])), "local", "./ccl.toml before the XDG path");
    fs::remove_file(&local).unwrap();
    assert_eq!(
        read_by(&m.ccl(&status, &[])),
        "xdg",
        "~/.config/ccl/ccl.toml when XDG_CONFIG_HOME is unset"
    );
    let other_xdg = m.home.join("xdg");
    m.write_config(&other_xdg.join("ccl/ccl.toml"), "xdghome");
    assert_eq!(
        read_by(&m.ccl(&status, &[("XDG_CONFIG_HOME", &other_xdg)])),
        "xdghome",
        "$XDG_CONFIG_HOME/ccl/ccl.toml"
    );
}

#[test]
fn without_any_configuration_the_error_lists_where_it_looked_and_how_to_start() {
    let m = Machine::new();
    let out = m.ccl(&["status"], &[]);
    assert_eq!(out.status.code(), Some(2), "stdout: {}", stdout(&out));
    let err = stderr(&out);
    for want in [
        "no configuration found".to_string(),
        "$CCL_CONFIG (not set)".to_string(),
        m.cwd.join("ccl.toml").display().to_string(),
        m.home.join(".config/ccl/ccl.toml").display().to_string(),
        "ccl init".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    // A $CCL_CONFIG that names a missing file is an error about that file, not a
    // silent fall-through to another configuration.
    m.write_config(&m.cwd.join("ccl.toml"), "local");
    let missing = m.home.join("missing.toml");
    let out = m.ccl(&["status"], &[("CCL_CONFIG", &missing)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "cannot read configuration {} (from $CCL_CONFIG)",
            missing.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn init_writes_a_starter_config_from_the_claude_homes_it_finds_and_never_overwrites() {
    let m = Machine::new();
    for home in [".claude", ".claude-work", ".claude-second"] {
        fs::create_dir_all(m.home.join(home)).unwrap();
    }
    // Not account homes: Claude's own state file, and the shared target of the links.
    fs::write(m.home.join(".claude.json"), "{}").unwrap();
    fs::create_dir_all(m.home.join(".claude-shared")).unwrap();

    let out = m.ccl(&["init"], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let path = m.home.join(".config/ccl/ccl.toml");
    assert!(stdout(&out).contains(&path.display().to_string()), "{}", stdout(&out));
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.lines().filter(|l| l.starts_with('#')).count() > 20,
        "commented:\n{text}"
    );

    // The written file is what every later command reads, found at the XDG path.
    let out = m.ccl(&["status", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let accounts: Vec<(String, String)> = v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap().into(), a["home"].as_str().unwrap().into()))
        .collect();
    let h = |d: &str| m.home.join(d).display().to_string();
    assert_eq!(
        accounts,
        vec![
            ("main".to_string(), h(".claude")),
            ("second".to_string(), h(".claude-second")),
            ("work".to_string(), h(".claude-work")),
        ]
    );

    // Never overwrites: a second init refuses and leaves the operator's edits.
    fs::write(&path, format!("{text}\n# my edit\n")).unwrap();
    let out = m.ccl(&["init"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(fs::read_to_string(&path).unwrap().ends_with("# my edit\n"));
}

#[test]
fn init_on_a_machine_without_claude_homes_still_writes_a_config_that_parses() {
    let m = Machine::new();
    let xdg = m.home.join("xdg");
    let out = m.ccl(&["init"], &[("XDG_CONFIG_HOME", &xdg)]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(xdg.join("ccl/ccl.toml").is_file());
    assert!(stdout(&out).contains("no Claude home found"), "{}", stdout(&out));
    let out = m.ccl(&["status", "--json"], &[("XDG_CONFIG_HOME", &xdg)]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// The claude command

fn fleet(tag: &str) -> Fleet {
    Fleet::new(BINS, tag, FleetSpec::default())
}

#[test]
fn a_tilde_claude_command_expands_and_check_finds_it() {
    let f = fleet("setup-tilde");
    // HOME of the commands run by the fleet is ROOT/home.
    let bin = f.root.join("home/bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(crate::FAKE_CLAUDE, bin.join("claude")).unwrap();
    let claude = f.root.join("bin/claude").display().to_string();
    f.write_config_edited("", &[(&claude, "~/bin/claude")]);
    let out = f.ccl(&["check"], None);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("claude: {}", bin.join("claude").display())),
        "{text}\n{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_claude_command_is_reported_by_check_and_refused_by_run_before_tmux() {
    let f = fleet("setup-nocmd");
    let claude = f.root.join("bin/claude").display().to_string();
    let missing = f.root.join("bin/claude-typo").display().to_string();
    f.write_config_edited("", &[(&claude, &missing)]);
    let out = f.ccl(&["check"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("claude: {missing} does not exist or is not executable")),
        "{}",
        stdout(&out)
    );

    let out = f.ccl_timeout(&["run"], std::time::Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("refusing to start"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&missing), "{}", stderr(&out));
    assert_no_server(&f);

    f.write_config_edited("", &[(&claude, "no-such-claude-anywhere")]);
    let out = f.ccl_timeout(&["run"], std::time::Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("'no-such-claude-anywhere' not found on PATH"),
        "{}",
        stderr(&out)
    );
    assert_no_server(&f);
}

/// Nothing answers on the fleet's tmux socket: the daemon never started a server.
fn assert_no_server(f: &Fleet) {
    if Command::new("tmux").arg("-V").output().is_err() {
        return;
    }
    let out = f.tmux_raw(&["list-sessions"]);
    assert!(!out.status.success(), "a tmux server is running on {}", f.tmux.socket);
}

// ---------------------------------------------------------------------------------------
// A queue whose project does not exist

#[test]
fn a_queue_whose_project_does_not_exist_is_reported_refused_and_never_created() {
    let f = fleet("setup-noproj");
    let real = f.project("q").display().to_string();
    let typo = f.root.join("projcts/q").display().to_string();
    f.write_config_edited("", &[(&real, &typo)]);

    let out = f.ccl(&["check"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("queue 'q': project {typo} does not exist")),
        "{}",
        stdout(&out)
    );

    let out = f.ccl(&["enqueue", "q"], Some(b"a task"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("queue 'q': project {typo} does not exist")),
        "{}",
        stderr(&out)
    );

    let out = f.ccl_timeout(&["run"], std::time::Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("refusing to start"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&typo), "{}", stderr(&out));
    assert_no_server(&f);
    assert!(!f.root.join("projcts").exists(), "the mistyped project was created");
}
