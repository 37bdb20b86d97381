//! Files in `state_dir`: `state.json` (the core's persisted state, written atomically),
//! the `lock` that keeps a second daemon off the same state, and the request/reply files
//! through which `ccl swap`, `pause` and `resume` talk to the running daemon.
//!
//! A corrupt or unreadable `state.json` is moved aside with a warning and the daemon
//! rebuilds what it can from tmux and the queues: never a crash loop.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use ccl_core::core::{Request, RequestKind, State};

/// Requests read per turn (a flood of request files cannot stall the loop).
pub const MAX_REQUESTS_PER_TURN: usize = 16;

/// Loads `state.json`. Missing → `None`. Corrupt → moved to `state.json.corrupt-<ms>`,
/// a warning, and `None`.
pub fn load(path: &Path, now_ms: i64) -> Result<Option<State>> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            log::warn!("cannot read {}: {e}; starting from tmux and the queues", path.display());
            move_aside(path, now_ms);
            return Ok(None);
        }
    };
    match serde_json::from_slice::<State>(&text) {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            let aside = move_aside(path, now_ms);
            log::warn!(
                "{} is corrupt ({e}); moved aside to {}; rebuilding from tmux and the queues",
                path.display(),
                aside.display()
            );
            Ok(None)
        }
    }
}

/// Reads `state.json` for display (status, offline pause): never moves anything.
pub fn load_quiet(path: &Path) -> Option<State> {
    fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

fn move_aside(path: &Path, now_ms: i64) -> PathBuf {
    let aside = path.with_file_name(format!(
        "{}.corrupt-{now_ms}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state.json")
    ));
    if let Err(e) = fs::rename(path, &aside) {
        log::warn!("cannot move {} aside: {e}", path.display());
    }
    aside
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync, rename,
/// fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        // Owner-only: state_dir holds conversation ids, the launch lines and claude.env.
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("cannot sync {}", tmp.display()))?;
        drop(f);
        fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    })();
    if written.is_err() {
        // A full disk must not fill up further with half-written copies.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes temporary files an earlier daemon left in `state_dir` when it died in the
/// middle of a save (`.state.json.tmp-PID`). Called with the lock held, so none of them
/// belongs to a live writer.
pub fn remove_stale_temps(state_dir: &Path) {
    let Ok(entries) = fs::read_dir(state_dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".state.json.tmp-") {
            match fs::remove_file(e.path()) {
                Ok(()) => log::info!("removed {name}, left by a save that was cut off"),
                Err(err) => log::warn!("cannot remove {}: {err}", e.path().display()),
            }
        }
    }
}

pub fn save(path: &Path, state: &State) -> Result<()> {
    let json = serde_json::to_vec_pretty(state).context("cannot serialise state")?;
    write_atomic(path, &json)
}

/// The exclusive daemon lock; released when dropped (or when the process dies).
pub struct Lock {
    _file: File,
}

