//! Configuration: `ccl.toml` parsed raw (serde, unknown keys rejected) and then validated
//! into [`Config`], whose paths are absolute and whose durations are milliseconds.
//!
//! Errors carry `file:line:col` so an operator can jump to the bad key; cross-field rules
//! are checked together so every problem is reported in one run rather than one per restart.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Deserializer, Serialize};

use crate::names::{AccountName, QueueName, SessionName};

/// The longest duration a configuration may give (ten years): far beyond any sensible
/// timeout, far below where millisecond arithmetic on timestamps could overflow.
pub const MAX_DURATION_MS: u64 = 3650 * 86_400_000;

/// A duration written as `500ms`, `2s`, `5m`, `5h` (or `1d`), kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub struct DurationMs(pub u64);

impl DurationMs {
    pub fn parse(text: &str) -> Result<DurationMs, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("duration '{text}' needs a unit (ms, s, m, h, d)"))?;
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("duration '{text}' must start with a whole number"))?;
        let scale = match unit.trim() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => return Err(format!("duration '{text}' has unknown unit '{other}' (ms, s, m, h, d)")),
        };
        // Deadlines are `now + duration` in signed milliseconds; anything near the type's
        // range would wrap and expire at once, and nothing ccl waits for takes years.
        n.checked_mul(scale)
            .filter(|&ms| ms <= MAX_DURATION_MS)
            .map(DurationMs)
            .ok_or_else(|| {
                format!(
                    "duration '{text}' is too large (at most {}d)",
                    MAX_DURATION_MS / 86_400_000
                )
            })
    }
}

