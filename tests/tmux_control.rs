//! The control-mode backends against a real tmux on a private socket. Every scenario of
//! the exec adapter's tests (`tests/tmux_exec.rs`) runs here once per backend
//! (`control::*` for `ControlTmux`, `auto::*` for `AutoTmux`), written once, generic over
//! the `Tmux` port: sessions get the asked-for environment, directory and size, captures
//! read as a user would see them, pasted text arrives byte for byte, a name never reaches
//! a session it only prefixes, and errors read the same. On top: arguments made of
//! every awkward byte arrive verbatim, sizes hold while the control client is attached,
//! screen text that mimics the protocol cannot cut a reply short, a restarted server is
//! reached on the next call, and `AutoTmux` falls back to exec when control mode cannot
//! run and returns to it after the back-off. Gated by `CCL_TEST_TMUX=1`.

mod common;

use std::path::Path;
use std::time::Duration;

use ccl::tmux::{ExecTmux, NewSession, PaneInfo, Tmux};
use ccl::tmux_control::{AutoTmux, ControlTmux};
use common::{wait_until, TmuxServer};

const WAIT: Duration = Duration::from_secs(10);

/// A backend under test.
trait Backend: Tmux + Sized {
    fn open(socket: &str) -> Self;
    /// Whether the last call went over a control client rather than a forked tmux.
    fn on_control(&mut self) -> bool;
}

impl Backend for ControlTmux {
    fn open(socket: &str) -> Self {
        ControlTmux::connect(socket).expect("connect in control mode")
    }

    fn on_control(&mut self) -> bool {
        self.is_connected()
    }
}

impl Backend for AutoTmux {
    fn open(socket: &str) -> Self {
        AutoTmux::new(socket)
    }

    fn on_control(&mut self) -> bool {
        self.backend() == "control"
    }
}

/// Each scenario becomes `control::NAME` and `auto::NAME`.
macro_rules! for_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod control {
            $(
                #[test]
                fn $scenario() {
                    if crate::common::tmux_tier() {
                        super::$scenario::<ccl::tmux_control::ControlTmux>();
                    }
                }
            )*
        }
        mod auto {
            $(
                #[test]
                fn $scenario() {
                    if crate::common::tmux_tier() {
                        super::$scenario::<ccl::tmux_control::AutoTmux>();
                    }
                }
            )*
        }
    };
}

for_both_backends!(
    a_new_session_has_its_environment_directory_and_size,
    a_session_without_command_runs_the_login_shell,
    a_pane_whose_process_exited_is_reported_dead,
    pasted_text_arrives_verbatim,
    a_long_multi_line_paste_arrives_verbatim,
    a_name_never_reaches_a_session_it_only_prefixes,
    no_server_means_no_sessions,
    errors_name_the_command_and_the_session,
    a_server_shutting_down_reads_as_no_sessions_not_as_an_error,
    arguments_made_of_awkward_bytes_arrive_verbatim,
    sizes_hold_while_the_control_client_is_attached,
    screen_text_that_mimics_the_protocol_is_captured_intact,
    a_restarted_server_is_reached_on_the_next_call,
);

fn spec(name: &str, cwd: &Path, command: Option<String>) -> NewSession {
    NewSession {
        name: name.to_string(),
        cwd: cwd.to_path_buf(),
        env: Vec::new(),
        width: 100,
        height: 30,
        command,
    }
}

fn pane(tmux: &mut impl Tmux, name: &str) -> Option<PaneInfo> {
    let panes = tmux.list_sessions().expect("list sessions");
    panes.into_iter().find(|pane| pane.session == name)
}

fn wait_for_screen(tmux: &mut impl Tmux, name: &str, needle: &str) -> String {
    wait_until(&format!("{needle:?} on the screen of {name}"), WAIT, || {
        let screen = tmux.capture(name).expect("capture");
        screen.contains(needle).then_some(screen)
    })
}

