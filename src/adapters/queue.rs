//! The task queue on disk: `PROJECT/.agent-queue/{inbox,running,done,failed}/`. This
//! module owns the file side of it only — listing, checking, claiming and moving task
//! files, and writing new tasks and sidecars (`done/NAME.json`, `failed/NAME.error`);
//! which task to take and when is decided elsewhere.
//!
//! Its rules: a task is one regular UTF-8 file without control characters other than
//! newline and tab (a carriage return or an escape would act as keys once pasted into a
//! pane); a task file moves between directories only by `rename`, so it is never in two
//! at once; a move never replaces an existing file (a task from an earlier run with the
//! same name is kept, and the new one is filed next to it under a numbered name that its
//! record names); and no task file is ever deleted.
//! Everything that becomes visible under a final name (new tasks, sidecars) is written to
//! a dotfile first, synced, and renamed, so a reader never sees half a file.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use ccl_core::config::{Queue, STATES};
use ccl_core::task::{check_body, check_slash, too_large, Counts, InboxEntry, MAX_NAME_BYTES, MAX_TASK_BYTES};

/// Directory entries read per inbox per scan, so one flooded inbox cannot stall a turn.
/// `readdir` order is arbitrary: with more entries than this, the oldest may wait for a
/// later scan after others have been taken.
pub const MAX_SCAN_ENTRIES: usize = 512;
/// The longest single file name Linux file systems allow.
const FS_NAME_MAX_BYTES: usize = 255;

/// Numbered names tried when filing a task whose name is taken at its destination.
const MAX_RENAME_ATTEMPTS: usize = 1_000;

/// Renamed tasks `ccl status` lists per queue.
pub const MAX_RENAMED_SHOWN: usize = 20;

/// Longest extension kept when a name gets a number (`fix-tests.md` → `fix-tests-2.md`).
const MAX_EXT_BYTES: usize = 16;

/// Characters of an enqueue hint kept in the task name.
const MAX_HINT_CHARS: usize = 64;

/// Names tried before `enqueue` gives up; each retry after the first adds random hex, so
/// running out means something other than a name collision is wrong.
const MAX_ENQUEUE_ATTEMPTS: usize = 16;

/// Sidecar suffixes: `done/NAME.json` holds what ccl knows about the run, and
/// `failed/NAME.error` says why the task failed.
const DONE_SIDECAR: &str = ".json";
const FAILED_SIDECAR: &str = ".error";

/// Creates the four queue directories (and the project's `.agent-queue/`) if missing.
/// The project itself must exist: a mistyped path is refused, never created.
pub fn ensure_dirs(q: &Queue) -> Result<()> {
    check_project(q)?;
    for state in STATES {
        let dir = q.dir(state);
        fs::create_dir_all(&dir).with_context(|| format!("queue '{}': cannot create {}", q.name, dir.display()))?;
    }
    Ok(())
}

/// Fails unless the queue's project is an existing directory.
pub fn check_project(q: &Queue) -> Result<()> {
    if q.project.is_dir() {
        Ok(())
    } else {
        bail!(
            "queue '{}': project {} does not exist (create it, or correct the queue's project in the configuration)",
            q.name,
            q.project.display()
        )
    }
}

/// Inbox entries oldest first (mtime, then name). Ignores dotfiles and temporary names
/// (`*~`, `*.tmp`, `*.swp`, `*.part`, `#*#`) and names that are not UTF-8. Reads at most
/// [`MAX_SCAN_ENTRIES`] directory entries. Each entry is checked as a task (lstat first,
/// so a symlink is reported rather than followed) and `problem` says what is wrong with
/// it. A missing inbox directory gives an empty list.
pub fn scan_inbox(q: &Queue) -> Result<Vec<InboxEntry>> {
    scan_inbox_with(q, &mut InboxCache::default())
}

/// What scanning an inbox learnt about each file, so an unchanged file (same size,
/// mtime and inode) is not read and checked again on every turn.
#[derive(Debug, Default)]
pub struct InboxCache {
    verdicts: std::collections::BTreeMap<PathBuf, (FileStamp, Option<String>)>,
    /// The queue's `slash_commands` the verdicts were made under (a reload may change it).
    slash_commands: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    mtime_ms: i64,
    ino: u64,
}

/// [`scan_inbox`], reusing verdicts on unchanged files from `cache` (the daemon keeps
/// one per queue across turns).
pub fn scan_inbox_with(q: &Queue, cache: &mut InboxCache) -> Result<Vec<InboxEntry>> {
    let dir = q.dir("inbox");
    let read = match fs::read_dir(&dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("queue '{}': cannot list {}", q.name, dir.display())),
    };
    let mut entries = Vec::new();
    let mut fresh = std::collections::BTreeMap::new();
    if cache.slash_commands != q.slash_commands {
        cache.verdicts.clear();
        cache.slash_commands = q.slash_commands;
    }
    for entry in read.take(MAX_SCAN_ENTRIES) {
        let entry = entry.with_context(|| format!("queue '{}': cannot list {}", q.name, dir.display()))?;
        // A name that is not UTF-8 cannot be handed around as a String; such a file is
        // skipped rather than guessed at.
        let Ok(name) = entry.file_name().into_string() else {
            log::debug!("queue '{}': skipping inbox entry with a non-UTF-8 name", q.name);
            continue;
        };
        if is_ignored(&name) {
            continue;
        }
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Claimed by someone else between the listing and the lstat.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("queue '{}': cannot stat {}", q.name, path.display())),
        };
        let stamp = FileStamp {
            len: meta.len(),
            mtime_ms: mtime_ms(&meta),
            ino: std::os::unix::fs::MetadataExt::ino(&meta),
        };
        let problem = match cache.verdicts.get(&path) {
            Some((seen, verdict)) if *seen == stamp => verdict.clone(),
            _ => match inspect(q, &name, &path, &meta) {
                Inspection::Task => None,
                Inspection::Bad(reason) => Some(reason),
                Inspection::Gone => continue,
            },
        };
        fresh.insert(path, (stamp, problem.clone()));
        entries.push(InboxEntry {
            name: name.into(),
            mtime_ms: mtime_ms(&meta),
            len: meta.len(),
            problem,
        });
    }
    // Only files still in the inbox are remembered.
    cache.verdicts = fresh;
    entries.sort_by(|a, b| (a.mtime_ms, &a.name).cmp(&(b.mtime_ms, &b.name)));
    Ok(entries)
}

/// Task names in one of the queue's directories, sorted. In `done/` and `failed/` a
/// sidecar (`NAME.json`, `NAME.error`) is left out when its task `NAME` is there too, so
/// a task whose own name ends in `.json` or `.error` still counts. Dotfiles and temporary
/// names are left out as in [`scan_inbox`]. A missing directory gives an empty list.
pub fn list(q: &Queue, state: &str) -> Result<Vec<String>> {
    check_state(q, state)?;
    let names = read_names(q, state)?;
    let sidecar = match state {
        "done" => Some(DONE_SIDECAR),
        "failed" => Some(FAILED_SIDECAR),
        _ => None,
    };
    let is_sidecar = |name: &str| match sidecar {
        Some(suffix) => name.strip_suffix(suffix).is_some_and(|task| names.contains(task)),
        None => false,
    };
    Ok(names.iter().filter(|name| !is_sidecar(name)).cloned().collect())
}

/// Task files per directory (see [`list`]; sidecars are not counted).
pub fn counts(q: &Queue) -> Result<Counts> {
    Ok(Counts {
        inbox: list(q, "inbox")?.len(),
        running: list(q, "running")?.len(),
        done: list(q, "done")?.len(),
        failed: list(q, "failed")?.len(),
    })
}

