//! Claude Code's structured signals, read from its files: the per-session transcripts
//! (`projects/<slug>/<id>.jsonl`) and the registry of running Claudes (`sessions/<pid>.json`).
//!
//! This module owns the I/O side only: locating transcripts, reading them incrementally without
//! replaying old history, and turning the few record kinds the daemon cares about (a usage-limit
//! hit, another API error, a finished turn, a submitted prompt) into [`Signal`] data. The decision
//! core receives these as values inside an observation and never touches the files itself.
//! Both formats are undocumented by Anthropic, so everything here is tolerant: a record or file
//! that does not look as expected yields nothing rather than an error, and the pane text remains
//! the fallback.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Map, Value};

/// Most bytes [`TranscriptReader::read_new`] reads from one file in one call, so a session that
/// wrote a huge burst (or a first read of a long history) cannot stall a daemon turn.
pub const MAX_READ_BYTES: u64 = 1024 * 1024;

/// Most `sessions/*.json` files [`read_registry`] looks at; there is one per running Claude, so
/// anything near this bound means the directory holds something else.
pub const MAX_REGISTRY_FILES: usize = 512;

/// Most bytes read from one registry file; real ones are a few hundred bytes.
pub const MAX_REGISTRY_FILE_BYTES: u64 = 64 * 1024;

/// Longest text carried by a [`Signal`]. Signals end up in every trace line, and a pasted task can
/// be large; the start of the text is enough to recognise a limit message or a prompt.
pub const MAX_SIGNAL_TEXT_BYTES: usize = 4096;

/// Claude Code keeps this many characters of a sanitised cwd and, when the slug is longer,
/// appends `-<hash>` (see [`project_slug`]).
pub const CLAUDE_SLUG_MAX_CHARS: usize = 200;

/// Most entries of the projects directory [`locate_transcript`] scans when it has to look for a
/// long path's hashed directory.
pub const MAX_PROJECT_DIRS_SCANNED: usize = 4096;

/// Starts of user-record text that Claude Code writes itself (interruption markers, the output of
/// local slash commands). They are user records but nobody submitted them as a prompt.
const SYNTHETIC_USER_TEXT_PREFIXES: &[&str] = &[
    "[Request interrupted by user",
    "<local-command-stdout>",
    "<local-command-stderr>",
    "<local-command-caveat>",
];

/// Claude's project directory name for a cwd: every character that is not ASCII alphanumeric
/// becomes '-' (so "/home/op/src/my.app" -> "-home-op-src-my-app").
///
/// Checked against public reports (claude-code issues #9221, #19972, #45718 and several peer
/// tools that fixed their encoders after reading the shipped bundle): Claude computes
/// `cwd.replace(/[^a-zA-Z0-9]/g, "-")` on the raw cwd, without collapsing runs (`/a/.b` gives
/// `-a--b`). The regex has no `u` flag, so it works on UTF-16 code units: a character outside
/// the Basic Multilingual Plane (an emoji) becomes two dashes, which is mirrored here.
/// When the result is longer than [`CLAUDE_SLUG_MAX_CHARS`], Claude keeps the first 200 and
/// appends `-<hash of the cwd>`; the hash depends on the runtime (Bun vs Node) and changed in
/// 2.1.224, so it is not reproduced: this function returns the full sanitised string, and
/// [`locate_transcript`] finds such directories by their 200-character prefix instead.
pub fn project_slug(cwd: &Path) -> String {
    let cwd = cwd.to_string_lossy();
    let mut slug = String::with_capacity(cwd.len());
    for ch in cwd.chars() {
        if ch.is_ascii_alphanumeric() {
            slug.push(ch);
        } else {
            for _ in 0..ch.len_utf16() {
                slug.push('-');
            }
        }
    }
    slug
}

/// `PROJECTS/<slug(cwd)>/<id>.jsonl`. Exact for every cwd whose slug fits in
/// [`CLAUDE_SLUG_MAX_CHARS`]; use [`locate_transcript`] to also find longer ones.
pub fn transcript_path(projects_dir: &Path, cwd: &Path, session_id: &str) -> PathBuf {
    projects_dir.join(project_slug(cwd)).join(format!("{session_id}.jsonl"))
}

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

