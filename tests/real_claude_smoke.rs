//! The real Claude Code against `ccl_testkit::mockapi` in a private tmux server: proof that the
//! facts ccl relies on (screens, transcript records, the resume hint, how accounts are
//! told apart) hold for the pinned build, and the source of the real screens in
//! `tests/screens/real-VERSION/`. Gated by `CCL_TEST_CLAUDE=1` (which needs the real-tmux
//! tier, `CCL_TEST_TMUX=1`, too); the binary comes from `CCL_CLAUDE_BIN`, else from
//! `.cache/claude` as `cargo xtask install-claude .cache/claude` installs it. With
//! `CCL_SAVE_SCREENS=1` every distinct screen seen is written to
//! `tests/screens/real-VERSION/NAME.txt` for the screen corpus. The binary lookup, the
//! account home and the environment that points Claude at the mock are the daemon
//! tier's (`crates/ccl-testkit/src/real.rs`), so both tiers prove the same setup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ccl_core::util::shell_quote;
use ccl_testkit::mockapi::{Behaviour, MockApi};
use ccl_testkit::real::{self, claude_version, now_unix, prepare_home, BUSY_FOOTER, FOREIGN_VARS};
use ccl_testkit::{tmux_tier, wait_until, TmuxServer};
use serde_json::Value;

/// Longest wait for one screen; the first start of the 370 MB binary is slow on CI.
const WAIT: Duration = Duration::from_secs(60);
const TOKEN_A: &str = "sk-ant-oat01-smoke-account-a";
const TOKEN_B: &str = "sk-ant-oat01-smoke-account-b";
const SESSION_NAME: &str = "ccl-auto-11";
const IDLE_FOOTER: &str = "⏵⏵ bypass permissions on (shift+tab to cycle)";
/// The real Claude Code binary, or None (with a note) when the tier is not asked for;
/// asked for, it needs the real-tmux tier too.
fn claude_bin() -> Option<PathBuf> {
    let bin = real::claude_bin()?;
    assert!(
        tmux_tier(),
        "CCL_TEST_CLAUDE=1 needs the real-tmux tier as well: set CCL_TEST_TMUX=1"
    );
    Some(bin)
}

/// The directory name Claude gives a working directory under `projects/`, as observed on
/// 2.1.328: every character that is not an ASCII letter or digit becomes `-`.
fn project_slug(cwd: &Path) -> String {
    cwd.to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// A reset time `ahead_s` from now on a whole minute that is not a whole hour, so the
/// screen shows it as `H:MMam` and the expectation below cannot be off by rounding.
fn reset_in(ahead_s: i64) -> i64 {
    let mut reset_unix = (now_unix() + ahead_s) / 60 * 60;
    if reset_unix % 3600 == 0 {
        reset_unix += 7 * 60;
    }
    reset_unix
}

/// How Claude writes a reset time in the pane (TZ=UTC): `9:56am`, with the date first
/// (`Nov 27, 7:19am`) when `with_date`.
fn reset_text(reset_unix: i64, with_date: bool) -> String {
    let zoned = jiff::Timestamp::from_second(reset_unix)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC);
    let hour = zoned.hour();
    let hour_12 = if hour % 12 == 0 { 12 } else { hour % 12 };
    let half = if hour < 12 { "am" } else { "pm" };
    let time = format!("{hour_12}:{:02}{half}", zoned.minute());
    if with_date {
        format!("{} {}, {time}", zoned.strftime("%b"), zoned.day())
    } else {
        time
    }
}

/// One real Claude Code under one account, in session `SESSION_NAME` of a private tmux
/// server, working in a fresh trusted directory.
struct Claude {
    server: TmuxServer,
    config_dir: PathBuf,
    workdir: PathBuf,
    session_id: String,
    screens_dir: PathBuf,
    save_screens: bool,
    _tmp: tempfile::TempDir,
}

