//! `ccl status` for people: a table that fits the terminal (cells cut with `…`, a compact
//! layout below [`WIDE_COLUMNS`]), a meter line per account and a legend.

use ccl_core::util;

use super::{Report, UsageReport, WindowReport};

/// Below this many columns `render_status` uses its compact layout.
pub const WIDE_COLUMNS: usize = 120;

/// The one-line legend under the sessions table.
pub const STATUS_LEGEND: &str = "STATE = what the pane shows now; ACTIVITY = what ccl is doing there";

/// Columns of the terminal on stdout; else `$COLUMNS`; else 80, which every layout fits.
pub fn terminal_width() -> usize {
    terminal_size().0
}

/// (columns, rows) of the terminal on stdout; else `$COLUMNS` and `$LINES`; else 80×24.
pub fn terminal_size() -> (usize, usize) {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        // SAFETY: TIOCGWINSZ fills the winsize we pass; a failure leaves it zeroed.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 && ws.ws_row > 0
        {
            return (ws.ws_col as usize, ws.ws_row as usize);
        }
    }
    let var = |k: &str, min: usize, default: usize| {
        std::env::var(k)
            .ok()
            .and_then(|c| c.parse().ok())
            .filter(|c| *c >= min)
            .unwrap_or(default)
    };
    (var("COLUMNS", 40, 80), var("LINES", 10, 24))
}

/// Renders the status as aligned tables no wider than `width` columns, reset times in the
/// host's zone: long cells are cut with `…`, and below [`WIDE_COLUMNS`] the sessions table
/// is compact (short conversation ids, attention reasons on their own lines).
pub fn render_status(r: &Report, width: usize) -> String {
    render_status_in(r, width, &jiff::tz::TimeZone::system())
}

/// Cells of a meter bar of `width` cells.
fn bar(used_pct: f64, width: usize) -> String {
    let full = ((used_pct.clamp(0.0, 100.0) / 100.0) * width as f64).round() as usize;
    "█".repeat(full) + &"░".repeat(width - full)
}

/// One account's meters on one line, e.g. `main  5h ████████░░ 82% resets 21:48  7d ███░░ 31%
/// resets Nov 27`: the 5-hour reset as a time of day, the weekly one as a date.
pub fn meter_line(name: &str, name_width: usize, usage: &UsageReport, tz: &jiff::tz::TimeZone) -> String {
    let reset = |w: &WindowReport, format: &str| {
        w.resets_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| format!(" resets {}", t.to_zoned(tz.clone()).strftime(format)))
            .unwrap_or_default()
    };
    let window = |label: &str, w: &Option<WindowReport>, width: usize, format: &str| match w {
        Some(w) => format!(
            "{label} {} {:>3.0}%{}",
            bar(w.used_pct, width),
            w.used_pct,
            reset(w, format)
        ),
        None => format!("{label} {} ?", "·".repeat(width)),
    };
    format!(
        "{name:<name_width$}  {}  {}",
        window("5h", &usage.five_hour, 10, "%H:%M"),
        window("7d", &usage.seven_day, 5, "%b %-d")
    )
}

/// An optional cell: `-` when there is nothing.
fn cell(v: &Option<impl ToString>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), ToString::to_string)
}

/// A value's name as its JSON spells it (`pool`, `busy`).
fn word(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_string(),
    }
}

