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

use std::cell::OnceCell;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::spec::bundle::{BundleSpec, EnvValue, Protocol, instance_ip, instance_name};

/// A published port as the runtime gets it: (host port, container port, count).
type Published = Option<(u16, u16, u16)>;

/// What every instance of a bundle shares, serialized as the first fields of its shape:
/// a shape is this object with [`Own`]'s fields after them, as `serde_json` writes both
/// (compact: `{`, the fields joined by `,`, `}`).
#[derive(Serialize)]
struct Shared<'a> {
    image: &'a str,
    command: &'a Option<Vec<String>>,
    env: Vec<(&'a str, &'a EnvValue)>,
    ports: Vec<(Published, Protocol)>,
}

/// What is an instance's own: its storage (a `sourceDirRoot` gives each instance its
/// directory) and its address.
#[derive(Serialize)]
struct Own<'a> {
    storage: Vec<(Option<PathBuf>, &'a Path, bool, Vec<&'a str>)>,
    network: (Option<&'a str>, Option<Ipv4Addr>),
}

/// The hashes of one bundle's instances: what they share is serialized and hashed once,
/// when the first is asked for (FNV-1a reads the bytes in order, so its state after them
/// is where each instance's own fields go on).
pub struct BundleHash<'a> {
    name: &'a str,
    bundle: &'a BundleSpec,
    shared: OnceCell<u64>,
}

impl<'a> BundleHash<'a> {
    pub fn new(name: &'a str, bundle: &'a BundleSpec) -> BundleHash<'a> {
        BundleHash {
            name,
            bundle,
            shared: OnceCell::new(),
        }
    }

    /// The hash of instance `index`, as 16 hex digits.
    pub fn instance(&self, index: u32) -> String {
        let shared = *self.shared.get_or_init(|| {
            // The object stays open: the instance's fields follow.
            fields(fnv1a(FNV_OFFSET, b"{"), &shared(self.bundle))
        });
        let instance = instance_name(self.name, index);
        let own = fields(fnv1a(shared, b","), &own(self.bundle, &instance, index));
        format!("{:016x}", fnv1a(own, b"}"))
    }
}

/// FNV-1a from state `h` on over `value`'s fields as `serde_json` writes them (compact),
/// without the braces around them.
fn fields(h: u64, value: &impl Serialize) -> u64 {
    let mut out = serde_json::Serializer::with_formatter(Fnv(h), Unbraced(0));
    // Plain data always serializes, into a writer that cannot fail.
    let _ = value.serialize(&mut out);
    out.into_inner().0
}

/// A writer that hashes what is written to it (FNV-1a from its state).
struct Fnv(u64);

impl std::io::Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = fnv1a(self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `serde_json`'s compact output but for the outermost object's braces (its depth of
/// objects open): a shape's shared fields and its own are one object.
struct Unbraced(usize);

impl serde_json::ser::Formatter for Unbraced {
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.0 += 1;
        if self.0 > 1 {
            out.write_all(b"{")
        } else {
            Ok(())
        }
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.0 = self.0.saturating_sub(1);
        if self.0 > 0 {
            out.write_all(b"}")
        } else {
            Ok(())
        }
    }
}

/// The fields every instance of `bundle` shares.
fn shared(bundle: &BundleSpec) -> Shared<'_> {
    Shared {
        image: &bundle.image,
        command: &bundle.command,
        env: bundle.env.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        ports: bundle
            .network
            .as_ref()
            .map_or(&[][..], |n| n.ports.as_slice())
            .iter()
            .map(|p| (p.published(), p.protocol))
            .collect(),
    }
}

/// The fields of `instance`, number `index` of `bundle`.
fn own<'a>(bundle: &'a BundleSpec, instance: &str, index: u32) -> Own<'a> {
    let network = bundle.network.as_ref();
    Own {
        storage: bundle
            .storage
            .iter()
            .map(|s| {
                (
                    s.host_dir(instance),
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
    }
}

/// The hash of instance `index` of bundle `name`, as 16 hex digits (for many instances
/// of one bundle, [`BundleHash`] serializes what they share once).
pub fn instance_hash(name: &str, bundle: &BundleSpec, index: u32) -> String {
    BundleHash::new(name, bundle).instance(index)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits, from state `h` (`FNV_OFFSET` to start) on: stable across builds
/// and platforms, which a label needs.
fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, b| {
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

    /// The whole shape in one object, as the labels of running containers were made
    /// from before the shared fields were hashed once per bundle.
    #[derive(Serialize)]
    struct Whole<'a> {
        image: &'a str,
        command: &'a Option<Vec<String>>,
        env: &'a [(&'a str, &'a EnvValue)],
        ports: &'a [(Published, Protocol)],
        storage: &'a [(Option<PathBuf>, &'a Path, bool, Vec<&'a str>)],
        network: &'a (Option<&'a str>, Option<Ipv4Addr>),
    }

    #[test]
    fn a_hash_is_that_of_the_whole_shape_in_one_object() {
        let bundles = [
            "image: a:1\n",
            "image: a:1\ncommand: [run, '--x=\"y\"']\nenv: {A: '1', B: {fromFile: /s/b}}\n",
            "image: i\nnetwork: {name: net, ipRangeStart: 10.0.0.5, ports: [{port: 80}, {range: 90-92, protocol: udp}]}\nstorage: [{sourceDirRoot: /srv, targetDir: /d, options: 'ro,z'}, {sourceDir: /s, targetDir: /e}]\n",
            "image: i\nnetwork: {ports: [{port: 80, internalPort: 8080}]}\nstorage: []\n",
        ];
        for text in bundles {
            let b = bundle_from(text);
            let hashes = BundleHash::new("web", &b);
            for index in [0, 1, 7, 300] {
                let (s, o) = (shared(&b), own(&b, &instance_name("web", index), index));
                let whole = Whole {
                    image: s.image,
                    command: s.command,
                    env: &s.env,
                    ports: &s.ports,
                    storage: &o.storage,
                    network: &o.network,
                };
                let bytes = serde_json::to_vec(&whole).unwrap();
                let expected = format!("{:016x}", fnv1a(FNV_OFFSET, &bytes));
                assert_eq!(hashes.instance(index), expected, "{text} {index}");
            }
        }
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
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
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
