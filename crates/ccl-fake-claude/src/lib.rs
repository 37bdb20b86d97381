//! A small fake Claude Code that ccl's real-tmux tests and `ccl demo` run in tmux panes
//! instead of the real client. It owns nothing of ccl: it is a standalone program (std,
//! libc, serde_json and jiff only) that draws the screens listed in
//! `/work/shared/claude-code.md` line for line and writes the same structured signals
//! (session registry, transcript) so that every layer of ccl can be exercised without a
//! Claude account. Run it through a symlink named `claude` so that tmux's
//! `#{pane_current_command}` shows `claude`.
//!
//! Command line: unknown flags are accepted and ignored. `--session-id UUID` starts a new
//! conversation with that id, `--resume UUID` (or `-r UUID`) continues one and redraws its
//! exchanges from the transcript (an old limit banner included), neither draws a random
//! v4 id. `--dangerously-skip-permissions` is accepted and echoed in the resume hint. A
//! bare argument (not the value of `--settings`, `--model` or another flag of
//! [`VALUE_FLAGS`]) is the first prompt, submitted as the fake starts, as
//! `claude --resume ID "Continue."` does.
//!
//! Environment:
//! - `CLAUDE_CONFIG_DIR` (required, exit 1 without it): the account's home.
//! - `FAKE_CLAUDE_LOG`: when set, every submitted prompt is appended there, exactly as
//!   received, as one JSON line `{"sessionId", "cwd", "account", "text"}` (`/exit` too).
//! - `FAKE_CLAUDE_WORK_MS`: how long a turn works (default 1500); a directive
//!   `[fake:work=2500ms]` (or `=3s`) anywhere in a prompt overrides it for that turn.
//! - `FAKE_CLAUDE_ENTER_GRACE_MS` (default 0): an Enter arriving within that many ms after
//!   a bracketed paste is swallowed, as older builds did.
//! - `FAKE_CLAUDE_SCREEN=trust`: show the folder-trust dialog instead; Enter or Escape
//!   exits 1. No registry file is written while it is shown.
//! - `TMUX`, `TMUX_PANE`: used to ask tmux for the `tmux` field of the registry.
//!
//! Files, all under `$CLAUDE_CONFIG_DIR`:
//! - `sessions/<pid>.json`: `{"pid", "sessionId", "cwd", "status": "idle"|"busy", "tmux"
//!   (absent outside tmux), "updatedAt" (ms)}`, rewritten on each status change and
//!   removed on exit, SIGTERM, SIGHUP and SIGINT.
//! - `projects/<cwd, every non-alphanumeric character as '-'>/<id>.jsonl`: the transcript. A `user` record
//!   per submitted prompt, an `assistant` record per answer, a `system` record with
//!   `subtype: "turn_duration"` per finished turn; a usage limit is an `assistant` record
//!   with `isApiErrorMessage: true, apiErrorStatus: 429, error: "rate_limit"` whose text is
//!   the limit line; a 500 is an `assistant` record with `isApiErrorMessage: true,
//!   apiErrorStatus: 500`. Interrupted and limited turns write no `turn_duration`.
//! - `fake-limit`: read before a turn answers and every 200 ms while it works. Its first
//!   line is `five_hour [RESET]`, `weekly [RESET]` (RESET defaults to `9:23am (UTC)`) or
//!   `error500 [MESSAGE]`, or `warning`: the turn finishes normally with
//!   `Approaching your 5-hour usage limit` drawn at the right of the footer, where Claude
//!   shows its own usage notices (a near-limit warning,
//!   not a hit); anything else is no limit. It applies to every turn while the file exists,
//!   which makes it a per-account switch.
//!
//! Keys: typed text goes into the input box; a bracketed paste of more than 2 lines or
//! more than 800 characters shows as `[Pasted text #N +M lines]` while holding the text;
//! Enter submits (ignored while busy, the text stays in the box); Escape or Ctrl-C
//! interrupts a busy turn, dismisses the weekly-limit menu, cancels the automatic
//! continuation after a 5-hour limit; Ctrl-C, or Escape twice within a second (as the real
//! client does), clears a non-empty input box.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// Work time of a turn when neither the prompt nor the environment says otherwise.
const DEFAULT_WORK_MS: u64 = 1500;
/// Upper bound on any work time, so a typo in a directive cannot wedge a test for days.
const MAX_WORK_MS: u64 = 3_600_000;
/// How often a working turn looks at the `fake-limit` file.
const LIMIT_POLL_MS: u64 = 200;
/// A lone ESC byte is an Escape key only if nothing follows it within this time;
/// otherwise it starts an escape sequence (arrow keys, bracketed paste).
const ESCAPE_WAIT_MS: u64 = 40;
/// A second Escape within this time of the first clears a non-empty input box.
const DOUBLE_ESCAPE_MS: u64 = 1_000;
/// A paste with more lines than this becomes a placeholder in the input box.
const PASTE_PLACEHOLDER_LINES: usize = 2;
/// A paste longer than this many characters becomes a placeholder too.
const PASTE_PLACEHOLDER_CHARS: usize = 800;
/// Bytes of one paste kept; the rest is dropped rather than growing without bound.
const MAX_PASTE_BYTES: usize = 4 << 20;
/// Bytes of a transcript read when resuming.
const MAX_TRANSCRIPT_BYTES: u64 = 64 << 20;
/// Bytes of the `fake-limit` file read.
const MAX_LIMIT_FILE_BYTES: u64 = 4096;
/// Project directories looked at when a resumed id is not under the current directory.
const MAX_PROJECT_DIRS_SCANNED: usize = 10_000;
/// Characters of the prompt quoted in the answer.
const ANSWER_PROMPT_CHARS: usize = 60;
/// Longest escape sequence accepted before the bytes are dropped as garbage.
const MAX_ESCAPE_SEQUENCE_BYTES: usize = 32;
/// Reset text of a limit when the `fake-limit` file gives none.
const DEFAULT_RESET_TEXT: &str = "9:23am (UTC)";
/// The near-limit warning drawn under an answer while `fake-limit` says `warning`.
const WARNING_TEXT: &str = "Approaching your 5-hour usage limit";

