//! Everything ccl knows about Claude Code's screen, as data. This module owns the table of
//! named patterns ([`PATTERNS`]) that recognise Claude's wording and layout in a plain-text
//! pane capture (`tmux capture-pane -p`), and the rules that turn one capture into an
//! [`Analysis`]: the screen state, a usage-limit hit with its reset instant, server errors
//! that veto such a hit, near-limit warnings, needs-attention screens, the input box
//! contents and the resume id `/exit` prints. It is pure: no clock, file, environment or
//! process is read here; `now` and the host's time zone come in as arguments. (Zone names
//! printed on screen, like `(Europe/London)`, are resolved through jiff's time zone
//! database, which is static data.)
//!
//! Wording changes between Claude Code versions, so every phrase, glyph and layout mark
//! lives in [`PATTERNS`]; the code below only asks "does this line play role R?".
//!
//! # Which lines count
//!
//! Only the bottom of the screen decides anything: the state comes from the last
//! [`STATE_REGION_LINES`] non-empty lines, and hits, server errors and warnings from the
//! last [`SIGNAL_REGION_LINES`]. Within those, a line is *quoted* (ignored for signals,
//! spinners and attention) when the model or the user wrote it rather than Claude Code:
//!
//! - a line of an assistant reply after its first line: a reply starts with `● ` in column
//!   0 and continues on indented lines until the next line in column 0;
//! - the output of a tool after its `⎿` line (indented lines under `  ⎿  …`);
//! - a line inside a ```` ``` ```` code block (a fence is closed by the next fence or by
//!   the next line Claude itself draws in column 0: a reply bullet, a rule, the prompt, a
//!   spinner or finished-turn line);
//! - a `> ` quote or a `❯ ` line (the user's own message or the input box) and the
//!   indented lines under it.
//!
//! The first line of a reply (`● …`) and a tool-result line (`⎿` indented at most
//! [`TOOL_RESULT_MAX_INDENT`]) are not quoted, so each limit pattern also says where the
//! real message stands: `You've hit your … limit` only as a `⎿` tool result or a line of
//! its own (never after a reply bullet, where it would be the model talking);
//! `Usage limit reached · continuing automatically` only after `●`; the `⚠ Usage limit
//! reached` footer only after `⚠`; the older `… limit reached ∙ resets …` forms at the
//! start of a line or right-aligned after a run of spaces (as in a footer); the
//! machine-shaped legacy forms (`…|1749924000`, `API Error: 429 {…rate_limit_error…}`)
//! also after a reply bullet, because old versions printed them as assistant messages
//! and no model writes them by accident.
//!
//! # Choosing among several signals
//!
//! Each eligible line gets at most one signal: the first pattern in table order whose role
//! is a limit, a server error or a warning. Server errors come first in the table, so a 500
//! whose text mentions a rate limit is a server error and never a hit. When several hits are
//! in the region, the one whose pattern comes first in the table wins (the `⎿ You've hit
//! your …` forms carry the kind and the zone, the `●`/`⚠` status lines repeat it less
//! precisely); among lines of the same pattern the latest wins. A hit with a server error
//! below it (newer) in the same region is reported with `vetoed` set; an older error above
//! the hit does not veto it (seen on the real 2.1.328: a 529, then the weekly limit).
//!
//! `You've hit your limit` (no kind named) is reported as [`LimitKind::FiveHour`]: it is
//! the wording for the rolling short-term window, and the `●`/`⚠` "Usage limit reached"
//! status lines, which name no window either, were seen with the 5-hour limit.
//!
//! # Reset times
//!
//! A printed time without a zone is in the `tz` argument; a time of day already past is
//! tomorrow's (computed on the civil calendar, so daylight-saving changes are honoured); a
//! date without a year is its next occurrence. "Past" allows [`RESET_PAST_GRACE`], because
//! Claude prints the reset rounded to the minute and a banner read in that minute must not
//! jump a day ahead. An unknown zone name gives no reset time at all.

use std::sync::OnceLock;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use regex::{Captures, Regex};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Non-empty lines at the bottom of a capture that decide the state. About one terminal
/// height: enough for the tallest modal (trust dialog, login screens) and the input box.
pub const STATE_REGION_LINES: usize = 24;

/// Non-empty lines at the bottom of a capture searched for usage-limit hits, server errors
/// and warnings. Older lines are history (or a conversation redrawn by `--resume`).
pub const SIGNAL_REGION_LINES: usize = 15;

/// Non-empty lines just above the input box that still belong to the live status area
/// (spinner, finished-turn line, the latest error message).
pub const LIVE_LINES_ABOVE_BOX: usize = 4;

/// Non-empty lines at the bottom searched for "esc to interrupt" and, when no input box is
/// drawn, for a spinner.
pub const BUSY_TAIL_LINES: usize = 8;

/// Raw lines read from the end of a capture; older scrollback can decide nothing and would
/// only cost time.
pub const CAPTURE_TAIL_LINES: usize = 500;

/// Most non-empty lines an input box may span between its two rules.
pub const INPUT_BOX_MAX_LINES: usize = 60;

/// Deepest indent of a `⎿` line that is a real tool result; deeper ones are text inside a
/// reply or nested tool output.
pub const TOOL_RESULT_MAX_INDENT: usize = 2;

/// How far in the past a printed reset time may be and still be taken as today's (or this
/// year's): Claude rounds reset times to the minute.
pub const RESET_PAST_GRACE: SignedDuration = SignedDuration::from_mins(2);

/// Years searched for the next occurrence of a printed date (Feb 29 may be four away).
const RESET_MAX_YEARS_AHEAD: i16 = 8;

/// What the screen shows, judged from its bottom part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScreenState {
    /// The input box with no turn running: text may be typed.
    Idle,
    /// A turn is running (spinner or "esc to interrupt").
    Busy,
    /// A modal menu holds the keyboard (e.g. the weekly-limit choice).
    Menu,
    /// A screen only a human should answer: trust dialog, login, onboarding, fatal errors.
    Attention,
    /// Claude is not running; a shell prompt is at the bottom.
    Shell,
    /// Nothing recognisable.
    Unknown,
}

/// Which usage limit a hit reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    FiveHour,
    Session,
    Weekly,
    ModelWeekly,
    /// Out of extra usage or usage credits, or a spend limit: the account cannot pay for
    /// more until its plan's window resets (no reset time is printed).
    ExtraUsage,
    Legacy,
}

/// Which server-side problem a line reports. None of these is a usage limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerErrorKind {
    /// A 5xx status other than 529.
    Server5xx,
    /// 529 or `overloaded_error`.
    Overloaded,
    /// An `API Error` line with no recognised status (connection errors, timeouts).
    ApiError,
    /// The API-key billing 429 ("Request rejected (429)"), which swapping does not cure.
    ApiKeyRateLimit,
    /// "Server is temporarily limiting requests (not your usage limit)": a server-side
    /// throttle that says itself it is not the account's limit.
    Throttle,
}

/// Which usage window a passive gauge reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GaugeWindow {
    /// The 5-hour (session) window.
    FiveHour,
    /// The weekly window of every model.
    SevenDay,
    /// The weekly window of one model ("Opus"): not one of the account's two meters.
    ModelWeekly,
}

