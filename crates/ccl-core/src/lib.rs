//! ccl's decision core: a deterministic state machine. [`core::Core::step`] takes one
//! [`core::Observation`] (what tmux, the queues, the transcripts, the hooks and the usage
//! meters showed in one turn, as plain data) and returns the turn's [`core::Action`]s; the
//! daemon in the `ccl` crate gathers the observation and carries the actions out.
//!
//! Nothing in this crate reads a clock, a file, the environment or a process: time arrives
//! as `now_ms` in the observation, and time zones come from jiff's bundled database only.
//! The crate's dependencies hold no IO crate, and `clippy.toml` forbids the standard
//! library's IO entry points, so a replay of a recorded trace gives the same actions on any
//! machine.
//!
//! The phases of a turn run in this order: [`quota`] (usage and limits), [`dispatch`]
//! (queue → free pool session), [`watcher`] (turn finished, task filed), [`swap`] (moving
//! every managed session to another account). [`sessions`] knows what a pane shows and
//! what may be typed into it, [`accounts`] and [`meters`] what each account has left,
//! [`screen`] what Claude Code's screen means. [`config`], [`task`] and [`transcript`] are
//! the data the core is given; [`names`] the names of sessions, accounts, queues, tasks
//! and conversations as types; [`trace`] records and replays runs.
pub mod accounts;
pub mod config;
pub mod core;
pub mod dispatch;
pub mod event;
pub mod meters;
pub mod names;
pub mod quota;
pub mod screen;
pub mod sessions;
pub mod swap;
pub mod task;
pub mod trace;
pub mod transcript;
pub mod util;
pub mod watcher;
