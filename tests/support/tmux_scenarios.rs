//! The scenarios every `Tmux` backend must pass against a real tmux on a private socket,
//! written once and generic over the port: sessions get the asked-for environment,
//! directory and size, captures read as a user would see them, a dead pane is reported
//! dead, pasted text arrives byte for byte, a name never reaches a session it only
//! prefixes, no server reads as no sessions, and errors name the command and the session.
//! `tests/tmux_exec.rs` runs them on `ExecTmux`, `tests/tmux_control.rs` on `ControlTmux`
//! and `AutoTmux`, each through [`tmux_scenario_tests!`](crate::tmux_scenario_tests), so a
//! backend cannot skip one. The helpers here serve the backend-specific scenarios too.

use std::path::Path;
use std::time::Duration;

use ccl::adapters::tmux::{ExecTmux, NewSession, PaneInfo, Tmux};

use ccl_testkit::{wait_until, TmuxServer};

pub const WAIT: Duration = Duration::from_secs(10);

/// A backend under test.
pub trait Backend: Tmux + Sized {
    fn open(socket: &str) -> Self;

    /// Called once a scenario's calls are made: a backend with more than one way to reach
    /// tmux asserts they went the way it exists for (the control backends: over the
    /// control client, not a forked tmux). `ExecTmux` has only the one way.
    fn assert_path(&mut self) {}
}

/// Declares, in the module it is used in, one `#[test]` per shared scenario, named after
/// it, that runs the scenario on `$backend` when the real-tmux tier is on.
#[macro_export]
macro_rules! tmux_scenario_tests {
    ($backend:ty) => {
        $crate::tmux_scenario_tests!(@each $backend;
            a_new_session_has_its_environment_directory_and_size,
            a_session_without_command_runs_the_login_shell,
            a_pane_whose_process_exited_is_reported_dead,
            pasted_text_arrives_verbatim,
            a_name_never_reaches_a_session_it_only_prefixes,
            no_server_means_no_sessions,
            errors_name_the_command_and_the_session,
            a_server_shutting_down_reads_as_no_sessions_not_as_an_error,
        );
    };
    (@each $backend:ty; $($scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                if ::ccl_testkit::tmux_tier() {
                    $crate::support::tmux_scenarios::$scenario::<$backend>();
                }
            }
        )*
    };
}

pub fn spec(name: &str, cwd: &Path, command: Option<String>) -> NewSession {
    NewSession {
        name: name.to_string(),
        cwd: cwd.to_path_buf(),
        env: Vec::new(),
        width: 100,
        height: 30,
        command,
    }
}

pub fn pane(tmux: &mut impl Tmux, name: &str) -> Option<PaneInfo> {
    let panes = tmux.list_sessions().expect("list sessions");
    panes.into_iter().find(|pane| pane.session == name)
}

/// The names of the sessions `tmux` lists, in its order.
pub fn session_names(tmux: &mut impl Tmux) -> Vec<String> {
    let panes = tmux.list_sessions().expect("list sessions");
    panes.into_iter().map(|pane| pane.session).collect()
}

pub fn wait_for_screen(tmux: &mut impl Tmux, name: &str, needle: &str) -> String {
    wait_until(&format!("{needle:?} on the screen of {name}"), WAIT, || {
        let screen = tmux.capture(name).expect("capture");
        screen.contains(needle).then_some(screen)
    })
}

pub fn wait_for_command(tmux: &mut impl Tmux, name: &str, command: &str) -> PaneInfo {
    wait_until(&format!("{command} in the foreground of {name}"), WAIT, || {
        pane(tmux, name).filter(|pane| pane.current_command == command)
    })
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A session running `cat` into `file`, so what reaches its pane can be read back.
pub fn cat_into(name: &str, dir: &Path, file: &Path) -> NewSession {
    spec(name, dir, Some(format!("exec cat > '{}'", file.display())))
}

/// Pastes `text` into a `cat` session, ends cat's input, and returns what cat wrote.
pub fn paste_through_cat(tmux: &mut impl Tmux, dir: &Path, name: &str, text: &str, bracketed: bool) -> String {
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

pub fn a_new_session_has_its_environment_directory_and_size<T: Backend>() {
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
    tmux.assert_path();
}

pub fn a_session_without_command_runs_the_login_shell<T: Backend>() {
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
    tmux.assert_path();
}

pub fn a_pane_whose_process_exited_is_reported_dead<T: Backend>() {
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
    tmux.assert_path();
}

pub fn pasted_text_arrives_verbatim<T: Backend>() {
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
        tmux.assert_path();
    }
    let buffers = server.cmd(&["list-buffers"]);
    assert_eq!(buffers, "", "paste left buffers behind");
}

pub fn a_name_never_reaches_a_session_it_only_prefixes<T: Backend>() {
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
    tmux.assert_path();
}

pub fn no_server_means_no_sessions<T: Backend>() {
    let server = TmuxServer::new("noserver");
    let mut tmux = T::open(&server.socket);
    // The server is watched and killed by a forked tmux, whatever the backend under test.
    let mut exec = ExecTmux::new(&server.socket);
    assert_eq!(tmux.list_sessions().unwrap(), Vec::new());
    assert!(!exec.server_running().unwrap(), "a call started a server");
    assert!(!tmux.has_session("ccl-auto-11").unwrap());
    assert!(!exec.server_running().unwrap(), "a call started a server");
    exec.kill_server().unwrap();

    let dir = tempfile::tempdir().unwrap();
    tmux.new_session(&spec("ccl-auto-11", dir.path(), None)).unwrap();
    assert!(exec.server_running().unwrap());
    assert_eq!(tmux.list_sessions().unwrap().len(), 1);
    tmux.assert_path();

    // A server that was killed leaves its socket file behind: still no sessions.
    exec.kill_server().unwrap();
    wait_until("the server to stop", WAIT, || {
        (!exec.server_running().unwrap()).then_some(())
    });
    assert_eq!(tmux.list_sessions().unwrap(), Vec::new());
    assert!(!exec.server_running().unwrap(), "a call started a server");
}

pub fn errors_name_the_command_and_the_session<T: Backend>() {
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
    tmux.assert_path();
}

pub fn a_server_shutting_down_reads_as_no_sessions_not_as_an_error<T: Backend>() {
    let server = TmuxServer::new("shutdown");
    let mut tmux = T::open(&server.socket);
    let dir = tempfile::tempdir().unwrap();
    // The only session ends by itself, so the server exits while we keep asking (and a
    // control client sits on that very session); every answer on the way down must be
    // "present" or "absent", never an error.
    let command = Some("sleep 0.3".to_string());
    tmux.new_session(&spec("last", dir.path(), command)).unwrap();
    wait_until("the last session to end", WAIT, || {
        let listed = tmux.list_sessions().unwrap();
        let present = tmux.has_session("last").unwrap();
        (listed.is_empty() && !present).then_some(())
    });
    assert!(!ExecTmux::new(&server.socket).server_running().unwrap());
}
