//! Test code of this package only (the fixtures any crate's tests could use are in
//! `crates/ccl-testkit`): the simulated world the core's scenarios run in.

pub mod sim;