/// The passive usage gauge ("You've used 97% of your 5-hour limit · resets 9:48pm"): a
/// meter reading, never a limit hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gauge {
    pub window: GaugeWindow,
    pub used_pct: u32,
    pub reset_at: Option<Timestamp>,
    pub pattern: String,
    pub line: String,
}

/// A line saying the account cannot work at all (its login was revoked or expired, its
/// organisation disabled): not spent, unhealthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unusable {
    pub pattern: String,
    pub line: String,
}

/// Claude Code's own waiting for a usage limit to reset (2.1.234+), as its latest line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoContinue {
    /// "continuing automatically at 11:48pm": Claude will resume the turn by itself.
    Waiting,
    /// "Usage limit available again · continuing now": the turn resumes.
    Continuing,
    /// "Usage limit has reset · Press enter to continue": it waits for Enter.
    PressEnter,
    /// "Automatic continue cancelled": nothing will happen by itself.
    Cancelled,
}

/// A usage-limit hit found in the bottom region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaHit {
    pub kind: LimitKind,
    pub reset_at: Option<Timestamp>,
    /// Name of the [`PATTERNS`] entry that matched.
    pub pattern: String,
    /// The matching line, trimmed.
    pub line: String,
}

/// A server error found in the bottom region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerError {
    pub kind: ServerErrorKind,
    pub pattern: String,
    pub line: String,
}

/// A near-limit warning found in the bottom region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub pattern: String,
    pub line: String,
}

/// Everything read from one pane capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub state: ScreenState,
    /// A usage-limit hit in the bottom region, not quoted by the model.
    pub quota: Option<QuotaHit>,
    /// A server error or API-key 429 in the bottom region.
    pub server_error: Option<ServerError>,
    /// "Approaching your 5-hour usage limit" and the like.
    pub warning: Option<Warning>,
    /// The passive usage gauge: a meter reading.
    pub gauge: Option<Gauge>,
    /// The account cannot work (login revoked or expired, organisation disabled).
    pub unusable: Option<Unusable>,
    /// Claude's own waiting for the limit to reset, by its latest line.
    pub auto_continue: Option<AutoContinue>,
    /// Claude wraps the turn up early because the limit is near ("Claude will wrap up the
    /// current step", or the injected "[Usage limit approaching. Checkpoint now: …]").
    pub wrap_up: Option<String>,
    /// A hit was seen but a server error in the same region vetoes it.
    pub vetoed: bool,
    /// First meaningful line of a first-run/login/trust screen.
    pub attention: Option<String>,
    /// Text in the input box (after "❯ "), if any.
    pub input: Option<String>,
    /// The input box holds "[Pasted text #N +M lines]".
    pub pasted_placeholder: bool,
    /// A finished-turn line ("✻ Sautéed for 6s") is the latest status line.
    pub turn_finished: bool,
    /// Lowercase UUID from "claude … --resume <uuid>" printed by /exit.
    pub resume_hint: Option<String>,
}

/// The part a pattern plays when a line matches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A usage-limit hit of this kind.
    Limit(LimitKind),
    /// A server-side error; vetoes a hit in the same region.
    ServerError(ServerErrorKind),
    /// A near-limit warning.
    Warning,
    /// The passive usage gauge; groups `pct` and `window`.
    Gauge,
    /// The account cannot work at all.
    Unusable,
    /// Claude's own waiting for a reset, and what it does when the reset comes.
    AutoContinue(AutoContinue),
    /// Claude wrapping its turn up before the limit.
    WrapUp,
    /// A screen that needs a human.
    Attention,
    /// A modal menu's question or key hint.
    MenuHint,
    /// A numbered menu option under the cursor (`❯ 1. …`).
    MenuOption,
    /// A horizontal rule bordering the input box.
    Rule,
    /// The input line; group `text` is what is typed.
    Prompt,
    /// A suggestion Claude draws in an empty input box (plain captures lose the dimming).
    PromptPlaceholder,
    /// Pasted text collapsed in the input box.
    Pasted,
    /// The mode/shortcut footer under the input box.
    Footer,
    /// "esc to interrupt": a turn is running.
    Interrupt,
    /// A spinner line: glyph, verb, ellipsis.
    Spinner,
    /// A finished-turn line: glyph, verb, "for 6s".
    TurnFinished,
    /// The first line of an assistant reply or tool call.
    ReplyStart,
    /// A tool-result line.
    ToolResult,
    /// A markdown code fence.
    Fence,
    /// A quote, the user's echoed message or the input line.
    Quote,
    /// A reset time; groups `unix` or `hour`, `minute`, `meridiem`, `month`, `day`, `zone`.
    Reset,
    /// The resume command `/exit` prints; group `id`.
    ResumeHint,
    /// The end of a shell prompt.
    ShellPrompt,
    /// Terminal escape sequences, removed before anything else is matched.
    Noise,
}

/// One named piece of screen knowledge.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    pub name: &'static str,
    pub role: Role,
    pub regex: &'static str,
}

const fn pat(name: &'static str, role: Role, regex: &'static str) -> Pattern {
    Pattern { name, role, regex }
}

use LimitKind as L;
use ServerErrorKind as S;

