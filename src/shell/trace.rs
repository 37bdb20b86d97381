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
//! This module writes and opens trace files; the format, replay and rendering are
//! `ccl_core::trace`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use ccl_core::config::Config;
use ccl_core::core::{Action, Observation};
use ccl_core::trace::{parse, Encoder};
use ccl_core::trace::{Header, Trace};

/// Writes a trace file line by line, flushed as written.
pub struct Recorder {
    out: BufWriter<File>,
    encoder: Encoder,
}

impl Recorder {
    pub fn create(path: &Path, header: &Header) -> Result<Recorder> {
        // Owner-only: a trace holds every pane capture and launch line of the run.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create trace {}", path.display()))?;
        let mut r = Recorder {
            out: BufWriter::new(file),
            encoder: Encoder::default(),
        };
        let line = r.encoder.header(header)?;
        r.write_line(&line)?;
        Ok(r)
    }

    pub fn turn(&mut self, turn: u64, observation: &Observation, actions: &[Action]) -> Result<()> {
        let line = self.encoder.turn(turn, observation, actions)?;
        self.write_line(&line)
    }

    pub fn reload(&mut self, turn: u64, config: &Config) -> Result<()> {
        let line = self.encoder.reload(turn, config)?;
        self.write_line(&line)
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.out.flush().context("cannot write trace")?;
        Ok(())
    }
}

/// Reads a trace file; errors name the file and line (1-based) and are meant for exit code 2.
pub fn read(path: &Path) -> Result<Trace> {
    let file = File::open(path).with_context(|| format!("cannot open trace {}", path.display()))?;
    parse(BufReader::new(file), &path.display().to_string())
}
