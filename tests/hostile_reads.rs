//! Bounded reads of one spec set (issue 12): commits and directories whose spec files,
//! each within its own limits, would multiply into gigabytes or millions of documents.
//!
//! Each test builds the hostile input for real (the `git` CLI, the file system) and checks
//! that quorate refuses it quickly, with a finding naming the limit, in bounded memory.

#[path = "../benches/support/mod.rs"]
mod bench_sets;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quorate::source::Sources;
use quorate::source::budget::{
    Exceeded, MAX_SET_BYTES, MAX_SET_DOCUMENTS, MAX_SET_ENTRIES, MAX_SET_FILES,
};
use quorate::source::fs::MAX_FILE_BYTES;
use quorate::source::git::GitSource;
use quorate::validate::validate;
use support::git_repos::git_ok;

/// Runs git in `dir` with `stdin`, insisting it succeeds; returns stdout, trimmed.
fn git_in(dir: &Path, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Mallory")
        .env("GIT_AUTHOR_EMAIL", "mallory@example.org")
        .env("GIT_COMMITTER_NAME", "Mallory")
        .env("GIT_COMMITTER_EMAIL", "mallory@example.org")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository built with git's plumbing, so hostile trees cost nothing to make.
struct Bare {
    dir: tempfile::TempDir,
}

impl Bare {
    fn new() -> Bare {
        let dir = tempfile::tempdir().unwrap();
        git_ok(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "origin.git"],
        );
        Bare { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("origin.git")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn blob(&self, content: &[u8]) -> String {
        git_in(&self.path(), &["hash-object", "-w", "--stdin"], content)
    }

    /// A tree of `(mode, kind, id, name)` entries.
    fn tree(&self, entries: &[(&str, &str, String, String)]) -> String {
        let text: String = entries
            .iter()
            .map(|(mode, kind, id, name)| format!("{mode} {kind} {id}\t{name}\n"))
            .collect();
        git_in(&self.path(), &["mktree"], text.as_bytes())
    }

    /// Commits `tree` on `main`; returns the commit id.
    fn commit(&self, tree: &str) -> String {
        let id = git_in(&self.path(), &["commit-tree", tree, "-m", "hostile"], b"");
        git_ok(&self.path(), &["update-ref", "refs/heads/main", &id]);
        id
    }

    /// The spec files of the head of `main` under `specs/`, through quorate's git source
    /// (its own clone, a fetch, the tree read), and how long that took.
    fn read(&self) -> (Sources, Duration) {
        let start = Instant::now();
        let mut src = GitSource::open(
            self.path().to_str().unwrap(),
            "main",
            Some(Path::new("specs")),
            &self.state(),
        )
        .unwrap();
        let head = src.fetch().unwrap().expect("a head");
        let sources = src.sources_at(&head.id).unwrap();
        (sources, start.elapsed())
    }
}

/// `specs/` holding `names` names of one blob.
fn one_blob_under_many_names(repo: &Bare, content: &[u8], names: usize) -> String {
    let blob = repo.blob(content);
    let entries: Vec<_> = (0..names)
        .map(|i| ("100644", "blob", blob.clone(), format!("f{i:05}.yaml")))
        .collect();
    let specs = repo.tree(&entries);
    let root = repo.tree(&[("040000", "tree", specs, "specs".into())]);
    repo.commit(&root)
}

/// A spec file of exactly [`MAX_FILE_BYTES`] (the most one file may hold): comment lines.
fn largest_spec_file() -> Vec<u8> {
    let mut text = Vec::with_capacity(MAX_FILE_BYTES as usize);
    while text.len() + 100 <= MAX_FILE_BYTES as usize {
        text.extend_from_slice(b"# ");
        text.extend_from_slice(&[b'x'; 97]);
        text.push(b'\n');
    }
    text.resize(MAX_FILE_BYTES as usize, b'#');
    text
}

/// The set was refused for `budget`, with one finding that names it, and nothing loaded.
fn assert_refused(sources: &Sources, budget: Exceeded) {
    assert_eq!(sources.exceeded(), Some(budget));
    assert!(sources.is_empty(), "nothing of a refused set is kept");
    let report = validate(sources);
    let found: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| (d.code, d.message.clone()))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "quorate::set::too-large");
    let limit = budget.limit().to_string();
    let digits: String = found[0].1.chars().filter(char::is_ascii_digit).collect();
    assert!(digits.contains(&limit), "{found:?} names {limit}");
    assert!(report.valid_set().is_none());
}

/// What a child process did: its exit code, its stdout, its peak resident set (bytes).
struct Measured {
    code: Option<i32>,
    stdout: String,
    peak: u64,
}

/// Runs `cmd` with `stdin`, and measures its peak memory ([`support::wait_with_peak`]).
fn run_measured(cmd: &mut Command, stdin: &[u8]) -> Measured {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut out, &mut text).map(|_| text)
    });
    let (exit, peak) = support::wait_with_peak(&mut child);
    Measured {
        code: exit.code(),
        stdout: reader.join().unwrap().unwrap(),
        peak,
    }
}