/// The one table of Claude Code's wording and layout. Order matters where roles share a
/// line: the first matching signal pattern classifies a line, and among hits the earlier
/// pattern is preferred (see the module doc).
pub static PATTERNS: &[Pattern] = &[
    // Terminal noise, in case a capture was taken with escapes (`capture-pane -e`).
    pat("ansi_escape", Role::Noise, r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07"),
    // An account that cannot work: before the server errors, whose `API Error` the
    // 401 line also carries.
    pat("oauth_revoked", Role::Unusable, r"(?i)OAuth token has been revoked"),
    pat("oauth_expired", Role::Unusable, r"(?i)OAuth token has expired"),
    pat(
        "session_expired_login",
        Role::Unusable,
        r"(?i)Session expired\.? Please run /login",
    ),
    pat(
        "org_disabled",
        Role::Unusable,
        r"(?i)Your organization has disabled Claude subscription access",
    ),
    pat("please_run_login", Role::Unusable, r"(?i)Please run /login\b"),
    pat(
        "authentication_failed",
        Role::Unusable,
        r"(?i)API Error:?\s*\(?401\b|\bauthentication_error\b",
    ),
    // Server errors first: their text may contain "rate limit" and must never be a hit.
    pat(
        "server_throttle",
        Role::ServerError(S::Throttle),
        r"(?i)temporarily limiting requests|\(not your usage limit\)",
    ),
    pat(
        "api_key_rate_limit",
        Role::ServerError(S::ApiKeyRateLimit),
        r"(?i)API Error:?\s*Request rejected \(429\)",
    ),
    pat(
        "overloaded_529",
        Role::ServerError(S::Overloaded),
        r"(?i)API Error:?\s*\(?529\b|\b529 Overloaded\b|overloaded_error",
    ),
    pat(
        "api_error_5xx",
        Role::ServerError(S::Server5xx),
        r"(?i)API Error:?\s*\(?5\d\d\b",
    ),
    pat(
        "retrying_5xx",
        Role::ServerError(S::Server5xx),
        r"(?i)^\s*(?:[⎿●✻✢✳✶✽·*]\s*)?5\d\d\b[^·∙]*[·∙]\s*Retrying in\b",
    ),
    // Usage-limit hits, most informative first.
    pat(
        "hit_five_hour",
        Role::Limit(L::FiveHour),
        r"(?i)^\s*(?:⎿\s*)?you['’]ve hit your 5-hour limit\b",
    ),
    pat(
        "hit_session",
        Role::Limit(L::Session),
        r"(?i)^\s*(?:⎿\s*)?you['’]ve hit your session limit\b",
    ),
    pat(
        "hit_weekly",
        Role::Limit(L::Weekly),
        r"(?i)^\s*(?:⎿\s*)?you['’]ve hit your weekly limit\b",
    ),
    pat(
        "hit_model_weekly",
        Role::Limit(L::ModelWeekly),
        r"(?i)^\s*(?:⎿\s*)?you['’]ve hit your (?:opus|sonnet|haiku)(?: [\w.]+)?(?: weekly)? limit\b",
    ),
    pat(
        "hit_limit",
        Role::Limit(L::FiveHour),
        r"(?i)^\s*(?:⎿\s*)?you['’]ve hit your limit\b",
    ),
    pat(
        "weekly_limit_reached",
        Role::Limit(L::Weekly),
        r"(?i)(?:^\s*(?:[⎿⚠]\s*)?|\s{3,})weekly limit reached\b",
    ),
    pat(
        "model_weekly_limit_reached",
        Role::Limit(L::ModelWeekly),
        r"(?i)(?:^\s*(?:[⎿⚠]\s*)?|\s{3,})(?:opus|sonnet|haiku)(?: [\w.]+)? weekly limit reached\b",
    ),
    pat(
        "session_limit_reached",
        Role::Limit(L::Session),
        r"(?i)(?:^\s*(?:[⎿⚠]\s*)?|\s{3,})session limit reached\b",
    ),
    pat(
        "five_hour_limit_reached",
        Role::Limit(L::FiveHour),
        r"(?i)(?:^\s*(?:[⎿⚠]\s*)?|\s{3,})5-hour limit reached\b",
    ),
    pat(
        "out_of_extra_usage",
        Role::Limit(L::ExtraUsage),
        r"(?i)^\s*(?:[⎿⚠]\s*)?you['’]re out of extra usage\b",
    ),
    pat(
        "seat_without_extra_usage",
        Role::Limit(L::ExtraUsage),
        r"(?i)^\s*(?:[⎿⚠]\s*)?your seat type doesn['’]t include extra usage\b",
    ),
    pat(
        "requires_usage_credits",
        Role::Limit(L::ExtraUsage),
        r"(?i)^\s*(?:[⎿⚠]\s*)?[\w.\- ]{1,40} requires usage credits\b",
    ),
    pat(
        "monthly_spend_limit",
        Role::Limit(L::ExtraUsage),
        r"(?i)^\s*(?:[⎿⚠]\s*)?you['’]ve hit your [\w’' ]{0,30}monthly spend limit\b",
    ),
    pat(
        "usage_limit_continuing",
        Role::Limit(L::FiveHour),
        r"(?i)^●\s*usage limit reached(?: again)?\s*[·∙•]\s*(?:continuing|set to continue) automatically\b",
    ),
    pat(
        "usage_limit_footer",
        Role::Limit(L::FiveHour),
        r"(?i)^\s*⚠\s*usage limit reached\b",
    ),
    pat(
        "legacy_unix_reset",
        Role::Limit(L::Legacy),
        r"(?i)^\s*(?:[⎿●⏺⚠]\s*)?claude ai usage limit reached\s*\|\s*\d{9,12}\b",
    ),
    pat(
        "legacy_reset_at",
        Role::Limit(L::Legacy),
        r"(?i)^\s*(?:[⎿⚠]\s*)?claude usage limit reached\b",
    ),
    pat(
        "legacy_api_429",
        Role::Limit(L::Legacy),
        r"(?i)^\s*(?:[⎿●⏺]\s*)?API Error:?\s*\(?429\b.*rate_limit_error",
    ),
    // After the limits, so the typed 429 above is a hit and not a generic error.
    pat(
        "api_error",
        Role::ServerError(S::ApiError),
        r"(?i)^\s*(?:[⎿●⏺]\s*)?API Error\b",
    ),
    // The wrap-up before the limit, before the plain warning whose words it contains.
    pat(
        "wrap_up_notice",
        Role::WrapUp,
        r"(?i)\bapproaching your [\w.-]+ usage limit\s*[—–-]+\s*claude will wrap up\b",
    ),
    pat(
        "wrap_up_checkpoint",
        Role::WrapUp,
        r"(?i)^\s*(?:[>❯]\s*)?\[usage limit approaching\. checkpoint now:",
    ),
    // Warnings.
    // Like hits, only where Claude itself prints a notice: a line of its own (a `⚠` status
    // line) or right-aligned after a run of spaces as in a footer; never after a reply
    // bullet or a tool result, where it would be the model's or a tool's words ("the
    // buffer is approaching its size limit").
    pat(
        "approaching_limit",
        Role::Warning,
        r"(?i)(?:^\s*(?:⚠\s*)?|\S\s{3,})approaching (?:your )?(?:[\w.-]+ ){0,3}limit\b",
    ),
    // The passive gauge: a meter reading (and a warning), never a hit. Claude draws it
    // right-aligned above the input box.
    pat(
        "used_percent_of_limit",
        Role::Gauge,
        r"(?i)(?:^\s*|\S\s{3,})you['’]ve used (?P<pct>\d{1,3})% of your (?P<window>5-hour|session|weekly|(?:opus|sonnet|haiku)(?: [\w.]+)? weekly) limit\b",
    ),
    // Claude's own waiting for the reset.
    pat(
        "auto_continue_now",
        Role::AutoContinue(AutoContinue::Continuing),
        r"(?i)usage limit available again\s*[·∙•]\s*continuing now",
    ),
    pat(
        "auto_continue_press_enter",
        Role::AutoContinue(AutoContinue::PressEnter),
        r"(?i)usage limit has reset\s*[·∙•]\s*press enter to continue",
    ),
    pat(
        "auto_continue_cancelled",
        Role::AutoContinue(AutoContinue::Cancelled),
        r"(?i)automatic continue cancelled",
    ),
    pat(
        "auto_continue_waiting",
        Role::AutoContinue(AutoContinue::Waiting),
        r"(?i)\bcontinuing automatically at\b|\bset to continue automatically\b",
    ),
    // Screens that need a human.
    pat(
        "trust_dialog",
        Role::Attention,
        r"(?i)Is this a project you created or one you trust",
    ),
    pat(
        "quick_safety_check",
        Role::Attention,
        r"(?i)^\s*│?\s*Quick safety check\b",
    ),
    pat("trust_folder_option", Role::Attention, r"(?i)Yes, I trust this folder"),
    pat(
        "trust_files_old",
        Role::Attention,
        r"(?i)Do you trust the files in this folder",
    ),
    pat("select_login_method", Role::Attention, r"(?i)Select login method"),
    pat("choose_text_style", Role::Attention, r"(?i)Choose the text style"),
    pat(
        "unable_to_connect",
        Role::Attention,
        r"(?i)^\s*(?:[│⎿●✗✘×!]\s*)?Unable to connect\b",
    ),
    pat("invalid_api_key", Role::Attention, r"(?i)\bInvalid API key\b"),
    pat(
        "root_refused",
        Role::Attention,
        r"(?i)cannot be used with root/sudo privileges",
    ),
    pat(
        "bypass_mode_warning",
        Role::Attention,
        r"(?i)running in Bypass Permissions mode",
    ),
    pat(
        "custom_api_key_prompt",
        Role::Attention,
        r"(?i)Do you want to use this API key\?",
    ),
    // Modal menus.
    pat(
        "menu_confirm_hint",
        Role::MenuHint,
        r"(?i)Enter to confirm\s*[·∙•]\s*Esc to (?:cancel|exit|go back)",
    ),
    pat(
        "menu_what_to_do",
        Role::MenuHint,
        r"(?i)^\s*│?\s*What do you want to do\?",
    ),
    pat("menu_option_cursor", Role::MenuOption, r"^\s*(?:│\s*)?❯\s*\d+\.\s"),
    // The input box: a prompt line between two rules, and the footer under it.
    pat("rule", Role::Rule, r"^\s*[╭╰]?─{3,}(?:[^─]{0,40}─{3,})?[╮╯]?\s*$"),
    pat("prompt", Role::Prompt, r"^\s*(?:❯|│\s*>)(?:\s+(?P<text>.*?))?[\s│]*$"),
    pat("placeholder_try", Role::PromptPlaceholder, r#"^Try "[^"]*"$"#),
    pat(
        "placeholder_once_fixed",
        Role::PromptPlaceholder,
        r"(?i)^Once fixed, resend your message$",
    ),
    pat(
        "placeholder_resend",
        Role::PromptPlaceholder,
        r"(?i)^Resend your message to try again$",
    ),
    pat("pasted_text", Role::Pasted, r"\[Pasted text #\d+(?: \+\d+ lines)?\]"),
    pat(
        "footer_mode",
        Role::Footer,
        r"(?i)⏵⏵|\(shift\+tab to cycle\)|\? for shortcuts|bypass permissions on|accept edits on|plan mode on",
    ),
    pat(
        "footer_context_left",
        Role::Footer,
        r"(?i)Context left until auto-compact:\s*\d+%",
    ),
    pat("interrupt", Role::Interrupt, r"(?i)\b(?:esc|ctrl\+c) to interrupt\b"),
    // Status lines above the input box.
    pat(
        "spinner",
        Role::Spinner,
        r"^\s?[·✢✳✶✻✽*∗]\s*\p{Lu}[\p{L}'’-]*(?:…|\.\.\.)",
    ),
    pat(
        "turn_finished",
        Role::TurnFinished,
        r"^\s?[·✢✳✶✻✽*∗]\s*\p{Lu}[\p{L}'’-]* for (?:\d+[hms]\s*)+",
    ),
    // Conversation structure, for telling Claude's lines from quoted ones.
    pat("reply_start", Role::ReplyStart, r"^[●⏺]\s"),
    pat("tool_result", Role::ToolResult, r"^\s*⎿"),
    pat("code_fence", Role::Fence, r"^\s*```"),
    pat("quote", Role::Quote, r"^\s*[>❯](?:\s|$)"),
    // Reset times.
    pat("reset_unix", Role::Reset, r"\|\s*(?P<unix>\d{9,12})\b"),
    pat(
        "reset_clock",
        Role::Reset,
        r"(?i)\b(?:resets?(?:\s+at)?|(?:continuing|continue) automatically at)\s+(?:(?P<month>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?:at\s+)?)?(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<meridiem>[ap]\.?m\b\.?)?(?:\s*\((?P<zone>[A-Za-z0-9_+/-]+)\))?",
    ),
    // Shell.
    pat(
        "resume_command",
        Role::ResumeHint,
        r"(?i)\bclaude\b.*--resume[=\s]+(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b",
    ),
    pat("shell_prompt", Role::ShellPrompt, r"[$#%>]$"),
];

fn compiled() -> &'static [Regex] {
    static COMPILED: OnceLock<Vec<Regex>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        PATTERNS
            .iter()
            .map(|p| Regex::new(p.regex).unwrap_or_else(|e| panic!("screen pattern {} does not compile: {e}", p.name)))
            .collect()
    })
}