/// What one transcript record tells the daemon.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// assistant record with isApiErrorMessage: true, apiErrorStatus: 429, error: "rate_limit"; text = the message text
    LimitHit { text: String },
    /// another API error record (status, text) — e.g. 500/529; a veto for pane-text hits
    ApiError { status: Option<u16>, text: String },
    /// system record subtype "turn_duration"
    TurnDone,
    /// a user record carrying a prompt (not a tool result)
    UserPrompt { text: String },
}

/// The first prompt of the conversation in transcript `path` (read from its start, at
/// most [`MAX_READ_BYTES`]); `Ok(None)` while it has none (or does not exist yet).
pub fn first_prompt(path: &Path) -> anyhow::Result<Option<String>> {
    if metadata_if_exists(path)?.is_none() {
        return Ok(None);
    }
    let file =
        crate::untrusted::open_regular(path).with_context(|| format!("opening transcript {}", path.display()))?;
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

/// Whether a prompt as a transcript holds it (bounded to [`MAX_SIGNAL_TEXT_BYTES`]) is
/// `body`, the text ccl pasted.
pub fn prompt_is(text: &str, body: &str) -> bool {
    let (text, body) = (text.trim(), body.trim());
    text == body || (text.len() + 8 >= MAX_SIGNAL_TEXT_BYTES && body.starts_with(text))
}

/// One transcript record that carries a [`Signal`]. `uuid` identifies the record, so a consumer
/// can take each signal exactly once even if a file is read again from the start.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub uuid: String,
    /// The record's RFC 3339 timestamp as Claude wrote it; `None` when absent or not a valid
    /// timestamp, so a consumer can rely on [`Record::parsed_timestamp`] succeeding.
    pub timestamp: Option<String>,
    pub signal: Signal,
}

impl Record {
    /// The record's timestamp as an instant.
    pub fn parsed_timestamp(&self) -> Option<jiff::Timestamp> {
        self.timestamp.as_deref()?.parse().ok()
    }
}

/// Parses one JSONL line; None for records that carry no signal or are not JSON.
///
/// A record without a `uuid` is dropped too: without it a signal could not be taken exactly once.
/// Assistant text that is not flagged `isApiErrorMessage` never becomes a signal, so model output
/// that quotes a limit message is not mistaken for one.
pub fn parse_line(line: &str) -> Option<Record> {
    let value: Value = serde_json::from_str(line.trim()).ok()?;
    let record = value.as_object()?;
    let uuid = record
        .get("uuid")
        .and_then(Value::as_str)
        .filter(|uuid| !uuid.is_empty())?
        .to_owned();
    let signal = match record.get("type").and_then(Value::as_str)? {
        "assistant" => assistant_signal(record)?,
        "system" => system_signal(record)?,
        "user" => user_signal(record)?,
        _ => return None,
    };
    let timestamp = record
        .get("timestamp")
        .and_then(Value::as_str)
        .filter(|ts| ts.parse::<jiff::Timestamp>().is_ok())
        .map(str::to_owned);
    Some(Record {
        uuid,
        timestamp,
        signal,
    })
}

fn flag(record: &Map<String, Value>, key: &str) -> bool {
    record.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn assistant_signal(record: &Map<String, Value>) -> Option<Signal> {
    if !flag(record, "isApiErrorMessage") {
        return None;
    }
    let status = record
        .get("apiErrorStatus")
        .and_then(Value::as_u64)
        .and_then(|status| u16::try_from(status).ok());
    let error = record.get("error").and_then(Value::as_str);
    let text = message_content(record).map(|c| c.text).unwrap_or_default();
    // Both fields must agree: Claude also writes 429 records for other reasons, and older builds
    // wrote limit messages without a status; those stay ApiError and the text decides later.
    if status == Some(429) && error == Some("rate_limit") {
        Some(Signal::LimitHit { text })
    } else {
        Some(Signal::ApiError { status, text })
    }
}

fn system_signal(record: &Map<String, Value>) -> Option<Signal> {
    match record.get("subtype").and_then(Value::as_str)? {
        "turn_duration" => Some(Signal::TurnDone),
        _ => None,
    }
}

fn user_signal(record: &Map<String, Value>) -> Option<Signal> {
    // isMeta: context Claude injects itself; isSidechain: a subagent's conversation, whose
    // "prompt" is written by the model; isCompactSummary: the summary replacing old history.
    if ["isMeta", "isSidechain", "isCompactSummary"]
        .iter()
        .any(|key| flag(record, key))
    {
        return None;
    }
    let content = message_content(record)?;
    if content.has_tool_result {
        return None;
    }
    if content.text.is_empty() && !content.has_other_blocks {
        return None;
    }
    if SYNTHETIC_USER_TEXT_PREFIXES
        .iter()
        .any(|prefix| content.text.starts_with(prefix))
    {
        return None;
    }
    Some(Signal::UserPrompt { text: content.text })
}

/// The parts of `message.content` the signals need.
struct Content {
    /// Text blocks joined by newlines (or the content itself when it is a string), bounded.
    text: String,
    has_tool_result: bool,
    /// Non-text, non-tool-result blocks such as pasted images: a prompt may consist of only those.
    has_other_blocks: bool,
}

fn message_content(record: &Map<String, Value>) -> Option<Content> {
    let content = record.get("message")?.get("content")?;
    let mut parsed = Content {
        text: String::new(),
        has_tool_result: false,
        has_other_blocks: false,
    };
    match content {
        Value::String(text) => parsed.text = text.clone(),
        Value::Array(blocks) => {
            let mut texts = Vec::new();
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block.get("text").and_then(Value::as_str) {
                            texts.push(text);
                        }
                    }
                    Some("tool_result") => parsed.has_tool_result = true,
                    _ => parsed.has_other_blocks = true,
                }
            }
            parsed.text = texts.join("\n");
        }
        _ => return None,
    }
    truncate_at_char_boundary(&mut parsed.text, MAX_SIGNAL_TEXT_BYTES);
    Some(parsed)
}

