//! The spec hash of an instance: what its container was created from. A container whose
//! label differs from the hash of the current spec is restarted.
//!
//! Only what shapes the container counts (image, command, environment, ports, storage,
//! address); monitor settings, priority or replicas do not restart anything. Secrets are
//! hashed by reference: a new secret value behind the same reference restarts nothing.

use serde::Serialize;

use crate::spec::bundle::{BundleSpec, EnvValue, instance_ip, instance_name};

#[derive(Serialize)]
struct Shape<'a> {
    image: &'a str,
    command: &'a Option<Vec<String>>,
    env: Vec<(&'a str, &'a EnvValue)>,
    ports: &'a [crate::spec::bundle::PortMapping],
    storage: Vec<(String, &'a std::path::Path, bool)>,
    network: Option<(Option<&'a str>, Option<std::net::Ipv4Addr>)>,
}

/// The hash of instance `index` of bundle `name`, as 16 hex digits.
pub fn instance_hash(name: &str, bundle: &BundleSpec, index: u32) -> String {
    let instance = instance_name(name, index);
    let shape = Shape {
        image: &bundle.image,
        command: &bundle.command,
        env: bundle.env.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        ports: bundle.network.as_ref().map_or(&[], |n| n.ports.as_slice()),
        storage: bundle
            .storage
            .iter()
            .map(|s| {
                let source = match (&s.source_dir, &s.source_dir_root) {
                    (Some(dir), _) => dir.display().to_string(),
                    (None, Some(root)) => root.join(&instance).display().to_string(),
                    (None, None) => String::new(),
                };
                (source, s.target_dir.as_path(), s.read_only())
            })
            .collect(),
        network: bundle.network.as_ref().map(|n| {
            (
                n.name.as_ref().map(|x| x.as_str()),
                n.ip_range_start.and_then(|ip| instance_ip(ip, index)),
            )
        }),
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

    fn bundle(image: &str) -> BundleSpec {
        let text = format!(
            "image: {image}\nreplicas: 2\nstorage: [{{sourceDirRoot: /srv, targetDir: /d}}]\n"
        );
        let node = crate::load::yaml::parse_documents(text.as_bytes())
            .unwrap()
            .remove(0);
        crate::load::de::from_node(&node).unwrap()
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
        assert_eq!(instance_hash("web", &a, 0), instance_hash("web", &b, 0));
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
