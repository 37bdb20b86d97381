//! `ccl init`: writes a commented starter configuration to the XDG path, never over an
//! existing file. The text is the shipped `ccl.toml` (so every key keeps its comment and
//! the starter never drifts from the reference) with its `[[account]]` entries replaced
//! by the Claude homes found in `HOME` (`~/.claude`, `~/.claude-*`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use ccl_core::config::Searched;

/// The shipped reference configuration.
const SHIPPED: &str = include_str!("../../ccl.toml");

/// The account entries of the shipped file, replaced by the ones found.
const SHIPPED_ACCOUNTS: &str =
    "[[account]]\nname = \"main\"\nhome = \"~/.claude-main\"\n\n[[account]]\nname = \"second\"\nhome = \"~/.claude-second\"\n";

/// Directory names in `HOME` that are not account homes although they look like one:
/// the default shared target of the links.
const NOT_HOMES: &[&str] = &[".claude-shared"];

/// Most homes listed; a home directory with more `.claude-*` entries is unusual enough
/// that the operator should pick by hand.
const MAX_HOMES: usize = 16;

/// One Claude home found in `HOME`: the account name ccl will use and its directory name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub dir: String,
}

/// Claude homes in `home`: `.claude` first (as `main`, or `default` when a `.claude-main`
/// exists too), then every `.claude-NAME` directory by name. Files (`.claude.json`) and
/// names that cannot be an account name are skipped.
pub fn find_homes(home: &Path) -> Vec<Found> {
    let Ok(listing) = fs::read_dir(home) else {
        return Vec::new();
    };
    let mut dirs: Vec<String> = listing
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n == ".claude" || n.starts_with(".claude-"))
        .filter(|n| !NOT_HOMES.contains(&n.as_str()))
        .collect();
    dirs.sort();
    let named_main = dirs.iter().any(|d| d == ".claude-main");
    let mut found: Vec<Found> = Vec::new();
    for dir in dirs {
        let name = match dir.strip_prefix(".claude-") {
            Some(suffix) => suffix.to_string(),
            None if named_main => "default".into(),
            None => "main".into(),
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid && found.len() < MAX_HOMES {
            found.push(Found { name, dir });
        }
    }
    // `.claude` sorts before every `.claude-*`; keep it first as the failover order's head.
    found
}

/// The starter configuration for the homes found.
pub fn starter(found: &[Found]) -> String {
    let mut accounts = String::new();
    if found.is_empty() {
        accounts.push_str(
            "# No Claude home was found in ~. Log in once with `claude` (it creates ~/.claude);\n\
             # for a second account: CLAUDE_CONFIG_DIR=~/.claude-second claude, then /login.\n\
             [[account]]\nname = \"main\"\nhome = \"~/.claude\"\n",
        );
    } else {
        accounts.push_str("# Found in ~ by `ccl init`; order = failover order.\n");
        for (i, f) in found.iter().enumerate() {
            if i > 0 {
                accounts.push('\n');
            }
            accounts.push_str(&format!("[[account]]\nname = \"{}\"\nhome = \"~/{}\"\n", f.name, f.dir));
        }
    }
    let header = "# Written by `ccl init`. Next: `ccl links --fix` (the shared history every account\n\
                  # needs), add a [[queue]], then `ccl check`.\n";
    format!("{header}{}", SHIPPED.replacen(SHIPPED_ACCOUNTS, &accounts, 1))
}

/// `ccl init`: writes the starter to the XDG path unless a file is already there.
pub fn run(searched: &Searched, home: Option<&Path>) -> Result<bool> {
    let Some(path) = searched.xdg.clone() else {
        bail!("cannot tell where to write the configuration: neither XDG_CONFIG_HOME nor HOME is set");
    };
    if path.exists() || path.is_symlink() {
        bail!(
            "{} already exists; not overwriting it (edit it, or move it away and run `ccl init` again)",
            path.display()
        );
    }
    let found = home.map(find_homes).unwrap_or_default();
    write_new(&path, &starter(&found))?;
    println!("wrote {}", path.display());
    if found.is_empty() {
        println!("no Claude home found in ~: the config names ~/.claude; log in with `claude` first");
    } else {
        for f in &found {
            println!("account {}: ~/{}", f.name, f.dir);
        }
    }
    println!("next: ccl links --fix, add a [[queue]], then ccl check");
    Ok(true)
}

/// Creates `path` (and its directory) with `text`; fails if the file appeared meanwhile.
fn write_new(path: &Path, text: &str) -> Result<()> {
    let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_accounts_are_replaced_and_the_starter_parses() {
        assert!(
            SHIPPED.contains(SHIPPED_ACCOUNTS),
            "ccl.toml's [[account]] entries changed"
        );
        let found = vec![
            Found {
                name: "main".into(),
                dir: ".claude".into(),
            },
            Found {
                name: "work".into(),
                dir: ".claude-work".into(),
            },
        ];
        let text = starter(&found);
        let c = ccl_core::config::Config::parse(&text, Path::new("/h/.config/ccl/ccl.toml"), Some(Path::new("/h")))
            .unwrap();
        let accounts: Vec<(&str, &Path)> = c.accounts.iter().map(|a| (a.name.as_str(), a.home.as_path())).collect();
        assert_eq!(
            accounts,
            vec![
                ("main", Path::new("/h/.claude")),
                ("work", Path::new("/h/.claude-work"))
            ]
        );
        assert!(!text.contains("~/.claude-main"));
    }
}
