//! Recorded runs: `ccl run --record FILE` writes a trace, `ccl replay FILE` feeds it back
//! through a fresh core and compares the actions.
//!
//! Format (JSON Lines, documented in ARCHITECTURE.md): the first line is a [`Header`]
//! (`format: "ccl-trace"`, `version`, ccl version, the resolved configuration, the
//! persisted state the core started from, the host time zone, the start instant); then
//! one line per turn, `{"turn": n, "t": ms, "observation": …, "actions": […]}`. A pane
//! capture is stored only when it changed since the previous turn for that session: an
//! unchanged one is written as `"capture_same": true` instead of `"capture"`. A SIGHUP
//! reload is a line `{"turn": n, "reload": <config>}`. Every line is flushed as written,
//! so a crash loses at most the turn in flight.
//!
//! This module is the format itself: encoding a run's lines, parsing them back from any reader,
//! replaying them through a fresh core and rendering them for people. Writing the file is the
//! shell's (`ccl::shell::trace`).

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::core::{Action, Core, Observation, State};

pub const FORMAT: &str = "ccl-trace";
/// Version 2 records the core's decisions as `{"action": "event", "event": …}`; version
/// 1 recorded them as log lines, and still replays (see [`actions_match`]).
pub const VERSION: u32 = 2;
/// The oldest version still read.
pub const OLDEST_VERSION: u32 = 1;
/// Longest trace line read back (a turn with many full captures).
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub ccl_version: String,
    pub config: Config,
    pub state: State,
    pub tz: String,
    pub start_ms: i64,
}

// Most lines are turns, so boxing the big variant would only add an allocation per line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Turn {
        turn: u64,
        observation: Observation,
        actions: Vec<Action>,
    },
    Reload {
        turn: u64,
        config: Box<Config>,
    },
}

/// Turns a run into trace lines (without the newline): the header first, then one line per
/// turn or reload. It remembers each session's last capture so an unchanged one is written as
/// `"capture_same": true`.
#[derive(Debug, Default)]
pub struct Encoder {
    last_capture: BTreeMap<String, String>,
}

impl Encoder {
    pub fn header(&mut self, header: &Header) -> Result<String> {
        // Through a `Value`, whose keys are sorted: the header's text stays as it always was.
        Ok(serde_json::to_string(&serde_json::to_value(header)?)?)
    }

    pub fn turn(&mut self, turn: u64, observation: &Observation, actions: &[Action]) -> Result<String> {
        let mut obs = serde_json::to_value(observation)?;
        if let Some(list) = obs.get_mut("sessions").and_then(Value::as_array_mut) {
            for s in list {
                let name = s.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                let Some(map) = s.as_object_mut() else { continue };
                match map.get("capture").and_then(Value::as_str) {
                    Some(c) if self.last_capture.get(&name).map(String::as_str) == Some(c) => {
                        map.remove("capture");
                        map.insert("capture_same".into(), Value::Bool(true));
                    }
                    Some(c) => {
                        self.last_capture.insert(name, c.to_string());
                    }
                    None => {
                        self.last_capture.remove(&name);
                    }
                }
            }
        }
        let line = serde_json::json!({"turn": turn, "t": observation.now_ms, "observation": obs, "actions": actions});
        Ok(serde_json::to_string(&line)?)
    }

    pub fn reload(&mut self, turn: u64, config: &Config) -> Result<String> {
        Ok(serde_json::to_string(
            &serde_json::json!({"turn": turn, "reload": config}),
        )?)
    }
}

/// A trace read back: header and lines, captures restored.
pub struct Trace {
    pub header: Header,
    pub lines: Vec<Line>,
}

