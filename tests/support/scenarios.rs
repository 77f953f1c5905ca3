//! Runtime-neutral checks of a [`Runtime`] driver against a real service. Each
//! `runtime_*.rs` test file runs them against its own service.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use quorate::runtime::{
    self, Connection, ContainerStatus, EnvValue, FailureRecord, HealthCheck, HealthResult,
    InstanceLabels, InstanceSpec, Monitor, MountSource, MountSpec, NetworkAttachment, NetworkSpec,
    PortSpec, Runtime, RuntimeError, SecretValue,
};

use super::{TEST_IMAGE, free_port};

/// A current-thread tokio runtime for a synchronous test.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Connects to `url` with a short call timeout.
pub fn connect(url: &str) -> Box<dyn Runtime> {
    let mut c = Connection::parse(url).unwrap();
    c.timeout = Duration::from_secs(20);
    c.pull_timeout = Duration::from_secs(20);
    runtime::connect(c).unwrap()
}

/// Connects to `url` counting only containers of `cluster` as quorate's.
pub fn connect_cluster(url: &str, cluster: &str) -> Box<dyn Runtime> {
    let mut c = Connection::parse(url).unwrap().for_cluster(cluster);
    c.timeout = Duration::from_secs(20);
    runtime::connect(c).unwrap()
}

/// An instance spec for the test image.
pub fn spec(bundle: &str, index: u32, command: &[&str]) -> InstanceSpec {
    InstanceSpec {
        labels: InstanceLabels {
            cluster: "test-cluster".into(),
            bundle: bundle.into(),
            index,
            spec_hash: "hash-1".into(),
            commit: "c0ffee".into(),
        },
        image: TEST_IMAGE.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        ports: vec![],
        mounts: vec![],
        network: None,
    }
}

fn monitor(check: Option<HealthCheck>) -> Monitor {
    Monitor {
        check,
        timeout: Duration::from_secs(3),
    }
}

/// `name`'s monitor, run once.
async fn health(rt: &dyn Runtime, name: &str, m: &Monitor) -> HealthResult {
    rt.check_health(&[(name, m)]).await.remove(0)
}

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Retries a health check for a few seconds until it is healthy (servers need a moment).
async fn eventually_healthy(rt: &dyn Runtime, name: &str, m: &Monitor) -> HealthResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = health(rt, name, m).await;
        if r == HealthResult::Healthy || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// create, start, list, inspect, stop, remove; labels and no restart policy.
pub async fn lifecycle(rt: &dyn Runtime) {
    let info = rt.ping().await.unwrap();
    assert!(!info.version.is_empty());
    assert!(rt.list().await.unwrap().is_empty());

    let s = spec("life", 0, &["sleep", "1000"]);
    let id = rt.create(&s).await.unwrap();
    let created = rt.inspect("life-0").await.unwrap().unwrap();
    assert_eq!(created.id, id);
    assert_eq!(created.status, ContainerStatus::Created);
    assert_eq!(created.labels.as_ref(), Some(&s.labels));
    assert_eq!(
        created.has_restart_policy(),
        Some(false),
        "restart policy {:?}",
        created.restart_policy
    );

    rt.start("life-0").await.unwrap();
    rt.start("life-0").await.unwrap(); // already running: fine
    let listed = rt.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "life-0");
    assert_eq!(listed[0].labels.as_ref(), Some(&s.labels));
    assert!(listed[0].is_running());
    let running = rt.inspect("life-0").await.unwrap().unwrap();
    assert!(running.is_running());
    assert!(running.started_at.unwrap() > 1_600_000_000);
    assert!(running.image.contains("quorate-test"), "{}", running.image);

    // A second create of the same instance is refused, not replaced.
    assert!(matches!(
        rt.create(&s).await,
        Err(RuntimeError::AlreadyExists { .. })
    ));

    rt.stop("life-0", Duration::from_secs(1)).await.unwrap();
    let stopped = rt.inspect("life-0").await.unwrap().unwrap();
    assert_eq!(stopped.status, ContainerStatus::Exited);
    assert_eq!(
        stopped.exit_code,
        Some(137),
        "sleep as PID 1 ignores SIGTERM"
    );
    assert!(stopped.finished_at.unwrap() >= stopped.started_at.unwrap());
    rt.stop("life-0", Duration::from_secs(1)).await.unwrap(); // already stopped: fine

    let listed = rt.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, ContainerStatus::Exited);

    rt.remove("life-0").await.unwrap();
    assert!(rt.inspect("life-0").await.unwrap().is_none());
    assert!(rt.list().await.unwrap().is_empty());
    assert!(matches!(
        rt.stop("life-0", Duration::ZERO).await,
        Err(RuntimeError::NotFound { .. })
    ));
}

