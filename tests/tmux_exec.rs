//! The exec tmux adapter against a real tmux on a private socket: every shared scenario
//! of `tests/support/tmux_scenarios.rs` on `ExecTmux` (sessions are created with the
//! asked-for environment, directory and size, listed and captured as a user would see
//! them, pasted text arrives byte for byte, a name never reaches a session it only
//! prefixes, errors name the command and the session). Gated by `CCL_TEST_TMUX=1`.

use crate::support::tmux_scenarios::Backend;
use ccl::adapters::tmux::ExecTmux;

impl Backend for ExecTmux {
    fn open(socket: &str) -> Self {
        ExecTmux::new(socket)
    }
}

crate::tmux_scenario_tests!(ccl::adapters::tmux::ExecTmux);
