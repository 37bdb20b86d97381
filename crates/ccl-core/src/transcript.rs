//! Claude Code's transcript and registry records as data: what one line of a per-session
//! transcript (`projects/<slug>/<id>.jsonl`) or one registry file (`sessions/<pid>.json`) tells
//! the daemon, and where Claude keeps a conversation's transcript. Reading the files (bounded,
//! incrementally, without following links) is the shell's job (`ccl::adapters::transcripts`);
//! the decision core only ever sees these values inside an observation.
//! Both formats are undocumented by Anthropic, so everything here is tolerant: a record that does
//! not look as expected yields nothing rather than an error, and the pane text remains the
//! fallback.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Longest text carried by a [`Signal`]. Signals end up in every trace line, and a pasted task can
/// be large; the start of the text is enough to recognise a limit message or a prompt.
pub const MAX_SIGNAL_TEXT_BYTES: usize = 4096;

/// Claude Code keeps this many characters of a sanitised cwd and, when the slug is longer,
/// appends `-<hash>` (see [`project_slug`]).
pub const CLAUDE_SLUG_MAX_CHARS: usize = 200;

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

/// The entry a registry file's bytes describe; `stem_pid` is the pid in the file's name, which
/// stands in when the `pid` field is missing. `None` for anything that is not a registry entry.
pub fn parse_registry_entry(bytes: &[u8], stem_pid: Option<u32>) -> Option<RegistryEntry> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let fields = value.as_object()?;
    let pid = match fields.get("pid") {
        Some(pid) => u32::try_from(pid.as_u64()?).ok()?,
        None => stem_pid?,
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

    const ID_A: &str = "0f8e2c1a-4b3d-4e5f-9a8b-7c6d5e4f3a2b";

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
}
