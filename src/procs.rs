//! What runs in a pane, from `/proc`: which Claude process is in the foreground of a
//! pane's terminal, and which Claude processes sit under a pane (to stop them).
//!
//! A `claude.command` may have any name (a wrapper script, `cc`, an `npx` shim), and a
//! wrapper that does not `exec` leaves its interpreter as the pane's foreground command,
//! so a process name alone cannot say "Claude runs here". Claude's own registry entry
//! (`$CLAUDE_CONFIG_DIR/sessions/<pid>.json`) names its pid and tmux session; that pid
//! counts as the pane's Claude only while it is in the foreground process group of the
//! pane's terminal, so a stale entry or one naming another pane proves nothing.

use std::fs;

/// The fields of `/proc/PID/stat` this module uses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stat {
    comm: String,
    ppid: u32,
    pgrp: i32,
    tty_nr: i32,
    /// Foreground process group of the process's controlling terminal.
    tpgid: i32,
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// "pid (comm) state ppid pgrp session tty_nr tpgid ...": comm may hold spaces and
/// parentheses, so the fields after it are split at the last ')'.
fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    Some(Stat {
        comm,
        ppid: rest.get(1)?.parse().ok()?,
        pgrp: rest.get(2)?.parse().ok()?,
        tty_nr: rest.get(4)?.parse().ok()?,
        tpgid: rest.get(5)?.parse().ok()?,
    })
}

/// The first of `candidates` (Claude pids from the registry) that is in the foreground
/// process group of the terminal the pane's process `pane_pid` runs on.
pub fn foreground_claude(pane_pid: u32, candidates: &[u32]) -> Option<u32> {
    if candidates.is_empty() {
        return None;
    }
    let pane = stat(pane_pid)?;
    if pane.tty_nr == 0 || pane.tpgid <= 0 {
        return None;
    }
    candidates
        .iter()
        .copied()
        .find(|pid| stat(*pid).is_some_and(|s| s.tty_nr == pane.tty_nr && s.pgrp == pane.tpgid))
}

/// Claude processes below `root` in the process tree, nearest first: those named as a
/// Claude (`is_claude_name`) or listed in `registry_pids`. Only the nearest generation
/// that holds one is returned, so a Claude's own children are never signalled.
pub fn claude_descendants(root: u32, is_claude_name: impl Fn(&str) -> bool, registry_pids: &[u32]) -> Vec<u32> {
    let mut procs: Vec<(u32, Stat)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(s) = stat(pid) {
                procs.push((pid, s));
            }
        }
    }
    let mut frontier = vec![root];
    let mut found = Vec::new();
    let mut depth = 0;
    while !frontier.is_empty() && depth < 16 {
        let next: Vec<u32> = procs
            .iter()
            .filter(|(_, s)| frontier.contains(&s.ppid))
            .map(|(p, _)| *p)
            .collect();
        for (pid, s) in procs.iter().filter(|(p, _)| next.contains(p)) {
            if is_claude_name(&s.comm) || registry_pids.contains(pid) {
                found.push(*pid);
            }
        }
        if !found.is_empty() {
            break;
        }
        frontier = next;
        depth += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_command_name_with_spaces_and_parentheses() {
        let s = parse_stat("4242 (my (odd) cmd) S 100 4242 100 34817 4242 4194304 0 0").unwrap();
        assert_eq!(
            s,
            Stat {
                comm: "my (odd) cmd".into(),
                ppid: 100,
                pgrp: 4242,
                tty_nr: 34817,
                tpgid: 4242,
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_process_is_not_the_foreground_claude_of_a_pane_it_does_not_run_in() {
        // This test process has no pane: nothing of it is some pane's foreground Claude.
        let me = std::process::id();
        assert_eq!(foreground_claude(me, &[]), None);
        assert_eq!(foreground_claude(u32::MAX, &[me]), None);
    }
}
