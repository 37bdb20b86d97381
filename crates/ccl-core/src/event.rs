//! The core's decisions as data: quota decisions, the steps of a swap, task outcomes and
//! what needs the operator. Each is an [`Event`] carried by `Action::Event`, so tests, the simulator, the demo and
//! any reader of a trace match on a variant instead of on the words of a log line. The
//! words are still there for operators: `Display` gives exactly the log line ccl wrote
//! before events were typed, and [`Event::level`] the level it is logged at.
//!
//! Levels mean something: `Info` is normal operation, a swap included; `Warn` is degraded
//! operation (work waits, is lost or is put back, an account or the fleet cannot do what it
//! should); `Error` is a broken invariant, which the core never decides by itself (the
//! shell logs a failed state save or a failed stop at that level).
//!
//! Fields keep the types the rest of the core uses today (names as `String`, a task as its
//! `queue/task` text, times in milliseconds).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::{AccountName, ConversationId, QueueName, SessionName};

use crate::core::Level;
use crate::screen::LimitKind;
use crate::util::rfc3339;

/// What the quota phase decided about one limit detection (the `decision=` of its line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaDecision {
    /// Confirmed on the active account: a swap follows.
    Swap,
    /// Seen `n` times of the `of` needed (pane hits are confirmed over several turns).
    Confirming(u32, u32),
    /// A server error beside a pane hit: not a limit.
    Vetoed,
    /// Within the cooldown after a swap (the ping-pong guard).
    Cooldown,
    /// A banner already on screen when Claude became ready: not news.
    Stale,
    /// A hit under an account that is not the active one.
    OtherAccount,
    Swapping,
    Exhausted,
    /// The printed reset has already passed.
    Expired,
}

impl fmt::Display for QuotaDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaDecision::Swap => f.write_str("swap"),
            QuotaDecision::Confirming(n, of) => write!(f, "confirming {n}/{of}"),
            QuotaDecision::Vetoed => f.write_str("vetoed"),
            QuotaDecision::Cooldown => f.write_str("cooldown"),
            QuotaDecision::Stale => f.write_str("stale"),
            QuotaDecision::OtherAccount => f.write_str("other account"),
            QuotaDecision::Swapping => f.write_str("swap in progress"),
            QuotaDecision::Exhausted => f.write_str("all accounts exhausted"),
            QuotaDecision::Expired => f.write_str("reset passed"),
        }
    }
}

