//! Shared-state links: every account home must expose each `shared.links` entry as a symlink
//! to `shared.target/<entry>`, so that a swap to another account finds the same transcripts,
//! undo history and session environment instead of silently forking them.
//!
//! This module owns the inspection of those links (one [`Finding`] per account and entry),
//! the validation of every account at once (startup refuses to run on any problem and lists
//! them all), the safe repair behind `ccl links --fix`, and the `ccl links` command itself.
//! The repair only ever creates: missing target directories and missing links. It never
//! rewrites a divergent link and never moves or deletes a file or directory; for everything
//! it leaves alone it hands the operator the exact shell commands instead.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use ccl_core::config::{Account, Config, Shared};

/// Directory entries counted for a [`LinkStatus::NotALink`] report; beyond this the number
/// only has to say "not empty", and a huge `projects/` must not stall `ccl check`.
const MAX_ENTRIES_COUNTED: usize = 100_000;

/// The state of one shared entry in one account home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LinkStatus {
    /// A symlink resolving to `target/<name>` (or, in the home that is the target, a directory).
    Ok,
    /// Nothing at `home/<name>`.
    Missing,
    /// A symlink leading somewhere other than `target/<name>` (or not resolving at all to it).
    Divergent { points_to: PathBuf, expected: PathBuf },
    /// A regular file or a real directory; `entries` counts what is inside a directory.
    NotALink { is_dir: bool, entries: usize },
    /// The link names `target/<name>`, but that directory does not exist.
    Dangling { target: PathBuf },
    /// The account home itself does not exist (or is not a directory).
    HomeMissing,
}

impl LinkStatus {
    pub fn is_ok(&self) -> bool {
        matches!(self, LinkStatus::Ok)
    }

    /// The status as one word, the same as the `status` tag in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            LinkStatus::Ok => "ok",
            LinkStatus::Missing => "missing",
            LinkStatus::Divergent { .. } => "divergent",
            LinkStatus::NotALink { .. } => "not_a_link",
            LinkStatus::Dangling { .. } => "dangling",
            LinkStatus::HomeMissing => "home_missing",
        }
    }
}

/// One shared entry of one account: where it is, where it must lead, and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub account: String,
    pub home: PathBuf,
    pub link: String,
    /// `home/<link>`.
    pub path: PathBuf,
    /// Where `path` must lead: `target/<link>`. Equal to `path` when this home is the shared
    /// target itself, where the entry has to be the directory rather than a link to it.
    pub shared: PathBuf,
    #[serde(flatten)]
    pub status: LinkStatus,
}

impl Finding {
    pub fn is_ok(&self) -> bool {
        self.status.is_ok()
    }

    /// Is this entry inside the home that serves as the shared target?
    fn in_store(&self) -> bool {
        self.path == self.shared
    }

    /// The explanation shown in parentheses by `Display` and in the table's DETAIL column.
    pub fn detail(&self) -> String {
        let path = self.path.display();
        let shared = self.shared.display();
        let store = self.in_store();
        match &self.status {
            LinkStatus::Ok if store => format!("{path} is the shared directory"),
            LinkStatus::Ok => format!("{path} -> {shared}"),
            LinkStatus::Missing if store => {
                format!("{path} should be a directory: this home is the shared target")
            }
            LinkStatus::Missing => format!("{path} should link to {shared}"),
            LinkStatus::Divergent { points_to, .. } if store => format!(
                "{path} points to {}, expected a directory here: this home is the shared target",
                points_to.display()
            ),
            LinkStatus::Divergent { points_to, expected } => {
                format!(
                    "{path} points to {}, expected {}",
                    points_to.display(),
                    expected.display()
                )
            }
            LinkStatus::NotALink { is_dir: true, entries } => {
                let noun = if *entries == 1 { "entry" } else { "entries" };
                format!("{path} is a directory with {entries} {noun}, expected a link to {shared}")
            }
            LinkStatus::NotALink { is_dir: false, .. } if store => {
                format!("{path} is a file, expected a directory: this home is the shared target")
            }
            LinkStatus::NotALink { is_dir: false, .. } => {
                format!("{path} is a file, expected a link to {shared}")
            }
            LinkStatus::Dangling { target } => {
                format!("{path} links to {}, which does not exist", target.display())
            }
            LinkStatus::HomeMissing => {
                format!("{} does not exist or is not a directory", self.home.display())
            }
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "account '{}': {}: {} ({})",
            self.account,
            self.link,
            self.status.name(),
            self.detail()
        )
    }
}