fn truncate_at_char_boundary(text: &mut String, max_bytes: usize) {
    if text.len() <= max_bytes {
        return;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
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

        let mut file =
            crate::untrusted::open_regular(path).with_context(|| format!("opening transcript {}", path.display()))?;
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
            let mut file = crate::untrusted::open_regular(path)
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

/// One `$CLAUDE_CONFIG_DIR/sessions/<pid>.json` file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegistryEntry {
    pub pid: u32,
    /// Always a lowercase UUID ([`crate::screen::is_uuid`]): the id ends up in `--resume <id>`
    /// command lines and in paths, so files holding anything else are skipped.
    pub session_id: String,
    pub cwd: PathBuf,
    /// "busy" | "idle", as Claude wrote it.
    pub status: Option<String>,
    /// The session name from the "tmux" field `"<session>:@win.%pane"`.
    pub tmux_session: Option<String>,
    /// The pane (`%N`) from the same field: where in that session this Claude runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmux_pane: Option<String>,
    pub updated_at_ms: Option<i64>,
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
    crate::untrusted::read_prefix(path, MAX_REGISTRY_FILE_BYTES, &mut bytes).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let fields = value.as_object()?;
    // The file is named after the pid, so the name stands in when the field is missing.
    let pid = match fields.get("pid") {
        Some(pid) => u32::try_from(pid.as_u64()?).ok()?,
        None => path.file_stem()?.to_str()?.parse().ok()?,
    };
    let session_id = fields.get("sessionId")?.as_str()?;
    if !crate::screen::is_uuid(session_id) {
        return None;
    }
    let cwd = fields.get("cwd")?.as_str().filter(|cwd| !cwd.is_empty())?;
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(RegistryEntry {
        pid,
        session_id: session_id.to_owned(),
        cwd: PathBuf::from(cwd),
        status: text("status"),
        tmux_session: text("tmux").as_deref().and_then(tmux_session_name),
        tmux_pane: text("tmux").as_deref().and_then(tmux_pane_id),
        updated_at_ms: fields.get("updatedAt").and_then(epoch_ms),
    })
}

/// The session part of `"<session>:@win.%pane"`. tmux forbids ':' in session names, so the first
/// ':' ends the name; the '@' check rejects other shapes (such as a `$TMUX` socket string).
/// `%N` of `"<session>:@win.%N"`.
fn tmux_pane_id(field: &str) -> Option<String> {
    tmux_session_name(field)?;
    let (_, pane) = field.rsplit_once('.')?;
    let digits = pane.strip_prefix('%')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| pane.to_owned())
}

fn tmux_session_name(field: &str) -> Option<String> {
    let (session, target) = field.split_once(':')?;
    (!session.is_empty() && target.starts_with('@')).then(|| session.to_owned())
}

