//! Test code of this package only (the fixtures any crate's tests could use are in
//! `crates/ccl-testkit`): the simulated world the core's scenarios run in, and the
//! scenarios every tmux backend of `ccl::adapters::tmux` must pass.

pub mod sim;
pub mod tmux_scenarios;