/// [`render_status`] in a given zone.
pub fn render_status_in(r: &Report, width: usize, tz: &jiff::tz::TimeZone) -> String {
    let width = width.max(40);
    let mut out = String::new();
    let at = r.at.as_ref().map(|at| format!(" · status at {at}")).unwrap_or_default();
    if r.daemon.running {
        out.push_str(&format!("daemon: running (pid {}){at}\n", cell(&r.daemon.pid)));
    } else {
        out.push_str(&format!("daemon: not running{at}\n"));
    }
    if let Some(account) = &r.draining {
        out.push_str(&format!(
            "draining account {account} before its usage limit: no new tasks; swap when the pool's tasks are done\n"
        ));
    }
    if let Some(until) = &r.all_exhausted_until {
        out.push_str(&format!("all accounts exhausted until {until}\n"));
    }
    if let Some(w) = &r.swap {
        out.push_str(&format!("swap in progress: {} -> {} ({})\n", w.from, w.to, w.reason));
    }
    if let Some(w) = &r.last_swap {
        out.push_str(&format!(
            "last swap: {} -> {} at {} ({})\n",
            w.from, w.to, w.at, w.reason
        ));
    }
    let mut rows = vec![vec!["ACCOUNT".to_string(), "STATE".into(), "HOME".into()]];
    for a in &r.accounts {
        let state = if let Some(why) = &a.unhealthy {
            format!("unhealthy: {}", util::snippet(why, 60))
        } else if a.disabled {
            "disabled".into()
        } else if let Some(until) = &a.exhausted_until {
            format!("exhausted until {until}")
        } else if a.active {
            "active".into()
        } else {
            "available".into()
        };
        let state = if a.active && a.exhausted_until.is_some() {
            format!("active, {state}")
        } else {
            state
        };
        rows.push(vec![a.name.clone(), state, a.home.display().to_string()]);
    }
    out.push('\n');
    out.push_str(&fit_table(&rows, width, &[2, 1]));
    let metered: Vec<(&str, &UsageReport)> = r
        .accounts
        .iter()
        .filter_map(|a| Some((a.name.as_str(), a.usage.as_ref()?)))
        .collect();
    let name_width = metered.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(0);
    if !metered.is_empty() {
        out.push('\n');
    }
    for (name, usage) in metered {
        out.push_str(&cut(&meter_line(name, name_width, usage, tz), width));
        out.push('\n');
    }
    let mut rows = vec![[
        "SESSION",
        "KIND",
        "STATE",
        "ACTIVITY",
        "ACCOUNT",
        "CONVERSATION",
        "TASK",
        "ATTENTION",
    ]
    .map(String::from)
    .to_vec()];
    for x in &r.sessions {
        let task = match (&x.task, &x.adopted) {
            (Some(task), Some(_)) => format!("{} (adopted)", util::snippet(task, 60)),
            (task, _) => util::snippet(&cell(task), 60),
        };
        rows.push(vec![
            util::snippet(&x.name, 60),
            word(&x.kind),
            word(&x.state),
            util::snippet(&x.activity, 60),
            util::snippet(&cell(&x.account), 60),
            util::snippet(&cell(&x.conversation), 60),
            task,
            util::snippet(&cell(&x.attention), 60),
        ]);
    }
    let compact = width < WIDE_COLUMNS;
    let mut attention = Vec::new();
    if compact {
        // Short conversation ids; attention reasons go below the table, where they have the
        // whole width.
        for r in rows.iter_mut().skip(1) {
            if r[7] != "-" {
                attention.push(format!("! {}: {}", r[0], r[7]));
            }
            r.truncate(7);
            r[5] = r[5].chars().take(8).collect();
        }
        rows[0].truncate(7);
        rows[0][5] = "CONV".into();
    }
    out.push('\n');
    out.push_str(&fit_table(&rows, width, &[6, 7, 5, 0, 3, 2]));
    for line in attention {
        out.push_str(&cut(&line, width));
        out.push('\n');
    }
    out.push_str(&cut(STATUS_LEGEND, width));
    out.push('\n');
    // The worktree of each running task of an isolated queue.
    let mut worktrees = vec![["SESSION", "BRANCH", "WORKTREE"].map(String::from).to_vec()];
    for x in &r.sessions {
        if let Some(path) = &x.worktree {
            worktrees.push(vec![x.name.clone(), cell(&x.branch), path.display().to_string()]);
        }
    }
    if worktrees.len() > 1 {
        out.push('\n');
        out.push_str(&fit_table(&worktrees, width, &[2, 1]));
    }
    let mut rows = vec![["QUEUE", "INBOX", "RUNNING", "DONE", "FAILED", "HELD", "PAUSED"]
        .map(String::from)
        .to_vec()];
    for q in &r.queues {
        rows.push(vec![
            q.name.clone(),
            q.inbox.to_string(),
            format!("{}/{}", q.running, q.max_running),
            q.done.to_string(),
            q.failed.to_string(),
            q.held.len().to_string(),
            if q.paused { "paused" } else { "-" }.into(),
        ]);
    }
    out.push('\n');
    out.push_str(&fit_table(&rows, width, &[0]));
    // Tasks filed next to an earlier task of the same name, so a reused name is visible.
    for q in &r.queues {
        for x in &q.renamed {
            out.push_str(&format!(
                "renamed: {}/{}/{} (its own name {} was taken)\n",
                q.name, x.dir, x.task, x.from
            ));
        }
    }
    out
}

