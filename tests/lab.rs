//! `quorate lab` against the real thing: network namespaces, one Podman service per node,
//! an `ipmi_sim` BMC per node. Needs root; with `CI` set, a lab that cannot be brought up
//! fails the test, otherwise it is skipped with the reason.
//!
//! One lab (3 nodes) for the whole scenario, under a name and subnet of this process's
//! own, removed by a guard even when the test panics.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use quorate::fence::{FenceAgent, PowerState};
use quorate::lab::net::{LinkState, link_state};
use quorate::lab::{IMAGE, Lab};
use quorate::runtime::{
    self, InstanceLabels, InstanceSpec, MountSource, MountSpec, NetworkAttachment, NetworkSpec,
    PortSpec, Runtime,
};
use support::lab::{TestLab, quorate, text};

/// `GET /` on `addr`, the body when it answers 200.
fn http_get(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then_some(())?;
    head.contains(" 200 ").then(|| body.to_owned())
}

/// Waits up to 10 s for `GET /` on `addr` to answer.
fn wait_http(addr: SocketAddr) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(body) = http_get(addr) {
            return Some(body);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn instance(bundle: &str, command: &str, port: u16) -> InstanceSpec {
    InstanceSpec {
        labels: InstanceLabels {
            cluster: "labtest".into(),
            bundle: bundle.into(),
            index: 0,
            spec_hash: "h".into(),
            commit: "c".into(),
        },
        image: IMAGE.into(),
        command: vec!["sh".into(), "-c".into(), command.into()],
        env: vec![],
        ports: vec![PortSpec::single(port, None)],
        mounts: vec![],
        network: None,
    }
}

/// The "database": fixed address on the runtime network `lab`, storage, published port.
fn database(storage: &Path) -> InstanceSpec {
    let mut spec = instance(
        "db",
        "date >> /data/starts; echo 'lab db' > /data/index.html; exec httpd -f -p 5432 -h /data",
        5432,
    );
    spec.mounts = vec![MountSpec {
        source: MountSource::Fixed(storage.to_owned()),
        target: "/data".into(),
        read_only: false,
        options: Vec::new(),
    }];
    spec.network = Some(NetworkAttachment {
        network: "lab".into(),
        ip: Some("10.89.0.200".parse().unwrap()),
    });
    spec
}

async fn node_runtime(lab: &Lab, node: &str) -> Box<dyn Runtime> {
    let conn = lab.connection(node, Duration::from_secs(3)).unwrap();
    runtime::connect(conn).unwrap()
}

/// Every pid whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_comes_up_breaks_as_asked_and_goes_away() {
    let started = Instant::now();
    let Some(test_lab) = TestLab::up(3) else {
        return;
    };
    eprintln!("lab up took {:?}", started.elapsed());
    let tmp = tempfile::tempdir().unwrap();
    let (dir, d) = (test_lab.dir.clone(), test_lab.d());
    let (name, subnet) = (test_lab.name.clone(), test_lab.subnet.clone());
    let slot: u8 = name[2..].parse().unwrap();
    let lab: &Lab = &test_lab.lab;
    let addr = |node: &str| lab.node(node).unwrap().address;
    let sock = |node: &str, port: u16| SocketAddr::from((addr(node), port));

    // Every node's own Podman answers over TCP at its address, with the image loaded,
    // and sees only its own containers.
    for n in lab.nodes() {
        let rt = node_runtime(lab, &n.name).await;
        rt.ping().await.unwrap();
        assert!(rt.list().await.unwrap().is_empty(), "{}", n.name);
        assert_eq!(n.address, Ipv4Addr::new(10, 77, slot, 10 + n.index as u8));
    }
    let w1 = node_runtime(lab, "worker1").await;
    w1.run(&instance("web", "exec httpd -f -p 8000 -h /www", 8000))
        .await
        .unwrap();
    let body = wait_http(sock("worker1", 8000)).expect("web answers on worker1's address");
    assert_eq!(body, "quorate lab web\n");
    assert!(
        node_runtime(lab, "worker2")
            .await
            .list()
            .await
            .unwrap()
            .is_empty()
    );
    // ... and from another node.
    let from_w2 = Command::new("nsenter")
        .arg(format!(
            "--net=/run/netns/{}",
            lab.node("worker2").unwrap().netns
        ))
        .args(["busybox", "wget", "-q", "-O", "-"])
        .arg(format!("http://{}:8000/", addr("worker1")))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&from_w2.stdout),
        "quorate lab web\n"
    );

    eprintln!("{:?}: The lab's specs", started.elapsed());
    // The lab's specs: committed, valid, and the same as `lab specs` writes for it.
    let specs = lab.specs_dir();
    let s = specs.to_string_lossy().into_owned();
    let secrets_dir = lab.config().secrets_dir().to_string_lossy().into_owned();
    let checked = quorate(&["validate", &s, "--secrets-dir", &secrets_dir]);
    assert!(checked.status.success(), "{}", text(&checked));
    let again = tmp.path().join("specs");
    let a = again.to_string_lossy().into_owned();
    let written = quorate(&[
        "lab", "specs", "--dir", &d, "--name", &name, "--subnet", &subnet, "--out", &a,
    ]);
    assert!(written.status.success());
    for f in [
        "cluster.yaml",
        "fences.yaml",
        "bundles.yaml",
        "constraints.yaml",
    ] {
        assert_eq!(
            std::fs::read_to_string(specs.join(f)).unwrap(),
            std::fs::read_to_string(again.join(f)).unwrap(),
            "{f}"
        );
    }

    eprintln!("{:?}: Cut", started.elapsed());
    // Cut: worker1's runtime and published port stop answering; its BMC does not.
    let cut = quorate(&["lab", "cut", "worker1", "--dir", &d]);
    assert!(cut.status.success(), "{}", text(&cut));
    let err = w1.ping().await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert!(http_get(sock("worker1", 8000)).is_none());
    assert_eq!(
        lab.bmc("worker1").unwrap().status().await.unwrap(),
        PowerState::On
    );
    let secrets = lab.config().secrets_dir().to_string_lossy().into_owned();
    let fence = quorate(&[
        "fence",
        "worker1",
        "--action",
        "status",
        "--specs",
        &s,
        "--secrets-dir",
        &secrets,
    ]);
    assert!(fence.status.success(), "{}", text(&fence));
    assert!(text(&fence).contains("worker1 is on"), "{}", text(&fence));
    let status = text(&quorate(&["lab", "status", "--dir", &d]));
    assert!(status.contains("cable      down (cut)"), "{status}");

    eprintln!("{:?}: Heal", started.elapsed());
    // Heal: it answers again, its container still running.
    assert!(
        quorate(&["lab", "heal", "worker1", "--dir", &d])
            .status
            .success()
    );
    w1.ping().await.unwrap();
    assert_eq!(
        wait_http(sock("worker1", 8000)).as_deref(),
        Some("quorate lab web\n")
    );

    eprintln!("{:?}: Power off worker2", started.elapsed());
    // Power off worker2 through its BMC: nothing of its container survives.
    let w2 = node_runtime(lab, "worker2").await;
    let net = NetworkSpec {
        name: "lab".into(),
        subnet: "10.89.0.0/24".parse().unwrap(),
    };
    let storage = dir.join("data/db/db-0");
    w2.ensure_network(&net).await.unwrap();
    w2.run(&database(&storage)).await.unwrap();
    assert_eq!(
        wait_http(sock("worker2", 5432)).as_deref(),
        Some("lab db\n")
    );
    let node2 = lab.node("worker2").unwrap();
    let needle = format!("{}/nodes/worker2/", dir.display());
    assert!(!processes_mentioning(&needle).is_empty());
    let off = quorate(&["lab", "power", "worker2", "off", "--dir", &d]);
    assert!(off.status.success(), "{}", text(&off));
    assert!(w2.ping().await.unwrap_err().is_unreachable());
    assert!(http_get(sock("worker2", 5432)).is_none());
    assert_eq!(processes_mentioning(&needle), Vec::<u32>::new());
    assert!(!Path::new("/run/netns").join(&node2.netns).exists());
    assert_eq!(
        lab.bmc("worker2").unwrap().status().await.unwrap(),
        PowerState::Off
    );
    let status = text(&quorate(&["lab", "status", "--dir", &d]));
    let block = status.split("worker2  ").nth(1).unwrap();
    assert!(
        block.contains("(absent)") && block.contains("power off"),
        "{status}"
    );

    eprintln!("{:?}: The database answers again", started.elapsed());
    // The database answers again on another node: same name, address and storage.
    let w3 = node_runtime(lab, "worker3").await;
    w3.ensure_network(&net).await.unwrap();
    w3.run(&database(&storage)).await.unwrap();
    assert_eq!(
        wait_http(sock("worker3", 5432)).as_deref(),
        Some("lab db\n")
    );
    let starts = std::fs::read_to_string(storage.join("starts")).unwrap();
    assert_eq!(starts.lines().count(), 2, "{starts}");
    w3.stop("db-0", Duration::from_secs(2)).await.unwrap();

    eprintln!("{:?}: Power on", started.elapsed());
    // A cable pulled while the node is off stays pulled when it powers on.
    let cut = quorate(&["lab", "cut", "worker2", "--dir", &d]);
    assert!(text(&cut).contains("powered off"), "{}", text(&cut));
    let on = quorate(&["lab", "power", "worker2", "on", "--dir", &d]);
    assert!(on.status.success(), "{}", text(&on));
    assert!(text(&on).contains("its cable is cut"), "{}", text(&on));
    assert_eq!(
        lab.bmc("worker2").unwrap().status().await.unwrap(),
        PowerState::On
    );
    assert_eq!(link_state(&node2.veth), LinkState::Down);
    assert!(w2.ping().await.unwrap_err().is_unreachable());
    assert!(
        quorate(&["lab", "heal", "worker2", "--dir", &d])
            .status
            .success()
    );

    // Power on: Podman answers, the container is there but stopped (invariant 5).
    let on = quorate(&["lab", "power", "worker2", "on", "--dir", &d]);
    assert!(on.status.success(), "{}", text(&on));
    let db = w2
        .inspect("db-0")
        .await
        .unwrap()
        .expect("db-0 survives on disk");
    assert!(!db.is_running(), "{db:?}");
    assert_eq!(
        lab.bmc("worker2").unwrap().status().await.unwrap(),
        PowerState::On
    );
    w2.start("db-0").await.unwrap();
    assert_eq!(
        wait_http(sock("worker2", 5432)).as_deref(),
        Some("lab db\n")
    );

    eprintln!("{:?}: A second lab", started.elapsed());
    // A second lab of the same name is refused, and the first keeps working.
    let other = tmp.path().join("other").to_string_lossy().into_owned();
    let clash = quorate(&[
        "lab",
        "up",
        "--dir",
        &other,
        "--name",
        &name,
        "--subnet",
        "10.78.250.0/24",
    ]);
    assert_eq!(clash.status.code(), Some(1), "{}", text(&clash));
    assert!(!Path::new(&other).exists());
    w1.ping().await.unwrap();

    eprintln!("{:?}: Down removes", started.elapsed());
    // Down removes namespaces, interfaces, processes and files; twice is fine.
    let down = quorate(&["lab", "down", "--dir", &d]);
    assert!(down.status.success(), "{}", text(&down));
    for n in lab.nodes() {
        assert!(
            !Path::new("/run/netns").join(&n.netns).exists(),
            "{}",
            n.netns
        );
        assert!(
            !Path::new("/sys/class/net").join(&n.veth).exists(),
            "{}",
            n.veth
        );
    }
    assert!(
        !Path::new("/sys/class/net")
            .join(format!("{name}-br"))
            .exists()
    );
    assert_eq!(processes_mentioning(&d), Vec::<u32>::new());
    assert!(!dir.exists());
    let twice = quorate(&["lab", "down", "--dir", &d]);
    assert!(twice.status.success(), "{}", text(&twice));
    assert!(text(&twice).contains("nothing to remove"));
    eprintln!("whole scenario took {:?}", started.elapsed());
}

