//! The control-mode backends against a real tmux on a private socket. Every shared
//! scenario of `tests/support/tmux_scenarios.rs`, which `tests/tmux_exec.rs` runs on the
//! exec adapter, runs here once per backend (`control::*` for `ControlTmux`, `auto::*`
//! for `AutoTmux`), and must go over the control client: sessions get the asked-for
//! environment, directory and size, captures read as a user would see them, pasted text
//! arrives byte for byte, a name never reaches a session it only prefixes, and errors read
//! the same. On top: a long paste and arguments made of every awkward byte arrive
//! verbatim, sizes hold while the control client is attached, screen text that mimics the
//! protocol cannot cut a reply short, a restarted server is reached on the next call, and
//! `AutoTmux` falls back to exec when control mode cannot run and returns to it after the
//! back-off. Gated by `CCL_TEST_TMUX=1`.

use std::path::Path;
use std::time::Duration;

use crate::support::tmux_scenarios::{
    paste_through_cat, read, session_names, spec, wait_for_command, wait_for_screen, Backend, WAIT,
};
use ccl::adapters::tmux::control::{AutoTmux, ControlTmux};
use ccl::adapters::tmux::{ExecTmux, Tmux};
use ccl_testkit::{wait_until, TmuxServer};

/// A backend that can reach tmux over a control client.
trait Control: Backend {
    /// Whether the last call went over a control client rather than a forked tmux.
    fn on_control(&mut self) -> bool;
}

impl Backend for ControlTmux {
    fn open(socket: &str) -> Self {
        ControlTmux::connect(socket).expect("connect in control mode")
    }

    fn assert_path(&mut self) {
        assert!(self.on_control(), "the calls did not go over control mode");
    }
}

impl Control for ControlTmux {
    fn on_control(&mut self) -> bool {
        self.is_connected()
    }
}

impl Backend for AutoTmux {
    fn open(socket: &str) -> Self {
        AutoTmux::new(socket)
    }

    fn assert_path(&mut self) {
        assert!(self.on_control(), "the calls did not go over control mode");
    }
}

impl Control for AutoTmux {
    fn on_control(&mut self) -> bool {
        self.backend() == "control"
    }
}

/// The shared scenarios and each one named here become `control::NAME` and `auto::NAME`.
macro_rules! for_both_backends {
    ($($scenario:ident),* $(,)?) => {
        for_both_backends!(@one control, ccl::adapters::tmux::control::ControlTmux; $($scenario),*);
        for_both_backends!(@one auto, ccl::adapters::tmux::control::AutoTmux; $($scenario),*);
    };
    (@one $module:ident, $backend:ty; $($scenario:ident),*) => {
        mod $module {
            crate::tmux_scenario_tests!($backend);
            $(
                #[test]
                fn $scenario() {
                    if ::ccl_testkit::tmux_tier() {
                        super::$scenario::<$backend>();
                    }
                }
            )*
        }
    };
}

for_both_backends!(
    a_long_multi_line_paste_arrives_verbatim,
    arguments_made_of_awkward_bytes_arrive_verbatim,
    sizes_hold_while_the_control_client_is_attached,
    screen_text_that_mimics_the_protocol_is_captured_intact,
    a_restarted_server_is_reached_on_the_next_call,
);

fn a_long_multi_line_paste_arrives_verbatim<T: Control>() {
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
    tmux.assert_path();
}

fn arguments_made_of_awkward_bytes_arrive_verbatim<T: Control>() {
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
    tmux.assert_path();
}

fn sizes_hold_while_the_control_client_is_attached<T: Control>() {
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
    tmux.assert_path();
}

fn screen_text_that_mimics_the_protocol_is_captured_intact<T: Control>() {
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
    tmux.assert_path();
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

fn a_restarted_server_is_reached_on_the_next_call<T: Control>() {
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
    let names = session_names(&mut tmux);
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
    if !ccl_testkit::tmux_tier() {
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
    let names = session_names(&mut tmux);
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
    if !ccl_testkit::tmux_tier() {
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
    if !ccl_testkit::tmux_tier() {
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
