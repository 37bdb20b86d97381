//! `cargo xtask install-claude [DIR]`: the pinned real Claude Code (the npm package) for
//! the real-client test tier, installed into DIR. Idempotent: a second run finds the
//! binary and only prints its path; a different installed version is replaced, so bumping
//! [`CLAUDE_VERSION`] reinstalls instead of silently testing against an older build.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The Claude Code version the real-client tier is tested against.
pub const CLAUDE_VERSION: &str = "2.1.328";
const PACKAGE: &str = "@anthropic-ai/claude-code";
/// The native binary under the install directory (tests/common/real.rs knows it too).
const NPM_BIN: &str = "node_modules/@anthropic-ai/claude-code/bin/claude.exe";
const MANIFEST: &str = "node_modules/@anthropic-ai/claude-code/package.json";

/// The per-machine cache: `${CCL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ccl}/claude-code`.
pub fn default_dir() -> PathBuf {
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let ccl = nonempty("CCL_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let cache = nonempty("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(nonempty("HOME").unwrap_or_default()).join(".cache"));
        cache.join("ccl")
    });
    ccl.join("claude-code")
}

/// Installs the pinned version into `dir` unless it is there already; returns the
/// absolute path of its binary. npm's own output goes to stderr.
pub fn install(dir: &Path) -> Result<PathBuf> {
    let bin = dir.join(NPM_BIN);
    if !is_executable(&bin) || installed_version(dir).as_deref() != Some(CLAUDE_VERSION) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut npm = Command::new("npm");
        npm.args(["install", "--prefix"])
            .arg(dir)
            .args(["--no-audit", "--no-fund", "--loglevel=error"])
            .arg(format!("{PACKAGE}@{CLAUDE_VERSION}"))
            .stdout(Stdio::from(std::io::stderr()));
        let status = match npm.status() {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                bail!("install-claude: npm not found (install Node.js and npm first)")
            }
            outcome => outcome.context("install-claude: cannot run npm")?,
        };
        if !status.success() {
            bail!("install-claude: `npm install {PACKAGE}@{CLAUDE_VERSION}` failed ({status})");
        }
        if !is_executable(&bin) {
            bail!("install-claude: npm finished but {} is missing", bin.display());
        }
    }
    fs::canonicalize(&bin).with_context(|| format!("cannot resolve {}", bin.display()))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The version in the installed package's manifest, if there is one.
fn installed_version(dir: &Path) -> Option<String> {
    manifest_version(&fs::read_to_string(dir.join(MANIFEST)).ok()?)
}

/// The first `"version": "…"` line of a package.json (npm writes one key per line).
fn manifest_version(manifest: &str) -> Option<String> {
    manifest.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("\"version\":")?;
        let rest = rest.trim_start().strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_the_manifest() {
        let manifest = "{\n  \"name\": \"@anthropic-ai/claude-code\",\n  \"version\": \"2.1.328\",\n  \"bin\": {}\n}\n";
        assert_eq!(manifest_version(manifest).as_deref(), Some("2.1.328"));
        assert_eq!(manifest_version("{\n  \"name\": \"x\"\n}\n"), None);
    }
}