/// Parses a trace from `reader`; errors name `source` (a file name) and the line (1-based)
/// and are meant for exit code 2.
pub fn parse(mut reader: impl BufRead, source: &str) -> Result<Trace> {
    let mut buf = String::new();
    let mut n = 0usize;
    let mut next = |buf: &mut String| -> Result<Option<(usize, Value)>> {
        loop {
            buf.clear();
            let read = reader.read_line(buf)?;
            n += 1;
            if read == 0 {
                return Ok(None);
            }
            if buf.len() > MAX_LINE_BYTES {
                bail!("{}:{n}: line longer than {MAX_LINE_BYTES} bytes", source);
            }
            if buf.trim().is_empty() {
                continue;
            }
            let v = serde_json::from_str(buf.trim()).with_context(|| format!("{}:{n}: corrupt trace line", source))?;
            return Ok(Some((n, v)));
        }
    };
    let Some((_, head)) = next(&mut buf)? else {
        bail!("{}: empty trace", source)
    };
    if head.get("format").and_then(Value::as_str) != Some(FORMAT) {
        bail!("{}:1: not a ccl trace (no \"format\": \"{FORMAT}\")", source);
    }
    let version = head.get("version").and_then(Value::as_u64).unwrap_or(0);
    if !(OLDEST_VERSION as u64..=VERSION as u64).contains(&version) {
        bail!(
            "{}:1: unknown trace format version {version} (this ccl reads versions {OLDEST_VERSION} to {VERSION})",
            source
        );
    }
    let header: Header = serde_json::from_value(head).with_context(|| format!("{}:1: corrupt trace header", source))?;
    let mut lines = Vec::new();
    let mut last_capture: BTreeMap<String, String> = BTreeMap::new();
    while let Some((at, mut v)) = next(&mut buf)? {
        let turn = v
            .get("turn")
            .and_then(Value::as_u64)
            .with_context(|| format!("{}:{at}: line has no \"turn\"", source))?;
        if let Some(config) = v.get("reload") {
            let config: Config = serde_json::from_value(config.clone())
                .with_context(|| format!("{}:{at}: corrupt reload line", source))?;
            lines.push(Line::Reload {
                turn,
                config: Box::new(config),
            });
            continue;
        }
        if let Some(list) = v.pointer_mut("/observation/sessions").and_then(Value::as_array_mut) {
            for s in list {
                let name = s.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                let Some(map) = s.as_object_mut() else { continue };
                if map.remove("capture_same").is_some() {
                    let prev = last_capture.get(&name).with_context(|| {
                        format!("{}:{at}: capture_same for {name} without an earlier capture", source)
                    })?;
                    map.insert("capture".into(), Value::String(prev.clone()));
                } else if let Some(c) = map.get("capture").and_then(Value::as_str) {
                    last_capture.insert(name, c.to_string());
                } else {
                    last_capture.remove(&name);
                }
            }
        }
        let observation: Observation = serde_json::from_value(v.get("observation").cloned().unwrap_or(Value::Null))
            .with_context(|| format!("{}:{at}: corrupt observation", source))?;
        let actions: Vec<Action> = serde_json::from_value(v.get("actions").cloned().unwrap_or(Value::Null))
            .with_context(|| format!("{}:{at}: corrupt actions", source))?;
        lines.push(Line::Turn {
            turn,
            observation,
            actions,
        });
    }
    Ok(Trace { header, lines })
}

/// The outcome of a replay.
#[derive(Debug, PartialEq)]
pub enum Replay {
    AllMatch {
        turns: usize,
    },
    Diverged {
        turn: u64,
        expected: Vec<Action>,
        actual: Vec<Action>,
    },
}

/// Feeds every observation through a core built from the header; compares actions.
/// Also returns every turn's actions, for property checks in tests.
pub fn replay(trace: &Trace) -> (Replay, Vec<Vec<Action>>) {
    let h = &trace.header;
    let mut core = Core::new(h.config.clone(), h.state.clone(), &h.tz);
    let mut all = Vec::new();
    let mut turns = 0;
    for line in &trace.lines {
        match line {
            Line::Reload { config, .. } => core.set_config((**config).clone()),
            Line::Turn {
                turn,
                observation,
                actions,
            } => {
                let actual = core.step(observation);
                turns += 1;
                if !actions_match(h.version, actions, &actual) {
                    return (
                        Replay::Diverged {
                            turn: *turn,
                            expected: actions.clone(),
                            actual,
                        },
                        all,
                    );
                }
                all.push(actual);
            }
        }
    }
    (Replay::AllMatch { turns }, all)
}

