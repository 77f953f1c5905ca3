//! The git source against real git: bare repositories in temp dirs, the `git` CLI pushing
//! to them, `git daemon` as a remote, sshd for ssh, the pre-receive hook run by a real
//! `git push`, and webhook signatures made by `openssl`.

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use quorate::source::git::{Credentials, GitSource, RepoKind};
use quorate::source::watch::{self, Trigger, Wake, WatchOptions};
use quorate::validate::validate;
use support::git_repos::{EXAMPLE, Repos, git, git_ok};

fn names(s: &quorate::source::Sources) -> Vec<String> {
    s.iter().map(|(_, f)| f.name.clone()).collect()
}

#[test]
fn a_pushed_commit_is_fetched_and_its_specs_read_from_the_tree() {
    let r = Repos::new();
    r.add_example("");
    let first = r.commit("two workers");
    assert!(r.push().status.success());

    let mut src = GitSource::open(r.bare().to_str().unwrap(), "main", None, &r.state()).unwrap();
    assert!(matches!(src.kind(), RepoKind::Local { .. }));
    assert_eq!(
        src.head(),
        None,
        "a new clone has no head before the first fetch"
    );
    let c = src
        .fetch()
        .unwrap()
        .expect("the first fetch finds the head");
    assert_eq!(c.id, first);
    assert_eq!(c.summary, "two workers");
    assert_eq!(c.author, "Ada <ada@example.org>");
    assert!(src.fetch().unwrap().is_none(), "nothing moved");

    let sources = src.sources_at(&c.id).unwrap();
    assert_eq!(
        names(&sources),
        [
            "bundles.yaml",
            "cluster.yaml",
            "constraints.yaml",
            "fences.yaml"
        ]
    );
    assert_eq!(
        sources.iter().next().unwrap().1.bytes,
        std::fs::read(Path::new(EXAMPLE).join("bundles.yaml")).unwrap()
    );
    assert!(validate(&sources).valid_set().is_some());

    // A second commit; the old one stays readable.
    r.write("notes.txt", "not a spec\n");
    std::fs::remove_file(r.work().join("constraints.yaml")).unwrap();
    let second = r.commit("drop constraints");
    assert!(r.push().status.success());
    assert_eq!(src.fetch().unwrap().unwrap().id, second);
    assert_eq!(src.sources_at(&second).unwrap().len(), 3);
    assert_eq!(src.sources_at(&first).unwrap().len(), 4);
    assert!(src.sources_at(&"0".repeat(40)).is_err());

    // Reopened (a restart), the clone remembers its head.
    drop(src);
    let mut src = GitSource::open(r.bare().to_str().unwrap(), "main", None, &r.state()).unwrap();
    assert_eq!(src.head().unwrap().id, second);
    assert!(src.fetch().unwrap().is_none());
}

#[test]
fn a_working_repository_is_read_from_commits_not_from_its_work_tree() {
    let r = Repos::new();
    r.add_example("");
    let id = r.commit("two workers");
    // An edit nobody committed.
    r.write("cluster.yaml", "this: is [not valid\n");
    r.write("extra.yaml", "kind: Nonsense\n");
    for repo in [
        r.work().to_str().unwrap().to_owned(),
        format!("file://{}", r.work().display()),
    ] {
        let state = tempfile::tempdir().unwrap();
        let mut src = GitSource::open(&repo, "main", None, state.path()).unwrap();
        assert!(matches!(src.kind(), RepoKind::Local { git_dir } if git_dir.ends_with(".git")));
        assert_eq!(src.fetch().unwrap().unwrap().id, id);
        let sources = src.sources_at(&id).unwrap();
        assert_eq!(sources.len(), 4, "{repo}: {:?}", names(&sources));
        assert!(validate(&sources).valid_set().is_some(), "{repo}");
    }
}

#[test]
fn rewritten_history_is_just_a_new_head() {
    let r = Repos::new();
    r.add_example("");
    r.commit("base");
    r.write("a.yaml", "# first\n");
    let old = r.commit("first try");
    assert!(r.push().status.success());
    let mut src = GitSource::open(r.bare().to_str().unwrap(), "main", None, &r.state()).unwrap();
    assert_eq!(src.fetch().unwrap().unwrap().id, old);

    git_ok(&r.work(), &["reset", "-q", "--hard", "HEAD~1"]);
    r.write("b.yaml", "# second\n");
    let new = r.commit("second try");
    assert!(
        !r.push().status.success(),
        "a plain push of rewritten history is refused"
    );
    assert!(
        git(&r.work(), &["push", "-q", "--force", "origin", "main"])
            .status
            .success()
    );

    let c = src.fetch().unwrap().expect("the forced head is new");
    assert_eq!(c.id, new);
    let n = names(&src.sources_at(&new).unwrap());
    assert!(
        n.contains(&"b.yaml".to_owned()) && !n.contains(&"a.yaml".to_owned()),
        "{n:?}"
    );
}