/// `web-3`: ports `single` and the range `p1-p2` published, per-instance storage under
/// `root`, `fixed` read-only, a plain and a secret variable.
fn web_3(root: &Path, fixed: &Path, single: u16, (p1, p2): (u16, u16)) -> InstanceSpec {
    let script = format!("httpd -p {p1} -h /www; httpd -p {p2} -h /www; httpd -f -p 80 -h /www");
    let mut s = spec("web", 3, &["sh", "-c", &script]);
    s.ports = vec![
        PortSpec::single(single, Some(80)),
        PortSpec::range(&format!("{p1}-{p2}")).unwrap(),
    ];
    s.mounts = vec![
        MountSpec {
            source: MountSource::PerInstance(root.to_owned()),
            target: "/data".into(),
            read_only: false,
            options: vec![],
        },
        MountSpec {
            source: MountSource::Fixed(fixed.to_owned()),
            target: "/ro".into(),
            read_only: true,
            options: vec![],
        },
    ];
    s.env = vec![
        ("MODE".into(), EnvValue::Plain("test".into())),
        (
            "PW".into(),
            EnvValue::Secret(SecretValue::new("s3cret-value")),
        ),
    ];
    s
}

/// Port mappings (single and range), per-instance and fixed storage (rw/ro), secret env.
pub async fn ports_storage_env(rt: &dyn Runtime, dir: &Path) {
    let root = dir.join("instances");
    let fixed = dir.join("fixed");
    std::fs::create_dir_all(&fixed).unwrap();
    std::fs::write(fixed.join("seed"), "from host").unwrap();
    assert!(!root.join("web-3").exists());
    // A free port is only free until someone binds it (tests run in parallel): a start
    // that finds one taken is tried again on others.
    let mut attempts = 0;
    let (state, single, p1, p2) = loop {
        let (p1, p2) = consecutive_free_ports();
        let single = std::iter::repeat_with(free_port)
            .find(|p| *p != p1 && *p != p2)
            .unwrap();
        let s = web_3(&root, &fixed, single, (p1, p2));
        assert!(!format!("{s:?}").contains("s3cret-value"));
        match rt.run(&s).await {
            Ok(state) => break (state, single, p1, p2),
            Err(e) if attempts < 3 && e.to_string().contains("address already in use") => {
                attempts += 1;
                rt.remove("web-3").await.unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(state.is_running());
    assert!(root.join("web-3").is_dir(), "per-instance dir was created");

    for port in [single, p1, p2] {
        let m = monitor(Some(HealthCheck::Http {
            addr: local(port),
            path: "/index.html".into(),
        }));
        assert_eq!(
            eventually_healthy(rt, "web-3", &m).await,
            HealthResult::Healthy,
            "port {port}"
        );
    }

    let exec = |c: &[&str]| {
        let c = cmd(c);
        async move { rt.exec("web-3", &c, &[]).await }
    };
    let ok = exec(&["sh", "-c", "echo written-inside > /data/f"])
        .await
        .unwrap();
    assert_eq!(ok.exit_code, Some(0));
    let on_host = std::fs::read_to_string(root.join("web-3/f")).unwrap();
    assert_eq!(on_host, "written-inside\n");
    let denied = exec(&["sh", "-c", "echo x > /ro/g"]).await.unwrap();
    assert_ne!(denied.exit_code, Some(0), "ro mount must refuse writes");
    assert!(!fixed.join("g").exists());
    assert_eq!(
        exec(&["test", "-f", "/ro/seed"]).await.unwrap().exit_code,
        Some(0)
    );
    let env_ok = exec(&[
        "sh",
        "-c",
        r#"test "$PW" = s3cret-value && test "$MODE" = test"#,
    ]);
    assert_eq!(env_ok.await.unwrap().exit_code, Some(0));
    // What promote and demote commands rely on: variables added for one exec, and its
    // standard output, cut at the bound.
    let told = rt
        .exec(
            "web-3",
            &cmd(&["sh", "-c", r#"echo "to $QUORATE_PROMOTED_HOST""#]),
            &[("QUORATE_PROMOTED_HOST".into(), "10.0.0.9".into())],
        )
        .await
        .unwrap();
    assert_eq!(
        (told.exit_code, told.stdout.as_str()),
        (Some(0), "to 10.0.0.9\n")
    );
    let long = exec(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 2000 ]; do echo 0123456789; i=$((i+1)); done",
    ]);
    assert_eq!(
        long.await.unwrap().stdout.len(),
        quorate::runtime::EXEC_STDOUT_MAX
    );

    rt.remove("web-3").await.unwrap();
    assert!(root.join("web-3/f").exists(), "data outlives the container");
}

/// Two free ports in a row on 127.0.0.1.
fn consecutive_free_ports() -> (u16, u16) {
    for _ in 0..200 {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return (p, p + 1);
        }
    }
    panic!("no two consecutive free ports");
}

/// Exec, TCP and HTTP checks pass and fail as they should; exits are failures.
pub async fn health_checks(rt: &dyn Runtime) {
    let port = free_port();
    let closed = free_port();
    let mut s = spec("mon", 0, &["httpd", "-f", "-p", "80", "-h", "/www"]);
    s.ports = vec![PortSpec::single(port, Some(80))];
    rt.run(&s).await.unwrap();

    let http_ok = monitor(Some(HealthCheck::Http {
        addr: local(port),
        path: "/index.html".into(),
    }));
    assert_eq!(
        eventually_healthy(rt, "mon-0", &http_ok).await,
        HealthResult::Healthy
    );

    let cases = [
        (None, true),
        (Some(HealthCheck::Exec(cmd(&["true"]))), true),
        (Some(HealthCheck::Exec(cmd(&["false"]))), false),
        (Some(HealthCheck::Exec(cmd(&["sh", "-c", "exit 3"]))), false),
        (Some(HealthCheck::Tcp(local(port))), true),
        (Some(HealthCheck::Tcp(local(closed))), false),
        (
            Some(HealthCheck::Http {
                addr: local(port),
                path: "/missing".into(),
            }),
            false,
        ),
        (
            Some(HealthCheck::Http {
                addr: local(closed),
                path: "/".into(),
            }),
            false,
        ),
        (Some(HealthCheck::Exec(cmd(&["sleep", "10"]))), false),
    ];
    let mut record = FailureRecord::default();
    let mut failures = 0;
    for (check, healthy) in cases {
        let m = monitor(check.clone());
        let started = Instant::now();
        let r = health(rt, "mon-0", &m).await;
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{check:?} overran its timeout"
        );
        if healthy {
            assert_eq!(r, HealthResult::Healthy, "{check:?}");
        } else {
            assert!(matches!(r, HealthResult::Failed { .. }), "{check:?}: {r:?}");
            failures += 1;
        }
        record.record(&r, 1_000);
    }
    assert_eq!(record.fail_count, failures);

    // An exited instance is a failure, whatever its check says.
    rt.stop("mon-0", Duration::from_secs(1)).await.unwrap();
    let r = health(rt, "mon-0", &monitor(None)).await;
    match &r {
        HealthResult::Failed { reason } => assert!(reason.contains("exited"), "{reason}"),
        other => panic!("expected failure, got {other:?}"),
    }
    record.record(&r, 2_000);
    assert_eq!(record.fail_count, failures + 1);
    assert_eq!(record.last_failure.as_ref().map(|f| f.0), Some(2_000));
    rt.remove("mon-0").await.unwrap();
    let gone = health(rt, "mon-0", &monitor(None)).await;
    assert!(matches!(gone, HealthResult::Failed { .. }), "{gone:?}");
}

/// A container without quorate's labels is never touched, even with a clashing name.
/// `make_unmanaged(name)` starts such a container (`sleep`) through the runtime's CLI.
pub async fn unmanaged_conflict(rt: &dyn Runtime, make_unmanaged: impl Fn(&str)) {
    make_unmanaged("db-0");
    let before = rt.inspect("db-0").await.unwrap().unwrap();
    assert!(before.labels.is_none());
    assert!(before.is_running());

    let s = spec("db", 0, &["sleep", "1000"]);
    let conflict = |r: Result<_, RuntimeError>| matches!(r, Err(RuntimeError::Conflict { ref name }) if name == "db-0");
    assert!(conflict(rt.create(&s).await.map(|_| ())));
    assert!(conflict(rt.run(&s).await.map(|_| ())));
    assert!(conflict(rt.stop("db-0", Duration::ZERO).await));
    assert!(conflict(rt.remove("db-0").await));
    assert!(conflict(rt.start("db-0").await));
    assert!(conflict(
        rt.exec("db-0", &cmd(&["true"]), &[]).await.map(|_| ())
    ));
    let r = health(rt, "db-0", &monitor(None)).await;
    assert!(matches!(r, HealthResult::Failed { .. }), "{r:?}");

    let after = rt.inspect("db-0").await.unwrap().unwrap();
    assert_eq!(after.id, before.id);
    assert!(after.is_running(), "the unmanaged container still runs");
    assert_eq!(after.started_at, before.started_at);
    assert!(
        rt.list().await.unwrap().is_empty(),
        "list shows only managed containers"
    );
}

/// With the cluster named on the connection, another cluster's containers on the same
/// runtime are neither listed nor touched, even with a clashing name.
pub async fn other_cluster(url: &str) {
    let ours = connect_cluster(url, "test-cluster");
    let theirs = connect_cluster(url, "other-cluster");
    let mut foreign = spec("shared", 0, &["sleep", "1000"]);
    foreign.labels.cluster = "other-cluster".into();
    theirs.run(&foreign).await.unwrap();
    ours.run(&spec("mine", 0, &["sleep", "1000"]))
        .await
        .unwrap();

    let names = |cs: Vec<runtime::ContainerState>| -> Vec<String> {
        let mut n: Vec<String> = cs.into_iter().map(|c| c.name).collect();
        n.sort();
        n
    };
    assert_eq!(names(ours.list().await.unwrap()), ["mine-0"]);
    assert_eq!(names(theirs.list().await.unwrap()), ["shared-0"]);
    let unscoped = connect(url);
    assert_eq!(
        names(unscoped.list().await.unwrap()),
        ["mine-0", "shared-0"]
    );

    let conflict = |r: Result<(), RuntimeError>| matches!(r, Err(RuntimeError::Conflict { ref name }) if name == "shared-0");
    assert!(conflict(
        ours.create(&spec("shared", 0, &["true"])).await.map(|_| ())
    ));
    assert!(conflict(ours.stop("shared-0", Duration::ZERO).await));
    assert!(conflict(ours.start("shared-0").await));
    assert!(conflict(ours.remove("shared-0").await));
    assert!(conflict(
        ours.exec("shared-0", &cmd(&["true"]), &[])
            .await
            .map(|_| ())
    ));
    let r = health(&*ours, "shared-0", &monitor(None)).await;
    assert!(matches!(r, HealthResult::Failed { .. }), "{r:?}");
    let still = theirs.inspect("shared-0").await.unwrap().unwrap();
    assert!(
        still.is_running(),
        "the other cluster's container still runs"
    );

    theirs.remove("shared-0").await.unwrap();
    ours.remove("mine-0").await.unwrap();
}

/// A named network with a subnet; an instance with a fixed address answers on it.
pub async fn fixed_ip_network(rt: &dyn Runtime, subnet: &str, ip: &str) {
    let net = NetworkSpec {
        name: "quorate-test-net".into(),
        subnet: subnet.parse().unwrap(),
    };
    rt.ensure_network(&net).await.unwrap();
    rt.ensure_network(&net).await.unwrap(); // exists with the same subnet: fine
    let other = NetworkSpec {
        subnet: "10.231.7.0/24".parse().unwrap(),
        ..net.clone()
    };
    assert!(matches!(
        rt.ensure_network(&other).await,
        Err(RuntimeError::Network { .. })
    ));

    let ip: IpAddr = ip.parse().unwrap();
    let mut s = spec("addr", 1, &["httpd", "-f", "-p", "80", "-h", "/www"]);
    s.network = Some(NetworkAttachment {
        network: net.name.clone(),
        ip: Some(ip),
    });
    let state = rt.run(&s).await.unwrap();
    assert_eq!(
        state.addresses.get(&net.name),
        Some(&ip),
        "{:?}",
        state.addresses
    );
    let m = monitor(Some(HealthCheck::Http {
        addr: SocketAddr::new(ip, 80),
        path: "/index.html".into(),
    }));
    assert_eq!(
        eventually_healthy(rt, "addr-1", &m).await,
        HealthResult::Healthy
    );
    rt.remove("addr-1").await.unwrap();
}

/// An image that is absent and cannot be pulled is a clear, typed error.
pub async fn missing_image(rt: &dyn Runtime) {
    let mut s = spec("noimg", 0, &["true"]);
    s.image = "localhost/quorate-absent:latest".into();
    match rt.create(&s).await {
        Err(RuntimeError::ImageUnavailable { image, .. }) => assert_eq!(image, s.image),
        other => panic!("expected ImageUnavailable, got {other:?}"),
    }
    assert!(rt.inspect("noimg-0").await.unwrap().is_none());
}

/// A missing socket and a socket that never answers both give "unreachable" within the
/// timeout. `scheme` is `podman` or `docker`.
pub async fn unreachable_endpoints(scheme: &str, dir: &Path) {
    let timeout = Duration::from_secs(2);
    let open = |url: String| {
        let mut c = Connection::parse(&url).unwrap();
        c.timeout = timeout;
        runtime::connect(c).unwrap()
    };
    let missing = open(format!("{scheme}+unix://{}/absent.sock", dir.display()));
    let t = Instant::now();
    let e = missing.ping().await.unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    assert!(t.elapsed() < timeout + Duration::from_secs(1));
    assert!(missing.list().await.unwrap_err().is_unreachable());

    // A socket that accepts connections and never answers.
    let path = dir.join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let silent = open(format!("{scheme}+unix://{}", path.display()));
    let t = Instant::now();
    let e = silent.inspect("x-0").await.unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, RuntimeError::Timeout { .. }), "{e}");
    assert!(e.is_unreachable());
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(2),
        "{took:?}"
    );
    let r = health(&*silent, "x-0", &monitor(None)).await;
    assert!(matches!(r, HealthResult::Unobservable { .. }), "{r:?}");
    holder.abort();
}