impl Claude {
    fn launch(bin: &Path, mock: &MockApi, token: &str, session_id: &str, tag: &str) -> Claude {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let config_dir = root.join("home");
        let workdir = root.join("work");
        std::fs::create_dir_all(&config_dir).unwrap();
        std::fs::create_dir_all(&workdir).unwrap();
        let version = claude_version(bin);
        prepare_home(&config_dir, &version, std::slice::from_ref(&workdir), token);

        // Claude is typed into an interactive shell, as a user starts it: job control puts
        // it in the foreground process group (so the pane shows `claude.exe`), and the
        // shell is still there after `/exit` to show the resume hint.
        let unset: String = FOREIGN_VARS.iter().map(|v| format!(" -u {v}")).collect();
        let command = format!("exec env{unset} bash --noprofile --norc -i");
        let claude = format!(
            "{} --dangerously-skip-permissions --session-id {session_id}",
            shell_quote(&bin.to_string_lossy())
        );
        let server = TmuxServer::new(tag);
        let mut env = vec![format!("CLAUDE_CONFIG_DIR={}", config_dir.display())];
        env.extend(real::claude_env(mock).into_iter().map(|(k, v)| format!("{k}={v}")));
        let workdir_text = workdir.to_string_lossy().into_owned();
        let mut args = vec![
            "new-session",
            "-d",
            "-s",
            SESSION_NAME,
            "-x",
            "200",
            "-y",
            "50",
            "-c",
            &workdir_text,
        ];
        for var in &env {
            args.extend(["-e", var.as_str()]);
        }
        args.push(&command);
        server.cmd(&args);
        let target = format!("={SESSION_NAME}:");
        wait_until("the shell prompt", WAIT, || {
            let screen = server.cmd(&["capture-pane", "-p", "-t", &target]);
            let prompt = screen.trim_end();
            (prompt.ends_with('$') || prompt.ends_with('#')).then_some(())
        });
        server.cmd(&["send-keys", "-t", &target, "-l", "--", &claude]);
        server.cmd(&["send-keys", "-t", &target, "Enter"]);
        let save_screens = std::env::var("CCL_SAVE_SCREENS").as_deref() == Ok("1");
        Claude {
            server,
            config_dir,
            workdir,
            session_id: session_id.to_string(),
            screens_dir: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/screens")
                .join(format!("real-{version}")),
            save_screens,
            _tmp: tmp,
        }
    }

    fn target(&self) -> String {
        format!("={SESSION_NAME}:")
    }

    fn screen(&self) -> String {
        self.server.cmd(&["capture-pane", "-p", "-t", &self.target()])
    }

    fn pane_command(&self) -> String {
        let target = self.target();
        let args = ["display-message", "-p", "-t", &target, "#{pane_current_command}"];
        self.server.cmd(&args).trim().to_string()
    }

    /// Waits until `ok` holds for the screen and returns that screen; the panic shows the
    /// last screen seen, which is what one needs to see when a wording changed.
    fn wait_screen(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        wait_until(what, WAIT, || {
            let screen = self.screen();
            // Claude puts a no-break space after the `❯` of the input line; the
            // expectations here are written with plain spaces.
            if ok(&screen.replace('\u{a0}', " ")) {
                Ok(screen)
            } else {
                Err(format!("the screen:\n{screen}"))
            }
        })
    }

    /// Idle: the empty input line between the rules and the footer, nothing working.
    fn wait_idle(&self, what: &str) -> String {
        self.wait_screen(what, |s| {
            s.lines().any(|l| l.trim_end() == "❯") && s.contains(IDLE_FOOTER) && !s.contains(BUSY_FOOTER)
        })
    }

    /// Pastes `text` as a bracketed paste, waits until its first line shows in the input
    /// box, then submits it with a separate Enter.
    fn submit(&self, text: &str) {
        let buffer_file = self._tmp.path().join("prompt.txt");
        std::fs::write(&buffer_file, text).unwrap();
        let buffer_path = buffer_file.to_string_lossy().into_owned();
        let target = self.target();
        self.server.cmd(&["load-buffer", "-b", "ccl-prompt", &buffer_path]);
        self.server
            .cmd(&["paste-buffer", "-p", "-d", "-b", "ccl-prompt", "-t", &target]);
        let first_line = text.lines().next().unwrap_or("");
        let shown = format!("❯ {first_line}");
        self.wait_screen(&format!("{first_line:?} in the input box"), |s| s.contains(&shown));
        self.server.cmd(&["send-keys", "-t", &target, "Enter"]);
    }

    fn press(&self, key: &str) {
        self.server.cmd(&["send-keys", "-t", &self.target(), key]);
    }

    fn save(&self, name: &str, screen: &str) {
        if !self.save_screens {
            return;
        }
        std::fs::create_dir_all(&self.screens_dir).unwrap();
        let path = self.screens_dir.join(format!("{name}.txt"));
        std::fs::write(&path, screen).unwrap();
        eprintln!("saved {}", path.display());
    }