/// Reads `running/NAME` for dispatch. The file must still be a regular file (lstat, then
/// opened without following links) and its body must pass [`check_body`].
pub fn read_running(q: &Queue, name: &str) -> Result<String> {
    check_name(q, name)?;
    let path = q.dir("running").join(name);
    let meta =
        fs::symlink_metadata(&path).with_context(|| format!("queue '{}': cannot stat {}", q.name, path.display()))?;
    if let Some(reason) = not_a_file(&meta) {
        bail!("queue '{}': {}: {reason}", q.name, path.display());
    }
    let bytes = read_task_file(&path).with_context(|| format!("queue '{}': cannot read {}", q.name, path.display()))?;
    // Checked again at paste time: the file may have been rewritten since the scan.
    match check_body(&bytes).and_then(|text| check_slash(q, text)) {
        Ok(text) => Ok(text.to_owned()),
        Err(reason) => bail!("queue '{}': {}: {reason}", q.name, path.display()),
    }
}

/// Claims a task: `inbox/NAME` -> `running/NAME`. Ok(false) when `inbox/NAME` is gone
/// (another claimed it first), which is not an error.
pub fn claim(q: &Queue, name: &str) -> Result<bool> {
    check_name(q, name)?;
    move_task(q, "inbox", "running", name)
}

/// Whether a failed claim lost a race (the file gone, or a file of that name already in
/// `running/`) rather than failed for a reason that lasts (another file system, no
/// permission, a full disk).
pub fn is_race(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::AlreadyExists))
}

/// What would keep the daemon from moving tasks through this queue, one line each: a
/// project that does not exist, a queue directory that is not a directory or not
/// writable, or queue directories on different file systems (a task moves between them
/// by rename, which cannot cross file systems). A queue directory not created yet is
/// fine: `ccl run` creates it.
pub fn check_dirs(q: &Queue) -> Vec<String> {
    let mut problems = Vec::new();
    if !q.project.is_dir() {
        problems.push(format!(
            "queue '{}': project {} is not a directory",
            q.name,
            q.project.display()
        ));
        return problems;
    }
    let mut devices: Vec<(&str, u64)> = Vec::new();
    for state in STATES {
        let dir = q.dir(state);
        let meta = match fs::metadata(&dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                problems.push(format!("queue '{}': cannot stat {}: {e}", q.name, dir.display()));
                continue;
            }
        };
        if !meta.is_dir() {
            problems.push(format!("queue '{}': {} is not a directory", q.name, dir.display()));
            continue;
        }
        if let Err(e) = writable(&dir) {
            problems.push(format!("queue '{}': {} is not writable: {e}", q.name, dir.display()));
        }
        devices.push((state, meta.dev()));
    }
    if let Some(&(first, dev)) = devices.first() {
        for &(state, other) in &devices[1..] {
            if other != dev {
                problems.push(format!(
                    "queue '{}': {} and {} are on different file systems, so a task cannot be moved between them",
                    q.name,
                    q.dir(first).display(),
                    q.dir(state).display()
                ));
            }
        }
    }
    problems
}

/// access(2) for writing and searching: the permission check the kernel would make for
/// a rename into `dir`.
fn writable(dir: &Path) -> io::Result<()> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated path; access(2) reads nothing else.
    if unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Finishes a task: `running/NAME` -> `done/NAME`, then writes `done/NAME.json` (pretty
/// JSON, atomically). When `NAME` or its record is taken in `done/` (an earlier task of
/// the same name), the earlier one is kept and this one is filed next to it under the
/// first free `STEM-N.EXT`, its record saying `"renamed_from": NAME`. Ok(Some(new name))
/// when renamed.
pub fn finish(q: &Queue, name: &str, meta: &serde_json::Value) -> Result<Option<String>> {
    check_name(q, name)?;
    let filed = move_to_free_name(q, "running", "done", name, DONE_SIDECAR)?;
    let mut meta = meta.clone();
    if let (Some(_), Some(fields)) = (&filed, meta.as_object_mut()) {
        fields.insert("renamed_from".into(), name.into());
    }
    let mut text = serde_json::to_string_pretty(&meta)
        .with_context(|| format!("queue '{}': cannot render the record of {name}", q.name))?;
    text.push('\n');
    let sidecar = format!("{}{DONE_SIDECAR}", filed.as_deref().unwrap_or(name));
    write_atomic(q, &q.dir("done"), &sidecar, text.as_bytes())?;
    Ok(filed)
}

/// Fails a task: `FROM/NAME` -> `failed/NAME` (FROM is `inbox` or `running`), then writes
/// `failed/NAME.error` with the reason and a newline (atomically). Filed under another
/// name as [`finish`] does when `NAME` or its sidecar is taken, or when `NAME.error`
/// would be too long a file name; the sidecar then says what it was renamed from.
pub fn fail(q: &Queue, from: &str, name: &str, reason: &str) -> Result<Option<String>> {
    if from != "inbox" && from != "running" {
        bail!(
            "queue '{}': a task fails from inbox or running, not from '{from}'",
            q.name
        );
    }
    check_name(q, name)?;
    let filed = move_to_free_name(q, from, "failed", name, FAILED_SIDECAR)?;
    let mut text = format!("{}\n", reason.trim_end_matches('\n'));
    if filed.is_some() {
        text.push_str(&format!(
            "(renamed from {name}: that name was taken in failed/ or too long for this file)\n"
        ));
    }
    let sidecar = format!("{}{FAILED_SIDECAR}", filed.as_deref().unwrap_or(name));
    write_atomic(q, &q.dir("failed"), &sidecar, text.as_bytes())?;
    Ok(filed)
}

/// Most earlier reasons one task keeps (`failed/.NAME.error.N`); a task retried more
/// often than this needs a look, not another retry.
pub const MAX_RETRIES: u32 = 100;

/// A failed task back to the inbox (`ccl retry`): `failed/NAME.error` is first renamed to
/// the first free `failed/.NAME.error.N` (a dotfile, so listings and counts leave it out)
/// and kept as history, then `failed/NAME` -> `inbox/NAME`. Nothing is overwritten or
/// deleted. Returns the history file's name, if there was a reason to keep.
pub fn retry(q: &Queue, name: &str) -> Result<Option<String>> {
    check_name(q, name)?;
    let failed = q.dir("failed");
    if !failed.join(name).is_file() {
        bail!(
            "queue '{}': {} is not a failed task",
            q.name,
            failed.join(name).display()
        );
    }
    check_project(q)?;
    let error = failed.join(format!("{name}{FAILED_SIDECAR}"));
    let mut kept = None;
    if error.symlink_metadata().is_ok() {
        for n in 1..=MAX_RETRIES {
            let history = format!(".{name}{FAILED_SIDECAR}.{n}");
            match rename_noreplace(&error, &failed.join(&history)) {
                Ok(()) => {
                    kept = Some(history);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("queue '{}': cannot keep {}", q.name, error.display()))
                }
            }
        }
        if kept.is_none() {
            bail!("queue '{}': {name} was retried {MAX_RETRIES} times already", q.name);
        }
        sync_dir(&failed);
    }
    move_existing(q, "failed", "inbox", name)?;
    Ok(kept)
}

