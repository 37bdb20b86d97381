//! The test fixtures themselves (issue 19): a test's tmux panes get a home of their own,
//! never the real one of whoever runs the tests (a shell's history or Claude's URL-handler
//! file would land there), and when a test's tmux server is dropped nothing that ran on
//! its socket is left, even a server that stopped answering and a client of it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ccl_testkit::{tmux_processes, wait_until, TmuxServer};

#[test]
fn panes_of_a_test_server_get_a_home_of_their_own() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let server = TmuxServer::new("hygiene-home");
    server.cmd(&["new-session", "-d", "-s", "h", "-x", "80", "-y", "24"]);
    let home = server.home();
    for var in [
        "HOME",
        "XDG_DATA_HOME",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_STATE_HOME",
    ] {
        let line = server.cmd(&["show-environment", "-g", var]);
        let value = line
            .trim()
            .strip_prefix(&format!("{var}="))
            .unwrap_or_else(|| panic!("{var}: {line}"));
        assert!(
            Path::new(value).starts_with(&home),
            "{var} of the panes is {value}, not inside {}",
            home.display()
        );
    }
    drop(server);
    assert!(!home.exists(), "the panes' home is removed with the server");
}

#[test]
fn a_stopped_server_and_a_client_of_it_are_gone_when_the_server_is_dropped() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let server = TmuxServer::new("hygiene-stuck");
    let socket = server.socket.clone();
    server.cmd(&["new-session", "-d", "-s", "s", "-x", "80", "-y", "24"]);
    let pid: i32 = server.cmd(&["display-message", "-p", "#{pid}"]).trim().parse().unwrap();
    // A control-mode client, as the daemon keeps one, left running by the test.
    let client = Command::new("tmux")
        .args(["-L", &socket, "-f", "/dev/null", "-C", "attach", "-t", "=s"])
        .env_remove("TMUX")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the control client attached", Duration::from_secs(10), || {
        (server.cmd(&["list-clients"]).lines().count() == 1).then_some(())
    });
    // SAFETY: stopping the tmux server this test started on its own socket.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let dropper = std::thread::spawn(move || drop(server));
    wait_until("the server to be dropped", Duration::from_secs(20), || {
        dropper.is_finished().then_some(())
    });
    let mut client = client;
    let _ = client.wait();
    assert_eq!(tmux_processes(&socket), Vec::<u32>::new(), "processes left on {socket}");
}