/// The first pattern (in table order) whose role passes `want` and that matches `line`.
fn find<'t>(line: &'t str, want: impl Fn(Role) -> bool) -> Option<(&'static Pattern, Captures<'t>)> {
    PATTERNS
        .iter()
        .zip(compiled())
        .filter(|(p, _)| want(p.role))
        .find_map(|(p, re)| re.captures(line).map(|c| (p, c)))
}

fn is(line: &str, role: Role) -> bool {
    find(line, |r| r == role).is_some()
}

/// One non-empty line of the capture and whether Claude Code itself drew it.
struct Line {
    text: String,
    eligible: bool,
}

impl Line {
    fn is(&self, role: Role) -> bool {
        is(&self.text, role)
    }

    /// Does this line play `role` and was it drawn by Claude, not quoted?
    fn is_live(&self, role: Role) -> bool {
        self.eligible && self.is(role)
    }
}

/// Splits a capture into non-empty lines and marks quoted ones (see the module doc).
fn read_lines(capture: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut quoted_block = false;
    let mut in_fence = false;
    let raw_lines: Vec<&str> = capture.lines().collect();
    for raw in &raw_lines[raw_lines.len().saturating_sub(CAPTURE_TAIL_LINES)..] {
        let text = strip_noise(raw);
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        let indent = text.chars().take_while(|c| c.is_whitespace()).count();
        let fence = is(text, Role::Fence);
        // Lines Claude draws in column 0 cannot be inside a model's code block, so they close
        // a fence whose closing line scrolled away or never came.
        if !fence
            && indent == 0
            && [
                Role::ReplyStart,
                Role::Rule,
                Role::Quote,
                Role::Spinner,
                Role::TurnFinished,
            ]
            .into_iter()
            .any(|r| is(text, r))
        {
            in_fence = false;
        }
        let eligible = if fence {
            in_fence = !in_fence;
            false
        } else if in_fence {
            false
        } else if is(text, Role::Quote) {
            quoted_block = true;
            false
        } else if is(text, Role::ReplyStart) || (is(text, Role::ToolResult) && indent <= TOOL_RESULT_MAX_INDENT) {
            quoted_block = true;
            true
        } else if indent == 0 {
            quoted_block = false;
            true
        } else {
            !quoted_block
        };
        lines.push(Line {
            text: text.to_string(),
            eligible,
        });
    }
    lines
}

fn strip_noise(raw: &str) -> String {
    let mut text = raw.replace('\r', "");
    for (p, re) in PATTERNS.iter().zip(compiled()) {
        if p.role == Role::Noise {
            text = re.replace_all(&text, "").into_owned();
        }
    }
    text
}

/// Where the input box stands: indices of its top rule, prompt line and bottom rule.
struct InputBox {
    top: usize,
    prompt: usize,
    bottom: usize,
}

/// The last input box whose bottom rule lies in the state region.
fn find_input_box(lines: &[Line], region_start: usize) -> Option<InputBox> {
    (1..lines.len()).rev().find_map(|prompt| {
        let line = &lines[prompt];
        if !line.is(Role::Prompt) || line.is(Role::MenuOption) || !lines[prompt - 1].is(Role::Rule) {
            return None;
        }
        let last = (prompt + INPUT_BOX_MAX_LINES).min(lines.len() - 1);
        let bottom = (prompt + 1..=last).find(|&i| lines[i].is(Role::Rule))?;
        (bottom >= region_start).then_some(InputBox {
            top: prompt - 1,
            prompt,
            bottom,
        })
    })
}