/// The reasons of a task's earlier failures kept by [`retry`], oldest first.
pub fn failure_history(q: &Queue, name: &str) -> Vec<(String, String)> {
    let failed = q.dir("failed");
    (1..=MAX_RETRIES)
        .map(|n| format!(".{name}{FAILED_SIDECAR}.{n}"))
        .map_while(|h| {
            let text = fs::read_to_string(failed.join(&h)).ok()?;
            Some((h, text))
        })
        .collect()
}

/// Puts a task back: `running/NAME` -> `inbox/NAME`. A rename keeps the file's mtime, so
/// the task keeps its place in line. When a new file of that name was dropped into the
/// inbox meanwhile, both are kept: this one goes back as `STEM-N.EXT`.
pub fn requeue(q: &Queue, name: &str) -> Result<Option<String>> {
    check_name(q, name)?;
    move_to_free_name(q, "running", "inbox", name, "")
}

/// A task filed under a name other than its own (see [`finish`], [`fail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    pub dir: &'static str,
    pub task: String,
    pub from: String,
}

/// Tasks in `done/` and `failed/` filed under a numbered name because their own was
/// taken (or too long), read from their records; at most [`MAX_RENAMED_SHOWN`], sorted by
/// directory and name. Only numbered names (`STEM-N.EXT`) have their record read.
pub fn renamed(q: &Queue) -> Vec<Renamed> {
    let mut out = Vec::new();
    for (dir, sidecar) in [("done", DONE_SIDECAR), ("failed", FAILED_SIDECAR)] {
        for task in list(q, dir).unwrap_or_default() {
            if out.len() == MAX_RENAMED_SHOWN {
                return out;
            }
            if !is_numbered(&task) {
                continue;
            }
            let Ok(record) = read_sidecar(&q.dir(dir).join(format!("{task}{sidecar}"))) else {
                continue;
            };
            let from = if dir == "done" {
                serde_json::from_str::<serde_json::Value>(&record)
                    .ok()
                    .and_then(|v| v.get("renamed_from")?.as_str().map(String::from))
            } else {
                record.lines().find_map(|l| {
                    l.strip_prefix("(renamed from ")?
                        .split_once(": ")
                        .map(|(f, _)| f.to_string())
                })
            };
            if let Some(from) = from {
                out.push(Renamed { dir, task, from });
            }
        }
    }
    out
}

/// `STEM-N.EXT` or `NAME-N`, as [`numbered_name`] makes them.
fn is_numbered(name: &str) -> bool {
    let stem = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= MAX_EXT_BYTES => &name[..dot],
        _ => name,
    };
    stem.rsplit_once('-')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A sidecar, read without following a link and at most [`MAX_TASK_BYTES`].
fn read_sidecar(path: &Path) -> io::Result<String> {
    let bytes = read_task_file(path)?;
    String::from_utf8(bytes).map_err(io::Error::other)
}

/// Moves `FROM/NAME` into `TO/` under `NAME` when both it and `NAME` + `sidecar` are
/// free there and fit in a file name, else under the first such `STEM-N.EXT` (N from 2,
/// the stem shortened as needed). Ok(Some(new name)) when renamed. The rename never
/// replaces anything, so a name taken between the look and the move is skipped too.
fn move_to_free_name(q: &Queue, from: &str, to: &str, name: &str, sidecar: &str) -> Result<Option<String>> {
    let from_dir = q.dir(from);
    let to_dir = q.dir(to);
    let src = from_dir.join(name);
    fs::create_dir_all(&to_dir).with_context(|| format!("queue '{}': cannot create {}", q.name, to_dir.display()))?;
    for n in 1..=MAX_RENAME_ATTEMPTS {
        let Some(candidate) = numbered_name(name, n, sidecar.len()) else {
            continue;
        };
        let mut files = vec![candidate.clone()];
        if !sidecar.is_empty() {
            files.push(format!("{candidate}{sidecar}"));
        }
        let in_the_way = files.iter().any(|file| fs::symlink_metadata(to_dir.join(file)).is_ok());
        if in_the_way {
            continue;
        }
        match rename_noreplace(&src, &to_dir.join(&candidate)) {
            Ok(()) => {
                sync_dir(&to_dir);
                sync_dir(&from_dir);
                return Ok((n > 1 || candidate != name).then_some(candidate));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(&src).is_err() => {
                bail!("queue '{}': {} does not exist", q.name, src.display())
            }
            Err(e) => {
                return Err(e).with_context(|| format!("queue '{}': cannot move {} to {to}/", q.name, src.display()))
            }
        }
    }
    bail!(
        "queue '{}': no free name for {name} in {} after {MAX_RENAME_ATTEMPTS} attempts",
        q.name,
        to_dir.display()
    )
}

/// `NAME` itself for n = 1, else `STEM-n.EXT` (or `NAME-n` without an extension), with
/// the stem cut (at a character boundary) so that the name plus `sidecar_len` bytes fits
/// in a file name. None when n = 1 and `NAME` does not fit.
fn numbered_name(name: &str, n: usize, sidecar_len: usize) -> Option<String> {
    let budget = FS_NAME_MAX_BYTES - sidecar_len;
    if n == 1 {
        return (name.len() <= budget).then(|| name.to_string());
    }
    // An extension is what follows the last dot, unless the dot starts the name or the
    // "extension" is long enough to be part of the name proper.
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= MAX_EXT_BYTES => name.split_at(dot),
        _ => (name, ""),
    };
    let suffix = format!("-{n}{ext}");
    let mut cut = budget.saturating_sub(suffix.len()).min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!("{}{suffix}", &stem[..cut]))
}

/// Writes a new task into the inbox and returns its name. The body is checked first (Err
/// with the reason when bad); it is written to a dotfile in `inbox/` (which scans ignore),
/// synced, and renamed to its final name without replacing anything, so the task appears
/// whole or not at all. Name: `<UTC yyyymmdd-hhmmss>-<6 random hex>.md`, or with a hint
/// `<UTC yyyymmdd-hhmmss>-<stem of hint>.md` with the stem reduced to `[A-Za-z0-9._-]`
/// (random hex is added if that name is taken). Creates the queue directories if missing.
pub fn enqueue(q: &Queue, body: &[u8], hint: Option<&str>) -> Result<String> {
    check_body(body).map_err(|reason| anyhow!("queue '{}': task rejected: {reason}", q.name))?;
    ensure_dirs(q)?;
    let inbox = q.dir("inbox");
    let tmp = write_temp(&inbox, body)
        .with_context(|| format!("queue '{}': cannot write a new task in {}", q.name, inbox.display()))?;
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    let stem = hint.map(sanitise_hint).filter(|stem| !stem.is_empty());
    for attempt in 0..MAX_ENQUEUE_ATTEMPTS {
        let name = match (&stem, attempt) {
            (Some(stem), 0) => format!("{stamp}-{stem}.md"),
            (Some(stem), _) => format!("{stamp}-{stem}-{}.md", random_hex(6)),
            (None, _) => format!("{stamp}-{}.md", random_hex(6)),
        };
        match rename_noreplace(&tmp, &inbox.join(&name)) {
            Ok(()) => {
                sync_dir(&inbox);
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                discard_temp(&tmp);
                return Err(e).with_context(|| {
                    format!(
                        "queue '{}': cannot rename a new task to {}",
                        q.name,
                        inbox.join(&name).display()
                    )
                });
            }
        }
    }
    discard_temp(&tmp);
    bail!(
        "queue '{}': no free task name in {} after {MAX_ENQUEUE_ATTEMPTS} attempts",
        q.name,
        inbox.display()
    )
}

// ---------------------------------------------------------------------------------------
// Checks.