/// Whether a turn's recorded actions are the ones replay produced. A version-1 trace
/// recorded each decision as a log line: there, `Log { level, message }` matches
/// `Event(e)` when `e` displays as `message` at the level version 1 gave it.
pub fn actions_match(version: u32, recorded: &[Action], actual: &[Action]) -> bool {
    if version >= 2 {
        return recorded == actual;
    }
    recorded.len() == actual.len()
        && recorded.iter().zip(actual).all(|(r, a)| match (r, a) {
            (Action::Log { level, message }, Action::Event(e)) => *level == e.v1_level() && e.to_string() == *message,
            _ => r == a,
        })
}

/// Renders a trace for people: one block per turn with its time, what each managed
/// session was doing after the turn (replayed through a fresh core), and the actions,
/// one per line. Golden traces keep this beside their JSON so a review reads a diff of
/// decisions rather than of long JSON lines.
pub fn render(trace: &Trace) -> String {
    let h = &trace.header;
    let mut core = Core::new(h.config.clone(), h.state.clone(), &h.tz);
    let mut out = String::new();
    for line in &trace.lines {
        match line {
            Line::Reload { turn, .. } => out.push_str(&format!("turn {turn}: configuration reloaded\n\n")),
            Line::Turn { turn, observation, .. } => {
                let actions = core.step(observation);
                let time = jiff::Timestamp::from_millisecond(observation.now_ms)
                    .map(|t| t.strftime("%H:%M:%S%.3f").to_string())
                    .unwrap_or_else(|_| observation.now_ms.to_string());
                out.push_str(&format!("turn {turn} at {time}\n"));
                for (name, s) in &core.state().sessions {
                    let activity = format!("{:?}", s.activity);
                    let word = activity.split([' ', '{', '(']).next().unwrap_or_default();
                    out.push_str(&format!("  {name}: {word}"));
                    if let Some(a) = &s.account {
                        out.push_str(&format!(" under {a}"));
                    }
                    if let Some(a) = &s.assignment {
                        out.push_str(&format!(" on {}/{} (attempt {})", a.task.queue, a.task.task, a.attempt));
                    }
                    if let Some(why) = &s.attention {
                        out.push_str(&format!(" [needs attention: {why}]"));
                    }
                    out.push('\n');
                }
                for a in &actions {
                    out.push_str(&format!("  > {a}\n"));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Renders a divergence as two columns, expected | actual, one action per row; long
/// actions wrap inside their column so a difference at the end of a line still shows.
/// Rows that differ are marked `≠`.
pub fn render_divergence(turn: u64, expected: &[Action], actual: &[Action]) -> String {
    const WIDTH: usize = 70;
    let left: Vec<String> = expected.iter().map(|a| a.to_string()).collect();
    let right: Vec<String> = actual.iter().map(|a| a.to_string()).collect();
    let wrap = |s: &str| -> Vec<String> {
        let chars: Vec<char> = s.chars().collect();
        if chars.is_empty() {
            return vec![String::new()];
        }
        chars.chunks(WIDTH).map(|c| c.iter().collect()).collect()
    };
    let mut out = format!("turn {turn}: actions differ\n  {:<WIDTH$} | actual\n", "expected");
    for i in 0..left.len().max(right.len()) {
        let l = left.get(i).map(String::as_str).unwrap_or("");
        let r = right.get(i).map(String::as_str).unwrap_or("");
        let mark = if l == r { ' ' } else { '≠' };
        let (lw, rw) = (wrap(l), wrap(r));
        for k in 0..lw.len().max(rw.len()) {
            let m = if k == 0 { mark } else { ' ' };
            let lc = lw.get(k).map(String::as_str).unwrap_or("");
            let rc = rw.get(k).map(String::as_str).unwrap_or("");
            out.push_str(&format!("{m} {lc:<WIDTH$} | {rc}\n"));
        }
    }
    out
}
