//! Real-tmux tier for `ccl-fake-claude`, the stand-in Claude Code that ccl's other tmux
//! tests and `ccl demo` run: it must draw the screens and write the registry, transcript
//! and prompt log that ccl reads, exactly as the real client does. Runs only with
//! `CCL_TEST_TMUX=1` (and then insists on tmux); each test owns a private tmux server that
//! a guard kills even when the test fails.

use std::cell::OnceCell;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ccl_testkit::{tmux_tier, wait_until};
use serde_json::Value;

/// Longest wait for any one condition; generous because CI machines are slow.
const WAIT_LIMIT: Duration = Duration::from_secs(20);
const IDLE_FOOTER: &str = "  ⏵⏵ bypass permissions on (shift+tab to cycle)";
/// Environment a pane must not inherit from whoever runs the tests.
const FOREIGN_VARS: [&str; 6] = [
    "CLAUDE_CONFIG_DIR",
    "FAKE_CLAUDE_LOG",
    "FAKE_CLAUDE_WORK_MS",
    "FAKE_CLAUDE_ENTER_GRACE_MS",
    "FAKE_CLAUDE_SCREEN",
    "TMUX",
];

/// A private tmux server plus the temporary directories of one test.
struct Fixture {
    socket: String,
    /// Known once the server runs; the guard removes the file.
    socket_path: OnceCell<String>,
    dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
        // tmux leaves its socket file behind when the server dies; remove it too.
        if let Some(path) = self.socket_path.get() {
            let _ = fs::remove_file(path);
        }
    }
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        // Through a link named `claude`, tmux reports `claude` as the pane's command.
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ccl-fake-claude"), bin.join("claude")).unwrap();
        Fixture {
            socket: format!("ccl-test-fake-{}-{tag}", std::process::id()),
            socket_path: OnceCell::new(),
            dir,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    fn claude(&self) -> String {
        self.root().join("bin/claude").display().to_string()
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket, "-f", "/dev/null"]);
        for var in FOREIGN_VARS {
            command.env_remove(var);
        }
        command
    }

    fn tmux(&self, args: &[&str]) -> String {
        self.tmux_with_input(args, "")
    }

    fn tmux_with_input(&self, args: &[&str], input: &str) -> String {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tmux runs");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A session running a shell in `workdir`, with `env` set for its pane.
    fn new_session(&self, name: &str, workdir: &Path, env: &[(&str, String)]) {
        let mut args = vec!["new-session", "-d", "-s", name, "-x", "120", "-y", "40"];
        let workdir = workdir.display().to_string();
        args.extend(["-c", &workdir]);
        let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for pair in &pairs {
            args.extend(["-e", pair]);
        }
        args.push("sh");
        self.tmux(&args);
        let path = self.tmux(&["display-message", "-p", "#{socket_path}"]);
        let _ = self.socket_path.set(path.trim().to_string());
    }

    /// Types a command line into the session's shell.
    fn run_in(&self, session: &str, command_line: &str) {
        let target = format!("={session}:");
        self.tmux(&["send-keys", "-t", &target, "-l", "--", command_line]);
        self.tmux(&["send-keys", "-t", &target, "Enter"]);
    }

    fn type_text(&self, session: &str, text: &str) {
        self.tmux(&["send-keys", "-t", &format!("={session}:"), "-l", "--", text]);
    }

    fn press(&self, session: &str, key: &str) {
        self.tmux(&["send-keys", "-t", &format!("={session}:"), key]);
    }

    fn paste(&self, session: &str, text: &str) {
        self.tmux_with_input(&["load-buffer", "-b", "x", "-"], text);
        let target = format!("={session}:");
        self.tmux(&["paste-buffer", "-p", "-d", "-b", "x", "-t", &target]);
    }

    fn screen(&self, session: &str) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-t", &format!("={session}:")])
    }

    fn pane_format(&self, session: &str, format: &str) -> String {
        let target = format!("={session}:");
        self.tmux(&["display-message", "-p", "-t", &target, format])
            .trim()
            .to_string()
    }

    /// Waits until the screen has every one of `lines` as a whole line.
    fn wait_for_lines(&self, session: &str, lines: &[&str]) -> String {
        wait_until(&format!("the lines {lines:?} in {session}"), WAIT_LIMIT, || {
            let screen = self.screen(session);
            let all = lines
                .iter()
                .all(|want| screen.lines().any(|line| line.trim_end() == *want));
            if all {
                Ok(screen)
            } else {
                Err(screen)
            }
        })
    }

    fn wait_for_command(&self, session: &str, command: &str) {
        wait_until(&format!("{session} to run {command}"), WAIT_LIMIT, || {
            let current = self.pane_format(session, "#{pane_current_command}");
            if current == command {
                Ok(())
            } else {
                Err(current)
            }
        });
    }
}