/// One decision of the core, with what it was about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    // ----- quota decisions ---------------------------------------------------------------
    /// A usage-limit hit was detected (`source`: `hook`, `transcript`, `pane`), and what was
    /// decided about it: the forensic `quota:` line.
    LimitDetected {
        session: SessionName,
        account: AccountName,
        source: String,
        pattern: String,
        kind: Option<LimitKind>,
        reset_ms: Option<i64>,
        decision: QuotaDecision,
        snippet: String,
    },
    /// Claude warned that the limit is near (`draining`: no new tasks until the swap; else
    /// no other account is available and nothing changes).
    ApproachingLimit {
        session: SessionName,
        account: AccountName,
        snippet: String,
        draining: bool,
    },
    /// Claude wraps its turn up before the limit: its task continues after the swap.
    WrappingUp {
        session: SessionName,
        account: AccountName,
        snippet: String,
    },
    /// An account's meter crossed `swap_at`.
    MeterAtSwapAt {
        account: AccountName,
        used_pct: f64,
        swap_at_pct: f64,
        source: String,
        session: SessionName,
    },
    /// The active account is over `swap_at` and no other account is below it.
    MeterNoTarget {
        account: AccountName,
        used_pct: f64,
        swap_at_pct: f64,
    },
    /// A meter's window (`5-hour`, `weekly`) reset.
    MeterWindowReset {
        account: AccountName,
        window: String,
    },
    AccountUnhealthy {
        account: AccountName,
        reason: String,
    },
    AccountHealthy {
        account: AccountName,
        why: String,
    },
    /// An exhausted account's reset time passed.
    AccountBack {
        account: AccountName,
    },
    /// No account can take the fleet: dispatch waits until `until` (RFC 3339, or `-`).
    AllExhausted {
        until: String,
        reason: String,
    },
    /// The fleet's account can work again after all were exhausted.
    WorkResumes {
        account: AccountName,
    },
    /// The continue prompt goes to a session whose account reset.
    ContinueAfterReset {
        session: SessionName,
        account: AccountName,
    },
    /// Claude waits for the reset and will continue by itself.
    WaitsForReset {
        session: SessionName,
    },
    /// Claude did not continue by itself within `grace_s` of the reset.
    NoAutoContinue {
        session: SessionName,
        grace_s: i64,
    },
    /// Claude continued by itself after the reset.
    AutoContinued {
        session: SessionName,
    },
    /// A turn wrapped up before the limit gets the continue prompt, no swap coming.
    ContinueAfterWrapUp {
        session: SessionName,
    },

    // ----- swap steps -----------------------------------------------------------------------
    /// A swap begins (`at_boundaries`: members move at their turn boundaries, before the
    /// limit); `members` are the sessions to move.
    SwapBegins {
        from: AccountName,
        to: AccountName,
        reason: String,
        members: Vec<SessionName>,
        at_boundaries: bool,
    },
    /// A member of a swap before the limit reached its turn boundary.
    MemberAtBoundary {
        session: SessionName,
        to: AccountName,
    },
    /// A member's unsent draft is read and kept for after the swap.
    DraftKept {
        session: SessionName,
        snippet: String,
    },
    /// No Claude process is known for a member's conversation: nothing signalled.
    NothingToStop {
        session: SessionName,
    },
    /// A member's input box held text; cleared for the swap.
    BoxCleared {
        session: SessionName,
        snippet: String,
    },
    /// Claude is still idle after `/exit`: typed again.
    ExitRetyped {
        session: SessionName,
    },
    /// A member did not stop in time; its session is recreated.
    StopTimedOut {
        session: SessionName,
        timeout_s: i64,
    },
    /// A member's tmux session is gone after the swap.
    MemberAbsent {
        session: SessionName,
    },
    /// A member's task had not been submitted: it starts afresh under `account`.
    TaskRestarted {
        session: SessionName,
        account: AccountName,
    },
    /// A member's conversation is resumed under `account` (`task`: it carries a task).
    Resuming {
        session: SessionName,
        conversation: ConversationId,
        account: AccountName,
        task: bool,
    },
    /// A member is left at its shell: text ccl did not type on its line (with the
    /// conversation to resume), or no conversation known.
    LeftAtShell {
        session: SessionName,
        conversation: Option<ConversationId>,
    },
    /// A relaunched Claude is ready (no draft to put back).
    Ready {
        session: SessionName,
    },
    /// A relaunched Claude is ready and its draft is back in the box.
    DraftRestored {
        session: SessionName,
        snippet: String,
    },
    /// A relaunched Claude is ready but its box holds other text: the draft is not put back.
    DraftNotRestored {
        session: SessionName,
        box_snippet: String,
        draft_snippet: String,
    },
    /// A draft could not be put back after the swap (written whole here).
    DraftLost {
        session: SessionName,
        snippet: String,
    },
    /// Every member moved.
    Swapped {
        from: AccountName,
        to: AccountName,
        took_s: i64,
        reason: String,
    },
    /// A swap before the limit was given up: its target hit its limit first.
    SwapGivenUp {
        from: AccountName,
        to: AccountName,
    },

    // ----- task outcomes ----------------------------------------------------------------------
    /// A task is claimed for a session (`attempt` from 1) under `account`.
    Dispatching {
        session: SessionName,
        task: String,
        attempt: u32,
        account: AccountName,
    },
    /// The claim lost a race (taken elsewhere); the session is free again.
    ClaimLost {
        session: SessionName,
        task: String,
    },
    /// A claim failed for a lasting reason; claims from the queue wait.
    ClaimBlocked {
        queue: QueueName,
        task: String,
        cause: String,
        retry_s: i64,
    },
    /// Claims from a blocked queue work again.
    ClaimsWorkAgain {
        queue: QueueName,
    },
    /// A task's git worktree is made.
    WorktreeMade {
        session: SessionName,
        path: String,
        branch: String,
        task: String,
    },
    /// A prompt was taken by Claude (`continue_prompt`: the continue prompt, else the task;
    /// `hook`: `UserPromptSubmit` said so).
    Submitted {
        session: SessionName,
        continue_prompt: bool,
        hook: bool,
    },
    /// The `Stop` hook ended a task's turn.
    TurnFinished {
        session: SessionName,
    },
    /// A task goes to `failed/`.
    TaskFailed {
        session: SessionName,
        task: String,
        reason: String,
    },
    /// A task goes back to the inbox; `attempt` is the attempts it has used.
    TaskRequeued {
        session: SessionName,
        task: String,
        reason: String,
        attempt: u32,
    },
    /// A dedicated session was recorded with a task: the task goes back to the inbox.
    DedicatedHadTask {
        session: SessionName,
        task: String,
    },
    /// A `running/` task with no record is held while these sessions may show it.
    TaskHeld {
        task: String,
        sessions: Vec<SessionName>,
    },
    /// After a restart, a session's Claude is found working on a task (`in_box`: its body
    /// waits unsent in the input box, Enter follows).
    Adopted {
        session: SessionName,
        task: String,
        in_box: bool,
    },
    /// A session's task is no longer in `running/` after start-up recovery: forgotten.
    TaskForgotten {
        session: SessionName,
        task: String,
    },
    /// A launch failed at once: Claude exited right after it.
    LaunchExited {
        session: SessionName,
        why: String,
    },
    /// A pool session's Claude never became ready: the session is recreated.
    LaunchTimedOut {
        session: SessionName,
        why: String,
    },

    // ----- the operator ------------------------------------------------------------------
    /// A session needs the operator (`reason` as the log line words it, most often
    /// `needs attention: …`); ccl leaves it alone until it is cleared.
    NeedsAttention {
        session: SessionName,
        reason: String,
    },
    /// The session no longer needs the operator.
    AttentionCleared {
        session: SessionName,
    },
}