fn wait_for_command(tmux: &mut impl Tmux, name: &str, command: &str) -> PaneInfo {
    wait_until(&format!("{command} in the foreground of {name}"), WAIT, || {
        pane(tmux, name).filter(|pane| pane.current_command == command)
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A session running `cat` into `file`, so what reaches its pane can be read back.
fn cat_into(name: &str, dir: &Path, file: &Path) -> NewSession {
    spec(name, dir, Some(format!("exec cat > '{}'", file.display())))
}

/// Pastes `text` into a `cat` session, ends cat's input, and returns what cat wrote.
fn paste_through_cat(tmux: &mut impl Tmux, dir: &Path, name: &str, text: &str, bracketed: bool) -> String {
    let file = dir.join(format!("{name}.txt"));
    tmux.new_session(&cat_into(name, dir, &file)).unwrap();
    wait_for_command(tmux, name, "cat");
    tmux.paste(name, text, bracketed).unwrap();
    // The first C-d hands cat the unterminated last line, the second ends its input.
    tmux.send_keys(name, &["C-d", "C-d"]).unwrap();
    wait_until(&format!("cat in {name} to finish"), WAIT, || {
        (!tmux.has_session(name).unwrap()).then_some(())
    });
    read(&file)
}

fn a_new_session_has_its_environment_directory_and_size<T: Backend>() {
    let server = TmuxServer::new("create");
    let mut tmux = T::open(&server.socket);
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let mut new = spec(
        "ccl-auto-11",
        &dir_path,
        Some(
            "printf '%s|%s\\n' \"$CCL_PROBE\" \"$(pwd -P)\"; \
             printf 'colour \\033[31mred\\033[0m\\n'; exec cat"
                .to_string(),
        ),
    );
    new.env = vec![("CCL_PROBE".to_string(), "hello from env $x".to_string())];
    tmux.new_session(&new).unwrap();

    assert!(tmux.has_session("ccl-auto-11").unwrap());
    let expected = format!("hello from env $x|{}", dir_path.display());
    wait_for_screen(&mut tmux, "ccl-auto-11", &expected);
    let screen = wait_for_screen(&mut tmux, "ccl-auto-11", "colour red");
    assert!(!screen.contains('\x1b'), "escape sequences in capture: {screen:?}");
    assert!(!screen.ends_with('\n'), "trailing blank lines in capture: {screen:?}");

    let info = wait_for_command(&mut tmux, "ccl-auto-11", "cat");
    assert_eq!((info.width, info.height), (100, 30));
    assert!(!info.dead);
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", info.pane_pid)).unwrap();
    assert_eq!(comm.trim(), "cat", "pane_pid is not the pane's process");
    assert!(tmux.on_control(), "the calls did not go over control mode");
}

fn a_session_without_command_runs_the_login_shell<T: Backend>() {
    let server = TmuxServer::new("shell");
    let mut tmux = T::open(&server.socket);
    let dir = tempfile::tempdir().unwrap();
    tmux.new_session(&spec("ccl-1-mine", dir.path(), None)).unwrap();

    let panes = tmux.list_sessions().unwrap();
    assert_eq!(panes.len(), 1, "{panes:?}");
    assert_eq!(panes[0].session, "ccl-1-mine");
    assert!(!panes[0].dead);
    // Right after the fork the pane's process is still named after the tmux server;
    // once it has become the shell, the listing and the process must agree.
    let info = wait_until("the pane's process to become its shell", WAIT, || {
        let info = pane(&mut tmux, "ccl-1-mine")?;
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", info.pane_pid)).ok()?;
        (comm.trim() == info.current_command).then_some(info)
    });
    let shells = ["bash", "sh", "dash", "zsh", "fish", "ksh", "mksh"];
    assert!(
        shells.contains(&info.current_command.as_str()),
        "not a shell: {}",
        info.current_command
    );
    assert!(tmux.on_control(), "the calls did not go over control mode");
}

fn a_pane_whose_process_exited_is_reported_dead<T: Backend>() {
    let server = TmuxServer::new("dead");
    server.cmd(&["new-session", "-d", "-s", "holder"]);
    server.cmd(&["set-option", "-g", "remain-on-exit", "on"]);
    let mut tmux = T::open(&server.socket);
    let dir = tempfile::tempdir().unwrap();
    tmux.new_session(&spec("short", dir.path(), Some("exit 3".to_string())))
        .unwrap();

    wait_until("the pane of 'short' to be dead", WAIT, || {
        pane(&mut tmux, "short").filter(|pane| pane.dead)
    });
    assert!(!pane(&mut tmux, "holder").unwrap().dead);
    assert!(tmux.on_control(), "the calls did not go over control mode");
}

fn pasted_text_arrives_verbatim<T: Backend>() {
    // Everything a shell or tmux's own parser would mangle if the text went through argv
    // or an unquoted command line.
    let text = "-n starts with a dash\n\
                'single' \"double\" \\backslash\n\
                $HOME `whoami` $(id) %s #{session_name} ~ ~root\n\
                \ttab and unicode: é ✓ 日本\n\
                %end 1 2 1\n\
                { braces } ; mid-line; \\\n\
                ends with a semicolon;";
    let server = TmuxServer::new("paste");
    // Keeps the server up after the cat sessions end, so its buffers can be inspected.
    server.cmd(&["new-session", "-d", "-s", "holder"]);
    let mut tmux = T::open(&server.socket);
    let dir = tempfile::tempdir().unwrap();
    for bracketed in [false, true] {
        let name = format!("paste-{bracketed}");
        let got = paste_through_cat(&mut tmux, dir.path(), &name, text, bracketed);
        assert_eq!(got, text, "bracketed: {bracketed}");
        assert!(tmux.on_control(), "the calls did not go over control mode");
    }
    let buffers = server.cmd(&["list-buffers"]);
    assert_eq!(buffers, "", "paste left buffers behind");
}

fn a_long_multi_line_paste_arrives_verbatim<T: Backend>() {
    let server = TmuxServer::new("bigpaste");
    server.cmd(&["new-session", "-d", "-s", "holder"]);
    let mut tmux = T::open(&server.socket);
    let dir = tempfile::tempdir().unwrap();
    // Lines stay below the terminal's 4 KiB line limit; the whole is far above a pipe's
    // buffer, so the command line is written while tmux reads it.
    let text: String = (0..1500)
        .map(|i| format!("line {i:04} 'quoted' \"double\" $x ;{}\n", "é".repeat(40)))
        .collect();
    let got = paste_through_cat(&mut tmux, dir.path(), "big", &text, true);
    assert_eq!(got.len(), text.len());
    assert!(got == text, "the long paste arrived altered");
    assert!(tmux.on_control(), "the calls did not go over control mode");
}

fn a_name_never_reaches_a_session_it_only_prefixes<T: Backend>() {
    let server = TmuxServer::new("exact");
    let mut tmux = T::open(&server.socket);
    let dir = tempfile::tempdir().unwrap();
    let file_of = |name: &str| dir.path().join(format!("{name}.txt"));
    let cat_session = |name: &str| {
        let command = format!("printf 'I am %s\\n' {name}; exec cat > '{}'", file_of(name).display());
        spec(name, dir.path(), Some(command))
    };

    // Only w-10 exists: every call aimed at w-1 must miss instead of landing on w-10.
    tmux.new_session(&cat_session("w-10")).unwrap();
    wait_for_command(&mut tmux, "w-10", "cat");
    assert!(!tmux.has_session("w-1").unwrap());
    assert!(!tmux.has_session("w").unwrap());
    assert!(tmux.capture("w-1").is_err());
    assert!(tmux.send_keys("w-1", &["Enter"]).is_err());
    assert!(tmux.paste("w-1", "not for w-10\n", false).is_err());
    assert!(tmux.kill_session("w-1").is_err());
    assert!(tmux.has_session("w-10").unwrap());
    assert_eq!(server.cmd(&["list-buffers"]), "", "failed paste left a buffer");

    // Both exist: each call touches its own session only.
    tmux.new_session(&cat_session("w-1")).unwrap();
    wait_for_command(&mut tmux, "w-1", "cat");
    let screen = wait_for_screen(&mut tmux, "w-1", "I am w-1");
    assert!(!screen.contains("I am w-10"), "{screen:?}");
    wait_for_screen(&mut tmux, "w-10", "I am w-10");

    tmux.paste("w-1", "for w-1 only\n", true).unwrap();
    wait_until("the paste to reach w-1's file", WAIT, || {
        (read(&file_of("w-1")) == "for w-1 only\n").then_some(())
    });
    tmux.kill_session("w-1").unwrap();
    assert!(!tmux.has_session("w-1").unwrap());
    assert!(tmux.has_session("w-10").unwrap());
    assert_eq!(read(&file_of("w-10")), "", "w-10 received input meant for w-1");

    // Only w-1 exists: a shorter name is not a match either.
    tmux.new_session(&cat_session("w-1")).unwrap();
    tmux.kill_session("w-10").unwrap();
    assert!(tmux.has_session("w-1").unwrap());
    assert!(!tmux.has_session("w").unwrap());
    assert!(!tmux.has_session("w-").unwrap());
    assert!(tmux.on_control(), "the calls did not go over control mode");
}

fn no_server_means_no_sessions<T: Backend>() {
    let server = TmuxServer::new("noserver");
    let mut tmux = T::open(&server.socket);
    let mut exec = ExecTmux::new(&server.socket);
    assert_eq!(tmux.list_sessions().unwrap(), Vec::new());
    assert!(!exec.server_running().unwrap(), "a call started a server");
    assert!(!tmux.has_session("ccl-auto-11").unwrap());
    assert!(!exec.server_running().unwrap(), "a call started a server");

    let dir = tempfile::tempdir().unwrap();
    tmux.new_session(&spec("ccl-auto-11", dir.path(), None)).unwrap();
    assert!(exec.server_running().unwrap());
    assert_eq!(tmux.list_sessions().unwrap().len(), 1);
    assert!(tmux.on_control(), "the calls did not go over control mode");

    // A server that was killed leaves its socket file behind: still no sessions.
    exec.kill_server().unwrap();
    wait_until("the server to stop", WAIT, || {
        (!exec.server_running().unwrap()).then_some(())
    });
    assert_eq!(tmux.list_sessions().unwrap(), Vec::new());
    assert!(!exec.server_running().unwrap(), "a call started a server");
}

fn errors_name_the_command_and_the_session<T: Backend>() {
    let server = TmuxServer::new("errors");
    let mut tmux = T::open(&server.socket);
    let dir = tempfile::tempdir().unwrap();
    tmux.new_session(&spec("dup", dir.path(), None)).unwrap();

    let err = tmux.new_session(&spec("dup", dir.path(), None)).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "tmux new-session for 'dup' failed: duplicate session: dup"
    );
    let err = tmux.kill_session("gone").unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "tmux kill-session for 'gone' failed: can't find session: gone"
    );
    let err = tmux.capture("gone").unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "tmux capture-pane for 'gone' failed: can't find session: gone"
    );
    let missing = dir.path().join("missing");
    let err = tmux.new_session(&spec("elsewhere", &missing, None)).unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.starts_with("tmux new-session for 'elsewhere' failed:") && message.contains("is not a directory"),
        "{message}"
    );
    assert!(!tmux.has_session("elsewhere").unwrap());
    let err = tmux.new_session(&spec("a.b", dir.path(), None)).unwrap_err();
    assert!(format!("{err:#}").contains("a.b"), "{err:#}");
    assert!(tmux.on_control(), "the calls did not go over control mode");
}

