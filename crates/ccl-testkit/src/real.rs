//! The real Claude Code under `ccl run`, for the real-client tier: a [`Fleet`] whose
//! `[claude]` section launches the pinned Claude Code binary against an in-process
//! [`MockApi`], with every account home prepared as a subscription user's is (onboarding
//! done, every directory Claude works in trusted, one OAuth token per account, which is
//! how the mock tells the accounts apart). The tmux server is started by the fixture with
//! none of the tester's Claude, API or proxy variables in its environment, and its first
//! sessions are two unmanaged shells (`ccl-0`, `ccl-auto-9`) that ccl must never touch.
//! Helpers start the operator's own Claude by hand, read what the mock saw, and pick the
//! daemon's action lines about one session out of its log.
//!
//! The gate: after [`crate::tmux_tier`], [`claude_bin`] returns the binary only when
//! `CCL_TEST_CLAUDE=1` asks for it, and panics when it is asked for but missing.

use std::fs;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::mockapi::{MockApi, SeenRequest};
use ccl_core::util::shell_quote;
use serde_json::{json, Value};

use crate::fleet::{Fleet, FleetSpec};
use crate::{wait_until, Bins};

/// Longest wait for one thing the real client does; its first start is the slow part.
pub const WAIT: Duration = Duration::from_secs(45);
/// Where `cargo xtask install-claude` puts the native binary, under the install dir.
pub const NPM_BIN: &str = "node_modules/@anthropic-ai/claude-code/bin/claude.exe";
/// What `#{pane_current_command}` shows for the npm package's binary.
pub const CLAUDE_COMMAND: &str = "claude.exe";
pub const IDLE_FOOTER: &str = "⏵⏵ bypass permissions on";
pub const BUSY_FOOTER: &str = "esc to interrupt";
/// Sessions on the server that ccl does not manage: another prefix, and a pool-looking
/// name below `start_index`.
pub const UNMANAGED: [&str; 2] = ["ccl-0", "ccl-auto-9"];
/// Variables of whoever runs the tests that would change how Claude logs in or connects.
pub const FOREIGN_VARS: [&str; 12] = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_MODEL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDECODE",
    "CLAUDE_CODE_ENTRYPOINT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
];

/// The real Claude Code binary when the tier is asked for (`CCL_TEST_CLAUDE=1`; tests
/// check the real-tmux gate, [`crate::tmux_tier`], first), else None with a note. Asked
/// for but missing is a failure.
pub fn claude_bin() -> Option<PathBuf> {
    if std::env::var("CCL_TEST_CLAUDE").as_deref() != Ok("1") {
        eprintln!("real-Claude tier skipped: set CCL_TEST_CLAUDE=1 (with CCL_TEST_TMUX=1) to run it");
        return None;
    }
    let bin = match std::env::var_os("CCL_CLAUDE_BIN") {
        Some(path) => PathBuf::from(path),
        None => crate::workspace_root().join(".cache/claude").join(NPM_BIN),
    };
    assert!(
        bin.is_file(),
        "CCL_TEST_CLAUDE=1 but there is no Claude Code at {} \
         (run `cargo xtask install-claude .cache/claude` or set CCL_CLAUDE_BIN)",
        bin.display()
    );
    crate::note_tier_ran("claude");
    Some(bin)
}