impl Event {
    /// The level this event is logged at: see the module's doc.
    pub fn level(&self) -> Level {
        use Event::*;
        match self {
            LimitDetected { .. }
            | ApproachingLimit { draining: false, .. }
            | WrappingUp { .. }
            | MeterAtSwapAt { .. }
            | MeterWindowReset { .. }
            | AccountHealthy { .. }
            | AccountBack { .. }
            | WorkResumes { .. }
            | ContinueAfterReset { .. }
            | WaitsForReset { .. }
            | NoAutoContinue { .. }
            | AutoContinued { .. }
            | ContinueAfterWrapUp { .. }
            | SwapBegins { .. }
            | MemberAtBoundary { .. }
            | DraftKept { .. }
            | NothingToStop { .. }
            | ExitRetyped { .. }
            | TaskRestarted { .. }
            | Resuming { .. }
            | Ready { .. }
            | DraftRestored { .. }
            | Swapped { .. }
            | Dispatching { .. }
            | ClaimLost { .. }
            | ClaimsWorkAgain { .. }
            | WorktreeMade { .. }
            | Submitted { .. }
            | TurnFinished { .. }
            | TaskHeld { .. }
            | Adopted { .. }
            | AttentionCleared { .. } => Level::Info,
            ApproachingLimit { draining: true, .. }
            | MeterNoTarget { .. }
            | AccountUnhealthy { .. }
            | AllExhausted { .. }
            | BoxCleared { .. }
            | StopTimedOut { .. }
            | MemberAbsent { .. }
            | LeftAtShell { .. }
            | DraftNotRestored { .. }
            | DraftLost { .. }
            | SwapGivenUp { .. }
            | ClaimBlocked { .. }
            | TaskFailed { .. }
            | TaskRequeued { .. }
            | DedicatedHadTask { .. }
            | TaskForgotten { .. }
            | LaunchExited { .. }
            | LaunchTimedOut { .. }
            | NeedsAttention { .. } => Level::Warn,
        }
    }