#[test]
fn a_lab_that_fails_to_come_up_leaves_nothing_behind() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return support::unavailable("quorate lab", "it needs root").unwrap_or(());
    }
    let (slot, name, subnet) = support::lab::fresh_slot();
    // Something else holds worker2's BMC address: its ipmi_sim cannot start.
    let _squatter = std::net::UdpSocket::bind((Ipv4Addr::new(127, 77, slot, 12), 623)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let d = dir.to_string_lossy().into_owned();
    let out = quorate(&[
        "lab", "up", "--nodes", "2", "--dir", &d, "--name", &name, "--subnet", &subnet,
    ]);
    if !Path::new("/usr/bin/ipmi_sim").exists() && !out.status.success() {
        return support::unavailable("quorate lab up", text(&out)).unwrap_or(());
    }
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("worker2's BMC"), "{}", text(&out));
    for i in 1..=2 {
        assert!(!Path::new(&format!("/run/netns/{name}-worker{i}")).exists());
        assert!(!Path::new(&format!("/sys/class/net/{name}-n{i}")).exists());
    }
    assert!(!Path::new(&format!("/sys/class/net/{name}-br")).exists());
    assert_eq!(processes_mentioning(&d), Vec::<u32>::new());
    assert!(!dir.exists(), "the lab directory is removed again");
}