/// The text typed in the input box, with known placeholder suggestions dropped.
fn input_text(lines: &[Line], input_box: &InputBox) -> Option<String> {
    let (_, caps) = find(&lines[input_box.prompt].text, |r| r == Role::Prompt)?;
    let mut parts: Vec<String> = Vec::new();
    if let Some(first) = caps.name("text") {
        parts.push(first.as_str().trim().to_string());
    }
    for line in &lines[input_box.prompt + 1..input_box.bottom] {
        parts.push(line.text.trim().trim_matches('│').trim().to_string());
    }
    let text = parts.join("\n").trim().to_string();
    if text.is_empty() || is(&text, Role::PromptPlaceholder) {
        return None;
    }
    Some(text)
}

/// What the status area right above the input box (or the screen bottom) says.
#[derive(PartialEq)]
enum Status {
    Spinning,
    Finished,
    Nothing,
}

/// Scans upward from `end` (exclusive) over at most `n_lines` lines for the latest spinner
/// or finished-turn line, stopping at the start of the latest message (tips such as
/// `  ⎿  Tip: …` may stand under a spinner, so tool-result lines do not stop the scan).
fn latest_status(lines: &[Line], end: usize, n_lines: usize) -> Status {
    for line in lines[end.saturating_sub(n_lines)..end].iter().rev() {
        if line.is_live(Role::Spinner) {
            return Status::Spinning;
        }
        if line.is_live(Role::TurnFinished) {
            return Status::Finished;
        }
        if line.is(Role::ReplyStart) || line.is(Role::Quote) {
            return Status::Nothing;
        }
    }
    Status::Nothing
}

/// A line as reported to the user: without indentation, box borders or a leading bullet.
fn trimmed(text: &str) -> String {
    text.trim_start_matches(|c: char| c.is_whitespace() || "│⎿●⏺".contains(c))
        .trim_end_matches(|c: char| c.is_whitespace() || c == '│')
        .to_string()
}

/// Analyse one pane capture. `now` and `tz` (the host's zone, passed in) resolve reset times.
pub fn analyze(capture: &str, now: Timestamp, tz: &TimeZone) -> Analysis {
    analyze_with(capture, now, tz, &Extra::default())
}

/// [`analyze`] with the operator's extra wordings.
pub fn analyze_with(capture: &str, now: Timestamp, tz: &TimeZone, extra: &Extra) -> Analysis {
    let lines = read_lines(capture);
    let n = lines.len();
    let state_start = n.saturating_sub(STATE_REGION_LINES);
    let input_box = find_input_box(&lines, state_start);
    // Claude's own screen always ends in its footer, a modal or a spinner, so a shell prompt
    // on the last line means Claude is not running, whatever it left above.
    let shell = lines.last().is_some_and(|l| {
        l.is(Role::ShellPrompt)
            && ![Role::Footer, Role::Interrupt, Role::Rule, Role::MenuHint, Role::Spinner]
                .into_iter()
                .any(|r| l.is(r))
    });
    // The live zone is where a modal, an error needing a human or a spinner can stand now:
    // the few lines a refusing Claude printed before the shell prompt came back, the lines
    // from just above the input box down, or the whole state region when no box is drawn.
    let live_start = match (&input_box, shell) {
        (_, true) => n.saturating_sub(1 + LIVE_LINES_ABOVE_BOX),
        (Some(b), false) => b.top.saturating_sub(LIVE_LINES_ABOVE_BOX).max(state_start),
        (None, false) => state_start,
    };

    let attention = lines[live_start..]
        .iter()
        .find(|l| l.is_live(Role::Attention))
        .map(|l| trimmed(&l.text));
    let menu_start = input_box.as_ref().map_or(state_start, |b| b.top + 1);
    let menu = lines[menu_start..]
        .iter()
        .any(|l| l.is(Role::MenuHint) || l.is(Role::MenuOption));
    let status = match &input_box {
        Some(b) => latest_status(&lines, b.top, LIVE_LINES_ABOVE_BOX),
        None => latest_status(&lines, n, BUSY_TAIL_LINES),
    };
    let interrupt = lines[n.saturating_sub(BUSY_TAIL_LINES)..]
        .iter()
        .any(|l| l.is_live(Role::Interrupt));
    let busy = interrupt || status == Status::Spinning;

    // A needs-attention message wins even over the shell: Claude refusing to start (as
    // root, without login) prints it and exits, and relaunching would only repeat it.
    let state = if attention.is_some() {
        ScreenState::Attention
    } else if shell {
        ScreenState::Shell
    } else if menu {
        ScreenState::Menu
    } else if busy {
        ScreenState::Busy
    } else if input_box.is_some() {
        ScreenState::Idle
    } else {
        ScreenState::Unknown
    };

    let signal_start = n.saturating_sub(SIGNAL_REGION_LINES);
    let Signals {
        quota,
        server_error,
        warning,
        vetoed,
        gauge,
        unusable,
    } = scan_signals(&lines[signal_start..], now, tz, extra);
    let auto_continue = lines[signal_start..].iter().rev().filter(|l| l.eligible).find_map(|l| {
        match find(&l.text, |r| matches!(r, Role::AutoContinue(_))) {
            Some((
                Pattern {
                    role: Role::AutoContinue(k),
                    ..
                },
                _,
            )) => Some(*k),
            _ => None,
        }
    });
    // The injected checkpoint request stands as a user message (quoted), so the wrap-up
    // is looked for in every line of the region but the input box, where a draft is.
    let in_box = |i: usize| input_box.as_ref().is_some_and(|b| (b.prompt..=b.bottom).contains(&i));
    let wrap_up = (signal_start..n)
        .rev()
        .filter(|&i| !in_box(i))
        .find(|&i| lines[i].is(Role::WrapUp))
        .map(|i| {
            trimmed(&lines[i].text)
                .trim_start_matches(['❯', '>', ' ', '\u{a0}'])
                .to_string()
        });

    let input = match (&input_box, state) {
        (Some(b), ScreenState::Idle | ScreenState::Busy) => input_text(&lines, b),
        _ => None,
    };
    let pasted_placeholder = input.as_deref().is_some_and(|t| is(t, Role::Pasted));
    let resume_hint = lines.iter().rev().filter(|l| l.eligible).find_map(|l| {
        let (_, caps) = find(&l.text, |r| r == Role::ResumeHint)?;
        let id = caps.name("id")?.as_str().to_ascii_lowercase();
        is_uuid(&id).then_some(id)
    });

    Analysis {
        state,
        quota,
        server_error,
        warning,
        gauge,
        unusable,
        auto_continue,
        wrap_up,
        vetoed,
        attention,
        input,
        pasted_placeholder,
        turn_finished: !busy && status == Status::Finished,
        resume_hint,
    }
}

