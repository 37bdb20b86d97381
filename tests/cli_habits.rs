//! What a user expects of a Rust command-line tool (issue 19): shell completions and a
//! man page, `-` for stdin, `ccl replay --verbose` printing every decision, a value error
//! naming its key, `check` comparing tmux's version with the minimum, and an interrupted
//! demo exiting 130 with nothing left behind. Every command runs with its own `HOME`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::{BINS, CCL};
use ccl_testkit::fleet::{Fleet, FleetSpec};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ccl ARGS` with an empty `HOME` of its own and no configuration anywhere.
fn ccl(home: &Path, args: &[&str]) -> Output {
    Command::new(CCL)
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
fn completions_for_bash_zsh_and_fish_name_every_subcommand() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = ccl(home.path(), &["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        for sub in [
            "run", "check", "enqueue", "status", "swap", "replay", "init", "show", "retry",
        ] {
            assert!(text.contains(sub), "{shell} completions lack {sub}");
        }
    }
    // The bash script is valid bash.
    let script = home.path().join("ccl.bash");
    fs::write(&script, ccl(home.path(), &["completions", "bash"]).stdout).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "{}", stderr(&syntax));

    let out = ccl(home.path(), &["completions", "tcsh-not-a-shell"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_man_page_is_roff_describing_the_commands() {
    let home = tempfile::tempdir().unwrap();
    let out = ccl(home.path(), &["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with(".ie") || text.contains("\n.TH ccl"), "{text}");
    assert!(text.contains("enqueue"), "{text}");
}

#[test]
fn help_explains_arguments_with_examples() {
    let home = tempfile::tempdir().unwrap();
    for (args, wants) in [
        (
            &["links", "--help"][..],
            &["--fix", "Create missing links", "Examples:"][..],
        ),
        (&["status", "--help"], &["--json", "stable", "Examples:"]),
        (&["enqueue", "--help"], &["<QUEUE>", "[FILE]", "'-'", "Examples:"]),
        (&["swap", "--help"], &["--to <ACCOUNT>", "Examples:"]),
        (&["replay", "--help"], &["<TRACE>", "--verbose", "Examples:"]),
    ] {
        let out = ccl(home.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = stdout(&out);
        for want in wants {
            assert!(text.contains(want), "`ccl {}` lacks {want:?}:\n{text}", args.join(" "));
        }
    }
}

#[test]
fn replay_verbose_prints_every_decision_of_every_turn() {
    let home = tempfile::tempdir().unwrap();
    let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces/manual_swap.jsonl");
    let n_actions: usize = fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|l| l.get("actions").and_then(|a| a.as_array()).map(Vec::len))
        .sum();
    assert!(n_actions > 5);
    let plain = ccl(home.path(), &["replay", &trace.to_string_lossy()]);
    assert_eq!(plain.status.code(), Some(0));
    assert_eq!(stdout(&plain).lines().count(), 1, "{}", stdout(&plain));

    let out = ccl(home.path(), &["replay", "--verbose", &trace.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let decisions = text.lines().filter(|l| l.starts_with("  ")).count();
    assert_eq!(decisions, n_actions, "one indented line per action:\n{text}");
    assert!(text.lines().any(|l| l.starts_with("turn 1 ")), "{text}");
    assert!(text.contains("swap from"), "{text}");
    assert!(text.trim_end().ends_with("all actions match"), "{text}");
}

#[test]
fn a_value_error_names_its_key_and_place() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("ccl.toml");
    fs::write(
        &path,
        "[daemon]\ntick = \"soon\"\n[[account]]\nname = \"a\"\nhome = \"~/a\"\n",
    )
    .unwrap();
    let out = ccl(home.path(), &["-c", &path.to_string_lossy(), "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "ccl: {}:2:8: daemon.tick: duration 'soon' must start with a whole number",
            path.display()
        )
    );
    fs::write(
        &path,
        "[[account]]\nname = \"a\"\nhome = \"~/a\"\n\n[quota]\nconfirm_polls = \"two\"\n",
    )
    .unwrap();
    let out = ccl(home.path(), &["-c", &path.to_string_lossy(), "check"]);
    assert!(
        stderr(&out).contains(":6:17: quota.confirm_polls: invalid type"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn enqueue_dash_reads_the_task_from_stdin() {
    let f = Fleet::new(BINS, "habits-dash", FleetSpec::default());
    let out = f.ccl(&["enqueue", "q", "-"], Some(b"a task from a pipe\n"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let name = stdout(&out).trim().to_string();
    let body = fs::read_to_string(f.queue_dir("q", "inbox").join(&name)).unwrap();
    assert_eq!(body, "a task from a pipe\n");
}

#[test]
fn status_watch_into_a_pipe_prints_timed_snapshots_without_control_codes() {
    let f = Fleet::new(BINS, "habits-watch", FleetSpec::default());
    let mut child = Command::new(CCL)
        .arg("-c")
        .arg(&f.config_path)
        .args(["status", "--watch"])
        .env("HOME", f.root.join("home"))
        .env("COLUMNS", "80")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while lines.iter().filter(|l: &&String| l.starts_with("daemon:")).count() < 2 {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(rx);
    let _ = reader.join();
    let text = lines.join("\n");
    let snapshots: Vec<&String> = lines.iter().filter(|l| l.starts_with("daemon:")).collect();
    assert_eq!(snapshots.len(), 2, "two snapshots:\n{text}");
    for s in snapshots {
        assert!(s.starts_with("daemon: not running · status at 20"), "{s}");
    }
    assert!(!text.contains('\x1b'), "no control codes into a pipe:\n{text}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{text}");
}

/// `ccl status --watch | head -3` is how an operator glances at the fleet: when the
/// reader goes away, ccl ends quietly, as other command-line tools do, instead of
/// panicking about a broken pipe.
#[test]
fn status_into_a_pipe_that_closes_ends_quietly() {
    let f = Fleet::new(BINS, "habits-pipe", FleetSpec::default());
    let mut child = Command::new(CCL)
        .arg("-c")
        .arg(&f.config_path)
        .args(["status", "--watch"])
        .env("HOME", f.root.join("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first line, then close the pipe, as `head -1` does.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("daemon: not running"), "{first}");
    // A watch that never notices its reader is gone would run forever: it is killed when
    // the wait times out.
    let out = ccl_testkit::output_within(child, "ccl to end after its reader went away", Duration::from_secs(20));
    let err = stderr(&out);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "ended by {:?}",
        out.status
    );
}

#[test]
fn check_reports_a_tmux_older_than_the_minimum() {
    let f = Fleet::new(BINS, "habits-tmuxv", FleetSpec::default());
    let bin = f.root.join("oldbin");
    fs::create_dir_all(&bin).unwrap();
    let tmux = bin.join("tmux");
    fs::write(&tmux, "#!/bin/sh\necho 'tmux 3.1c'\n").unwrap();
    fs::set_permissions(&tmux, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(CCL)
        .arg("-c")
        .arg(&f.config_path)
        .arg("check")
        .env("HOME", f.root.join("home"))
        .env("PATH", path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("problem: tmux: tmux 3.1c is older than 3.2, the oldest ccl supports"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_interrupted_demo_exits_130_and_leaves_no_tmux_server() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(CCL)
        .arg("demo")
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut socket = None;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
        if let Some(s) = line.trim().strip_prefix("tmux socket:") {
            socket = Some(s.trim().to_string());
        }
        // Anything after the header's last line: the daemon runs and is being watched.
        let after_header = seen.iter().any(|l: &String| l.starts_with("daemon log:"));
        seen.push(line);
        if socket.is_some() && after_header {
            break;
        }
    }
    let socket = socket.unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the demo never said its socket and start:\n{}", seen.join("\n"))
    });
    // SAFETY: signalling our own child, which has not been reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = ccl_testkit::wait_until("the demo to exit", Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "{}", seen.join("\n"));
    let probe = Command::new("tmux")
        .args(["-L", &socket, "list-sessions"])
        .env_remove("TMUX")
        .output()
        .unwrap();
    assert!(!probe.status.success(), "a tmux server still answers on {socket}");
}
