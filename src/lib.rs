//! ccl keeps a fleet of Claude Code sessions in tmux working across several accounts.
//!
//! This crate is the product around the decision core (`ccl_core`, which does no IO):
//! - [`shell`]: the daemon's loop and everything it does on the core's behalf: gathering
//!   each turn's observation, carrying out the actions, the state files, hooks, Claude's
//!   signal spool, trace files, finding and reading the configuration;
//! - [`adapters`]: what ccl talks to outside itself: tmux (exec and control mode), the
//!   task queues on disk, Claude's transcripts and registry, account links and trust,
//!   `/proc`, git worktrees;
//! - [`cli`]: the commands; [`status`]: the status report and its rendering;
//!   [`demo`]: `ccl demo`.
//!
//! See ARCHITECTURE.md for the map.
pub mod adapters;
pub mod cli;
pub mod demo;
pub mod exit;
pub mod shell;
pub mod status;
