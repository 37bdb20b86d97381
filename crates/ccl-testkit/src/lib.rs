//! What ccl's tests, benchmarks and offline runs of the real Claude Code stand on, kept out
//! of the product (`publish = false`; `cargo install` never installs it): the mock
//! Anthropic API ([`mockapi`], and the `ccl-mock-api` binary around it).
pub mod mockapi;
