//! The test fixtures themselves (issue 19): a test's tmux panes get a home of their own,
//! never the real one of whoever runs the tests (a shell's history or Claude's URL-handler
//! file would land there), and when a test's tmux server is dropped nothing that ran on
//! its socket is left, even a server that stopped answering and a client of it. And the
//! suite is one binary (`autotests = false`): a test file not declared in `tests/main.rs`
//! would never be compiled nor run, so every one must be.

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

#[test]
fn every_test_file_is_a_module_of_the_one_test_binary() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = std::fs::read_to_string(tests.join("main.rs")).unwrap();
    let declared: Vec<&str> = main
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(&tests)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".rs")?;
            (stem != "main").then(|| stem.to_string())
        })
        .collect();
    files.sort();
    assert!(files.len() > 20, "the test files were found: {files:?}");
    let missing: Vec<&String> = files.iter().filter(|f| !declared.contains(&f.as_str())).collect();
    assert!(
        missing.is_empty(),
        "tests/*.rs not declared in tests/main.rs, so never run: {missing:?}"
    );
}