#[test]
fn a_subdirectory_holds_the_specs_and_names_are_repository_paths() {
    let r = Repos::new();
    r.add_example("clusters/prod");
    r.write("clusters/dev/broken.yaml", "not: [valid\n");
    r.write("README.yaml", "also: [not a spec\n");
    let id = r.commit("prod");
    assert!(r.push().status.success());

    let bare = r.bare();
    let mut src = GitSource::open(
        bare.to_str().unwrap(),
        "main",
        Some(Path::new("clusters/prod")),
        &r.state(),
    )
    .unwrap();
    src.fetch().unwrap();
    let sources = src.sources_at(&id).unwrap();
    assert_eq!(
        names(&sources),
        [
            "clusters/prod/bundles.yaml",
            "clusters/prod/cluster.yaml",
            "clusters/prod/constraints.yaml",
            "clusters/prod/fences.yaml"
        ]
    );
    assert!(validate(&sources).valid_set().is_some());

    // A subdirectory the commit lacks is a finding about the commit, not a crash.
    let state = tempfile::tempdir().unwrap();
    let mut other = GitSource::open(
        bare.to_str().unwrap(),
        "main",
        Some(Path::new("clusters/qa")),
        state.path(),
    )
    .unwrap();
    other.fetch().unwrap();
    let s = other.sources_at(&id).unwrap();
    assert_eq!(s.problems.len(), 1);
    assert_eq!(s.problems[0].code, "quorate::file::no-directory");
    assert!(validate(&s).valid_set().is_none());
}

#[test]
fn links_hidden_files_and_oversized_files_follow_the_directory_rules() {
    let r = Repos::new();
    r.add_example("specs");
    r.write("specs/.drafts/wip.yaml", "not: [valid\n");
    r.write("specs/notes.md", "# notes\n");
    std::os::unix::fs::symlink("cluster.yaml", r.work().join("specs/link.yaml")).unwrap();
    let big = vec![b'#'; quorate::source::fs::MAX_FILE_BYTES as usize + 1];
    std::fs::write(r.work().join("specs/big.yaml"), big).unwrap();
    r.write("specs/nested/z.yml", "# empty\n");
    let id = r.commit("mixed");
    assert!(r.push().status.success());

    let mut src = GitSource::open(
        r.bare().to_str().unwrap(),
        "main",
        Some(Path::new("specs")),
        &r.state(),
    )
    .unwrap();
    src.fetch().unwrap();
    let s = src.sources_at(&id).unwrap();
    assert_eq!(
        names(&s),
        [
            "specs/big.yaml",
            "specs/bundles.yaml",
            "specs/cluster.yaml",
            "specs/constraints.yaml",
            "specs/fences.yaml",
            "specs/link.yaml",
            "specs/nested/z.yml"
        ]
    );
    let codes: Vec<_> = s.problems.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["quorate::file::too-large", "quorate::file::symlink"]
    );
    assert!(
        s.iter().all(|(_, f)| f.bytes.len() < 1024 * 1024),
        "the big blob is not loaded"
    );
}

#[test]
fn a_deleted_or_missing_branch_is_an_error_and_the_head_stays() {
    let r = Repos::new();
    r.add_example("");
    r.commit("x");
    assert!(r.push().status.success());
    let state = tempfile::tempdir().unwrap();
    let mut none = GitSource::open(r.bare().to_str().unwrap(), "nope", None, state.path()).unwrap();
    let e = none.fetch().unwrap_err();
    assert!(e.to_string().contains("no branch nope"), "{e}");

    git_ok(&r.work(), &["push", "-q", "origin", "main:side"]);
    let mut side = GitSource::open(r.bare().to_str().unwrap(), "side", None, &r.state()).unwrap();
    let head = side.fetch().unwrap().unwrap();
    git_ok(&r.work(), &["push", "-q", "origin", ":side"]);
    assert!(side.fetch().is_err(), "a deleted branch is noticed");
    assert_eq!(side.head(), Some(&head));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn next_commit(rx: &mut tokio::sync::mpsc::Receiver<Trigger>) -> (String, usize, Wake) {
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(Trigger::NewCommit {
            commit,
            sources,
            wake,
        })) => (commit.id, sources.len(), wake),
        Ok(Some(Trigger::Failed { error, .. })) => panic!("fetch failed: {error}"),
        Ok(Some(Trigger::Recovered { .. })) => panic!("recovered without a failure"),
        Ok(None) => panic!("the source stopped"),
        Err(_) => panic!("no new commit within 10 s"),
    }
}

