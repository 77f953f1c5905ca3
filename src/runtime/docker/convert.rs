//! Translation between quorate's instance and state types and the Docker API models.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, EndpointIpamConfig,
    EndpointSettings, HostConfig, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};

use crate::runtime::instance::{InstanceLabels, InstanceSpec, path_str};
use crate::runtime::state::{ContainerState, ContainerStatus, rfc3339_secs};

/// The container body for an instance.
pub(super) fn create_body(spec: &InstanceSpec) -> ContainerCreateBody {
    let name = spec.name();
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        for (host, cont) in p.pairs() {
            port_bindings
                .entry(format!("{cont}/{}", p.protocol_name()))
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: p.host_ip.map(|ip| ip.to_string()),
                    host_port: Some(host.to_string()),
                });
        }
    }
    let binds = spec
        .mounts
        .iter()
        .map(|m| {
            // Docker binds are always recursive: `bind`/`rbind` have no word in its mode.
            let mut mode = vec![if m.read_only { "ro" } else { "rw" }];
            mode.extend(
                m.options
                    .iter()
                    .map(String::as_str)
                    .filter(|o| *o != "bind" && *o != "rbind"),
            );
            format!(
                "{}:{}:{}",
                path_str(&m.host_path(&name)),
                path_str(&m.target),
                mode.join(",")
            )
        })
        .collect();
    let host_config = HostConfig {
        // `Binds` (unlike `Mounts`) makes dockerd create a missing host directory, on
        // the node itself: that is how per-instance directories come to exist.
        binds: Some(binds),
        port_bindings: Some(port_bindings.clone()),
        // Design invariant 5: no runtime restart policy.
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        network_mode: spec.network.as_ref().map(|n| n.network.clone()),
        ..Default::default()
    };
    let networking_config = spec.network.as_ref().map(|n| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            n.network.clone(),
            EndpointSettings {
                ipam_config: n.ip.map(|ip| EndpointIpamConfig {
                    ipv4_address: ip.is_ipv4().then(|| ip.to_string()),
                    ipv6_address: ip.is_ipv6().then(|| ip.to_string()),
                    link_local_ips: None,
                }),
                ..Default::default()
            },
        )])),
    });
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(spec.env_strings()),
        labels: Some(spec.labels.to_map().into_iter().collect()),
        exposed_ports: Some(port_bindings.into_keys().collect()),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

fn exit_code_from_status(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split_once(')')?.0.parse().ok()
}

pub(super) fn state_from_summary(c: ContainerSummary) -> ContainerState {
    let labels = c.labels.unwrap_or_default();
    ContainerState {
        id: c.id.unwrap_or_default(),
        name: c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        labels: InstanceLabels::from_map(&labels),
        status: ContainerStatus::parse(&c.state.map(|s| s.to_string()).unwrap_or_default()),
        exit_code: c.status.as_deref().and_then(exit_code_from_status),
        started_at: None,
        finished_at: None,
        image: c.image.unwrap_or_default(),
        restart_policy: None,
        addresses: Default::default(),
    }
}

pub(super) fn state_from_inspect(c: ContainerInspectResponse) -> ContainerState {
    let labels = c
        .config
        .as_ref()
        .and_then(|cfg| cfg.labels.clone())
        .unwrap_or_default();
    let state = c.state.as_ref();
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
        id: c.id.clone().unwrap_or_default(),
        name: c
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels: InstanceLabels::from_map(&labels),
        status: ContainerStatus::parse(
            &state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
        exit_code: state.and_then(|s| s.exit_code),
        started_at: rfc3339_secs(state.and_then(|s| s.started_at.as_deref())),
        finished_at: rfc3339_secs(state.and_then(|s| s.finished_at.as_deref())),
        image: c.config.and_then(|cfg| cfg.image).unwrap_or_default(),
        restart_policy: Some(
            c.host_config
                .and_then(|h| h.restart_policy)
                .and_then(|r| r.name)
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ),
        addresses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::instance::{
        EnvValue, MountSource, MountSpec, PortSpec, SecretValue, label,
    };
    use crate::runtime::{InstanceLabels, NetworkAttachment};

    #[test]
    fn body_has_labels_ports_binds_and_no_restart() {
        let spec = InstanceSpec {
            labels: InstanceLabels {
                cluster: "c".into(),
                bundle: "web".into(),
                index: 1,
                spec_hash: "h".into(),
                commit: "c0".into(),
            },
            image: "img".into(),
            command: vec!["httpd".into()],
            env: vec![("PW".into(), EnvValue::Secret(SecretValue::new("s3")))],
            ports: vec![
                PortSpec::single(8080, Some(80)),
                PortSpec::range("9000-9001").unwrap(),
                PortSpec::single(53, None).with_protocol(crate::spec::bundle::Protocol::Udp),
            ],
            mounts: vec![MountSpec {
                source: MountSource::PerInstance("/srv".into()),
                target: "/data".into(),
                read_only: true,
                options: vec!["rbind".into(), "Z".into()],
            }],
            network: Some(NetworkAttachment {
                network: "qnet".into(),
                ip: Some("10.9.0.5".parse().unwrap()),
            }),
        };
        let b = create_body(&spec);
        let hc = b.host_config.unwrap();
        assert_eq!(hc.binds.unwrap(), vec!["/srv/web-1:/data:ro,Z"]);
        let pb = hc.port_bindings.unwrap();
        assert_eq!(pb.len(), 4);
        assert_eq!(
            pb["53/udp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("53")
        );
        assert_eq!(
            pb["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("8080")
        );
        assert_eq!(
            hc.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(b.labels.unwrap()[label::INSTANCE], "1");
        let eps = b.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            eps["qnet"]
                .ipam_config
                .as_ref()
                .unwrap()
                .ipv4_address
                .as_deref(),
            Some("10.9.0.5")
        );
        assert_eq!(
            exit_code_from_status("Exited (137) 2 seconds ago"),
            Some(137)
        );
        assert_eq!(exit_code_from_status("Up 2 seconds"), None);
    }
}