fn a_server_shutting_down_reads_as_no_sessions_not_as_an_error<T: Backend>() {
    let server = TmuxServer::new("shutdown");
    let mut tmux = T::open(&server.socket);
    let dir = tempfile::tempdir().unwrap();
    // The only session ends by itself, so the server exits while we keep asking (and
    // the control client sits on that very session); every answer on the way down must
    // be "present" or "absent", never an error.
    let command = Some("sleep 0.3".to_string());
    tmux.new_session(&spec("last", dir.path(), command)).unwrap();
    wait_until("the last session to end", WAIT, || {
        let listed = tmux.list_sessions().unwrap();
        let present = tmux.has_session("last").unwrap();
        (listed.is_empty() && !present).then_some(())
    });
    assert!(!ExecTmux::new(&server.socket).server_running().unwrap());
}

fn arguments_made_of_awkward_bytes_arrive_verbatim<T: Backend>() {
    let server = TmuxServer::new("bytes");
    server.cmd(&["new-session", "-d", "-s", "holder"]);
    let mut tmux = T::open(&server.socket);
    // Attach first, so the session below is created over the control connection.
    tmux.capture("holder").unwrap();
    let root = tempfile::tempdir().unwrap();
    let odd_dir = root.path().join("it's #{x} $HOME ~ ; \"q\" é");
    std::fs::create_dir(&odd_dir).unwrap();
    let odd_dir = odd_dir.canonicalize().unwrap();
    let out = root.path().join("out");
    // Every byte but NUL (tmux arguments are C strings; so are environment values).
    let value: String = (1u8..=127).map(char::from).chain("é✓".chars()).collect();
    let mut new = spec(
        "odd",
        &odd_dir,
        Some(format!(
            "printf '%s' \"$CCL_PROBE\" > '{0}/env'; pwd -P > '{0}/cwd'; \
             printf '%s;' 'it'\\''s' > '{0}/cmd'; exec cat",
            out.display()
        )),
    );
    new.env = vec![("CCL_PROBE".to_string(), value.clone())];
    std::fs::create_dir(&out).unwrap();
    tmux.new_session(&new).unwrap();
    wait_for_command(&mut tmux, "odd", "cat");
    assert_eq!(read(&out.join("env")), value);
    assert_eq!(read(&out.join("cwd")), format!("{}\n", odd_dir.display()));
    assert_eq!(read(&out.join("cmd")), "it's;");
    assert!(tmux.on_control(), "the calls did not go over control mode");
}

