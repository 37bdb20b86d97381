//! ccl keeps a fleet of Claude Code sessions in tmux working across several accounts.
pub mod config;
pub mod screen;
pub mod tmux;
