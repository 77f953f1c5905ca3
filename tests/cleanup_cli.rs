//! `quorate cleanup`: an instance's fail counts forgotten in the state store, on one node
//! or all; unknown instances and nodes refused.

mod support;

use std::time::Duration;

use quorate::reconcile::store::Store;
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
spec: {image: pg, replicas: 2, recovery: restart}
"#;

fn cleanup(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = support::quorate_cmd();
    cmd.arg("cleanup")
        .args(args)
        .arg("--specs")
        .arg(dir.join("specs"))
        .arg("--state-dir")
        .arg(dir.join("state"));
    support::run_bounded(&mut cmd, Duration::from_secs(60))
}

fn failures(dir: &std::path::Path) -> Vec<(String, String)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = StateStore::open(&dir.join("state")).unwrap();
    rt.block_on(s.failures()).unwrap().into_keys().collect()
}

#[test]
fn cleanup_forgets_fail_counts_on_one_node_or_all() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("specs")).unwrap();
    std::fs::write(dir.path().join("specs/lab.yaml"), SPECS).unwrap();
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let s = StateStore::open(&dir.path().join("state")).unwrap();
        for (node, inst) in [("n1", "db-0"), ("n2", "db-0"), ("n1", "db-1")] {
            rt.block_on(s.record_failure(node, inst, 100)).unwrap();
        }
    }
    let out = cleanup(dir.path(), &["db-0", "--node", "n2"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("db-0 on n2 (1 node)"), "{stdout}");
    let pair = |n: &str, i: &str| (n.to_owned(), i.to_owned());
    assert_eq!(
        failures(dir.path()),
        [pair("n1", "db-0"), pair("n1", "db-1")]
    );

    let out = cleanup(dir.path(), &["db-0"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(failures(dir.path()), [pair("n1", "db-1")]);

    // An instance the specs do not have, and a node the cluster does not: exit 1, and
    // nothing cleared.
    for args in [&["db-2"][..], &["web-0"], &["db-1", "--node", "n9"]] {
        let out = cleanup(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
    }
    assert_eq!(failures(dir.path()), [pair("n1", "db-1")]);
}