/// Classifies every eligible line of `region` and picks the reported hit, error and warning.
/// The region's signals, and whether the hit is vetoed: a server error *below* the
/// latest limit line (newer than it) vetoes it; an older error above it does not, since
/// an earlier failed turn says nothing about the limit that followed.
fn scan_signals(region: &[Line], now: Timestamp, tz: &TimeZone, extra: &Extra) -> Signals {
    let is_signal = |r: Role| {
        matches!(
            r,
            Role::Limit(_) | Role::ServerError(_) | Role::Warning | Role::Gauge | Role::Unusable | Role::WrapUp
        )
    };
    // (rank, pattern name, kind, line): earlier table entries win, extras rank last.
    let mut hit: Option<(usize, String, LimitKind, &Line)> = None;
    let mut server_error = None;
    let mut warning = None;
    let mut gauge = None;
    let mut unusable = None;
    let mut last_limit_at = None;
    let mut last_error_at = None;
    for (at, line) in region.iter().enumerate().filter(|(_, l)| l.eligible) {
        let (name, role, rank) = match find(&line.text, is_signal) {
            Some((pattern, caps)) if pattern.role == Role::Gauge => {
                gauge = gauge_of(pattern.name, &caps, &line.text, now, tz).or(gauge);
                // Claude shows the gauge only once a warning threshold is passed, so it is
                // also a warning (`on_warning`), never a hit.
                warning = Some(Warning {
                    pattern: pattern.name.to_string(),
                    line: line.text.trim().to_string(),
                });
                continue;
            }
            Some((pattern, _)) => {
                let rank = PATTERNS
                    .iter()
                    .position(|p| std::ptr::eq(p, pattern))
                    .unwrap_or(usize::MAX);
                (pattern.name.to_string(), pattern.role, rank)
            }
            None => match extra.find(&line.text) {
                Some((name, role, i)) => (name, role, PATTERNS.len() + i),
                None => continue,
            },
        };
        match role {
            Role::Limit(kind) => {
                last_limit_at = Some(at);
                // `<=` lets a later line of the same pattern win.
                if hit.as_ref().is_none_or(|(best, ..)| rank <= *best) {
                    hit = Some((rank, name, kind, line));
                }
            }
            Role::ServerError(kind) => {
                last_error_at = Some(at);
                server_error = Some(ServerError {
                    kind,
                    pattern: name,
                    line: line.text.trim().to_string(),
                });
            }
            Role::Unusable => {
                unusable = Some(Unusable {
                    pattern: name,
                    line: trimmed(&line.text),
                });
            }
            Role::Warning => {
                warning = Some(Warning {
                    pattern: name,
                    line: line.text.trim().to_string(),
                });
            }
            // The wrap-up is read apart (it may stand in a quoted line).
            _ => {}
        }
    }
    let quota = hit.map(|(_, name, kind, line)| QuotaHit {
        kind,
        reset_at: parse_reset(&line.text, now, tz),
        pattern: name,
        line: line.text.trim().to_string(),
    });
    let vetoed = quota.is_some() && matches!((last_limit_at, last_error_at), (Some(l), Some(e)) if e > l);
    Signals {
        quota,
        server_error,
        warning,
        vetoed,
        gauge,
        unusable,
    }
}

/// What [`scan_signals`] found in the signal region.
struct Signals {
    quota: Option<QuotaHit>,
    server_error: Option<ServerError>,
    warning: Option<Warning>,
    vetoed: bool,
    gauge: Option<Gauge>,
    unusable: Option<Unusable>,
}

/// The gauge a matching line reads: its window, percent and reset instant.
fn gauge_of(pattern: &str, caps: &Captures<'_>, line: &str, now: Timestamp, tz: &TimeZone) -> Option<Gauge> {
    let used_pct: u32 = caps.name("pct")?.as_str().parse().ok()?;
    let window = caps.name("window")?.as_str().to_ascii_lowercase();
    let window = match window.as_str() {
        "5-hour" | "session" => GaugeWindow::FiveHour,
        "weekly" => GaugeWindow::SevenDay,
        _ => GaugeWindow::ModelWeekly,
    };
    Some(Gauge {
        window,
        used_pct: used_pct.min(100),
        reset_at: parse_reset(line, now, tz),
        pattern: pattern.to_string(),
        line: trimmed(line),
    })
}

/// Wordings added by the operator (`[screen]` in `ccl.toml`) for a Claude Code version
/// newer than this table: tried on each eligible line of the signal region after every
/// built-in pattern failed. Extra limit hits are of kind `legacy` (their reset time is
/// still parsed from the line), extra server errors of kind `api_error`.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    patterns: Vec<(String, Role, Regex)>,
}

impl Extra {
    /// Compiles the configured regexes; every one that does not compile is reported.
    pub fn compile(limit: &[String], server_error: &[String], warning: &[String]) -> Result<Extra, Vec<String>> {
        let mut patterns = Vec::new();
        let mut problems = Vec::new();
        let groups: [(&str, Role, &[String]); 3] = [
            ("extra_limit", Role::Limit(LimitKind::Legacy), limit),
            (
                "extra_server_error",
                Role::ServerError(ServerErrorKind::ApiError),
                server_error,
            ),
            ("extra_warning", Role::Warning, warning),
        ];
        for (key, role, list) in groups {
            for (i, text) in list.iter().enumerate() {
                match Regex::new(text) {
                    Ok(re) => patterns.push((format!("{key}_{}", i + 1), role, re)),
                    Err(e) => problems.push(format!("screen.{key}[{i}] is not a valid regex: {e}")),
                }
            }
        }
        if problems.is_empty() {
            Ok(Extra { patterns })
        } else {
            Err(problems)
        }
    }

    fn find(&self, line: &str) -> Option<(String, Role, usize)> {
        self.patterns
            .iter()
            .enumerate()
            .find(|(_, (_, _, re))| re.is_match(line))
            .map(|(i, (name, role, _))| (name.clone(), *role, i))
    }
}

/// Parse the reset part of a limit line into an absolute instant (None if unparseable).
/// The zone named `name` from jiff's bundled database only. `TimeZone::get` would
/// consult `$TZDIR` and `/usr/share/zoneinfo` first, which makes a decision (and its
/// replay) depend on the host's tzdata.
pub fn bundled_zone(name: &str) -> Option<TimeZone> {
    static DB: OnceLock<jiff::tz::TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(jiff::tz::TimeZoneDatabase::bundled).get(name).ok()
}

pub fn parse_reset(line: &str, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let (_, caps) = find(line, |r| r == Role::Reset)?;
    if let Some(unix) = caps.name("unix") {
        return Timestamp::from_second(unix.as_str().parse().ok()?).ok();
    }
    let hour: i8 = caps.name("hour")?.as_str().parse().ok()?;
    let minute: Option<i8> = match caps.name("minute") {
        Some(m) => Some(m.as_str().parse().ok()?),
        None => None,
    };
    let hour = match caps.name("meridiem") {
        Some(m) => {
            if !(1..=12).contains(&hour) {
                return None;
            }
            let pm = m.as_str().to_ascii_lowercase().starts_with('p');
            hour % 12 + if pm { 12 } else { 0 }
        }
        // A bare "resets 5" could be anything; a 24-hour clock needs its minutes.
        None if minute.is_some() => hour,
        None => return None,
    };
    let time = Time::new(hour, minute.unwrap_or(0), 0, 0).ok()?;
    let zone = match caps.name("zone") {
        Some(name) => bundled_zone(name.as_str())?,
        None => tz.clone(),
    };
    let earliest = now.checked_sub(RESET_PAST_GRACE).ok()?;
    let today = now.to_zoned(zone.clone()).date();
    let at =
        |date: Date| -> Option<Timestamp> { Some(date.to_datetime(time).to_zoned(zone.clone()).ok()?.timestamp()) };
    match (caps.name("month"), caps.name("day")) {
        (Some(month), Some(day)) => {
            let month = month_number(month.as_str())?;
            let day: i8 = day.as_str().parse().ok()?;
            (today.year()..=today.year().checked_add(RESET_MAX_YEARS_AHEAD)?)
                .filter_map(|year| Date::new(year, month, day).ok())
                .filter_map(at)
                .find(|&instant| instant >= earliest)
        }
        _ => [Some(today), today.tomorrow().ok()]
            .into_iter()
            .flatten()
            .filter_map(at)
            .find(|&instant| instant >= earliest),
    }
}