/// Creates `state_dir` with mode 0700, or brings an existing one that others can read
/// or enter back to 0700: it holds `claude.env` (secrets), conversation ids and traces.
pub fn ensure_private_dir(state_dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .with_context(|| format!("cannot create state_dir {}", state_dir.display()))?;
    let mode = fs::metadata(state_dir)
        .with_context(|| format!("cannot inspect state_dir {}", state_dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(state_dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make state_dir {} private", state_dir.display()))?;
        log::warn!(
            "state_dir {} was mode {:o}; made it 0700 (it holds claude.env)",
            state_dir.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// Writes `claude.env` into `state_dir` (0600) for the launch lines to source, or
/// removes it when the configuration sets no environment.
pub fn write_env_file(config: &ccl_core::config::Config) -> Result<()> {
    let path = config.env_file();
    if config.claude.env.is_empty() {
        return match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        };
    }
    write_atomic(&path, ccl_core::sessions::env_file_text(config).as_bytes())
}

/// Takes `state_dir/lock`. Held by a live daemon → an error naming its pid.
pub fn lock(state_dir: &Path) -> Result<Lock> {
    ensure_private_dir(state_dir)?;
    let path = state_dir.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; no memory is shared with the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        bail!(
            "another ccl run holds {} (pid {}); stop it first or use another state_dir",
            path.display(),
            pid.trim()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.sync_all()?;
    Ok(Lock { _file: file })
}

/// The pid of the daemon holding the lock, or `None` when no daemon runs.
pub fn daemon_pid(state_dir: &Path) -> Option<u32> {
    let path = state_dir.join("lock");
    let mut file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    // SAFETY: as in `lock`; a successful probe lock is released right away.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        // SAFETY: unlocking the descriptor we just locked.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return None;
    }
    let mut pid = String::new();
    file.read_to_string(&mut pid).ok()?;
    pid.trim().parse().ok().or(Some(0))
}

fn requests_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("requests")
}

fn replies_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("replies")
}

/// Drops a request for the daemon; returns its id.
pub fn write_request(state_dir: &Path, kind: RequestKind) -> Result<String> {
    let dir = requests_dir(state_dir);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let now = jiff::Timestamp::now();
    let id = format!("{}-{}", now.as_millisecond(), std::process::id());
    let request = Request { id: id.clone(), kind };
    write_atomic(&dir.join(format!("{id}.json")), &serde_json::to_vec(&request)?)?;
    Ok(id)
}

/// Largest request file read; real ones are well under 200 bytes.
pub const MAX_REQUEST_BYTES: u64 = 4096;

/// Whether `id` has exactly the shape [`write_request`] gives ids, `<unix ms>-<pid>` in
/// decimal. The id names the reply file, so anything else (a `/`, `..`) could point a
/// reply anywhere on disk.
pub fn is_request_id(id: &str) -> bool {
    let digits = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    id.split_once('-')
        .is_some_and(|(ms, pid)| digits(ms, 16) && digits(pid, 10))
}

/// Takes (reads and removes) pending requests, oldest first. A file that is not a
/// request as `ccl` writes them (not a regular file, too large, malformed, an id of
/// another shape or not matching its name) is moved aside to `NAME.rejected` with one
/// warning, and never acted on.
pub fn take_requests(state_dir: &Path) -> Vec<Request> {
    let dir = requests_dir(state_dir);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    names.sort();
    names.truncate(MAX_REQUESTS_PER_TURN);
    let mut out = Vec::new();
    for path in names {
        match read_request(&path) {
            Ok(r) => {
                out.push(r);
                let _ = fs::remove_file(&path);
            }
            Err(why) => {
                let mut aside = path.clone().into_os_string();
                aside.push(".rejected");
                match fs::rename(&path, &aside) {
                    Ok(()) => log::warn!(
                        "request {} is not one ccl wrote ({why}); moved aside to {}",
                        path.display(),
                        Path::new(&aside).display()
                    ),
                    Err(e) => log::warn!(
                        "request {} is not one ccl wrote ({why}) and cannot be moved aside: {e}",
                        path.display()
                    ),
                }
            }
        }
    }
    out
}

fn read_request(path: &Path) -> Result<Request, String> {
    let bytes =
        crate::adapters::untrusted::read_capped(path, MAX_REQUEST_BYTES).map_err(|e| format!("cannot read it: {e}"))?;
    let request: Request = serde_json::from_slice(&bytes).map_err(|e| format!("malformed: {e}"))?;
    if !is_request_id(&request.id) {
        return Err(format!(
            "id {:?} is not of the form <ms>-<pid>",
            ccl_core::util::snippet(&request.id, 80)
        ));
    }
    if path.file_stem().and_then(|s| s.to_str()) != Some(request.id.as_str()) {
        return Err(format!("id {} does not match the file name", request.id));
    }
    Ok(request)
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

pub fn write_reply(state_dir: &Path, id: &str, ok: bool, message: &str) -> Result<()> {
    if !is_request_id(id) {
        bail!("refusing to write a reply for request id {id:?}: not of the form <ms>-<pid>");
    }
    let dir = replies_dir(state_dir);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let reply = Reply {
        ok,
        message: message.to_string(),
    };
    write_atomic(&dir.join(format!("{id}.json")), &serde_json::to_vec(&reply)?)
}

/// Waits for the daemon's reply to request `id` (polling its file; this is a CLI
/// command waiting on another process, not a test).
pub fn wait_reply(state_dir: &Path, id: &str, timeout: Duration) -> Option<Reply> {
    let path = replies_dir(state_dir).join(format!("{id}.json"));
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(reply) = crate::adapters::untrusted::read_capped(&path, MAX_REQUEST_BYTES)
            .ok()
            .and_then(|b| serde_json::from_slice::<Reply>(&b).ok())
        {
            let _ = fs::remove_file(&path);
            return Some(reply);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_state_is_moved_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"{not json").unwrap();
        assert!(load(&path, 42).unwrap().is_none());
        assert!(!path.exists());
        assert_eq!(
            fs::read(dir.path().join("state.json.corrupt-42")).unwrap(),
            b"{not json"
        );
    }

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let err = format!("{:#}", lock(dir.path()).err().unwrap());
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert_eq!(daemon_pid(dir.path()), Some(std::process::id()));
        drop(held);
        assert_eq!(daemon_pid(dir.path()), None);
        lock(dir.path()).unwrap();
    }

    /// A request whose id is not the shape ccl writes is never acted on, so its id never
    /// becomes a reply path; it is moved aside once.
    #[test]
    fn a_request_id_of_another_shape_is_moved_aside_and_never_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let requests = state_dir.join("requests");
        fs::create_dir_all(&requests).unwrap();
        let escape = r#"{"id":"../../outside/.claude","request":"pause","queue":null}"#;
        fs::write(requests.join("1-1.json"), escape).unwrap();
        let mismatch = r#"{"id":"5-5","request":"pause","queue":null}"#;
        fs::write(requests.join("6-6.json"), mismatch).unwrap();
        let taken = take_requests(&state_dir);
        assert!(taken.is_empty(), "{taken:?}");
        assert!(requests.join("1-1.json.rejected").exists());
        assert!(requests.join("6-6.json.rejected").exists());
        assert!(take_requests(&state_dir).is_empty());
        assert!(requests.join("1-1.json.rejected").exists(), "moved aside once, kept");
        assert!(write_reply(&state_dir, "../../outside/.claude", true, "x").is_err());
        assert!(!dir.path().join("outside").exists());
    }

    /// A FIFO, a symlink or a huge file in `requests/` neither blocks the loop nor is
    /// followed or read whole.
    #[test]
    fn a_fifo_or_symlink_in_requests_never_blocks_or_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let requests = state_dir.join("requests");
        fs::create_dir_all(&requests).unwrap();
        let fifo = std::ffi::CString::new(requests.join("1-1.json").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let elsewhere = dir.path().join("elsewhere.json");
        fs::write(&elsewhere, r#"{"id":"2-2","request":"pause","queue":null}"#).unwrap();
        std::os::unix::fs::symlink(&elsewhere, requests.join("2-2.json")).unwrap();
        let mut huge = r#"{"id":"3-3","request":"pause","queue":null}"#.to_string();
        huge.push_str(&" ".repeat(MAX_REQUEST_BYTES as usize));
        fs::write(requests.join("3-3.json"), huge).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let sd = state_dir.clone();
        std::thread::spawn(move || {
            let _ = tx.send(take_requests(&sd));
        });
        let taken = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("take_requests blocked on a fifo");
        assert!(taken.is_empty(), "{taken:?}");
        assert!(elsewhere.exists(), "the link's target is left alone");
    }

    #[test]
    fn requests_round_trip_and_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let id = write_request(dir.path(), RequestKind::Swap { to: Some("b".into()) }).unwrap();
        let taken = take_requests(dir.path());
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].id, id);
        assert_eq!(taken[0].kind, RequestKind::Swap { to: Some("b".into()) });
        assert!(take_requests(dir.path()).is_empty());
        write_reply(dir.path(), &id, true, "swapped from a to b").unwrap();
        let reply = wait_reply(dir.path(), &id, Duration::from_secs(1)).unwrap();
        assert!(reply.ok);
        assert_eq!(reply.message, "swapped from a to b");
    }
}