impl fmt::Display for DurationMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms.is_multiple_of(3_600_000) && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1_000) {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Traces store durations as plain milliseconds; config files write them as text.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Ms(u64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Ms(ms) => Ok(DurationMs(ms)),
            Repr::Text(text) => DurationMs::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw form: exactly the file's shape.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    tmux: RawTmux,
    #[serde(default)]
    claude: RawClaude,
    #[serde(default)]
    account: Vec<RawAccount>,
    #[serde(default)]
    shared: RawShared,
    #[serde(default)]
    pool: RawPool,
    #[serde(default)]
    dedicated: Vec<RawDedicated>,
    #[serde(default)]
    queue: Vec<RawQueue>,
    #[serde(default)]
    quota: RawQuota,
    #[serde(default)]
    dispatch: RawDispatch,
    #[serde(default)]
    hooks: RawHooks,
    #[serde(default)]
    screen: Screen,
}

/// Extra wordings for Claude's screen (regexes), tried after the built-in table: a way
/// to keep up with a new Claude Code version without a new ccl.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Screen {
    pub extra_limit: Vec<String>,
    pub extra_server_error: Vec<String>,
    pub extra_warning: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDaemon {
    tick: DurationMs,
    state_dir: String,
}
impl Default for RawDaemon {
    fn default() -> Self {
        RawDaemon {
            tick: DurationMs(2_000),
            state_dir: "~/.local/state/ccl".into(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTmux {
    socket: String,
    backend: Backend,
}

/// How ccl talks to tmux: one `tmux` process per call, or one control-mode connection
/// (`tmux -C`) with the exec adapter as its fallback. Control is the default: it passes
/// the same tests and costs a pipe round trip per call instead of a fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Exec,
    #[default]
    Control,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawClaude {
    command: String,
    args: Vec<String>,
    env: std::collections::BTreeMap<String, String>,
    signals: bool,
}
impl Default for RawClaude {
    fn default() -> Self {
        RawClaude {
            command: "claude".into(),
            args: vec!["--dangerously-skip-permissions".into()],
            env: Default::default(),
            signals: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    name: String,
    home: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawShared {
    target: String,
    links: Vec<String>,
}
impl Default for RawShared {
    fn default() -> Self {
        RawShared {
            target: "~/.claude-shared".into(),
            links: vec!["projects".into(), "file-history".into(), "session-env".into()],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPool {
    prefix: String,
    start_index: u32,
    min: u32,
    max: u32,
    workdir: String,
}
impl Default for RawPool {
    fn default() -> Self {
        RawPool {
            prefix: "ccl-auto-".into(),
            start_index: 11,
            min: 10,
            max: 10,
            workdir: "~".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDedicated {
    name: String,
    workdir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    name: String,
    project: String,
    #[serde(default)]
    slash_commands: bool,
    #[serde(default)]
    max_running: Option<u32>,
    #[serde(default)]
    isolation: Isolation,
    #[serde(default)]
    worktree_dir: Option<String>,
}

/// Where a queue's tasks run: all in the project's checkout, or each in its own git
/// worktree on its own branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    #[default]
    None,
    Worktree,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawQuota {
    reactivate_cooldown: DurationMs,
    confirm_polls: u32,
    default_reset: DurationMs,
    on_warning: OnWarning,
    swap_at: u32,
}

/// What an approaching-limit warning does: nothing, or drain (no new tasks under the
/// account; swap as soon as no pool task is working, so no task is cut in half).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnWarning {
    Ignore,
    #[default]
    Drain,
}
impl Default for RawQuota {
    fn default() -> Self {
        RawQuota {
            reactivate_cooldown: DurationMs(5 * 60_000),
            confirm_polls: 2,
            default_reset: DurationMs(5 * 3_600_000),
            on_warning: OnWarning::Drain,
            swap_at: DEFAULT_SWAP_AT,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDispatch {
    settle: DurationMs,
    submit_delay: DurationMs,
    task_timeout: DurationMs,
    continue_prompt: String,
}
impl Default for RawDispatch {
    fn default() -> Self {
        RawDispatch {
            settle: DurationMs(2_000),
            submit_delay: DurationMs(500),
            task_timeout: DurationMs(2 * 3_600_000),
            continue_prompt: "Continue where you left off.".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Hooks {
    pub on_swap: String,
    pub on_all_exhausted: String,
    pub on_task_done: String,
    pub on_task_failed: String,
    pub on_needs_attention: String,
    pub on_account_unhealthy: String,
    pub timeout: DurationMs,
}
impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            on_swap: String::new(),
            on_all_exhausted: String::new(),
            on_task_done: String::new(),
            on_task_failed: String::new(),
            on_needs_attention: String::new(),
            on_account_unhealthy: String::new(),
            timeout: DurationMs(10_000),
        }
    }
}
type RawHooks = Hooks;

// ---------------------------------------------------------------------------------------
// Validated form.

/// The validated configuration. Paths are absolute; it serialises into trace headers so a
/// replay runs the core under exactly the configuration that was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The file it came from (for messages); empty for configurations built in code.
    pub source: PathBuf,
    pub daemon: Daemon,
    pub tmux: Tmux,
    pub claude: Claude,
    pub accounts: Vec<Account>,
    pub shared: Shared,
    pub pool: Pool,
    pub dedicated: Vec<Dedicated>,
    pub queues: Vec<Queue>,
    pub quota: Quota,
    pub dispatch: Dispatch,
    pub hooks: Hooks,
    #[serde(default)]
    pub screen: Screen,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Daemon {
    pub tick: DurationMs,
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tmux {
    /// `tmux -L SOCKET`; empty means the user's default server.
    pub socket: String,
    pub backend: Backend,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claude {
    pub command: String,
    pub args: Vec<String>,
    /// Sorted by name so launch lines are deterministic. Values are secrets (API keys,
    /// tokens): they reach Claude through `Config::env_file`, never a typed line, and are
    /// written `"<redacted>"` wherever a configuration is serialised (trace headers).
    #[serde(serialize_with = "redacted_values")]
    pub env: Vec<(String, String)>,
    /// Launch with `--settings` carrying ccl's hooks and status line (see `signals.rs`).
    /// Absent from a trace recorded before the key existed: those launched without it.
    #[serde(default)]
    pub signals: bool,
}

/// What a serialised configuration holds in place of each `claude.env` value.
pub const REDACTED: &str = "<redacted>";

fn redacted_values<S: serde::Serializer>(env: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(env.len()))?;
    for (k, _) in env {
        seq.serialize_element(&(k, REDACTED))?;
    }
    seq.end()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub name: AccountName,
    pub home: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shared {
    pub target: PathBuf,
    pub links: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub prefix: String,
    pub start_index: u32,
    pub min: u32,
    pub max: u32,
    pub workdir: PathBuf,
}

impl Pool {
    /// The pool's session names, in index order.
    pub fn names(&self) -> impl Iterator<Item = SessionName> + '_ {
        (self.start_index..self.start_index + self.max).map(move |i| SessionName::from(format!("{}{}", self.prefix, i)))
    }

    /// Is `name` exactly `prefix + i` with `i` in range (decimal, no sign, no leading zero)?
    pub fn contains(&self, name: &str) -> bool {
        let Some(digits) = name.strip_prefix(&self.prefix) else {
            return false;
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        if digits.len() > 1 && digits.starts_with('0') {
            return false;
        }
        match digits.parse::<u64>() {
            Ok(i) => i >= self.start_index as u64 && i < self.start_index as u64 + self.max as u64,
            Err(_) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dedicated {
    pub name: SessionName,
    pub workdir: PathBuf,
}

/// A queue's directories under `PROJECT/.agent-queue/`, in the order a task passes
/// through them.
pub const STATES: [&str; 4] = ["inbox", "running", "done", "failed"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub name: QueueName,
    pub project: PathBuf,
    /// Whether a task body may start with `/` (a slash command such as `/compact`); off,
    /// such a task is filed to `failed/`, since `/logout` or `/exit` act on the account or
    /// the session rather than being a prompt.
    #[serde(default)]
    pub slash_commands: bool,
    /// Tasks of this queue running at once: 1 without isolation (one checkout never has
    /// two agents), the pool size with worktrees unless set.
    #[serde(default = "one")]
    pub max_running: u32,
    #[serde(default)]
    pub isolation: Isolation,
    /// Where task worktrees are created (`PROJECT/.agent-queue/worktrees` by default).
    #[serde(default)]
    pub worktree_dir: PathBuf,
}

fn one() -> u32 {
    1
}

impl Queue {
    /// A queue without isolation (one task at a time), as a `[[queue]]` with only
    /// `name` and `project` gives.
    pub fn new(name: &str, project: PathBuf) -> Queue {
        Queue {
            name: name.into(),
            worktree_dir: project.join(".agent-queue").join("worktrees"),
            project,
            max_running: 1,
            isolation: Isolation::None,
            slash_commands: false,
        }
    }

    pub fn dir(&self, state: &str) -> PathBuf {
        self.project.join(".agent-queue").join(state)
    }

    /// Whether a Claude working in `cwd` works for this queue: in its project, or (when
    /// isolated) in one of its task worktrees.
    pub fn holds_workdir(&self, cwd: &Path) -> bool {
        cwd == self.project
            || (self.isolation == Isolation::Worktree
                && cwd.starts_with(&self.worktree_dir)
                && cwd != self.worktree_dir)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    pub reactivate_cooldown: DurationMs,
    pub confirm_polls: u32,
    pub default_reset: DurationMs,
    #[serde(default)]
    pub on_warning: OnWarning,
    /// Percent of the active account's 5-hour or weekly window at which the fleet moves
    /// to another account at its turn boundaries; 0 turns it off.
    #[serde(default = "default_swap_at")]
    pub swap_at: u32,
}

/// `quota.swap_at` when the file does not set it.
pub const DEFAULT_SWAP_AT: u32 = 95;

fn default_swap_at() -> u32 {
    DEFAULT_SWAP_AT
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispatch {
    /// An inbox file is taken only once its size and mtime were the same on two scans
    /// and its mtime is at least this old; 0 takes a file at first sight (for inboxes
    /// written only by atomic renames). Traces from before the key replay as 0, which is
    /// how they were recorded.
    #[serde(default)]
    pub settle: DurationMs,
    pub submit_delay: DurationMs,
    pub task_timeout: DurationMs,
    pub continue_prompt: String,
}

/// Where a configuration comes from, in the order it is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `-c PATH`.
    Flag,
    /// `$CCL_CONFIG`.
    Env,
    /// `./ccl.toml`.
    Local,
    /// `$XDG_CONFIG_HOME/ccl/ccl.toml` (`~/.config/ccl/ccl.toml`).
    Xdg,
}

/// What configuration discovery looks at: the process's environment and working
/// directory, passed in so the order can be tested without touching them.
#[derive(Debug, Clone, Default)]
pub struct Searched {
    pub ccl_config: Option<PathBuf>,
    pub cwd: PathBuf,
    pub xdg: Option<PathBuf>,
}

/// `$XDG_CONFIG_HOME/ccl/ccl.toml`, else `$HOME/.config/ccl/ccl.toml`; a relative
/// `XDG_CONFIG_HOME` is ignored, as the XDG specification says.
pub fn xdg_config_path(xdg_config_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    let base = match xdg_config_home.filter(|p| p.is_absolute()) {
        Some(x) => x,
        None => home?.join(".config"),
    };
    Some(base.join("ccl").join("ccl.toml"))
}

/// The directory of a configuration file at `path`, as written (`.` for a bare file
/// name): what its relative paths resolve against.
pub fn file_dir(path: &Path) -> &Path {
    path.parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .unwrap_or(Path::new("."))
}

/// What parsing a configuration needs from the machine it runs on, handed in by the caller
/// so that parsing itself reads nothing (`ccl::config_file` fills it from the real one).
pub struct Host<'a> {
    /// `~` expands to this.
    pub home: Option<&'a Path>,
    /// The directory relative paths in the file resolve against: the file's own, absolute.
    pub base: PathBuf,
    /// Whether two paths name one existing directory (through a symlink, say). Paths that
    /// do not exist yet cannot be compared and count as different.
    pub same_dir: &'a dyn Fn(&Path, &Path) -> bool,
}

impl Config {
    /// Parses `text` as if read from `path`; `home` expands `~`. Relative paths resolve
    /// against the file's directory as written, and two spellings of one directory are told
    /// apart only by their text: [`Config::parse_on`] is the variant that knows the machine.
    pub fn parse(text: &str, path: &Path, home: Option<&Path>) -> Result<Config> {
        let base = file_dir(path).to_path_buf();
        Config::parse_on(
            text,
            path,
            &Host {
                home,
                base,
                same_dir: &|_, _| false,
            },
        )
    }

    /// Parses `text` as if read from `path`, with what the caller knows of the machine.
    pub fn parse_on(text: &str, path: &Path, host: &Host<'_>) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let start = e.span().map(|s| s.start);
            let (line, col) = start.map(|s| line_col(text, s)).unwrap_or((1, 1));
            let msg = e.message().replace('`', "'");
            match start.and_then(|s| key_of_value_at(text, s)) {
                Some(key) => anyhow::anyhow!("{}:{line}:{col}: {key}: {msg}", path.display()),
                None => anyhow::anyhow!("{}:{line}:{col}: {msg}", path.display()),
            }
        })?;
        let mut problems = Problems::default();
        let config = from_raw(raw, path, host, &mut problems);
        if problems.list.is_empty() {
            return Ok(config);
        }
        // The text parsed as TOML above, so it parses here too; should it not, every
        // problem still names the file.
        let doc = toml_edit::ImDocument::parse(text).ok();
        let list: Vec<String> = problems
            .list
            .iter()
            .map(|(at, msg)| {
                let (line, col) = doc
                    .as_ref()
                    .and_then(|d| locate(d, at))
                    .map(|offset| line_col(text, offset))
                    .unwrap_or((1, 1));
                format!("{}:{line}:{col}: {msg}", path.display())
            })
            .collect();
        Err(anyhow::anyhow!("{}", list.join("\n")))
    }

    /// Is `name` a session ccl manages (pool range or a configured dedicated name)?
    pub fn is_managed(&self, name: &str) -> bool {
        self.pool.contains(name) || self.dedicated.iter().any(|d| d.name == name)
    }

    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name == name)
    }

    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.name == name)
    }

    pub fn state_file(&self) -> PathBuf {
        self.daemon.state_dir.join("state.json")
    }

    /// The file (mode 0600, in the 0700 `state_dir`) that carries `claude.env` to each
    /// launch: the launch line sources it instead of spelling the values out.
    pub fn env_file(&self) -> PathBuf {
        self.daemon.state_dir.join("claude.env")
    }

    /// Where hooks spool their reports and the daemon's wake-up FIFO lives.
    pub fn signals_dir(&self) -> PathBuf {
        self.daemon.state_dir.join("signals")
    }

    /// The `--settings` file given to Claudes launched under `account` (written by the
    /// daemon at start; its hooks name the account for the status line).
    pub fn signal_settings(&self, account: &str) -> PathBuf {
        self.signals_dir().join(format!("settings-{account}.json"))
    }
}

/// Problems found while validating, each with the key it is about: a path of table keys
/// and array indices (`["account", "1", "home"]`), turned into a line and column once
/// validation is over.
#[derive(Default)]
struct Problems {
    list: Vec<(Vec<String>, String)>,
}

impl Problems {
    /// A problem at the first of `places` present in the file (a rule across keys names
    /// each key it involves; a key left at its default is not in the file), else at the
    /// nearest table that is.
    fn at(&mut self, places: &[&[&str]], msg: impl Into<String>) {
        let mut keys: Vec<Vec<String>> = places
            .iter()
            .map(|p| p.iter().map(|k| k.to_string()).collect())
            .collect();
        // Only the first is kept as data; `locate` tries the others through `fallbacks`.
        let first = keys.remove(0);
        let mut at = first;
        for other in keys {
            at.push(FALLBACK.into());
            at.extend(other);
        }
        self.list.push((at, msg.into()));
    }
}

/// Separates alternative key paths inside one problem's path (not a valid TOML key
/// produced by anything in this file, so it cannot clash with a real key).
const FALLBACK: &str = "\0or";

/// The byte offset of the value at `path` (see [`Problems::at`]) in the document: the
/// first alternative that exists, else the deepest table on the way to the first one.
fn locate(doc: &toml_edit::ImDocument<&str>, path: &[String]) -> Option<usize> {
    let alternatives: Vec<&[String]> = path.split(|k| k == FALLBACK).collect();
    for keys in &alternatives {
        if let (Some(offset), true) = find(Node::Item(doc.as_item()), keys) {
            return Some(offset);
        }
    }
    find(Node::Item(doc.as_item()), alternatives[0]).0
}

/// A node of the parsed document: an item (table, array of tables, value), a table of an
/// array of tables, or a value inside an array or an inline table.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

/// Walks `keys` from `node`: the offset of the deepest node reached that has a span, and
/// whether every key was found.
fn find(node: Node<'_>, keys: &[String]) -> (Option<usize>, bool) {
    use toml_edit::{Item, Value};
    let here = match node {
        Node::Item(i) => i.span(),
        Node::Table(t) => t.span(),
        Node::Value(v) => v.span(),
    }
    .map(|r| r.start);
    let Some((key, rest)) = keys.split_first() else {
        return (here, true);
    };
    let index = key.parse::<usize>().ok();
    let next = match (node, index) {
        (Node::Item(Item::ArrayOfTables(a)), Some(i)) => a.get(i).map(Node::Table),
        (Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)), Some(i)) => a.get(i).map(Node::Value),
        (Node::Item(Item::Table(t)) | Node::Table(t), _) => t.get(key).map(Node::Item),
        (Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)), _) => {
            t.get(key).map(Node::Value)
        }
        _ => None,
    };
    match next {
        Some(next) => {
            let (found, all) = find(next, rest);
            (found.or(here), all)
        }
        None => (here, false),
    }
}

/// The dotted key (`daemon.tick`) whose value starts at `offset`, when `offset` lies
/// after the `=` of a `key = value` line: a value error then names its key as well as its
/// place. The table is the nearest `[table]` or `[[table]]` header above.
fn key_of_value_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let (key, _) = before[line_start..].split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let table = before[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("[[")
            .and_then(|t| t.split_once("]]"))
            .or_else(|| l.strip_prefix('[').and_then(|t| t.split_once(']')))
            .map(|(t, _)| t.trim().to_string())
    });
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// Expands `~` and resolves relative paths against the configuration file's directory.
/// `at` is the key the path came from, for problems.
fn resolve(path: &str, base: &Path, home: Option<&Path>, at: &[&str], problems: &mut Problems) -> PathBuf {
    let what = at.join(".");
    let expanded = if path == "~" || path.starts_with("~/") {
        match home {
            Some(h) => h.join(path.trim_start_matches('~').trim_start_matches('/')),
            None => {
                problems.at(&[at], format!("{what}: cannot expand '~' because HOME is not set"));
                PathBuf::from(path)
            }
        }
    } else {
        PathBuf::from(path)
    };
    if path.is_empty() {
        problems.at(&[at], format!("{what} must not be empty"));
    }
    let joined = if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    };
    normalize(&joined)
}

/// `claude.command` as it will be run: `~` expanded and a relative path (one holding a
/// '/') resolved against the configuration's directory, since the launch line runs in
/// the session's working directory; a bare name stays a name looked up on PATH.
fn claude_command(command: &str, base: &Path, home: Option<&Path>, problems: &mut Problems) -> String {
    if command == "~" || command.starts_with("~/") || (command.contains('/') && !command.starts_with('/')) {
        resolve(command, base, home, &["claude", "command"], problems)
            .to_string_lossy()
            .into_owned()
    } else {
        command.to_string()
    }
}

/// Removes `.` and resolves `..` lexically so equal paths compare equal.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn from_raw(raw: RawConfig, path: &Path, host: &Host<'_>, problems: &mut Problems) -> Config {
    let (base, home) = (host.base.as_path(), host.home);
    let mut res = |p: &str, at: &[&str]| resolve(p, base, home, at, problems);
    let state_dir = res(&raw.daemon.state_dir, &["daemon", "state_dir"]);
    let accounts: Vec<Account> = raw
        .account
        .iter()
        .enumerate()
        .map(|(i, a)| Account {
            name: a.name.as_str().into(),
            home: res(&a.home, &["account", &i.to_string(), "home"]),
        })
        .collect();
    let target = res(&raw.shared.target, &["shared", "target"]);
    let pool_workdir = res(&raw.pool.workdir, &["pool", "workdir"]);
    let dedicated: Vec<Dedicated> = raw
        .dedicated
        .iter()
        .enumerate()
        .map(|(i, d)| Dedicated {
            name: d.name.as_str().into(),
            workdir: res(&d.workdir, &["dedicated", &i.to_string(), "workdir"]),
        })
        .collect();
    let queues: Vec<Queue> = raw
        .queue
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let project = res(&q.project, &["queue", &i.to_string(), "project"]);
            let worktree_dir = match &q.worktree_dir {
                Some(dir) => res(dir, &["queue", &i.to_string(), "worktree_dir"]),
                None => project.join(".agent-queue").join("worktrees"),
            };
            let max_running = q.max_running.unwrap_or(match q.isolation {
                Isolation::None => 1,
                Isolation::Worktree => raw.pool.max,
            });
            Queue {
                name: q.name.as_str().into(),
                project,
                max_running,
                isolation: q.isolation,
                worktree_dir,
                slash_commands: q.slash_commands,
            }
        })
        .collect();

    let config = Config {
        source: path.to_path_buf(),
        daemon: Daemon {
            tick: raw.daemon.tick,
            state_dir,
        },
        tmux: Tmux {
            socket: raw.tmux.socket,
            backend: raw.tmux.backend,
        },
        claude: Claude {
            command: claude_command(&raw.claude.command, base, home, problems),
            args: raw.claude.args,
            env: raw.claude.env.into_iter().collect(),
            signals: raw.claude.signals,
        },
        accounts,
        shared: Shared {
            target,
            links: raw.shared.links,
        },
        pool: Pool {
            prefix: raw.pool.prefix,
            start_index: raw.pool.start_index,
            min: raw.pool.min,
            max: raw.pool.max,
            workdir: pool_workdir,
        },
        dedicated,
        queues,
        quota: Quota {
            reactivate_cooldown: raw.quota.reactivate_cooldown,
            confirm_polls: raw.quota.confirm_polls,
            default_reset: raw.quota.default_reset,
            on_warning: raw.quota.on_warning,
            swap_at: raw.quota.swap_at,
        },
        dispatch: Dispatch {
            settle: raw.dispatch.settle,
            submit_delay: raw.dispatch.submit_delay,
            task_timeout: raw.dispatch.task_timeout,
            continue_prompt: raw.dispatch.continue_prompt,
        },
        hooks: raw.hooks,
        screen: raw.screen,
    };
    validate(&config, host, problems);
    config
}

/// Cross-field rules, all checked so the operator sees every problem at once.
fn validate(c: &Config, host: &Host<'_>, problems: &mut Problems) {
    let same_dir = host.same_dir;
    if c.daemon.tick.0 == 0 {
        problems.at(&[&["daemon", "tick"]], "daemon.tick must be greater than 0");
    }
    if c.accounts.is_empty() {
        problems.at(&[&["account"]], "at least one [[account]] is required");
    }
    for (i, a) in c.accounts.iter().enumerate() {
        let n = i.to_string();
        if !valid_name(&a.name) {
            problems.at(
                &[&["account", &n, "name"]],
                format!(
                    "account name '{}' must be non-empty letters, digits, '-', '_' or '.'",
                    a.name
                ),
            );
        }
        if c.accounts[..i].iter().any(|b| b.name == a.name) {
            problems.at(
                &[&["account", &n, "name"]],
                format!("account name '{}' is used twice", a.name),
            );
        }
        if c.accounts[..i].iter().any(|b| b.home == a.home) {
            problems.at(
                &[&["account", &n, "home"]],
                format!("account home {} is used by more than one account", a.home.display()),
            );
        } else if let Some(b) = c.accounts[..i].iter().find(|b| same_dir(&b.home, &a.home)) {
            // Two spellings of one directory (a symlink) would run both "accounts" under
            // one login, and a swap between them would change nothing.
            problems.at(
                &[&["account", &n, "home"]],
                format!(
                    "account '{}' home {} is the same directory as account '{}' home {}",
                    a.name,
                    a.home.display(),
                    b.name,
                    b.home.display()
                ),
            );
        }
    }
    for (i, l) in c.shared.links.iter().enumerate() {
        let at: &[&str] = &["shared", "links", &i.to_string()];
        if l.is_empty() || l.contains('/') || l == "." || l == ".." {
            problems.at(
                &[at],
                format!("shared.links entry '{l}' must be a plain directory name"),
            );
        }
        if c.shared.links[..i].contains(l) {
            problems.at(&[at], format!("shared.links entry '{l}' is listed twice"));
        }
    }
    if c.quota.swap_at > 100 {
        problems.at(
            &[&["quota", "swap_at"]],
            format!(
                "quota.swap_at must be a percentage from 0 (off) to 100, not {}",
                c.quota.swap_at
            ),
        );
    }
    if c.claude.command.trim().is_empty() {
        problems.at(&[&["claude", "command"]], "claude.command must not be empty");
    }
    // The launch line is typed into a shell: a control character in it (a newline, a
    // bell) would end or garble the line before CLAUDE_CONFIG_DIR or the session id.
    if has_control(&c.claude.command) {
        problems.at(&[&["claude", "command"]], "claude.command contains a control character");
    }
    for (i, arg) in c.claude.args.iter().enumerate() {
        if has_control(arg) {
            problems.at(
                &[&["claude", "args", &i.to_string()]],
                format!("claude.args[{i}] contains a control character"),
            );
        }
    }
    for (k, v) in &c.claude.env {
        let at: &[&str] = &["claude", "env", k];
        if k.is_empty()
            || !k.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            || k.starts_with(|ch: char| ch.is_ascii_digit())
        {
            problems.at(
                &[at],
                format!("claude.env key '{k}' is not a valid environment variable name"),
            );
        }
        if k == "CLAUDE_CONFIG_DIR" {
            problems.at(
                &[at],
                "claude.env must not set CLAUDE_CONFIG_DIR: ccl sets it per account",
            );
        }
        if has_control(v) {
            problems.at(&[at], format!("claude.env value of '{k}' contains a control character"));
        }
    }
    if c.pool.max < 1 {
        problems.at(&[&["pool", "max"], &["pool"]], "pool.max must be at least 1");
    }
    if c.pool.min > c.pool.max {
        problems.at(
            &[&["pool", "min"], &["pool", "max"], &["pool"]],
            format!("pool.min ({}) must not exceed pool.max ({})", c.pool.min, c.pool.max),
        );
    }
    if c.pool.start_index.checked_add(c.pool.max).is_none() {
        problems.at(
            &[&["pool", "start_index"], &["pool", "max"], &["pool"]],
            format!(
                "pool.start_index + pool.max ({} + {}) must not exceed {}",
                c.pool.start_index,
                c.pool.max,
                u32::MAX
            ),
        );
    }
    if !valid_session_name(&c.pool.prefix) {
        problems.at(
            &[&["pool", "prefix"]],
            format!(
                "pool.prefix '{}' must be non-empty letters, digits, '-' or '_' (tmux does not allow '.' or ':' in session names)",
                c.pool.prefix
            ),
        );
    }
    for (i, d) in c.dedicated.iter().enumerate() {
        let at: &[&str] = &["dedicated", &i.to_string(), "name"];
        if !valid_session_name(&d.name) {
            problems.at(
                &[at],
                format!(
                    "dedicated name '{}' must be non-empty letters, digits, '-' or '_' (tmux does not allow '.' or ':' in session names)",
                    d.name
                ),
            );
        }
        if c.pool.contains(&d.name) {
            problems.at(
                &[at],
                format!(
                    "dedicated name '{}' lies inside the pool range {}{}..{}{}",
                    d.name,
                    c.pool.prefix,
                    c.pool.start_index,
                    c.pool.prefix,
                    c.pool.start_index as u64 + c.pool.max.max(1) as u64 - 1
                ),
            );
        }
        if c.dedicated[..i].iter().any(|e| e.name == d.name) {
            problems.at(&[at], format!("dedicated name '{}' is listed twice", d.name));
        }
    }
    for (i, q) in c.queues.iter().enumerate() {
        let n = i.to_string();
        if !valid_name(&q.name) {
            problems.at(
                &[&["queue", &n, "name"]],
                format!(
                    "queue name '{}' must be non-empty letters, digits, '-', '_' or '.'",
                    q.name
                ),
            );
        }
        if c.queues[..i].iter().any(|r| r.name == q.name) {
            problems.at(
                &[&["queue", &n, "name"]],
                format!("queue name '{}' is used twice", q.name),
            );
        }
        if c.queues[..i]
            .iter()
            .any(|r| r.project == q.project || same_dir(&r.project, &q.project))
        {
            problems.at(
                &[&["queue", &n, "project"]],
                format!("queue project {} is used by more than one queue", q.project.display()),
            );
        }
        if q.max_running < 1 {
            problems.at(
                &[&["queue", &n, "max_running"]],
                format!("queue '{}': max_running must be at least 1", q.name),
            );
        }
        if q.isolation == Isolation::None && q.max_running > 1 {
            problems.at(
                &[&["queue", &n, "max_running"]],
                format!(
                    "queue '{}': max_running = {} needs isolation = \"worktree\" (without isolation all tasks share one checkout, so at most 1 runs at once)",
                    q.name, q.max_running
                ),
            );
        }
        if q.isolation == Isolation::Worktree {
            // The queue's own directories are taken by rename and scanned: a worktree
            // among them would be scanned as tasks or moved with them.
            let queue_root = q.project.join(".agent-queue");
            if STATES.iter().any(|s| q.worktree_dir.starts_with(queue_root.join(s))) {
                problems.at(
                    &[&["queue", &n, "worktree_dir"]],
                    format!(
                        "queue '{}': worktree_dir {} lies inside one of the queue's task directories",
                        q.name,
                        q.worktree_dir.display()
                    ),
                );
            }
        }
    }
    if c.quota.confirm_polls == 0 {
        problems.at(&[&["quota", "confirm_polls"]], "quota.confirm_polls must be at least 1");
    }
    if c.dispatch.task_timeout.0 == 0 {
        problems.at(
            &[&["dispatch", "task_timeout"]],
            "dispatch.task_timeout must be greater than 0",
        );
    }
    if let Err(errors) = crate::screen::Extra::compile(
        &c.screen.extra_limit,
        &c.screen.extra_server_error,
        &c.screen.extra_warning,
    ) {
        for e in errors {
            problems.at(&[&["screen"]], e);
        }
    }
    if c.hooks.timeout.0 == 0 {
        problems.at(&[&["hooks", "timeout"]], "hooks.timeout must be greater than 0");
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A tmux session name ccl can find again: tmux replaces '.' and ':' (its target
/// separators) with '_' when it creates a session.
fn valid_session_name(name: &str) -> bool {
    valid_name(name) && !name.contains('.')
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/ccl/ccl.toml"), Some(Path::new("/home/op")))
    }

    const MINIMAL: &str = "[[account]]\nname = \"a\"\nhome = \"~/.claude-a\"\n";

    #[test]
    fn durations() {
        assert_eq!(DurationMs::parse("500ms"), Ok(DurationMs(500)));
        assert_eq!(DurationMs::parse("2s"), Ok(DurationMs(2_000)));
        assert_eq!(DurationMs::parse("5m"), Ok(DurationMs(300_000)));
        assert_eq!(DurationMs::parse("5h"), Ok(DurationMs(18_000_000)));
        assert!(DurationMs::parse("5").is_err());
        assert!(DurationMs::parse("2 weeks").is_err());
        assert_eq!(DurationMs(300_000).to_string(), "5m");
        assert_eq!(DurationMs(1_500).to_string(), "1500ms");
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let err = parse("[daemon]\ntick = \"2s\"\n  bogus_key = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/ccl/ccl.toml:3:3: unknown field 'bogus_key'"),
            "{err}"
        );
        assert!(err.contains("expected"), "{err}");
    }

    #[test]
    fn swap_at_is_a_percentage_defaulting_to_95() {
        assert_eq!(parse(MINIMAL).unwrap().quota.swap_at, 95);
        assert_eq!(
            parse(&format!("{MINIMAL}[quota]\nswap_at = 0\n"))
                .unwrap()
                .quota
                .swap_at,
            0
        );
        let err = parse(&format!("{MINIMAL}[quota]\nswap_at = 120\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("quota.swap_at must be a percentage from 0 (off) to 100, not 120"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_names_its_place() {
        let err = parse(&format!("{MINIMAL}[quota]\ndefault_reset = \"5 hours\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/ccl/ccl.toml:5:17:"), "{err}");
        assert!(err.contains("unknown unit"), "{err}");
    }

    #[test]
    fn paths_expand_tilde_and_resolve_relative_to_the_file() {
        let c = parse(&format!("{MINIMAL}[[queue]]\nname = \"q\"\nproject = \"proj/x\"\n")).unwrap();
        assert_eq!(c.accounts[0].home, Path::new("/home/op/.claude-a"));
        assert_eq!(c.queues[0].project, Path::new("/etc/ccl/proj/x"));
        assert_eq!(
            c.queues[0].dir("inbox"),
            Path::new("/etc/ccl/proj/x/.agent-queue/inbox")
        );
    }

    #[test]
    fn every_cross_field_problem_is_reported_at_once() {
        let text = r#"
[daemon]
tick = "0s"
[pool]
min = 5
max = 2
[[dedicated]]
name = "ccl-auto-12"
workdir = "/w"
[[dedicated]]
name = "ops"
workdir = "/w"
[[dedicated]]
name = "ops"
workdir = "/w"
[[queue]]
name = "q"
project = "/p"
[[queue]]
name = "q"
project = "/p"
"#;
        let err = parse(text).unwrap_err().to_string();
        for want in [
            "tick must be greater than 0",
            "at least one [[account]]",
            "pool.min (5) must not exceed pool.max (2)",
            "'ccl-auto-12' lies inside the pool range",
            "dedicated name 'ops' is listed twice",
            "queue name 'q' is used twice",
            "queue project /p is used by more than one queue",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        // Every problem names its place: the key that is wrong, or for a rule across
        // keys, one of the keys involved.
        let place = regex::Regex::new(r"^/etc/ccl/ccl\.toml:\d+:\d+: ").unwrap();
        assert!(err.lines().all(|l| place.is_match(l)), "{err}");
        assert!(err.contains("ccl.toml:5:7: pool.min (5) must not exceed"), "{err}");
        assert!(
            err.contains("ccl.toml:14:8: dedicated name 'ops' is listed twice"),
            "{err}"
        );
    }

    /// Values `check` used to accept although `run` could not work with them: each is
    /// refused by the configuration itself, naming the line and column of the value.
    #[test]
    fn values_that_would_break_a_running_daemon_are_refused_with_their_place() {
        let cases = [
            // tmux turns '.' and ':' in a session name into '_', so no pool session would
            // ever be found under its own name.
            ("[pool]\nprefix = \"ccl.auto-\"\n", "5:10", "pool.prefix 'ccl.auto-'"),
            ("[pool]\nprefix = \"ccl:auto-\"\n", "5:10", "pool.prefix 'ccl:auto-'"),
            (
                "[[dedicated]]\nname = \"ops.main\"\nworkdir = \"/w\"\n",
                "5:8",
                "dedicated name 'ops.main'",
            ),
            // Milliseconds past i64 turned negative: every task timed out at once.
            (
                "[dispatch]\ntask_timeout = \"200000000000d\"\n",
                "5:16",
                "duration '200000000000d' is too large",
            ),
            ("[quota]\ndefault_reset = \"9999999999h\"\n", "5:17", "is too large"),
            // start_index + max past u32::MAX: an empty (or wrapped) pool.
            (
                "[pool]\nstart_index = 4294967290\nmax = 10\nmin = 1\n",
                "5:15",
                "pool.start_index + pool.max",
            ),
            // A control character cut the launch line: Claude started without
            // CLAUDE_CONFIG_DIR, under the wrong account.
            (
                "[claude]\nenv = { FOO = \"a\\u0007b\" }\n",
                "5:15",
                "claude.env value of 'FOO' contains a control character",
            ),
            (
                "[claude]\nargs = [\"--x\", \"a\\nb\"]\n",
                "5:16",
                "claude.args[1] contains a control character",
            ),
        ];
        for (extra, at, want) in cases {
            let err = format!("{:#}", parse(&format!("{MINIMAL}{extra}")).unwrap_err());
            let prefix = format!("/etc/ccl/ccl.toml:{at}: ");
            assert!(
                err.lines().any(|l| l.starts_with(&prefix) && l.contains(want)),
                "{extra:?}: want {prefix}…{want}… in:\n{err}"
            );
        }
    }

    #[test]
    fn queue_bounds_and_isolation_have_their_defaults_and_rules() {
        let text = format!(
            "{MINIMAL}[pool]\nmin = 4\nmax = 4\n[[queue]]\nname = \"plain\"\nproject = \"/p\"\n\
             [[queue]]\nname = \"iso\"\nproject = \"/i\"\nisolation = \"worktree\"\n\
             [[queue]]\nname = \"two\"\nproject = \"/t\"\nisolation = \"worktree\"\nmax_running = 2\nworktree_dir = \"~/wt\"\n"
        );
        let c = parse(&text).unwrap();
        let q = |n: &str| c.queue(n).unwrap().clone();
        assert_eq!((q("plain").max_running, q("plain").isolation), (1, Isolation::None));
        assert_eq!((q("iso").max_running, q("iso").isolation), (4, Isolation::Worktree));
        assert_eq!(q("iso").worktree_dir, Path::new("/i/.agent-queue/worktrees"));
        assert_eq!(q("two").max_running, 2);
        assert_eq!(q("two").worktree_dir, Path::new("/home/op/wt"));

        let err = parse(&format!(
            "{MINIMAL}[[queue]]\nname = \"q\"\nproject = \"/p\"\nmax_running = 3\n\
             [[queue]]\nname = \"z\"\nproject = \"/z\"\nmax_running = 0\n\
             [[queue]]\nname = \"w\"\nproject = \"/w\"\nisolation = \"worktree\"\nworktree_dir = \"/w/.agent-queue/inbox/wt\"\n"
        ))
        .unwrap_err()
        .to_string();
        for want in [
            "queue 'q': max_running = 3 needs isolation = \"worktree\"",
            "queue 'z': max_running must be at least 1",
            "queue 'w': worktree_dir /w/.agent-queue/inbox/wt lies inside one of the queue's task directories",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
        let err = parse(&format!(
            "{MINIMAL}[[queue]]\nname = \"q\"\nproject = \"/p\"\nisolation = \"branch\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown variant 'branch'"), "{err}");
    }

    #[test]
    fn extra_screen_patterns_must_compile() {
        let err = parse(&format!("{MINIMAL}[screen]\nextra_limit = [\"ok\", \"(unclosed\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("screen.extra_limit[1] is not a valid regex"), "{err}");
        let c = parse(&format!(
            "{MINIMAL}[screen]\nextra_warning = [\"nearly out of usage\"]\n"
        ))
        .unwrap();
        assert_eq!(c.screen.extra_warning, vec!["nearly out of usage".to_string()]);
    }

    #[test]
    fn duplicate_accounts_are_refused() {
        let text = "[[account]]\nname = \"a\"\nhome = \"/h\"\n[[account]]\nname = \"a\"\nhome = \"/h\"\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains("account name 'a' is used twice"), "{err}");
        assert!(
            err.contains("account home /h is used by more than one account"),
            "{err}"
        );
    }

    #[test]
    fn pool_range_is_exact() {
        let c = parse(MINIMAL).unwrap();
        for inside in ["ccl-auto-11", "ccl-auto-15", "ccl-auto-20"] {
            assert!(c.is_managed(inside), "{inside}");
        }
        for outside in [
            "ccl-auto-9",
            "ccl-auto-10",
            "ccl-auto-21",
            "ccl-auto-1x",
            "ccl-auto-011",
            "ccl-auto-",
            "ccl-1",
            "ccl-auto-+12",
        ] {
            assert!(!c.is_managed(outside), "{outside}");
        }
    }
}