/// Names come from directory listings and from state files; one with a `/` or a `..`
/// would reach outside the queue.
fn check_name(q: &Queue, name: &str) -> Result<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.len() > FS_NAME_MAX_BYTES
    {
        bail!("queue '{}': task name {name:?} is not a plain file name", q.name);
    }
    Ok(())
}

fn check_state(q: &Queue, state: &str) -> Result<()> {
    if !STATES.contains(&state) {
        bail!(
            "queue '{}': unknown queue directory '{state}' (inbox, running, done, failed)",
            q.name
        );
    }
    Ok(())
}

/// Editor backups, partial downloads and our own temp files (dotfiles) are not tasks.
fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [".tmp", ".swp", ".part"].iter().any(|suffix| name.ends_with(suffix))
        || (name.len() >= 2 && name.starts_with('#') && name.ends_with('#'))
}

enum Inspection {
    Task,
    Bad(String),
    /// Removed or claimed while being looked at.
    Gone,
}

fn inspect(q: &Queue, name: &str, path: &Path, meta: &fs::Metadata) -> Inspection {
    if let Some(reason) = not_a_file(meta) {
        return Inspection::Bad(reason);
    }
    if name.len() > MAX_NAME_BYTES {
        return Inspection::Bad(format!("file name is longer than {MAX_NAME_BYTES} bytes"));
    }
    // Size is judged from the lstat so an oversize file is not read at all.
    if meta.len() == 0 {
        return Inspection::Bad("empty task".into());
    }
    if meta.len() > MAX_TASK_BYTES {
        return Inspection::Bad(too_large(meta.len()));
    }
    match read_task_file(path) {
        Ok(bytes) => match check_body(&bytes).and_then(|text| check_slash(q, text)) {
            Ok(_) => Inspection::Task,
            Err(reason) => Inspection::Bad(reason),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Inspection::Gone,
        Err(e) => Inspection::Bad(format!("task cannot be read: {e}")),
    }
}

/// Why an lstat result is not a task file, or None for a regular file.
fn not_a_file(meta: &fs::Metadata) -> Option<String> {
    let kind = meta.file_type();
    if kind.is_file() {
        None
    } else if kind.is_symlink() {
        Some("symbolic link, not a regular file".into())
    } else if kind.is_dir() {
        Some("directory, not a regular file".into())
    } else {
        Some("special file (fifo, socket or device), not a regular file".into())
    }
}

// ---------------------------------------------------------------------------------------
// File operations.

/// Reads at most one byte more than [`MAX_TASK_BYTES`] (enough for `check_body` to see an
/// oversize file). Opened without following a link and without blocking, so a file
/// swapped for a symlink or a fifo after the lstat is refused rather than followed or
/// waited on.
fn read_task_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    crate::adapters::untrusted::read_prefix(path, MAX_TASK_BYTES + 1, &mut bytes)?;
    Ok(bytes)
}

/// Every UTF-8, non-ignored name in one queue directory, sorted; missing directory → empty.
fn read_names(q: &Queue, state: &str) -> Result<BTreeSet<String>> {
    let dir = q.dir(state);
    let read = match fs::read_dir(&dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e).with_context(|| format!("queue '{}': cannot list {}", q.name, dir.display())),
    };
    let mut names = BTreeSet::new();
    for entry in read {
        let entry = entry.with_context(|| format!("queue '{}': cannot list {}", q.name, dir.display()))?;
        if let Ok(name) = entry.file_name().into_string() {
            if !is_ignored(&name) {
                names.insert(name);
            }
        }
    }
    Ok(names)
}

/// Like [`move_task`], but a missing source is an error: only a claim can lose a race.
fn move_existing(q: &Queue, from: &str, to: &str, name: &str) -> Result<()> {
    if move_task(q, from, to, name)? {
        Ok(())
    } else {
        bail!(
            "queue '{}': {} does not exist",
            q.name,
            q.dir(from).join(name).display()
        )
    }
}

/// `FROM/NAME` -> `TO/NAME` by rename, never replacing an existing file. Ok(false) when
/// the source does not exist.
fn move_task(q: &Queue, from: &str, to: &str, name: &str) -> Result<bool> {
    let from_dir = q.dir(from);
    let to_dir = q.dir(to);
    let src = from_dir.join(name);
    let dst = to_dir.join(name);
    // Flattened to text: "exists" here means a file where the directory should be, which
    // lasts, and must not read as a lost race (see `is_race`).
    fs::create_dir_all(&to_dir).map_err(|e| anyhow!("queue '{}': cannot create {}: {e}", q.name, to_dir.display()))?;
    match rename_noreplace(&src, &dst) {
        Ok(()) => {
            sync_dir(&to_dir);
            sync_dir(&from_dir);
            Ok(true)
        }
        // Kept as an io error, so a caller can tell this (another task of the same name
        // got there first) from a failure that lasts.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e).with_context(|| {
            format!(
                "queue '{}': cannot move {} to {to}/: {} already exists (not overwriting it)",
                q.name,
                src.display(),
                dst.display()
            )
        }),
        // The destination directory exists (created above), so a missing path is the
        // source unless the lstat says otherwise.
        Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(&src).is_err() => Ok(false),
        Err(e) => Err(e).with_context(|| format!("queue '{}': cannot move {} to {to}/", q.name, src.display())),
    }
}

/// Writes `dir/name` whole or not at all (temp dotfile, sync, rename without replacing).
fn write_atomic(q: &Queue, dir: &Path, name: &str, contents: &[u8]) -> Result<()> {
    let dst = dir.join(name);
    let tmp =
        write_temp(dir, contents).with_context(|| format!("queue '{}': cannot write {}", q.name, dst.display()))?;
    match rename_noreplace(&tmp, &dst) {
        Ok(()) => {
            sync_dir(dir);
            Ok(())
        }
        Err(e) => {
            discard_temp(&tmp);
            if e.kind() == io::ErrorKind::AlreadyExists {
                bail!(
                    "queue '{}': {} already exists (not overwriting it)",
                    q.name,
                    dst.display()
                );
            }
            Err(e).with_context(|| format!("queue '{}': cannot write {}", q.name, dst.display()))
        }
    }
}

/// Creates a fresh dotfile in `dir` holding `contents`, synced to disk; returns its path.
fn write_temp(dir: &Path, contents: &[u8]) -> io::Result<PathBuf> {
    let mut attempt = 0;
    let (path, mut file) = loop {
        let path = dir.join(format!(".ccl-{}.tmp", random_hex(12)));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => break (path, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < MAX_ENQUEUE_ATTEMPTS => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    match file.write_all(contents).and_then(|()| file.sync_all()) {
        Ok(()) => Ok(path),
        Err(e) => {
            discard_temp(&path);
            Err(e)
        }
    }
}

/// Removes a temp file this module created and never renamed. It was never a task (no
/// scan looks at dotfiles), so this is not the deletion of a task.
fn discard_temp(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        log::warn!("cannot remove temporary file {}: {e}", path.display());
    }
}

/// Makes a rename durable. A failure here is logged, not returned: the rename itself has
/// happened, and reporting it as failed would make the caller act on a wrong picture.
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        log::warn!("cannot sync directory {}: {e}", dir.display());
    }
}

/// Renames `src` to `dst` unless `dst` exists (then `AlreadyExists`). Uses the kernel's
/// atomic `RENAME_NOREPLACE`; on a file system without it, checks first and renames,
/// which leaves a window only against a writer racing for the same new name.
#[cfg(target_os = "linux")]
fn rename_noreplace(src: &Path, dst: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    let src_c = CString::new(src.as_os_str().as_bytes())?;
    let dst_c = CString::new(dst.as_os_str().as_bytes())?;
    // SAFETY: both pointers are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            src_c.as_ptr(),
            libc::AT_FDCWD,
            dst_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => rename_checked(src, dst),
        _ => Err(err),
    }
}

