//! The spec hash of an instance: what its container was created from. A container whose
//! label differs from the hash of the current spec is restarted.
//!
//! Exactly what shapes the container counts, in the form the runtime mapping
//! ([`crate::runtime::from_spec::instance_spec`]) hands it to the runtime: image, command,
//! environment, published ports (host port, container port, count, protocol), storage
//! (host directory, target, read-only, further mount options) and the network attachment
//! (network name, instance address). Monitor settings, priority, replicas, stop timeout and
//! the `id` of a port or storage mapping do not restart anything. Secrets are hashed by
//! reference: a new secret value behind the same reference restarts nothing.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::spec::bundle::{BundleSpec, EnvValue, Protocol, instance_ip, instance_name};

/// A published port as the runtime gets it: (host port, container port, count).
type Published = Option<(u16, u16, u16)>;

#[derive(Serialize)]
struct Shape<'a> {
    image: &'a str,
    command: &'a Option<Vec<String>>,
    env: Vec<(&'a str, &'a EnvValue)>,
    ports: Vec<(Published, Protocol)>,
    storage: Vec<(Option<PathBuf>, &'a Path, bool, Vec<&'a str>)>,
    network: (Option<&'a str>, Option<Ipv4Addr>),
}

/// The hash of instance `index` of bundle `name`, as 16 hex digits.
pub fn instance_hash(name: &str, bundle: &BundleSpec, index: u32) -> String {
    let instance = instance_name(name, index);
    let network = bundle.network.as_ref();
    let shape = Shape {
        image: &bundle.image,
        command: &bundle.command,
        env: bundle.env.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        ports: network
            .map_or(&[][..], |n| n.ports.as_slice())
            .iter()
            .map(|p| (p.published(), p.protocol))
            .collect(),
        storage: bundle
            .storage
            .iter()
            .map(|s| {
                (
                    s.host_dir(&instance),
                    s.target_dir.as_path(),
                    s.read_only(),
                    s.extra_options(),
                )
            })
            .collect(),
        network: (
            network.and_then(|n| n.name.as_ref()).map(|x| x.as_str()),
            network
                .and_then(|n| n.ip_range_start)
                .and_then(|ip| instance_ip(ip, index)),
        ),
    };
    // Plain data always serializes; an empty string would only make every hash equal.
    let bytes = serde_json::to_vec(&shape).unwrap_or_default();
    format!("{:016x}", fnv1a(&bytes))
}

/// FNV-1a, 64 bits: stable across builds and platforms, which a label needs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_from(text: &str) -> BundleSpec {
        let node = crate::load::yaml::parse_documents(text.as_bytes())
            .unwrap()
            .remove(0);
        crate::load::de::from_node(&node).unwrap()
    }

    fn bundle(image: &str) -> BundleSpec {
        bundle_from(&format!(
            "image: {image}\nreplicas: 2\nstorage: [{{sourceDirRoot: /srv, targetDir: /d}}]\n"
        ))
    }

    #[test]
    fn the_hash_follows_what_shapes_the_container() {
        let a = bundle("a:1");
        assert_eq!(instance_hash("web", &a, 0), instance_hash("web", &a, 0));
        assert_ne!(
            instance_hash("web", &a, 0),
            instance_hash("web", &bundle("a:2"), 0)
        );
        // Per-instance storage makes each instance's shape its own.
        assert_ne!(instance_hash("web", &a, 0), instance_hash("web", &a, 1));
        let mut b = a.clone();
        b.replicas = 5;
        b.priority = 9;
        b.stop_timeout = crate::spec::Duration::from_secs(99);
        assert_eq!(instance_hash("web", &a, 0), instance_hash("web", &b, 0));
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn ports_and_storage_count_as_published_not_as_written() {
        let base = "image: i\nnetwork: {name: qnet, ipRangeStart: 10.0.0.5, ports: [";
        let h = |ports: &str, storage: &str| {
            let b = bundle_from(&format!("{base}{ports}]}}\nstorage: [{storage}]\n"));
            instance_hash("web", &b, 1)
        };
        let st = "{sourceDir: /s, targetDir: /d}";
        let plain = h("{port: 80}", st);
        // Same container: the id and a spelled-out default change nothing.
        assert_eq!(plain, h("{id: web, port: 80, internalPort: 80}", st));
        assert_eq!(plain, h("{port: 80, protocol: tcp}", st));
        assert_eq!(
            plain,
            h("{port: 80}", "{id: data, sourceDir: /s, targetDir: /d}")
        );
        assert_eq!(
            plain,
            h("{port: 80}", "{sourceDir: /s, targetDir: /d, options: rw}")
        );
        // Another container: protocol, internal port, range, mount options.
        for (ports, storage) in [
            ("{port: 80, protocol: udp}", st),
            ("{port: 80, internalPort: 8080}", st),
            ("{range: 80-81}", st),
            ("{port: 80}", "{sourceDir: /s, targetDir: /d, options: ro}"),
            (
                "{port: 80}",
                "{sourceDir: /s, targetDir: /d, options: 'rw,z'}",
            ),
        ] {
            assert_ne!(plain, h(ports, storage), "{ports} {storage}");
        }
    }
}
