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

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn every_example_plans_as_recorded() {
    for example in ["two-workers", "racks", "lb-pair"] {
        let out = stdout(&quorate(&[
            "plan",
            "--specs",
            &format!("examples/{example}"),
        ]));
        golden(&format!("plan-{example}.txt"), &out);
    }
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
    for example in ["two-workers", "racks", "lb-pair"] {
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
    assert_eq!(unknown.status.code(), Some(2));

    let invalid = dir.path().join("specs");
    std::fs::create_dir(&invalid).unwrap();
    std::fs::write(invalid.join("c.yaml"), "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec: {nodes: [{name: n1, runtime: 'podman+tcp://h:1'}]}\n").unwrap();
    let out = quorate(&["plan", "--specs", invalid.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quorate::runtime::unauthenticated"));
}
