//! The state directory against accidents and mistakes, with the real `quorate` binary: a
//! second reconciler on the same directory, a database truncated to 0 bytes, and
//! `quorate state backup` while `quorate run` uses the database.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::git_repos::{EXAMPLE, Repos};
use support::quorate_run::QuorateRun;

/// A repository whose one commit does not validate (no node is needed for these tests).
fn repos() -> Repos {
    let repos = Repos::new();
    repos.write("specs/cluster.yaml", "kind: [this is not a spec\n");
    repos.commit("specs that do not validate");
    assert!(repos.push().status.success());
    repos
}

fn start(repos: &Repos, extra: &[&str]) -> QuorateRun {
    let extra: Vec<&std::ffi::OsStr> = extra.iter().map(|a| a.as_ref()).collect();
    let log = repos.dir.path().join(format!("run-{}.log", now_ns()));
    QuorateRun::start(&repos.bare(), &repos.state(), &log, &extra)
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Runs `quorate ARGS`, failing the test if it does not finish within 30 s.
fn quorate(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("quorate {args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// `quorate run` on `repos` as a command that is expected to exit.
fn run_args(repos: &Repos, state: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec!["run".into(), "--repo".into()];
    v.push(repos.bare().into_os_string());
    for a in ["--branch", "main", "--path", "specs", "--state-dir"] {
        v.push(a.into());
    }
    v.push(state.as_os_str().to_owned());
    v.push("--listen".into());
    v.push("127.0.0.1:0".into());
    v
}

/// Waits until `run` shows the repository's (rejected) commit in its status.
fn wait_rejected(run: &QuorateRun) {
    let t0 = Instant::now();
    while run.status()["rejected"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no rejected commit shown"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn os(v: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    v.iter().map(|a| a.as_os_str()).collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stops `run` with SIGTERM and waits for it.
fn stop(mut run: QuorateRun) {
    // SAFETY: kill(2) on the child this test started.
    assert_eq!(
        unsafe { libc::kill(run.child.id() as i32, libc::SIGTERM) },
        0
    );
    let status = run.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_second_reconciler_on_the_same_state_dir_exits_1_naming_the_holder() {
    let repos = repos();
    let state = repos.state();
    let first = start(&repos, &[]);
    let pid = first.child.id();

    let out = quorate(&os(&run_args(&repos, &state)));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!("in use by another quorate (PID {pid})")),
        "{text}"
    );
    assert!(out.stdout.is_empty(), "the second one listened: {out:?}");

    // `quorate apply` reconciles too: refused the same way.
    let args = ["apply", "--yes", "--specs", EXAMPLE, "--state-dir"];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    args.push(state.as_os_str());
    let out = quorate(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("PID {pid}")),
        "{}",
        stderr(&out)
    );

    // The first one is untouched, and once it has stopped the directory is free.
    assert!(
        first.status().is_object(),
        "the first one stopped answering"
    );
    stop(first);
    let again = start(&repos, &[]);
    assert!(again.status().is_object());
}

#[test]
fn a_truncated_state_db_is_refused_until_start_fresh_is_given() {
    let repos = repos();
    let state = repos.state();
    let first = start(&repos, &[]);
    wait_rejected(&first);
    stop(first);
    let db = state.join("state.db");
    assert!(std::fs::metadata(&db).unwrap().len() > 0);
    std::fs::File::create(&db).unwrap(); // truncated to 0 bytes

    let out = quorate(&os(&run_args(&repos, &state)));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    for needle in [
        "empty (0 bytes)",
        "fence history",
        "--start-fresh",
        "quorate state backup",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "the file was touched"
    );

    // Explicitly: starts with an empty database, the old file kept aside.
    let run = start(&repos, &["--start-fresh"]);
    assert!(run.status().is_object());
    let kept: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.db.refused-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    stop(run);
    assert!(std::fs::metadata(&db).unwrap().len() > 0);
    // And the next start needs no flag.
    stop(start(&repos, &[]));
}

#[test]
fn state_backup_is_a_readable_copy_with_the_fence_history_while_run_holds_the_dir() {
    let repos = repos();
    let state = repos.state();
    let run = start(&repos, &[]);
    wait_rejected(&run);
    let s = state.as_os_str();
    let out = quorate(&[
        "fence".as_ref(),
        "confirm".as_ref(),
        "worker1".as_ref(),
        "--by".as_ref(),
        "ada".as_ref(),
        "--note".as_ref(),
        "power cords pulled".as_ref(),
        "--specs".as_ref(),
        EXAMPLE.as_ref(),
        "--state-dir".as_ref(),
        s,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let copy = repos.dir.path().join("backup.db");
    let backup = |to: &Path| {
        quorate(&[
            "state".as_ref(),
            "backup".as_ref(),
            to.as_os_str(),
            "--state-dir".as_ref(),
            s,
        ])
    };
    let out = backup(&copy);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup.db"));

    let db =
        rusqlite::Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let (node, by, note): (String, String, String) = db
        .query_row(
            "SELECT node, by_whom, note FROM manual_confirmations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (node.as_str(), by.as_str(), note.as_str()),
        ("worker1", "ada", "power cords pulled")
    );
    // The commit `quorate run` recorded is in the copy too.
    let rejected: i64 = db
        .query_row("SELECT count(*) FROM rejected_commits", [], |r| r.get(0))
        .unwrap();
    assert!(rejected >= 1);
    drop(db);

    // An existing file is never overwritten; a directory without a database is an error.
    let before = std::fs::read(&copy).unwrap();
    let out = backup(&copy);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    let empty = repos.dir.path().join("nothing-here");
    let out = quorate(&[
        "state".as_ref(),
        "backup".as_ref(),
        repos.dir.path().join("other.db").as_os_str(),
        "--state-dir".as_ref(),
        empty.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!empty.exists(), "a state directory was created");
    stop(run);
}