/// One account home and working directory.
struct Account {
    home: PathBuf,
    workdir: PathBuf,
    log: PathBuf,
}

impl Account {
    fn new(fixture: &Fixture, name: &str) -> Account {
        let home = fixture.root().join(name).join("home");
        let workdir = fixture.root().join(name).join("src.project");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&workdir).unwrap();
        Account {
            log: fixture.root().join(name).join("prompts.jsonl"),
            home,
            workdir,
        }
    }

    fn env(&self, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CLAUDE_CONFIG_DIR", self.home.display().to_string()),
            ("FAKE_CLAUDE_LOG", self.log.display().to_string()),
        ];
        env.extend(extra.iter().map(|(key, value)| (*key, value.to_string())));
        env
    }

    fn registry_files(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.home.join("sessions")) {
            Ok(entries) => entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The one registry record, once its status is `status`.
    fn wait_for_registry(&self, status: &str) -> Value {
        wait_until(&format!("a registry record with status {status}"), WAIT_LIMIT, || {
            let files = self.registry_files();
            let [file] = files.as_slice() else {
                return Err(format!("registry files: {files:?}"));
            };
            let record: Value = fs::read_to_string(file)
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
                .ok_or_else(|| format!("unreadable {}", file.display()))?;
            if record["status"] == status {
                Ok(record)
            } else {
                Err(record.to_string())
            }
        })
    }

    fn transcript(&self, session_id: &str) -> Vec<Value> {
        let project = self.workdir.display().to_string().replace(['/', '.'], "-");
        let path = self
            .home
            .join("projects")
            .join(project)
            .join(format!("{session_id}.jsonl"));
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON record per line"))
            .collect()
    }

    fn logged_prompts(&self) -> Vec<Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line per prompt"))
            .collect()
    }
}

fn test_session_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:08x}-1111-4222-8333-{:012x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    )
}

