//! `quorate plan` as reviewers run it: golden human output for every example, the
//! what-if on the two-worker example, JSON and dot formats, exit codes.
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the golden files after an intended change, and
//! review the diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn quorate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run quorate")
}

fn golden(name: &str, actual: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == actual,
        "{} differs:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The output of a plan that ran: exit 0 (no changes) or 2 (changes), never 1 (an error).
fn stdout(o: &Output) -> String {
    assert!(
        matches!(o.status.code(), Some(0 | 2)),
        "{:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn every_example_plans_as_recorded() {
    for example in ["two-workers", "racks", "lb-pair", "capacity", "redis"] {
        let out = stdout(&quorate(&[
            "plan",
            "--specs",
            &format!("examples/{example}"),
        ]));
        golden(&format!("plan-{example}.txt"), &out);
    }
}

#[test]
fn spec_paths_are_positional_and_the_empty_cluster_is_named() {
    let positional = quorate(&["plan", "examples/two-workers"]);
    let flagged = quorate(&["plan", "--specs", "examples/two-workers"]);
    assert_eq!(stdout(&positional), stdout(&flagged));
    // Changes planned without asking for -detailed-exitcode: exit 2, as terraform's.
    assert_eq!(positional.status.code(), Some(2));
    let note = String::from_utf8_lossy(&positional.stderr);
    assert!(note.contains("planning against an empty cluster"), "{note}");
    assert!(
        note.contains("--observed") && note.contains("--live"),
        "{note}"
    );
}

#[test]
fn invalid_specs_give_json_findings_on_stdout_with_format_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec: {nodes: [{name: n1, runtime: 'podman+tcp://h:1'}]}\n").unwrap();
    let out = quorate(&["plan", dir.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let codes: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"quorate::runtime::unauthenticated"),
        "{findings:#}"
    );
}

#[test]
fn usage_errors_exit_1_not_2() {
    let out = quorate(&["plan", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(1));
    let out = quorate(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(1));
    let help = quorate(&["plan", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    // Every long option names its environment variable.
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("QUORATE_OBSERVED"), "{help}");
    assert!(help.contains("QUORATE_LOG_FORMAT"), "{help}");
}

#[test]
fn flags_can_come_from_quorate_environment_variables() {
    let json = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(["plan", "examples/two-workers"])
        .env("QUORATE_FORMAT", "json")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert!(v["actions"].is_array());
    // A flag on the command line wins over the variable.
    let human = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(["plan", "examples/two-workers", "--format", "human"])
        .env("QUORATE_FORMAT", "json")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(stdout(&human).starts_with("Quorum:"));
}

#[test]
fn the_version_names_the_git_commit() {
    let out = quorate(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let commit = commit.unwrap_or_else(|| "unknown".into());
    assert!(
        text.starts_with(&format!(
            "quorate {} (commit {commit}",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
}

#[test]
fn the_what_if_fences_the_database_node_then_moves_the_database() {
    let out = stdout(&quorate(&[
        "plan",
        "--specs",
        "examples/two-workers",
        "--fail-node",
        "worker1",
    ]));
    golden("plan-two-workers-fail-worker1.txt", &out);
    let fence = out.find("! node worker1").expect("a fence of worker1");
    let mv = out
        .find("> db-0  worker1 -> worker2")
        .expect("db-0 moves to worker2");
    assert!(fence < mv);
    let json = quorate(&[
        "plan",
        "--specs",
        "examples/two-workers",
        "--fail-node",
        "worker1",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let actions = v["actions"].as_array().unwrap();
    let fence = actions.iter().find(|a| a["type"] == "fence").unwrap();
    let mv = actions.iter().find(|a| a["type"] == "move").unwrap();
    assert_eq!(mv["instance"], "db-0");
    assert_eq!(mv["after"], serde_json::json!([fence["id"]]));
}

#[test]
fn json_output_has_the_documented_shape_for_every_example() {
    for example in ["two-workers", "racks", "lb-pair", "capacity", "redis"] {
        let out = stdout(&quorate(&[
            "plan",
            "--specs",
            &format!("examples/{example}"),
            "--format",
            "json",
        ]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        for key in ["present", "expected", "quorate"] {
            assert!(v["quorum"].get(key).is_some(), "{example}: quorum.{key}");
        }
        let actions = v["actions"].as_array().unwrap();
        assert_eq!(v["changes"], actions.len());
        assert!(!actions.is_empty());
        for a in actions {
            for key in [
                "id", "type", "node", "bundle", "instance", "reason", "after",
            ] {
                assert!(a.get(key).is_some(), "{example}: action without {key}: {a}");
            }
        }
        assert!(v["blocked"].is_array());
    }
}

#[test]
fn explain_and_dot() {
    let out = stdout(&quorate(&[
        "plan",
        "--specs",
        "examples/racks",
        "--explain",
    ]));
    assert!(out.contains("Placement scores:"));
    // kv never goes to the batch node: its score there is -INFINITY, with the reason.
    let kv = out.split("kv-0 ->").nth(1).unwrap();
    let line = kv.lines().find(|l| l.contains("node-a2")).unwrap();
    assert!(
        line.contains("-INFINITY") && line.contains("location kv-not-on-batch"),
        "{line}"
    );
    let dot = stdout(&quorate(&[
        "plan",
        "--specs",
        "examples/two-workers",
        "--fail-node",
        "worker1",
        "--format",
        "dot",
    ]));
    assert!(dot.starts_with("digraph plan {"));
    assert!(dot.contains("a1 -> a2;"), "{dot}");
}

#[test]
fn a_snapshot_over_its_limit_is_refused_unparsed() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    // Sparse: nothing is written, and the read stops one byte past the limit.
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(64 * 1024 * 1024 + 1).unwrap();
    let out = quorate(&[
        "plan",
        "--specs",
        "examples/two-workers",
        "--observed",
        big.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("big.json") && stderr.contains("at most 67108864 bytes"),
        "{stderr}"
    );
}

#[test]
fn exit_codes() {
    let changes = quorate(&[
        "plan",
        "--specs",
        "examples/two-workers",
        "--detailed-exitcode",
    ]);
    assert_eq!(changes.status.code(), Some(2));

    // Against the state the plan leaves behind there is nothing to do: exit 0.
    let dir = tempfile::tempdir().unwrap();
    let sources = quorate::source::fs::read_paths(&[
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/two-workers")
    ])
    .unwrap();
    let spec = quorate::validate::validate(&sources)
        .into_valid_set()
        .unwrap();
    let fresh = quorate::observed::Observed::fresh(&spec);
    let first = quorate::plan::plan(&spec, &fresh, &Default::default());
    let end = quorate::plan::apply::expected_state(&spec, &fresh, &first);
    let snap = dir.path().join("observed.json");
    std::fs::write(&snap, quorate::observed::snapshot::to_json(&end)).unwrap();
    let none = quorate(&[
        "plan",
        "--specs",
        "examples/two-workers",
        "--observed",
        snap.to_str().unwrap(),
        "--detailed-exitcode",
    ]);
    assert_eq!(
        none.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&none.stdout)
    );
    assert!(String::from_utf8_lossy(&none.stdout).contains("Plan: no changes."));

    let bad_snap = dir.path().join("bad.yaml");
    std::fs::write(&bad_snap, "nodes:\n  worker1: {state: sleeping}\n").unwrap();
    let bad = quorate(&[
        "plan",
        "--specs",
        "examples/two-workers",
        "--observed",
        bad_snap.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("bad.yaml:2:20"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let unknown = quorate(&[
        "plan",
        "--specs",
        "examples/two-workers",
        "--fail-node",
        "worker9",
    ]);
    assert_eq!(unknown.status.code(), Some(1));

    let invalid = dir.path().join("specs");
    std::fs::create_dir(&invalid).unwrap();
    std::fs::write(invalid.join("c.yaml"), "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec: {nodes: [{name: n1, runtime: 'podman+tcp://h:1'}]}\n").unwrap();
    let out = quorate(&["plan", "--specs", invalid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quorate::runtime::unauthenticated"));
    // The snapshot is parsed alongside the specs, but reported only once they are valid.
    let both = quorate(&[
        "plan",
        "--specs",
        invalid.to_str().unwrap(),
        "--observed",
        bad_snap.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert_eq!(both.status.code(), Some(1));
    assert!(
        stderr.contains("quorate::runtime::unauthenticated") && !stderr.contains("bad.yaml"),
        "{stderr}"
    );
}

#[test]
fn debug_logs_say_how_long_each_phase_took() {
    let out = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args([
            "plan",
            "--specs",
            "examples/two-workers",
            "--fail-node",
            "worker1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "quorate=debug")
        .env("QUORATE_LOG_FORMAT", "json")
        .output()
        .expect("run quorate");
    let plain = stdout(&quorate(&[
        "plan",
        "--specs",
        "examples/two-workers",
        "--fail-node",
        "worker1",
    ]));
    // The plan on stdout is the same; the timings go to stderr, one event per phase.
    assert_eq!(stdout(&out), plain);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let event = |message: &str| events.iter().find(|e| e["fields"]["message"] == message);
    for phase in [
        "spec files read",
        "specs decoded",
        "specs checked",
        "planned",
        "plan written",
    ] {
        let took = event(phase)
            .and_then(|e| e["fields"]["took"].as_str())
            .unwrap_or_else(|| panic!("no {phase:?} event in {stderr}"));
        assert!(took.ends_with('s'), "{phase}: took={took}");
    }
    let read = event("spec files read");
    assert_eq!(
        read.map(|e| e["fields"]["files"].as_u64()),
        Some(Some(4)),
        "{stderr}"
    );
}
