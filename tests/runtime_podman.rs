//! The Podman driver against a real `podman system service` (own storage, temp socket,
//! the repo's `lab/containers.conf`). Tests run one at a time: Podman services on one
//! host share the default bridge and its address pool.

mod support;

use std::sync::MutexGuard;
use std::time::Duration;

use quorate::runtime::{self, Connection, EndpointError, Runtime, RuntimeError};
use support::scenarios::{self, block_on, connect};
use support::{PodmanService, TEST_IMAGE};

/// Takes the serial lock, starts a service (or skips) and connects a driver to it.
/// Bind the parts in this order so they drop driver first, lock last.
fn setup() -> Option<(MutexGuard<'static, ()>, PodmanService, Box<dyn Runtime>)> {
    let serial = support::serial();
    let svc = support::podman()?;
    let rt = connect(&svc.url());
    Some((serial, svc, rt))
}

#[test]
fn lifecycle_labels_and_no_restart_policy() {
    let Some((_serial, _svc, rt)) = setup() else {
        return;
    };
    block_on(scenarios::lifecycle(&*rt));
}

#[test]
fn ports_storage_and_env() {
    let Some((_serial, svc, rt)) = setup() else {
        return;
    };
    block_on(scenarios::ports_storage_env(&*rt, svc.dir()));
}

#[test]
fn health_checks_pass_and_fail() {
    let Some((_serial, _svc, rt)) = setup() else {
        return;
    };
    block_on(scenarios::health_checks(&*rt));
}

#[test]
fn unmanaged_container_is_left_alone() {
    let Some((_serial, svc, rt)) = setup() else {
        return;
    };
    let make = |name: &str| {
        let args = ["run", "-d", "--name", name, TEST_IMAGE, "sleep", "1000"];
        support::run(&mut svc.cli(args)).unwrap();
    };
    block_on(scenarios::unmanaged_conflict(&*rt, make));
}

#[test]
fn another_clusters_containers_are_not_ours() {
    let Some((_serial, svc, _rt)) = setup() else {
        return;
    };
    block_on(scenarios::other_cluster(&svc.url()));
}

#[test]
fn fixed_address_on_named_network() {
    let Some((_serial, _svc, rt)) = setup() else {
        return;
    };
    block_on(scenarios::fixed_ip_network(
        &*rt,
        "10.213.0.0/24",
        "10.213.0.50",
    ));
}

#[test]
fn missing_image_is_a_clear_error() {
    let Some((_serial, _svc, rt)) = setup() else {
        return;
    };
    block_on(scenarios::missing_image(&*rt));
}

#[test]
fn unreachable_endpoint_errors_within_timeout() {
    let dir = tempfile::tempdir().unwrap();
    block_on(scenarios::unreachable_endpoints("podman", dir.path()));
}

#[test]
fn through_an_ssh_tunnel() {
    let Some((_serial, svc, _rt)) = setup() else {
        return;
    };
    let Some(ssh) = support::sshd() else { return };
    block_on(scenarios::over_ssh("podman", &ssh, &svc.socket));
}

#[test]
fn plain_tcp_only_when_insecure() {
    let Some((_serial, mut svc, _rt)) = setup() else {
        return;
    };
    let port = match svc.serve_tcp() {
        Ok(p) => p,
        Err(e) => return support::unavailable("podman service on tcp", e).unwrap_or(()),
    };
    let url = format!("podman+tcp://127.0.0.1:{port}");
    let mut conn = Connection::parse(&url).unwrap();
    assert!(matches!(
        runtime::connect(conn.clone()).err(),
        Some(RuntimeError::Endpoint(
            EndpointError::InsecureRefused { .. }
        ))
    ));
    conn.insecure = true;
    conn.timeout = Duration::from_secs(20);
    let rt = runtime::connect(conn).unwrap();
    block_on(async {
        assert!(!rt.ping().await.unwrap().version.is_empty());
        rt.run(&scenarios::spec("tcp", 0, &["sleep", "1000"]))
            .await
            .unwrap();
        assert_eq!(rt.list().await.unwrap().len(), 1);
        rt.remove("tcp-0").await.unwrap();
    });
}
