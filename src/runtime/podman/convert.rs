//! Translation between quorate's instance and state types and the libpod API models.

use std::collections::HashMap;
use std::net::IpAddr;

use podman_api::models;
use podman_api::opts;

use crate::runtime::instance::{InstanceLabels, InstanceSpec, MountSpec, path_str};
use crate::runtime::state::{ContainerState, ContainerStatus, unix_secs};

pub(super) fn create_opts(spec: &InstanceSpec) -> opts::ContainerCreateOpts {
    let name = spec.name();
    let mut b = opts::ContainerCreateOpts::builder()
        .name(&name)
        .image(&spec.image)
        .labels(spec.labels.to_map())
        // Design invariant 5: no runtime restart policy, so after a reboot only the
        // reconciler starts containers and a fenced node cannot resurrect an instance.
        .restart_policy(opts::ContainerRestartPolicy::No)
        .env(
            spec.env
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string())),
        )
        .portmappings(spec.ports.iter().map(|p| models::PortMapping {
            container_port: Some(p.container_port),
            host_ip: p.host_ip.map(|ip| ip.to_string()),
            host_port: Some(p.host_port),
            protocol: Some(p.protocol_name().into()),
            range: Some(p.count),
        }))
        .mounts(spec.mounts.iter().map(|m| models::ContainerMount {
            destination: Some(path_str(&m.target)),
            options: Some(mount_options(m)),
            source: Some(path_str(&m.host_path(&name))),
            _type: Some("bind".into()),
            uid_mappings: None,
            gid_mappings: None,
        }));
    if !spec.command.is_empty() {
        b = b.command(&spec.command);
    }
    if let Some(net) = &spec.network {
        b = b
            .net_namespace(models::Namespace {
                nsmode: Some("bridge".into()),
                value: None,
            })
            .networks([(
                net.network.clone(),
                models::PerNetworkOptions {
                    aliases: None,
                    interface_name: None,
                    static_ips: net.ip.map(|ip| vec![ip.to_string()]),
                    static_mac: None,
                },
            )]);
    }
    b.build()
}

/// `rbind` (unless the spec asks for `bind`), `ro` or `rw`, then the spec's other options.
fn mount_options(m: &MountSpec) -> Vec<String> {
    let mut options = Vec::with_capacity(m.options.len() + 2);
    if !m.options.iter().any(|o| o == "bind" || o == "rbind") {
        options.push("rbind".to_string());
    }
    options.push(if m.read_only { "ro" } else { "rw" }.to_string());
    options.extend(m.options.iter().cloned());
    options
}

pub(super) fn state_from_list(c: models::ListContainer) -> ContainerState {
    let labels = c.labels.unwrap_or_default();
    ContainerState {
        id: c.id.unwrap_or_default(),
        name: c
            .names
            .and_then(|n| n.into_iter().next())
            .unwrap_or_default(),
        labels: InstanceLabels::from_map(&labels),
        status: ContainerStatus::parse(c.state.as_deref().unwrap_or("unknown")),
        exit_code: c.exit_code.map(i64::from),
        started_at: unix_secs(c.started_at),
        finished_at: unix_secs(c.exited_at),
        image: c.image.unwrap_or_default(),
        restart_policy: None,
        addresses: Default::default(),
    }
}

pub(super) fn state_from_inspect(c: models::ContainerInspectResponseLibpod) -> ContainerState {
    let labels: HashMap<String, String> = c
        .config
        .as_ref()
        .and_then(|cfg| cfg.labels.clone())
        .unwrap_or_default();
    let config_image = c.config.and_then(|cfg| cfg.image);
    let state = c.state;
    let status = state
        .as_ref()
        .and_then(|s| s.status.as_deref())
        .unwrap_or("unknown");
    let addresses = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(net, ep)| {
            let ip: IpAddr = ep.ip_address?.parse().ok()?;
            Some((net, ip))
        })
        .collect();
    ContainerState {
        id: c.id.unwrap_or_default(),
        name: c.name.unwrap_or_default(),
        labels: InstanceLabels::from_map(&labels),
        status: ContainerStatus::parse(status),
        exit_code: state.as_ref().and_then(|s| s.exit_code).map(i64::from),
        started_at: unix_secs(
            state
                .as_ref()
                .and_then(|s| s.started_at)
                .map(|t| t.timestamp()),
        ),
        finished_at: unix_secs(
            state
                .as_ref()
                .and_then(|s| s.finished_at)
                .map(|t| t.timestamp()),
        ),
        image: c.image_name.or(config_image).unwrap_or_default(),
        restart_policy: Some(
            c.host_config
                .and_then(|h| h.restart_policy)
                .and_then(|r| r.name)
                .unwrap_or_default(),
        ),
        addresses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::instance::MountSource;

    #[test]
    fn mount_options_keep_the_specs_extras() {
        let mut m = MountSpec {
            source: MountSource::Fixed("/srv".into()),
            target: "/d".into(),
            read_only: true,
            options: vec!["z".into(), "nosuid".into()],
        };
        assert_eq!(mount_options(&m), ["rbind", "ro", "z", "nosuid"]);
        m.read_only = false;
        m.options = vec!["bind".into()];
        assert_eq!(mount_options(&m), ["rw", "bind"]);
    }
}