/// Inspects every entry of `shared.links` in one account home, in `shared.links` order.
///
/// There is always exactly one finding per entry, even when the home itself is missing (each
/// entry then reports [`LinkStatus::HomeMissing`]), so callers can rely on the shape.
/// When the home canonicalises to the shared target, the home *is* the store: each entry
/// must be a directory there (a symlink that resolves to a directory counts too, since every
/// other home resolves through it).
pub fn inspect_home(account: &Account, shared: &Shared) -> Vec<Finding> {
    let home_is_dir = fs::metadata(&account.home).map(|m| m.is_dir()).unwrap_or(false);
    let home_is_target = if home_is_dir {
        same_dir(&account.home, &shared.target)
    } else {
        // A missing home spelled exactly like the target would become the store once created.
        normalize(&account.home) == normalize(&shared.target)
    };
    shared
        .links
        .iter()
        .map(|link| {
            let path = account.home.join(link);
            let target_entry = if home_is_target {
                path.clone()
            } else {
                shared.target.join(link)
            };
            let status = if !home_is_dir {
                LinkStatus::HomeMissing
            } else if home_is_target {
                inspect_store_entry(&path)
            } else {
                inspect_link(&path, &target_entry)
            };
            Finding {
                account: account.name.to_string(),
                home: account.home.clone(),
                link: link.clone(),
                path,
                shared: target_entry,
                status,
            }
        })
        .collect()
}

/// Every finding (ok ones included) of every account, in configuration order.
pub fn validate_all(accounts: &[Account], shared: &Shared) -> Vec<Finding> {
    accounts.iter().flat_map(|a| inspect_home(a, shared)).collect()
}

/// The findings that are not ok.
pub fn problems(findings: &[Finding]) -> Vec<&Finding> {
    findings.iter().filter(|f| !f.is_ok()).collect()
}

/// What [`fix`] did and what it left for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixReport {
    /// One human line per change: "created directory X", "linked A -> B".
    pub created: Vec<String>,
    /// Every problem still present afterwards, with the shell commands that would settle it.
    pub remaining: Vec<(Finding, Vec<String>)>,
}

/// Creates what is safe to create: missing target directories (for missing and dangling
/// links, and missing entries of the home that is the target) and missing links. Anything
/// else — divergent links, real files or directories, missing homes — is left exactly as it
/// is and reported in `remaining`. Running it again creates nothing.
pub fn fix(accounts: &[Account], shared: &Shared) -> Result<FixReport> {
    let mut created = Vec::new();
    for finding in validate_all(accounts, shared) {
        match &finding.status {
            LinkStatus::Missing if finding.in_store() => {
                fs::create_dir(&finding.path)
                    .with_context(|| format!("cannot create directory {}", finding.path.display()))?;
                created.push(format!("created directory {}", finding.path.display()));
            }
            LinkStatus::Missing => {
                // A link to something that is not a directory would only trade "missing" for
                // "dangling"; leave both alone and let the operator see why.
                let target_ready = ensure_dir(&finding.shared, &mut created)?;
                if !target_ready {
                    continue;
                }
                symlink(&finding.shared, &finding.path).with_context(|| {
                    format!("cannot link {} to {}", finding.path.display(), finding.shared.display())
                })?;
                created.push(format!(
                    "linked {} -> {}",
                    finding.path.display(),
                    finding.shared.display()
                ));
            }
            LinkStatus::Dangling { .. } => {
                ensure_dir(&finding.shared, &mut created)?;
            }
            _ => {}
        }
    }
    // Judge the result by looking again rather than by trusting the plan: a dangling link
    // whose route is unusual is only known to work once it resolves.
    let remaining = validate_all(accounts, shared)
        .into_iter()
        .filter(|f| !f.is_ok())
        .map(|f| {
            let commands = commands(&f);
            (f, commands)
        })
        .collect();
    Ok(FixReport { created, remaining })
}

