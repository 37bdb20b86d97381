//! The root package's one integration-test binary (`cargo test --test integration`, and
//! `cargo test --test integration daemon_` for one area). Every file under `tests/` is a
//! module of it, so the suite links once instead of once per file; test names read
//! `FILE::TEST`. The tiers are gated inside each test (`CCL_TEST_TMUX=1`,
//! `CCL_TEST_CLAUDE=1`), so a filter never needs to know which tests are slow.

use ccl_testkit::Bins;

/// The binaries under test; only this package's integration tests know their paths.
pub const CCL: &str = env!("CARGO_BIN_EXE_ccl");
pub const FAKE_CLAUDE: &str = env!("CARGO_BIN_EXE_ccl-fake-claude");
/// Both, for the testkit's fixtures ([`ccl_testkit::fleet::Fleet`]).
pub const BINS: Bins = Bins {
    ccl: CCL,
    fake_claude: FAKE_CLAUDE,
};

mod support;

mod cli_habits;
mod cli_setup;
mod config_refusals;
mod core_is_sans_io;
mod core_queue_files;
mod core_scenarios;
mod core_signals;
mod daemon_claude_command;
mod daemon_dispatch;
mod daemon_drafts;
mod daemon_faults;
mod daemon_lifecycle;
mod daemon_ops;
mod daemon_queue;
mod daemon_swap;
mod daemon_tasks;
mod daemon_worktrees;
mod demo;
mod fake_claude;
mod golden_traces;
mod observe_activity;
mod readme_merge;
mod real_claude_daemon;
mod real_claude_signals;
mod real_claude_smoke;
mod real_claude_worktree;
mod screen_corpus;
mod test_hygiene;
mod tmux_control;
mod tmux_exec;
