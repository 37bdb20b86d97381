//! Small pure helpers shared by the core and the shell: shell quoting, snippets,
//! timestamps.

/// Quotes `s` for a POSIX shell: bare when it is made only of safe characters, else in
/// single quotes with embedded single quotes written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | '+' | ',' | '@' | '%')
        });
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// At most `max` characters of `s` on one line (newlines shown as ⏎), with … when cut.
pub fn snippet(s: &str, max: usize) -> String {
    let flat: String = s.trim().chars().map(|c| if c == '\n' { '⏎' } else { c }).collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// RFC 3339 UTC with second precision, e.g. `2026-11-24T06:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => format!("@{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_bounded() {
        assert_eq!(snippet("a\nb", 10), "a⏎b");
        assert_eq!(snippet("abcdef", 4), "abc…");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