/// The shell commands (for `sh`, paths single-quoted) that would settle one finding, in the
/// order to run them. They move rather than delete data, and each chain stops at the first
/// failing step (`&&`), so a surprise such as a hidden file leaves things as they were.
pub fn commands(finding: &Finding) -> Vec<String> {
    let p = sh_quote(&finding.path);
    let t = sh_quote(&finding.shared);
    let bak = sh_quote(&PathBuf::from(format!("{}.bak", finding.path.display())));
    let store = finding.in_store();
    let line = match &finding.status {
        LinkStatus::Ok => return Vec::new(),
        LinkStatus::Missing if store => format!("mkdir {p}"),
        LinkStatus::Missing => format!("mkdir -p {t} && ln -s {t} {p}"),
        LinkStatus::Divergent { .. } if store => format!("rm {p} && mkdir {p}"),
        LinkStatus::Divergent { .. } => format!("mkdir -p {t} && rm {p} && ln -s {t} {p}"),
        LinkStatus::NotALink {
            is_dir: true,
            entries: 0,
        } => {
            format!("mkdir -p {t} && rmdir {p} && ln -s {t} {p}")
        }
        // Merged, not moved: the target may already hold the same project folders (from
        // another account) and the directory may hold dotfiles, where `mv DIR/* TARGET/`
        // fails half way. tar copies everything (dotfiles too) and with --skip-old-files
        // never overwrites a file the target has; the original is kept beside the link.
        LinkStatus::NotALink { is_dir: true, .. } => {
            let kept = sh_quote(&PathBuf::from(format!("{}.before-ccl", finding.path.display())));
            format!(
                "mkdir -p {t} && tar -C {p} -cf - . | tar -C {t} -xf - --skip-old-files && mv {p} {kept} && ln -s {t} {p}"
            )
        }
        LinkStatus::NotALink { is_dir: false, .. } if store => format!("mv {p} {bak} && mkdir {p}"),
        LinkStatus::NotALink { is_dir: false, .. } => {
            format!("mkdir -p {t} && mv {p} {bak} && ln -s {t} {p}")
        }
        LinkStatus::Dangling { target } => format!("mkdir -p {}", sh_quote(target)),
        LinkStatus::HomeMissing if store => format!("mkdir -p {p}"),
        LinkStatus::HomeMissing => {
            format!("mkdir -p {} {t} && ln -s {t} {p}", sh_quote(&finding.home))
        }
    };
    vec![line]
}