fn sizes_hold_while_the_control_client_is_attached<T: Backend>() {
    let server = TmuxServer::new("sizes");
    server.cmd(&["new-session", "-d", "-s", "holder", "-x", "123", "-y", "41"]);
    let mut tmux = T::open(&server.socket);
    tmux.capture("holder").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut small = spec("small", dir.path(), Some("exec cat".to_string()));
    (small.width, small.height) = (90, 20);
    tmux.new_session(&small).unwrap();
    // Sessions made by someone else while the client is attached keep theirs too.
    server.cmd(&["new-session", "-d", "-s", "other", "-x", "60", "-y", "15"]);
    tmux.capture("small").unwrap();
    let sizes: Vec<(String, u16, u16)> = tmux
        .list_sessions()
        .unwrap()
        .into_iter()
        .map(|pane| (pane.session, pane.width, pane.height))
        .collect();
    let expected = [("holder", 123, 41), ("other", 60, 15), ("small", 90, 20)];
    for (name, width, height) in expected {
        assert!(
            sizes.contains(&(name.to_string(), width, height)),
            "{name} should be {width}x{height}: {sizes:?}"
        );
    }
    assert!(tmux.on_control(), "the calls did not go over control mode");
}

fn screen_text_that_mimics_the_protocol_is_captured_intact<T: Backend>() {
    let server = TmuxServer::new("mimic");
    server.cmd(&["new-session", "-d", "-s", "holder"]);
    let mut tmux = T::open(&server.socket);
    let dir = tempfile::tempdir().unwrap();
    // Markers with plausible times and command numbers, as model output might print.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fake: Vec<String> = (0..300u32)
        .step_by(7)
        .map(|n| format!("%end {now} {n} 1"))
        .chain([
            "%error 1 1 1".to_string(),
            "%exit".to_string(),
            "%begin 1 1 1".to_string(),
        ])
        .collect();
    let script = dir.path().join("fake.txt");
    std::fs::write(&script, fake.join("\n") + "\n").unwrap();
    let command = format!("cat '{}'; printf 'after the markers\\n'; exec cat", script.display());
    let mut new = spec("mimic", dir.path(), Some(command));
    new.height = 60;
    tmux.new_session(&new).unwrap();
    let screen = wait_for_screen(&mut tmux, "mimic", "after the markers");
    for line in &fake {
        assert!(screen.lines().any(|l| l == line), "{line:?} missing from {screen:?}");
    }
    // The stream is still in step: the next answers are the right ones.
    assert!(tmux.has_session("mimic").unwrap());
    assert!(!tmux.has_session("mimic-not").unwrap());
    assert!(tmux.on_control(), "the calls did not go over control mode");
}