/// `2.1.328` from `claude --version` (`2.1.328 (Claude Code)`).
pub fn claude_version(bin: &Path) -> String {
    let output = Command::new(bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {} --version: {err}", bin.display()));
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no version from {}: {text:?}", bin.display()))
        .to_string()
}

/// The subscription token of an account: what the mock sees as the bearer token.
pub fn token(account: &str) -> String {
    format!("sk-ant-oat01-ccl-real-{account}")
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The environment a real Claude gets to talk to `mock` and nothing else.
pub fn claude_env(mock: &MockApi) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_BASE_URL", mock.base_url()),
        ("DISABLE_TELEMETRY", "1".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        // We run as root, where --dangerously-skip-permissions refuses without it.
        ("IS_SANDBOX", "1".into()),
        ("CLAUDE_CODE_MAX_RETRIES", "1".into()),
        ("NO_PROXY", "127.0.0.1,localhost".into()),
        ("TZ", "UTC".into()),
    ]
}

/// Prepares `home` (a `CLAUDE_CONFIG_DIR`) as a subscription user's: onboarding done for
/// `version`, every directory of `trusted` trusted (no first-run screens), and an OAuth
/// login with `token`, which is how the mock tells the accounts apart.
pub fn prepare_home(home: &Path, version: &str, trusted: &[PathBuf], token: &str) {
    let projects: serde_json::Map<String, Value> = trusted
        .iter()
        .map(|d| {
            (
                d.to_string_lossy().into_owned(),
                json!({"hasTrustDialogAccepted": true}),
            )
        })
        .collect();
    let state = json!({
        "hasCompletedOnboarding": true,
        "lastOnboardingVersion": version,
        "theme": "dark",
        "bypassPermissionsModeAccepted": true,
        "projects": projects,
    });
    fs::write(home.join(".claude.json"), state.to_string()).unwrap();
    let credentials = json!({"claudeAiOauth": {
        "accessToken": token,
        "refreshToken": token.replacen("oat01", "ort01", 1),
        "expiresAt": (now_unix() + 365 * 86_400) * 1000,
        "scopes": ["user:inference", "user:profile"],
        "subscriptionType": "max",
    }});
    fs::write(home.join(".credentials.json"), credentials.to_string()).unwrap();
}

/// Idle as Claude Code 2.1.328 draws it: the empty input line, the footer, no turn running.
pub fn is_idle(screen: &str) -> bool {
    // Claude puts a no-break space after the `❯` of the input line.
    let screen = screen.replace('\u{a0}', " ");
    screen.lines().any(|l| l.trim_end() == "❯") && screen.contains(IDLE_FOOTER) && !screen.contains(BUSY_FOOTER)
}

/// Requests for a model answer (not token counts or anything else Claude asks).
pub fn is_message(r: &SeenRequest) -> bool {
    r.path.starts_with("/v1/messages") && !r.path.starts_with("/v1/messages/count_tokens")
}

/// The daemon's log lines that act on `session` (typing, pasting, keys, signals,
/// claims, creating or killing it), in order, as the executor logs each action.
pub fn actions_on(log: &str, session: &str) -> Vec<String> {
    let inside = [
        format!("type into {session}: "),
        format!("paste into {session}: "),
        format!("stop claude in {session} "),
        format!("create session {session} "),
        format!("kill session {session} "),
    ];
    // `paste task Q/T into S`, `send KEYS to S`, `claim Q/T for S` end with the name.
    let ends = [
        format!(" into {session}"),
        format!(" to {session}"),
        format!(" for {session}"),
    ];
    log.lines()
        .filter(|l| inside.iter().any(|p| l.contains(p.as_str())) || ends.iter().any(|e| l.ends_with(e.as_str())))
        .map(str::to_string)
        .collect()
}

/// A fleet running the real Claude Code; derefs to the [`Fleet`] for everything else.
pub struct RealFleet {
    pub fleet: Fleet,
    pub mock: MockApi,
    pub bin: PathBuf,
    /// `claude --version`, which names the screen corpus directory.
    pub version: String,
}

impl Deref for RealFleet {
    type Target = Fleet;
    fn deref(&self) -> &Fleet {
        &self.fleet
    }
}

impl DerefMut for RealFleet {
    fn deref_mut(&mut self) -> &mut Fleet {
        &mut self.fleet
    }
}

impl RealFleet {
    /// The fleet of `spec` with the real client, its tmux server up with the unmanaged
    /// sessions, and every account answered normally by the mock.
    pub fn new(bins: Bins, tag: &str, spec: FleetSpec, bin: PathBuf) -> RealFleet {
        let mock = MockApi::start().expect("the mock api starts");
        let fleet = Fleet::new(bins, tag, spec);
        let version = claude_version(&bin);
        let real = RealFleet {
            fleet,
            mock,
            bin,
            version,
        };
        real.start_server();
        real.prepare_homes();
        real.write_real_config();
        real
    }

    /// The environment every Claude gets, here and in `[claude] env`.
    pub fn claude_env(&self) -> Vec<(&'static str, String)> {
        claude_env(&self.mock)
    }

    /// The server starts with the first unmanaged session, from a command whose
    /// environment lacks the foreign variables: panes inherit the server's environment.
    fn start_server(&self) {
        let root = self.fleet.root.to_string_lossy().into_owned();
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.fleet.tmux.socket, "-f", "/dev/null"])
            .args([
                "new-session",
                "-d",
                "-s",
                UNMANAGED[0],
                "-x",
                "200",
                "-y",
                "50",
                "-c",
                &root,
            ])
            .env_remove("TMUX");
        crate::isolate(&mut cmd, &self.fleet.root.join("home"));
        for var in FOREIGN_VARS {
            cmd.env_remove(var);
        }
        let out = cmd.output().expect("tmux runs");
        assert!(
            out.status.success(),
            "cannot start the tmux server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_until("a shell prompt in the first session", WAIT, || {
            self.fleet
                .capture(UNMANAGED[0])
                .trim_end()
                .ends_with(['$', '#'])
                .then_some(())
        });
        for name in &UNMANAGED[1..] {
            self.fleet.new_session(name, &self.fleet.root);
        }
    }

    /// Directories Claude is started in: the pool's, every project's, every dedicated one.
    fn workdirs(&self) -> Vec<PathBuf> {
        let spec = &self.fleet.spec;
        let mut dirs = vec![self.fleet.root.join("pool")];
        dirs.extend(spec.queues.iter().map(|q| self.fleet.project(q)));
        dirs.extend(spec.dedicated.iter().map(|d| self.fleet.root.join("work").join(d)));
        dirs
    }

    /// Onboarding done and every workdir trusted (no first-run screens), and a
    /// subscription login with this account's token.
    fn prepare_homes(&self) {
        let workdirs = self.workdirs();
        for account in &self.fleet.spec.accounts {
            prepare_home(&self.fleet.home(account), &self.version, &workdirs, &token(account));
        }
    }

    /// The generated configuration with its `[claude]` command and env replaced: the real
    /// binary, `--dangerously-skip-permissions`, and the mock's environment.
    fn write_real_config(&self) {
        let text = self.fleet.config_text("");
        let command_line = text
            .lines()
            .find(|l| l.starts_with("command = "))
            .expect("the generated config names a claude command")
            .to_string();
        let env_line = text
            .lines()
            .find(|l| l.starts_with("env = "))
            .expect("the generated config has a claude env")
            .to_string();
        let command = format!(
            "command = \"{}\"\nargs = [\"--dangerously-skip-permissions\"]",
            self.bin.display()
        );
        let vars: Vec<String> = self
            .claude_env()
            .iter()
            .map(|(k, v)| format!("{k} = \"{v}\""))
            .collect();
        let env = format!("env = {{ {} }}", vars.join(", "));
        self.fleet
            .write_config_edited("", &[(&command_line, &command), (&env_line, &env)]);
    }

    // -- the operator's own Claude ----------------------------------------------------

    /// Starts the real Claude by hand in a new session `name` under `account`, with the
    /// conversation id `session_id`, as the operator would; waits for its idle screen.
    pub fn start_claude_by_hand(&self, name: &str, account: &str, cwd: &Path, session_id: &str) {
        self.fleet.new_session(name, cwd);
        let env: Vec<String> = self
            .claude_env()
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        let line = format!(
            "CLAUDE_CONFIG_DIR={} {} {} --dangerously-skip-permissions --session-id {session_id}",
            shell_quote(&self.fleet.home(account).to_string_lossy()),
            env.join(" "),
            shell_quote(&self.bin.to_string_lossy())
        );
        let target = format!("={name}:");
        self.fleet.tmux(&["send-keys", "-t", &target, "-l", "--", &line]);
        self.fleet.tmux(&["send-keys", "-t", &target, "Enter"]);
        self.wait_screen(name, "claude idle", is_idle);
    }

    /// Types `text` (one line) into the Claude in `name` and submits it, as the operator
    /// would; waits until the mock answered it and Claude is idle again.
    pub fn prompt_by_hand(&self, name: &str, text: &str) {
        let target = format!("={name}:");
        self.fleet.tmux(&["send-keys", "-t", &target, "-l", "--", text]);
        let shown = format!("❯ {text}");
        self.wait_screen(name, &format!("{text:?} in the input box"), |s| {
            s.replace('\u{a0}', " ").contains(&shown)
        });
        self.fleet.tmux(&["send-keys", "-t", &target, "Enter"]);
        let answer = format!("Done: {text}");
        self.wait_screen(name, &format!("the answer to {text:?}"), |s| {
            s.contains(&answer) && is_idle(s)
        });
    }

    /// Waits until `ok` holds for the screen of `name`; the panic shows the last screen.
    pub fn wait_screen(&self, name: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        wait_until(&format!("{what} in {name}"), WAIT, || {
            let screen = self.fleet.capture(name);
            if ok(&screen) {
                Ok(screen)
            } else {
                Err(format!("the screen of {name}:\n{screen}"))
            }
        })
    }

    /// With `CCL_SAVE_SCREENS=1`, writes `screen` to `tests/screens/real-VERSION/NAME.txt`
    /// for the screen corpus (its expectation is then made with `UPDATE_EXPECT=1 cargo
    /// test --test integration screen_corpus` and reviewed). Only screens that differ
    /// from every case already there are written.
    pub fn save_screen(&self, name: &str, screen: &str) {
        if std::env::var("CCL_SAVE_SCREENS").as_deref() != Ok("1") {
            return;
        }
        let dir = crate::workspace_root()
            .join("tests/screens")
            .join(format!("real-{}", self.version));
        fs::create_dir_all(&dir).unwrap();
        let known = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
            .any(|e| fs::read_to_string(e.path()).is_ok_and(|t| t == screen));
        if !known {
            let path = dir.join(format!("{name}.txt"));
            fs::write(&path, screen).unwrap();
            eprintln!("saved {}", path.display());
        }
    }

    /// Runs `ccl replay TRACE` and asserts every recorded action is reproduced.
    pub fn assert_replays(&self, trace: &Path) {
        let out = self.fleet.ccl(&["replay", &trace.to_string_lossy()], None);
        assert!(
            out.status.success(),
            "ccl replay of {} diverged: {}{}",
            trace.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // -- what the mock saw -------------------------------------------------------------

    /// Every model request so far, oldest first.
    pub fn messages(&self) -> Vec<SeenRequest> {
        self.mock.requests().into_iter().filter(is_message).collect()
    }

    /// Waits for a model request that satisfies `ok` and returns it.
    /// (The fleet prints the ccl log when a test fails.)
    pub fn wait_request(&self, what: &str, ok: impl Fn(&SeenRequest) -> bool) -> SeenRequest {
        wait_until(&format!("the mock to see {what}"), WAIT, || {
            let messages = self.messages();
            match messages.iter().find(|r| ok(r)) {
                Some(found) => Ok(found.clone()),
                None => Err(format!("the mock saw: {messages:#?}")),
            }
        })
    }

    /// The texts of the model requests made in conversation `id`.
    pub fn texts_of(&self, id: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|r| r.conversation.as_deref() == Some(id))
            .map(|r| r.last_user_text.unwrap_or_default())
            .collect()
    }

    /// Pane pids of `names`, which must all exist.
    pub fn pids(&self, names: &[&str]) -> Vec<(String, u32)> {
        names
            .iter()
            .map(|n| {
                let pid = self.fleet.pane_pid(n).unwrap_or_else(|| panic!("no session {n}"));
                (n.to_string(), pid)
            })
            .collect()
    }

    /// Asserts every session of `pids` still has the same pane, and that ccl never
    /// acted on the unmanaged ones.
    pub fn assert_panes_kept(&self, pids: &[(String, u32)]) {
        for (name, pid) in pids {
            assert_eq!(self.fleet.pane_pid(name), Some(*pid), "{name} keeps its pane");
        }
        let log = self.fleet.log();
        for name in UNMANAGED {
            let touched = actions_on(&log, name);
            assert!(touched.is_empty(), "ccl acted on unmanaged {name}: {touched:#?}");
        }
    }
}