#[cfg(not(target_os = "linux"))]
fn rename_noreplace(src: &Path, dst: &Path) -> io::Result<()> {
    rename_checked(src, dst)
}

fn rename_checked(src: &Path, dst: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dst) {
        Ok(_) => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::rename(src, dst),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------
// Names and times.

fn mtime_ms(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000)
        .saturating_add(meta.mtime_nsec() / 1_000_000)
}

/// The stem of a hint's file name (`dir/fix bug.txt` → `fix_bug`), each character outside
/// `[A-Za-z0-9._-]` replaced by `_`, at most [`MAX_HINT_CHARS`] characters.
fn sanitise_hint(hint: &str) -> String {
    let stem = Path::new(hint)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    stem.chars()
        .take(MAX_HINT_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `digits` (at most 16) lowercase hex digits, different on every call. Uniqueness rather
/// than secrecy is the point, and every use retries on a collision, so std's randomly
/// keyed hasher over the clock, the process id and a counter is enough.
fn random_hex(digits: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};

    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    let hex = format!("{:016x}", hasher.finish());
    hex[..digits.min(16)].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    fn queue() -> (tempfile::TempDir, Queue) {
        let tmp = tempfile::tempdir().unwrap();
        let q = Queue::new("proj", tmp.path().join("proj"));
        fs::create_dir(&q.project).unwrap();
        ensure_dirs(&q).unwrap();
        (tmp, q)
    }

    fn put(q: &Queue, state: &str, name: &str, body: &[u8]) -> PathBuf {
        let path = q.dir(state).join(name);
        fs::write(&path, body).unwrap();
        path
    }

    fn set_mtime(path: &Path, secs: u64) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
    }

    /// Every directory of the queue holding `name`: a task must be in exactly one.
    fn where_is(q: &Queue, name: &str) -> Vec<&'static str> {
        STATES
            .into_iter()
            .filter(|state| fs::symlink_metadata(q.dir(state).join(name)).is_ok())
            .collect()
    }

    /// Every entry of a directory, dotfiles included, sorted.
    fn raw_listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn scanned_names(q: &Queue) -> Vec<String> {
        scan_inbox(q)
            .unwrap()
            .into_iter()
            .map(|e| e.name.into_string())
            .collect()
    }

    #[test]
    fn a_cached_verdict_follows_the_file_when_it_changes() {
        let (_tmp, q) = queue();
        let mut cache = InboxCache::default();
        let path = put(&q, "inbox", "t.md", b"");
        set_mtime(&path, 1_000);
        assert_eq!(
            scan_inbox_with(&q, &mut cache).unwrap()[0].problem.as_deref(),
            Some("empty task")
        );
        // Rewritten with content: new size and mtime, so it is checked again.
        fs::write(&path, b"a real prompt\n").unwrap();
        set_mtime(&path, 2_000);
        assert_eq!(scan_inbox_with(&q, &mut cache).unwrap()[0].problem, None);
        // Gone from the inbox: forgotten.
        claim(&q, "t.md").unwrap();
        assert!(scan_inbox_with(&q, &mut cache).unwrap().is_empty());
        assert!(cache.verdicts.is_empty());
    }

    #[test]
    fn inbox_is_taken_oldest_first_then_by_name() {
        let (_tmp, q) = queue();
        for (name, secs) in [("b.md", 2_000), ("d.md", 3_000), ("a.md", 2_000), ("c.md", 1_000)] {
            let path = put(&q, "inbox", name, b"do it\n");
            set_mtime(&path, secs);
        }
        let entries = scan_inbox(&q).unwrap();
        let order: Vec<(&str, i64)> = entries.iter().map(|e| (e.name.as_str(), e.mtime_ms)).collect();
        assert_eq!(
            order,
            [
                ("c.md", 1_000_000),
                ("a.md", 2_000_000),
                ("b.md", 2_000_000),
                ("d.md", 3_000_000)
            ]
        );
        assert!(entries.iter().all(|e| e.problem.is_none()), "{entries:?}");
    }

    #[test]
    fn dotfiles_and_temporary_names_are_not_tasks() {
        let (_tmp, q) = queue();
        for name in [
            ".hidden",
            ".ccl-0123.tmp",
            "draft~",
            "x.tmp",
            "x.swp",
            "x.part",
            "#x.md#",
            "real.md",
        ] {
            put(&q, "inbox", name, b"text");
        }
        assert_eq!(scanned_names(&q), ["real.md"]);
        assert_eq!(list(&q, "inbox").unwrap(), ["real.md"]);
        assert_eq!(counts(&q).unwrap().inbox, 1);
    }

    /// `/logout` as a task would log the account out for every session: a body whose
    /// first non-blank character is `/` is a bad task unless the queue allows it.
    #[test]
    fn a_slash_command_body_is_refused_unless_the_queue_allows_it() {
        let (_tmp, mut q) = queue();
        put(&q, "inbox", "logout.md", b"  \n /logout\n");
        put(&q, "inbox", "path.md", b"look at /etc/hosts");
        let mut cache = InboxCache::default();
        let problems = |q: &Queue, cache: &mut InboxCache| -> Vec<(String, Option<String>)> {
            scan_inbox_with(q, cache)
                .unwrap()
                .into_iter()
                .map(|e| (e.name.into_string(), e.problem))
                .collect()
        };
        let seen = problems(&q, &mut cache);
        let logout = seen.iter().find(|(n, _)| n == "logout.md").unwrap();
        assert!(
            logout
                .1
                .as_deref()
                .is_some_and(|p| p.contains("slash command") && p.contains("/logout")),
            "{seen:?}"
        );
        assert_eq!(seen.iter().find(|(n, _)| n == "path.md").unwrap().1, None);
        q.slash_commands = true;
        assert!(
            problems(&q, &mut cache).iter().all(|(_, p)| p.is_none()),
            "allowed after a reload"
        );
    }

    #[test]
    fn missing_inbox_scans_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Queue::new("none", tmp.path().join("nothing-here"));
        assert_eq!(scan_inbox(&q).unwrap(), []);
        assert_eq!(counts(&q).unwrap(), Counts::default());
    }

    /// (file name, body or None when the file is made specially, expected problem or None
    /// for a good task)
    type BadFileCase<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>);

    #[test]
    fn every_kind_of_bad_file_gets_a_problem() {
        let (_tmp, q) = queue();
        let inbox = q.dir("inbox");
        let oversize = vec![b'a'; MAX_TASK_BYTES as usize + 1];
        let at_limit = vec![b'a'; MAX_TASK_BYTES as usize];
        let cases: &[BadFileCase] = &[
            ("symlink.md", None, Some("symbolic link")),
            ("dir.md", None, Some("directory")),
            ("fifo.md", None, Some("special file")),
            ("empty.md", Some(b""), Some("empty task")),
            ("oversize.md", Some(&oversize), Some("larger than 262144 bytes")),
            (
                "latin1.md",
                Some(b"caf\xe9 au lait"),
                Some("not valid UTF-8 (invalid byte at offset 3)"),
            ),
            (
                "esc.md",
                Some(b"make it \x1b[31mred"),
                Some("control character U+001B at offset 8"),
            ),
            ("cr.md", Some(b"line one\r\nline two"), Some("control character U+000D")),
            ("blank.md", Some(b" \n\t\n"), Some("only whitespace")),
            ("tabs-and-newlines.md", Some(b"step 1:\tread\nstep 2:\twrite\n"), None),
            (
                "unicode.md",
                Some("caf\u{e9} \u{2713} \u{65e5}\u{672c}".as_bytes()),
                None,
            ),
            ("at-limit.md", Some(&at_limit), None),
        ];
        for (name, body, _) in cases {
            if let Some(body) = body {
                put(&q, "inbox", name, body);
            }
        }
        put(&q, "inbox", "target.tmp", b"a link target that is itself ignored");
        std::os::unix::fs::symlink(inbox.join("target.tmp"), inbox.join("symlink.md")).unwrap();
        fs::create_dir(inbox.join("dir.md")).unwrap();
        let fifo = std::ffi::CString::new(inbox.join("fifo.md").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

        let found: BTreeMap<String, Option<String>> = scan_inbox(&q)
            .unwrap()
            .into_iter()
            .map(|e| (e.name.into_string(), e.problem))
            .collect();
        assert_eq!(found.len(), cases.len(), "{found:?}");
        for (name, _, want) in cases {
            let got = &found[*name];
            match want {
                None => assert_eq!(got, &None, "{name}"),
                Some(want) => {
                    let got = got.as_deref().unwrap_or_else(|| panic!("{name}: no problem reported"));
                    assert!(got.contains(want), "{name}: {got:?} lacks {want:?}");
                }
            }
        }
    }

    #[test]
    fn scan_reads_a_bounded_number_of_entries() {
        let (_tmp, q) = queue();
        for i in 0..MAX_SCAN_ENTRIES + 40 {
            put(&q, "inbox", &format!("task-{i:04}.md"), b"x");
        }
        assert_eq!(scan_inbox(&q).unwrap().len(), MAX_SCAN_ENTRIES);
    }

    #[test]
    fn a_task_is_claimed_once() {
        let (_tmp, q) = queue();
        put(&q, "inbox", "t.md", b"fix the bug\n");
        assert!(claim(&q, "t.md").unwrap());
        assert!(!claim(&q, "t.md").unwrap(), "second claim must find it gone");
        assert_eq!(where_is(&q, "t.md"), ["running"]);
        assert_eq!(scan_inbox(&q).unwrap(), []);
        assert_eq!(read_running(&q, "t.md").unwrap(), "fix the bug\n");
    }

    /// An inbox on another file system than `running/` (here: a symlink to a directory
    /// on tmpfs). Returns None where no second file system is at hand.
    fn inbox_elsewhere(q: &Queue) -> Option<tempfile::TempDir> {
        let elsewhere = tempfile::tempdir_in("/dev/shm").ok()?;
        let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        if dev(elsewhere.path()) == dev(&q.dir("running")) {
            return None;
        }
        fs::remove_dir(q.dir("inbox")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), q.dir("inbox")).unwrap();
        Some(elsewhere)
    }

    #[test]
    fn a_claim_across_file_systems_is_a_lasting_error_and_check_finds_it() {
        let (_tmp, q) = queue();
        assert_eq!(check_dirs(&q), Vec::<String>::new());
        let Some(_elsewhere) = inbox_elsewhere(&q) else {
            eprintln!("skipped: /dev/shm is not a separate file system here");
            return;
        };
        put(&q, "inbox", "t.md", b"task");
        let err = claim(&q, "t.md").unwrap_err();
        assert!(!is_race(&err), "{err:#}");
        assert!(format!("{err:#}").contains("cross-device"), "{err:#}");
        assert_eq!(where_is(&q, "t.md"), ["inbox"]);

        let problems = check_dirs(&q);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("are on different file systems"), "{problems:?}");
    }

    #[test]
    fn a_lost_race_is_told_from_a_lasting_error() {
        let (_tmp, q) = queue();
        // Gone: another process claimed it first.
        assert!(!claim(&q, "gone.md").unwrap());
        // In the way: a task of that name got into running/ first.
        put(&q, "inbox", "t.md", b"new");
        put(&q, "running", "t.md", b"old");
        assert!(is_race(&claim(&q, "t.md").unwrap_err()));
        // A queue directory that is a file cannot take any task.
        fs::remove_dir_all(q.dir("running")).unwrap();
        fs::write(q.dir("running"), b"").unwrap();
        assert!(!is_race(&claim(&q, "t.md").unwrap_err()));
        let problems = check_dirs(&q);
        assert!(
            problems.len() == 1 && problems[0].ends_with("/running is not a directory"),
            "{problems:?}"
        );
    }

    #[test]
    fn read_running_refuses_what_is_not_a_good_task() {
        let (_tmp, q) = queue();
        put(&q, "running", "esc.md", b"\x1b[2J");
        let err = format!("{:#}", read_running(&q, "esc.md").unwrap_err());
        assert!(err.contains("U+001B") && err.contains("running/esc.md"), "{err}");

        put(&q, "inbox", "real.md", b"text");
        std::os::unix::fs::symlink(q.dir("inbox").join("real.md"), q.dir("running").join("link.md")).unwrap();
        let err = format!("{:#}", read_running(&q, "link.md").unwrap_err());
        assert!(err.contains("symbolic link"), "{err}");

        let err = format!("{:#}", read_running(&q, "gone.md").unwrap_err());
        assert!(err.starts_with("queue 'proj': cannot stat"), "{err}");
    }

    #[test]
    fn finish_moves_to_done_and_writes_the_record() {
        let (_tmp, q) = queue();
        put(&q, "inbox", "t.md", b"task");
        assert!(claim(&q, "t.md").unwrap());
        let meta = serde_json::json!({"session": "ccl-auto-11", "account": "main", "duration_ms": 1234});
        finish(&q, "t.md", &meta).unwrap();

        assert_eq!(where_is(&q, "t.md"), ["done"]);
        assert_eq!(fs::read(q.dir("done").join("t.md")).unwrap(), b"task");
        let record = fs::read_to_string(q.dir("done").join("t.md.json")).unwrap();
        assert!(
            record.ends_with("}\n") && record.contains("\n  \"session\""),
            "not pretty: {record:?}"
        );
        assert_eq!(serde_json::from_str::<serde_json::Value>(&record).unwrap(), meta);
        // No temp file is left behind next to the record.
        assert_eq!(raw_listing(&q.dir("done")), ["t.md", "t.md.json"]);
        assert_eq!(list(&q, "done").unwrap(), ["t.md"]);
        assert_eq!(
            counts(&q).unwrap(),
            Counts {
                done: 1,
                ..Counts::default()
            }
        );

        // Finished once: it is no longer in running/ to be finished again.
        let err = format!("{:#}", finish(&q, "t.md", &meta).unwrap_err());
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn fail_from_inbox_and_from_running_records_the_reason() {
        let (_tmp, q) = queue();
        put(&q, "inbox", "bad.md", b"");
        put(&q, "inbox", "slow.md", b"take forever");
        fail(&q, "inbox", "bad.md", "empty task").unwrap();
        assert!(claim(&q, "slow.md").unwrap());
        fail(&q, "running", "slow.md", "no turn completed within 2h\n").unwrap();

        for (name, reason) in [("bad.md", "empty task\n"), ("slow.md", "no turn completed within 2h\n")] {
            assert_eq!(where_is(&q, name), ["failed"], "{name}");
            let error = q.dir("failed").join(format!("{name}.error"));
            assert_eq!(fs::read_to_string(error).unwrap(), reason, "{name}");
        }
        assert_eq!(fs::read(q.dir("failed").join("slow.md")).unwrap(), b"take forever");
        assert_eq!(list(&q, "failed").unwrap(), ["bad.md", "slow.md"]);
        assert_eq!(
            counts(&q).unwrap(),
            Counts {
                failed: 2,
                ..Counts::default()
            }
        );

        put(&q, "done", "x.md", b"x");
        let err = format!("{:#}", fail(&q, "done", "x.md", "why").unwrap_err());
        assert!(err.contains("not from 'done'"), "{err}");
        assert_eq!(where_is(&q, "x.md"), ["done"]);
        let err = format!("{:#}", fail(&q, "running", "never.md", "why").unwrap_err());
        assert!(err.contains("does not exist"), "{err}");
        assert!(!q.dir("failed").join("never.md.error").exists());
    }

    #[test]
    fn requeue_keeps_the_place_in_line() {
        let (_tmp, q) = queue();
        let old = put(&q, "inbox", "old.md", b"first");
        set_mtime(&old, 1_000);
        let newer = put(&q, "inbox", "a-newer.md", b"second");
        set_mtime(&newer, 2_000);
        assert!(claim(&q, "old.md").unwrap());
        requeue(&q, "old.md").unwrap();

        assert_eq!(where_is(&q, "old.md"), ["inbox"]);
        let entries = scan_inbox(&q).unwrap();
        assert_eq!(entries[0].name, "old.md");
        assert_eq!(entries[0].mtime_ms, 1_000_000);
        assert_eq!(entries[1].name, "a-newer.md");
    }

    #[test]
    fn enqueue_writes_the_body_byte_for_byte_under_its_final_name_only() {
        let (_tmp, q) = queue();
        let body = "-n --help; rm -rf \"$HOME\" `id` 'quoted' $(date) caf\u{e9} \u{65e5}\u{672c}\n\tindented;\n";
        let name = enqueue(&q, body.as_bytes(), None).unwrap();

        // <yyyymmdd-hhmmss>-<6 hex>.md
        assert_eq!(name.len(), "20250101-120000-abcdef.md".len(), "{name}");
        let (stamp, rest) = name.split_at(15);
        assert!(
            stamp
                .bytes()
                .enumerate()
                .all(|(i, b)| if i == 8 { b == b'-' } else { b.is_ascii_digit() }),
            "{name}"
        );
        assert!(rest.starts_with('-') && rest.ends_with(".md"), "{name}");
        assert!(
            rest[1..7]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{name}"
        );

        assert_eq!(raw_listing(&q.dir("inbox")), std::slice::from_ref(&name));
        assert_eq!(fs::read(q.dir("inbox").join(&name)).unwrap(), body.as_bytes());
        assert_eq!(scan_inbox(&q).unwrap()[0].problem, None);
    }

    #[test]
    fn enqueue_creates_missing_queue_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Queue::new("fresh", tmp.path().to_path_buf());
        let name = enqueue(&q, b"hello", None).unwrap();
        assert_eq!(where_is(&q, &name), ["inbox"]);
        assert!(STATES.iter().all(|state| q.dir(state).is_dir()));
    }

    #[test]
    fn enqueue_names_from_a_hint_never_collide() {
        let (_tmp, q) = queue();
        let first = enqueue(&q, b"one", Some("notes/My Task (v2).txt")).unwrap();
        assert!(first.ends_with("-My_Task__v2_.md"), "{first}");
        let second = enqueue(&q, b"two", Some("My Task (v2).md")).unwrap();
        assert_ne!(first, second);
        let third = enqueue(&q, b"three", Some("../../etc/passwd")).unwrap();
        assert!(third.ends_with("-passwd.md"), "{third}");
        let fourth = enqueue(&q, b"four", Some("\u{65e5}\u{672c}")).unwrap();
        assert!(fourth.ends_with("-__.md"), "{fourth}");

        for (name, body) in [(&first, "one"), (&second, "two"), (&third, "three"), (&fourth, "four")] {
            assert_eq!(where_is(&q, name), ["inbox"], "{name}");
            assert_eq!(fs::read_to_string(q.dir("inbox").join(name)).unwrap(), body, "{name}");
        }
        assert_eq!(raw_listing(&q.dir("inbox")).len(), 4);
    }

    #[test]
    fn enqueue_rejects_bad_bodies_and_leaves_nothing() {
        let (_tmp, q) = queue();
        let oversize = vec![b'a'; MAX_TASK_BYTES as usize + 1];
        let cases: [(&[u8], &str); 5] = [
            (b"", "empty task"),
            (b"   \n", "only whitespace"),
            (b"\xff\xfe", "not valid UTF-8"),
            (b"clear \x1b[2J", "U+001B"),
            (&oversize, "larger than"),
        ];
        for (body, want) in cases {
            let err = format!("{:#}", enqueue(&q, body, None).unwrap_err());
            assert!(
                err.starts_with("queue 'proj': task rejected: ") && err.contains(want),
                "{err}"
            );
        }
        assert_eq!(raw_listing(&q.dir("inbox")), Vec::<String>::new());
    }

    #[test]
    fn a_concurrent_scan_never_sees_a_partial_task() {
        let (_tmp, q) = queue();
        let body = vec![b'z'; MAX_TASK_BYTES as usize];
        let n_tasks = 20;
        let writer = {
            let (q, body) = (q.clone(), body.clone());
            std::thread::spawn(move || {
                for _ in 0..n_tasks {
                    enqueue(&q, &body, None).unwrap();
                }
            })
        };
        // Scan while the writer works; stop once it is done and everything is visible.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let writer_done = writer.is_finished();
            let entries = scan_inbox(&q).unwrap();
            for e in &entries {
                assert_eq!(e.problem, None, "{e:?}");
                assert_eq!(
                    fs::metadata(q.dir("inbox").join(&e.name)).unwrap().len(),
                    body.len() as u64
                );
            }
            if writer_done && entries.len() == n_tasks {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "writer did not finish");
        }
        writer.join().unwrap();
    }

    #[test]
    fn names_that_are_not_plain_file_names_are_refused() {
        let (_tmp, q) = queue();
        put(&q, "inbox", "x.md", b"text");
        put(&q, "running", "x.md", b"text");
        let meta = serde_json::json!({});
        for bad in ["", ".", "..", "../inbox/x.md", "sub/x.md", "/etc/passwd"] {
            let errors = [
                claim(&q, bad).map(|_| ()),
                finish(&q, bad, &meta).map(|_| ()),
                fail(&q, "inbox", bad, "why").map(|_| ()),
                requeue(&q, bad).map(|_| ()),
                read_running(&q, bad).map(|_| ()),
            ];
            for err in errors {
                let err = format!("{:#}", err.unwrap_err());
                assert!(err.contains("is not a plain file name"), "{bad:?}: {err}");
            }
        }
        assert!(list(&q, "../inbox").is_err());
        assert_eq!(where_is(&q, "x.md"), ["inbox", "running"]);
    }

    #[test]
    fn a_reused_name_is_filed_next_to_the_earlier_record_which_is_kept() {
        let (_tmp, q) = queue();
        put(&q, "done", "fix-tests.md", b"monday");
        put(&q, "done", "fix-tests.md.json", b"{\"day\": \"monday\"}\n");
        for (day, want) in [("tuesday", "fix-tests-2.md"), ("wednesday", "fix-tests-3.md")] {
            put(&q, "running", "fix-tests.md", day.as_bytes());
            let filed = finish(&q, "fix-tests.md", &serde_json::json!({"day": day})).unwrap();
            assert_eq!(filed.as_deref(), Some(want));
            assert_eq!(fs::read(q.dir("done").join(want)).unwrap(), day.as_bytes());
            let record: serde_json::Value =
                serde_json::from_slice(&fs::read(q.dir("done").join(format!("{want}.json"))).unwrap()).unwrap();
            assert_eq!(record, serde_json::json!({"day": day, "renamed_from": "fix-tests.md"}));
        }
        // The earlier record is untouched.
        assert_eq!(fs::read(q.dir("done").join("fix-tests.md")).unwrap(), b"monday");
        assert_eq!(
            fs::read(q.dir("done").join("fix-tests.md.json")).unwrap(),
            b"{\"day\": \"monday\"}\n"
        );
        assert_eq!(
            list(&q, "done").unwrap(),
            ["fix-tests-2.md", "fix-tests-3.md", "fix-tests.md"]
        );
        assert_eq!(list(&q, "running").unwrap(), Vec::<String>::new());

        // The same for failed/, from the inbox (a reused bad name) and from running/.
        put(&q, "failed", "bad.md", b"");
        put(&q, "failed", "bad.md.error", b"empty task\n");
        put(&q, "inbox", "bad.md", b"");
        assert_eq!(
            fail(&q, "inbox", "bad.md", "empty task").unwrap().as_deref(),
            Some("bad-2.md")
        );
        let why = fs::read_to_string(q.dir("failed").join("bad-2.md.error")).unwrap();
        assert!(
            why.starts_with("empty task\n") && why.contains("renamed from bad.md"),
            "{why:?}"
        );
        assert_eq!(fs::read(q.dir("failed").join("bad.md.error")).unwrap(), b"empty task\n");

        // A sidecar left without its task is in the way too: never overwritten.
        put(&q, "done", "orphan.md.json", b"{}\n");
        put(&q, "running", "orphan.md", b"x");
        assert_eq!(
            finish(&q, "orphan.md", &serde_json::json!({})).unwrap().as_deref(),
            Some("orphan-2.md")
        );
        assert_eq!(fs::read(q.dir("done").join("orphan.md.json")).unwrap(), b"{}\n");

        // A name without an extension gets the suffix at its end.
        put(&q, "done", "TODO", b"old");
        put(&q, "running", "TODO", b"new");
        assert_eq!(
            finish(&q, "TODO", &serde_json::json!({})).unwrap().as_deref(),
            Some("TODO-2")
        );

        // What `ccl status` lists; a task merely named like a numbered one is not in it.
        put(&q, "done", "step-2.md", b"x");
        put(&q, "done", "step-2.md.json", b"{}\n");
        let shown: Vec<(String, String, String)> = renamed(&q)
            .into_iter()
            .map(|r| (r.dir.to_string(), r.task, r.from))
            .collect();
        let row = |d: &str, t: &str, f: &str| (d.to_string(), t.to_string(), f.to_string());
        assert_eq!(
            shown,
            [
                row("done", "TODO-2", "TODO"),
                row("done", "fix-tests-2.md", "fix-tests.md"),
                row("done", "fix-tests-3.md", "fix-tests.md"),
                row("done", "orphan-2.md", "orphan.md"),
                row("failed", "bad-2.md", "bad.md"),
            ]
        );
    }

    #[test]
    fn a_name_too_long_for_its_sidecar_is_filed_under_a_shorter_one() {
        let (_tmp, q) = queue();
        for len in [250, 255] {
            let name = format!("{}.md", "n".repeat(len - 3));
            put(&q, "inbox", &name, b"task");
            let filed = fail(&q, "inbox", &name, "file name is longer than 200 bytes")
                .unwrap()
                .unwrap();
            assert!(filed.len() + ".error".len() <= 255, "{filed}");
            assert!(filed.ends_with(".md"), "{filed}");
            assert_eq!(fs::read(q.dir("failed").join(&filed)).unwrap(), b"task");
            let why = fs::read_to_string(q.dir("failed").join(format!("{filed}.error"))).unwrap();
            assert!(why.contains(&format!("renamed from {name}")), "{why:?}");
            assert_eq!(where_is(&q, &name), Vec::<&str>::new());
        }
        assert_eq!(list(&q, "failed").unwrap().len(), 2);
    }

    #[test]
    fn a_task_requeued_onto_a_new_file_of_its_name_keeps_both() {
        let (_tmp, q) = queue();
        put(&q, "running", "t.md", b"first");
        put(&q, "inbox", "t.md", b"second");
        assert_eq!(requeue(&q, "t.md").unwrap().as_deref(), Some("t-2.md"));
        assert_eq!(fs::read(q.dir("inbox").join("t.md")).unwrap(), b"second");
        assert_eq!(fs::read(q.dir("inbox").join("t-2.md")).unwrap(), b"first");
    }

    #[test]
    fn an_existing_destination_is_never_overwritten() {
        let (_tmp, q) = queue();
        put(&q, "inbox", "t.md", b"new");
        put(&q, "running", "t.md", b"old");
        let err = format!("{:#}", claim(&q, "t.md").unwrap_err());
        assert!(err.contains("already exists (not overwriting it)"), "{err}");
        assert_eq!(fs::read(q.dir("inbox").join("t.md")).unwrap(), b"new");
        assert_eq!(fs::read(q.dir("running").join("t.md")).unwrap(), b"old");

        // An earlier task's record in done/ or failed/, or a new file of the name in
        // the inbox, is kept: the task moves in next to it (see
        // a_reused_name_is_filed_next_to_the_earlier_record_which_is_kept).
        put(&q, "done", "t.md", b"earlier run");
        assert!(finish(&q, "t.md", &serde_json::json!({})).unwrap().is_some());
        assert_eq!(fs::read(q.dir("done").join("t.md")).unwrap(), b"earlier run");
        assert_eq!(fs::read(q.dir("done").join("t-2.md")).unwrap(), b"old");
        assert_eq!(fs::read(q.dir("inbox").join("t.md")).unwrap(), b"new");
    }

    #[test]
    fn the_fallback_rename_never_replaces_either() {
        // Used where the file system lacks RENAME_NOREPLACE; tmpfs has it, so call it directly.
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        fs::write(&src, b"mine").unwrap();
        fs::write(&dst, b"theirs").unwrap();
        let err = rename_checked(&src, &dst).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&src).unwrap(), b"mine");
        assert_eq!(fs::read(&dst).unwrap(), b"theirs");
        let free = tmp.path().join("free");
        rename_checked(&src, &free).unwrap();
        assert_eq!(fs::read(&free).unwrap(), b"mine");
        assert!(!src.exists());
    }

    #[test]
    fn counts_leave_out_sidecars_but_not_tasks_named_like_them() {
        let (_tmp, q) = queue();
        put(&q, "inbox", "i.md", b"x");
        put(&q, "inbox", ".partial", b"x");
        put(&q, "running", "r.md", b"x");
        put(&q, "done", "a.md", b"x");
        put(&q, "done", "a.md.json", b"{}");
        put(&q, "done", "notes.json", b"a task whose name ends in .json");
        put(&q, "failed", "c.md", b"x");
        put(&q, "failed", "c.md.error", b"why\n");
        assert_eq!(
            counts(&q).unwrap(),
            Counts {
                inbox: 1,
                running: 1,
                done: 2,
                failed: 1
            }
        );
        assert_eq!(list(&q, "done").unwrap(), ["a.md", "notes.json"]);
        assert_eq!(list(&q, "failed").unwrap(), ["c.md"]);
    }
}