/// Kills the server and starts a new one with the session `args` describe. A server
/// that was told to exit still answers for a moment ("server exited unexpectedly"), so
/// the new session is retried until a fresh server takes it.
fn restart(server: &TmuxServer, args: &[&str]) {
    server.cmd(&["kill-server"]);
    wait_until("a fresh server", WAIT, || {
        let status = std::process::Command::new("tmux")
            .args(["-L", &server.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        status.success().then_some(())
    });
}

fn a_restarted_server_is_reached_on_the_next_call<T: Backend>() {
    let server = TmuxServer::new("restart");
    let dir = tempfile::tempdir().unwrap();
    server.cmd(&["new-session", "-d", "-s", "first"]);
    let mut tmux = T::open(&server.socket);
    tmux.capture("first").unwrap();
    assert!(tmux.on_control());

    // Restarted by someone else: the next call, a read, reaches the new server.
    restart(&server, &["-s", "second", "printf 'second server\\n'; exec cat"]);
    wait_for_screen(&mut tmux, "second", "second server");
    assert!(!tmux.has_session("first").unwrap());
    assert!(tmux.on_control(), "not back on control mode after the restart");

    // Again, and this time the next call is one that must not run twice.
    restart(&server, &["-s", "third"]);
    tmux.new_session(&spec("made", dir.path(), Some("exec cat".to_string())))
        .unwrap();
    assert!(tmux.on_control(), "not back on control mode after the restart");
    let names: Vec<String> = tmux
        .list_sessions()
        .unwrap()
        .into_iter()
        .map(|pane| pane.session)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"made".to_string()) && names.contains(&"third".to_string()));

    // Killed and not restarted: no sessions, no error, and a new server on demand.
    let mut exec = ExecTmux::new(&server.socket);
    exec.kill_server().unwrap();
    wait_until("the server to stop", WAIT, || {
        (!exec.server_running().unwrap()).then_some(())
    });
    assert_eq!(tmux.list_sessions().unwrap(), Vec::new());
    tmux.new_session(&spec("fourth", dir.path(), None)).unwrap();
    assert!(tmux.has_session("fourth").unwrap());
    assert!(tmux.on_control(), "not back on control mode after the restart");
}