const PASTE_START: &[u8] = b"\x1b[200~";
const PASTE_END: &[u8] = b"\x1b[201~";
const IDLE_FOOTER: &str = "  ⏵⏵ bypass permissions on (shift+tab to cycle)";
const BUSY_FOOTER: &str = "  esc to interrupt";
const SPINNER_LINE: &str = "✢ Thinking…";
const RESEND_HINT: &str = "Resend your message to try again";
const INTERRUPTED_NOTE: &str = "Interrupted · What should Claude do instead?";
const SERVER_ERROR_TEXT: &str = "API Error: 500 Internal server error. This is a server-side \
     issue, usually temporary — try again in a moment.";

/// Signal number that asked us to stop (0: none yet). Set from the signal handler.
static TERMINATE_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Set from the SIGWINCH handler: the next turn of the loop redraws at the new size.
static RESIZED: AtomicBool = AtomicBool::new(false);
/// Write end of the self-pipe that wakes the loop's `poll` when a signal arrives.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

type Result<T> = std::result::Result<T, String>;

/// Runs the fake: what the `ccl-fake-claude` binary does.
pub fn main() {
    let code = match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("claude (fake): {message}");
            1
        }
    };
    std::process::exit(code);
}

/// How the program ends; the guards are dropped before the resume hint is printed.
enum Exit {
    Code(i32),
    /// `/exit`: print the resume hint on the restored terminal, exit 0.
    Resume,
}

fn run() -> Result<i32> {
    let args = Args::parse(std::env::args().skip(1))?;
    let config_dir = match std::env::var_os("CLAUDE_CONFIG_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => return Err("CLAUDE_CONFIG_DIR is not set".to_string()),
    };
    let settings = Settings::from_env(config_dir)?;
    let cwd = std::env::current_dir()
        .map_err(|e| format!("cannot read the current directory: {e}"))?
        .to_string_lossy()
        .into_owned();
    let wake_rx = install_signal_handlers()?;

    if settings.trust_screen {
        let terminal = RawTerminal::enter();
        let mut app = App::new(settings, cwd, String::new());
        app.mode = Mode::Trust;
        let exit = app.run_loop(&terminal, wake_rx)?;
        drop(terminal);
        return Ok(match exit {
            Exit::Code(code) => code,
            Exit::Resume => 0,
        });
    }

    let (session_id, transcript, history) = match &args.session {
        SessionArg::Resume(id) => {
            let path = find_transcript(&settings.config_dir, &cwd, id)
                .ok_or_else(|| format!("No conversation found with session ID: {id}"))?;
            let (items, last_uuid) = read_history(&path)?;
            let transcript = Transcript::new(path, id.clone(), cwd.clone(), last_uuid);
            (id.clone(), transcript, items)
        }
        SessionArg::New(id) => {
            let id = id.clone().unwrap_or_else(random_uuid);
            let path = transcript_path(&settings.config_dir, &cwd, &id);
            (id.clone(), Transcript::new(path, id, cwd.clone(), None), Vec::new())
        }
    };

    let registry = Registry::create(&settings.config_dir, &session_id, &cwd)?;
    let terminal = RawTerminal::enter();
    let mut app = App::new(settings, cwd, session_id.clone());
    app.items = history;
    app.transcript = Some(transcript);
    app.registry = Some(registry);
    if let Some(prompt) = args.prompt {
        app.input.paste(prompt);
        app.submit(Instant::now())?;
    }
    let exit = app.run_loop(&terminal, wake_rx);
    // Remove the registry file and restore the terminal before anything is printed.
    drop(app);
    drop(terminal);
    match exit? {
        Exit::Code(code) => Ok(code),
        Exit::Resume => {
            let flags = if args.skip_permissions {
                " --dangerously-skip-permissions"
            } else {
                ""
            };
            println!("\nResume this session with:\nclaude{flags} --resume {session_id}");
            Ok(0)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Command line and environment

enum SessionArg {
    New(Option<String>),
    Resume(String),
}

struct Args {
    session: SessionArg,
    skip_permissions: bool,
    /// The bare argument: the first prompt.
    prompt: Option<String>,
}

/// Flags of the real client that take a value, which is not the prompt.
const VALUE_FLAGS: &[&str] = &[
    "--settings",
    "--model",
    "--fallback-model",
    "--permission-mode",
    "--append-system-prompt",
    "--system-prompt",
    "--add-dir",
    "--mcp-config",
    "--allowedTools",
    "--disallowedTools",
    "--setting-sources",
];

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> Result<Args> {
        let mut session = SessionArg::New(None);
        let mut skip_permissions = false;
        let mut prompt = None;
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name.to_string(), Some(value)),
                _ => (arg.clone(), None),
            };
            let mut value = |flag: &str| -> Result<String> {
                let value = match inline {
                    Some(value) => value.to_string(),
                    None => args.next().ok_or_else(|| format!("{flag} needs a session id"))?,
                };
                if !is_uuid(&value) {
                    return Err(format!("{flag}: not a session id: {value}"));
                }
                Ok(value)
            };
            match name.as_str() {
                "--session-id" => session = SessionArg::New(Some(value("--session-id")?)),
                "--resume" | "-r" => session = SessionArg::Resume(value("--resume")?),
                "--dangerously-skip-permissions" => skip_permissions = true,
                flag if VALUE_FLAGS.contains(&flag) && inline.is_none() => {
                    args.next();
                }
                flag if VALUE_FLAGS.contains(&flag) => {}
                bare if !bare.starts_with('-') => prompt = Some(arg),
                // The real client has many more flags; tests pass some of them.
                _ => {}
            }
        }
        Ok(Args {
            session,
            skip_permissions,
            prompt,
        })
    }
}

struct Settings {
    config_dir: PathBuf,
    log_path: Option<PathBuf>,
    work_ms: u64,
    enter_grace_ms: u64,
    trust_screen: bool,
}

impl Settings {
    fn from_env(config_dir: PathBuf) -> Result<Settings> {
        let number = |name: &str, default: u64| -> Result<u64> {
            match std::env::var(name) {
                Ok(text) if !text.trim().is_empty() => text
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("{name}: not a number of milliseconds: {text}")),
                _ => Ok(default),
            }
        };
        Ok(Settings {
            config_dir,
            log_path: std::env::var_os("FAKE_CLAUDE_LOG")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            work_ms: number("FAKE_CLAUDE_WORK_MS", DEFAULT_WORK_MS)?.min(MAX_WORK_MS),
            enter_grace_ms: number("FAKE_CLAUDE_ENTER_GRACE_MS", 0)?,
            trust_screen: std::env::var("FAKE_CLAUDE_SCREEN").is_ok_and(|s| s == "trust"),
        })
    }
}

