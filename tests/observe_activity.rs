//! Real-tmux tier: the shell captures a pane again only when tmux reports output in it,
//! and still misses nothing. A pane that stays quiet stops being captured (its last
//! capture is handed to the core again), and text that appears in it afterwards — even in
//! the very second of the last capture, which `#{window_activity}`'s whole-second
//! resolution cannot tell apart — is in the very next observation. Runs on both tmux
//! backends. Also: the control backend's fleet capture (all commands written before the
//! first reply is read) gives each pane its own screen, in order.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use ccl::adapters::tmux::control::{AutoTmux, ControlTmux};
use ccl::adapters::tmux::Tmux;
use ccl::shell::observe::Shell;
use ccl_core::config::Config;
use ccl_core::core::{Core, Observation, State};
use ccl_testkit::{wait_until, TmuxServer};

const SESSION: &str = "ccl-auto-11";

fn config(root: &Path, socket: &str, backend: &str) -> Config {
    let r = root.display();
    let text = format!(
        "[daemon]\nstate_dir = \"{r}/state\"\n[tmux]\nsocket = \"{socket}\"\nbackend = \"{backend}\"\n\
         [[account]]\nname = \"a\"\nhome = \"{r}/home\"\n[shared]\ntarget = \"{r}/shared\"\n\
         [pool]\nmin = 1\nmax = 1\nworkdir = \"{r}\"\n"
    );
    Config::parse(&text, &root.join("ccl.toml"), None).unwrap()
}

fn capture_of(observation: &Observation) -> String {
    let sessions = observation.sessions.as_ref().expect("tmux was listed");
    let session = sessions.iter().find(|s| s.name == SESSION).expect("the pane is listed");
    session.capture.clone().expect("a managed pane is captured")
}

/// Prints `line` in the pane the way a program in it would: written to its terminal.
fn print_in_pane(tmux: &TmuxServer, line: &str) {
    let tty = tmux.cmd(&["display-message", "-p", "-t", &format!("={SESSION}:"), "#{pane_tty}"]);
    let mut terminal = std::fs::OpenOptions::new().write(true).open(tty.trim()).unwrap();
    write!(terminal, "{line}\r\n").unwrap();
    // tmux reads the terminal on its own schedule; the test is about what the shell does
    // once tmux has the text, so wait for tmux to show it first.
    wait_until(&format!("tmux to show {line:?}"), Duration::from_secs(5), || {
        tmux.cmd(&["capture-pane", "-p", "-t", &format!("={SESSION}:")])
            .contains(line)
            .then_some(())
    });
}

fn a_change_after_a_quiet_period_is_seen_at_the_next_turn(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let tmux = TmuxServer::new(&format!("observe-{backend}"));
    let config = config(&root, &tmux.socket, backend);
    // A pane that prints once and then nothing: `sleep` draws no screen of its own.
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        SESSION,
        "-x",
        "120",
        "-y",
        "30",
        "sh -c 'echo ready; exec sleep 600'",
    ]);
    let core = Core::new(config.clone(), State::fresh(&config, 1), "UTC");
    let mut shell = Shell::new(ccl::shell::daemon::tmux_port(&config));
    let observe = |shell: &mut Shell| {
        let before = shell.n_captures();
        let observation = shell.observe(&core, ccl::shell::now_ms());
        (observation, shell.n_captures() - before)
    };

    // Quiet: within a couple of seconds (the activity time has whole-second resolution)
    // the pane is no longer captured, yet the core keeps receiving its screen.
    let quiet = wait_until(
        "a turn that reuses the quiet pane's capture",
        Duration::from_secs(10),
        || {
            let (observation, n_taken) = observe(&mut shell);
            (n_taken == 0).then_some(observation)
        },
    );
    assert!(capture_of(&quiet).contains("ready"), "{quiet:#?}");
    for _ in 0..3 {
        let (observation, n_taken) = observe(&mut shell);
        assert_eq!(n_taken, 0, "a quiet pane was captured again");
        assert!(capture_of(&observation).contains("ready"));
    }

    // A limit line appears after the quiet period: the next turn has it.
    let limit = "You've hit your 5-hour limit · resets 9:23am (UTC)";
    print_in_pane(&tmux, limit);
    let (observation, n_taken) = observe(&mut shell);
    assert_eq!(n_taken, 1, "the pane was captured again once it printed");
    assert!(capture_of(&observation).contains(limit), "{observation:#?}");

    // More text right after that capture, most likely within the same second: the
    // activity time may not move, and the next turn must still have it.
    print_in_pane(&tmux, "second line");
    let (observation, _) = observe(&mut shell);
    let screen = capture_of(&observation);
    assert!(screen.contains(limit) && screen.contains("second line"), "{screen}");
}

#[test]
fn exec_backend_sees_a_change_after_a_quiet_period_at_the_next_turn() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    a_change_after_a_quiet_period_is_seen_at_the_next_turn("exec");
}

#[test]
fn control_backend_sees_a_change_after_a_quiet_period_at_the_next_turn() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    a_change_after_a_quiet_period_is_seen_at_the_next_turn("control");
}

#[test]
fn a_pipelined_fleet_capture_gives_each_pane_its_own_screen_in_order() {
    if !ccl_testkit::tmux_tier() {
        return;
    }
    let tmux = TmuxServer::new("observe-pipelined");
    for (name, word) in [("w-1", "one"), ("w-2", "two"), ("w-3", "three")] {
        let command = format!("sh -c 'echo {word}; exec sleep 600'");
        tmux.cmd(&["new-session", "-d", "-s", name, "-x", "80", "-y", "24", &command]);
        wait_until(&format!("{word} in {name}"), Duration::from_secs(5), || {
            let screen = tmux.cmd(&["capture-pane", "-p", "-t", &format!("={name}:")]);
            screen.contains(word).then_some(())
        });
    }
    let names = ["w-3", "w-1", "gone", "w-2", "w-1"];
    let mut control = ControlTmux::connect(&tmux.socket).unwrap();
    assert!(control.is_connected());
    let mut auto = AutoTmux::new(&tmux.socket);
    auto.list_sessions().unwrap();
    let backends: [(&str, &mut dyn Tmux); 2] = [("ControlTmux", &mut control), ("AutoTmux", &mut auto)];
    for (backend, port) in backends {
        let screens = port.capture_all(&names);
        let summary: Vec<String> = screens
            .iter()
            .map(|screen| match screen {
                Ok(text) => text.clone(),
                Err(err) => format!("error: {err:#}"),
            })
            .collect();
        assert_eq!(summary[0], "three", "{backend}: {summary:?}");
        assert_eq!(summary[1], "one", "{backend}: {summary:?}");
        assert!(
            summary[2].starts_with("error: tmux capture-pane for 'gone' failed: can't find"),
            "{backend}: {summary:?}"
        );
        assert_eq!(summary[3..], ["two", "one"], "{backend}: {summary:?}");
        for (name, screen) in names.iter().zip(&screens) {
            if let Ok(text) = screen {
                assert_eq!(
                    text,
                    &port.capture(name).unwrap(),
                    "{backend}: {name} read alike one by one"
                );
            }
        }
    }
    assert_eq!(
        auto.backend(),
        "control",
        "the fleet capture went over the control client"
    );
}