/// A stand-in for tmux that refuses to run until `flag` exists, then runs the real one.
fn flaky_tmux(dir: &Path, flag: &Path) -> std::path::PathBuf {
    let script = dir.join("flaky-tmux");
    let body = format!(
        "#!/bin/sh\n[ -e '{}' ] || {{ echo 'flaky tmux: not today' >&2; exit 1; }}\nexec tmux \"$@\"\n",
        flag.display()
    );
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

#[test]
fn auto_falls_back_to_exec_when_control_mode_cannot_run() {
    if !common::tmux_tier() {
        return;
    }
    let server = TmuxServer::new("fallback");
    server.cmd(&["new-session", "-d", "-s", "holder"]);
    let mut tmux = AutoTmux::with_control_binary(&server.socket, "/nonexistent/tmux");
    let dir = tempfile::tempdir().unwrap();
    let text = "through exec\n'quoted'; $HOME\n";
    let got = paste_through_cat(&mut tmux, dir.path(), "via-exec", text, true);
    assert_eq!(got, text);
    assert_eq!(tmux.backend(), "exec");
    let names: Vec<String> = tmux
        .list_sessions()
        .unwrap()
        .into_iter()
        .map(|pane| pane.session)
        .collect();
    assert_eq!(names, vec!["holder".to_string()]);
    let err = tmux.capture("gone").unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "tmux capture-pane for 'gone' failed: can't find session: gone"
    );
    assert_eq!(tmux.backend(), "exec");
}

#[test]
fn auto_returns_to_control_mode_after_the_backoff() {
    if !common::tmux_tier() {
        return;
    }
    let server = TmuxServer::new("backoff");
    server.cmd(&["new-session", "-d", "-s", "holder"]);
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("control-works");
    let flaky = flaky_tmux(dir.path(), &flag);
    let mut patient = AutoTmux::with_control_binary(&server.socket, &flaky).with_backoff(Duration::from_secs(3600));
    let mut eager = AutoTmux::with_control_binary(&server.socket, &flaky).with_backoff(Duration::ZERO);
    for tmux in [&mut patient, &mut eager] {
        assert!(tmux.has_session("holder").unwrap());
        assert_eq!(tmux.backend(), "exec");
    }

    std::fs::write(&flag, "").unwrap();
    assert!(eager.has_session("holder").unwrap());
    assert_eq!(eager.backend(), "control", "no retry once the back-off passed");
    assert!(patient.has_session("holder").unwrap());
    assert_eq!(patient.backend(), "exec", "retried before the back-off passed");
}

#[test]
fn control_connects_without_a_server_and_attaches_once_one_exists() {
    if !common::tmux_tier() {
        return;
    }
    let server = TmuxServer::new("lazy");
    let mut tmux = ControlTmux::connect(&server.socket).unwrap();
    assert!(!tmux.is_connected());
    assert!(!ExecTmux::new(&server.socket).server_running().unwrap());
    server.cmd(&["new-session", "-d", "-s", "late"]);
    assert!(tmux.open().unwrap());
    assert!(tmux.is_connected());
    // The operator's view: one session, ccl's client among its clients and no other.
    assert_eq!(server.cmd(&["list-sessions", "-F", "#{session_name}"]), "late\n");
    let clients = server.cmd(&["list-clients", "-F", "#{client_flags}"]);
    assert!(clients.contains("control-mode"), "{clients:?}");
    assert!(
        clients.contains("ignore-size") && clients.contains("no-output"),
        "{clients:?}"
    );
}
