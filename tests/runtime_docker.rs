//! The Docker driver against a real `dockerd` (temp data root, exec root, pidfile and
//! socket, plus a TLS listener on 127.0.0.1 that requires client certificates). Only one
//! dockerd may run at a time, so these tests are serialized.

mod support;

use std::sync::MutexGuard;
use std::time::Duration;

use quorate::runtime::{self, Connection, EndpointError, Runtime, RuntimeError, TlsFiles};
use support::scenarios::{self, block_on, connect};
use support::{DockerService, TEST_IMAGE};

/// Takes the serial lock, starts dockerd (or skips) and connects a driver to it.
/// Bind the parts in this order so they drop driver first, lock last.
fn setup() -> Option<(MutexGuard<'static, ()>, DockerService, Box<dyn Runtime>)> {
    let serial = support::serial();
    let svc = support::docker()?;
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
        "10.214.0.0/24",
        "10.214.0.50",
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
    block_on(scenarios::unreachable_endpoints("docker", dir.path()));
}

#[test]
fn tls_with_client_certificates() {
    let Some((_serial, svc, _rt)) = setup() else {
        return;
    };
    let url = format!("docker+tcp://127.0.0.1:{}", svc.tls_port);
    let tls = TlsFiles {
        ca: svc.certs.ca.clone(),
        cert: svc.certs.client_cert.clone(),
        key: svc.certs.client_key.clone(),
    };

    // Plain TCP is refused before any connection is made.
    let plain = Connection::parse(&url).unwrap();
    assert!(matches!(
        runtime::connect(plain.clone()).err(),
        Some(RuntimeError::Endpoint(
            EndpointError::InsecureRefused { .. }
        ))
    ));

    // With client certificates: the whole driver works over TLS.
    let mut secure = plain.clone();
    secure.tls = Some(tls.clone());
    secure.timeout = Duration::from_secs(20);
    let rt = runtime::connect(secure).unwrap();
    block_on(async {
        assert!(!rt.ping().await.unwrap().version.is_empty());
        let s = scenarios::spec("tls", 0, &["sleep", "1000"]);
        rt.run(&s).await.unwrap();
        assert_eq!(rt.list().await.unwrap().len(), 1);
        rt.remove("tls-0").await.unwrap();
    });

    // A client certificate from another CA is rejected by the daemon.
    let other = tempfile::tempdir().unwrap();
    let foreign = support::make_tls_certs(other.path()).unwrap();
    let mut wrong = plain.clone();
    wrong.tls = Some(TlsFiles {
        cert: foreign.client_cert,
        key: foreign.client_key,
        ..tls
    });
    wrong.timeout = Duration::from_secs(5);
    let e = block_on(runtime::connect(wrong).unwrap().ping()).unwrap_err();
    assert!(e.is_unreachable(), "{e}");

    // `insecure: true` talks plain HTTP, which the TLS listener does not answer.
    let mut insecure = plain;
    insecure.insecure = true;
    insecure.timeout = Duration::from_secs(5);
    let r = block_on(runtime::connect(insecure).unwrap().ping());
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn through_an_ssh_tunnel() {
    let Some((_serial, svc, _rt)) = setup() else {
        return;
    };
    let Some(ssh) = support::sshd() else { return };
    block_on(scenarios::over_ssh("docker", &ssh, &svc.socket));
}