    fn transcript_path(&self) -> PathBuf {
        self.config_dir
            .join("projects")
            .join(project_slug(&self.workdir))
            .join(format!("{}.jsonl", self.session_id))
    }

    /// The transcript's records, once one of them satisfies `ok` (Claude writes it
    /// asynchronously to the screen).
    fn wait_transcript(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Vec<Value> {
        let path = self.transcript_path();
        wait_until(&format!("{what} in {}", path.display()), WAIT, || {
            let text = std::fs::read_to_string(&path).ok()?;
            let records: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
            records.iter().any(&ok).then_some(records)
        })
    }
}

fn has_finished_line(screen: &str) -> bool {
    // `✻ Cooked for 3s · done 6:55 AM`: the verb varies, `for` and `· done` do not.
    screen
        .lines()
        .any(|l| l.trim_start().starts_with('✻') && l.contains(" for ") && l.contains("· done "))
}

fn record_text(record: &Value) -> String {
    record["message"]["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[test]
fn a_prompt_is_answered_then_a_five_hour_limit_is_shown_recorded_and_exit_hints_resume() {
    let Some(bin) = claude_bin() else { return };
    let mock = MockApi::start().unwrap();
    mock.set_behaviour(
        TOKEN_A,
        Behaviour::Normal {
            reply: "Done: {prompt}".into(),
            delay_ms: 2500,
            usage: None,
        },
    );
    let session_id = "5b0f6a1e-3c2d-4e8f-9a7b-1c2d3e4f5a6b";
    let claude = Claude::launch(&bin, &mock, TOKEN_A, session_id, "smoke-5h");

    let screen = claude.wait_idle("the idle screen");
    assert!(
        screen.contains("Claude Max"),
        "a subscription login shows its plan:\n{screen}"
    );
    assert_eq!(claude.pane_command(), "claude.exe");
    claude.save("idle", &screen);

    let prompt = "Summarise the smoke test\nsecond line of the task";
    claude.submit(prompt);
    let busy = claude.wait_screen("the busy footer", |s| s.contains(BUSY_FOOTER));
    claude.save("busy", &busy);
    let finished = claude.wait_screen("the answer and a finished-turn line", |s| {
        s.contains("● Done: Summarise the smoke test") && has_finished_line(s) && !s.contains(BUSY_FOOTER)
    });
    claude.save("finished", &finished);

    let asked = mock
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/v1/messages") && r.last_user_text.as_deref() == Some(prompt))
        .unwrap_or_else(|| panic!("the mock never saw the prompt: {:#?}", mock.requests()));
    assert_eq!(asked.token, TOKEN_A);
    assert_eq!(asked.conversation.as_deref(), Some(session_id));
    assert!(asked.stream);

    let reset_unix = reset_in(3 * 3600);
    let reset = reset_text(reset_unix, false);
    mock.set_behaviour(TOKEN_A, Behaviour::Limit5h { reset_unix });
    claude.submit("Now the second step");
    let hit = format!("You've hit your 5-hour limit · resets {reset} (UTC)");
    let continuing = format!("Usage limit reached · continuing automatically at {reset}");
    let limited = claude.wait_screen("the 5-hour limit lines", |s| {
        s.contains(&hit) && s.contains(&continuing)
    });
    assert!(
        limited.contains(&format!("⚠ Usage limit reached · limit resets {reset}")),
        "the footer names the limit too:\n{limited}"
    );
    claude.save("limit-5h", &limited);

    let records = claude.wait_transcript("the 429 record", |r| {
        r["isApiErrorMessage"] == true && r["apiErrorStatus"] == 429
    });
    let limit_record = records.iter().find(|r| r["apiErrorStatus"] == 429).unwrap();
    assert_eq!(limit_record["type"], "assistant");
    assert_eq!(limit_record["error"], "rate_limit");
    assert!(record_text(limit_record).contains(&hit), "{limit_record}");
    assert!(
        records
            .iter()
            .any(|r| r["type"] == "system" && r["subtype"] == "turn_duration"),
        "the answered turn wrote a turn_duration record"
    );

    // Escape cancels the automatic continuation, which gives the keyboard back for /exit.
    claude.press("Escape");
    let cancelled = claude.wait_screen("the continuation cancelled", |s| {
        s.contains("● Automatic continue cancelled · /rate-limit-options to re-arm")
            && !s.contains("Continuing automatically at")
    });
    claude.save("limit-5h-cancelled", &cancelled);
    claude.submit("/exit");
    wait_until("the shell back in the foreground", WAIT, || {
        (claude.pane_command() == "bash").then_some(())
    });
    let resume = format!("claude --dangerously-skip-permissions --resume {session_id}");
    let exited = claude.wait_screen("the resume hint and the shell prompt", |s| {
        let last_line = s.trim_end().lines().last().unwrap_or("");
        let at_prompt = last_line.ends_with('#') || last_line.ends_with('$');
        s.contains("Resume this session with:") && s.contains(&resume) && at_prompt
    });
    claude.save("exit-resume-hint", &exited);
    let registry: Vec<String> = std::fs::read_dir(claude.config_dir.join("sessions"))
        .map(|dir| {
            dir.filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        registry.is_empty(),
        "an exited Claude leaves no registry file: {registry:?}"
    );
}

#[test]
fn server_errors_overload_and_the_weekly_limit_menu_look_as_ccl_expects() {
    let Some(bin) = claude_bin() else { return };
    let mock = MockApi::start().unwrap();
    let session_id = "6c1a7b2f-4d3e-4f90-8b8c-2d3e4f5a6b7c";
    let claude = Claude::launch(&bin, &mock, TOKEN_B, session_id, "smoke-errors");
    claude.wait_idle("the idle screen");

    // The limit-shaped words of a 500 are shown inside the error line: the veto's case.
    mock.set_behaviour(
        TOKEN_B,
        Behaviour::Error500 {
            message: "rate limit exceeded".into(),
        },
    );
    claude.submit("Trigger a server error");
    let error = claude.wait_screen("the 500 error line", |s| {
        s.contains("● API Error: 500 rate limit exceeded")
            && s.contains("❯ Resend your message to try again")
            && !s.contains(BUSY_FOOTER)
    });
    claude.save("error-500-rate-limit", &error);
    let n_attempts = mock
        .requests()
        .iter()
        .filter(|r| r.last_user_text.as_deref() == Some("Trigger a server error"))
        .count();
    assert_eq!(n_attempts, 2, "CLAUDE_CODE_MAX_RETRIES=1 means one retry");

    mock.set_behaviour(TOKEN_B, Behaviour::Overloaded529);
    claude.submit("Trigger an overload");
    let overloaded = claude.wait_screen("the 529 error line", |s| {
        s.contains("● API Error: 529 Overloaded") && !s.contains(BUSY_FOOTER)
    });
    claude.save("overloaded-529", &overloaded);
    assert!(
        !overloaded.contains("limit ·"),
        "a 529 is not a usage limit:\n{overloaded}"
    );

    let reset_unix = reset_in(3 * 86_400 + 1234);
    let reset = reset_text(reset_unix, true);
    mock.set_behaviour(TOKEN_B, Behaviour::LimitWeekly { reset_unix });
    claude.submit("Trigger the weekly limit");
    let hit = format!("You've hit your weekly limit · resets {reset} (UTC)");
    let menu = claude.wait_screen("the weekly limit menu", |s| {
        s.contains(&hit)
            && s.contains("What do you want to do?")
            && s.contains("1. Stop and wait for limit to reset")
            && s.contains(&format!("2. Wait here, then continue automatically at {reset}"))
            && s.contains("Enter to confirm · Esc to cancel")
    });
    claude.save("limit-weekly-menu", &menu);
    claude.press("Escape");
    let dismissed = claude.wait_screen("the menu dismissed", |s| {
        !s.contains("What do you want to do?") && s.contains(&hit)
    });
    claude.save("limit-weekly-dismissed", &dismissed);

    let records = claude.wait_transcript("the 429 and 500 records", |r| r["apiErrorStatus"] == 429);
    let statuses: Vec<i64> = records
        .iter()
        .filter(|r| r["isApiErrorMessage"] == true)
        .filter_map(|r| r["apiErrorStatus"].as_i64())
        .collect();
    assert!(statuses.contains(&500), "the 500 is recorded: {statuses:?}");
    assert!(statuses.contains(&429), "the weekly limit is recorded: {statuses:?}");
    assert!(mock.requests().iter().all(|r| r.token == TOKEN_B));
}