    /// The level trace format version 1 recorded this line at, when events were free-form
    /// log lines: a swap and its confirmed limit were warnings then.
    pub fn v1_level(&self) -> Level {
        match self {
            Event::SwapBegins { .. }
            | Event::Swapped { .. }
            | Event::LimitDetected {
                decision: QuotaDecision::Swap,
                ..
            } => Level::Warn,
            _ => self.level(),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Event::*;
        let list = |names: &[SessionName]| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.iter().map(SessionName::as_str).collect::<Vec<_>>().join(", ")
            }
        };
        match self {
            LimitDetected {
                session,
                account,
                source,
                pattern,
                kind,
                reset_ms,
                decision,
                snippet,
            } => {
                let kind = kind.map(|k| format!("{k:?}")).unwrap_or_else(|| "-".into());
                let reset = reset_ms.map(rfc3339).unwrap_or_else(|| "-".into());
                write!(
                    f,
                    "quota: session={session} account={account} source={source} pattern={pattern} kind={kind} reset={reset} decision={decision} snippet=\"{snippet}\""
                )
            }
            ApproachingLimit {
                session,
                account,
                snippet,
                draining: false,
            } => write!(
                f,
                "quota: {session}: approaching the limit of {account} (\"{snippet}\"), but no other account is available; not draining"
            ),
            ApproachingLimit {
                session,
                account,
                snippet,
                draining: true,
            } => write!(
                f,
                "quota: {session}: approaching the limit of {account} (\"{snippet}\"); draining: no new tasks, swap when the pool's tasks are done"
            ),
            WrappingUp {
                session,
                account,
                snippet,
            } => write!(
                f,
                "{session}: claude is wrapping its turn up before the limit of {account} (\"{snippet}\"); the task is not done and continues after the swap"
            ),
            MeterAtSwapAt {
                account,
                used_pct,
                swap_at_pct,
                source,
                session,
            } => write!(
                f,
                "meter: account {account} at {used_pct:.0}% (swap_at {swap_at_pct:.0}%), read from the {source} of {session}"
            ),
            MeterNoTarget {
                account,
                used_pct,
                swap_at_pct,
            } => write!(
                f,
                "meter: account {account} at {used_pct:.0}% (swap_at {swap_at_pct:.0}%), and no other account is below it; \
                 the fleet stays on {account} and keeps working"
            ),
            MeterWindowReset { account, window } => {
                write!(f, "account {account}: {window} window reset; its meter starts afresh")
            }
            AccountUnhealthy { account, reason } => write!(
                f,
                "account {account} is unhealthy: {reason}; out of rotation until a session under it works or `ccl account enable {account}`"
            ),
            AccountHealthy { account, why } => write!(f, "account {account} is healthy again: {why}"),
            AccountBack { account } => write!(f, "account {account}: reset time passed, available again"),
            AllExhausted { until, reason } => {
                write!(f, "all accounts exhausted until {until}; dispatch waits ({reason})")
            }
            WorkResumes { account } => write!(f, "account {account} is available again; work resumes"),
            ContinueAfterReset { session, account } => write!(
                f,
                "{session}: account {account} is usable again; sending the continue prompt"
            ),
            WaitsForReset { session } => write!(
                f,
                "{session}: claude waits for the limit to reset and will continue by itself"
            ),
            NoAutoContinue { session, grace_s } => write!(
                f,
                "{session}: claude did not continue by itself within {grace_s}s of the reset; sending the continue prompt"
            ),
            AutoContinued { session } => write!(
                f,
                "{session}: claude continued the turn by itself after the reset; the task goes on"
            ),
            ContinueAfterWrapUp { session } => write!(
                f,
                "{session}: its turn was wrapped up before the limit and no swap is coming; sending the continue prompt"
            ),
            SwapBegins {
                from,
                to,
                reason,
                members,
                at_boundaries: false,
            } => write!(
                f,
                "swap from {from} to {to} begins: {reason}; sessions to move: {}",
                list(members)
            ),
            SwapBegins {
                from,
                to,
                reason,
                members,
                at_boundaries: true,
            } => write!(
                f,
                "swap from {from} to {to} begins at turn boundaries: {reason}; new work starts under {to}; sessions to move: {}",
                list(members)
            ),
            MemberAtBoundary { session, to } => write!(f, "{session}: at its turn boundary; moving it to {to}"),
            DraftKept { session, snippet } => {
                write!(f, "{session}: keeping its unsent draft across the swap: \"{snippet}\"")
            }
            NothingToStop { session } => write!(
                f,
                "{session}: no claude process known for its conversation yet; nothing signalled"
            ),
            BoxCleared { session, snippet } => write!(
                f,
                "{session}: clearing claude's input box for the swap; it held \"{snippet}\""
            ),
            ExitRetyped { session } => write!(f, "{session}: claude is still idle after /exit; typing it again"),
            StopTimedOut { session, timeout_s } => write!(
                f,
                "{session}: claude did not stop within {timeout_s}s; recreating the session"
            ),
            MemberAbsent { session } => write!(f, "{session}: absent after the swap; not relaunched"),
            TaskRestarted { session, account } => write!(
                f,
                "{session}: its task was not submitted yet; starting it afresh under {account}"
            ),
            Resuming {
                session,
                conversation,
                account,
                task,
            } => write!(
                f,
                "{session}: resuming {}conversation {conversation} under {account}",
                if *task { "task " } else { "" }
            ),
            LeftAtShell {
                session,
                conversation: Some(id),
            } => write!(
                f,
                "{session}: left at its shell after the swap: its command line holds text ccl did not type (resume it with: claude --resume {id})"
            ),
            LeftAtShell {
                session,
                conversation: None,
            } => write!(
                f,
                "{session}: left at its shell after the swap: no conversation id is known (never started blind)"
            ),
            Ready { session } => write!(f, "{session}: claude is ready"),
            DraftRestored { session, snippet } => write!(
                f,
                "{session}: claude is ready; its unsent draft is back in the input box: \"{snippet}\""
            ),
            DraftNotRestored {
                session,
                box_snippet,
                draft_snippet,
            } => write!(
                f,
                "{session}: claude is ready; its draft from before the swap is not put back, the box holds \"{box_snippet}\" (draft: \"{draft_snippet}\")"
            ),
            DraftLost { session, snippet } => write!(
                f,
                "{session}: its unsent draft could not be put back after the swap: \"{snippet}\""
            ),
            Swapped {
                from,
                to,
                took_s,
                reason,
            } => write!(f, "swapped from {from} to {to} in {took_s}s ({reason})"),
            SwapGivenUp { from, to } => write!(
                f,
                "swap from {from} to {to} given up: {to} hit its limit before every session moved"
            ),
            Dispatching {
                session,
                task,
                attempt,
                account,
            } => {
                write!(f, "{session}: dispatching {task}")?;
                if *attempt > 1 {
                    write!(f, " (attempt {attempt})")?;
                }
                write!(f, " under {account}")
            }
            ClaimLost { session, task } => write!(
                f,
                "{session}: claim of {task} failed (taken elsewhere); session is free again"
            ),
            ClaimBlocked {
                queue,
                task,
                cause,
                retry_s,
            } => write!(
                f,
                "queue {queue}: cannot claim {task}: {cause}; this is not another process taking it, so claims from this queue wait and are tried again every {retry_s}s (`ccl check` looks at the queue's directories)"
            ),
            ClaimsWorkAgain { queue } => write!(f, "queue {queue}: claims from queue {queue} work again"),
            WorktreeMade {
                session,
                path,
                branch,
                task,
            } => write!(f, "{session}: worktree {path} on branch {branch} for {task}"),
            Submitted {
                session,
                continue_prompt,
                hook,
            } => write!(
                f,
                "{session}: {} submitted{}",
                if *continue_prompt { "continue prompt" } else { "task" },
                if *hook { " (UserPromptSubmit)" } else { "" }
            ),
            TurnFinished { session } => write!(f, "{session}: turn finished (Stop)"),
            TaskFailed { session, task, reason } => write!(f, "{session}: {task}: {reason}"),
            TaskRequeued {
                session,
                task,
                reason,
                attempt,
            } => write!(f, "{session}: {task}: {reason}; back to the inbox (attempt {attempt})"),
            DedicatedHadTask { session, task } => write!(
                f,
                "{session}: a dedicated session was marked as working on {task}; marked idle, task back to the inbox"
            ),
            TaskHeld { task, sessions } => write!(
                f,
                "{task}: in running/ with no record of its session; held while {} may show it works on it",
                sessions.join(", ")
            ),
            Adopted {
                session,
                task,
                in_box: true,
            } => write!(
                f,
                "{session}: {task}: its body waits unsent in the input box (pasted before a restart); adopted, Enter follows"
            ),
            Adopted {
                session,
                task,
                in_box: false,
            } => write!(
                f,
                "{session}: {task}: its Claude is working on it (its conversation began with the task); adopted, not requeued"
            ),
            TaskForgotten { session, task } => write!(
                f,
                "{session}: its task {task} is no longer in running/ (recovered at start); forgotten"
            ),
            LaunchExited { session, why } => {
                write!(f, "{session}: claude exited right after launch ({why}); left at its shell")
            }
            LaunchTimedOut { session, why } => write!(f, "{session}: {why}; recreating the session"),
            NeedsAttention { session, reason } => write!(f, "{session}: {reason}"),
            AttentionCleared { session } => write!(f, "{session}: no longer needs attention"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    /// Every event with the log line ccl wrote for it before events were typed, and its
    /// level now.
    fn cases() -> Vec<(Event, &'static str, Level)> {
        use Event::*;
        use Level::{Info, Warn};
        vec![
            (
                LimitDetected {
                    session: (s("ccl-auto-11")).into(),
                    account: (s("a")).into(),
                    source: s("pane"),
                    pattern: s("hit_five_hour"),
                    kind: Some(LimitKind::FiveHour),
                    reset_ms: Some(1_795_857_780_000),
                    decision: QuotaDecision::Swap,
                    snippet: s("You've hit your 5-hour limit · resets 9:23am (UTC)"),
                },
                "quota: session=ccl-auto-11 account=a source=pane pattern=hit_five_hour kind=FiveHour reset=2026-11-28T09:23:00Z decision=swap snippet=\"You've hit your 5-hour limit · resets 9:23am (UTC)\"",
                Info,
            ),
            (
                LimitDetected {
                    session: (s("ccl-1-ops")).into(),
                    account: (s("b")).into(),
                    source: s("transcript"),
                    pattern: s("legacy_429"),
                    kind: None,
                    reset_ms: None,
                    decision: QuotaDecision::Confirming(1, 2),
                    snippet: s("429"),
                },
                "quota: session=ccl-1-ops account=b source=transcript pattern=legacy_429 kind=- reset=- decision=confirming 1/2 snippet=\"429\"",
                Info,
            ),
            (
                ApproachingLimit {
                    session: (s("ccl-auto-11")).into(),
                    account: (s("a")).into(),
                    snippet: s("Approaching usage limit"),
                    draining: false,
                },
                "quota: ccl-auto-11: approaching the limit of a (\"Approaching usage limit\"), but no other account is available; not draining",
                Info,
            ),
            (
                ApproachingLimit {
                    session: (s("ccl-auto-11")).into(),
                    account: (s("a")).into(),
                    snippet: s("Approaching usage limit"),
                    draining: true,
                },
                "quota: ccl-auto-11: approaching the limit of a (\"Approaching usage limit\"); draining: no new tasks, swap when the pool's tasks are done",
                Warn,
            ),
            (
                WrappingUp {
                    session: (s("ccl-auto-11")).into(),
                    account: (s("a")).into(),
                    snippet: s("wrapping up"),
                },
                "ccl-auto-11: claude is wrapping its turn up before the limit of a (\"wrapping up\"); the task is not done and continues after the swap",
                Info,
            ),
            (
                MeterAtSwapAt {
                    account: (s("a")).into(),
                    used_pct: 96.6,
                    swap_at_pct: 95.0,
                    source: s("status line"),
                    session: (s("ccl-auto-11")).into(),
                },
                "meter: account a at 97% (swap_at 95%), read from the status line of ccl-auto-11",
                Info,
            ),
            (
                MeterNoTarget {
                    account: (s("a")).into(),
                    used_pct: 97.0,
                    swap_at_pct: 95.0,
                },
                "meter: account a at 97% (swap_at 95%), and no other account is below it; the fleet stays on a and keeps working",
                Warn,
            ),
            (
                MeterWindowReset {
                    account: (s("a")).into(),
                    window: s("5-hour"),
                },
                "account a: 5-hour window reset; its meter starts afresh",
                Info,
            ),
            (
                AccountUnhealthy {
                    account: (s("b")).into(),
                    reason: s("Please run /login"),
                },
                "account b is unhealthy: Please run /login; out of rotation until a session under it works or `ccl account enable b`",
                Warn,
            ),
            (
                AccountHealthy {
                    account: (s("b")).into(),
                    why: s("ccl-auto-11 got an answer"),
                },
                "account b is healthy again: ccl-auto-11 got an answer",
                Info,
            ),
            (
                AccountBack { account: (s("a")).into() },
                "account a: reset time passed, available again",
                Info,
            ),
            (
                AllExhausted {
                    until: s("2026-11-24T09:23:00Z"),
                    reason: s("usage limit of b"),
                },
                "all accounts exhausted until 2026-11-24T09:23:00Z; dispatch waits (usage limit of b)",
                Warn,
            ),
            (
                WorkResumes { account: (s("a")).into() },
                "account a is available again; work resumes",
                Info,
            ),
            (
                ContinueAfterReset {
                    session: (s("ccl-auto-11")).into(),
                    account: (s("a")).into(),
                },
                "ccl-auto-11: account a is usable again; sending the continue prompt",
                Info,
            ),
            (
                WaitsForReset { session: (s("ccl-auto-11")).into() },
                "ccl-auto-11: claude waits for the limit to reset and will continue by itself",
                Info,
            ),
            (
                NoAutoContinue {
                    session: (s("ccl-auto-11")).into(),
                    grace_s: 60,
                },
                "ccl-auto-11: claude did not continue by itself within 60s of the reset; sending the continue prompt",
                Info,
            ),
            (
                AutoContinued { session: (s("ccl-auto-11")).into() },
                "ccl-auto-11: claude continued the turn by itself after the reset; the task goes on",
                Info,
            ),
            (
                ContinueAfterWrapUp { session: (s("ccl-auto-11")).into() },
                "ccl-auto-11: its turn was wrapped up before the limit and no swap is coming; sending the continue prompt",
                Info,
            ),
            (
                SwapBegins {
                    from: (s("a")).into(),
                    to: (s("b")).into(),
                    reason: s("requested by the operator (req-1)"),
                    members: vec![(s("ccl-1-ops")).into(), (s("ccl-auto-11")).into()],
                    at_boundaries: false,
                },
                "swap from a to b begins: requested by the operator (req-1); sessions to move: ccl-1-ops, ccl-auto-11",
                Info,
            ),
            (
                SwapBegins {
                    from: (s("a")).into(),
                    to: (s("b")).into(),
                    reason: s("meter"),
                    members: vec![],
                    at_boundaries: true,
                },
                "swap from a to b begins at turn boundaries: meter; new work starts under b; sessions to move: none",
                Info,
            ),
            (
                MemberAtBoundary {
                    session: (s("ccl-auto-11")).into(),
                    to: (s("b")).into(),
                },
                "ccl-auto-11: at its turn boundary; moving it to b",
                Info,
            ),
            (
                DraftKept {
                    session: (s("ccl-1-ops")).into(),
                    snippet: s("half a thought"),
                },
                "ccl-1-ops: keeping its unsent draft across the swap: \"half a thought\"",
                Info,
            ),
            (
                NothingToStop { session: (s("ccl-1-ops")).into() },
                "ccl-1-ops: no claude process known for its conversation yet; nothing signalled",
                Info,
            ),
            (
                BoxCleared {
                    session: (s("ccl-auto-11")).into(),
                    snippet: s("typed"),
                },
                "ccl-auto-11: clearing claude's input box for the swap; it held \"typed\"",
                Warn,
            ),
            (
                ExitRetyped { session: (s("ccl-auto-11")).into() },
                "ccl-auto-11: claude is still idle after /exit; typing it again",
                Info,
            ),
            (
                StopTimedOut {
                    session: (s("ccl-auto-11")).into(),
                    timeout_s: 30,
                },
                "ccl-auto-11: claude did not stop within 30s; recreating the session",
                Warn,
            ),
            (
                MemberAbsent { session: (s("ccl-2-notes")).into() },
                "ccl-2-notes: absent after the swap; not relaunched",
                Warn,
            ),
            (
                TaskRestarted {
                    session: (s("ccl-auto-11")).into(),
                    account: (s("b")).into(),
                },
                "ccl-auto-11: its task was not submitted yet; starting it afresh under b",
                Info,
            ),
            (
                Resuming {
                    session: (s("ccl-1-ops")).into(),
                    conversation: (s("0b1c")).into(),
                    account: (s("b")).into(),
                    task: false,
                },
                "ccl-1-ops: resuming conversation 0b1c under b",
                Info,
            ),
            (
                Resuming {
                    session: (s("ccl-auto-11")).into(),
                    conversation: (s("bdd7")).into(),
                    account: (s("b")).into(),
                    task: true,
                },
                "ccl-auto-11: resuming task conversation bdd7 under b",
                Info,
            ),
            (
                LeftAtShell {
                    session: (s("ccl-1-ops")).into(),
                    conversation: Some((s("0b1c")).into()),
                },
                "ccl-1-ops: left at its shell after the swap: its command line holds text ccl did not type (resume it with: claude --resume 0b1c)",
                Warn,
            ),
            (
                LeftAtShell {
                    session: (s("ccl-2-notes")).into(),
                    conversation: None,
                },
                "ccl-2-notes: left at its shell after the swap: no conversation id is known (never started blind)",
                Warn,
            ),
            (
                Ready { session: (s("ccl-1-ops")).into() },
                "ccl-1-ops: claude is ready",
                Info,
            ),
            (
                DraftRestored {
                    session: (s("ccl-1-ops")).into(),
                    snippet: s("half"),
                },
                "ccl-1-ops: claude is ready; its unsent draft is back in the input box: \"half\"",
                Info,
            ),
            (
                DraftNotRestored {
                    session: (s("ccl-1-ops")).into(),
                    box_snippet: s("new"),
                    draft_snippet: s("old"),
                },
                "ccl-1-ops: claude is ready; its draft from before the swap is not put back, the box holds \"new\" (draft: \"old\")",
                Warn,
            ),
            (
                DraftLost {
                    session: (s("ccl-1-ops")).into(),
                    snippet: s("old"),
                },
                "ccl-1-ops: its unsent draft could not be put back after the swap: \"old\"",
                Warn,
            ),
            (
                Swapped {
                    from: (s("a")).into(),
                    to: (s("b")).into(),
                    took_s: 4,
                    reason: s("requested by the operator (req-1)"),
                },
                "swapped from a to b in 4s (requested by the operator (req-1))",
                Info,
            ),
            (
                SwapGivenUp {
                    from: (s("a")).into(),
                    to: (s("b")).into(),
                },
                "swap from a to b given up: b hit its limit before every session moved",
                Warn,
            ),
            (
                Dispatching {
                    session: (s("ccl-auto-11")).into(),
                    task: s("alpha/task-1.md"),
                    attempt: 1,
                    account: (s("a")).into(),
                },
                "ccl-auto-11: dispatching alpha/task-1.md under a",
                Info,
            ),
            (
                Dispatching {
                    session: (s("ccl-auto-11")).into(),
                    task: s("alpha/task-1.md"),
                    attempt: 2,
                    account: (s("a")).into(),
                },
                "ccl-auto-11: dispatching alpha/task-1.md (attempt 2) under a",
                Info,
            ),
            (
                ClaimLost {
                    session: (s("ccl-auto-11")).into(),
                    task: s("alpha/t.md"),
                },
                "ccl-auto-11: claim of alpha/t.md failed (taken elsewhere); session is free again",
                Info,
            ),
            (
                ClaimBlocked {
                    queue: (s("alpha")).into(),
                    task: s("alpha/a.md"),
                    cause: s("Invalid cross-device link (os error 18)"),
                    retry_s: 30,
                },
                "queue alpha: cannot claim alpha/a.md: Invalid cross-device link (os error 18); this is not another process taking it, so claims from this queue wait and are tried again every 30s (`ccl check` looks at the queue's directories)",
                Warn,
            ),
            (
                ClaimsWorkAgain { queue: (s("alpha")).into() },
                "queue alpha: claims from queue alpha work again",
                Info,
            ),
            (
                WorktreeMade {
                    session: (s("ccl-auto-11")).into(),
                    path: s("/src/p-wt/t"),
                    branch: s("ccl/t"),
                    task: s("alpha/t.md"),
                },
                "ccl-auto-11: worktree /src/p-wt/t on branch ccl/t for alpha/t.md",
                Info,
            ),
            (
                Submitted {
                    session: (s("ccl-auto-11")).into(),
                    continue_prompt: false,
                    hook: true,
                },
                "ccl-auto-11: task submitted (UserPromptSubmit)",
                Info,
            ),
            (
                Submitted {
                    session: (s("ccl-auto-11")).into(),
                    continue_prompt: true,
                    hook: false,
                },
                "ccl-auto-11: continue prompt submitted",
                Info,
            ),
            (
                TurnFinished { session: (s("ccl-auto-11")).into() },
                "ccl-auto-11: turn finished (Stop)",
                Info,
            ),
            (
                TaskFailed {
                    session: (s("ccl-auto-11")).into(),
                    task: s("alpha/t.md"),
                    reason: s("API error 500"),
                },
                "ccl-auto-11: alpha/t.md: API error 500",
                Warn,
            ),
            (
                TaskRequeued {
                    session: (s("ccl-auto-11")).into(),
                    task: s("alpha/t.md"),
                    reason: s("claude exited"),
                    attempt: 2,
                },
                "ccl-auto-11: alpha/t.md: claude exited; back to the inbox (attempt 2)",
                Warn,
            ),
            (
                DedicatedHadTask {
                    session: (s("ccl-1-ops")).into(),
                    task: s("alpha/h.md"),
                },
                "ccl-1-ops: a dedicated session was marked as working on alpha/h.md; marked idle, task back to the inbox",
                Warn,
            ),
            (
                TaskHeld {
                    task: s("alpha/t.md"),
                    sessions: vec![(s("ccl-auto-11")).into(), (s("ccl-auto-12")).into()],
                },
                "alpha/t.md: in running/ with no record of its session; held while ccl-auto-11, ccl-auto-12 may show it works on it",
                Info,
            ),
            (
                Adopted {
                    session: (s("ccl-auto-11")).into(),
                    task: s("alpha/t.md"),
                    in_box: true,
                },
                "ccl-auto-11: alpha/t.md: its body waits unsent in the input box (pasted before a restart); adopted, Enter follows",
                Info,
            ),
            (
                Adopted {
                    session: (s("ccl-auto-11")).into(),
                    task: s("alpha/t.md"),
                    in_box: false,
                },
                "ccl-auto-11: alpha/t.md: its Claude is working on it (its conversation began with the task); adopted, not requeued",
                Info,
            ),
            (
                TaskForgotten {
                    session: (s("ccl-auto-11")).into(),
                    task: s("alpha/t.md"),
                },
                "ccl-auto-11: its task alpha/t.md is no longer in running/ (recovered at start); forgotten",
                Warn,
            ),
            (
                LaunchExited {
                    session: (s("ccl-1-ops")).into(),
                    why: s("no conversation found"),
                },
                "ccl-1-ops: claude exited right after launch (no conversation found); left at its shell",
                Warn,
            ),
            (
                LaunchTimedOut {
                    session: (s("ccl-auto-11")).into(),
                    why: s("claude did not become ready within 60s: x"),
                },
                "ccl-auto-11: claude did not become ready within 60s: x; recreating the session",
                Warn,
            ),
            (
                NeedsAttention {
                    session: (s("ccl-auto-11")).into(),
                    reason: s("needs attention: claude's input box holds text ccl did not type"),
                },
                "ccl-auto-11: needs attention: claude's input box holds text ccl did not type",
                Warn,
            ),
            (
                AttentionCleared { session: (s("ccl-auto-11")).into() },
                "ccl-auto-11: no longer needs attention",
                Info,
            ),
        ]
    }

    #[test]
    fn every_event_displays_as_the_log_line_ccl_wrote_before_and_has_its_level() {
        for (event, line, level) in cases() {
            assert_eq!(event.to_string(), line, "{event:?}");
            assert_eq!(event.level(), level, "{event:?}");
            // The core decides no broken invariant: those are the shell's to log.
            assert_ne!(event.level(), Level::Error, "{event:?}");
        }
    }

    #[test]
    fn a_normal_swap_is_info_now_and_was_a_warning_in_version_1() {
        for (event, _, _) in cases() {
            let was_warn = matches!(
                event,
                Event::SwapBegins { .. }
                    | Event::Swapped { .. }
                    | Event::LimitDetected {
                        decision: QuotaDecision::Swap,
                        ..
                    }
            );
            if was_warn {
                assert_eq!(
                    (event.level(), event.v1_level()),
                    (Level::Info, Level::Warn),
                    "{event:?}"
                );
            } else {
                assert_eq!(event.v1_level(), event.level(), "{event:?}");
            }
        }
    }

    #[test]
    fn an_event_survives_the_trace_encoding() {
        for (event, _, _) in cases() {
            let action = crate::core::Action::Event(event.clone());
            let json = serde_json::to_string(&action).unwrap();
            assert!(json.starts_with("{\"action\":\"event\",\"event\":"), "{json}");
            let back: crate::core::Action = serde_json::from_str(&json).unwrap();
            assert_eq!(back, action, "{json}");
        }
    }
}