fn month_number(name: &str) -> Option<i8> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let prefix = name.get(..3)?.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| *m == prefix)
        .and_then(|i| i8::try_from(i + 1).ok())
}

/// The JSON `ccl classify` prints. A vetoed hit still shows under "quota", with "hit": false.
/// `gauge`, `account_unusable`, `auto_continue` and `wrap_up` appear only when found.
pub fn classify_json(a: &Analysis) -> serde_json::Value {
    let mut v = json!({
        "state": a.state,
        "quota": a.quota.as_ref().map(|q| json!({
            "hit": !a.vetoed,
            "kind": q.kind,
            "reset_at": q.reset_at.map(|t| t.to_string()),
            "pattern": q.pattern,
            "line": q.line,
        })),
        "server_error": a.server_error,
        "warning": a.warning,
        "vetoed": a.vetoed,
        "attention": a.attention,
        "input": a.input,
        "pasted_placeholder": a.pasted_placeholder,
        "turn_finished": a.turn_finished,
        "resume_hint": a.resume_hint,
    });
    let extra = [
        (
            "gauge",
            a.gauge.as_ref().map(|g| {
                json!({
                    "window": g.window,
                    "used_pct": g.used_pct,
                    "reset_at": g.reset_at.map(|t| t.to_string()),
                    "pattern": g.pattern,
                    "line": g.line,
                })
            }),
        ),
        ("account_unusable", a.unusable.as_ref().map(|u| json!(u))),
        ("auto_continue", a.auto_continue.map(|k| json!(k))),
        ("wrap_up", a.wrap_up.as_ref().map(|w| json!(w))),
    ];
    for (key, value) in extra {
        if let Some(value) = value {
            v[key] = value;
        }
    }
    v
}

/// Characters a box must show of a longer prompt before its beginning alone counts as
/// that prompt (a box cut off by the screen): a few typed words are never taken for it.
pub const MIN_PASTE_PREFIX_CHARS: usize = 80;

/// Whether Claude's input box text `input` (as [`Analysis::input`] reads it) is `body`
/// pasted and not sent: the text itself (lines as the box wraps and trims them), its
/// first `MIN_PASTE_PREFIX_CHARS` or more characters where the box is cut off, or the
/// collapsed `[Pasted text #N +M lines]` with as many line breaks as the body has.
pub fn box_holds_paste(input: &str, body: &str) -> bool {
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let (shown, whole) = (words(input), words(body));
    if shown.is_empty() || whole.is_empty() {
        return false;
    }
    if shown == whole || (shown.chars().count() >= MIN_PASTE_PREFIX_CHARS && whole.starts_with(&shown)) {
        return true;
    }
    static PLACEHOLDER: OnceLock<Regex> = OnceLock::new();
    let re = PLACEHOLDER.get_or_init(|| {
        Regex::new(r"^\[Pasted text #\d+(?: \+(?<breaks>\d+) lines)?\]$").expect("placeholder pattern compiles")
    });
    let Some(caps) = re.captures(input.trim()) else {
        return false;
    };
    let caps = caps.name("breaks").map(|m| m.as_str());
    // Claude counts the line breaks of the text pasted; a body's last newline may or may
    // not have been part of what it counted.
    let breaks = |t: &str| t.matches('\n').count();
    let counts = [breaks(body), breaks(body.trim_end())];
    match caps.and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => counts.contains(&n),
        None => counts.contains(&0),
    }
}