/// Lowercase UUID: 8-4-4-4-12 hex digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups.iter().zip(lengths).all(|(group, length)| {
            group.len() == length && group.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    let from_os = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_os.is_err() {
        // RandomState is seeded from the OS once per thread and differs per instance,
        // which is random enough for ids that only need to be unique.
        for chunk in bytes.chunks_mut(8) {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The work time a prompt asks for with `[fake:work=2500ms]` or `[fake:work=3s]`.
fn work_directive_ms(prompt: &str) -> Option<u64> {
    const MARK: &str = "[fake:work=";
    let start = prompt.find(MARK)? + MARK.len();
    let rest = &prompt[start..];
    let end = rest.find(']')?;
    let spec = &rest[..end];
    let (digits, scale) = if let Some(ms) = spec.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = spec.strip_suffix('s') {
        (s, 1000)
    } else {
        (spec, 1)
    };
    let value: u64 = digits.trim().parse().ok()?;
    Some(value.saturating_mul(scale).min(MAX_WORK_MS))
}

// ---------------------------------------------------------------------------------------
// Signals and the terminal

extern "C" fn on_terminate(signal: c_int) {
    TERMINATE_SIGNAL.store(signal, Ordering::SeqCst);
    wake();
}

extern "C" fn on_resize(_signal: c_int) {
    RESIZED.store(true, Ordering::SeqCst);
    wake();
}

/// Async-signal-safe: one `write` to the self-pipe.
fn wake() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: writing one byte from a valid buffer; a full pipe just fails, which is
        // fine because a wake-up is already pending then.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// Installs the handlers and returns the read end of the self-pipe they write to.
fn install_signal_handlers() -> Result<c_int> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(format!("cannot create a pipe: {}", io::Error::last_os_error()));
    }
    WAKE_FD.store(fds[1], Ordering::SeqCst);
    let handlers: [(c_int, extern "C" fn(c_int)); 4] = [
        (libc::SIGTERM, on_terminate),
        (libc::SIGHUP, on_terminate),
        (libc::SIGINT, on_terminate),
        (libc::SIGWINCH, on_resize),
    ];
    for (signal, handler) in handlers {
        // SAFETY: a zeroed sigaction with an empty mask and a handler that only touches
        // atomics and write(2) is a valid, async-signal-safe disposition.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            return Err(format!(
                "cannot install a signal handler: {}",
                io::Error::last_os_error()
            ));
        }
    }
    Ok(fds[0])
}

/// Raw mode and bracketed paste on stdin/stdout; both are undone on drop.
struct RawTerminal {
    saved: Option<libc::termios>,
}

impl RawTerminal {
    fn enter() -> RawTerminal {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own.
        let saved = unsafe {
            let mut termios: libc::termios = std::mem::zeroed();
            if libc::isatty(0) == 1 && libc::tcgetattr(0, &mut termios) == 0 {
                let mut raw = termios;
                libc::cfmakeraw(&mut raw);
                libc::tcsetattr(0, libc::TCSANOW, &raw);
                Some(termios)
            } else {
                None
            }
        };
        write_out("\x1b[?2004h");
        RawTerminal { saved }
    }