/// A `quorate validate` refusing one of these sets stays far below this (about 50 MB
/// measured); reading every name of them would take gigabytes.
const PEAK_RSS: u64 = 200 * 1024 * 1024;

#[test]
fn one_4_mib_blob_under_2000_names_is_refused_without_reading_8_gib() {
    let repo = Bare::new();
    let commit = one_blob_under_many_names(&repo, &largest_spec_file(), 2_000);
    let pack: u64 = walk_size(&repo.path().join("objects"));
    assert!(
        pack < 1024 * 1024,
        "the commit costs {pack} bytes of objects"
    );

    let (sources, took) = repo.read();
    assert_refused(&sources, Exceeded::Bytes);
    assert!(took < Duration::from_secs(30), "took {took:?}");

    // The pre-receive hook reads the same commit in its own process: its peak memory is
    // that of a few copies of the blob, not of 2,000.
    let line = format!("{} {commit} refs/heads/main\n", "0".repeat(40));
    let hook = run_measured(
        Command::new(env!("CARGO_BIN_EXE_quorate"))
            .args(["validate", "--pre-receive"])
            .current_dir(repo.path())
            .env("GIT_DIR", repo.path()),
        line.as_bytes(),
    );
    let text = &hook.stdout;
    assert_eq!(hook.code, Some(1), "{text}");
    assert!(text.contains("quorate::set::too-large"), "{text}");
    assert!(text.contains("67,108,864 bytes"), "{text}");
    assert!(hook.peak < PEAK_RSS, "the hook used {} bytes", hook.peak);
}

fn walk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                walk_size(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

#[test]
fn many_names_of_a_small_blob_go_over_the_file_budget() {
    let repo = Bare::new();
    let names = usize::try_from(MAX_SET_FILES).unwrap() + 1;
    one_blob_under_many_names(&repo, b"# nothing yet\n", names);
    let (sources, took) = repo.read();
    assert_refused(&sources, Exceeded::Files);
    assert!(took < Duration::from_secs(30), "took {took:?}");

    // At the limit the names are all read, each with the blob's bytes.
    let repo = Bare::new();
    one_blob_under_many_names(&repo, b"# nothing yet\n", names - 1);
    let (sources, _) = repo.read();
    assert_eq!(sources.exceeded(), None);
    assert_eq!(sources.len(), names - 1);
    assert!(sources.iter().all(|(_, f)| f.bytes == b"# nothing yet\n"));
}

#[test]
fn a_tree_reachable_through_a_hundred_million_paths_is_refused_quickly() {
    let repo = Bare::new();
    let leaf = repo.blob(b"not a spec\n");
    let mut tree = repo.tree(&[("100644", "blob", leaf, "notes.txt".into())]);
    // Each level names the one below ten times: 10^8 paths, nine small tree objects.
    for _ in 0..8 {
        let entries: Vec<_> = (0..10)
            .map(|i| ("040000", "tree", tree.clone(), format!("d{i}")))
            .collect();
        tree = repo.tree(&entries);
    }
    let root = repo.tree(&[("040000", "tree", tree, "specs".into())]);
    repo.commit(&root);
    let (sources, took) = repo.read();
    assert_refused(&sources, Exceeded::Entries);
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn a_commit_of_201000_documents_is_refused_for_its_documents() {
    let repo = Bare::new();
    let text = vec!["{a: 1}\n"; 201_000].join("---\n");
    assert!((text.len() as u64) < MAX_FILE_BYTES);
    let blob = repo.blob(text.as_bytes());
    let specs = repo.tree(&[("100644", "blob", blob, "many.yaml".into())]);
    let root = repo.tree(&[("040000", "tree", specs, "specs".into())]);
    repo.commit(&root);
    let (sources, _) = repo.read();
    assert_eq!(sources.exceeded(), None, "within the file and byte budgets");
    let report = validate(&sources);
    let codes: Vec<_> = report.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["quorate::set::too-large"]);
    assert!(
        report.diagnostics[0]
            .message
            .contains("200,000 YAML documents"),
        "{}",
        report.diagnostics[0].message
    );
}

/// `quorate validate DIR` in its own process.
fn validate_dir(dir: &Path) -> Measured {
    run_measured(
        Command::new(env!("CARGO_BIN_EXE_quorate"))
            .arg("validate")
            .arg(dir),
        b"",
    )
}

#[test]
fn a_directory_of_links_to_one_large_file_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), largest_spec_file()).unwrap();
    for i in 0..2_000 {
        std::os::unix::fs::symlink("a.yaml", dir.path().join(format!("l{i:04}.yaml"))).unwrap();
    }
    let start = Instant::now();
    let sources = quorate::source::fs::read_paths(&[dir.path().to_path_buf()]).unwrap();
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_refused(&sources, Exceeded::Bytes);

    let run = validate_dir(dir.path());
    let text = &run.stdout;
    assert_eq!(run.code, Some(1), "{text}");
    assert!(text.contains("quorate::set::too-large"), "{text}");
    assert!(
        run.peak < PEAK_RSS,
        "quorate validate used {} bytes",
        run.peak
    );
}

