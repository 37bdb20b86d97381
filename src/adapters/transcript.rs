//! Claude Code's files on disk: the per-session transcripts (`projects/<slug>/<id>.jsonl`) and
//! the registry of running Claudes (`sessions/<pid>.json`).
//!
//! This module owns the I/O side only: locating transcripts, reading them incrementally without
//! replaying old history, and reading registry files, bounded and without following links. What
//! a line or a file means ([`Record`], [`Signal`], [`RegistryEntry`]) is decided in
//! `ccl_core::transcript`; the decision core receives those values inside an observation and
//! never touches the files itself. A file that does not look as expected yields nothing rather
//! than an error.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use ccl_core::transcript::{
    parse_line, parse_registry_entry, project_slug, transcript_path, Record, RegistryEntry, Signal,
    CLAUDE_SLUG_MAX_CHARS,
};

/// Most bytes [`TranscriptReader::read_new`] reads from one file in one call, so a session that
/// wrote a huge burst (or a first read of a long history) cannot stall a daemon turn.
pub const MAX_READ_BYTES: u64 = 1024 * 1024;

/// Most `sessions/*.json` files [`read_registry`] looks at; there is one per running Claude, so
/// anything near this bound means the directory holds something else.
pub const MAX_REGISTRY_FILES: usize = 512;

/// Most bytes read from one registry file; real ones are a few hundred bytes.
pub const MAX_REGISTRY_FILE_BYTES: u64 = 64 * 1024;

/// Most entries of the projects directory [`locate_transcript`] scans when it has to look for a
/// long path's hashed directory.
pub const MAX_PROJECT_DIRS_SCANNED: usize = 4096;

/// The transcript of `session_id` if it exists: the [`transcript_path`] itself, or, for a cwd
/// whose slug Claude truncated and suffixed with a hash, the `<id>.jsonl` inside a directory
/// named `<first 200 slug characters>-<anything>`. Session ids are unique, so the prefix match
/// cannot pick another conversation's file.
pub fn locate_transcript(projects_dir: &Path, cwd: &Path, session_id: &str) -> Option<PathBuf> {
    let exact = transcript_path(projects_dir, cwd, session_id);
    if exact.is_file() {
        return Some(exact);
    }
    let slug = project_slug(cwd);
    if slug.len() <= CLAUDE_SLUG_MAX_CHARS {
        return None;
    }
    // The slug is ASCII, so slicing by bytes is slicing by characters.
    let prefix = format!("{}-", &slug[..CLAUDE_SLUG_MAX_CHARS]);
    let file_name = format!("{session_id}.jsonl");
    fs::read_dir(projects_dir)
        .ok()?
        .take(MAX_PROJECT_DIRS_SCANNED)
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path().join(&file_name))
        .find(|candidate| candidate.is_file())
}

/// The first prompt of the conversation in transcript `path` (read from its start, at
/// most [`MAX_READ_BYTES`]); `Ok(None)` while it has none (or does not exist yet).
pub fn first_prompt(path: &Path) -> anyhow::Result<Option<String>> {
    if metadata_if_exists(path)?.is_none() {
        return Ok(None);
    }
    let file = crate::adapters::untrusted::open_regular(path)
        .with_context(|| format!("opening transcript {}", path.display()))?;
    let mut buf = Vec::new();
    file.take(MAX_READ_BYTES)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading transcript {}", path.display()))?;
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .filter_map(parse_line)
        .find_map(|r| match r.signal {
            Signal::UserPrompt { text } => Some(text),
            _ => None,
        }))
}

/// Where reading of one transcript stands.
#[derive(Debug, Default, Clone)]
struct Cursor {
    /// Byte offset just past the last complete line consumed.
    offset_bytes: u64,
    /// (device, inode) of the file the offset belongs to; a different file at the same path
    /// (rewritten via rename) restarts from 0 even when it is not shorter.
    identity: Option<(u64, u64)>,
    /// The bytes from `offset_bytes` up to the next '\n' belong to a line that is not to be
    /// parsed: one longer than [`MAX_READ_BYTES`], or the tail of a line that was already being
    /// written when [`TranscriptReader::skip_to_end`] was called.
    discard_to_newline: bool,
}

