//! `quorate suspend` / `quorate resume` against a real state directory: the suspension is
//! recorded, `quorate status` shows it (also before a pass saw it), `quorate plan` shows a
//! suspended bundle's instances as "suspended, not managed" with no step; resume ends it.

mod support;

use std::path::Path;
use std::time::Duration;

use quorate::reconcile::store::{PassOutcome, PassRecord, Store};
use quorate::state::StateStore;

const SPECS: &str = r#"apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: lab}
spec:
  nodes:
    - {name: n1, runtime: "podman+unix:///run/n1.sock"}
    - {name: n2, runtime: "podman+unix:///run/n2.sock"}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: db}
spec: {image: pg, replicas: 1, recovery: restart}
"#;

fn quorate(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = support::quorate_cmd();
    cmd.args(args)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .current_dir(dir);
    support::run_bounded(&mut cmd, Duration::from_secs(60))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A pass in the journal: db-0 runs on n1.
fn record_pass(dir: &Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = StateStore::open(&dir.join("state")).unwrap();
    let observed = serde_json::json!({"nodes": {
        "n1": {"instances": [{"bundle": "db", "index": 0, "specHash": "h"}]},
        "n2": {}
    }});
    let pass = PassRecord {
        id: 0,
        started_unix_ms: 1,
        finished_unix_ms: 2,
        commit: "c1".into(),
        trigger: "test".into(),
        outcome: PassOutcome::Converged,
        detail: String::new(),
        observed,
        plan: serde_json::json!({"quorum": {"present": 3, "expected": 3, "quorate": true}}),
        results: vec![],
    };
    rt.block_on(s.record_pass(&pass)).unwrap();
}

fn suspended_in_store(dir: &Path) -> quorate::observed::Suspended {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = StateStore::open(&dir.join("state")).unwrap();
    rt.block_on(s.suspended()).unwrap()
}

#[test]
fn suspend_shows_in_status_and_plan_and_resume_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("lab.yaml"), SPECS).unwrap();
    record_pass(d);

    let out = quorate(d, &["suspend", "db", "--reason", "upgrading\npg by hand"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("suspended: bundle db"),
        "{out:?}"
    );
    let s = suspended_in_store(d);
    assert_eq!(s.cluster, None);
    assert_eq!(
        s.bundles["db"].reason.as_deref(),
        Some("upgrading pg by hand"),
        "one line"
    );

    let out = quorate(d, &["status"]);
    assert!(out.status.success(), "{out:?}");
    let shown = text(&out.stdout);
    assert!(
        shown.contains("Suspended: bundle db (upgrading pg by hand) since"),
        "{shown}"
    );
    let out = quorate(d, &["status", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["suspended"]["bundles"]["db"]["reason"],
        "upgrading pg by hand"
    );

    // The whole cluster too; then resume it: the bundle stays suspended.
    let out = quorate(d, &["suspend"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&quorate(d, &["status"]).stdout).contains("Suspended: the whole cluster"));
    let out = quorate(d, &["resume"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("resumed: the cluster"),
        "{out:?}"
    );
    assert_eq!(suspended_in_store(d).cluster, None);
    assert!(suspended_in_store(d).bundles.contains_key("db"));

    let out = quorate(d, &["resume", "db"]);
    assert!(out.status.success(), "{out:?}");
    assert!(suspended_in_store(d).is_empty());
    assert!(!text(&quorate(d, &["status"]).stdout).contains("Suspended"));
    // Resuming what is not suspended: nothing to do, exit 0.
    let out = quorate(d, &["resume", "db"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("was not suspended"), "{out:?}");
}

#[test]
fn unknown_bundles_are_suspended_with_a_warning_and_bad_names_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("lab.yaml"), SPECS).unwrap();
    let out = quorate(d, &["suspend", "old-web"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stderr).contains("warning: the specs have no bundle `old-web`"));
    assert!(suspended_in_store(d).bundles.contains_key("old-web"));
    for args in [&["suspend", "Not A Name"][..], &["resume", "../db"]] {
        let out = quorate(d, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(text(&out.stderr).contains("error:"), "{out:?}");
    }
    assert_eq!(suspended_in_store(d).bundles.len(), 1);
}

#[test]
fn plan_shows_suspended_instances_and_plans_no_step_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("lab.yaml"), SPECS).unwrap();
    // db-0 runs on n1 from an older spec: a restart is due, unless db is suspended.
    std::fs::write(
        d.join("observed.yaml"),
        "nodes:\n  n1: {instances: [{bundle: db, index: 0, specHash: old}]}\n  n2: {}\n",
    )
    .unwrap();
    let plan = |extra: &[&str]| {
        let mut cmd = support::quorate_cmd();
        cmd.args(["plan", "--specs", "lab.yaml", "--observed", "observed.yaml"])
            .args(extra)
            .current_dir(d);
        support::run_bounded(&mut cmd, Duration::from_secs(60))
    };
    let out = plan(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = plan(&["--suspended", "db"]);
    assert_eq!(out.status.code(), Some(0), "no changes: {out:?}");
    let shown = text(&out.stdout);
    assert!(shown.contains("Suspended, not managed (1):"), "{shown}");
    assert!(shown.contains("db-0 (running on n1)"), "{shown}");
    let out = plan(&["--suspended-cluster", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["steps"], serde_json::json!([]));
    assert_eq!(json["suspended"][0]["instance"], "db-0");
    assert!(
        json["suspended"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("the cluster is suspended")
    );
}
