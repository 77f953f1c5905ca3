//! Unit tests of the spec-to-runtime mapping (`from_spec.rs`).

use std::path::{Path, PathBuf};

use super::*;
use crate::runtime::instance::Protocol;
use crate::runtime::{EndpointError, Transport};
use crate::source::Sources;

const CLUSTER: &str = r#"
apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: prod}
spec:
  quorum: {reconcilerVotes: 1}
  networks: [{name: qnet, subnet: 10.88.10.0/24}]
  nodes:
    - {name: n1, runtime: 'podman+unix:///run/podman/podman.sock'}
    - name: n2
      runtime: 'docker+tcp://10.0.0.2:2376'
      tls: {caFile: /etc/q/ca.pem, certFile: /etc/q/cert.pem, keyFile: /etc/q/key.pem}
    - name: n3
      runtime: 'podman+ssh://core@10.0.0.3/run/podman/podman.sock'
      ssh: {identityFile: /etc/q/id, knownHostsFile: /etc/q/known_hosts}
    - {name: n4, runtime: 'podman+tcp://10.0.0.4:8080', insecure: true}
"#;

/// The db bundle; its `PW` secret is read from `secret_file`.
fn db(secret_file: &Path) -> String {
    format!(
        r#"
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {{name: db}}
spec:
  image: localhost/pg:16
  replicas: 3
  recovery: restart
  command: [postgres, -c, fsync=on]
  network:
    name: qnet
    ipRangeStart: 10.88.10.200
    ports:
      - {{port: 5432}}
      - {{id: admin, port: 8080, internalPort: 80}}
      - {{range: 9000-9002, protocol: udp}}
  storage:
    - {{sourceDirRoot: /srv/db, targetDir: /var/lib/pg}}
    - {{sourceDir: /etc/pgconf, targetDir: /etc/pg, options: 'ro,z'}}
  env:
    MODE: prod
    PORT: 5432
    PW: {{fromFile: {}}}
    SEARCH: {{fromEnv: PATH}}
---
apiVersion: quorate.io/v1alpha1
kind: Bundle
metadata: {{name: plain}}
spec: {{image: busybox, recovery: restart}}
"#,
        secret_file.display()
    )
}

const SECRET: &str = "s3cr3t-from-a-file";

/// A valid spec set and the temp dir holding its secret file.
fn set() -> (SpecSet, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{SECRET}\n")).unwrap();
    (load(&db(&pw)), dir)
}

/// The operator's policy of these tests: files in `dir`, any variable.
fn allow(dir: &Path) -> SecretPolicy {
    SecretPolicy::new(Some(dir.to_path_buf()), "")
}

fn load(bundles: &str) -> SpecSet {
    let mut sources = Sources::new();
    sources.add("cluster.yaml", CLUSTER.as_bytes().to_vec());
    sources.add("bundles.yaml", bundles.as_bytes().to_vec());
    let report = crate::validate::validate(&sources);
    assert_eq!(report.errors(), 0, "{:#?}", report.diagnostics);
    report.into_valid_set().unwrap()
}

#[test]
fn labels_carry_cluster_identity_and_the_planners_hash() {
    let (set, dir) = set();
    let s = instance_spec(&set, "db", 2, "0123abcd", &allow(dir.path())).unwrap();
    assert_eq!(s.name(), "db-2");
    assert_eq!(
        s.labels,
        InstanceLabels {
            cluster: "prod".into(),
            bundle: "db".into(),
            index: 2,
            spec_hash: instance_hash("db", &set.bundles["db"], 2),
            commit: "0123abcd".into(),
        }
    );
    assert_ne!(
        s.labels.spec_hash,
        instance_spec(&set, "db", 1, "0123abcd", &allow(dir.path()))
            .unwrap()
            .labels
            .spec_hash,
        "per-instance storage and address make each instance's hash its own"
    );
    assert_eq!(s.image, "localhost/pg:16");
    assert_eq!(s.command, ["postgres", "-c", "fsync=on"]);
    let plain = instance_spec(&set, "plain", 0, "c", &allow(dir.path())).unwrap();
    assert!(plain.command.is_empty(), "no command: the image's");
    assert!(plain.network.is_none() && plain.ports.is_empty() && plain.mounts.is_empty());
}

