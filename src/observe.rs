//! The shell's eyes: gathers one [`Observation`] per turn from tmux, Claude's session
//! registries and transcripts, the queue directories and the request files.
//!
//! Only managed sessions are captured; every other session on the server is listed by
//! name and pane pid only, and never touched. Transcripts are read incrementally (each
//! record once); a conversation first seen when the daemon starts is read from its end,
//! so old history is not taken as news.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::config::Config;
use crate::core::{Core, HookDone, Observation, QueueObs, RegistrySeen, SessionObs, TaskRef, TranscriptSeen};
use crate::hooks::Hooks;
use crate::tmux::Tmux;
use crate::transcript::{self, TranscriptReader};
use crate::{queue, state};

/// The shell: owns the tmux port and everything with I/O that the loop needs between
/// turns (transcript offsets, running hooks, claims that failed).
pub struct Shell {
    pub tmux: Box<dyn Tmux>,
    pub(crate) transcripts: TranscriptReader,
    pub(crate) seen_transcripts: BTreeSet<PathBuf>,
    pub(crate) failed_claims: Vec<TaskRef>,
    pub(crate) hooks: Hooks,
    pub(crate) turns: u64,
    /// Per queue: verdicts on inbox files, so unchanged files are not re-read each turn.
    inbox_caches: std::collections::BTreeMap<String, queue::InboxCache>,
}

impl Shell {
    pub fn new(tmux: Box<dyn Tmux>) -> Shell {
        Shell {
            tmux,
            transcripts: TranscriptReader::default(),
            seen_transcripts: BTreeSet::new(),
            failed_claims: Vec::new(),
            hooks: Hooks::default(),
            turns: 0,
            inbox_caches: Default::default(),
        }
    }

    pub fn observe(&mut self, core: &Core, now_ms: i64) -> Observation {
        let config = core.config();
        let sessions = self.observe_tmux(config);
        let registry = match &sessions {
            Some(list) => observe_registry(config, list),
            None => Vec::new(),
        };
        let transcripts = self.observe_transcripts(core);
        let queues = self.observe_queues(config);
        let requests = state::take_requests(&config.daemon.state_dir);
        let hooks_done: Vec<HookDone> = self.hooks.reap(now_ms);
        self.turns += 1;
        Observation {
            now_ms,
            sessions,
            registry,
            transcripts,
            queues,
            requests,
            failed_claims: std::mem::take(&mut self.failed_claims),
            hooks_done,
        }
    }

    fn observe_tmux(&mut self, config: &Config) -> Option<Vec<SessionObs>> {
        let panes = match self.tmux.list_sessions() {
            Ok(p) => p,
            Err(e) => {
                log::warn!("cannot list tmux sessions: {e:#}");
                return None;
            }
        };
        let mut out = Vec::with_capacity(panes.len());
        for p in panes {
            let capture = if config.is_managed(&p.session) && !p.dead {
                match self.tmux.capture(&p.session) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        log::warn!("cannot capture {}: {e:#}", p.session);
                        None
                    }
                }
            } else {
                None
            };
            out.push(SessionObs {
                name: p.session,
                pane_pid: p.pane_pid,
                command: p.current_command,
                dead: p.dead,
                capture,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Some(out)
    }

    fn observe_transcripts(&mut self, core: &Core) -> Vec<TranscriptSeen> {
        let projects = core.config().shared.target.join("projects");
        let mut out = Vec::new();
        for (session, cwd, id) in core.watch_list() {
            let path = transcript::locate_transcript(&projects, &cwd, &id)
                .unwrap_or_else(|| transcript::transcript_path(&projects, &cwd, &id));
            if self.seen_transcripts.insert(path.clone()) && self.turns == 0 {
                // Adopted at start: history before this run is not news.
                if let Err(e) = self.transcripts.skip_to_end(&path) {
                    log::warn!("cannot read transcript {}: {e:#}", path.display());
                }
                continue;
            }
            match self.transcripts.read_new(&path) {
                Ok(records) if !records.is_empty() => out.push(TranscriptSeen {
                    session,
                    conversation: id,
                    records,
                }),
                Ok(_) => {}
                Err(e) => log::warn!("cannot read transcript {}: {e:#}", path.display()),
            }
        }
        out
    }
}

/// Registry entries of running Claudes that sit in managed sessions.
fn observe_registry(config: &Config, sessions: &[SessionObs]) -> Vec<RegistrySeen> {
    let managed: BTreeSet<&str> = sessions
        .iter()
        .filter(|s| config.is_managed(&s.name))
        .map(|s| s.name.as_str())
        .collect();
    let mut out = Vec::new();
    for account in &config.accounts {
        for entry in transcript::read_registry(&account.home) {
            let Some(session) = entry.tmux_session.clone() else {
                continue;
            };
            if managed.contains(session.as_str()) {
                out.push(RegistrySeen {
                    session,
                    account: account.name.clone(),
                    entry,
                });
            }
        }
    }
    out
}

impl Shell {
    fn observe_queues(&mut self, config: &Config) -> Vec<QueueObs> {
        config
            .queues
            .iter()
            .map(|q| {
                let cache = self.inbox_caches.entry(q.name.clone()).or_default();
                let inbox = queue::scan_inbox_with(q, cache).unwrap_or_else(|e| {
                    log::warn!("cannot scan queue {}: {e:#}", q.name);
                    Vec::new()
                });
                let running = queue::list(q, "running").unwrap_or_else(|e| {
                    log::warn!("cannot list running tasks of queue {}: {e:#}", q.name);
                    Vec::new()
                });
                QueueObs {
                    name: q.name.clone(),
                    inbox,
                    running,
                }
            })
            .collect()
    }
}
