//! HA against real etcd: three etcd members started by the test, a real bare repository,
//! real Podman, and several `quorate run --etcd` replicas as separate processes.
//!
//! What is checked (design invariant 9): exactly one replica leads and every replica names
//! it; a leader killed in a transition is replaced and the cluster converges with no
//! container started twice; a leader paused past its lease makes no change after it wakes
//! and rejoins as a follower; without an etcd majority nobody acts and the instances keep
//! running, and the cluster converges once etcd is back; a replica that finds its lease
//! gone when etcd returns takes a new one.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::etcd_svc::EtcdCluster;
use support::ha_cluster::{converged, leader_of, replica, role, setup, specs};
use support::quorate_run::QuorateRun;
use support::wait_for;

fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

fn starts(data: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(data.join("starts")).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// Every container was started exactly once.
fn assert_started_once(data: &Path, n: u32) {
    let lines = starts(data);
    let mut unique = lines.clone();
    unique.dedup();
    assert_eq!(
        lines.len(),
        unique.len(),
        "a container started twice: {lines:?}"
    );
    assert_eq!(unique.len(), n as usize, "{lines:?}");
}

/// A client of `etcd`, as `quorate run --etcd` makes one (a 2 s timeout).
async fn connect(etcd: &EtcdCluster) -> etcd_client::Client {
    let cfg = quorate::ha::EtcdConfig {
        endpoints: etcd.endpoints().split(',').map(str::to_owned).collect(),
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    quorate::ha::connect(&cfg).await.unwrap()
}

fn log(r: &QuorateRun) -> String {
    std::fs::read_to_string(&r.log).unwrap_or_default()
}

#[test]
fn exactly_one_leader_and_every_replica_names_it() {
    let _serial = support::serial();
    let Some(s) = setup(2) else { return };
    let (a, b, c) = (replica(&s, "a"), replica(&s, "b"), replica(&s, "c"));
    let rs = [&a, &b, &c];
    let l = wait_for("one leader named by all", Duration::from_secs(30), || {
        leader_of(&rs)
    });
    wait_logged("the apps running", Duration::from_secs(60), &rs, || {
        converged(&s, 2)
    });
    // Still exactly one, and the same, a while later; the metrics agree.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(leader_of(&rs), Some(l));
    let leaders: usize = rs
        .iter()
        .map(|r| http_get(&r.addr, "/metrics"))
        .filter(|m| m.contains("\nquorate_leader 1\n"))
        .count();
    assert_eq!(leaders, 1, "quorate_leader 1 on exactly one replica");
    // Every replica lists all three, and a follower's status comes from etcd.
    let follower = rs[(l + 1) % 3];
    let st = follower.status();
    assert_eq!(
        st["ha"]["replicas"].as_array().map(Vec::len),
        Some(3),
        "{st}"
    );
    wait_for(
        "a follower shows the leader's last pass",
        Duration::from_secs(20),
        || (follower.status()["lastPass"]["outcome"] == "converged").then_some(()),
    );
    assert_started_once(&s.data, 2);
    // `quorate status --server` in words names the roles.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(["status", "--server", &follower.url()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(follower), leader: "), "{text}");
}

#[test]
fn kill_9_of_the_leader_in_a_transition_another_takes_over_and_nothing_starts_twice() {
    let _serial = support::serial();
    const N: u32 = 10;
    let Some(s) = setup(N) else { return };
    let mut rs = [Some(replica(&s, "a")), Some(replica(&s, "b"))];
    // Killed as soon as the first container exists: in the middle of the transition.
    wait_for("a first container", Duration::from_secs(60), || {
        (!s.svc.container_names(true).is_empty()).then_some(())
    });
    let live: Vec<&QuorateRun> = rs.iter().flatten().collect();
    let l = (0..2)
        .find(|&i| role(live[i]) == "leader")
        .expect("a leader acted");
    let mut old = rs[l].take().unwrap();
    old.child.kill().unwrap();
    old.child.wait().unwrap();
    let running_at_kill = s.svc.container_names(false).len();
    eprintln!("leader killed with {running_at_kill} of {N} running");
    assert!(
        running_at_kill < N as usize,
        "the kill came after the transition"
    );
    let other = rs[1 - l].as_ref().unwrap();
    wait_for("the other replica leads", Duration::from_secs(30), || {
        (role(other) == "leader").then_some(())
    });
    wait_for("all apps running", Duration::from_secs(60), || {
        converged(&s, N)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        s.svc.container_names(true),
        support::app_instances(N),
        "no extra containers"
    );
    assert_started_once(&s.data, N);
    assert_eq!(other.status()["lastPass"]["outcome"], "converged");
    assert!(log(other).contains("elected leader"), "{}", log(other));
}

#[test]
fn a_leader_paused_past_its_lease_acts_no_more_and_rejoins_as_a_follower() {
    let _serial = support::serial();
    let Some(s) = setup(2) else { return };
    let (a, b) = (replica(&s, "a"), replica(&s, "b"));
    let l = wait_for("one leader", Duration::from_secs(30), || {
        leader_of(&[&a, &b])
    });
    wait_logged(
        "the apps running",
        Duration::from_secs(60),
        &[&a, &b],
        || converged(&s, 2),
    );
    let (old, new) = if l == 0 { (&a, &b) } else { (&b, &a) };
    let pid = old.child.id() as i32;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    wait_for("the other replica leads", Duration::from_secs(30), || {
        (role(new) == "leader").then_some(())
    });
    // The new leader acts: one more instance.
    s.repos
        .write("specs/cluster.yaml", &specs(&s.svc, &s.data, 3));
    s.repos.commit("three apps");
    assert!(s.repos.push().status.success());
    wait_for("three apps", Duration::from_secs(60), || converged(&s, 3));
    // A container runs before its command writes its start down.
    wait_for("three starts written", Duration::from_secs(30), || {
        (starts(&s.data).len() == 3).then_some(())
    });
    let before = starts(&s.data);
    let old_log_len = log(old).len();
    // The old leader wakes on a cluster the new one changed, with its spec of two apps.
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    wait_for("the old leader follows", Duration::from_secs(20), || {
        (role(old) == "follower").then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(starts(&s.data), before, "no start after waking");
    assert_eq!(
        s.svc.container_names(true),
        support::app_instances(3),
        "nothing stopped or removed"
    );
    let woke = log(old)[old_log_len..].to_owned();
    assert!(
        !woke.contains("step done"),
        "the old leader carried out a step:\n{woke}"
    );
    assert_eq!(leader_of(&[&a, &b]), Some(1 - l));
    assert_started_once(&s.data, 3);
}

#[test]
fn without_an_etcd_majority_nobody_acts_and_the_cluster_converges_when_it_returns() {
    let _serial = support::serial();
    let Some(mut s) = setup(2) else { return };
    let (a, b) = (replica(&s, "a"), replica(&s, "b"));
    wait_for("one leader", Duration::from_secs(30), || {
        leader_of(&[&a, &b])
    });
    wait_logged(
        "the apps running",
        Duration::from_secs(60),
        &[&a, &b],
        || converged(&s, 2),
    );
    s.etcd.stop(1);
    s.etcd.stop(2);
    wait_for("no replica may act", Duration::from_secs(20), || {
        [&a, &b]
            .iter()
            .all(|r| {
                let st = r.status();
                st["ha"]["role"] != "leader" && st["ha"]["problem"].is_string()
            })
            .then_some(())
    });
    // An instance stops: nobody restarts it while etcd has no majority.
    let stopped = s.svc.cli(["stop", "-t", "0", "app-0"]).output().unwrap();
    assert!(stopped.status.success());
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        s.svc.container_names(false),
        vec!["app-1".to_owned()],
        "nothing acted"
    );
    assert_eq!(
        s.svc.container_names(true),
        support::app_instances(2),
        "nothing removed"
    );
    let st = a.status();
    assert!(st["ha"]["problem"].is_string(), "status says why: {st}");
    s.etcd.restart(1);
    s.etcd.restart(2);
    let since = Instant::now();
    wait_logged(
        "app-0 running again",
        Duration::from_secs(60),
        &[&a, &b],
        || converged(&s, 2),
    );
    wait_logged(
        "one leader again",
        Duration::from_secs(30),
        &[&a, &b],
        || leader_of(&[&a, &b]),
    );
    eprintln!(
        "converged {:?} after etcd's majority returned",
        since.elapsed()
    );
}

/// A leader whose keep-alive stream broke while its lease was revoked (paused while etcd
/// lost it and restarted) finds the lease gone when it reopens the stream: it takes a new
/// lease and leads again, rather than renewing the lost one for ever.
#[test]
fn a_replica_whose_lease_is_gone_when_etcd_returns_takes_a_new_one() {
    let _serial = support::serial();
    let Some(mut s) = setup(1) else { return };
    let a = replica(&s, "a");
    wait_for("a leads", Duration::from_secs(30), || {
        (role(&a) == "leader").then_some(())
    });
    let pid = a.child.id() as i32;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let leases = s.etcd.ctl(&["lease", "list"]);
    let listed = String::from_utf8_lossy(&leases.stdout).into_owned();
    // `found N leases`, then one hexadecimal id a line.
    let ids: Vec<&str> = listed
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(!ids.is_empty(), "no lease held: {listed}");
    for id in &ids {
        let out = s.etcd.ctl(&["lease", "revoke", id]);
        assert!(out.status.success(), "{out:?}");
    }
    // Every member restarts: the paused replica's stream is gone when it wakes.
    for i in 0..3 {
        s.etcd.stop(i);
    }
    for i in 0..3 {
        s.etcd.restart(i);
    }
    s.etcd.wait_healthy(Duration::from_secs(20)).unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    // Elected again, under a new lease (the status read just after waking is stale).
    wait_logged("a leads again", Duration::from_secs(40), &[&a], || {
        let log = log(&a);
        (log.contains("expired in etcd while it was away")
            && log.matches("elected leader").count() == 2
            && role(&a) == "leader")
            .then_some(())
    });
}

/// [`wait_for`], with each replica's status and the end of its log when it times out.
fn wait_logged<T>(
    what: &str,
    within: Duration,
    rs: &[&QuorateRun],
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            let mut report = format!("{what}: not within {within:?}");
            for r in rs {
                let log = log(r);
                let mut from = log.len().saturating_sub(4000);
                while !log.is_char_boundary(from) {
                    from += 1;
                }
                let tail = &log[from..];
                report += &format!("\n--- status: {}\n--- log tail:\n{tail}", r.status());
            }
            panic!("{report}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `quorate state export` of a SQLite state directory, `state import` into etcd: the
/// fence history and manual confirmations carry over; a second import into the same
/// prefix is refused; `fence confirm --etcd` adds to the history there.
#[test]
fn a_state_directory_moves_to_etcd_with_its_fence_history() {
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(
        specs.join("cluster.yaml"),
        "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: move}
spec:
  nodes: [{name: n1, runtime: 'podman+unix:///run/n1.sock'}, {name: n2, runtime: 'podman+unix:///run/n2.sock'}]
",
    )
    .unwrap();
    let state = dir.path().join("state");
    let q = |args: &[&str]| {
        let out = support::quorate_cmd().args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let specs_s = specs.to_str().unwrap();
    let state_s = state.to_str().unwrap();
    let (code, text) = q(&[
        "fence",
        "confirm",
        "n1",
        "--specs",
        specs_s,
        "--state-dir",
        state_s,
        "--by",
        "alice",
        "--note",
        "cords pulled",
    ]);
    assert_eq!(code, Some(0), "{text}");

    let out = support::quorate_cmd()
        .args(["state", "export", "--state-dir", state_s])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let export: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(export["fence"][0]["kind"], "manual", "{export}");
    assert_eq!(export["fence"][0]["by"], "alice", "{export}");
    let file = dir.path().join("export.json");
    std::fs::write(&file, &out.stdout).unwrap();

    let endpoints = etcd.endpoints();
    let file_s = file.to_str().unwrap();
    let import = [
        "state",
        "import",
        file_s,
        "--etcd",
        &endpoints,
        "--etcd-prefix",
        "/quorate/move",
    ];
    let (code, text) = q(&import);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("(1 fence history entries)"), "{text}");
    let (code, text) = q(&import);
    assert_eq!(code, Some(1), "a second import is refused: {text}");
    assert!(text.contains("already holds state"), "{text}");

    let (code, text) = q(&[
        "fence",
        "confirm",
        "n2",
        "--specs",
        specs_s,
        "--etcd",
        &endpoints,
        "--etcd-prefix",
        "/quorate/move",
        "--by",
        "bob",
    ]);
    assert_eq!(code, Some(0), "{text}");
    let got = etcd.ctl(&[
        "get",
        "--prefix",
        "/quorate/move/fence/",
        "--print-value-only",
    ]);
    let values = String::from_utf8_lossy(&got.stdout);
    let records: Vec<Value> = values
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(records.len(), 2, "{values}");
    assert!(
        records
            .iter()
            .any(|r| r["by"] == "alice" && r["node"] == "n1" && r["note"] == "cords pulled"),
        "{values}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["by"] == "bob" && r["node"] == "n2"),
        "{values}"
    );
}

/// The fencing token: the store's writes succeed while the election key is the one the
/// leader created, and fail once it was replaced, whatever the lease says by the clock.
#[test]
fn a_write_with_a_stale_fencing_token_is_refused() {
    use quorate::ha::lease::Lease;
    use quorate::ha::store::EtcdStore;
    use quorate::reconcile::store::Store;
    use std::sync::Arc;
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = connect(&etcd).await;
        let lease = Arc::new(Lease::default());
        let store = EtcdStore::leader(client, "/quorate/fence-test", lease.clone());
        // No token yet: refused without a round trip's doubt.
        let e = store.record_failure("n1", "app-0", 1).await.unwrap_err();
        assert!(e.to_string().contains("not the leader"), "{e}");

        let mut c = store.client();
        c.put(store.leader_key(), "me", None).await.unwrap();
        let token = c.get(store.leader_key(), None).await.unwrap().kvs()[0].create_revision();
        let now = tokio::time::Instant::now();
        lease.won(token, now + Duration::from_secs(60), now);
        store.record_failure("n1", "app-0", 1).await.unwrap();

        // The key is replaced (another leader): the old token's writes fail.
        c.delete(store.leader_key(), None).await.unwrap();
        c.put(store.leader_key(), "other", None).await.unwrap();
        let e = store.record_failure("n1", "app-0", 2).await.unwrap_err();
        assert!(e.to_string().contains("leadership lost"), "{e}");
        let f = store.failures().await.unwrap();
        let got = &f[&("n1".to_owned(), "app-0".to_owned())];
        assert_eq!(
            (got.count, got.last),
            (1, Some(1)),
            "only the first write landed"
        );
    });
}

/// The body of an HTTP answer as JSON (`Null` if it is not).
fn json_body(answer: &str) -> Value {
    answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null)
}

/// In HA mode `GET /history` (and `quorate history --server`) answers on every replica,
/// read from etcd: the leader's passes, the commit in force, and a manual confirmation
/// recorded with `fence confirm --etcd`.
#[test]
fn history_in_ha_mode_is_read_from_etcd_on_every_replica() {
    let _serial = support::serial();
    let Some(s) = setup(2) else { return };
    let (a, b) = (replica(&s, "a"), replica(&s, "b"));
    let l = wait_for("one leader", Duration::from_secs(30), || {
        leader_of(&[&a, &b])
    });
    wait_logged(
        "the apps running",
        Duration::from_secs(60),
        &[&a, &b],
        || converged(&s, 2),
    );
    let specs_dir = s.repos.work().join("specs");
    let endpoints = s.etcd.endpoints();
    let out = support::quorate_cmd()
        .args(["fence", "confirm", "n1", "--by", "carol", "--specs"])
        .arg(&specs_dir)
        .args(["--etcd", &endpoints])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let commit = wait_for("the commit in force", Duration::from_secs(20), || {
        let c = [&a, &b][l].status()["commit"].as_str()?.to_owned();
        (!c.is_empty()).then_some(c)
    });
    for (who, r) in [("leader", [&a, &b][l]), ("follower", [&a, &b][1 - l])] {
        let answer = http_get(&r.addr, "/history?limit=5");
        assert!(answer.starts_with("HTTP/1.1 200"), "{who}: {answer}");
        let h = json_body(&answer);
        let passes = h["passes"].as_array().map_or(0, Vec::len);
        assert!((1..=5).contains(&passes), "{who}: {h}");
        assert_eq!(
            h["applied"][0]["commit"]["id"],
            commit.as_str(),
            "{who}: {h}"
        );
        assert!(
            h["fences"]
                .as_array()
                .is_some_and(|f| f.iter().any(|e| e["node"] == "n1" && e["by"] == "carol")),
            "{who}: {h}"
        );
        let out = support::quorate_cmd()
            .args(["history", "--server", &r.url(), "--format", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{who}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(cli["applied"][0]["commit"]["id"], commit.as_str(), "{who}");
    }
}

/// `quorate cleanup INSTANCE --etcd`: the fail counts of that instance go from etcd, the
/// others stay.
#[test]
fn cleanup_clears_fail_counts_in_etcd() {
    use quorate::ha::store::EtcdStore;
    use quorate::reconcile::store::Store;
    let Some(etcd) = EtcdCluster::start(3) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cluster.yaml"),
        "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: clean}
spec:
  nodes: [{name: n1, runtime: 'podman+unix:///run/n1.sock'}, {name: n2, runtime: 'podman+unix:///run/n2.sock'}]
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {name: app}
spec: {image: 'localhost/x:1', replicas: 2}
",
    )
    .unwrap();
    let prefix = "/quorate/clean";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(async {
        let store = EtcdStore::operator(connect(&etcd).await, prefix);
        for (node, instance) in [("n1", "app-0"), ("n2", "app-0"), ("n1", "app-1")] {
            store.record_failure(node, instance, 1).await.unwrap();
        }
        store
    });
    let endpoints = etcd.endpoints();
    let out = support::quorate_cmd()
        .args(["cleanup", "app-0", "--specs"])
        .arg(dir.path())
        .args(["--etcd", &endpoints, "--etcd-prefix", prefix])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("app-0 on any node (2 nodes)"), "{text}");
    let left: Vec<(String, String)> = rt.block_on(store.failures()).unwrap().into_keys().collect();
    assert_eq!(left, vec![("n1".to_owned(), "app-1".to_owned())]);
    // An unreachable etcd is an error, not a silent success.
    let out = support::quorate_cmd()
        .args(["cleanup", "app-1", "--specs"])
        .arg(dir.path())
        .args(["--etcd", "http://127.0.0.1:1", "--etcd-prefix", prefix])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot clear the fail counts") && err.contains("etcd"),
        "{err}"
    );
}

/// `quorate suspend` in HA mode: the etcd store keeps suspensions as the SQLite one does
/// (replace, resume, the reason within bounds), under `P/suspended/`.
#[test]
fn suspensions_are_kept_in_etcd() {
    use quorate::ha::store::EtcdStore;
    use quorate::observed::{MAX_SUSPEND_REASON, Suspension};
    use quorate::reconcile::store::Store;
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = connect(&etcd).await;
        let store = EtcdStore::operator(client, "/quorate/suspend-test");
        assert!(store.suspended().await.unwrap().is_empty());
        let db = Suspension::new(10, Some("upgrade"));
        let long = Suspension {
            at_unix_ms: 20,
            reason: Some("x".repeat(4 * MAX_SUSPEND_REASON)),
        };
        assert_eq!(
            store.set_suspended(Some("db"), Some(&db)).await.unwrap(),
            None
        );
        assert_eq!(store.set_suspended(None, Some(&long)).await.unwrap(), None);
        let now = store.suspended().await.unwrap();
        assert_eq!(now.bundles["db"], db);
        assert!(now.cluster.unwrap().reason.unwrap().len() <= MAX_SUSPEND_REASON);
        let mut c = store.client();
        let keys = c
            .get(
                store.key("suspended/"),
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .unwrap();
        assert_eq!(keys.kvs().len(), 2);
        assert!(store.set_suspended(None, None).await.unwrap().is_some());
        assert_eq!(
            store.set_suspended(Some("db"), None).await.unwrap(),
            Some(db)
        );
        assert!(store.suspended().await.unwrap().is_empty());
    });
}