#[test]
fn directory_links_that_fan_out_are_refused_for_their_entries() {
    let dir = tempfile::tempdir().unwrap();
    // level k holds ten links to level k + 1: 10^6 paths to the last level.
    for level in 0..6 {
        let here = dir.path().join(format!("l{level}"));
        std::fs::create_dir(&here).unwrap();
        for i in 0..10 {
            std::os::unix::fs::symlink(format!("../l{}", level + 1), here.join(format!("d{i}")))
                .unwrap();
        }
    }
    std::fs::create_dir(dir.path().join("l6")).unwrap();
    std::fs::write(dir.path().join("l6/notes.txt"), "not a spec").unwrap();
    let start = Instant::now();
    // The directory read holds every level, so no link leaves it (a link that leaves it
    // is refused by name, `quorate::file::outside-root`, and never walked).
    let sources = quorate::source::fs::read_paths(&[dir.path().to_path_buf()]).unwrap();
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_refused(&sources, Exceeded::Entries);
}

#[test]
fn documents_count_over_all_files_of_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let text = vec!["{a: 1}\n"; 100_001].join("---\n");
    std::fs::write(dir.path().join("a.yaml"), &text).unwrap();
    std::fs::write(dir.path().join("b.yaml"), &text).unwrap();
    let sources = quorate::source::fs::read_paths(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(sources.exceeded(), None);
    let report = validate(&sources);
    let codes: Vec<_> = report.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["quorate::set::too-large"]);

    // One file alone is within the budget and reports its own findings.
    std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
    let sources = quorate::source::fs::read_paths(&[dir.path().to_path_buf()]).unwrap();
    let report = validate(&sources);
    assert!(report.diagnostics.len() > 100_001);
    assert!(
        report
            .diagnostics
            .iter()
            .all(|d| d.code != "quorate::set::too-large")
    );
}

#[test]
fn bytes_count_over_all_files_of_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let big = largest_spec_file();
    for i in 0..16 {
        std::fs::write(dir.path().join(format!("{i:02}.yaml")), &big).unwrap();
    }
    let sources = quorate::source::fs::read_paths(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(
        sources.exceeded(),
        None,
        "sixteen largest files fit: 64 MiB"
    );
    assert_eq!(16 * MAX_FILE_BYTES, MAX_SET_BYTES);
    std::fs::write(dir.path().join("more.yaml"), "# more than the budget\n").unwrap();
    let sources = quorate::source::fs::read_paths(&[dir.path().to_path_buf()]).unwrap();
    assert_refused(&sources, Exceeded::Bytes);
}

/// The sets quorate is measured on, written as their benchmarks write them (ten documents
/// a file), are read and loaded whole, with room to spare under every budget.
#[test]
fn the_benchmark_sets_are_well_within_the_budget() {
    use bench_sets::{Shape, documents};
    let plan_large = Shape {
        nodes: 1_000,
        bundles: 5_000,
        replicas: 2,
    };
    let validate_bench = Shape {
        nodes: 50,
        bundles: 3_400,
        replicas: 2,
    };
    let mut validate_docs = documents(&validate_bench, 20);
    validate_docs.truncate(10_000);
    for docs in [documents(&plan_large, 10), validate_docs] {
        let dir = tempfile::tempdir().unwrap();
        for (i, chunk) in docs.chunks(10).enumerate() {
            std::fs::write(
                dir.path().join(format!("f{i:05}.yaml")),
                chunk.join("---\n"),
            )
            .unwrap();
        }
        let sources = quorate::source::fs::read_paths(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(sources.exceeded(), None);
        let files = sources.len() as u64;
        let bytes: u64 = sources.iter().map(|(_, f)| f.bytes.len() as u64).sum();
        let count = docs.len() as u64;
        // At least twice as many of each would still fit.
        assert!(2 * files <= MAX_SET_FILES, "{files} files");
        assert!(2 * bytes <= MAX_SET_BYTES, "{bytes} bytes");
        assert!(2 * count <= MAX_SET_DOCUMENTS, "{count} documents");
        assert!(2 * (files + 1) <= MAX_SET_ENTRIES);
        let report = validate(&sources);
        assert!(
            report
                .diagnostics
                .iter()
                .all(|d| d.code != "quorate::set::too-large"),
            "refused"
        );
        assert_eq!(report.index.len() as u64, count);
    }
}

/// The largest set the planner is measured on (10,000 nodes, 100,000 instances), written
/// as its benchmark writes it, is within every budget of the set.
#[test]
fn the_largest_benchmark_set_fits_the_budget() {
    use bench_sets::{Shape, documents};
    let huge = Shape {
        nodes: 10_000,
        bundles: 50_000,
        replicas: 2,
    };
    let docs = documents(&huge, 10);
    let files = docs.chunks(10).count() as u64;
    let bytes: u64 = docs
        .chunks(10)
        .map(|chunk| chunk.join("---\n").len() as u64)
        .sum();
    let count = docs.len() as u64;
    assert!(files <= MAX_SET_FILES, "{files} files");
    assert!(bytes <= MAX_SET_BYTES, "{bytes} bytes");
    assert!(count <= MAX_SET_DOCUMENTS, "{count} documents");
    assert!(files < MAX_SET_ENTRIES);
}