fn is_lowercase_uuid(text: &str) -> bool {
    text.len() == 36
        && text.chars().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

#[test]
fn without_an_account_home_it_refuses_to_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_ccl-fake-claude"))
        .env_remove("CLAUDE_CONFIG_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("CLAUDE_CONFIG_DIR"));
}

#[test]
fn a_pasted_task_is_answered_recorded_limited_and_resumed() {
    if !tmux_tier() {
        return;
    }
    let fixture = Fixture::new("conversation");
    let account = Account::new(&fixture, "main");
    let session_id = test_session_id();
    fixture.new_session("conv", &account.workdir, &account.env(&[]));
    fixture.run_in(
        "conv",
        &format!(
            "{} --dangerously-skip-permissions --model opus --session-id {session_id}",
            fixture.claude()
        ),
    );
    fixture.wait_for_lines("conv", &[IDLE_FOOTER, "❯"]);
    assert_eq!(fixture.pane_format("conv", "#{pane_current_command}"), "claude");

    let registry = account.wait_for_registry("idle");
    assert_eq!(registry["sessionId"], session_id.as_str());
    assert_eq!(registry["cwd"], account.workdir.display().to_string());
    assert_eq!(
        registry["tmux"],
        fixture
            .pane_format("conv", "#{session_name}:#{window_id}.#{pane_id}")
            .as_str()
    );

    // Characters that trip up send-keys (a leading dash, a trailing semicolon) must
    // arrive intact through a paste.
    let prompt = "Fix the flaky upload test;\n-- it fails one run in ten\n\tsee ci.log\n\
                  then rerun it twice [fake:work=3000ms]\nand report back;";
    fixture.paste("conv", prompt);
    fixture.wait_for_lines("conv", &["❯ [Pasted text #1 +4 lines]"]);
    fixture.press("conv", "Enter");
    fixture.wait_for_lines("conv", &["✢ Thinking…", "  esc to interrupt"]);
    account.wait_for_registry("busy");

    let quoted: String = prompt
        .chars()
        .take(60)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let answer = format!("● Done: {quoted}");
    let screen = fixture.wait_for_lines("conv", &[answer.trim_end(), IDLE_FOOTER]);
    let finished = screen
        .lines()
        .find(|l| l.starts_with("✻ Sautéed for "))
        .unwrap_or_else(|| panic!("no finished line in:\n{screen}"));
    let seconds: u64 = finished["✻ Sautéed for ".len()..]
        .trim_end()
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("{finished:?}"));
    assert!(seconds >= 3, "{finished:?}");
    assert!(screen.contains("> Fix the flaky upload test;"));
    account.wait_for_registry("idle");

    let records = account.transcript(&session_id);
    let kinds: Vec<&str> = records.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["user", "assistant", "system"]);
    assert_eq!(records[0]["message"]["role"], "user");
    assert_eq!(records[0]["message"]["content"], prompt);
    assert_eq!(
        records[1]["message"]["content"][0]["text"],
        answer.trim_start_matches("● ")
    );
    assert_eq!(records[2]["subtype"], "turn_duration");
    assert!(records[2]["durationMs"].as_u64().unwrap() >= 3000);
    for record in &records {
        assert!(is_lowercase_uuid(record["uuid"].as_str().unwrap()));
        let timestamp = record["timestamp"].as_str().unwrap();
        assert!(timestamp.parse::<jiff::Timestamp>().is_ok(), "{timestamp}");
        assert_eq!(record["sessionId"], session_id.as_str());
        assert_eq!(record["cwd"], account.workdir.display().to_string());
    }

    let logged = account.logged_prompts();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["text"], prompt);
    assert_eq!(logged[0]["sessionId"], session_id.as_str());
    assert_eq!(logged[0]["account"], account.home.display().to_string());
    assert_eq!(logged[0]["cwd"], account.workdir.display().to_string());

    // A 5-hour limit of this account stops the next turn before it answers.
    fs::write(account.home.join("fake-limit"), "five_hour 4:56pm (UTC)\n").unwrap();
    fixture.type_text("conv", "are we limited?");
    fixture.press("conv", "Enter");
    let banner = "  ⎿  You've hit your 5-hour limit · resets 4:56pm (UTC)";
    fixture.wait_for_lines(
        "conv",
        &[
            banner,
            "● Usage limit reached · continuing automatically at 4:56pm · esc to cancel",
            IDLE_FOOTER,
            "  ⚠ Usage limit reached · limit resets 4:56pm",
        ],
    );
    account.wait_for_registry("idle");
    let records = account.transcript(&session_id);
    let hit = records.last().unwrap();
    assert_eq!(hit["type"], "assistant");
    assert_eq!(hit["isApiErrorMessage"], true);
    assert_eq!(hit["apiErrorStatus"], 429);
    assert_eq!(hit["error"], "rate_limit");
    assert_eq!(hit["message"]["content"][0]["text"], banner.trim_start_matches("  ⎿  "));
    let n_finished = records.iter().filter(|r| r["subtype"] == "turn_duration").count();
    assert_eq!(n_finished, 1, "a limited turn must not finish");
    fs::remove_file(account.home.join("fake-limit")).unwrap();

    fixture.type_text("conv", "/exit");
    fixture.press("conv", "Enter");
    fixture.wait_for_lines(
        "conv",
        &[
            "Resume this session with:",
            &format!("claude --dangerously-skip-permissions --resume {session_id}"),
        ],
    );
    wait_until("the registry file to go", WAIT_LIMIT, || {
        let files = account.registry_files();
        if files.is_empty() {
            Ok(())
        } else {
            Err(format!("{files:?}"))
        }
    });
    fixture.wait_for_command("conv", "sh");

    // Resuming redraws the old exchanges, the old banner included, but no live footer.
    fixture.run_in("conv", &format!("{} --resume {session_id}", fixture.claude()));
    let screen = fixture.wait_for_lines("conv", &[banner, "> are we limited?", IDLE_FOOTER]);
    assert!(screen.contains("> Fix the flaky upload test;"));
    assert!(!screen.contains("⚠ Usage limit reached"), "{screen}");
    assert_eq!(account.wait_for_registry("idle")["sessionId"], session_id.as_str());
    fixture.type_text("conv", "/exit");
    fixture.press("conv", "Enter");
    fixture.wait_for_command("conv", "sh");
    let texts: Vec<Value> = account
        .logged_prompts()
        .into_iter()
        .map(|r| r["text"].clone())
        .collect();
    assert_eq!(texts, [prompt, "are we limited?", "/exit", "/exit"]);
}