    /// (columns, rows); 80x24 when stdout is not a terminal.
    fn size(&self) -> (usize, usize) {
        // SAFETY: TIOCGWINSZ fills the winsize we pass.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_col > 0 && size.ws_row > 0 {
            (usize::from(size.ws_col), usize::from(size.ws_row))
        } else {
            (80, 24)
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        write_out("\x1b[?2004l\r\n");
        if let Some(saved) = &self.saved {
            // SAFETY: restoring the attributes read in `enter`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}

fn write_out(text: &str) {
    let mut out = io::stdout().lock();
    // The terminal may already be gone (SIGHUP); there is nobody left to tell.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

// ---------------------------------------------------------------------------------------
// Keyboard decoding

#[derive(Debug, Clone, PartialEq)]
enum Key {
    Char(char),
    Enter,
    /// Ctrl-J / a bare line feed: a new line inside the input box.
    Newline,
    Backspace,
    Escape,
    CtrlC,
    Paste(String),
    /// Arrow keys, function keys and other sequences this fake has no use for.
    Ignored,
}

enum Parsed {
    Key(Key, usize),
    PasteStart(usize),
    Incomplete,
}

/// Turns the bytes read from stdin into keys, holding back incomplete sequences.
#[derive(Default)]
struct Decoder {
    buffer: Vec<u8>,
    in_paste: bool,
    paste: Vec<u8>,
    /// When the bytes at the front of `buffer` were first seen incomplete.
    incomplete_since: Option<Instant>,
}

impl Decoder {
    fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// When a held-back lone ESC becomes an Escape key.
    fn deadline(&self) -> Option<Instant> {
        self.incomplete_since
            .map(|since| since + Duration::from_millis(ESCAPE_WAIT_MS))
    }

    fn take_keys(&mut self, now: Instant) -> Vec<Key> {
        let mut keys = Vec::new();
        loop {
            if self.in_paste {
                if let Some(end) = find(&self.buffer, PASTE_END) {
                    self.keep_paste_bytes(end);
                    self.buffer.drain(..PASTE_END.len());
                    self.in_paste = false;
                    let text = String::from_utf8_lossy(&self.paste).into_owned();
                    self.paste.clear();
                    keys.push(Key::Paste(normalize_newlines(&text)));
                    continue;
                }
                // Keep a tail that could be the start of a split end marker.
                let safe = self.buffer.len().saturating_sub(PASTE_END.len() - 1);
                self.keep_paste_bytes(safe);
                break;
            }
            if self.buffer.is_empty() {
                self.incomplete_since = None;
                break;
            }
            match parse_one(&self.buffer) {
                Parsed::Key(key, n) => {
                    self.buffer.drain(..n);
                    self.incomplete_since = None;
                    keys.push(key);
                }
                Parsed::PasteStart(n) => {
                    self.buffer.drain(..n);
                    self.incomplete_since = None;
                    self.in_paste = true;
                }
                Parsed::Incomplete => {
                    let since = *self.incomplete_since.get_or_insert(now);
                    if now.duration_since(since) < Duration::from_millis(ESCAPE_WAIT_MS) {
                        break;
                    }
                    // Nothing completed it in time: a lone ESC is the Escape key, any
                    // other partial sequence (a cut UTF-8 character) is dropped.
                    let first = self.buffer.remove(0);
                    self.incomplete_since = None;
                    if first == 0x1b {
                        keys.push(Key::Escape);
                    }
                }
            }
        }
        keys
    }

    /// Moves `buffer[..n]` into the paste, dropping what exceeds the paste limit.
    fn keep_paste_bytes(&mut self, n: usize) {
        let room = MAX_PASTE_BYTES.saturating_sub(self.paste.len());
        self.paste
            .extend_from_slice(&self.buffer[..n.min(room).min(self.buffer.len())]);
        self.buffer.drain(..n);
    }
}

fn parse_one(bytes: &[u8]) -> Parsed {
    match bytes[0] {
        0x1b => match bytes.get(1) {
            None => Parsed::Incomplete,
            Some(b'[') => {
                let final_at = bytes[2..].iter().position(|b| (0x40..=0x7e).contains(b)).map(|i| i + 2);
                match final_at {
                    Some(i) if &bytes[..=i] == PASTE_START => Parsed::PasteStart(i + 1),
                    Some(i) => Parsed::Key(Key::Ignored, i + 1),
                    None if bytes.len() > MAX_ESCAPE_SEQUENCE_BYTES => Parsed::Key(Key::Ignored, bytes.len()),
                    None => Parsed::Incomplete,
                }
            }
            Some(b'O') if bytes.len() < 3 => Parsed::Incomplete,
            Some(b'O') => Parsed::Key(Key::Ignored, 3),
            // ESC followed by anything else: the Escape key, then that byte on its own.
            Some(_) => Parsed::Key(Key::Escape, 1),
        },
        b'\r' => Parsed::Key(Key::Enter, 1),
        b'\n' => Parsed::Key(Key::Newline, 1),
        0x7f | 0x08 => Parsed::Key(Key::Backspace, 1),
        0x03 => Parsed::Key(Key::CtrlC, 1),
        b if b < 0x20 => Parsed::Key(Key::Ignored, 1),
        b => {
            let width = match b {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => return Parsed::Key(Key::Ignored, 1),
            };
            if bytes.len() < width {
                return Parsed::Incomplete;
            }
            match std::str::from_utf8(&bytes[..width]) {
                Ok(text) => Parsed::Key(Key::Char(text.chars().next().unwrap_or(' ')), width),
                Err(_) => Parsed::Key(Key::Ignored, 1),
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// tmux sends the lines of a paste separated by CR; the prompt holds LF, as the real
/// client's transcript does.
fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

// ---------------------------------------------------------------------------------------
// Input box

enum Segment {
    Text(String),
    Paste { number: usize, text: String },
}

#[derive(Default)]
struct InputBox {
    segments: Vec<Segment>,
    n_pastes: usize,
}

impl InputBox {
    fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    fn clear(&mut self) {
        self.segments.clear();
    }

    fn push_char(&mut self, c: char) {
        if let Some(Segment::Text(text)) = self.segments.last_mut() {
            text.push(c);
        } else {
            self.segments.push(Segment::Text(c.to_string()));
        }
    }

    fn paste(&mut self, text: String) {
        if text.lines().count() > PASTE_PLACEHOLDER_LINES || text.chars().count() > PASTE_PLACEHOLDER_CHARS {
            self.n_pastes += 1;
            self.segments.push(Segment::Paste {
                number: self.n_pastes,
                text,
            });
        } else {
            text.chars().for_each(|c| self.push_char(c));
        }
    }

    fn backspace(&mut self) {
        match self.segments.last_mut() {
            Some(Segment::Text(text)) => {
                text.pop();
                if text.is_empty() {
                    self.segments.pop();
                }
            }
            Some(Segment::Paste { .. }) => {
                self.segments.pop();
            }
            None => {}
        }
    }

    /// The text a submit sends: placeholders replaced by what they hold.
    fn text(&self) -> String {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) | Segment::Paste { text, .. } => text.as_str(),
            })
            .collect()
    }

    /// What the box shows.
    fn display(&self) -> String {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => text.clone(),
                Segment::Paste { number, text } => {
                    let n_breaks = text.matches('\n').count();
                    if n_breaks == 0 {
                        format!("[Pasted text #{number}]")
                    } else {
                        format!("[Pasted text #{number} +{n_breaks} lines]")
                    }
                }
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Registry and transcript

/// `sessions/<pid>.json`; removed on drop.
struct Registry {
    path: PathBuf,
    session_id: String,
    cwd: String,
    tmux: Option<String>,
}

impl Registry {
    fn create(config_dir: &Path, session_id: &str, cwd: &str) -> Result<Registry> {
        let dir = config_dir.join("sessions");
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let registry = Registry {
            path: dir.join(format!("{}.json", std::process::id())),
            session_id: session_id.to_string(),
            cwd: cwd.to_string(),
            tmux: tmux_location(),
        };
        registry.write("idle")?;
        Ok(registry)
    }

    fn write(&self, status: &str) -> Result<()> {
        let mut record = json!({
            "pid": std::process::id(),
            "sessionId": self.session_id,
            "cwd": self.cwd,
            "status": status,
            "updatedAt": jiff::Timestamp::now().as_millisecond(),
        });
        if let Some(tmux) = &self.tmux {
            record["tmux"] = json!(tmux);
        }
        // Write then rename, so a reader never sees half a file.
        let partial = self.path.with_extension("json.tmp");
        fs::write(&partial, record.to_string())
            .and_then(|()| fs::rename(&partial, &self.path))
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// `<session>:@<window>.%<pane>` of the pane we run in, asked from the tmux server in `$TMUX`.
fn tmux_location() -> Option<String> {
    let tmux = std::env::var("TMUX").ok()?;
    let socket = tmux.split(',').next().filter(|s| !s.is_empty())?;
    let pane = std::env::var("TMUX_PANE").ok().filter(|p| !p.is_empty())?;
    let output = Command::new("tmux")
        .args(["-S", socket, "display-message", "-p", "-t", &pane])
        .arg("#{session_name}:#{window_id}.#{pane_id}")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let location = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !location.is_empty()).then_some(location)
}

/// Claude's rule: every character that is not ASCII alphanumeric becomes '-' (one per
/// UTF-16 unit, as the JavaScript regex does).
fn project_dir_name(cwd: &str) -> String {
    cwd.chars()
        .flat_map(|c| {
            let n = if c.is_ascii_alphanumeric() { 0 } else { c.len_utf16() };
            let keep = (n == 0).then_some(c);
            keep.into_iter().chain(std::iter::repeat_n('-', n))
        })
        .collect()
}

fn transcript_path(config_dir: &Path, cwd: &str, session_id: &str) -> PathBuf {
    config_dir
        .join("projects")
        .join(project_dir_name(cwd))
        .join(format!("{session_id}.jsonl"))
}

/// The transcript of `session_id`: under the current directory's project first, then
/// under any project, as the real client finds a conversation started elsewhere.
fn find_transcript(config_dir: &Path, cwd: &str, session_id: &str) -> Option<PathBuf> {
    let here = transcript_path(config_dir, cwd, session_id);
    if here.is_file() {
        return Some(here);
    }
    fs::read_dir(config_dir.join("projects"))
        .ok()?
        .take(MAX_PROJECT_DIRS_SCANNED)
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join(format!("{session_id}.jsonl")))
        .find(|path| path.is_file())
}

/// The conversation items a transcript redraws, and the uuid of its last record.
fn read_history(path: &Path) -> Result<(Vec<Item>, Option<String>)> {
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(MAX_TRANSCRIPT_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut items = Vec::new();
    let mut last_uuid = None;
    for record in text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()) {
        if let Some(uuid) = record["uuid"].as_str() {
            last_uuid = Some(uuid.to_string());
        }
        match record["type"].as_str() {
            Some("user") => items.push(Item::User(content_text(&record["message"]["content"]))),
            Some("assistant") => {
                let text = content_text(&record["message"]["content"]);
                if record["apiErrorStatus"].as_u64() == Some(429) {
                    items.push(Item::Note(text));
                } else {
                    items.push(Item::Assistant(text));
                }
            }
            Some("system") if record["subtype"] == "turn_duration" => {
                items.push(Item::Finished(record["durationMs"].as_u64().unwrap_or(0)));
            }
            _ => {}
        }
    }
    Ok((items, last_uuid))
}

/// Text of a message content: a string, or the text blocks of an array.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|block| block["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Appends records to `projects/…/<id>.jsonl`, chaining them by `parentUuid`.
struct Transcript {
    path: PathBuf,
    session_id: String,
    cwd: String,
    last_uuid: Option<String>,
}

impl Transcript {
    fn new(path: PathBuf, session_id: String, cwd: String, last_uuid: Option<String>) -> Self {
        Transcript {
            path,
            session_id,
            cwd,
            last_uuid,
        }
    }

    fn append(&mut self, kind: &str, fields: Value) -> Result<()> {
        let uuid = random_uuid();
        let mut record = Map::new();
        record.insert("parentUuid".into(), json!(self.last_uuid));
        record.insert("type".into(), json!(kind));
        record.insert("uuid".into(), json!(uuid));
        record.insert("timestamp".into(), json!(format!("{:.3}", jiff::Timestamp::now())));
        record.insert("sessionId".into(), json!(self.session_id));
        record.insert("cwd".into(), json!(self.cwd));
        if let Value::Object(fields) = fields {
            record.extend(fields);
        }
        let line = format!("{}\n", Value::Object(record));
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        append_line(&self.path, &line)?;
        self.last_uuid = Some(uuid);
        Ok(())
    }

    fn user(&mut self, text: &str) -> Result<()> {
        self.append("user", json!({"message": {"role": "user", "content": text}}))
    }

    fn assistant(&mut self, text: &str) -> Result<()> {
        self.append(
            "assistant",
            json!({"message": {
                "role": "assistant",
                "model": "claude-fake",
                "content": [{"type": "text", "text": text}],
            }}),
        )
    }

    /// A synthetic error message, as the client writes for a failed request.
    fn api_error(&mut self, status: u16, error: Option<&str>, text: &str) -> Result<()> {
        let mut fields = json!({
            "message": {
                "role": "assistant",
                "model": "<synthetic>",
                "content": [{"type": "text", "text": text}],
            },
            "isApiErrorMessage": true,
            "apiErrorStatus": status,
        });
        if let Some(error) = error {
            fields["error"] = json!(error);
        }
        self.append("assistant", fields)
    }

    fn turn_duration(&mut self, duration_ms: u64) -> Result<()> {
        self.append("system", json!({"subtype": "turn_duration", "durationMs": duration_ms}))
    }
}

/// One line appended with a single write, so concurrent writers do not interleave.
fn append_line(path: &Path, line: &str) -> Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// The session

/// One entry of the conversation drawn above the input box.
enum Item {
    User(String),
    Assistant(String),
    /// A `⎿` line under the previous message: a limit banner, an interruption.
    Note(String),
    Finished(u64),
}

#[derive(Clone)]
enum Limit {
    FiveHour(String),
    Weekly(String),
    ServerError(String),
    /// Not a hit: the turn finishes and the warning is drawn under its answer.
    Warning,
}

impl Limit {
    /// Whether the limit cuts the working turn short.
    fn stops_turn(&self) -> bool {
        !matches!(self, Limit::Warning)
    }
}

struct Turn {
    prompt: String,
    started: Instant,
    work_ms: u64,
    next_limit_check: Instant,
}

enum Mode {
    Idle,
    Busy(Turn),
    /// The weekly-limit menu; holds the keyboard until Escape. Holds the reset time.
    WeeklyMenu(String),
    Trust,
}

enum Flow {
    Continue,
    Exit(Exit),
}

struct App {
    settings: Settings,
    cwd: String,
    session_id: String,
    items: Vec<Item>,
    input: InputBox,
    last_paste_at: Option<Instant>,
    /// The last key, when it was an Escape into the input box: a second one clears it.
    last_escape_at: Option<Instant>,
    mode: Mode,
    /// Reset time shown in the `⚠ Usage limit reached` footer after a 5-hour limit.
    limit_footer: Option<String>,
    /// After a 500 the empty input box suggests resending.
    resend_hint: bool,
    /// A near-limit warning shown at the right of the idle footer until the next prompt.
    warning_footer: bool,
    transcript: Option<Transcript>,
    registry: Option<Registry>,
}

impl App {
    fn new(settings: Settings, cwd: String, session_id: String) -> App {
        App {
            settings,
            cwd,
            session_id,
            items: Vec::new(),
            input: InputBox::default(),
            last_paste_at: None,
            last_escape_at: None,
            mode: Mode::Idle,
            limit_footer: None,
            resend_hint: false,
            warning_footer: false,
            transcript: None,
            registry: None,
        }
    }

    fn run_loop(&mut self, terminal: &RawTerminal, wake_rx: c_int) -> Result<Exit> {
        let mut decoder = Decoder::default();
        let mut dirty = true;
        let mut chunk = [0u8; 4096];
        loop {
            let signal = TERMINATE_SIGNAL.load(Ordering::SeqCst);
            if signal != 0 {
                return Ok(Exit::Code(128 + signal));
            }
            if RESIZED.swap(false, Ordering::SeqCst) {
                dirty = true;
            }
            if dirty {
                self.draw(terminal, false);
                dirty = false;
            }

            let now = Instant::now();
            let deadline = [decoder.deadline(), self.deadline()].into_iter().flatten().min();
            let timeout_ms = deadline.map_or(-1, |d| {
                let wait = d.saturating_duration_since(now);
                c_int::try_from(wait.as_millis() + 1).unwrap_or(c_int::MAX)
            });
            let mut fds = [
                libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: wake_rx,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfd entries.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
            if ready < 0 {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(format!("poll failed: {error}"));
                }
                continue;
            }
            if fds[1].revents != 0 {
                // SAFETY: draining the non-blocking pipe into a local buffer.
                unsafe { while libc::read(wake_rx, chunk.as_mut_ptr().cast(), chunk.len()) > 0 {} }
            }
            if fds[0].revents != 0 {
                // SAFETY: reading into a local buffer of the given length.
                let n = unsafe { libc::read(0, chunk.as_mut_ptr().cast(), chunk.len()) };
                if n <= 0 {
                    let error = io::Error::last_os_error();
                    if n < 0 && error.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // The terminal went away: nobody can type to us any more.
                    return Ok(Exit::Code(0));
                }
                decoder.feed(&chunk[..n as usize]);
            }

            let now = Instant::now();
            for key in decoder.take_keys(now) {
                dirty = true;
                if let Flow::Exit(exit) = self.handle_key(key, now)? {
                    self.draw(terminal, true);
                    return Ok(exit);
                }
            }
            if self.poll_turn(now)? {
                dirty = true;
            }
        }
    }

    /// The next moment the turn in progress needs attention.
    fn deadline(&self) -> Option<Instant> {
        match &self.mode {
            Mode::Busy(turn) => Some(
                turn.next_limit_check
                    .min(turn.started + Duration::from_millis(turn.work_ms)),
            ),
            _ => None,
        }
    }

    fn handle_key(&mut self, key: Key, now: Instant) -> Result<Flow> {
        match &self.mode {
            Mode::Trust => {
                return Ok(match key {
                    Key::Enter | Key::Escape | Key::CtrlC => Flow::Exit(Exit::Code(1)),
                    _ => Flow::Continue,
                });
            }
            Mode::WeeklyMenu(_) => {
                if key == Key::Escape {
                    self.mode = Mode::Idle;
                }
                return Ok(Flow::Continue);
            }
            Mode::Busy(_) => {
                if matches!(key, Key::Escape | Key::CtrlC) {
                    self.items.push(Item::Note(INTERRUPTED_NOTE.to_string()));
                    self.mode = Mode::Idle;
                    self.set_status("idle")?;
                    return Ok(Flow::Continue);
                }
            }
            Mode::Idle => {}
        }
        let busy = matches!(self.mode, Mode::Busy(_));
        // Only two Escapes in a row count as the clearing pair; any other key breaks it.
        let escape_before = self.last_escape_at.take();
        match key {
            Key::Char(c) => self.input.push_char(c),
            Key::Newline => self.input.push_char('\n'),
            Key::Paste(text) => {
                self.input.paste(text);
                self.last_paste_at = Some(now);
            }
            Key::Backspace => self.input.backspace(),
            Key::CtrlC => self.input.clear(),
            Key::Escape => {
                self.limit_footer = None;
                let pair = Duration::from_millis(DOUBLE_ESCAPE_MS);
                let double = escape_before.is_some_and(|at| now.duration_since(at) < pair);
                if double {
                    self.input.clear();
                } else {
                    self.last_escape_at = Some(now);
                }
            }
            Key::Enter if busy => {}
            Key::Enter => {
                let grace = Duration::from_millis(self.settings.enter_grace_ms);
                let swallowed = self.last_paste_at.is_some_and(|at| now.duration_since(at) < grace);
                if !swallowed {
                    return self.submit(now);
                }
            }
            Key::Ignored => {}
        }
        Ok(Flow::Continue)
    }

    fn submit(&mut self, now: Instant) -> Result<Flow> {
        let prompt = self.input.text();
        if prompt.trim().is_empty() {
            return Ok(Flow::Continue);
        }
        self.input.clear();
        self.resend_hint = false;
        self.limit_footer = None;
        self.warning_footer = false;
        self.log_prompt(&prompt)?;
        self.items.push(Item::User(prompt.clone()));
        if prompt.trim() == "/exit" {
            return Ok(Flow::Exit(Exit::Resume));
        }
        if let Some(transcript) = &mut self.transcript {
            transcript.user(&prompt)?;
        }
        let work_ms = work_directive_ms(&prompt).unwrap_or(self.settings.work_ms);
        self.mode = Mode::Busy(Turn {
            prompt,
            started: now,
            work_ms,
            next_limit_check: now + Duration::from_millis(LIMIT_POLL_MS),
        });
        self.set_status("busy")?;
        if let Some(limit) = self.read_limit().filter(Limit::stops_turn) {
            self.hit_limit(limit)?;
        }
        Ok(Flow::Continue)
    }

    /// Advances a working turn; true when the screen changed.
    fn poll_turn(&mut self, now: Instant) -> Result<bool> {
        let Mode::Busy(turn) = &mut self.mode else {
            return Ok(false);
        };
        let finish_at = turn.started + Duration::from_millis(turn.work_ms);
        if now < turn.next_limit_check && now < finish_at {
            return Ok(false);
        }
        turn.next_limit_check = now + Duration::from_millis(LIMIT_POLL_MS);
        let limit = self.read_limit();
        if let Some(limit) = limit.as_ref().filter(|l| l.stops_turn()) {
            self.hit_limit(limit.clone())?;
            return Ok(true);
        }
        if now < finish_at {
            return Ok(false);
        }
        let Mode::Busy(turn) = std::mem::replace(&mut self.mode, Mode::Idle) else {
            return Ok(false);
        };
        let quoted: String = turn
            .prompt
            .chars()
            .take(ANSWER_PROMPT_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let answer = format!("Done: {quoted}");
        let duration_ms = u64::try_from(now.duration_since(turn.started).as_millis()).unwrap_or(u64::MAX);
        if let Some(transcript) = &mut self.transcript {
            transcript.assistant(&answer)?;
            transcript.turn_duration(duration_ms)?;
        }
        self.items.push(Item::Assistant(answer));
        // Claude's own notice, never a line of the answer: ccl must not take model prose
        // for a warning, so the fake draws it where the real client does.
        self.warning_footer = matches!(limit, Some(Limit::Warning));
        self.items.push(Item::Finished(duration_ms));
        self.set_status("idle")?;
        Ok(true)
    }

    fn read_limit(&self) -> Option<Limit> {
        let path = self.settings.config_dir.join("fake-limit");
        let mut text = String::new();
        File::open(path)
            .and_then(|f| f.take(MAX_LIMIT_FILE_BYTES).read_to_string(&mut text))
            .ok()?;
        let line = text.lines().next()?.trim();
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        let reset = if rest.is_empty() {
            DEFAULT_RESET_TEXT.to_string()
        } else {
            rest.to_string()
        };
        match kind {
            "five_hour" => Some(Limit::FiveHour(reset)),
            "weekly" => Some(Limit::Weekly(reset)),
            "error500" => Some(Limit::ServerError(rest.to_string())),
            "warning" => Some(Limit::Warning),
            _ => None,
        }
    }

    /// Ends the working turn with the limit or error; no `turn_duration` is written.
    fn hit_limit(&mut self, limit: Limit) -> Result<()> {
        self.mode = Mode::Idle;
        match limit {
            Limit::FiveHour(reset) => {
                let time = without_time_zone(&reset);
                let line = format!("You've hit your 5-hour limit · resets {reset}");
                self.record_api_error(429, Some("rate_limit"), &line)?;
                self.items.push(Item::Note(line));
                self.items.push(Item::Assistant(format!(
                    "Usage limit reached · continuing automatically at {time} · esc to cancel"
                )));
                self.limit_footer = Some(time);
            }
            Limit::Weekly(reset) => {
                let line = format!("You've hit your weekly limit · resets {reset}");
                self.record_api_error(429, Some("rate_limit"), &line)?;
                self.items.push(Item::Note(line));
                self.mode = Mode::WeeklyMenu(without_time_zone(&reset));
            }
            Limit::ServerError(message) => {
                let text = if message.is_empty() {
                    SERVER_ERROR_TEXT.to_string()
                } else {
                    format!("{SERVER_ERROR_TEXT} {message}")
                };
                self.record_api_error(500, None, &text)?;
                self.items.push(Item::Assistant(text));
                self.resend_hint = true;
            }
            // A warning never stops a turn; the callers filter it out.
            Limit::Warning => return Ok(()),
        }
        self.set_status("idle")
    }

    fn record_api_error(&mut self, status: u16, error: Option<&str>, text: &str) -> Result<()> {
        match &mut self.transcript {
            Some(transcript) => transcript.api_error(status, error, text),
            None => Ok(()),
        }
    }

    fn set_status(&mut self, status: &str) -> Result<()> {
        match &self.registry {
            Some(registry) => registry.write(status),
            None => Ok(()),
        }
    }

    fn log_prompt(&self, text: &str) -> Result<()> {
        let Some(path) = &self.settings.log_path else {
            return Ok(());
        };
        let record = json!({
            "sessionId": self.session_id,
            "cwd": self.cwd,
            "account": self.settings.config_dir.to_string_lossy(),
            "text": text,
        });
        append_line(path, &format!("{record}\n"))
    }

    /// Clears the screen and draws it whole. `last` draws the conversation only, for the
    /// screen left behind on exit.
    fn draw(&self, terminal: &RawTerminal, last: bool) {
        let (width, height) = terminal.size();
        let (mut body, bottom) = match self.mode {
            Mode::Trust => (Vec::new(), self.trust_lines(width)),
            _ if last => (self.conversation_lines(), Vec::new()),
            _ => (self.conversation_lines(), self.bottom_lines(width)),
        };
        // Keep the bottom whole and drop the oldest conversation lines that do not fit,
        // counting the rows a long line takes once the terminal wraps it.
        let rows = |lines: &[String]| -> usize { lines.iter().map(|l| l.chars().count().div_ceil(width).max(1)).sum() };
        let room = height.saturating_sub(rows(&bottom));
        while !body.is_empty() && rows(&body) > room {
            body.remove(0);
        }
        let lines: Vec<String> = body.into_iter().chain(bottom).collect();
        write_out(&format!("\x1b[H\x1b[2J{}", lines.join("\r\n")));
    }

    fn conversation_lines(&self) -> Vec<String> {
        let mut lines = vec!["✻ Claude Code (fake)".to_string(), format!("  cwd: {}", self.cwd)];
        for item in &self.items {
            match item {
                Item::User(text) => {
                    lines.push(String::new());
                    let mut text_lines = text.lines();
                    lines.push(format!("> {}", printable(text_lines.next().unwrap_or(""))));
                    let n_more = text_lines.count();
                    if n_more > 0 {
                        lines.push(format!("  … +{n_more} lines"));
                    }
                }
                Item::Assistant(text) => {
                    for (i, line) in text.lines().enumerate() {
                        let lead = if i == 0 { "● " } else { "  " };
                        lines.push(format!("{lead}{}", printable(line)));
                    }
                }
                Item::Note(text) => lines.push(format!("  ⎿  {}", printable(text))),
                Item::Finished(duration_ms) => {
                    let seconds = duration_ms.saturating_add(500) / 1000;
                    lines.push(format!("✻ Sautéed for {}s", seconds.max(1)));
                }
            }
        }
        if matches!(self.mode, Mode::Busy(_)) {
            lines.push(String::new());
            lines.push(SPINNER_LINE.to_string());
        }
        lines.push(String::new());
        lines
    }

    fn bottom_lines(&self, width: usize) -> Vec<String> {
        let rule = "─".repeat(width);
        if let Mode::WeeklyMenu(time) = &self.mode {
            return vec![
                rule,
                " What do you want to do?".to_string(),
                String::new(),
                " ❯ 1. Stop and wait for limit to reset".to_string(),
                format!("   2. Wait here, then continue automatically at {time}"),
                "   3. Upgrade your plan".to_string(),
                String::new(),
                " Enter to confirm · Esc to cancel".to_string(),
            ];
        }
        let mut lines = vec![rule.clone()];
        let shown = if self.input.is_empty() && self.resend_hint {
            RESEND_HINT.to_string()
        } else {
            self.input.display()
        };
        for (i, line) in shown.split('\n').enumerate() {
            let lead = if i == 0 { "❯ " } else { "  " };
            lines.push(format!("{lead}{}", printable(line)));
        }
        lines.push(rule);
        if matches!(self.mode, Mode::Busy(_)) {
            lines.push(BUSY_FOOTER.to_string());
        } else {
            if self.warning_footer {
                lines.push(format!("{IDLE_FOOTER}          {WARNING_TEXT}"));
            } else {
                lines.push(IDLE_FOOTER.to_string());
            }
            if let Some(time) = &self.limit_footer {
                lines.push(format!("  ⚠ Usage limit reached · limit resets {time}"));
            }
        }
        lines
    }

    fn trust_lines(&self, width: usize) -> Vec<String> {
        vec![
            "─".repeat(width),
            " Accessing workspace:".to_string(),
            String::new(),
            format!(" {}", self.cwd),
            String::new(),
            " Quick safety check: Is this a project you created or one you trust? (Like your \
             own code, a well-known open source project, or work from your team). If not, \
             take a moment to review what's in this folder first."
                .to_string(),
            String::new(),
            " Claude Code'll be able to read, edit, and execute files here.".to_string(),
            String::new(),
            " ❯ No, exit".to_string(),
            "   Yes, I trust this folder".to_string(),
            String::new(),
            " Enter to confirm · Esc to cancel".to_string(),
        ]
    }
}

/// `9:23am (UTC)` → `9:23am`: the limit footer and menu show the time without its zone.
fn without_time_zone(reset: &str) -> String {
    match reset.rfind(" (") {
        Some(at) if reset.ends_with(')') => reset[..at].to_string(),
        _ => reset.to_string(),
    }
}

/// Control characters would move the cursor and spoil the frame; show them as spaces.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(chunks: &[&[u8]]) -> Vec<Key> {
        let mut decoder = Decoder::default();
        let start = Instant::now();
        let mut keys = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk);
            keys.extend(decoder.take_keys(start));
        }
        keys.extend(decoder.take_keys(start + Duration::from_millis(ESCAPE_WAIT_MS)));
        keys
    }

    #[test]
    fn a_paste_split_across_reads_arrives_whole_with_unix_newlines() {
        let got = keys(&[b"\x1b[20", b"0~one\rtwo\x1b[2", b"01~\r"]);
        assert_eq!(got, vec![Key::Paste("one\ntwo".into()), Key::Enter]);
    }

    #[test]
    fn escape_twice_clears_the_input_box_once_only_as_a_pair() {
        let settings = Settings {
            config_dir: PathBuf::from("/nonexistent"),
            log_path: None,
            work_ms: 0,
            enter_grace_ms: 0,
            trust_screen: false,
        };
        let mut app = App::new(settings, "/".into(), String::new());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        app.handle_key(Key::Paste("half-pasted task".into()), t0).unwrap();
        app.handle_key(Key::Escape, at(10)).unwrap();
        assert_eq!(app.input.text(), "half-pasted task", "one Escape keeps the text");
        app.handle_key(Key::Escape, at(60)).unwrap();
        assert_eq!(app.input.text(), "", "the second Escape clears it");

        app.handle_key(Key::Char('x'), at(100)).unwrap();
        app.handle_key(Key::Escape, at(110)).unwrap();
        app.handle_key(Key::Char('y'), at(120)).unwrap();
        app.handle_key(Key::Escape, at(130)).unwrap();
        assert_eq!(app.input.text(), "xy", "a key between the Escapes breaks the pair");
        app.handle_key(Key::Escape, at(130 + DOUBLE_ESCAPE_MS)).unwrap();
        assert_eq!(app.input.text(), "xy", "Escapes too far apart are no pair");
    }

    #[test]
    fn a_lone_escape_is_a_key_but_an_arrow_is_not() {
        assert_eq!(keys(&[b"\x1b"]), vec![Key::Escape]);
        assert_eq!(keys(&[b"\x1b[A", "é".as_bytes()]), vec![Key::Ignored, Key::Char('é')]);
    }

    #[test]
    fn long_pastes_become_placeholders_that_submit_their_text() {
        let mut input = InputBox::default();
        input.paste("a\nb\nc".into());
        input.push_char('!');
        assert_eq!(input.display(), "[Pasted text #1 +2 lines]!");
        assert_eq!(input.text(), "a\nb\nc!");
        input.backspace();
        input.backspace();
        assert!(input.is_empty());
        input.paste("short\npaste".into());
        assert_eq!(input.display(), "short\npaste");
    }

    #[test]
    fn work_directives_and_reset_times_are_read() {
        assert_eq!(work_directive_ms("do it [fake:work=2500ms] now"), Some(2500));
        assert_eq!(work_directive_ms("[fake:work=3s]"), Some(3000));
        assert_eq!(work_directive_ms("no directive"), None);
        assert_eq!(without_time_zone("Nov 27, 6:26am (UTC)"), "Nov 27, 6:26am");
        assert!(is_uuid(&random_uuid()));
        assert!(!is_uuid("not-a-uuid"));
    }
}