/// `updatedAt` is milliseconds since the epoch; an RFC 3339 string is accepted too in case a
/// build writes one.
fn epoch_ms(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|ms| ms as i64)),
        Value::String(s) => s.parse::<jiff::Timestamp>().ok().map(|ts| ts.as_millisecond()),
        _ => None,
    }
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

    // ---- parse_line -------------------------------------------------------------------------

    const LIMIT_LINE: &str = r#"{"parentUuid":"a1","isSidechain":false,"userType":"external","cwd":"/home/op/src/app","sessionId":"0f8e2c1a-4b3d-4e5f-9a8b-7c6d5e4f3a2b","version":"2.1.328","type":"assistant","uuid":"u-limit","timestamp":"2026-05-01T06:22:41.512Z","message":{"id":"m1","model":"<synthetic>","role":"assistant","stop_reason":"stop_sequence","type":"message","usage":{"input_tokens":0,"output_tokens":0},"content":[{"type":"text","text":"You've hit your 5-hour limit · resets 9:23am (UTC)"}]},"error":"rate_limit","isApiErrorMessage":true,"apiErrorStatus":429}"#;

    /// Each case: a transcript line and the record it must parse to.
    fn cases() -> Vec<(&'static str, &'static str, Option<Record>)> {
        let rec = |uuid: &str, signal| Record {
            uuid: uuid.to_owned(),
            timestamp: Some("2026-05-01T06:22:41.512Z".to_owned()),
            signal,
        };
        vec![
            (
                "5-hour limit",
                LIMIT_LINE,
                Some(rec(
                    "u-limit",
                    Signal::LimitHit {
                        text: "You've hit your 5-hour limit · resets 9:23am (UTC)".to_owned(),
                    },
                )),
            ),
            (
                "server error 500",
                r#"{"type":"assistant","uuid":"u-500","timestamp":"2026-05-01T06:22:41.512Z","isApiErrorMessage":true,"apiErrorStatus":500,"error":"unknown","message":{"role":"assistant","content":[{"type":"text","text":"API Error: 500 {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"rate limit backend failure\"}}"}]}}"#,
                Some(rec(
                    "u-500",
                    Signal::ApiError {
                        status: Some(500),
                        text: r#"API Error: 500 {"type":"error","error":{"type":"api_error","message":"rate limit backend failure"}}"#.to_owned(),
                    },
                )),
            ),
            (
                "overloaded 529",
                r#"{"type":"assistant","uuid":"u-529","timestamp":"2026-05-01T06:22:41.512Z","isApiErrorMessage":true,"apiErrorStatus":529,"message":{"role":"assistant","content":[{"type":"text","text":"API Error: Repeated 529 Overloaded errors"}]}}"#,
                Some(rec(
                    "u-529",
                    Signal::ApiError {
                        status: Some(529),
                        text: "API Error: Repeated 529 Overloaded errors".to_owned(),
                    },
                )),
            ),
            (
                "429 without the rate_limit marker is not a usage limit",
                r#"{"type":"assistant","uuid":"u-429","timestamp":"2026-05-01T06:22:41.512Z","isApiErrorMessage":true,"apiErrorStatus":429,"error":"unknown","message":{"content":"API Error: Request rejected (429)"}}"#,
                Some(rec(
                    "u-429",
                    Signal::ApiError {
                        status: Some(429),
                        text: "API Error: Request rejected (429)".to_owned(),
                    },
                )),
            ),
            (
                "model output quoting a limit message",
                r#"{"type":"assistant","uuid":"u-quote","timestamp":"2026-05-01T06:22:41.512Z","message":{"role":"assistant","content":[{"type":"text","text":"The log says: You've hit your 5-hour limit · resets 9:23am"}]}}"#,
                None,
            ),
            (
                "turn finished",
                r#"{"type":"system","subtype":"turn_duration","durationMs":6123,"uuid":"u-turn","timestamp":"2026-05-01T06:22:41.512Z","isMeta":false}"#,
                Some(rec("u-turn", Signal::TurnDone)),
            ),
            (
                "other system record",
                r#"{"type":"system","subtype":"compact_boundary","uuid":"u-sys","timestamp":"2026-05-01T06:22:41.512Z"}"#,
                None,
            ),
            (
                "prompt as a string",
                r#"{"parentUuid":null,"isSidechain":false,"type":"user","message":{"role":"user","content":"Fix the flaky test in ci.yml"},"uuid":"u-p1","timestamp":"2026-05-01T06:22:41.512Z"}"#,
                Some(rec(
                    "u-p1",
                    Signal::UserPrompt {
                        text: "Fix the flaky test in ci.yml".to_owned(),
                    },
                )),
            ),
            (
                "prompt as blocks",
                r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"line one"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"text","text":"line two"}]},"uuid":"u-p2","timestamp":"2026-05-01T06:22:41.512Z"}"#,
                Some(rec(
                    "u-p2",
                    Signal::UserPrompt {
                        text: "line one\nline two".to_owned(),
                    },
                )),
            ),
            (
                "tool result",
                r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_01","type":"tool_result","content":"ok","is_error":false}]},"uuid":"u-tr","timestamp":"2026-05-01T06:22:41.512Z","toolUseResult":{"stdout":"ok"}}"#,
                None,
            ),
            (
                "meta user record",
                r#"{"type":"user","isMeta":true,"message":{"role":"user","content":"<local-command-caveat>Caveat: ...</local-command-caveat>"},"uuid":"u-meta","timestamp":"2026-05-01T06:22:41.512Z"}"#,
                None,
            ),
            (
                "interruption marker",
                r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"[Request interrupted by user]"}]},"uuid":"u-int","timestamp":"2026-05-01T06:22:41.512Z"}"#,
                None,
            ),
            (
                "subagent prompt",
                r#"{"type":"user","isSidechain":true,"message":{"role":"user","content":"Search the repo for X"},"uuid":"u-side","timestamp":"2026-05-01T06:22:41.512Z"}"#,
                None,
            ),
            (
                "summary record",
                r#"{"type":"summary","summary":"Fixing CI","leafUuid":"u-p1"}"#,
                None,
            ),
            (
                "signal without uuid",
                r#"{"type":"system","subtype":"turn_duration","timestamp":"2026-05-01T06:22:41.512Z"}"#,
                None,
            ),
            ("garbage", "not json at all {", None),
            ("json but not an object", "[1,2,3]", None),
            ("empty line", "", None),
        ]
    }

    #[test]
    fn parse_line_recognises_each_record_kind() {
        for (name, line, expected) in cases() {
            assert_eq!(parse_line(line), expected, "case: {name}");
        }
    }

    #[test]
    fn invalid_timestamp_is_dropped_but_signal_kept() {
        let record =
            parse_line(r#"{"type":"system","subtype":"turn_duration","uuid":"u1","timestamp":"yesterday"}"#).unwrap();
        assert_eq!(record.timestamp, None);
        assert_eq!(record.signal, Signal::TurnDone);

        let record = parse_line(LIMIT_LINE).unwrap();
        assert_eq!(
            record.parsed_timestamp().unwrap().as_millisecond(),
            "2026-05-01T06:22:41.512Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_millisecond()
        );
    }

    #[test]
    fn long_prompt_text_is_bounded_on_a_char_boundary() {
        let prompt = "é".repeat(MAX_SIGNAL_TEXT_BYTES); // two bytes each
        let line = serde_json::json!({
            "type": "user", "uuid": "u-long", "message": {"role": "user", "content": prompt}
        })
        .to_string();
        let Signal::UserPrompt { text } = parse_line(&line).unwrap().signal else {
            panic!("expected a prompt");
        };
        assert_eq!(text.len(), MAX_SIGNAL_TEXT_BYTES);
        assert!(prompt.starts_with(&text));
    }

    #[test]
    fn signals_serialise_with_a_kind_tag() {
        let record = parse_line(LIMIT_LINE).unwrap();
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["signal"]["kind"], "limit_hit");
        assert_eq!(
            serde_json::to_value(Signal::TurnDone).unwrap(),
            serde_json::json!({"kind": "turn_done"})
        );
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }

    // ---- paths --------------------------------------------------------------------------------

    #[test]
    fn slug_replaces_every_non_alphanumeric_character() {
        for (cwd, slug) in [
            ("/home/op/src/my.app", "-home-op-src-my-app"),
            ("/home/op/my_repo v2", "-home-op-my-repo-v2"),
            ("/home/op/.claude", "-home-op--claude"),
            ("/srv/café", "-srv-caf-"),
            // U+1F680 is two UTF-16 code units, and Claude's regex sees each one.
            ("/srv/🚀", "-srv---"),
        ] {
            assert_eq!(project_slug(Path::new(cwd)), slug, "cwd {cwd}");
        }
        assert_eq!(
            transcript_path(Path::new("/h/projects"), Path::new("/home/op/src/my.app"), ID_A),
            PathBuf::from(format!("/h/projects/-home-op-src-my-app/{ID_A}.jsonl"))
        );
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
