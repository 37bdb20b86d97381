//! Benchmark of one daemon turn at fleet scale: the real observe → step → execute path
//! of `ccl run`, against a private tmux server whose N panes run the fake Claude at its
//! idle screen. Prints one JSON line:
//!
//! `{"sessions": N, "backend": "exec", "turns": T, "turn_ms_p50": …, "turn_ms_p99": …,
//!   "cpu_ms_per_turn": …, "cpu_pct_at_tick": …, "peak_rss_kb": …, "captures_per_turn": …,
//!   "tmux_server_cpu_ms_per_turn": …}`
//!
//! CPU is getrusage of this process plus its reaped children (the forked `tmux`
//! clients of the exec backend), per turn; `cpu_pct_at_tick` is that against the default
//! 2 s tick. The tmux server's own CPU (from /proc, in clock ticks of 10 ms) is reported
//! apart: it is not ccl's, but it is what the turn costs the machine besides.
//!
//! Turns run back to back, but the clock each turn is given advances one tick (2 s) per
//! turn as in the daemon, so work that depends on time (re-capturing a quiet pane whose
//! last capture is `MAX_CAPTURE_AGE_MS` old, the core's deadlines) happens as often per
//! turn as it would live; `captures_per_turn` counts the panes actually captured. Run: `cargo run --release --example tick_bench -- --sessions 200 --backend
//! control --turns 50`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ccl::shell::observe::Shell;
use ccl_core::config::Config;
use ccl_core::core::{Core, State};

struct Args {
    sessions: usize,
    backend: String,
    turns: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        sessions: 20,
        backend: "exec".into(),
        turns: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sessions" => args.sessions = value()?.parse()?,
            "--backend" => args.backend = value()?,
            "--turns" => args.turns = value()?.parse()?,
            other => bail!("unknown argument {other} (--sessions N --backend exec|control --turns T)"),
        }
    }
    if !matches!(args.backend.as_str(), "exec" | "control") {
        bail!("--backend must be exec or control");
    }
    Ok(args)
}

fn cpu_ms() -> f64 {
    let usage = |who| {
        // SAFETY: getrusage fills the struct we pass; no other memory is touched.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
        (tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss)
    };
    usage(libc::RUSAGE_SELF).0 + usage(libc::RUSAGE_CHILDREN).0
}

fn peak_rss_kb() -> i64 {
    // SAFETY: as in cpu_ms.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss
}

/// User plus system CPU of process `pid` so far, from /proc (clock-tick resolution).
fn process_cpu_ms(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // "pid (comm) state ppid …": comm may hold spaces, so count fields after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').context("odd /proc stat")? + 1..]
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks * 1000.0 / per_s)
}