/// `text` cut to `width` characters, the last one `…` when anything was cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Like [`table`], no wider than `width`: the columns in `shrink` (widest first, in that
/// order of preference on ties) give up characters down to a floor, their cells cut with `…`.
pub fn fit_table(rows: &[Vec<String>], width: usize, shrink: &[usize]) -> String {
    const FLOOR: usize = 6;
    let mut widths = column_widths(rows);
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
    while total(&widths) > width {
        let Some(&col) = shrink
            .iter()
            .filter(|c| widths.get(**c).is_some_and(|w| *w > FLOOR))
            .max_by_key(|c| (widths[**c], std::cmp::Reverse(shrink.iter().position(|x| x == *c))))
        else {
            break;
        };
        widths[col] -= 1;
    }
    let cut_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().enumerate().map(|(i, c)| cut(c, widths[i])).collect())
        .collect();
    table(&cut_rows)
}

/// The widest cell of each column, in characters.
fn column_widths(rows: &[Vec<String>]) -> Vec<usize> {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// Left-aligned columns separated by two spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let widths = column_widths(rows);
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A status as a busy fleet has it: long names, ids, reasons and homes.
    fn busy_status() -> Report {
        let session = |name: &str, kind: &str, attention: serde_json::Value| {
            json!({
                "name": name, "kind": kind, "state": "busy", "activity": "working", "account": "second",
                "conversation": "0b1c2d3e-0000-4000-8000-000000000001",
                "task": "filesecure/20261124-091500-refactor-the-upload-pipeline-and-its-tests.md",
                "attention": attention,
            })
        };
        let status = json!({
            "daemon": {"running": true, "pid": 4242},
            "at": "2026-11-24T09:15:00Z",
            "active": "second",
            "accounts": [
                {"name": "main", "home": "/home/operator/.claude-main-subscription-account", "active": false,
                 "exhausted_until": "2026-11-24T14:00:00Z", "reason": "usage limit"},
                {"name": "second", "home": "/home/operator/.claude-second", "active": true, "exhausted_until": null},
            ],
            "sessions": [
                session("ccl-auto-11", "pool", serde_json::Value::Null),
                session("ccl-auto-12", "pool", serde_json::Value::Null),
                session("ccl-1-conformvault", "dedicated", json!("claude shows a screen that needs the operator: Do you trust the files in this folder?")),
            ],
            "queues": [{"name": "filesecure", "inbox": 12, "running": 2, "done": 340, "failed": 3, "paused": false}],
        });
        // The contract's JSON reads back as the typed report.
        serde_json::from_value(status).unwrap()
    }

    #[test]
    fn status_fits_80_columns_with_cut_cells_a_legend_and_attention_below() {
        let text = render_status(&busy_status(), 80);
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{} columns: {line}\n{text}",
                line.chars().count()
            );
        }
        assert!(text.contains('…'), "{text}");
        assert!(
            text.contains("daemon: running (pid 4242) · status at 2026-11-24T09:15:00Z"),
            "{text}"
        );
        assert!(text.contains(STATUS_LEGEND), "{text}");
        assert!(text.contains("CONV"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("! ccl-1-conformvault: claude shows")),
            "{text}"
        );
        assert!(text.lines().count() <= 18, "{} lines:\n{text}", text.lines().count());
        // Wide terminals get every column in full.
        let wide = render_status(&busy_status(), 250);
        assert!(wide.contains("0b1c2d3e-0000-4000-8000-000000000001"), "{wide}");
        assert!(wide.contains("ATTENTION"), "{wide}");
    }

    /// The meter line draws both windows as bars with the 5-hour reset as a time of day in
    /// the host's zone, and fits an 80-column terminal with a 12-character account name.
    #[test]
    fn meter_lines_show_bars_and_resets_within_80_columns() {
        let usage: UsageReport = serde_json::from_value(json!({
            "five_hour": {"used_pct": 82.0, "resets_at": "2026-11-24T21:48:00Z"},
            "seven_day": {"used_pct": 31.0, "resets_at": "2026-11-27T06:26:00Z"},
            "seen_at": "2026-11-24T20:00:00Z",
        }))
        .unwrap();
        let tz = jiff::tz::TimeZone::UTC;
        let line = meter_line("main", 4, &usage, &tz);
        assert_eq!(
            line,
            "main  5h ████████░░  82% resets 21:48  7d ██░░░  31% resets Nov 27"
        );
        let long = meter_line("twelve-chars", 12, &usage, &tz);
        assert!(long.chars().count() <= 80, "{} columns: {long}", long.chars().count());
        let unknown: UsageReport =
            serde_json::from_value(json!({"five_hour": {"used_pct": 5.0, "resets_at": null}, "seven_day": null}))
                .unwrap();
        assert_eq!(meter_line("b", 1, &unknown, &tz), "b  5h █░░░░░░░░░   5%  7d ····· ?");
    }
}
