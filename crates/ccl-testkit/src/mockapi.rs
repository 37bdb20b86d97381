//! A mock of the Anthropic Messages API, good enough to run the real Claude Code against it
//! offline: it owns a loopback HTTP/1.1 server (std networking, one thread per connection),
//! the per-account behaviour (normal streamed answers, subscription usage limits, server
//! errors), told apart by the bearer token each request carries, and the record of every
//! request seen. Tests start it in-process; the `ccl-mock-api` binary wraps it for
//! `ccl demo` and external scripts, with a control file re-read on every request and a
//! JSON Lines request log.
//!
//! The server answers `Connection: close` on every response, so each request has its own
//! connection and a streamed body simply ends when the connection does.

use std::collections::{HashMap, VecDeque};
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Longest request head (request line and headers) accepted; Claude's are about 2 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Longest request body accepted; a long conversation with pasted files stays well below.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Connections served at once; more are answered 503 and closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long one read may wait for the client before the connection is dropped.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests kept for `requests()`; the oldest go first.
pub const MAX_SEEN_REQUESTS: usize = 10_000;
/// Longest reply delay honoured, so a typo in a control file cannot hang a client forever.
pub const MAX_DELAY_MS: u64 = 10 * 60 * 1000;
/// Input read and thrown away after refusing a request, and how long to wait for it.
const MAX_DRAIN_BYTES: u64 = 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a delayed reply looks at the stop flag.
const DELAY_STEP: Duration = Duration::from_millis(10);
/// A control-file key that sets the behaviour of every token not named in it.
pub const CONTROL_DEFAULT_KEY: &str = "*";
/// Placeholder in a `Normal` reply replaced by the first line of the prompt.
pub const PROMPT_PLACEHOLDER: &str = "{prompt}";

/// What the mock does with a `/v1/messages` request from one account.
///
/// As JSON (the control file) it is tagged by `kind`: `{"kind": "normal", "reply": "Done:
/// {prompt}", "delay_ms": 0}`, `{"kind": "limit5h", "reset_unix": 1764000000}`,
/// `{"kind": "limit_weekly", ...}`, `{"kind": "error500", "message": "..."}`,
/// `{"kind": "overloaded529"}`, `{"kind": "unauthorized401", "message": "..."}`. A normal
/// answer may carry the account's use: `"usage": {"five_hour_pct": 97, "five_hour_reset_unix":
/// …, "seven_day_pct": 31, "seven_day_reset_unix": …}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Behaviour {
    /// A streamed (or JSON) answer whose text is `reply` with `{prompt}` replaced by the
    /// first line of the prompt, sent `delay_ms` after the request arrived.
    Normal {
        #[serde(default = "default_reply")]
        reply: String,
        #[serde(default)]
        delay_ms: u64,
        /// The account's use, sent as the unified utilization headers with the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Utilization>,
    },
    /// A subscription 429 naming the five-hour window, resetting at `reset_unix` (seconds).
    Limit5h { reset_unix: i64 },
    /// A subscription 429 naming the seven-day window, resetting at `reset_unix` (seconds).
    LimitWeekly { reset_unix: i64 },
    /// A 500 `api_error` whose message is shown by Claude (it may say "rate limit").
    Error500 { message: String },
    /// A 529 `overloaded_error`.
    Overloaded529,
    /// A 401 `authentication_error` (a revoked or expired login): the account cannot work.
    Unauthorized401 { message: String },
}

/// An account's use of its two windows as the API reports it on every answer (the
/// `anthropic-ratelimit-unified-5h-utilization` headers and friends), which Claude shows
/// in its status line's `rate_limits` and, past a threshold, as the passive gauge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utilization {
    /// Percent of the 5-hour window used.
    pub five_hour_pct: f64,
    pub five_hour_reset_unix: i64,
    #[serde(default)]
    pub seven_day_pct: f64,
    #[serde(default)]
    pub seven_day_reset_unix: i64,
}

/// Use at or above this share of a window is reported as `allowed_warning` with this
/// surpassed threshold, which is when Claude draws its gauge.
const WARNING_THRESHOLD: f64 = 0.9;

impl Utilization {
    /// The unified rate-limit headers of an allowed answer.
    fn headers(&self) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        let mut warning = false;
        for (window, pct, reset) in [
            ("5h", self.five_hour_pct, self.five_hour_reset_unix),
            ("7d", self.seven_day_pct, self.seven_day_reset_unix),
        ] {
            let share = pct / 100.0;
            let warn = share >= WARNING_THRESHOLD;
            warning |= warn;
            let name = |k: &str| format!("anthropic-ratelimit-unified-{window}-{k}");
            headers.push((name("utilization"), format!("{share}")));
            headers.push((name("reset"), reset.to_string()));
            headers.push((
                name("status"),
                if warn { "allowed_warning" } else { "allowed" }.to_string(),
            ));
            if warn {
                headers.push((name("surpassed-threshold"), format!("{WARNING_THRESHOLD}")));
            }
        }
        let status = if warning { "allowed_warning" } else { "allowed" };
        headers.push(("anthropic-ratelimit-unified-status".into(), status.into()));
        headers.push((
            "anthropic-ratelimit-unified-reset".into(),
            self.five_hour_reset_unix.to_string(),
        ));
        headers.push((
            "anthropic-ratelimit-unified-representative-claim".into(),
            "five_hour".into(),
        ));
        headers
    }
}