/// Pids of every process below `roots` in the process tree (from /proc).
fn descendants(roots: &[u32]) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces, so read after the last ')'.
        let ppid = stat
            .rfind(')')
            .and_then(|close| stat[close + 1..].split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found: Vec<u32> = Vec::new();
    let mut frontier = roots.to_vec();
    while !frontier.is_empty() {
        let next: Vec<u32> = parent_of
            .iter()
            .filter(|(pid, ppid)| frontier.contains(ppid) && !found.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        found.extend(&next);
        frontier = next;
    }
    found
}

/// Gone, or a zombie waiting for its parent.
fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|close| stat[close + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z"),
        Err(_) => true,
    }
}

impl Drop for RealFleet {
    /// The real Claude writes into its home as it exits; the fleet's directory is removed
    /// only after every Claude is gone, or the removal races with those writes and leaves
    /// half a fleet behind in /tmp. The daemon goes first so it cannot recreate sessions.
    fn drop(&mut self) {
        if let Some(pid) = self.fleet.daemon_pid() {
            // SAFETY: killing our own child; the fleet's drop reaps it.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            crate::poll_within(Duration::from_secs(10), || exited(pid));
        }
        let panes: Vec<u32> = self.fleet.panes().into_iter().map(|(_, pid, _)| pid).collect();
        let mut pids = descendants(&panes);
        pids.extend(&panes);
        let _ = self.fleet.tmux_raw(&["kill-server"]);
        crate::poll_within(Duration::from_secs(10), || pids.iter().all(|p| exited(*p)));
    }
}
