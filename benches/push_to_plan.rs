//! Benchmark: push-to-plan latency on a local bare repository.
//!
//! `cargo bench --bench push_to_plan`. For each spec set (the two-workers example, and a
//! generated 50-node, 300-bundle set), pushes a change with the `git` CLI to a bare
//! repository that a [`quorate::source::watch::follow`] watches, and times from the start
//! of `git push` to a plan made from the pushed commit: ref watcher, fetch into quorate's
//! clone, reading the tree, load and validate, and `plan` on a fresh observed state.
//! The `git push` itself is the peer, measured in the same run: the figure that matters is
//! how much quorate adds to it. A second part compares quorate's fetch (libgit2) with
//! `git fetch` on the same change. Goal: push-to-plan under 1 s.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use quorate::observed::Observed;
use quorate::plan::{Options, plan};
use quorate::source::git::GitSource;
use quorate::source::watch::{self, Trigger, WatchOptions};
use quorate::validate::validate;
use support::{Shape, documents, median};

const ROUNDS: usize = 9;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.org")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.org")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bare repository and a working clone holding `files`, committed and pushed.
fn repos(dir: &Path, files: &[(String, String)]) {
    git(dir, &["init", "-q", "--bare", "-b", "main", "origin.git"]);
    git(dir, &["init", "-q", "-b", "main", "work"]);
    let work = dir.join("work");
    git(&work, &["remote", "add", "origin", "../origin.git"]);
    for (name, text) in files {
        std::fs::write(work.join(name), text).expect("write");
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "initial"]);
    git(&work, &["push", "-q", "origin", "main"]);
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn run(label: &str, files: Vec<(String, String)>, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    repos(dir.path(), &files);
    let work = dir.path().join("work");
    let bare = dir.path().join("origin.git");
    let state = dir.path().join("state");
    let (mut push, mut total, mut after_push) = (Vec::new(), Vec::new(), Vec::new());
    let mut plan_changes = 0;
    rt.block_on(async {
        let src =
            GitSource::open(bare.to_str().expect("utf-8"), "main", None, &state).expect("open");
        let options = WatchOptions {
            poll_interval: Duration::from_secs(3600),
            ..WatchOptions::default()
        };
        let (mut rx, _handle) = watch::follow(src, &options).expect("follow");
        let _start = rx.recv().await.expect("the head at start");
        for round in 0..ROUNDS {
            let first = &files[0].0;
            let mut text = files[0].1.clone();
            text.push_str(&format!("# round {round}\n"));
            std::fs::write(work.join(first), text).expect("write");
            git(
                &work,
                &["commit", "-q", "-a", "-m", &format!("round {round}")],
            );
            let t0 = Instant::now();
            let out = tokio::process::Command::new("git")
                .args(["push", "-q", "origin", "main"])
                .current_dir(&work)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .await
                .expect("push");
            let pushed = t0.elapsed();
            assert!(out.status.success());
            let Some(Trigger::NewCommit { sources, .. }) = rx.recv().await else {
                panic!("no new commit");
            };
            let report = validate(&sources);
            let spec = report.into_valid_set().expect("the pushed specs are valid");
            let p = plan(&spec, &Observed::fresh(&spec), &Options::default());
            let done = t0.elapsed();
            plan_changes = p.changes;
            push.push(pushed);
            total.push(done);
            after_push.push(done.saturating_sub(pushed));
        }
    });
    let (push, total) = (median(push), median(total));
    println!(
        "{label} ({} files, plan of {plan_changes} changes), median of {ROUNDS} pushes:",
        files.len()
    );
    println!("  push to plan:            {}", ms(total));
    println!("  git push alone (peer):   {}", ms(push));
    println!(
        "  quorate after the push:  {} (push to plan is {:.2}x the push)",
        ms(median(after_push)),
        total.as_secs_f64() / push.as_secs_f64()
    );

    // Fetch alone: quorate's libgit2 fetch beside `git fetch` into a plain clone.
    git(
        dir.path(),
        &["clone", "-q", "--bare", "origin.git", "peer.git"],
    );
    let peer = dir.path().join("peer.git");
    let fresh = dir.path().join("fetch-state");
    let mut src =
        GitSource::open(bare.to_str().expect("utf-8"), "main", None, &fresh).expect("open");
    src.fetch().expect("fetch");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        git(
            &work,
            &["commit", "-q", "--allow-empty", "-m", &format!("f{round}")],
        );
        git(&work, &["push", "-q", "origin", "main"]);
        let t = Instant::now();
        assert!(src.fetch().expect("fetch").is_some());
        ours.push(t.elapsed());
        let t = Instant::now();
        git(
            &peer,
            &["fetch", "-q", "origin", "+refs/heads/main:refs/heads/main"],
        );
        theirs.push(t.elapsed());
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "  fetch: quorate {} vs git fetch {} ({:.2}x)",
        ms(ours),
        ms(theirs),
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/two-workers");
    let mut files: Vec<(String, String)> = std::fs::read_dir(example)
        .expect("example")
        .map(|e| {
            let e = e.expect("entry");
            let text = std::fs::read_to_string(e.path()).expect("read");
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect();
    files.sort();
    run("two-workers example", files, &rt);

    let shape = Shape {
        nodes: 50,
        bundles: 300,
        replicas: 2,
    };
    let generated: Vec<(String, String)> = documents(&shape, 10)
        .chunks(10)
        .enumerate()
        .map(|(i, chunk)| (format!("f{i:03}.yaml"), chunk.join("---\n")))
        .collect();
    run("generated 50 nodes, 300 bundles", generated, &rt);
}