/// Reads transcripts incrementally: per path, the byte offset of the last complete line read.
/// A partial last line (no trailing '\n') is left for the next call. At most [`MAX_READ_BYTES`]
/// per call per file; a file that shrank or was replaced restarts from 0; a missing file yields
/// no records and is not an error.
///
/// A single line longer than [`MAX_READ_BYTES`] (a huge tool result) is skipped whole rather than
/// stalling the reader; records that carry signals are small.
#[derive(Debug, Default)]
pub struct TranscriptReader {
    cursors: BTreeMap<PathBuf, Cursor>,
}

impl TranscriptReader {
    /// The signal records completed in `path` since the previous call.
    pub fn read_new(&mut self, path: &Path) -> anyhow::Result<Vec<Record>> {
        let Some(meta) = metadata_if_exists(path)? else {
            return Ok(Vec::new());
        };
        let identity = file_identity(&meta);
        let cursor = self.cursors.entry(path.to_path_buf()).or_default();
        let replaced = cursor.identity.is_some() && cursor.identity != identity;
        if replaced || meta.len() < cursor.offset_bytes {
            *cursor = Cursor::default();
        }
        cursor.identity = identity;
        if meta.len() == cursor.offset_bytes {
            return Ok(Vec::new());
        }

        let mut file = crate::adapters::untrusted::open_regular(path)
            .with_context(|| format!("opening transcript {}", path.display()))?;
        file.seek(SeekFrom::Start(cursor.offset_bytes))
            .with_context(|| format!("seeking in transcript {}", path.display()))?;
        let mut buf = Vec::new();
        file.take(MAX_READ_BYTES)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading transcript {}", path.display()))?;

        let mut records = Vec::new();
        let mut consumed = 0;
        if cursor.discard_to_newline {
            match buf.iter().position(|&b| b == b'\n') {
                Some(newline) => {
                    consumed = newline + 1;
                    cursor.discard_to_newline = false;
                }
                None => consumed = buf.len(),
            }
        }
        let rest = &buf[consumed..];
        match rest.iter().rposition(|&b| b == b'\n') {
            Some(last_newline) => {
                records.extend(
                    rest[..last_newline]
                        .split(|&b| b == b'\n')
                        .filter_map(|line| std::str::from_utf8(line).ok())
                        .filter_map(parse_line),
                );
                consumed += last_newline + 1;
            }
            // A full buffer without a newline is one line longer than the bound: waiting would
            // never complete it, so drop it and resume after its end.
            None if !rest.is_empty() && rest.len() as u64 == MAX_READ_BYTES => {
                consumed = buf.len();
                cursor.discard_to_newline = true;
            }
            None => {}
        }
        cursor.offset_bytes += consumed as u64;
        Ok(records)
    }

    /// Start reading this file at its current end (used when a session is first seen, so old history
    /// is not replayed as new signals). A file that does not exist yet will be read from its start
    /// once it appears; a line being written right now is treated as old history.
    pub fn skip_to_end(&mut self, path: &Path) -> anyhow::Result<()> {
        let Some(meta) = metadata_if_exists(path)? else {
            self.cursors.insert(path.to_path_buf(), Cursor::default());
            return Ok(());
        };
        let len = meta.len();
        let ends_mid_line = len > 0 && {
            let mut file = crate::adapters::untrusted::open_regular(path)
                .with_context(|| format!("opening transcript {}", path.display()))?;
            file.seek(SeekFrom::Start(len - 1))
                .with_context(|| format!("seeking in transcript {}", path.display()))?;
            let mut last = [0u8; 1];
            file.read_exact(&mut last)
                .with_context(|| format!("reading transcript {}", path.display()))?;
            last[0] != b'\n'
        };
        self.cursors.insert(
            path.to_path_buf(),
            Cursor {
                offset_bytes: len,
                identity: file_identity(&meta),
                discard_to_newline: ends_mid_line,
            },
        );
        Ok(())
    }

    /// Drops what is known about `path` (its session is gone); a later read starts from 0.
    pub fn forget(&mut self, path: &Path) {
        self.cursors.remove(path);
    }
}

