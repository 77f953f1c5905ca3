//! Git repositories for tests: a bare `origin.git` and a working clone pushing to it,
//! driven by the `git` CLI with a fixed identity and no user configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The example spec set every test pushes.
pub const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/two-workers");

/// Runs git with a fixed identity and no user or system configuration.
pub fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.org")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.org")
        .output()
        .expect("run git")
}

/// Runs git and insists it succeeds; returns stdout.
pub fn git_ok(dir: &Path, args: &[&str]) -> String {
    let out = git(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository `origin.git` and a working clone `work` pushing to it.
pub struct Repos {
    /// Holds both repositories.
    pub dir: TempDir,
}

impl Repos {
    pub fn new() -> Repos {
        let dir = tempfile::tempdir().unwrap();
        git_ok(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "origin.git"],
        );
        git_ok(dir.path(), &["init", "-q", "-b", "main", "work"]);
        let r = Repos { dir };
        git_ok(
            &r.work(),
            &["remote", "add", "origin", r.bare().to_str().unwrap()],
        );
        r
    }

    pub fn bare(&self) -> PathBuf {
        self.dir.path().join("origin.git")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Copies the example spec set to `sub` of the work tree.
    pub fn add_example(&self, sub: &str) {
        let to = self.work().join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(EXAMPLE).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    pub fn write(&self, path: &str, text: &str) {
        let p = self.work().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Commits everything; returns the new commit id.
    pub fn commit(&self, message: &str) -> String {
        git_ok(&self.work(), &["add", "-A"]);
        git_ok(
            &self.work(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git_ok(&self.work(), &["rev-parse", "HEAD"])
    }

    pub fn push(&self) -> Output {
        git(&self.work(), &["push", "-q", "origin", "main"])
    }
}