#[test]
fn the_watcher_sees_a_push_to_a_local_bare_repository() {
    let r = Repos::new();
    r.add_example("");
    let first = r.commit("one");
    assert!(r.push().status.success());
    runtime().block_on(async {
        let src = GitSource::open(r.bare().to_str().unwrap(), "main", None, &r.state()).unwrap();
        // A poll interval far longer than the test: only the ref watcher can be quick.
        let options = WatchOptions {
            poll_interval: Duration::from_secs(3600),
            ..WatchOptions::default()
        };
        let (mut rx, _handle) = watch::follow(src, &options).unwrap();
        assert_eq!(next_commit(&mut rx).await, (first, 4, Wake::Start));

        for round in 0..3 {
            r.write("bundles.yaml", &format!("# round {round}\n"));
            let id = r.commit(&format!("round {round}"));
            let started = std::time::Instant::now();
            assert!(r.push().status.success());
            let (got, files, wake) = next_commit(&mut rx).await;
            assert_eq!((got, files, wake), (id, 4, Wake::Refs));
            eprintln!("round {round}: seen {:?} after the push", started.elapsed());
        }
        // Packed refs (git gc, git pack-refs) count too.
        git_ok(&r.bare(), &["pack-refs", "--all"]);
        let id = r.commit("after packing");
        assert!(r.push().status.success());
        assert_eq!(next_commit(&mut rx).await.0, id);
    });
}

/// `git daemon` serving `dir` over git:// on a free port, with pushes enabled.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> Option<GitDaemon> {
        let port = support::free_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--export-all",
                "--enable=receive-pack",
                "--reuseaddr",
            ])
            .arg(format!("--base-path={}", base.display()))
            .arg(format!("--port={port}"))
            .arg("--listen=127.0.0.1")
            .arg(base)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // `git daemon` runs git-daemon as a child: stop the whole group.
            .process_group(0)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => return support::unavailable("git daemon", e),
        };
        let d = GitDaemon { child, port };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(d);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        support::unavailable("git daemon", "it did not listen within 5 s")
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the daemon's own process group; no memory is touched.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

#[test]
fn a_remote_is_polled_and_fetched_on_request() {
    let r = Repos::new();
    r.add_example("");
    let first = r.commit("one");
    assert!(r.push().status.success());
    let Some(daemon) = GitDaemon::start(r.dir.path()) else {
        return;
    };
    let url = format!("git://127.0.0.1:{}/origin.git", daemon.port);
    runtime().block_on(async {
        // Polled: a short interval finds the push.
        let state = tempfile::tempdir().unwrap();
        let src = GitSource::open(&url, "main", None, state.path()).unwrap();
        assert_eq!(src.kind(), &RepoKind::Remote);
        let fast = WatchOptions {
            poll_interval: Duration::from_millis(200),
            ..WatchOptions::default()
        };
        let (mut rx, _h) = watch::follow(src, &fast).unwrap();
        assert_eq!(next_commit(&mut rx).await, (first.clone(), 4, Wake::Start));
        let second = r.commit("two");
        assert!(r.push().status.success());
        assert_eq!(
            next_commit(&mut rx).await,
            (second.clone(), 4, Wake::Interval)
        );
        drop(rx);

        // Not polled in time: only a request (the webhook's way) fetches.
        let src = GitSource::open(&url, "main", None, &r.state()).unwrap();
        let slow = WatchOptions {
            poll_interval: Duration::from_secs(3600),
            ..WatchOptions::default()
        };
        let (mut rx, handle) = watch::follow(src, &slow).unwrap();
        assert_eq!(next_commit(&mut rx).await.0, second);
        let third = r.commit("three");
        assert!(r.push().status.success());
        assert!(
            tokio::time::timeout(Duration::from_millis(500), rx.recv())
                .await
                .is_err(),
            "nothing happens without a poll or a request"
        );
        assert!(handle.fetch_now());
        assert_eq!(next_commit(&mut rx).await, (third, 4, Wake::Request));
        drop(rx);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !handle.fetch_now(),
            "the follower stopped with its receiver"
        );
    });
}

#[test]
fn ssh_remotes_use_the_key_and_pinned_host_keys() {
    let Some(sshd) = support::sshd() else { return };
    let r = Repos::new();
    r.add_example("");
    let id = r.commit("over ssh");
    assert!(r.push().status.success());
    let url = format!("ssh://root@127.0.0.1:{}{}", sshd.port, r.bare().display());
    let creds = Credentials {
        ssh_key: Some(sshd.identity.clone()),
        ssh_known_hosts: Some(sshd.known_hosts.clone()),
        ..Credentials::default()
    };
    let mut src = GitSource::open(&url, "main", None, &r.state())
        .unwrap()
        .with_credentials(creds.clone());
    assert_eq!(src.fetch().unwrap().unwrap().id, id);
    assert_eq!(src.sources_at(&id).unwrap().len(), 4);

    // A known_hosts file that does not list this server's key: refused.
    let other = sshd.dir().join("other_known_hosts");
    std::fs::write(
        &other,
        format!(
            "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKnyVtq+2eSs1t0Mo6p8WPGNOFbRHn9CMOGWbLbmCdUN\n",
            sshd.port
        ),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut src = GitSource::open(&url, "main", None, state.path())
        .unwrap()
        .with_credentials(Credentials {
            ssh_known_hosts: Some(other),
            ..creds
        });
    let e = src.fetch().unwrap_err().to_string();
    assert!(e.contains("hostkey"), "{e}");
}