fn metadata_if_exists(path: &Path) -> anyhow::Result<Option<fs::Metadata>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("inspecting transcript {}", path.display())),
    }
}

#[cfg(unix)]
fn file_identity(meta: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_identity(_meta: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// Reads every `HOME/sessions/*.json` (bounded: at most [`MAX_REGISTRY_FILES`] files); unreadable
/// or malformed files are skipped (the format is undocumented: treat it as optional). Sorted by pid.
pub fn read_registry(home: &Path) -> Vec<RegistryEntry> {
    let dir = home.join("sessions");
    let Ok(listing) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for entry in listing.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            if paths.len() == MAX_REGISTRY_FILES {
                log::warn!(
                    "{} holds more than {MAX_REGISTRY_FILES} files; reading only some",
                    dir.display()
                );
                break;
            }
            paths.push(path);
        }
    }
    let mut entries: Vec<RegistryEntry> = paths
        .iter()
        .filter_map(|path| {
            let entry = read_registry_file(path);
            if entry.is_none() {
                log::debug!("skipping registry file {}", path.display());
            }
            entry
        })
        .collect();
    entries.sort_by(|a, b| a.pid.cmp(&b.pid).then_with(|| a.session_id.cmp(&b.session_id)));
    entries
}

fn read_registry_file(path: &Path) -> Option<RegistryEntry> {
    let mut bytes = Vec::new();
    crate::adapters::untrusted::read_prefix(path, MAX_REGISTRY_FILE_BYTES, &mut bytes).ok()?;
    // The file is named after the pid, so the name stands in when the field is missing.
    let stem_pid = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok());
    parse_registry_entry(&bytes, stem_pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const ID_A: &str = "0f8e2c1a-4b3d-4e5f-9a8b-7c6d5e4f3a2b";
    const ID_B: &str = "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6";

    fn append(path: &Path, text: &str) {
        let mut file = fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    /// A realistic turn-end record with the given uuid, newline-terminated.
    fn turn_done(uuid: &str) -> String {
        format!(
            r#"{{"parentUuid":null,"isSidechain":false,"type":"system","subtype":"turn_duration","durationMs":6123,"isMeta":false,"uuid":"{uuid}","timestamp":"2026-05-01T09:00:00.000Z","sessionId":"{ID_A}","cwd":"/home/op/src/app"}}
"#
        )
    }

    fn uuids(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.uuid.as_str()).collect()
    }

    #[test]
    fn locate_transcript_finds_short_and_hashed_long_directories() {
        let projects = tempfile::tempdir().unwrap();
        let short_cwd = Path::new("/home/op/src/app");
        assert_eq!(locate_transcript(projects.path(), short_cwd, ID_A), None);
        let short = transcript_path(projects.path(), short_cwd, ID_A);
        fs::create_dir_all(short.parent().unwrap()).unwrap();
        append(&short, "");
        assert_eq!(locate_transcript(projects.path(), short_cwd, ID_A), Some(short));

        let long_cwd = PathBuf::from(format!("/home/op/{}", "deep/".repeat(50)));
        let slug = project_slug(&long_cwd);
        assert!(slug.len() > CLAUDE_SLUG_MAX_CHARS);
        let hashed_dir = projects
            .path()
            .join(format!("{}-1x9k2q", &slug[..CLAUDE_SLUG_MAX_CHARS]));
        fs::create_dir_all(&hashed_dir).unwrap();
        // A sibling long project with the same prefix holds another session.
        let sibling_dir = projects.path().join(format!("{}-zz01", &slug[..CLAUDE_SLUG_MAX_CHARS]));
        fs::create_dir_all(&sibling_dir).unwrap();
        append(&sibling_dir.join(format!("{ID_B}.jsonl")), "");
        assert_eq!(locate_transcript(projects.path(), &long_cwd, ID_A), None);
        append(&hashed_dir.join(format!("{ID_A}.jsonl")), "");
        assert_eq!(
            locate_transcript(projects.path(), &long_cwd, ID_A),
            Some(hashed_dir.join(format!("{ID_A}.jsonl")))
        );
    }

    // ---- reader -------------------------------------------------------------------------------

    #[test]
    fn appended_lines_are_read_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut reader = TranscriptReader::default();
        append(&path, &turn_done("r1"));
        append(&path, "{\"type\":\"summary\",\"summary\":\"x\",\"leafUuid\":\"r1\"}\n");
        append(&path, &turn_done("r2"));
        assert_eq!(uuids(&reader.read_new(&path).unwrap()), ["r1", "r2"]);
        assert!(reader.read_new(&path).unwrap().is_empty());
        append(&path, &turn_done("r3"));
        assert_eq!(uuids(&reader.read_new(&path).unwrap()), ["r3"]);
        assert!(reader.read_new(&path).unwrap().is_empty());
    }

    #[test]
    fn partial_line_is_held_back_until_completed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut reader = TranscriptReader::default();
        let line = turn_done("r1");
        let (head, tail) = line.split_at(40);
        append(&path, head);
        assert!(reader.read_new(&path).unwrap().is_empty());
        append(&path, tail);
        assert_eq!(uuids(&reader.read_new(&path).unwrap()), ["r1"]);
    }

    #[test]
    fn shrunk_or_replaced_file_is_read_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut reader = TranscriptReader::default();
        append(&path, &format!("{}{}", turn_done("r1"), turn_done("r2")));
        assert_eq!(reader.read_new(&path).unwrap().len(), 2);

        fs::write(&path, turn_done("r3")).unwrap();
        assert_eq!(uuids(&reader.read_new(&path).unwrap()), ["r3"]);

        // A new file renamed over the old one, longer than what was read so far.
        let replacement = dir.path().join("t.jsonl.new");
        append(
            &replacement,
            &format!("{}{}{}", turn_done("r4"), turn_done("r5"), turn_done("r6")),
        );
        fs::rename(&replacement, &path).unwrap();
        assert_eq!(uuids(&reader.read_new(&path).unwrap()), ["r4", "r5", "r6"]);
    }

    #[test]
    fn missing_file_yields_nothing_until_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut reader = TranscriptReader::default();
        assert!(reader.read_new(&path).unwrap().is_empty());
        append(&path, &turn_done("r1"));
        assert_eq!(uuids(&reader.read_new(&path).unwrap()), ["r1"]);
    }

    #[test]
    fn skip_to_end_does_not_replay_history() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = TranscriptReader::default();

        let path = dir.path().join("old.jsonl");
        append(&path, &format!("{}{}", turn_done("old1"), turn_done("old2")));
        reader.skip_to_end(&path).unwrap();
        assert!(reader.read_new(&path).unwrap().is_empty());
        append(&path, &turn_done("new1"));
        assert_eq!(uuids(&reader.read_new(&path).unwrap()), ["new1"]);

        // Skipping while Claude is mid-write: the rest of that line is history too.
        let path = dir.path().join("mid.jsonl");
        let line = turn_done("old3");
        let (head, tail) = line.split_at(30);
        append(&path, &format!("{}{head}", turn_done("old1")));
        reader.skip_to_end(&path).unwrap();
        append(&path, tail);
        append(&path, &turn_done("new2"));
        assert_eq!(uuids(&reader.read_new(&path).unwrap()), ["new2"]);

        // A transcript that does not exist yet is read from its start once written.
        let path = dir.path().join("later.jsonl");
        reader.skip_to_end(&path).unwrap();
        append(&path, &turn_done("first"));
        assert_eq!(uuids(&reader.read_new(&path).unwrap()), ["first"]);
    }

    #[test]
    fn forget_makes_the_next_read_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut reader = TranscriptReader::default();
        append(&path, &turn_done("r1"));
        assert_eq!(reader.read_new(&path).unwrap().len(), 1);
        reader.forget(&path);
        assert_eq!(uuids(&reader.read_new(&path).unwrap()), ["r1"]);
    }

    #[test]
    fn each_call_reads_at_most_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let line_len = turn_done("r00000").len() as u64;
        let n_lines = (MAX_READ_BYTES * 5 / 2) / line_len;
        let mut text = String::new();
        for i in 0..n_lines {
            text.push_str(&turn_done(&format!("r{i:05}")));
        }
        append(&path, &text);

        let mut reader = TranscriptReader::default();
        let mut seen = Vec::new();
        let mut n_calls = 0;
        loop {
            let batch = reader.read_new(&path).unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() as u64 * line_len <= MAX_READ_BYTES);
            seen.extend(batch.into_iter().map(|r| r.uuid));
            n_calls += 1;
        }
        assert_eq!(n_calls, 3);
        let expected: Vec<String> = (0..n_lines).map(|i| format!("r{i:05}")).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_line_longer_than_the_bound_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let huge = format!(
            "{{\"type\":\"user\",\"uuid\":\"big\",\"message\":{{\"content\":\"{}\"}}}}\n",
            "x".repeat(MAX_READ_BYTES as usize * 3 / 2)
        );
        append(&path, &format!("{}{huge}{}", turn_done("before"), turn_done("after")));

        let mut reader = TranscriptReader::default();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.extend(reader.read_new(&path).unwrap().into_iter().map(|r| r.uuid));
        }
        assert_eq!(seen, ["before", "after"]);
    }

    // ---- registry -----------------------------------------------------------------------------

    #[test]
    fn registry_reads_valid_files_and_skips_the_rest() {
        let home = tempfile::tempdir().unwrap();
        let sessions = home.path().join("sessions");
        fs::create_dir_all(&sessions).unwrap();
        fs::write(
            sessions.join("4242.json"),
            format!(
                r#"{{"pid":4242,"sessionId":"{ID_B}","cwd":"/home/op/src/app","status":"idle","tmux":"ccl-1-conformvault:@1.%1","updatedAt":1777615361512,"startedAt":1777615000000}}"#
            ),
        )
        .unwrap();
        fs::write(
            sessions.join("311.json"),
            format!(
                r#"{{"pid":311,"sessionId":"{ID_A}","cwd":"/home/op","status":"busy","tmux":"ccl-auto-11:@3.%7","updatedAt":1777615361000}}"#
            ),
        )
        .unwrap();
        fs::write(sessions.join("500.json"), r#"{"pid":500,"sessionId":"#).unwrap();
        fs::write(
            sessions.join("501.json"),
            r#"{"pid":501,"sessionId":"not-a-uuid","cwd":"/tmp"}"#,
        )
        .unwrap();
        fs::write(sessions.join("notes.txt"), "{}").unwrap();

        assert_eq!(
            read_registry(home.path()),
            vec![
                RegistryEntry {
                    pid: 311,
                    session_id: ID_A.to_owned(),
                    cwd: PathBuf::from("/home/op"),
                    status: Some("busy".to_owned()),
                    tmux_session: Some("ccl-auto-11".to_owned()),
                    tmux_pane: Some("%7".to_owned()),
                    updated_at_ms: Some(1_777_615_361_000),
                },
                RegistryEntry {
                    pid: 4242,
                    session_id: ID_B.to_owned(),
                    cwd: PathBuf::from("/home/op/src/app"),
                    status: Some("idle".to_owned()),
                    tmux_session: Some("ccl-1-conformvault".to_owned()),
                    tmux_pane: Some("%1".to_owned()),
                    updated_at_ms: Some(1_777_615_361_512),
                },
            ]
        );
    }

    #[test]
    fn registry_tolerates_optional_fields_and_a_missing_directory() {
        let home = tempfile::tempdir().unwrap();
        assert!(read_registry(home.path()).is_empty());

        let sessions = home.path().join("sessions");
        fs::create_dir_all(&sessions).unwrap();
        // No pid field (taken from the name), no tmux, a foreign tmux shape, an ISO updatedAt.
        fs::write(
            sessions.join("77.json"),
            format!(
                r#"{{"sessionId":"{ID_A}","cwd":"/w","tmux":"/tmp/tmux-1000/default,1234,0","updatedAt":"2026-05-01T06:22:41.512Z"}}"#
            ),
        )
        .unwrap();
        let entries = read_registry(home.path());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].pid, 77);
        assert_eq!(entries[0].status, None);
        assert_eq!(entries[0].tmux_session, None);
        assert_eq!(
            entries[0].updated_at_ms,
            Some(
                "2026-05-01T06:22:41.512Z"
                    .parse::<jiff::Timestamp>()
                    .unwrap()
                    .as_millisecond()
            )
        );
    }
}