/// The driver through an SSH tunnel to `socket`: it works end to end (including creating
/// a per-instance directory on the node over SSH), and a key the server does not accept
/// or an unknown host key make the node unreachable instead.
pub async fn over_ssh(scheme: &str, ssh: &super::SshServer, socket: &Path) {
    let url = format!(
        "{scheme}+ssh://root@127.0.0.1:{}{}",
        ssh.port,
        socket.display()
    );
    let mut conn = Connection::parse(&url).unwrap();
    conn.ssh_identity = Some(ssh.identity.clone());
    conn.ssh_known_hosts = Some(ssh.known_hosts.clone());
    conn.timeout = Duration::from_secs(20);
    let rt = runtime::connect(conn.clone()).unwrap();
    assert!(!rt.ping().await.unwrap().version.is_empty());

    let root = ssh.dir().join("instances");
    let mut s = spec("remote", 2, &["sleep", "1000"]);
    s.mounts = vec![MountSpec {
        source: MountSource::PerInstance(root.clone()),
        target: "/data".into(),
        read_only: false,
        options: vec![],
    }];
    rt.run(&s).await.unwrap();
    assert!(root.join("remote-2").is_dir());
    let listed = rt.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "remote-2");
    let exec = rt
        .exec("remote-2", &cmd(&["touch", "/data/over-ssh"]), &[])
        .await
        .unwrap();
    assert_eq!(exec.exit_code, Some(0));
    assert!(root.join("remote-2/over-ssh").exists());
    rt.remove("remote-2").await.unwrap();
    drop(rt);

    // A key the server does not know.
    let stranger = ssh.dir().join("stranger");
    super::run(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&stranger),
    )
    .unwrap();
    let mut bad_key = conn.clone();
    bad_key.ssh_identity = Some(stranger.clone());
    let e = runtime::connect(bad_key).unwrap().ping().await.unwrap_err();
    assert!(e.is_unreachable(), "{e}");

    // A host key that is not the pinned one.
    let other_hosts = ssh.dir().join("other_known_hosts");
    let stranger_pub = std::fs::read_to_string(stranger.with_extension("pub")).unwrap();
    std::fs::write(
        &other_hosts,
        format!("[127.0.0.1]:{} {stranger_pub}", ssh.port),
    )
    .unwrap();
    let mut bad_host = conn;
    bad_host.ssh_known_hosts = Some(other_hosts);
    let e = runtime::connect(bad_host)
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    assert!(e.is_unreachable(), "{e}");
}
