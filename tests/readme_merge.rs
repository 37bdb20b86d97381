//! The README's command for moving existing history into the shared target (issue 19),
//! run exactly as written there, on a temporary home: two accounts that already have the
//! same project folder, dotfiles and a file both have. It must merge (every file ends up
//! in the shared target), never overwrite (the target's copy wins and the other is kept),
//! never delete (each original stays as `NAME.before-ccl`), leave `ccl links --fix` with
//! every link in place, and change nothing when run again.

use crate::CCL;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fenced block of README.md whose first line is `marker`.
fn readme_block(marker: &str) -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut lines = readme.lines().map(str::trim_start);
    while let Some(l) = lines.next() {
        if l.starts_with("```") {
            let block: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
            if block.first().map(|f| f.trim()) == Some(marker) {
                return block.join("\n") + "\n";
            }
        }
    }
    panic!("README.md has no block starting with {marker:?}");
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Every file and link under `dir`: relative path -> contents or link target.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if meta.file_type().is_symlink() {
                out.insert(rel, format!("-> {}", fs::read_link(&p).unwrap().display()));
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                stack.push(p);
            } else {
                out.insert(rel, fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_readme_history_merge_merges_keeps_everything_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().canonicalize().unwrap();
    let main = home.join(".claude");
    let second = home.join(".claude-second");
    let shared = home.join(".claude-shared");
    let project = "-home-me-src-app";
    write(&main.join("projects").join(project).join("aaa.jsonl"), "main's aaa\n");
    write(&main.join("projects").join(project).join(".notes"), "main's dotfile\n");
    write(&main.join("file-history/f1/v1"), "history 1\n");
    fs::create_dir_all(main.join("session-env")).unwrap();
    write(&main.join(".claude.json"), "{}\n");
    write(
        &second.join("projects").join(project).join("bbb.jsonl"),
        "second's bbb\n",
    );
    write(
        &second.join("projects").join(project).join("aaa.jsonl"),
        "second's aaa\n",
    );
    write(&second.join("projects/.cache-dir/z"), "second's hidden dir\n");
    write(
        &shared.join("projects").join(project).join("ccc.jsonl"),
        "already shared\n",
    );
    write(
        &home.join(".config/ccl/ccl.toml"),
        "[[account]]\nname = \"main\"\nhome = \"~/.claude\"\n\n[[account]]\nname = \"second\"\nhome = \"~/.claude-second\"\n",
    );
    let before_main = tree(&main);
    let before_second = tree(&second);

    let script = readme_block("# merge each account's history into the shared target");
    let bin_dir = Path::new(CCL).parent().unwrap();
    let run = || {
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(&home)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CCL_CONFIG")
            .env(
                "PATH",
                format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap()
    };
    let out = run();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");

    // Merged: every file of both accounts is in the shared target; a file already there
    // (or copied first) is never overwritten.
    let p = |rel: &str| shared.join("projects").join(project).join(rel);
    assert_eq!(fs::read_to_string(p("aaa.jsonl")).unwrap(), "main's aaa\n");
    assert_eq!(fs::read_to_string(p("bbb.jsonl")).unwrap(), "second's bbb\n");
    assert_eq!(fs::read_to_string(p("ccc.jsonl")).unwrap(), "already shared\n");
    assert_eq!(fs::read_to_string(p(".notes")).unwrap(), "main's dotfile\n");
    assert_eq!(
        fs::read_to_string(shared.join("projects/.cache-dir/z")).unwrap(),
        "second's hidden dir\n"
    );
    assert_eq!(
        fs::read_to_string(shared.join("file-history/f1/v1")).unwrap(),
        "history 1\n"
    );

    // Nothing deleted: each original is kept whole beside its link.
    for (home_dir, before) in [(&main, &before_main), (&second, &before_second)] {
        let after = tree(home_dir);
        for (rel, content) in before {
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .into_owned();
            let kept = if ["projects", "file-history", "session-env"].contains(&first.as_str()) {
                let rest = rel.strip_prefix(&first).unwrap();
                PathBuf::from(format!("{first}.before-ccl")).join(rest)
            } else {
                rel.clone()
            };
            assert_eq!(
                after.get(&kept),
                Some(content),
                "{} lost {}",
                home_dir.display(),
                rel.display()
            );
        }
        for link in ["projects", "file-history", "session-env"] {
            assert_eq!(
                fs::read_link(home_dir.join(link)).ok(),
                Some(shared.join(link)),
                "{}/{link} links to the shared target:\n{said}",
                home_dir.display()
            );
        }
    }

    // Run again: nothing to do, nothing changes.
    let all = tree(&home);
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(tree(&home), all);
}
