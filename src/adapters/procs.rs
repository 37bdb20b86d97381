//! What runs in a pane, from `/proc`: which Claude process is in the foreground of a
//! pane's terminal, the pane's foreground process, and whether a pid about to be sent a
//! stop signal is still a Claude under that pane.
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

/// Most parent links followed from a pid up to its pane (a Claude under a wrapper or two
/// is a few levels down; a loop in a corrupt /proc read ends here).
const MAX_PROCESS_DEPTH: usize = 16;

/// Ok when `pid` runs under the pane's process `pane_pid` and is a Claude: named as one
/// (`is_claude_name`) or listed in `registry_pids`. Checked right before a stop signal,
/// since the pid was chosen from the previous observation and may since have been
/// reused.
pub fn check_claude_under_pane(
    pid: u32,
    pane_pid: u32,
    is_claude_name: impl Fn(&str) -> bool,
    registry_pids: &[u32],
) -> anyhow::Result<()> {
    let Some(me) = stat(pid) else {
        anyhow::bail!("pid {pid} is gone");
    };
    if !is_claude_name(&me.comm) && !registry_pids.contains(&pid) {
        anyhow::bail!("pid {pid} is '{}', not claude: not signalled", me.comm);
    }
    let mut parent = me.ppid;
    for _ in 0..MAX_PROCESS_DEPTH {
        if parent == pane_pid {
            return Ok(());
        }
        if parent <= 1 {
            break;
        }
        parent = stat(parent).map(|s| s.ppid).unwrap_or(0);
    }
    anyhow::bail!("pid {pid} does not run under the pane (pid {pane_pid}): not signalled")
}

/// The leader of the foreground process group of the terminal the pane's process
/// `pane_pid` runs on: with job control, the command the shell started in the foreground
/// (Claude, when it runs there). `None` when the shell itself is in the foreground.
pub fn foreground_pid(pane_pid: u32) -> Option<u32> {
    let pane = stat(pane_pid)?;
    if pane.tty_nr == 0 {
        return None;
    }
    u32::try_from(pane.tpgid).ok().filter(|&p| p > 0 && p != pane_pid)
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
