//! What ccl talks to outside itself, each behind a small interface the shell uses: tmux
//! ([`tmux`]: the exec and control-mode backends), the task queues on disk ([`queue`]),
//! Claude Code's transcripts and session registry ([`transcript`]), the account homes'
//! shared links ([`links`]) and trust records ([`trust`]), `/proc` ([`procs`]), git
//! worktrees ([`worktree`]), and opening files others can write ([`untrusted`]).
pub mod links;
pub mod procs;
pub mod queue;
pub mod tmux;
pub mod transcript;
pub mod trust;
pub mod untrusted;
pub mod worktree;