#[test]
fn secrets_are_read_now_and_never_shown() {
    let (set, dir) = set();
    let s = instance_spec(&set, "db", 0, "c", &allow(dir.path())).unwrap();
    let path = std::env::var("PATH").unwrap();
    let names: Vec<&str> = s.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["MODE", "PORT", "PW", "SEARCH"]);
    assert_eq!(s.env[0].1, EnvValue::Plain("prod".into()));
    assert_eq!(s.env[1].1, EnvValue::Plain("5432".into()));
    assert!(matches!(&s.env[2].1, EnvValue::Secret(v) if v.expose() == SECRET));
    assert!(matches!(&s.env[3].1, EnvValue::Secret(v) if v.expose() == path));
    let debug = format!("{s:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(!debug.contains(&path), "{debug}");
    assert!(s.env_strings().contains(&format!("PW={SECRET}")));
}

#[test]
fn an_unreadable_secret_names_its_reference_not_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let set = load(&db(&missing));
    let e = instance_spec(&set, "db", 0, "c", &allow(dir.path())).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, InstanceError::Secret { .. }), "{e:?}");
    assert!(msg.contains("db-0") && msg.contains("`PW`"), "{msg}");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");

    let unset = db(Path::new("/x")).replace(
        "{fromFile: /x}",
        "{fromEnv: QUORATE_TEST_SURELY_UNSET_SECRET}",
    );
    let e = instance_spec(&load(&unset), "db", 0, "c", &allow(dir.path())).unwrap_err();
    assert!(
        e.to_string()
            .contains("env QUORATE_TEST_SURELY_UNSET_SECRET"),
        "{e}"
    );

    std::fs::write(&missing, [0xff, 0xfe, 0x00]).unwrap();
    let e = instance_spec(&set, "db", 0, "c", &allow(dir.path())).unwrap_err();
    assert!(matches!(e, InstanceError::SecretNotText { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("file {}", missing.display())),
        "{e}"
    );
}

