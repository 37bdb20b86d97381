//! ccl keeps a fleet of Claude Code sessions in tmux working across several accounts.
//!
//! The decision core (`core` and the phase modules `quota`, `dispatch`, `watcher`,
//! `swap`, with `sessions`, `accounts` and `meters`) is sans-IO; everything that touches tmux,
//! files, processes or the clock lives in the shell modules around it. See
//! ARCHITECTURE.md for the map.
pub mod cli;
pub mod config_file;
pub mod daemon;
pub mod demo;
pub mod executor;
pub mod hooks;
pub mod init;
pub mod links;
pub mod observe;
pub mod procs;
pub mod queue;
pub mod signals;
pub mod state;
pub mod tasks;
pub mod tmux;
pub mod tmux_control;
pub mod trace;
pub mod transcript;
pub mod trust;
pub mod untrusted;
pub mod worktree;
