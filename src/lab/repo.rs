//! The lab's git repository: a bare repository (`repo.git`, branch `main`) for the
//! reconciler to follow, and a clone (`repo/`) to change specs in and push from, with
//! one commit holding the lab's specs and the JSON Schemas they name.

use std::path::Path;

use super::LabError;
use super::cmd::Cmd;
use super::config::LabConfig;

/// `git` with settings that keep a user's global configuration (signing, hooks) out.
fn git(dir: Option<&Path>) -> Cmd {
    let mut c = Cmd::new("git");
    if let Some(d) = dir {
        c = c.arg("-C").arg(d);
    }
    c.args([
        "-c",
        "init.defaultBranch=main",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "user.name=quorate lab",
        "-c",
        "user.email=lab@quorate.invalid",
    ])
}

/// Creates the bare repository and the clone, writes `files` (relative path, text) into
/// the clone, commits them and pushes to `main`.
pub(crate) async fn create(cfg: &LabConfig, files: &[(String, String)]) -> Result<(), LabError> {
    let bare = cfg.repo_bare();
    let work = cfg.repo_work();
    git(None)
        .args(["init", "--quiet", "--bare"])
        .arg(&bare)
        .run()
        .await?;
    git(None)
        .args(["clone", "--quiet"])
        .arg(&bare)
        .arg(&work)
        .run()
        .await?;
    for (name, text) in files {
        let path = work.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| LabError::io(&path, e))?;
    }
    git(Some(&work)).args(["add", "--all"]).run().await?;
    git(Some(&work))
        .args([
            "commit",
            "--quiet",
            "-m",
            "lab: the cluster, its fence devices, web and db",
        ])
        .run()
        .await?;
    git(Some(&work))
        .args(["push", "--quiet", "origin", "HEAD:main"])
        .run()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commit `main` points at in the bare repository.
    async fn head(cfg: &LabConfig) -> Result<String, LabError> {
        let out = git(None)
            .arg("--git-dir")
            .arg(cfg.repo_bare())
            .args(["rev-parse", "main"])
            .run()
            .await?;
        Ok(out.trim().to_owned())
    }

    #[tokio::test]
    async fn one_commit_on_main_with_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LabConfig {
            dir: dir.path().into(),
            ..LabConfig::default()
        };
        let files = vec![
            ("specs/a.yaml".to_string(), "a: 1\n".to_string()),
            ("README.md".to_string(), "lab\n".to_string()),
        ];
        create(&cfg, &files).await.unwrap();
        let commit = head(&cfg).await.unwrap();
        assert_eq!(commit.len(), 40);
        let listed = git(None)
            .arg("--git-dir")
            .arg(cfg.repo_bare())
            .args(["ls-tree", "-r", "--name-only", "main"])
            .run()
            .await
            .unwrap();
        assert_eq!(listed, "README.md\nspecs/a.yaml\n");
        let text = std::fs::read_to_string(cfg.repo_work().join("specs/a.yaml")).unwrap();
        assert_eq!(text, "a: 1\n");
    }
}
