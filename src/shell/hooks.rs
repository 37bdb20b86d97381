//! Event hooks: `sh -c COMMAND` with `CCL_*` variables, started by the executor and
//! reaped on later turns. A hook never blocks the loop: it runs in its own process group,
//! is killed (the whole group) at `hooks.timeout`, and its exit status and the first line
//! of its stderr are logged. A failing or hanging hook changes nothing else.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ccl_core::core::HookDone;

/// Hooks running at once; more are refused with a warning rather than piling up.
pub const MAX_RUNNING_HOOKS: usize = 16;

/// Bytes of a hook's stderr read when it ends: its first line is logged, and a hook that
/// writes megabytes without a newline must not become a megabyte log line.
pub const MAX_STDERR_BYTES: u64 = 300;

struct Running {
    event: String,
    child: Child,
    deadline_ms: i64,
    stderr_path: PathBuf,
}

#[derive(Default)]
pub struct Hooks {
    running: Vec<Running>,
    counter: u64,
}

impl Hooks {
    /// Starts a hook; `dir` holds its stderr file until it is reaped.
    pub fn spawn(
        &mut self,
        dir: &Path,
        event: &str,
        command: &str,
        env: &[(String, String)],
        timeout_ms: u64,
        now_ms: i64,
    ) {
        if self.running.len() >= MAX_RUNNING_HOOKS {
            log::warn!("hook {event} not started: {MAX_RUNNING_HOOKS} hooks are still running");
            return;
        }
        self.counter += 1;
        let _ = fs::create_dir_all(dir);
        let stderr_path = dir.join(format!("hook-{}-{}.stderr", std::process::id(), self.counter));
        let stderr = match fs::File::create(&stderr_path) {
            Ok(f) => Stdio::from(f),
            Err(_) => Stdio::null(),
        };
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        match cmd.spawn() {
            Ok(child) => {
                log::info!("hook {event} started (pid {}): {command}", child.id());
                self.running.push(Running {
                    event: event.into(),
                    child,
                    deadline_ms: now_ms + timeout_ms as i64,
                    stderr_path,
                });
            }
            Err(e) => log::warn!("hook {event} could not start: {e}"),
        }
    }

    /// Collects hooks that ended, killing those past their deadline.
    pub fn reap(&mut self, now_ms: i64) -> Vec<HookDone> {
        let mut done = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            let status = match r.child.try_wait() {
                Ok(Some(st)) => Some(match st.code() {
                    Some(code) => format!("exit {code}"),
                    None => "killed by a signal".to_string(),
                }),
                Ok(None) if now_ms >= r.deadline_ms => {
                    // SAFETY: signalling the hook's own process group, which we created.
                    unsafe { libc::kill(-(r.child.id() as i32), libc::SIGKILL) };
                    let _ = r.child.wait();
                    Some("killed after its timeout".to_string())
                }
                Ok(None) => None,
                Err(e) => Some(format!("lost: {e}")),
            };
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let r = self.running.swap_remove(i);
            let first = first_line(&r.stderr_path);
            let _ = fs::remove_file(&r.stderr_path);
            match &first {
                Some(line) => log::info!("hook {} ended: {status}; stderr: {line}", r.event),
                None => log::info!("hook {} ended: {status}", r.event),
            }
            done.push(HookDone {
                event: r.event,
                status,
                stderr_first_line: first,
            });
        }
        done.sort_by(|a, b| a.event.cmp(&b.event).then(a.status.cmp(&b.status)));
        done
    }

    pub fn n_running(&self) -> usize {
        self.running.len()
    }
}

/// The first line of a hook's stderr file, from at most [`MAX_STDERR_BYTES`] of it.
fn first_line(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    crate::adapters::untrusted::read_prefix(path, MAX_STDERR_BYTES, &mut bytes).ok()?;
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    // The cut may fall inside a UTF-8 sequence: the partial character is dropped.
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\u{FFFD}').trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn reap_until(h: &mut Hooks, now_ms: i64) -> Vec<HookDone> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let done = h.reap(now_ms);
            if !done.is_empty() || Instant::now() > deadline {
                return done;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_hook_gets_its_environment_and_its_status_is_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env.txt");
        let mut h = Hooks::default();
        let cmd = format!(
            "echo \"$CCL_EVENT $CCL_FROM\" > {}; echo oops >&2; exit 3",
            out.display()
        );
        h.spawn(
            dir.path(),
            "on_swap",
            &cmd,
            &[("CCL_EVENT".into(), "swap".into()), ("CCL_FROM".into(), "a".into())],
            10_000,
            0,
        );
        let done = reap_until(&mut h, 0);
        assert_eq!(
            done,
            vec![HookDone {
                event: "on_swap".into(),
                status: "exit 3".into(),
                stderr_first_line: Some("oops".into())
            }]
        );
        assert_eq!(fs::read_to_string(out).unwrap(), "swap a\n");
        assert_eq!(h.n_running(), 0);
    }

    /// 30 MB of stderr without a newline: what is read and logged stays a few hundred bytes.
    #[test]
    fn a_flood_on_stderr_keeps_a_few_hundred_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Hooks::default();
        let cmd = "head -c 30000000 /dev/zero | tr '\\0' x >&2";
        h.spawn(dir.path(), "on_swap", cmd, &[], 20_000, 0);
        let done = reap_until(&mut h, 0);
        let line = done[0].stderr_first_line.clone().expect("a stderr line");
        assert!(line.starts_with("xxxx"), "{line}");
        assert!(line.len() <= 300, "kept {} bytes of stderr", line.len());
    }

    #[test]
    fn a_hanging_hook_is_killed_at_its_deadline_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Hooks::default();
        h.spawn(dir.path(), "on_task_done", "sleep 30", &[], 1_000, 0);
        let started = Instant::now();
        assert!(h.reap(500).is_empty(), "still within its timeout");
        let done = h.reap(1_000);
        assert_eq!(done[0].status, "killed after its timeout");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "reaping did not wait for the hook"
        );
    }
}
