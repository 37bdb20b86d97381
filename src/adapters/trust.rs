//! The trust check of `ccl check`: a directory Claude has not been told to trust stops
//! every launch there at its "Quick safety check" question (even with
//! `--dangerously-skip-permissions`), which ccl must never answer by guessing. So `ccl
//! check` warns, per account, about configured directories (pool workdir, dedicated
//! workdirs, queue projects, worktree directories outside their project) missing from
//! that account's `.claude.json`. It only reads;
//! it never edits Claude's files.

use std::path::{Path, PathBuf};

use ccl_core::config::Config;

/// Directories Claude has marked trusted in `HOME/.claude.json` (`projects.<path>.
/// hasTrustDialogAccepted`). `None` when the file is missing or unreadable.
pub fn trusted_dirs(home: &Path) -> Option<Vec<PathBuf>> {
    let text = std::fs::read(home.join(".claude.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let projects = v.get("projects")?.as_object()?;
    Some(
        projects
            .iter()
            .filter(|(_, p)| p.get("hasTrustDialogAccepted").and_then(|b| b.as_bool()) == Some(true))
            .map(|(k, _)| PathBuf::from(k))
            .collect(),
    )
}

/// One warning per account and configured directory that Claude would ask about.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut dirs: Vec<(String, PathBuf)> = vec![("pool workdir".into(), config.pool.workdir.clone())];
    dirs.extend(
        config
            .dedicated
            .iter()
            .map(|d| (format!("dedicated {} workdir", d.name), d.workdir.clone())),
    );
    dirs.extend(
        config
            .queues
            .iter()
            .map(|q| (format!("queue {} project", q.name), q.project.clone())),
    );
    // Isolated tasks run in their worktrees: trusted when the project above them is.
    dirs.extend(
        config
            .queues
            .iter()
            .filter(|q| q.isolation == ccl_core::config::Isolation::Worktree && !q.worktree_dir.starts_with(&q.project))
            .map(|q| (format!("queue {} worktree_dir", q.name), q.worktree_dir.clone())),
    );
    let mut out = Vec::new();
    for account in &config.accounts {
        let Some(trusted) = trusted_dirs(&account.home) else {
            out.push(format!(
                "account {}: {} has no readable .claude.json; Claude will ask its first-run and trust questions",
                account.name,
                account.home.display()
            ));
            continue;
        };
        for (what, dir) in &dirs {
            // Trusting a directory also covers what lies below it.
            if !trusted.iter().any(|t| dir.starts_with(t)) {
                out.push(format!(
                    "account {}: {what} {} is not trusted in {}; Claude will stop at its trust question there",
                    account.name,
                    dir.display(),
                    account.home.join(".claude.json").display()
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_directories_are_named_per_account() {
        let tmp = tempfile::tempdir().unwrap();
        let home_a = tmp.path().join("a");
        let home_b = tmp.path().join("b");
        std::fs::create_dir_all(&home_a).unwrap();
        std::fs::create_dir_all(&home_b).unwrap();
        let text = format!(
            "[[account]]\nname = \"a\"\nhome = \"{}\"\n[[account]]\nname = \"b\"\nhome = \"{}\"\n[pool]\nworkdir = \"/srv/pool\"\n[[queue]]\nname = \"q\"\nproject = \"/srv/proj/q\"\n",
            home_a.display(),
            home_b.display()
        );
        let config = Config::parse(&text, &tmp.path().join("ccl.toml"), Some(tmp.path())).unwrap();
        std::fs::write(
            home_a.join(".claude.json"),
            r#"{"projects": {"/srv": {"hasTrustDialogAccepted": true}}}"#,
        )
        .unwrap();
        std::fs::write(home_b.join(".claude.json"), r#"{"projects": {"/srv/pool": {"hasTrustDialogAccepted": true}, "/srv/proj/q": {"hasTrustDialogAccepted": false}}}"#).unwrap();
        let w = warnings(&config);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            w[0].starts_with("account b: queue q project /srv/proj/q is not trusted"),
            "{}",
            w[0]
        );
        std::fs::remove_file(home_a.join(".claude.json")).unwrap();
        assert!(warnings(&config)
            .iter()
            .any(|l| l.contains("account a:") && l.contains("no readable .claude.json")));
    }

    #[test]
    fn a_worktree_dir_outside_its_project_must_be_trusted_too() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("a");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join(".claude.json"),
            r#"{"projects": {"/srv": {"hasTrustDialogAccepted": true}}}"#,
        )
        .unwrap();
        let text = format!(
            "[[account]]\nname = \"a\"\nhome = \"{}\"\n[pool]\nworkdir = \"/srv/pool\"\n\
             [[queue]]\nname = \"in\"\nproject = \"/srv/in\"\nisolation = \"worktree\"\n\
             [[queue]]\nname = \"out\"\nproject = \"/srv/out\"\nisolation = \"worktree\"\nworktree_dir = \"/scratch/wt\"\n",
            home.display()
        );
        let config = Config::parse(&text, &tmp.path().join("ccl.toml"), Some(tmp.path())).unwrap();
        let w = warnings(&config);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            w[0].starts_with("account a: queue out worktree_dir /scratch/wt is not trusted"),
            "{}",
            w[0]
        );
    }
}