fn default_reply() -> String {
    format!("Done: {PROMPT_PLACEHOLDER}")
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::Normal {
            reply: default_reply(),
            delay_ms: 0,
            usage: None,
        }
    }
}

/// One request as the mock saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeenRequest {
    /// The bearer token (`authorization`) or API key (`x-api-key`); empty when neither.
    pub token: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// The conversation (Claude's session id) from `metadata.user_id`, else from the
    /// `x-claude-code-session-id` header.
    pub conversation: Option<String>,
    /// The text of the last user message, Claude's own `<system-reminder>` blocks left out.
    pub last_user_text: Option<String>,
    /// Whether the body asked for a streamed answer.
    pub stream: bool,
    /// When the request arrived, in ms since the epoch.
    pub at_ms: i64,
    /// When the answer (or refusal) was fully written, in ms since the epoch; None while
    /// it is being answered or when writing it failed. Latency benchmarks start here.
    pub answered_ms: Option<i64>,
    /// Tells requests apart, for `answered_ms`.
    #[serde(skip)]
    pub id: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where the mock listens and which files it shares with other processes.
#[derive(Clone, Debug, Default)]
pub struct MockOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// JSON object token → `Behaviour` (key `*` for every other token), re-read on every
    /// request; missing means the in-memory behaviours apply. Rewrite it atomically
    /// (write a sibling, rename), or a request may see it half written and fall back.
    pub control_path: Option<PathBuf>,
    /// Every `SeenRequest` is appended here as one JSON line.
    pub log_path: Option<PathBuf>,
}

/// A running mock server; stopped by `stop` or on drop.
pub struct MockApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

struct Shared {
    options: MockOptions,
    stop: AtomicBool,
    state: Mutex<State>,
    /// A clone of every open connection, so `stop` can shut them down mid-read.
    open: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    n_connections: AtomicUsize,
    next_id: AtomicU64,
    next_request: AtomicU64,
}

#[derive(Default)]
struct State {
    default: Behaviour,
    by_token: HashMap<String, Behaviour>,
    seen: VecDeque<SeenRequest>,
}