fn tmux(socket: &str, args: &[&str]) -> Result<String> {
    let out = Command::new("tmux")
        .args(["-L", socket, "-f", "/dev/null"])
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where tmux keeps the socket of `tmux -L SOCKET`; tmux leaves the file behind when its
/// server is killed, so the benchmark removes it.
fn socket_path(socket: &str) -> PathBuf {
    let dir = std::env::var_os("TMUX_TMPDIR").unwrap_or_else(|| "/tmp".into());
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    Path::new(&dir).join(format!("tmux-{uid}")).join(socket)
}

fn fake_claude() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/tick_bench → target/<profile>/ccl-fake-claude
    let dir = exe.parent().and_then(Path::parent).context("no target directory")?;
    let fake = dir.join("ccl-fake-claude");
    if !fake.is_file() {
        bail!("{} is missing: run `cargo build --release` first", fake.display());
    }
    Ok(fake)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    std::fs::create_dir_all(root.join("bin"))?;
    std::os::unix::fs::symlink(fake_claude()?, root.join("bin/claude"))?;
    for l in ["projects", "file-history", "session-env"] {
        std::fs::create_dir_all(root.join("shared").join(l))?;
        std::fs::create_dir_all(root.join("home"))?;
        std::os::unix::fs::symlink(root.join("shared").join(l), root.join("home").join(l))?;
    }
    let socket = format!("ccl-bench-{}", std::process::id());
    let text = format!(
        "[daemon]\nstate_dir = \"{r}/state\"\n[tmux]\nsocket = \"{socket}\"\nbackend = \"{b}\"\n[claude]\ncommand = \"{r}/bin/claude\"\n[[account]]\nname = \"a\"\nhome = \"{r}/home\"\n[shared]\ntarget = \"{r}/shared\"\n[pool]\nmin = {n}\nmax = {n}\nworkdir = \"{r}\"\n",
        r = root.display(),
        b = args.backend,
        n = args.sessions
    );
    let config = Config::parse(&text, &root.join("ccl.toml"), None)?;

    // N panes with Claude idle at its input box.
    let claude = format!("CLAUDE_CONFIG_DIR={r}/home {r}/bin/claude", r = root.display());
    for name in config.pool.names() {
        tmux(
            &socket,
            &[
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "200",
                "-y",
                "50",
                "-c",
                &root.to_string_lossy(),
                &claude,
            ],
        )?;
    }
    let ready = Instant::now() + Duration::from_secs(60);
    for name in config.pool.names() {
        while !tmux(&socket, &["capture-pane", "-p", "-t", &format!("={name}:")])?.contains("bypass permissions on") {
            if Instant::now() > ready {
                bail!("{name} never showed Claude's idle screen");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    let tz = "UTC";
    let mut core = Core::new(config.clone(), State::fresh(&config, 1), tz);
    let mut shell = Shell::new(ccl::shell::daemon::tmux_port(&config));
    let tick_ms = config.daemon.tick.0 as i64;
    let mut now_ms = ccl::shell::now_ms();
    // Warm-up: first sight of every session.
    for _ in 0..2 {
        let obs = shell.observe(&core, now_ms);
        let actions = core.step(&obs);
        shell.execute(&config, &actions, now_ms);
        now_ms += tick_ms;
    }
    let mut turn_ms = Vec::with_capacity(args.turns);
    let cpu_before = cpu_ms();
    let captures_before = shell.n_captures();
    let server_pid: u32 = tmux(&socket, &["display-message", "-p", "#{pid}"])?.trim().parse()?;
    let server_cpu_before = process_cpu_ms(server_pid)?;
    for _ in 0..args.turns {
        let t0 = Instant::now();
        let obs = shell.observe(&core, now_ms);
        let actions = core.step(&obs);
        shell.execute(&config, &actions, now_ms);
        turn_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        now_ms += tick_ms;
    }
    let cpu_per_turn = (cpu_ms() - cpu_before) / args.turns as f64;
    let captures_per_turn = (shell.n_captures() - captures_before) as f64 / args.turns as f64;
    let server_cpu_per_turn = (process_cpu_ms(server_pid)? - server_cpu_before) / args.turns as f64;
    let _ = tmux(&socket, &["kill-server"]);
    let _ = std::fs::remove_file(socket_path(&socket));
    turn_ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| turn_ms[((turn_ms.len() - 1) as f64 * p).round() as usize];
    let tick_ms = config.daemon.tick.0 as f64;
    println!(
        "{}",
        serde_json::json!({
            "sessions": args.sessions,
            "backend": args.backend,
            "turns": args.turns,
            "turn_ms_p50": (pct(0.5) * 1000.0).round() / 1000.0,
            "turn_ms_p99": (pct(0.99) * 1000.0).round() / 1000.0,
            "cpu_ms_per_turn": (cpu_per_turn * 1000.0).round() / 1000.0,
            "cpu_pct_at_tick": (cpu_per_turn / tick_ms * 100.0 * 1000.0).round() / 1000.0,
            "peak_rss_kb": peak_rss_kb(),
            "captures_per_turn": captures_per_turn,
            "tmux_server_cpu_ms_per_turn": (server_cpu_per_turn * 1000.0).round() / 1000.0,
        })
    );
    Ok(())
}