#[test]
fn a_weekly_limit_holds_the_keyboard_and_a_server_error_offers_a_resend() {
    if !tmux_tier() {
        return;
    }
    let fixture = Fixture::new("limits");
    let account = Account::new(&fixture, "second");
    fixture.new_session("lim", &account.workdir, &account.env(&[]));
    fixture.run_in("lim", &format!("{} --dangerously-skip-permissions", fixture.claude()));
    fixture.wait_for_lines("lim", &[IDLE_FOOTER]);
    let session_id = account.wait_for_registry("idle")["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(is_lowercase_uuid(&session_id), "{session_id}");

    fs::write(account.home.join("fake-limit"), "weekly Nov 27, 6:26am (UTC)\n").unwrap();
    fixture.type_text("lim", "start the weekly report");
    fixture.press("lim", "Enter");
    fixture.wait_for_lines(
        "lim",
        &[
            "  ⎿  You've hit your weekly limit · resets Nov 27, 6:26am (UTC)",
            " What do you want to do?",
            " ❯ 1. Stop and wait for limit to reset",
            "   2. Wait here, then continue automatically at Nov 27, 6:26am",
            "   3. Upgrade your plan",
            " Enter to confirm · Esc to cancel",
        ],
    );
    account.wait_for_registry("idle");
    // The menu swallows typing; only Escape brings the input box back, and empty.
    fixture.type_text("lim", "typed into the menu");
    fixture.press("lim", "Escape");
    let screen = fixture.wait_for_lines("lim", &["❯", IDLE_FOOTER]);
    assert!(!screen.contains("typed into the menu"), "{screen}");
    assert!(!screen.contains("What do you want to do?"), "{screen}");

    fs::write(
        account.home.join("fake-limit"),
        "error500 upstream said: rate limit exceeded\n",
    )
    .unwrap();
    fixture.type_text("lim", "try once more");
    fixture.press("lim", "Enter");
    fixture.wait_for_lines(
        "lim",
        &[
            "● API Error: 500 Internal server error. This is a server-side issue, usually \
             temporary — try again in a moment. upstream said: rate limit exceeded",
            "❯ Resend your message to try again",
            IDLE_FOOTER,
        ],
    );
    account.wait_for_registry("idle");
    let records = account.transcript(&session_id);
    let statuses: Vec<u64> = records.iter().filter_map(|r| r["apiErrorStatus"].as_u64()).collect();
    assert_eq!(statuses, [429, 500]);
    assert!(records.iter().all(|r| r["subtype"] != "turn_duration"));

    // SIGHUP (the pane going away) removes the registry file too.
    fixture.tmux(&["kill-session", "-t", "=lim"]);
    wait_until("the registry file to go after SIGHUP", WAIT_LIMIT, || {
        let files = account.registry_files();
        if files.is_empty() {
            Ok(())
        } else {
            Err(format!("{files:?}"))
        }
    });
}

#[test]
fn an_enter_right_after_a_paste_is_swallowed_within_the_grace() {
    if !tmux_tier() {
        return;
    }
    let fixture = Fixture::new("grace");
    let account = Account::new(&fixture, "third");
    let env = account.env(&[("FAKE_CLAUDE_ENTER_GRACE_MS", "1000")]);
    fixture.new_session("grace", &account.workdir, &env);
    fixture.run_in("grace", &fixture.claude());
    fixture.wait_for_lines("grace", &[IDLE_FOOTER]);

    let prompt = "one\ntwo\nthree";
    fixture.paste("grace", prompt);
    fixture.press("grace", "Enter");
    // Keys arrive in order: if the Enter had submitted, the box would hold only `z`.
    fixture.type_text("grace", "z");
    fixture.wait_for_lines("grace", &["❯ [Pasted text #1 +2 lines]z"]);
    assert!(account.logged_prompts().is_empty());

    fixture.press("grace", "BSpace");
    fixture.wait_for_lines("grace", &["❯ [Pasted text #1 +2 lines]"]);
    // Once the grace is over an Enter submits; press it until it does.
    let logged = wait_until("an Enter after the grace to submit", WAIT_LIMIT, || {
        fixture.press("grace", "Enter");
        let logged = account.logged_prompts();
        if logged.is_empty() {
            Err(fixture.screen("grace"))
        } else {
            Ok(logged)
        }
    });
    assert_eq!(logged[0]["text"], prompt);
}

#[test]
fn the_trust_dialog_waits_and_declining_exits_with_status_1() {
    if !tmux_tier() {
        return;
    }
    let fixture = Fixture::new("trust");
    let account = Account::new(&fixture, "fourth");
    let env = account.env(&[("FAKE_CLAUDE_SCREEN", "trust")]);
    fixture.new_session("trust", &account.workdir, &env);
    fixture.run_in("trust", &format!("{}; echo \"status=$?\"", fixture.claude()));
    let screen = fixture.wait_for_lines(
        "trust",
        &[
            " ❯ No, exit",
            "   Yes, I trust this folder",
            " Enter to confirm · Esc to cancel",
        ],
    );
    assert!(screen.contains("Quick safety check: Is this a project you created or one you trust?"));
    assert!(!screen.contains(IDLE_FOOTER));
    assert!(account.registry_files().is_empty());
    fixture.press("trust", "Escape");
    fixture.wait_for_lines("trust", &["status=1"]);
    assert!(account.logged_prompts().is_empty());
}

#[test]
fn a_prompt_on_the_command_line_is_submitted_as_it_starts_and_option_values_are_not_prompts() {
    if !tmux_tier() {
        return;
    }
    let fixture = Fixture::new("argv-prompt");
    let account = Account::new(&fixture, "main");
    let session_id = test_session_id();
    fixture.new_session("argv", &account.workdir, &account.env(&[]));
    // `--settings FILE` and `--model NAME` take values; only the last bare word is a prompt.
    fixture.run_in(
        "argv",
        &format!(
            "{} --dangerously-skip-permissions --settings /nonexistent/settings.json --model opus \
             --session-id {session_id} 'Go on, it'\\''s fine. [fake:work=200ms]'",
            fixture.claude()
        ),
    );
    fixture.wait_for_lines("argv", &["● Done: Go on, it's fine. [fake:work=200ms]", IDLE_FOOTER]);
    let prompts = account.logged_prompts();
    assert_eq!(prompts.len(), 1, "{prompts:#?}");
    assert_eq!(prompts[0]["text"], "Go on, it's fine. [fake:work=200ms]");
    assert_eq!(prompts[0]["sessionId"], session_id.as_str());
    let users: Vec<Value> = account
        .transcript(&session_id)
        .into_iter()
        .filter(|r| r["type"] == "user")
        .collect();
    assert_eq!(users.len(), 1, "{users:#?}");
}
