//! Finding and reading the configuration file: where it is looked for (`-c`, `$CCL_CONFIG`,
//! `./ccl.toml`, the XDG path), reading it, and what parsing needs to know of this machine
//! (`$HOME`, the file's absolute directory, whether two paths are one directory). What the
//! text means is `ccl_core::config`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use ccl_core::config::{file_dir, xdg_config_path, Config, Host, Origin, Searched};

/// The values of this process: `$CCL_CONFIG`, the working directory, the XDG path.
pub fn searched_from_env() -> Searched {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    Searched {
        ccl_config: nonempty("CCL_CONFIG"),
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        xdg: xdg_config_path(nonempty("XDG_CONFIG_HOME"), nonempty("HOME")),
    }
}

/// The configuration file to read: `-c`, else `$CCL_CONFIG` (used even when it names a
/// missing file, so a typo there is an error rather than another file read silently),
/// else `./ccl.toml` when it exists, else the XDG path when it exists. When none exists,
/// the error lists every place looked at and how to start.
pub fn discover(explicit: Option<&Path>, searched: &Searched) -> Result<(PathBuf, Origin)> {
    if let Some(p) = explicit {
        return Ok((p.to_path_buf(), Origin::Flag));
    }
    if let Some(p) = &searched.ccl_config {
        return Ok((p.clone(), Origin::Env));
    }
    let local = searched.cwd.join("ccl.toml");
    if local.exists() {
        return Ok((PathBuf::from("ccl.toml"), Origin::Local));
    }
    if let Some(x) = searched.xdg.as_ref().filter(|x| x.exists()) {
        return Ok((x.clone(), Origin::Xdg));
    }
    let xdg = match &searched.xdg {
        Some(x) => x.display().to_string(),
        None => "$XDG_CONFIG_HOME/ccl/ccl.toml (neither XDG_CONFIG_HOME nor HOME is set)".into(),
    };
    anyhow::bail!(
        "no configuration found; looked at:\n  -c PATH (not given)\n  $CCL_CONFIG (not set)\n  {}\n  {xdg}\n\
         start with `ccl init`, which writes a commented starter configuration to {xdg}",
        local.display()
    )
}

/// Reads and validates a configuration file. Every error names the file; syntax and type
/// errors also name line and column.
pub fn load(path: &Path) -> Result<Config> {
    load_from(path, &Origin::Flag)
}

/// Like [`load`]; a file that cannot be read says where its path came from.
pub fn load_from(path: &Path, origin: &Origin) -> Result<Config> {
    let from = match origin {
        Origin::Env => " (from $CCL_CONFIG)",
        _ => "",
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read configuration {}{from}", path.display()))?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    parse(&text, path, home.as_deref())
}

/// Parses `text` as read from `path` on this machine: relative paths resolve against the
/// file's absolute directory, and two spellings of one directory (a symlink) are one.
pub fn parse(text: &str, path: &Path, home: Option<&Path>) -> Result<Config> {
    let base = file_dir(path);
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    Config::parse_on(
        text,
        path,
        &Host {
            home,
            base,
            same_dir: &same_dir,
        },
    )
}

/// Whether two paths name one existing directory (through a symlink, say). Paths that do
/// not exist yet cannot be compared and count as different.
pub fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `command` as the shell would find it: a path when it contains '/', else on PATH.
pub fn resolve_command(command: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.is_file()
            && p.metadata()
                .map(|m| m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
    };
    if command.contains('/') {
        let p = PathBuf::from(command);
        anyhow::ensure!(executable(&p), "{command} does not exist or is not executable");
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(command))
        .find(|p| executable(p))
        .with_context(|| format!("command '{command}' not found on PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccl_core::config::{DurationMs, Isolation};

    fn parse_etc(text: &str) -> Result<Config> {
        parse(text, Path::new("/etc/ccl/ccl.toml"), Some(Path::new("/home/op")))
    }

    #[test]
    fn shipped_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ccl.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = parse(&text, &path, Some(Path::new("/home/op"))).unwrap();
        assert_eq!(c.daemon.tick, DurationMs(2_000));
        assert_eq!(c.pool.names().next().as_deref(), Some("ccl-auto-11"));
        assert_eq!(c.pool.names().last().as_deref(), Some("ccl-auto-20"));
        assert_eq!(c.daemon.state_dir, Path::new("/home/op/.local/state/ccl"));
        assert!(c.accounts.len() >= 2);

        // The commented example queue, with every key it documents, parses too.
        let start = text.find("# [[queue]]").expect("an example queue");
        let block: String = text[start..]
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(block.contains("isolation") && block.contains("worktree_dir"), "{block}");
        let c = parse(&format!("{text}\n{block}"), &path, Some(Path::new("/home/op"))).unwrap();
        assert_eq!((c.queues[0].max_running, c.queues[0].isolation), (1, Isolation::None));
    }

    #[test]
    fn two_account_homes_that_are_one_directory_through_a_link_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("claude-a");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("claude-b")).unwrap();
        let text = format!(
            "[[account]]\nname = \"a\"\nhome = \"{d}/claude-a\"\n\
             [[account]]\nname = \"b\"\nhome = \"{d}/claude-b\"\n",
            d = tmp.path().display()
        );
        let err = format!("{:#}", parse_etc(&text).unwrap_err());
        assert!(
            err.starts_with("/etc/ccl/ccl.toml:6:8: account 'b' home")
                && err.contains("is the same directory as account 'a' home"),
            "{err}"
        );
    }
}
