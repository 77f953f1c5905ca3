//! `quorate observe` and `quorate plan --live` as operators run them: against a real
//! Podman service with managed, exited, unmanaged and other-cluster containers, and
//! against nodes that do not answer (missing socket, refused socket, a socket that never
//! answers), with and without a fence log.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quorate::fence::FenceAction;
use quorate::fence::FenceLog;
use quorate::fence::log::{FenceOutcome, ManualConfirmation};
use quorate::plan::hash::instance_hash;
use quorate::runtime::{self, from_spec};
use quorate::spec::SpecSet;
use quorate::state::StateStore;
use serde_json::Value;
use support::TEST_IMAGE;
use support::scenarios::block_on;

fn quorate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .output()
        .expect("run quorate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Writes a spec set to `dir/specs` and returns the directory and the loaded set.
fn write_specs(dir: &Path, cluster_nodes: &str, bundles: &str) -> (PathBuf, SpecSet) {
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let cluster = format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {{name: obs}}\nspec:\n  \
         quorum: {{reconcilerVotes: 1}}\n  nodes:\n{cluster_nodes}"
    );
    std::fs::write(specs.join("cluster.yaml"), cluster).unwrap();
    if !bundles.is_empty() {
        std::fs::write(specs.join("bundles.yaml"), bundles).unwrap();
    }
    let sources = quorate::source::fs::read_paths(std::slice::from_ref(&specs)).unwrap();
    let report = quorate::validate::validate(&sources);
    assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
    (specs, report.into_valid_set().unwrap())
}

fn node_line(name: &str, url: &str) -> String {
    format!("    - {{name: {name}, runtime: '{url}'}}\n")
}

/// `web`: two instances on one node, a secret from a file, per-instance storage.
fn web_bundle(dir: &Path) -> String {
    let pw = dir.join("pw");
    std::fs::write(&pw, "file-secret-value\n").unwrap();
    format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: web}}\nspec:\n  \
         image: {TEST_IMAGE}\n  replicas: 2\n  replicasPerHost: 2\n  recovery: restart\n  \
         command: [sleep, '1000']\n  env: {{MODE: test, PW: {{fromFile: {}}}}}\n  \
         storage: [{{sourceDirRoot: {}, targetDir: /data}}]\n",
        pw.display(),
        dir.join("data").display()
    )
}

fn snapshot_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&o.stdout), text(&o.stderr)))
}