/// Locks a mutex even if a connection thread panicked while holding it: the data behind
/// these locks stays consistent between statements, so the poison carries no meaning.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl MockApi {
    /// Starts a mock on a free loopback port, every token answered normally.
    pub fn start() -> anyhow::Result<MockApi> {
        MockApi::start_with(MockOptions::default())
    }

    /// Starts a mock with a fixed port, control file or request log.
    pub fn start_with(options: MockOptions) -> anyhow::Result<MockApi> {
        // Loopback only: the mock is a test double and must never be reachable from outside.
        let listener = TcpListener::bind(("127.0.0.1", options.port))
            .with_context(|| format!("cannot bind 127.0.0.1:{}", options.port))?;
        let addr = listener.local_addr().context("cannot read the bound address")?;
        let shared = Arc::new(Shared {
            options,
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            open: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
            n_connections: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            next_request: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name("mockapi-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))
            .context("cannot spawn the accept thread")?;
        Ok(MockApi {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound loopback address, for clients that speak raw TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets what requests carrying `token` get from now on.
    pub fn set_behaviour(&self, token: &str, b: Behaviour) {
        lock(&self.shared.state).by_token.insert(token.to_string(), b);
    }

    /// Sets what requests whose token has no behaviour of its own get from now on.
    pub fn set_default(&self, b: Behaviour) {
        lock(&self.shared.state).default = b;
    }

    /// Every request seen so far (at most `MAX_SEEN_REQUESTS`, oldest first).
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.state).seen.iter().cloned().collect()
    }

    /// Stops accepting, cuts every open connection and waits for all threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        // The accept thread blocks in accept(); one connection wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = accept_thread.join();
        for stream in lock(&self.shared.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = incoming else { continue };
        if shared.n_connections.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
            let _ = write_json(
                &mut &stream,
                503,
                &[],
                &error_body("overloaded_error", "too many connections to the mock"),
            );
            continue;
        }
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.open).insert(id, clone);
        }
        shared.n_connections.fetch_add(1, Ordering::SeqCst);
        let worker_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("mockapi-conn-{id}"))
            .spawn(move || {
                if let Err(err) = serve_connection(&stream, &worker_shared) {
                    log::debug!("mock api connection {id}: {err:#}");
                }
                let _ = stream.shutdown(Shutdown::Both);
                lock(&worker_shared.open).remove(&id);
                worker_shared.n_connections.fetch_sub(1, Ordering::SeqCst);
            });
        let mut workers = lock(&shared.workers);
        // Finished workers are joined here so the list stays as long as the open connections.
        let (done, running): (Vec<_>, Vec<_>) =
            std::mem::take(&mut *workers).into_iter().partition(|w| w.is_finished());
        *workers = running;
        drop(workers);
        for worker in done {
            let _ = worker.join();
        }
        match spawned {
            Ok(handle) => lock(&shared.workers).push(handle),
            Err(err) => {
                log::warn!("mock api: cannot spawn a connection thread: {err}");
                lock(&shared.open).remove(&id);
                shared.n_connections.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// A parsed HTTP request.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why a request could not be read; each maps to one status code.
#[derive(Debug)]
enum ReadError {
    /// The client closed or timed out before a request began: nothing to answer.
    Closed,
    Malformed(&'static str),
    HeadTooLarge,
    BodyTooLarge,
    Io(io::Error),
}

fn serve_connection(stream: &TcpStream, shared: &Shared) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new(stream);
    let mut writer = stream;
    let request = match read_request(&mut reader, &mut writer) {
        Ok(request) => request,
        Err(ReadError::Closed) => return Ok(()),
        Err(ReadError::Io(err)) => return Err(err.into()),
        Err(ReadError::Malformed(why)) => {
            let body = error_body("invalid_request_error", why);
            return refuse(stream, &mut reader, 400, &body);
        }
        Err(ReadError::HeadTooLarge) => {
            let body = error_body("invalid_request_error", "request head too large");
            return refuse(stream, &mut reader, 431, &body);
        }
        Err(ReadError::BodyTooLarge) => {
            let body = error_body("request_too_large", "request body too large");
            return refuse(stream, &mut reader, 413, &body);
        }
    };
    respond(&request, &mut writer, shared)?;
    writer.flush()?;
    Ok(())
}

/// Answers a request that could not be read, then drains what the client still sends (up
/// to `MAX_DRAIN_BYTES`, `DRAIN_TIMEOUT`): closing with unread input makes the kernel send a
/// reset, which can destroy the answer before the client reads it.
fn refuse(stream: &TcpStream, reader: &mut impl Read, status: u16, body: &Value) -> anyhow::Result<()> {
    let mut writer = stream;
    write_json(&mut writer, status, &[], body)?;
    stream.shutdown(Shutdown::Write)?;
    stream.set_read_timeout(Some(DRAIN_TIMEOUT))?;
    let _ = io::copy(&mut reader.take(MAX_DRAIN_BYTES), &mut io::sink());
    Ok(())
}

fn read_request(reader: &mut impl BufRead, writer: &mut impl Write) -> Result<Request, ReadError> {
    let mut head_bytes = 0usize;
    let request_line = match read_line(reader, &mut head_bytes)? {
        Some(line) => line,
        None => return Err(ReadError::Closed),
    };
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ReadError::Malformed("bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Malformed("unsupported HTTP version"));
    }
    let mut headers = Vec::new();
    loop {
        let line =
            read_line(reader, &mut head_bytes)?.ok_or(ReadError::Malformed("connection closed inside the head"))?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ReadError::Malformed("header without a colon"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut request = Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        writer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(ReadError::Io)?;
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    request.body = if chunked {
        // Chunk-size lines get a budget of their own, so a long body in many small chunks
        // is not mistaken for an oversized head.
        let mut chunk_line_bytes = 0;
        read_chunked(reader, &mut chunk_line_bytes)?
    } else {
        let length = match request.header("content-length") {
            Some(value) => value
                .parse::<usize>()
                .map_err(|_| ReadError::Malformed("bad content-length"))?,
            None => 0,
        };
        if length > MAX_BODY_BYTES {
            return Err(ReadError::BodyTooLarge);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map_err(ReadError::Io)?;
        body
    };
    Ok(request)
}

/// Reads one CRLF (or LF) terminated line, counting it against the head limit; None at a
/// clean end of stream before any byte.
fn read_line(reader: &mut impl BufRead, head_bytes: &mut usize) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    let remaining = MAX_HEAD_BYTES.saturating_sub(*head_bytes) as u64 + 1;
    let n = match reader.take(remaining).read_until(b'\n', &mut line) {
        Ok(n) => n,
        Err(err) if line.is_empty() && matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            return Err(ReadError::Closed)
        }
        Err(err) => return Err(ReadError::Io(err)),
    };
    *head_bytes += n;
    if *head_bytes > MAX_HEAD_BYTES {
        return Err(ReadError::HeadTooLarge);
    }
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(ReadError::Malformed("connection closed inside a line"));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| ReadError::Malformed("head is not UTF-8"))
}

/// Decodes a `Transfer-Encoding: chunked` body; chunk-size lines and trailers count
/// against `MAX_HEAD_BYTES` in `line_bytes`, the data against `MAX_BODY_BYTES`.
fn read_chunked(reader: &mut impl BufRead, line_bytes: &mut usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line =
            read_line(reader, line_bytes)?.ok_or(ReadError::Malformed("connection closed inside a chunked body"))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ReadError::Malformed("bad chunk size"))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let trailer =
                    read_line(reader, line_bytes)?.ok_or(ReadError::Malformed("connection closed inside trailers"))?;
                if trailer.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY_BYTES {
            return Err(ReadError::BodyTooLarge);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(ReadError::Io)?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).map_err(ReadError::Io)?;
        if &crlf != b"\r\n" {
            return Err(ReadError::Malformed("chunk not followed by CRLF"));
        }
    }
}

fn respond(request: &Request, writer: &mut impl Write, shared: &Shared) -> io::Result<()> {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let seen = SeenRequest {
        token: token_of(request),
        path: request.target.clone(),
        conversation: conversation_of(&body).or_else(|| request.header("x-claude-code-session-id").map(str::to_string)),
        last_user_text: last_user_text(&body),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        at_ms: now_ms(),
        answered_ms: None,
        id: shared.next_request.fetch_add(1, Ordering::SeqCst),
    };
    record(shared, &seen);
    let path = request.target.split('?').next().unwrap_or("");
    if request.method == "HEAD" {
        return write_response(writer, 200, "application/json", &[], b"", false);
    }
    match (request.method.as_str(), path) {
        ("POST", "/v1/messages") => {
            let behaviour = behaviour_for(shared, &seen.token);
            answer_messages(&behaviour, &seen, &body, writer, shared)?;
            let answered_ms = now_ms();
            let mut state = lock(&shared.state);
            if let Some(r) = state.seen.iter_mut().rev().find(|r| r.id == seen.id) {
                r.answered_ms = Some(answered_ms);
            }
            Ok(())
        }
        ("POST", "/v1/messages/count_tokens") => {
            // A rough count is all Claude uses it for (context-size display).
            let input_tokens = request.body.len() / 4;
            write_json(writer, 200, &[], &json!({ "input_tokens": input_tokens }))
        }
        // Everything else (profile, settings, telemetry the env did not switch off) gets an
        // empty success, which Claude treats as "nothing to report".
        _ => write_json(writer, 200, &[], &json!({})),
    }
}

fn record(shared: &Shared, seen: &SeenRequest) {
    {
        let mut state = lock(&shared.state);
        if state.seen.len() >= MAX_SEEN_REQUESTS {
            state.seen.pop_front();
        }
        state.seen.push_back(seen.clone());
    }
    let Some(path) = &shared.options.log_path else {
        return;
    };
    let line = match serde_json::to_string(seen) {
        Ok(line) => line + "\n",
        Err(_) => return,
    };
    // One write_all of a whole line on an O_APPEND file keeps concurrent lines whole; the
    // state lock serialises writers of this process anyway.
    let _guard = lock(&shared.state);
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(err) = written {
        log::warn!("mock api: cannot append to {}: {err}", path.display());
    }
}

fn behaviour_for(shared: &Shared, token: &str) -> Behaviour {
    if let Some(path) = &shared.options.control_path {
        match std::fs::read_to_string(path) {
            Ok(text) => match serde_json::from_str::<HashMap<String, Behaviour>>(&text) {
                Ok(map) => {
                    if let Some(b) = map.get(token).or_else(|| map.get(CONTROL_DEFAULT_KEY)) {
                        return b.clone();
                    }
                }
                Err(err) => log::warn!("mock api: ignoring {}: {err}", path.display()),
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => log::warn!("mock api: cannot read {}: {err}", path.display()),
        }
    }
    let state = lock(&shared.state);
    state.by_token.get(token).unwrap_or(&state.default).clone()
}

/// The account's credential: the OAuth bearer token of a subscription login, else the API key.
fn token_of(request: &Request) -> String {
    if let Some(value) = request.header("authorization") {
        let value = value.trim();
        if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
            return value[7..].trim().to_string();
        }
        return value.to_string();
    }
    request.header("x-api-key").unwrap_or("").to_string()
}

/// The conversation id inside `metadata.user_id`: 2.1.328 sends a JSON object in a string
/// (`{"device_id":…,"account_uuid":…,"session_id":…}`), older builds
/// `user_<hash>_account_<uuid>_session_<uuid>`. Requests without metadata fall back to the
/// `x-claude-code-session-id` header, which 2.1.328 also sends.
fn conversation_of(body: &Value) -> Option<String> {
    let user_id = body.get("metadata")?.get("user_id")?.as_str()?;
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(user_id) {
        if let Some(id) = fields.get("session_id").and_then(Value::as_str) {
            return Some(id.to_string());
        }
    }
    let (_, after) = user_id.rsplit_once("session_")?;
    let id: String = after
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The text of the last `user` message: a string content as is, block content as its text
/// blocks joined by newlines, leaving out the `<system-reminder>` blocks Claude adds.
fn last_user_text(body: &Value) -> Option<String> {
    let messages = body.get("messages")?.as_array()?;
    let last = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    match last.get("content")? {
        Value::String(text) => Some(text.clone()),
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .filter(|t| !t.trim_start().starts_with("<system-reminder>"))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

fn answer_messages(
    behaviour: &Behaviour,
    seen: &SeenRequest,
    body: &Value,
    writer: &mut impl Write,
    shared: &Shared,
) -> io::Result<()> {
    match behaviour {
        Behaviour::Normal { reply, delay_ms, usage } => {
            let owned = usage.as_ref().map(Utilization::headers).unwrap_or_default();
            let headers: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let first_line = seen
                .last_user_text
                .as_deref()
                .and_then(|t| t.lines().map(str::trim).find(|l| !l.is_empty()))
                .unwrap_or("");
            let text = reply.replace(PROMPT_PLACEHOLDER, first_line);
            let model = body.get("model").and_then(Value::as_str).unwrap_or("claude-mock");
            let id = format!("msg_mock_{:08}", shared.next_id.fetch_add(1, Ordering::SeqCst));
            let input_tokens = seen.last_user_text.as_deref().map_or(1, |t| t.len() / 4 + 1);
            let output_tokens = text.len() / 4 + 1;
            if seen.stream {
                stream_message(
                    writer,
                    shared,
                    &headers,
                    &id,
                    model,
                    &text,
                    *delay_ms,
                    input_tokens,
                    output_tokens,
                )
            } else {
                wait(shared, *delay_ms);
                let message = json!({
                    "id": id, "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                });
                write_json(writer, 200, &headers, &message)
            }
        }
        Behaviour::Limit5h { reset_unix } => write_limit(writer, *reset_unix, "5h", "five_hour"),
        Behaviour::LimitWeekly { reset_unix } => write_limit(writer, *reset_unix, "7d", "seven_day"),
        Behaviour::Error500 { message } => write_json(writer, 500, &[], &error_body("api_error", message)),
        Behaviour::Overloaded529 => write_json(writer, 529, &[], &error_body("overloaded_error", "Overloaded")),
        Behaviour::Unauthorized401 { message } => {
            write_json(writer, 401, &[], &error_body("authentication_error", message))
        }
    }
}

/// The 429 a subscription gets when a usage window is used up: the unified rate-limit
/// headers say which window (`5h`/`7d`) and when it resets.
fn write_limit(writer: &mut impl Write, reset_unix: i64, window: &str, claim: &str) -> io::Result<()> {
    let reset = reset_unix.to_string();
    let window_status = format!("anthropic-ratelimit-unified-{window}-status");
    let window_reset = format!("anthropic-ratelimit-unified-{window}-reset");
    let headers = [
        ("anthropic-ratelimit-unified-status", "rejected"),
        ("anthropic-ratelimit-unified-reset", reset.as_str()),
        (window_status.as_str(), "rejected"),
        (window_reset.as_str(), reset.as_str()),
        ("anthropic-ratelimit-unified-representative-claim", claim),
    ];
    let body = error_body(
        "rate_limit_error",
        "This request would exceed your account's rate limit. Please try again later.",
    );
    write_json(writer, 429, &headers, &body)
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// Sleeps `delay_ms` (capped) in small steps, returning early when the mock stops.
fn wait(shared: &Shared, delay_ms: u64) {
    let deadline = Instant::now() + Duration::from_millis(delay_ms.min(MAX_DELAY_MS));
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep(DELAY_STEP.min(deadline - now));
    }
}

/// Writes the answer as server-sent events, the way the real API streams a text reply:
/// the head and `message_start` at once (Claude shows its spinner), the text after the delay.
#[allow(clippy::too_many_arguments)]
fn stream_message(
    writer: &mut impl Write,
    shared: &Shared,
    headers: &[(&str, &str)],
    id: &str,
    model: &str,
    text: &str,
    delay_ms: u64,
    input_tokens: usize,
    output_tokens: usize,
) -> io::Result<()> {
    let mut head = vec![("cache-control", "no-cache")];
    head.extend_from_slice(headers);
    write_head(writer, 200, "text/event-stream", &head, None)?;
    let start = json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }});
    write_event(writer, "message_start", &start)?;
    write_event(writer, "ping", &json!({"type": "ping"}))?;
    writer.flush()?;
    wait(shared, delay_ms);
    if shared.stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let events = [
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": text}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    for (name, data) in &events {
        write_event(writer, name, data)?;
    }
    writer.flush()
}

fn write_event(writer: &mut impl Write, name: &str, data: &Value) -> io::Result<()> {
    write!(writer, "event: {name}\ndata: {data}\n\n")
}

fn write_json(writer: &mut impl Write, status: u16, headers: &[(&str, &str)], body: &Value) -> io::Result<()> {
    write_response(
        writer,
        status,
        "application/json",
        headers,
        body.to_string().as_bytes(),
        true,
    )
}

fn write_response(
    writer: &mut impl Write,
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    with_body: bool,
) -> io::Result<()> {
    write_head(writer, status, content_type, headers, Some(body.len()))?;
    if with_body {
        writer.write_all(body)?;
    }
    writer.flush()
}

/// The status line and headers; without a length the body runs until the connection closes.
fn write_head(
    writer: &mut impl Write,
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    content_length: Option<usize>,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\nconnection: close\r\nrequest-id: req_mock\r\n",
        reason(status)
    );
    if let Some(length) = content_length {
        head.push_str(&format!("content-length: {length}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN_A: &str = "sk-ant-oat01-account-a";
    const TOKEN_B: &str = "sk-ant-oat01-account-b";
    const SESSION: &str = "0b7e0a52-8d4c-4c69-9d3e-2f6f4f1f9a10";

    /// A response as a client sees it: status, lower-cased headers, body.
    struct Reply {
        status: u16,
        headers: HashMap<String, String>,
        body: String,
    }

    impl Reply {
        fn json(&self) -> Value {
            serde_json::from_str(&self.body).expect("a JSON body")
        }

        /// The `event:` names of an SSE body, in order.
        fn events(&self) -> Vec<String> {
            self.body
                .lines()
                .filter_map(|l| l.strip_prefix("event: "))
                .map(str::to_string)
                .collect()
        }
    }

    /// Sends raw bytes and reads the whole response (the mock always closes).
    fn exchange(mock: &MockApi, raw: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(mock.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(raw).unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
        let mut lines = head.lines();
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Reply {
            status,
            headers,
            body: body.to_string(),
        }
    }

    fn post(mock: &MockApi, path: &str, token: &str, body: &Value) -> Reply {
        let body = body.to_string();
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        exchange(mock, raw.as_bytes())
    }

    /// A request shaped like Claude Code 2.1.328's: a reminder block before the prompt, a
    /// system message after it, the session in a JSON `user_id`.
    fn claude_request(prompt: &str, stream: bool) -> Value {
        let user_id = json!({"device_id": "d", "account_uuid": "", "session_id": SESSION});
        json!({
            "model": "claude-opus-5-5",
            "stream": stream,
            "metadata": {"user_id": user_id.to_string()},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "old"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Done: old"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>\nattribution\n</system-reminder>\n"},
                    {"type": "text", "text": prompt},
                ]},
                {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
            ],
        })
    }

    #[test]
    fn a_streamed_answer_carries_the_prompt_and_the_request_is_recorded() {
        let mock = MockApi::start().unwrap();
        assert!(mock.base_url().starts_with("http://127.0.0.1:"));
        let reply = post(
            &mock,
            "/v1/messages?beta=true",
            TOKEN_A,
            &claude_request("fix the build\nthen test", true),
        );
        assert_eq!(reply.status, 200);
        assert_eq!(reply.headers["content-type"], "text/event-stream");
        assert_eq!(
            reply.events(),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(reply.body.contains(r#""text":"Done: fix the build""#));
        assert!(reply.body.contains(r#""stop_reason":"end_turn""#));
        // The server notes the answer just after its last byte, which the client may read first.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let seen = loop {
            let seen = mock.requests();
            if seen.iter().all(|r| r.answered_ms.is_some()) || std::time::Instant::now() > deadline {
                break seen;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(seen.len(), 1);
        let answered = seen[0].answered_ms.expect("the answer was written");
        assert!(answered >= seen[0].at_ms, "{:?}", seen[0]);
        assert_eq!(
            seen,
            [SeenRequest {
                token: TOKEN_A.into(),
                path: "/v1/messages?beta=true".into(),
                conversation: Some(SESSION.into()),
                last_user_text: Some("fix the build\nthen test".into()),
                stream: true,
                at_ms: seen[0].at_ms,
                answered_ms: Some(answered),
                id: seen[0].id,
            }]
        );
    }

    /// A normal answer carries the account's use as the unified utilization headers
    /// (past 90 %: `allowed_warning`, which makes Claude draw its gauge); a 401 says the
    /// login cannot work.
    #[test]
    fn answers_carry_the_accounts_use_and_a_revoked_login_is_a_401() {
        let mock = MockApi::start().unwrap();
        let usage = Utilization {
            five_hour_pct: 97.0,
            five_hour_reset_unix: 1_764_000_000,
            seven_day_pct: 31.0,
            seven_day_reset_unix: 1_764_500_000,
        };
        mock.set_behaviour(
            TOKEN_A,
            Behaviour::Normal {
                reply: "ok".into(),
                delay_ms: 0,
                usage: Some(usage),
            },
        );
        mock.set_default(Behaviour::Unauthorized401 {
            message: "OAuth token has been revoked. Please obtain a new token.".into(),
        });
        for stream in [true, false] {
            let r = post(&mock, "/v1/messages", TOKEN_A, &claude_request("x", stream));
            assert_eq!(r.status, 200);
            assert_eq!(r.headers["anthropic-ratelimit-unified-5h-utilization"], "0.97");
            assert_eq!(r.headers["anthropic-ratelimit-unified-5h-reset"], "1764000000");
            assert_eq!(r.headers["anthropic-ratelimit-unified-5h-status"], "allowed_warning");
            assert_eq!(r.headers["anthropic-ratelimit-unified-5h-surpassed-threshold"], "0.9");
            assert_eq!(r.headers["anthropic-ratelimit-unified-7d-utilization"], "0.31");
            assert_eq!(r.headers["anthropic-ratelimit-unified-7d-status"], "allowed");
            assert_eq!(r.headers["anthropic-ratelimit-unified-status"], "allowed_warning");
        }
        let refused = post(&mock, "/v1/messages", "sk-ant-oat01-other", &claude_request("x", true));
        assert_eq!(refused.status, 401);
        assert_eq!(refused.json()["error"]["type"], "authentication_error");
    }

    #[test]
    fn accounts_are_told_apart_by_their_token() {
        let mock = MockApi::start().unwrap();
        mock.set_behaviour(
            TOKEN_A,
            Behaviour::Limit5h {
                reset_unix: 1_764_000_000,
            },
        );
        mock.set_default(Behaviour::Normal {
            reply: "ok".into(),
            delay_ms: 0,
            usage: None,
        });

        let limited = post(&mock, "/v1/messages", TOKEN_A, &claude_request("x", true));
        assert_eq!(limited.status, 429);
        assert_eq!(limited.headers["anthropic-ratelimit-unified-status"], "rejected");
        assert_eq!(limited.headers["anthropic-ratelimit-unified-reset"], "1764000000");
        assert_eq!(limited.headers["anthropic-ratelimit-unified-5h-status"], "rejected");
        assert_eq!(
            limited.headers["anthropic-ratelimit-unified-representative-claim"],
            "five_hour"
        );
        assert_eq!(limited.json()["error"]["type"], "rate_limit_error");

        let answered = post(&mock, "/v1/messages", TOKEN_B, &claude_request("x", false));
        assert_eq!(answered.status, 200);
        let message = answered.json();
        assert_eq!(message["type"], "message");
        assert_eq!(message["content"][0]["text"], "ok");
        assert_eq!(message["model"], "claude-opus-5-5");
        assert_eq!(message["stop_reason"], "end_turn");

        mock.set_behaviour(
            TOKEN_A,
            Behaviour::LimitWeekly {
                reset_unix: 1_764_600_000,
            },
        );
        let weekly = post(&mock, "/v1/messages", TOKEN_A, &claude_request("x", true));
        assert_eq!(weekly.status, 429);
        assert_eq!(weekly.headers["anthropic-ratelimit-unified-7d-status"], "rejected");
        assert_eq!(
            weekly.headers["anthropic-ratelimit-unified-representative-claim"],
            "seven_day"
        );
        assert!(!weekly.headers.contains_key("anthropic-ratelimit-unified-5h-status"));

        mock.set_behaviour(
            TOKEN_A,
            Behaviour::Error500 {
                message: "rate limit exceeded upstream".into(),
            },
        );
        let error = post(&mock, "/v1/messages", TOKEN_A, &claude_request("x", true));
        assert_eq!(error.status, 500);
        assert_eq!(error.json()["error"]["type"], "api_error");
        assert_eq!(error.json()["error"]["message"], "rate limit exceeded upstream");
        assert!(!error.headers.contains_key("anthropic-ratelimit-unified-status"));

        mock.set_behaviour(TOKEN_A, Behaviour::Overloaded529);
        let overloaded = post(&mock, "/v1/messages", TOKEN_A, &claude_request("x", true));
        assert_eq!(overloaded.status, 529);
        assert_eq!(overloaded.json()["error"]["type"], "overloaded_error");
    }

    #[test]
    fn chunked_bodies_older_ids_and_other_paths_are_understood() {
        let mock = MockApi::start().unwrap();
        let body = json!({
            "stream": false,
            "metadata": {"user_id": format!("user_abc_account__session_{SESSION}")},
            "messages": [{"role": "user", "content": "plain string prompt"}],
        })
        .to_string();
        let (first, second) = body.split_at(10);
        let raw = format!(
            "POST /v1/messages HTTP/1.1\r\nx-api-key: key-1\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x};ext=1\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\nX-Trailer: t\r\n\r\n",
            first.len(),
            second.len()
        );
        let reply = exchange(&mock, raw.as_bytes());
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["content"][0]["text"], "Done: plain string prompt");

        let raw = "POST /v1/messages/count_tokens?beta=true HTTP/1.1\r\n\
                   Authorization: Bearer t\r\nX-Claude-Code-Session-Id: s-1\r\n\
                   Content-Length: 8\r\n\r\n{\"a\":12}";
        let counted = exchange(&mock, raw.as_bytes());
        assert_eq!(counted.status, 200);
        assert!(counted.json()["input_tokens"].is_u64());

        let profile = exchange(&mock, b"GET /api/oauth/profile HTTP/1.1\r\n\r\n");
        assert_eq!((profile.status, profile.json()), (200, json!({})));

        let seen = mock.requests();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].token, "key-1");
        assert_eq!(seen[0].conversation.as_deref(), Some(SESSION));
        assert_eq!(seen[1].conversation.as_deref(), Some("s-1"));
        assert_eq!(seen[2].path, "/api/oauth/profile");
        assert_eq!(seen[2].token, "");
    }

    #[test]
    fn oversized_or_malformed_requests_are_refused() {
        let mock = MockApi::start().unwrap();
        let raw = format!(
            "POST /v1/messages HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        assert_eq!(exchange(&mock, raw.as_bytes()).status, 413);

        let raw = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(exchange(&mock, raw.as_bytes()).status, 431);

        assert_eq!(exchange(&mock, b"NONSENSE\r\n\r\n").status, 400);
        let raw = "POST /v1/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(exchange(&mock, raw.as_bytes()).status, 400);
        assert!(mock.requests().is_empty());
    }

    #[test]
    fn the_control_file_is_reread_and_every_request_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        let control_path = dir.path().join("control.json");
        let log_path = dir.path().join("requests.jsonl");
        let mock = MockApi::start_with(MockOptions {
            port: 0,
            control_path: Some(control_path.clone()),
            log_path: Some(log_path.clone()),
        })
        .unwrap();

        // No control file yet: the in-memory default answers.
        let reply = post(&mock, "/v1/messages", TOKEN_A, &claude_request("one", false));
        assert_eq!(reply.json()["content"][0]["text"], "Done: one");

        std::fs::write(
            &control_path,
            format!(
                r#"{{"{TOKEN_A}": {{"kind": "limit_weekly", "reset_unix": 5}},
                    "*": {{"kind": "normal", "reply": "fallback {{prompt}}"}}}}"#
            ),
        )
        .unwrap();
        let limited = post(&mock, "/v1/messages", TOKEN_A, &claude_request("two", false));
        assert_eq!(limited.status, 429);
        let other = post(&mock, "/v1/messages", TOKEN_B, &claude_request("three", false));
        assert_eq!(other.json()["content"][0]["text"], "fallback three");

        let control = r#"{"*": {"kind": "error500", "message": "boom"}}"#;
        std::fs::write(&control_path, control).unwrap();
        let failed = post(&mock, "/v1/messages", TOKEN_A, &claude_request("four", false));
        assert_eq!(failed.status, 500);

        let log = std::fs::read_to_string(&log_path).unwrap();
        let logged: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(logged.len(), 4);
        assert_eq!(logged[1]["token"], TOKEN_A);
        assert_eq!(logged[2]["last_user_text"], "three");
        assert_eq!(logged[3]["conversation"], SESSION);
    }

    #[test]
    fn stopping_cuts_a_slow_answer_and_closes_the_port() {
        let mock = MockApi::start().unwrap();
        mock.set_default(Behaviour::Normal {
            reply: "late".into(),
            delay_ms: 60_000,
            usage: None,
        });
        let addr = mock.addr();
        let body = claude_request("slow", true).to_string();
        let client = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            let raw = format!(
                "POST /v1/messages HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(raw.as_bytes()).unwrap();
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while mock.requests().is_empty() {
            assert!(Instant::now() < deadline, "the slow request never arrived");
            std::thread::sleep(Duration::from_millis(10));
        }
        let started = Instant::now();
        mock.stop();
        assert!(started.elapsed() < Duration::from_secs(5), "stop waited for the delay");
        let text = client.join().unwrap();
        assert!(text.contains("message_start"));
        assert!(!text.contains("late"));
        assert!(TcpStream::connect(addr).is_err());
    }

    #[test]
    fn behaviours_read_from_json_as_documented() {
        let parsed: HashMap<String, Behaviour> = serde_json::from_str(
            r#"{"a": {"kind": "normal"}, "b": {"kind": "limit5h", "reset_unix": 7},
                "c": {"kind": "overloaded529"}}"#,
        )
        .unwrap();
        assert_eq!(parsed["a"], Behaviour::default());
        assert_eq!(parsed["b"], Behaviour::Limit5h { reset_unix: 7 });
        assert_eq!(parsed["c"], Behaviour::Overloaded529);
        let typo = r#"{"kind": "limit5h", "reset": 7}"#;
        assert!(serde_json::from_str::<Behaviour>(typo).is_err());
    }
}