/// An aligned table with the columns ACCOUNT, LINK, STATUS, DETAIL; one row per finding.
pub fn render_table(findings: &[Finding]) -> String {
    let header = ["ACCOUNT", "LINK", "STATUS", "DETAIL"];
    let rows: Vec<[String; 4]> = findings
        .iter()
        .map(|f| {
            [
                f.account.clone(),
                f.link.clone(),
                f.status.name().to_string(),
                f.detail(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row = header.map(String::from);
    for row in std::iter::once(&header_row).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `ccl links [--fix]`: prints the table (after fixing, when asked) and the remaining commands;
/// returns Ok(true) when everything is ok afterwards (exit 0), Ok(false) otherwise (exit 1).
pub fn cmd_links(config: &Config, fix: bool, out: &mut dyn Write) -> Result<bool> {
    if fix {
        let report = self::fix(&config.accounts, &config.shared)?;
        if report.created.is_empty() {
            writeln!(out, "nothing to create")?;
        }
        for line in &report.created {
            writeln!(out, "{line}")?;
        }
        writeln!(out)?;
    }
    let findings = validate_all(&config.accounts, &config.shared);
    out.write_all(render_table(&findings).as_bytes())?;
    let problems = problems(&findings);
    if problems.is_empty() {
        writeln!(
            out,
            "\nall {} shared links of {} accounts are ok",
            findings.len(),
            config.accounts.len()
        )?;
        return Ok(true);
    }
    let noun = if problems.len() == 1 { "problem" } else { "problems" };
    let why = if fix {
        "ccl never rewrites a link or moves data, so the commands below are yours to run"
    } else {
        "'ccl links --fix' creates missing links and target directories; the commands below settle everything"
    };
    writeln!(out, "\n{} {noun}; {why}:", problems.len())?;
    for p in problems {
        writeln!(out, "# {p}")?;
        for command in commands(p) {
            writeln!(out, "{command}")?;
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------
// Inspection details.

/// An entry of the home that is the shared target: it must be a directory.
fn inspect_store_entry(path: &Path) -> LinkStatus {
    match fs::symlink_metadata(path) {
        // Unreadable counts as missing: `fix` then fails with the real error and the path.
        Err(_) => LinkStatus::Missing,
        Ok(m) if m.file_type().is_symlink() => {
            if path.is_dir() {
                LinkStatus::Ok
            } else {
                LinkStatus::Divergent {
                    points_to: link_dest(path),
                    expected: path.to_path_buf(),
                }
            }
        }
        Ok(m) if m.is_dir() => LinkStatus::Ok,
        Ok(_) => LinkStatus::NotALink {
            is_dir: false,
            entries: 0,
        },
    }
}

/// An entry of an ordinary home: it must be a symlink resolving to `expected`.
fn inspect_link(path: &Path, expected: &Path) -> LinkStatus {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return LinkStatus::Missing,
    };
    if meta.file_type().is_symlink() {
        let dest = link_dest(path);
        let divergent = || LinkStatus::Divergent {
            points_to: dest.clone(),
            expected: expected.to_path_buf(),
        };
        let dangling = || LinkStatus::Dangling {
            target: expected.to_path_buf(),
        };
        return match fs::canonicalize(path) {
            Ok(real) => match fs::canonicalize(expected) {
                Ok(want) if want == real && real.is_dir() => LinkStatus::Ok,
                // Resolves to target/<name>, but that is a file: the directory is missing.
                Ok(want) if want == real => dangling(),
                _ => divergent(),
            },
            Err(_) if resolve_lenient(&dest) == resolve_lenient(expected) => dangling(),
            Err(_) => divergent(),
        };
    }
    if meta.is_dir() {
        let entries = fs::read_dir(path)
            .map(|rd| rd.take(MAX_ENTRIES_COUNTED).count())
            .unwrap_or(0);
        LinkStatus::NotALink { is_dir: true, entries }
    } else {
        LinkStatus::NotALink {
            is_dir: false,
            entries: 0,
        }
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Where a symlink leads as text, made absolute against the link's own directory and
/// cleaned lexically: what an operator reading `ls -l` would expect to see.
fn link_dest(path: &Path) -> PathBuf {
    match fs::read_link(path) {
        Ok(text) if text.is_absolute() => normalize(&text),
        Ok(text) => normalize(&path.parent().unwrap_or(Path::new("/")).join(text)),
        Err(_) => path.to_path_buf(),
    }
}

/// Canonicalises the longest existing ancestor and appends the rest lexically, so two
/// spellings of a path that does not exist yet can still be compared.
fn resolve_lenient(path: &Path) -> PathBuf {
    for ancestor in path.ancestors() {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        if let Ok(real) = fs::canonicalize(ancestor) {
            let rest = path.strip_prefix(ancestor).unwrap_or(Path::new(""));
            return normalize(&real.join(rest));
        }
    }
    normalize(path)
}

/// Removes `.` and resolves `..` lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Makes sure `dir` is a directory, creating it (and its parents) when nothing is there.
/// Returns false, touching nothing, when something that is not a directory occupies it.
fn ensure_dir(dir: &Path, created: &mut Vec<String>) -> Result<bool> {
    match fs::symlink_metadata(dir) {
        Ok(_) => Ok(dir.is_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
            created.push(format!("created directory {}", dir.display()));
            Ok(true)
        }
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", dir.display())),
    }
}

/// Quotes a path for `sh` with single quotes; an embedded `'` becomes `'\''`.
fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    /// A scratch world: `root/shared` is the target, homes live under `root`.
    struct World {
        _dir: TempDir,
        root: PathBuf,
        shared: Shared,
    }

    impl World {
        fn new() -> World {
            World::with_root_name("w")
        }

        /// `name` becomes part of every path, so odd characters reach the shell commands.
        fn with_root_name(name: &str) -> World {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join(name);
            fs::create_dir(&root).unwrap();
            let shared = Shared {
                target: root.join("shared"),
                links: vec!["projects".into(), "file-history".into(), "session-env".into()],
            };
            World {
                _dir: dir,
                root,
                shared,
            }
        }

        fn target(&self, link: &str) -> PathBuf {
            self.shared.target.join(link)
        }

        /// An account whose home exists, with nothing in it.
        fn home(&self, name: &str) -> Account {
            let home = self.root.join(format!("home-{name}"));
            fs::create_dir_all(&home).unwrap();
            Account {
                name: name.into(),
                home,
            }
        }

        /// An account with every link correct and every target present.
        fn linked_home(&self, name: &str) -> Account {
            let a = self.home(name);
            for link in &self.shared.links {
                fs::create_dir_all(self.target(link)).unwrap();
                symlink(self.target(link), a.home.join(link)).unwrap();
            }
            a
        }

        fn status(&self, account: &Account, link: &str) -> LinkStatus {
            let findings = inspect_home(account, &self.shared);
            findings.into_iter().find(|f| f.link == link).unwrap().status
        }
    }

    fn statuses(findings: &[Finding]) -> Vec<(String, String, &'static str)> {
        findings
            .iter()
            .map(|f| (f.account.clone(), f.link.clone(), f.status.name()))
            .collect()
    }

    fn run_sh(command: &str) {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .status()
            .unwrap();
        assert!(status.success(), "{command}");
    }

    #[test]
    fn absolute_link_to_the_target_is_ok() {
        let w = World::new();
        let a = w.linked_home("a");
        let findings = inspect_home(&a, &w.shared);
        assert_eq!(findings.len(), 3);
        assert!(findings.iter().all(Finding::is_ok), "{findings:#?}");
        assert_eq!(findings[0].path, a.home.join("projects"));
        assert_eq!(findings[0].shared, w.target("projects"));
    }

    #[test]
    fn relative_link_that_resolves_to_the_target_is_ok() {
        let w = World::new();
        let a = w.home("a");
        fs::create_dir_all(w.target("projects")).unwrap();
        symlink("../shared/projects", a.home.join("projects")).unwrap();
        assert_eq!(w.status(&a, "projects"), LinkStatus::Ok);
    }

    #[test]
    fn nothing_there_is_missing_and_says_where_it_should_link() {
        let w = World::new();
        let a = w.home("b");
        let findings = inspect_home(&a, &w.shared);
        assert!(findings.iter().all(|f| f.status == LinkStatus::Missing));
        let line = findings[0].to_string();
        let want = format!(
            "account 'b': projects: missing ({} should link to {})",
            a.home.join("projects").display(),
            w.target("projects").display()
        );
        assert_eq!(line, want);
    }

    #[test]
    fn link_elsewhere_is_divergent_naming_both_paths() {
        let w = World::new();
        let a = w.home("a");
        let elsewhere = w.root.join("elsewhere/projects");
        fs::create_dir_all(&elsewhere).unwrap();
        fs::create_dir_all(w.target("projects")).unwrap();
        symlink(&elsewhere, a.home.join("projects")).unwrap();
        let f = inspect_home(&a, &w.shared).remove(0);
        assert_eq!(
            f.status,
            LinkStatus::Divergent {
                points_to: elsewhere.clone(),
                expected: w.target("projects")
            }
        );
        let line = f.to_string();
        assert!(line.contains(&elsewhere.display().to_string()), "{line}");
        assert!(line.contains(&w.target("projects").display().to_string()), "{line}");
    }

    #[test]
    fn dangling_link_elsewhere_is_divergent_not_dangling() {
        let w = World::new();
        let a = w.home("a");
        symlink(w.root.join("gone/projects"), a.home.join("projects")).unwrap();
        assert!(matches!(w.status(&a, "projects"), LinkStatus::Divergent { .. }));
    }

    #[test]
    fn regular_file_is_not_a_link() {
        let w = World::new();
        let a = w.home("a");
        fs::write(a.home.join("projects"), "x").unwrap();
        assert_eq!(
            w.status(&a, "projects"),
            LinkStatus::NotALink {
                is_dir: false,
                entries: 0
            }
        );
    }

    #[test]
    fn real_directory_counts_its_entries() {
        let w = World::new();
        let a = w.home("a");
        let dir = a.home.join("projects");
        fs::create_dir(&dir).unwrap();
        for name in ["one", "two", "three"] {
            fs::write(dir.join(name), name).unwrap();
        }
        assert_eq!(
            w.status(&a, "projects"),
            LinkStatus::NotALink {
                is_dir: true,
                entries: 3
            }
        );
        let f = inspect_home(&a, &w.shared).remove(0);
        assert!(f.to_string().contains("is a directory with 3 entries"), "{f}");
    }

    #[test]
    fn link_to_a_missing_target_is_dangling() {
        let w = World::new();
        let a = w.home("a");
        symlink(w.target("projects"), a.home.join("projects")).unwrap();
        assert_eq!(
            w.status(&a, "projects"),
            LinkStatus::Dangling {
                target: w.target("projects")
            }
        );
        // The same holds for a relative spelling.
        symlink("../shared/session-env", a.home.join("session-env")).unwrap();
        assert_eq!(
            w.status(&a, "session-env"),
            LinkStatus::Dangling {
                target: w.target("session-env")
            }
        );
    }

    #[test]
    fn missing_home_reports_every_link_and_is_not_created() {
        let w = World::new();
        let a = Account {
            name: "typo".into(),
            home: w.root.join("home-typo"),
        };
        let findings = inspect_home(&a, &w.shared);
        assert_eq!(findings.len(), 3);
        assert!(findings.iter().all(|f| f.status == LinkStatus::HomeMissing));
        assert!(findings[0].to_string().contains("does not exist"), "{}", findings[0]);

        let report = fix(std::slice::from_ref(&a), &w.shared).unwrap();
        assert!(!a.home.exists(), "fix must not create a home");
        assert_eq!(report.remaining.len(), 3);
        let command = &report.remaining[0].1[0];
        assert!(
            command.starts_with(&format!("mkdir -p '{}'", a.home.display())),
            "{command}"
        );
    }

    #[test]
    fn home_that_is_the_target_needs_real_directories() {
        let w = World::new();
        fs::create_dir_all(&w.shared.target).unwrap();
        let store = Account {
            name: "main".into(),
            home: w.shared.target.clone(),
        };
        fs::create_dir(w.target("projects")).unwrap();
        fs::create_dir(w.target("file-history")).unwrap();
        let findings = inspect_home(&store, &w.shared);
        assert_eq!(
            statuses(&findings),
            vec![
                ("main".into(), "projects".into(), "ok"),
                ("main".into(), "file-history".into(), "ok"),
                ("main".into(), "session-env".into(), "missing"),
            ]
        );
        assert!(
            findings[2].to_string().contains("should be a directory"),
            "{}",
            findings[2]
        );

        let report = fix(std::slice::from_ref(&store), &w.shared).unwrap();
        assert_eq!(
            report.created,
            vec![format!("created directory {}", w.target("session-env").display())]
        );
        assert!(report.remaining.is_empty(), "{:?}", report.remaining);
        assert!(fs::symlink_metadata(w.target("session-env")).unwrap().is_dir());
    }

    #[test]
    fn validate_all_lists_every_problem_of_every_account_in_order() {
        let w = World::new();
        let good = w.linked_home("good");
        let b = w.home("b");
        fs::write(b.home.join("projects"), "x").unwrap();
        let c = w.home("c");
        symlink(w.root.join("other"), c.home.join("file-history")).unwrap();
        let findings = validate_all(&[good, b, c], &w.shared);
        assert_eq!(findings.len(), 9);
        let bad: Vec<(String, String, &str)> = problems(&findings)
            .iter()
            .map(|f| (f.account.clone(), f.link.clone(), f.status.name()))
            .collect();
        assert_eq!(
            bad,
            vec![
                ("b".into(), "projects".into(), "not_a_link"),
                ("b".into(), "file-history".into(), "missing"),
                ("b".into(), "session-env".into(), "missing"),
                ("c".into(), "projects".into(), "missing"),
                ("c".into(), "file-history".into(), "divergent"),
                ("c".into(), "session-env".into(), "missing"),
            ]
        );
    }

    #[test]
    fn fix_creates_targets_and_links_then_everything_is_ok() {
        let w = World::new();
        let accounts = [w.home("a"), w.home("b")];
        // One link already exists but its target does not.
        symlink(w.target("session-env"), accounts[1].home.join("session-env")).unwrap();
        let report = fix(&accounts, &w.shared).unwrap();
        assert!(report.remaining.is_empty(), "{:?}", report.remaining);
        for link in &w.shared.links {
            assert!(report
                .created
                .contains(&format!("created directory {}", w.target(link).display())));
        }
        let a_projects = format!(
            "linked {} -> {}",
            accounts[0].home.join("projects").display(),
            w.target("projects").display()
        );
        assert!(report.created.contains(&a_projects), "{:#?}", report.created);
        // 3 directories + 5 links (b's session-env link was already there).
        assert_eq!(report.created.len(), 8, "{:#?}", report.created);
        assert!(validate_all(&accounts, &w.shared).iter().all(Finding::is_ok));
        assert_eq!(
            fs::read_link(accounts[1].home.join("projects")).unwrap(),
            w.target("projects")
        );
    }

    #[test]
    fn fix_twice_changes_nothing_the_second_time() {
        let w = World::new();
        let accounts = [w.home("a"), w.home("b")];
        let first = fix(&accounts, &w.shared).unwrap();
        assert!(!first.created.is_empty());
        let second = fix(&accounts, &w.shared).unwrap();
        assert_eq!(second, FixReport::default());
    }

    #[test]
    fn fix_refuses_a_divergent_link_and_leaves_it_exactly_as_it_was() {
        let w = World::new();
        let a = w.linked_home("a");
        let link = a.home.join("projects");
        fs::remove_file(&link).unwrap();
        symlink("../elsewhere/projects", &link).unwrap();
        fs::create_dir_all(w.root.join("elsewhere/projects")).unwrap();

        let report = fix(std::slice::from_ref(&a), &w.shared).unwrap();
        assert!(report.created.is_empty(), "{:?}", report.created);
        assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from("../elsewhere/projects"));
        assert_eq!(report.remaining.len(), 1);
        let (finding, commands) = &report.remaining[0];
        assert!(matches!(finding.status, LinkStatus::Divergent { .. }));
        assert_eq!(commands.len(), 1);
        assert!(commands[0].contains(&format!(
            "ln -s '{}' '{}'",
            w.target("projects").display(),
            link.display()
        )));
    }

    #[test]
    fn real_directory_with_files_is_reported_and_untouched() {
        let w = World::with_root_name("it's here");
        let a = w.home("a");
        let dir = a.home.join("projects");
        fs::create_dir(&dir).unwrap();
        for name in ["one.jsonl", "two.jsonl", "three.jsonl"] {
            fs::write(dir.join(name), name).unwrap();
        }
        let report = fix(std::slice::from_ref(&a), &w.shared).unwrap();
        // The other two links were safe to create; projects was not.
        assert!(
            report.created.iter().all(|l| !l.contains(&dir.display().to_string())),
            "{:#?}",
            report.created
        );
        assert!(fs::symlink_metadata(&dir).unwrap().is_dir());
        for name in ["one.jsonl", "two.jsonl", "three.jsonl"] {
            assert_eq!(fs::read_to_string(dir.join(name)).unwrap(), name);
        }
        assert_eq!(report.remaining.len(), 1);
        let (finding, commands) = &report.remaining[0];
        assert_eq!(
            finding.status,
            LinkStatus::NotALink {
                is_dir: true,
                entries: 3
            }
        );

        // The operator's commands, run by sh on a path with a quote and a space, settle it
        // without losing a file.
        for command in commands {
            run_sh(command);
        }
        assert!(validate_all(std::slice::from_ref(&a), &w.shared)
            .iter()
            .all(Finding::is_ok));
        for name in ["one.jsonl", "two.jsonl", "three.jsonl"] {
            assert_eq!(fs::read_to_string(w.target("projects").join(name)).unwrap(), name);
        }
    }

    #[test]
    fn commands_merge_two_histories_with_the_same_project_folder_and_dotfiles() {
        let w = World::new();
        let (a, b) = (w.home("a"), w.home("b"));
        let folder = "-home-me-src-app";
        fs::create_dir_all(w.target("projects").join(folder)).unwrap();
        fs::write(w.target("projects").join(folder).join("shared.jsonl"), "shared").unwrap();
        for (acc, mine) in [(&a, "a.jsonl"), (&b, "b.jsonl")] {
            let dir = acc.home.join("projects").join(folder);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(mine), mine).unwrap();
            fs::write(dir.join("both.jsonl"), format!("{} copy", acc.name)).unwrap();
            fs::write(acc.home.join("projects").join(".hidden"), acc.name.as_str()).unwrap();
        }
        let accounts = [a.clone(), b.clone()];
        for f in problems(&validate_all(&accounts, &w.shared)) {
            for command in commands(f) {
                run_sh(&command);
            }
        }
        assert!(validate_all(&accounts, &w.shared).iter().all(Finding::is_ok));
        let merged = w.target("projects").join(folder);
        for (name, text) in [
            ("shared.jsonl", "shared"),
            ("a.jsonl", "a.jsonl"),
            ("b.jsonl", "b.jsonl"),
            ("both.jsonl", "a copy"),
        ] {
            assert_eq!(fs::read_to_string(merged.join(name)).unwrap(), text, "{name}");
        }
        assert_eq!(fs::read_to_string(w.target("projects").join(".hidden")).unwrap(), "a");
        // Nothing is deleted: each original is kept whole beside the link.
        let kept = b.home.join("projects.before-ccl");
        assert_eq!(
            fs::read_to_string(kept.join(folder).join("both.jsonl")).unwrap(),
            "b copy"
        );
        assert_eq!(fs::read_to_string(kept.join(".hidden")).unwrap(), "b");
    }

    #[test]
    fn commands_for_every_kind_settle_it_when_run() {
        let w = World::new();
        let a = w.linked_home("a");
        // Divergent, a plain file and a missing home, each fixed by its own commands.
        fs::remove_file(a.home.join("projects")).unwrap();
        symlink(w.root.join("elsewhere"), a.home.join("projects")).unwrap();
        fs::remove_file(a.home.join("file-history")).unwrap();
        fs::write(a.home.join("file-history"), "stray").unwrap();
        let ghost = Account {
            name: "ghost".into(),
            home: w.root.join("home-ghost"),
        };
        let accounts = [a.clone(), ghost];
        let findings = validate_all(&accounts, &w.shared);
        assert_eq!(problems(&findings).len(), 5);
        for f in problems(&findings) {
            for command in commands(f) {
                run_sh(&command);
            }
        }
        assert!(validate_all(&accounts, &w.shared).iter().all(Finding::is_ok));
        assert_eq!(fs::read_to_string(a.home.join("file-history.bak")).unwrap(), "stray");
    }

    #[test]
    fn findings_serialise_with_a_status_tag() {
        let w = World::new();
        let a = w.home("a");
        fs::create_dir(a.home.join("projects")).unwrap();
        let f = inspect_home(&a, &w.shared).remove(0);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["status"], "not_a_link");
        assert_eq!(json["entries"], 0);
        assert_eq!(json["account"], "a");
        assert_eq!(json["link"], "projects");
    }

    #[test]
    fn table_is_aligned_with_a_header() {
        let w = World::new();
        let accounts = [w.linked_home("main"), w.home("b")];
        let table = render_table(&validate_all(&accounts, &w.shared));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 7);
        assert!(
            lines[0].starts_with("ACCOUNT  LINK          STATUS   DETAIL"),
            "{table}"
        );
        let detail_col = lines[0].find("DETAIL").unwrap();
        for line in &lines[1..] {
            let status_col = lines[0].find("STATUS").unwrap();
            assert!(
                ["ok ", "missing "].iter().any(|s| line[status_col..].starts_with(s)),
                "{table}"
            );
            assert_ne!(line.as_bytes()[detail_col], b' ', "{table}");
            assert_eq!(line.as_bytes()[detail_col - 1], b' ', "{table}");
        }
    }

    fn config_for(w: &World, accounts: Vec<Account>) -> Config {
        let mut text = String::new();
        for a in &accounts {
            text.push_str(&format!(
                "[[account]]\nname = \"{}\"\nhome = \"{}\"\n",
                a.name,
                a.home.display()
            ));
        }
        text.push_str(&format!("[shared]\ntarget = \"{}\"\n", w.shared.target.display()));
        Config::parse(&text, &w.root.join("ccl.toml"), Some(&w.root)).unwrap()
    }

    #[test]
    fn cmd_links_shows_every_account_and_link_and_fails_while_problems_remain() {
        let w = World::new();
        let good = w.linked_home("main");
        let bad = w.home("spare");
        let elsewhere = w.root.join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        symlink(&elsewhere, bad.home.join("projects")).unwrap();
        let config = config_for(&w, vec![good, bad.clone()]);

        let mut out = Vec::new();
        assert!(!cmd_links(&config, false, &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        for word in [
            "main",
            "spare",
            "projects",
            "file-history",
            "session-env",
            "divergent",
            "missing",
        ] {
            assert!(text.contains(word), "{word} missing in:\n{text}");
        }
        assert!(text.contains("3 problems"), "{text}");
        assert!(text.contains("ln -s"), "{text}");
        // Nothing was created without --fix.
        assert!(fs::symlink_metadata(bad.home.join("session-env")).is_err());

        let mut out = Vec::new();
        assert!(!cmd_links(&config, true, &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(&format!("linked {}", bad.home.join("session-env").display())),
            "{text}"
        );
        assert!(text.contains("1 problem;"), "{text}");
        assert_eq!(fs::read_link(bad.home.join("projects")).unwrap(), elsewhere);

        // Once the operator settles the divergent link, the command succeeds.
        fs::remove_file(bad.home.join("projects")).unwrap();
        let mut out = Vec::new();
        assert!(cmd_links(&config, true, &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("all 6 shared links of 2 accounts are ok"), "{text}");
    }
}