#[test]
fn a_reference_outside_the_operators_policy_is_never_read() {
    let (set, dir) = set();
    // The spec reads `PATH` and a file of the temp dir: each is refused by a policy that
    // does not allow it, whatever validation said, and the error names the policy.
    let outside = tempfile::tempdir().unwrap();
    for (policy, why) in [
        (
            SecretPolicy::default(),
            "must be inside /etc/quorate/secrets",
        ),
        (
            SecretPolicy::new(Some(outside.path().into()), ""),
            "must be inside",
        ),
        (
            SecretPolicy::new(Some(dir.path().into()), "QUORATE_SECRET_"),
            "env PATH is outside the secret policy",
        ),
    ] {
        let e = instance_spec(&set, "db", 0, "c", &policy).unwrap_err();
        assert!(
            matches!(
                &e,
                InstanceError::Secret {
                    source: SecretError::Policy(_),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains(why), "{e}");
        assert!(!e.to_string().contains(SECRET), "{e}");
    }
    // A symlink inside the directory that leads out of it is refused too.
    std::fs::write(outside.path().join("token"), "t0ken").unwrap();
    std::os::unix::fs::symlink(outside.path().join("token"), dir.path().join("link")).unwrap();
    let linked = load(&db(&dir.path().join("link")));
    let e = instance_spec(&linked, "db", 0, "c", &allow(dir.path())).unwrap_err();
    assert!(e.to_string().contains("leaves"), "{e}");
}

#[test]
fn ports_storage_and_address_per_instance() {
    let (set, dir) = set();
    let s = instance_spec(&set, "db", 2, "c", &allow(dir.path())).unwrap();
    let ports: Vec<_> = s
        .ports
        .iter()
        .map(|p| (p.host_port, p.container_port, p.count, p.protocol))
        .collect();
    assert_eq!(
        ports,
        [
            (5432, 5432, 1, Protocol::Tcp),
            (8080, 80, 1, Protocol::Tcp),
            (9000, 9000, 3, Protocol::Udp)
        ]
    );
    assert!(s.ports.iter().all(|p| p.host_ip.is_none()));

    assert_eq!(s.mounts.len(), 2);
    let (own, shared) = (&s.mounts[0], &s.mounts[1]);
    assert_eq!(own.host_path("db-2"), PathBuf::from("/srv/db/db-2"));
    assert_eq!(own.target, PathBuf::from("/var/lib/pg"));
    assert!(!own.read_only && own.options.is_empty());
    assert_eq!(shared.host_path("db-2"), PathBuf::from("/etc/pgconf"));
    assert!(shared.read_only);
    assert_eq!(shared.options, ["z"]);
    assert_eq!(s.dirs_to_create(), [PathBuf::from("/srv/db/db-2")]);
    // The mapping and the planner's hash agree on every host directory.
    for (m, st) in s.mounts.iter().zip(&set.bundles["db"].storage) {
        assert_eq!(Some(m.host_path("db-2")), st.host_dir("db-2"));
    }

    let net = s.network.unwrap();
    assert_eq!(net.network, "qnet");
    assert_eq!(net.ip, Some("10.88.10.202".parse().unwrap()));
    let first = instance_spec(&set, "db", 0, "c", &allow(dir.path()))
        .unwrap()
        .network
        .unwrap();
    assert_eq!(first.ip, Some("10.88.10.200".parse().unwrap()));
}

#[test]
fn unknown_bundles_and_instances_are_refused() {
    let (set, dir) = set();
    assert_eq!(
        instance_spec(&set, "nope", 0, "c", &allow(dir.path())).unwrap_err(),
        InstanceError::UnknownBundle {
            bundle: "nope".into()
        }
    );
    let e = instance_spec(&set, "db", 3, "c", &allow(dir.path())).unwrap_err();
    assert!(
        matches!(e, InstanceError::NoSuchInstance { replicas: 3, .. }),
        "{e:?}"
    );
    let mut broken = set.clone();
    if let Some(b) = broken.bundles.get_mut("db") {
        b.network.as_mut().unwrap().ip_range_start = Some("255.255.255.254".parse().unwrap());
    }
    let e = instance_spec(&broken, "db", 2, "c", &allow(dir.path())).unwrap_err();
    assert!(e.to_string().contains("past 255.255.255.255"), "{e}");
}

/// The hash and the mapping move together: a change either both see or neither does.
#[test]
fn the_hash_covers_exactly_what_the_mapping_uses() {
    let (set, dir) = set();
    let shape = |s: &SpecSet| {
        let mut spec = instance_spec(s, "db", 1, "c", &allow(dir.path())).unwrap();
        let hash = std::mem::take(&mut spec.labels.spec_hash);
        (spec, hash)
    };
    let (base, base_hash) = shape(&set);
    type Edit = fn(&mut BundleSpec);
    let edits: [(&str, Edit); 12] = [
        ("image", |b| b.image = "other".into()),
        ("command", |b| b.command = None),
        ("env", |b| {
            b.env
                .insert("MODE".into(), bundle::EnvValue::Plain("dev".into()));
        }),
        ("internal port", |b| {
            b.network.as_mut().unwrap().ports[0].internal_port = crate::spec::Port::new(1)
        }),
        ("protocol", |b| {
            b.network.as_mut().unwrap().ports[0].protocol = bundle::Protocol::Udp
        }),
        ("read-only", |b| b.storage[0].options = Some("ro".into())),
        ("address", |b| {
            b.network.as_mut().unwrap().ip_range_start = Some("10.88.10.100".parse().unwrap())
        }),
        // What does not shape the container:
        ("port id", |b| {
            b.network.as_mut().unwrap().ports[0].id = Some("x".into())
        }),
        ("storage id", |b| b.storage[0].id = Some("x".into())),
        ("explicit rw", |b| b.storage[0].options = Some("rw".into())),
        ("priority", |b| b.priority = 7),
        ("replicas", |b| b.replicas = 9),
    ];
    for (what, edit) in edits {
        let mut changed = set.clone();
        if let Some(b) = changed.bundles.get_mut("db") {
            edit(b);
        }
        let (spec, hash) = shape(&changed);
        assert_eq!(
            spec != base,
            hash != base_hash,
            "{what}: mapping changed: {}, hash changed: {}",
            spec != base,
            hash != base_hash
        );
    }
}

#[test]
fn network_spec_from_the_clusters_entry() {
    let (mut set, _dir) = set();
    let n = network_spec(&set, "db").unwrap();
    assert_eq!(n.name, "qnet");
    assert_eq!(n.subnet.to_string(), "10.88.10.0/24");
    assert_eq!(network_spec(&set, "plain"), None);
    assert_eq!(network_spec(&set, "nope"), None);
    // A subnet written with a host address is asked for by its network address.
    set.cluster.networks[0].subnet = "10.88.10.7/24".parse().unwrap();
    assert_eq!(
        network_spec(&set, "db").unwrap().subnet.to_string(),
        "10.88.10.0/24"
    );
    set.cluster.networks[0].subnet = "10.88.10.7/0".parse().unwrap();
    assert_eq!(
        network_spec(&set, "db").unwrap().subnet.to_string(),
        "0.0.0.0/0"
    );
}

#[test]
fn connections_from_nodes() {
    let (set, _dir) = set();
    let t = Duration::from_millis(1500);
    let conn = |name: &str| connection(set.cluster.node(name).unwrap(), t);

    let c = conn("n1").unwrap();
    assert_eq!(c.endpoint, set.cluster.nodes[0].runtime);
    assert_eq!(c.timeout, t);
    assert!(!c.insecure && c.tls.is_none() && c.ssh_identity.is_none() && c.cluster.is_none());

    let c = conn("n2").unwrap();
    assert_eq!(
        c.tls,
        Some(TlsFiles {
            ca: "/etc/q/ca.pem".into(),
            cert: "/etc/q/cert.pem".into(),
            key: "/etc/q/key.pem".into(),
        })
    );

    let c = conn("n3").unwrap();
    assert!(matches!(c.endpoint.transport, Transport::Ssh { .. }));
    assert_eq!(c.ssh_identity, Some("/etc/q/id".into()));
    assert_eq!(c.ssh_known_hosts, Some("/etc/q/known_hosts".into()));

    assert!(conn("n4").unwrap().insecure);
    let mut plain = set.cluster.node("n4").unwrap().clone();
    plain.insecure = false;
    assert!(matches!(
        connection(&plain, t),
        Err(RuntimeError::Endpoint(
            EndpointError::InsecureRefused { .. }
        ))
    ));
    let mut wrong = set.cluster.node("n1").unwrap().clone();
    wrong.tls = set.cluster.node("n2").unwrap().tls.clone();
    assert!(matches!(
        connection(&wrong, t),
        Err(RuntimeError::Endpoint(EndpointError::Unsupported { .. }))
    ));
}

fn container(
    name: &str,
    labels: Option<(&str, u32, &str)>,
    status: ContainerStatus,
) -> ContainerState {
    ContainerState {
        id: format!("id-{name}"),
        name: name.into(),
        labels: labels.map(|(bundle, index, hash)| InstanceLabels {
            cluster: "prod".into(),
            bundle: bundle.into(),
            index,
            spec_hash: hash.into(),
            commit: "c".into(),
        }),
        status,
        exit_code: None,
        started_at: None,
        finished_at: None,
        image: "img".into(),
        restart_policy: None,
        addresses: Default::default(),
    }
}

#[test]
fn observed_instances_in_the_planners_terms() {
    let cs = [
        container("web-1", Some(("web", 1, "h1")), ContainerStatus::Exited),
        container("other", None, ContainerStatus::Running),
        container("db-0", Some(("db", 0, "h0")), ContainerStatus::Running),
        container("web-0", Some(("web", 0, "h2")), ContainerStatus::Paused),
        container("Bad-0", Some(("Bad", 0, "h")), ContainerStatus::Running),
    ];
    let got: Vec<_> = observed_instances(&cs)
        .into_iter()
        .map(|o| (o.name(), o.spec_hash, o.state))
        .collect();
    assert_eq!(
        got,
        [
            ("db-0".to_string(), "h0".to_string(), InstanceState::Running),
            (
                "web-0".to_string(),
                "h2".to_string(),
                InstanceState::Stopped
            ),
            (
                "web-1".to_string(),
                "h1".to_string(),
                InstanceState::Stopped
            ),
        ]
    );
    for (status, state) in [
        (ContainerStatus::Created, InstanceState::Stopped),
        (ContainerStatus::Dead, InstanceState::Stopped),
        (ContainerStatus::Restarting, InstanceState::Running),
        (ContainerStatus::Stopping, InstanceState::Running),
        (ContainerStatus::Removing, InstanceState::Running),
        (
            ContainerStatus::Unknown("odd".into()),
            InstanceState::Running,
        ),
    ] {
        assert_eq!(instance_state(&status), state, "{status:?}");
    }
}