/// Is this a valid lowercase UUID (8-4-4-4-12 hex)? Checked before an id goes on a command line.
pub fn is_uuid(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn zone(name: &str) -> TimeZone {
        bundled_zone(name).unwrap()
    }

    /// The corpus's fixed "now".
    const NOW: &str = "2026-11-24T06:00:00Z";

    #[test]
    fn extra_wordings_are_signals_only_where_the_table_has_none() {
        let screen = "● Working on it.\n  ⎿  Plan quota used up · resets 9:23am (UTC)\n  ⎿  Nearly out of plan quota\n";
        let now = ts(NOW);
        let plain = analyze(screen, now, &TimeZone::UTC);
        assert!(
            plain.quota.is_none() && plain.warning.is_none(),
            "unknown wordings are no signal"
        );
        let extra = Extra::compile(
            &["Plan quota used up".into()],
            &[],
            &["Nearly out of plan quota".into()],
        )
        .unwrap();
        let a = analyze_with(screen, now, &TimeZone::UTC, &extra);
        let hit = a.quota.expect("the extra limit wording is a hit");
        assert_eq!((hit.kind, hit.pattern.as_str()), (LimitKind::Legacy, "extra_limit_1"));
        assert_eq!(hit.reset_at, Some(ts("2026-11-24T09:23:00Z")));
        assert_eq!(a.warning.map(|w| w.pattern), Some("extra_warning_1".to_string()));
        // A wording the table knows keeps its own name even when an extra also matches.
        let known = "  ⎿  You've hit your 5-hour limit · resets 9:23am (UTC)\n";
        let extra = Extra::compile(&["hit your".into()], &[], &[]).unwrap();
        assert_eq!(
            analyze_with(known, now, &TimeZone::UTC, &extra).quota.unwrap().kind,
            LimitKind::FiveHour
        );
        assert!(Extra::compile(&["(".into()], &[], &[]).is_err());
    }

    fn reset(line: &str, now: &str, tz: &str) -> Option<String> {
        parse_reset(line, ts(now), &zone(tz)).map(|t| t.to_string())
    }

    #[test]
    fn every_pattern_compiles_and_names_are_unique() {
        assert_eq!(compiled().len(), PATTERNS.len());
        let mut names: Vec<_> = PATTERNS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PATTERNS.len(), "duplicate pattern name");
    }

    #[test]
    fn reset_wordings_resolve_to_utc_instants() {
        let cases = [
            (
                "⎿  You've hit your 5-hour limit · resets 9:23am (UTC)",
                "2026-11-24T09:23:00Z",
            ),
            (
                "● Usage limit reached · continuing automatically at 9:23am · esc to cancel",
                "2026-11-24T09:23:00Z",
            ),
            ("⚠ Usage limit reached · limit resets 9:23am", "2026-11-24T09:23:00Z"),
            (
                "You've hit your limit · resets 8am (Europe/London)",
                "2026-11-24T08:00:00Z",
            ),
            (
                "⎿  You've hit your weekly limit · resets Nov 27, 6:26am (UTC)",
                "2026-11-27T06:26:00Z",
            ),
            (
                "You've hit your weekly limit · resets Sep 15 at 7pm",
                "2027-09-15T19:00:00Z",
            ),
            (
                "Claude usage limit reached. Your limit will reset at 1pm (Etc/GMT+5).",
                "2026-11-24T18:00:00Z",
            ),
            ("Claude AI usage limit reached|1749924000", "2025-06-14T18:00:00Z"),
            ("5-hour limit reached ∙ resets 5am", "2026-11-25T05:00:00Z"),
            ("Session limit reached ∙ resets 8pm", "2026-11-24T20:00:00Z"),
            ("Opus weekly limit reached ∙ resets Oct 31, 9am", "2027-10-31T09:00:00Z"),
            (
                "Weekly limit reached · resets Dec 2, 7pm (Europe/Moscow)",
                "2026-12-02T16:00:00Z",
            ),
            (
                "You've hit your session limit · resets 12:50am (America/Los_Angeles)",
                "2026-11-24T08:50:00Z",
            ),
            ("You've hit your session limit · resets 12pm", "2026-11-24T12:00:00Z"),
            ("limit resets 21:30", "2026-11-24T21:30:00Z"),
        ];
        for (line, want) in cases {
            assert_eq!(reset(line, NOW, "UTC").as_deref(), Some(want), "{line}");
        }
    }

    #[test]
    fn reset_without_zone_uses_the_host_zone() {
        // 06:00Z is 01:00 in New York (EST, UTC-5): 9:23am there is 14:23Z the same day.
        assert_eq!(
            reset("⚠ Usage limit reached · limit resets 9:23am", NOW, "America/New_York").as_deref(),
            Some("2026-11-24T14:23:00Z")
        );
    }

    #[test]
    fn reset_time_already_past_is_tomorrow_but_a_minute_late_is_not() {
        assert_eq!(
            reset("resets 5:30am", NOW, "UTC").as_deref(),
            Some("2026-11-25T05:30:00Z")
        );
        // Claude rounds to the minute: a banner read a minute after "5:59am" means now.
        assert_eq!(
            reset("resets 5:59am", NOW, "UTC").as_deref(),
            Some("2026-11-24T05:59:00Z")
        );
    }

    #[test]
    fn date_without_year_is_its_next_occurrence() {
        assert_eq!(
            reset("resets Nov 24, 7am (UTC)", NOW, "UTC").as_deref(),
            Some("2026-11-24T07:00:00Z")
        );
        assert_eq!(
            reset("resets Nov 23, 7am (UTC)", NOW, "UTC").as_deref(),
            Some("2027-11-23T07:00:00Z")
        );
        assert_eq!(
            reset("resets Jan 2, 7am (UTC)", NOW, "UTC").as_deref(),
            Some("2027-01-02T07:00:00Z")
        );
        assert_eq!(
            reset("resets Feb 29 at 7am (UTC)", NOW, "UTC").as_deref(),
            Some("2028-02-29T07:00:00Z")
        );
    }

    #[test]
    fn reset_across_the_autumn_change_in_los_angeles() {
        // DST ends 2026-11-01 02:00 PDT. 2026-11-01T06:00Z is Oct 31, 23:00 PDT.
        let now = "2026-11-01T06:00:00Z";
        // 10pm today (PDT) has passed; tomorrow's 10pm is PST (UTC-8), not 24 h later.
        assert_eq!(
            reset("resets 10pm", now, "America/Los_Angeles").as_deref(),
            Some("2026-11-02T06:00:00Z")
        );
        // 9am on Nov 1 is already PST.
        assert_eq!(
            reset("resets Nov 1, 9am (America/Los_Angeles)", now, "UTC").as_deref(),
            Some("2026-11-01T17:00:00Z")
        );
        // 1:30am happens twice; the earlier one (PDT) is taken.
        assert_eq!(
            reset("resets Nov 1, 1:30am (America/Los_Angeles)", now, "UTC").as_deref(),
            Some("2026-11-01T08:30:00Z")
        );
    }

    #[test]
    fn reset_across_the_spring_change_in_london() {
        // DST starts 2026-03-29 01:00 GMT -> 02:00 BST.
        let now = "2026-03-28T12:00:00Z";
        assert_eq!(
            reset("resets 9am (Europe/London)", now, "UTC").as_deref(),
            Some("2026-03-29T08:00:00Z")
        );
        assert_eq!(
            reset("resets 9am", now, "Europe/London").as_deref(),
            Some("2026-03-29T08:00:00Z")
        );
        // 1:30am does not exist that night; it is read as 2:30 BST, the same instant as 1:30 GMT.
        assert_eq!(
            reset("resets Mar 29, 1:30am (Europe/London)", now, "UTC").as_deref(),
            Some("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn unparseable_resets_give_none() {
        assert_eq!(reset("resets 8am (Mars/Olympus_Mons)", NOW, "UTC"), None);
        assert_eq!(reset("resets 13pm", NOW, "UTC"), None);
        assert_eq!(reset("resets 5", NOW, "UTC"), None);
        assert_eq!(reset("resets Foo 3, 7pm", NOW, "UTC"), None);
        assert_eq!(reset("You've hit your 5-hour limit", NOW, "UTC"), None);
    }

    #[test]
    fn uuids_must_be_lowercase_8_4_4_4_12_hex() {
        assert!(is_uuid("3f0c2a9e-8b1d-4c57-9e2a-6d4b7c1f0a52"));
        assert!(!is_uuid("3F0C2A9E-8B1D-4C57-9E2A-6D4B7C1F0A52"));
        assert!(!is_uuid("3f0c2a9e-8b1d-4c57-9e2a-6d4b7c1f0a5"));
        assert!(!is_uuid("3f0c2a9e-8b1d-4c57-9e2a-6d4b7c1f0a52; rm -rf ~"));
        assert!(!is_uuid("3f0c2a9e08b1d-4c57-9e2a-6d4b7c1f0a52"));
        assert!(!is_uuid("3f0c2a9g-8b1d-4c57-9e2a-6d4b7c1f0a52"));
    }

    #[test]
    fn a_box_holds_a_paste_only_when_it_shows_that_body() {
        let long = "Refactor the chunker so that every chunk keeps its byte offsets, then add tests for the boundaries\nand run them";
        let thirty: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        // The text itself, as the box wraps and trims it.
        assert!(box_holds_paste("fix the typo in README", "fix the typo in README\n"));
        assert!(box_holds_paste(
            "Refactor the chunker so that every chunk keeps its byte offsets, then add tests for the\nboundaries\nand run them",
            long
        ));
        // A box cut off by the screen: a long enough beginning.
        assert!(box_holds_paste(&long[..90], long));
        // Collapsed: as many line breaks as the body has (its last newline counted or not).
        assert!(box_holds_paste("[Pasted text #1 +30 lines]", &thirty));
        assert!(box_holds_paste("[Pasted text #3 +29 lines]", &thirty));
        assert!(box_holds_paste("[Pasted text #2]", &"x".repeat(900)));
        // Anything else is someone's draft.
        assert!(!box_holds_paste("Refactor the chunker", long), "a few words of it");
        assert!(!box_holds_paste("[Pasted text #1 +12 lines]", &thirty));
        assert!(!box_holds_paste("[Pasted text #1 +29 lines] and also", &thirty));
        assert!(!box_holds_paste(
            "fix the typo in README please",
            "fix the typo in README"
        ));
        assert!(!box_holds_paste("", ""));
    }
}