#[test]
fn observe_then_plan_against_podman() {
    let _serial = support::serial();
    let Some(svc) = support::podman() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.sock");
    let nodes = node_line("node1", &svc.url())
        + &node_line("node2", &format!("podman+unix://{}", absent.display()));
    let (specs, set) = write_specs(dir.path(), &nodes, &web_bundle(dir.path()));
    let specs = specs.to_str().unwrap();

    // The reconciler's way to create instances: the mapping, on a cluster-scoped driver.
    let node1 = set.cluster.node("node1").unwrap();
    let conn = from_spec::connection(node1, Duration::from_secs(20))
        .unwrap()
        .for_cluster("obs");
    let rt = runtime::connect(conn).unwrap();
    // The operator allows the secret file of `web_bundle`, in the temp dir.
    let secrets = quorate::secret::SecretPolicy::new(Some(dir.path().into()), "QUORATE_SECRET_");
    block_on(async {
        for i in 0..2 {
            let spec = from_spec::instance_spec(&set, "web", i, "c0ffee", &secrets).unwrap();
            assert!(!format!("{spec:?}").contains("file-secret-value"));
            rt.run(&spec).await.unwrap();
        }
        rt.stop("web-1", Duration::from_secs(1)).await.unwrap();
        let pw = rt
            .exec(
                "web-0",
                &[
                    "sh".into(),
                    "-c".into(),
                    "test \"$PW\" = file-secret-value".into(),
                ],
                &[],
            )
            .await
            .unwrap();
        assert_eq!(pw.exit_code, Some(0), "the secret reached the container");
        // Another cluster's `web-5` on the same runtime: not ours, so not observed.
        let mut foreign = from_spec::instance_spec(&set, "web", 0, "c0ffee", &secrets).unwrap();
        foreign.labels.cluster = "elsewhere".into();
        foreign.labels.index = 5;
        foreign.mounts.clear();
        let other = runtime::connect(
            runtime::Connection::parse(&svc.url())
                .unwrap()
                .for_cluster("elsewhere"),
        )
        .unwrap();
        other.run(&foreign).await.unwrap();
    });
    assert!(dir.path().join("data/web-0").is_dir());
    assert!(dir.path().join("data/web-1").is_dir());
    support::run(&mut svc.cli(["run", "-d", "--name", "stray", TEST_IMAGE, "sleep", "1000"]))
        .unwrap();

    let before = unix_now();
    let out = dir.path().join("observed.json");
    let o = quorate(&[
        "observe",
        "--specs",
        specs,
        "--timeout",
        "5s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "node2 does not answer: {}",
        text(&o.stderr)
    );
    assert!(o.stdout.is_empty(), "the snapshot goes to --out");
    let stderr = text(&o.stderr);
    assert!(stderr.contains("node1: online, 2 instance(s)"), "{stderr}");
    assert!(stderr.contains("node2: LOST"), "{stderr}");
    let snap: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let now = snap["now"].as_u64().unwrap();
    assert!(now >= before && now <= unix_now());
    let n1 = &snap["nodes"]["node1"];
    assert_eq!(n1["state"], "online");
    let web = &set.bundles["web"];
    assert_eq!(
        n1["instances"],
        serde_json::json!([
            {"bundle": "web", "index": 0, "specHash": instance_hash("web", web, 0), "state": "running"},
            {"bundle": "web", "index": 1, "specHash": instance_hash("web", web, 1), "state": "stopped"},
        ]),
        "the unmanaged and the other cluster's containers are not ours"
    );
    assert_eq!(snap["nodes"]["node2"]["state"], "lost");
    assert_eq!(snap["nodes"]["node2"]["since"], now);

    // The plan from that snapshot restarts the exited instance in place and leaves the
    // running one alone (its hash matches the spec).
    let p = quorate(&[
        "plan",
        "--specs",
        specs,
        "--observed",
        out.to_str().unwrap(),
        "--format",
        "json",
    ]);
    // Exit 2: the plan has changes (terraform's -detailed-exitcode).
    assert_eq!(p.status.code(), Some(2), "{}", text(&p.stderr));
    let plan: Value = serde_json::from_slice(&p.stdout).unwrap();
    let web_actions: Vec<(&str, &str, &str)> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["bundle"] == "web")
        .map(|a| {
            (
                a["type"].as_str().unwrap(),
                a["instance"].as_str().unwrap(),
                a["node"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(web_actions, [("restart", "web-1", "node1")], "{plan:#}");

    // The same in one go, with the human format.
    let live = quorate(&["plan", "--specs", specs, "--live", "--timeout", "5s"]);
    assert_eq!(live.status.code(), Some(2), "{}", text(&live.stderr));
    let human = text(&live.stdout);
    assert!(
        human.contains("web-1") && human.contains("Restart (1)"),
        "{human}"
    );
    assert!(!human.contains("web-0 "), "{human}");

    // Snapshot on stdout when there is no --out.
    let o = quorate(&["observe", "--specs", specs, "--timeout", "5s"]);
    assert_eq!(
        snapshot_of(&o)["nodes"]["node1"]["instances"],
        n1["instances"]
    );

    drop(rt);
}

/// Holds a Unix socket that accepts connections and never answers.
struct Silent {
    _listener: std::os::unix::net::UnixListener,
}

#[test]
fn silent_nodes_are_lost_within_the_timeout_or_fenced_by_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    let silent = Silent {
        _listener: std::os::unix::net::UnixListener::bind(path("silent.sock")).unwrap(),
    };
    drop(std::os::unix::net::UnixListener::bind(path("refused.sock")).unwrap());
    let nodes = node_line(
        "n1",
        &format!("podman+unix://{}", path("absent.sock").display()),
    ) + &node_line(
        "n2",
        &format!("podman+unix://{}", path("silent.sock").display()),
    ) + &node_line(
        "n3",
        &format!("docker+unix://{}", path("refused.sock").display()),
    );
    let (specs, _set) = write_specs(dir.path(), &nodes, "");
    let specs = specs.to_str().unwrap();
    let state = path("state");
    let state = state.to_str().unwrap();

    // Nothing in the fence log: every node is lost, and the silent one is waited for no
    // longer than the timeout (the nodes are asked in parallel).
    let started = Instant::now();
    let o = quorate(&[
        "observe",
        "--specs",
        specs,
        "--timeout",
        "2s",
        "--state-dir",
        state,
    ]);
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let snap = snapshot_of(&o);
    for n in ["n1", "n2", "n3"] {
        assert_eq!(snap["nodes"][n]["state"], "lost", "{n}: {snap:#}");
        assert_eq!(snap["nodes"][n]["since"], snap["now"]);
    }
    let stderr = text(&o.stderr);
    assert!(stderr.contains("timed out after 2s"), "{stderr}");
    assert!(stderr.contains("--previous"), "{stderr}");

    // A confirmed fence of n2 and an operator's confirmation for n3.
    block_on(async {
        let store = StateStore::open(Path::new(state)).unwrap();
        store
            .record_outcome(&FenceOutcome {
                node: "n2".into(),
                action: FenceAction::Off,
                started_unix_ms: 1_700_000_000_000,
                duration: Duration::from_secs(3),
                result: Ok(1),
            })
            .await
            .unwrap();
        store
            .record_manual(&ManualConfirmation {
                node: "n3".into(),
                by: "alice".into(),
                at_unix_ms: 1_700_000_100_000,
                note: Some("power cords pulled".into()),
            })
            .await
            .unwrap();
    });
    let o = quorate(&[
        "observe",
        "--specs",
        specs,
        "--timeout",
        "2s",
        "--state-dir",
        state,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let snap = snapshot_of(&o);
    assert_eq!(snap["nodes"]["n1"]["state"], "lost");
    assert_eq!(snap["nodes"]["n2"]["state"], "fenced");
    assert_eq!(snap["nodes"]["n2"]["since"], 1_700_000_003);
    assert_eq!(snap["nodes"]["n3"]["state"], "fenced");
    assert_eq!(
        snap["confirmations"],
        serde_json::json!([{"node": "n3", "by": "alice", "at": 1_700_000_100}])
    );

    // A previous snapshot keeps what was last seen on a lost node.
    let previous = path("previous.json");
    std::fs::write(
        &previous,
        r#"{"now": 10, "nodes": {"n1": {"state": "online", "instances": [{"bundle": "db", "index": 0, "specHash": "h", "state": "running"}]}}}"#,
    )
    .unwrap();
    let o = quorate(&[
        "observe",
        "--specs",
        specs,
        "--timeout",
        "1s",
        "--previous",
        previous.to_str().unwrap(),
    ]);
    let snap = snapshot_of(&o);
    assert_eq!(snap["nodes"]["n1"]["state"], "lost");
    assert_eq!(snap["nodes"]["n1"]["instances"][0]["bundle"], "db");
    drop(silent);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = node_line("n1", "podman+unix:///nonexistent/quorate.sock");
    let (specs, _) = write_specs(dir.path(), &nodes, "");
    let specs = specs.to_str().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"nodes\": {\"n1\": {\"state\": \"asleep\"}}}").unwrap();
    for args in [
        vec!["plan", "--specs", specs, "--live", "--observed", "x.json"],
        vec!["plan", "--specs", specs, "--timeout", "1s"],
        vec!["observe", "--specs", specs, "--timeout", "0s"],
        vec![
            "observe",
            "--specs",
            specs,
            "--out",
            "/nonexistent/dir/o.json",
            "--timeout",
            "1s",
        ],
        vec!["observe", "--specs", "/nonexistent/specs"],
        vec![
            "observe",
            "--specs",
            specs,
            "--previous",
            "/nonexistent/previous.json",
        ],
        vec![
            "observe",
            "--specs",
            specs,
            "--previous",
            bad.to_str().unwrap(),
        ],
    ] {
        let o = quorate(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o.stderr));
    }
}

/// `quorate plan --live` and a pass of the reconciler (`Reconciler::preview`, what
/// `quorate run` and `apply` plan from) observe through the same rules: on the same
/// cluster, with a lost node that was fenced once, came back and was given the database,
/// they make the same plan, and both fence that node before starting db-0 elsewhere (the
/// old fence record is older than the node's last answer, so it proves nothing).
#[test]
fn plan_live_and_a_reconcile_pass_decide_the_same() {
    let _serial = support::serial();
    let Some(svc) = support::podman() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let absent = dir.path().join("absent.sock");
    std::fs::write(
        specs.join("all.yaml"),
        format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {{name: obs}}\nspec:\n  \
             quorum: {{reconcilerVotes: 1}}\n  membership: {{probeInterval: 200ms, deadTime: 1s}}\n  \
             nodes:\n{}{}---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: db}}\n\
             spec: {{image: {TEST_IMAGE}, recovery: fence, command: [sleep, '1000']}}\n---\n\
             apiVersion: quorate.io/v1alpha1\nkind: Fence\nmetadata: {{name: bmc2}}\n\
             spec: {{targets: [node2], ipmi: {{address: 127.0.0.1, username: u, password: {{fromEnv: QUORATE_SECRET_TEST_BMC}}}}}}\n",
            node_line("node1", &svc.url()),
            node_line("node2", &format!("podman+unix://{}", absent.display())),
        ),
    )
    .unwrap();
    let sources = quorate::source::fs::read_paths(std::slice::from_ref(&specs)).unwrap();
    let set = quorate::validate::validate(&sources)
        .into_valid_set()
        .unwrap();
    let state = dir.path().join("state");
    let now_ms = i64::try_from(unix_now()).unwrap() * 1000;
    let db0 = quorate::observed::ObservedInstance {
        bundle: "db".parse().unwrap(),
        index: 0,
        spec_hash: instance_hash("db", &set.bundles["db"], 0),
        state: quorate::observed::InstanceState::Running,
        role: None,
    };
    block_on(async {
        use quorate::reconcile::store::Store;
        let store = StateStore::open(&state).unwrap();
        // node2 was fenced an hour ago, came back, and was given db-0 ten minutes later.
        store
            .record_outcome(&FenceOutcome {
                node: "node2".into(),
                action: FenceAction::Off,
                started_unix_ms: now_ms - 3_600_000,
                duration: Duration::from_secs(2),
                result: Ok(1),
            })
            .await
            .unwrap();
        store
            .intend_start("node2", &db0, now_ms - 3_000_000)
            .await
            .unwrap();
    });
    let live = quorate(&[
        "plan",
        "--specs",
        specs.to_str().unwrap(),
        "--live",
        "--timeout",
        "2s",
        "--state-dir",
        state.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let live: Value = serde_json::from_slice(&live.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&live.stdout), text(&live.stderr)));
    let pass = block_on(async {
        use quorate::reconcile::{Desired, Options, Reconciler};
        let set = std::sync::Arc::new(set);
        let env = std::sync::Arc::new(quorate::reconcile::real::RealEnvironment::new(
            &set,
            Duration::from_secs(2),
            quorate::secret::SecretPolicy::default(),
        ));
        let store = std::sync::Arc::new(StateStore::open(&state).unwrap());
        let desired = Desired {
            spec: set,
            commit: "test".into(),
        };
        let mut r = Reconciler::new(env, store, desired, Options::default()).unwrap();
        loop {
            match r.preview().await {
                Ok(plan) => break serde_json::to_value(&plan).unwrap(),
                Err(Some(at)) => tokio::time::sleep_until(at).await,
                Err(None) => panic!("the store failed"),
            }
        }
    });
    assert_eq!(live["steps"], pass["steps"], "{live:#}\n{pass:#}");
    assert_eq!(live["actions"], pass["actions"], "{live:#}\n{pass:#}");
    let steps = pass["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{pass:#}");
    assert_eq!(
        (&steps[0]["op"], &steps[0]["node"]),
        (&"fence".into(), &"node2".into())
    );
    assert_eq!(
        (&steps[1]["op"], &steps[1]["node"]),
        (&"start".into(), &"node1".into())
    );
    assert_eq!(steps[1]["after"], serde_json::json!([steps[0]["id"]]));
}
