//! One BMC per node: an `ipmi_sim` (OpenIPMI) on the node's management address, a
//! loopback address of the host (`127.b.c.(10+i)`, UDP 623), so it stays reachable
//! when the node's cable is cut.
//!
//! Its `chassis_control` program is a two-line script that runs `quorate lab chassis`:
//! `get power` prints the node's power file, `set power 0` kills the node (see
//! `node::power_off`) and `set power 1` brings it back. `ipmi_sim` runs the
//! script synchronously, so the BMC confirms "off" only once nothing of the node is left.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LabError;
use super::cmd::{Cmd, read_pidfile, tail};
use super::config::{BMC_PORT, BMC_USER, LabConfig, LabNode, dir_needle};
use super::node;
use super::procs::{self, Selector};
use crate::fence::ipmi::{IpmiAgent, IpmiConfig};
use crate::runtime::ssh::shell_quote;
use crate::secret::SecretRef;

/// Writes a file with `mode`.
fn write(path: &Path, text: &str, mode: u32) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(|e| LabError::io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(path, e))
}

/// A fresh random password: 16 hex digits (fits IPMI 1.5's 16 bytes too).
pub(crate) fn new_password() -> Result<String, LabError> {
    let mut bytes = [0u8; 8];
    let path = Path::new("/dev/urandom");
    let mut f = std::fs::File::open(path).map_err(|e| LabError::io(path, e))?;
    std::io::Read::read_exact(&mut f, &mut bytes).map_err(|e| LabError::io(path, e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes the lab's BMC password file (mode 0600, in the secrets directory, mode 0700;
/// never logged or printed).
pub(crate) fn write_password(cfg: &LabConfig, password: &str) -> Result<(), LabError> {
    let dir = cfg.secrets_dir();
    std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| LabError::io(&dir, e))?;
    write(&cfg.password_file(), &format!("{password}\n"), 0o600)
}

/// `ipmi_sim`'s LAN configuration. It holds the password, so it is written mode 0600.
fn lan_conf(node: &LabNode, chassis: &Path, password: &str) -> String {
    format!(
        "name \"{name}\"\n\
         set_working_mc 0x20\n\
         \x20 startlan 1\n\
         \x20   addr {addr} {BMC_PORT}\n\
         \x20   priv_limit admin\n\
         \x20   allowed_auths_callback md5\n\
         \x20   allowed_auths_user md5\n\
         \x20   allowed_auths_operator md5\n\
         \x20   allowed_auths_admin md5\n\
         \x20   guid a1234567890000000000{index:012x}\n\
         \x20 endlan\n\
         \x20 chassis_control \"{chassis}\"\n\
         \x20 user 2 true \"{BMC_USER}\" \"{password}\" admin 10 md5\n",
        name = node.name,
        addr = node.bmc_address,
        index = node.index,
        chassis = chassis.display(),
    )
}

/// The simulated BMC's emulator commands (`mc_setbmc` is required, or it exits).
const SIM_EMU: &str = "mc_setbmc 0x20\n\
    mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
    mc_enable 0x20\n";

/// The chassis control script: hands every call to `quorate lab chassis`.
fn chassis_script(quorate: &Path, cfg: &LabConfig, node: &LabNode) -> String {
    format!(
        "#!/bin/sh\n# chassis_control for {node}'s BMC (written by `quorate lab up`).\n\
         exec {bin} lab chassis --dir {dir} {node} \"$@\"\n",
        node = node.name,
        bin = shell_quote(&quorate.to_string_lossy()),
        dir = shell_quote(&cfg.dir.to_string_lossy()),
    )
}

/// Writes a BMC's files: lan.conf (0600), sim.emu, chassis.sh, state dir.
pub(crate) fn prepare(
    cfg: &LabConfig,
    node: &LabNode,
    quorate: &Path,
    password: &str,
) -> Result<(), LabError> {
    let d = cfg.bmc_dir(node);
    let state = d.join("state");
    std::fs::create_dir_all(&state).map_err(|e| LabError::io(&state, e))?;
    let chassis = d.join("chassis.sh");
    write(&chassis, &chassis_script(quorate, cfg, node), 0o755)?;
    write(
        &d.join("lan.conf"),
        &lan_conf(node, &chassis, password),
        0o600,
    )?;
    write(&d.join("sim.emu"), SIM_EMU, 0o644)
}

fn pidfile(cfg: &LabConfig, node: &LabNode) -> PathBuf {
    cfg.bmc_dir(node).join("sim.pid")
}

/// Starts the node's `ipmi_sim` and waits until it answers an RMCP ping. Returns its pid.
pub(crate) async fn start(cfg: &LabConfig, node: &LabNode) -> Result<u32, LabError> {
    let d = cfg.bmc_dir(node);
    let pidfile = pidfile(cfg, node);
    let log = d.join("sim.log");
    Cmd::new("sh")
        .args(["-c", "echo $$ > \"$0\"; exec \"$@\""])
        .arg(&pidfile)
        .arg("ipmi_sim")
        .arg("-c")
        .arg(d.join("lan.conf"))
        .arg("-f")
        .arg(d.join("sim.emu"))
        .arg("-s")
        .arg(d.join("state"))
        .arg("-n")
        .spawn_daemon(&log)
        .await?;
    let within = Duration::from_secs(10);
    let pid = read_pidfile(&pidfile, within).await?;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if rmcp_ping(node.bmc_address, Duration::from_millis(200)).await {
            return Ok(pid);
        }
        if !procs::alive(pid) || tokio::time::Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!(
                    "{}'s BMC (ipmi_sim on {}:{BMC_PORT})",
                    node.name, node.bmc_address
                ),
                after: within,
                detail: tail(&log, 10),
            });
        }
    }
}

/// Stops every `ipmi_sim` of the lab (by the lab's BMC directory in its command line).
pub(crate) async fn stop_all(cfg: &LabConfig) -> Result<usize, LabError> {
    let sel = Selector {
        netns: None,
        needle: Some(dir_needle(&cfg.dir.join("bmc"))),
    };
    procs::kill_all(&sel, Duration::from_secs(5)).await
}

/// Whether the BMC answers an RMCP presence ping (no credentials involved).
pub async fn rmcp_ping(addr: Ipv4Addr, wait: Duration) -> bool {
    let Ok(sock) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
        return false;
    };
    if sock.connect((addr, BMC_PORT)).await.is_err() {
        return false;
    }
    // RMCP v1.0, no ack, class ASF; ASF IANA 4542, Presence Ping, tag 0x51.
    let ping = [
        0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x80, 0x51, 0x00, 0x00,
    ];
    if sock.send(&ping).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
        // Presence Pong is ASF message type 0x40.
        Ok(Ok(n)) => n >= 9 && buf[8] == 0x40,
        _ => false,
    }
}

/// quorate's own IPMI agent for the node's BMC, as the lab's Fence spec describes it.
pub fn agent(cfg: &LabConfig, node: &LabNode) -> Result<IpmiAgent, LabError> {
    let mut config = IpmiConfig::new(
        node.bmc_address.to_string(),
        BMC_USER,
        SecretRef::FromFile(cfg.password_file()),
    );
    config.port = BMC_PORT;
    IpmiAgent::new(config).map_err(LabError::Fence)
}

/// Answers one `chassis_control` call for `node`: `get power` and `set power 0|1` (also
/// `set reset 1`, a power cycle, and `set boot X`, accepted and ignored). Returns what to
/// print.
///
/// Safety: `get power` reports off only after `set power 0` finished killing everything
/// of the node (the call is synchronous), so a fence that sees "off" may start the node's
/// instances elsewhere (invariants 1 and 3). `set power 1` starts the node's Podman only;
/// its containers have no restart policy and stay stopped (invariant 5).
pub async fn chassis(cfg: &LabConfig, node: &LabNode, args: &[String]) -> Result<String, LabError> {
    let bad = |why: &str| Err(LabError::Config(format!("chassis control {args:?}: {why}")));
    match args.split_first() {
        Some((op, params)) if op == "get" => {
            let mut out = String::new();
            for p in params {
                match p.as_str() {
                    "power" => {
                        let on = node::power_is_on(cfg, node);
                        out.push_str(&format!("power:{}\n", u8::from(on)));
                    }
                    "boot" => out.push_str("boot:default\n"),
                    _ => return bad("only power and boot can be read"),
                }
            }
            Ok(out)
        }
        Some((op, params)) if op == "set" => {
            if params.len() % 2 != 0 {
                return bad("set takes parameter and value pairs");
            }
            for pair in params.chunks(2) {
                record_command(cfg, node, &pair[0], &pair[1])?;
                match (pair[0].as_str(), pair[1].as_str()) {
                    ("power", "0") => {
                        node::power_off(cfg, node).await?;
                    }
                    ("power", "1") => node::power_on(cfg, node).await?,
                    ("reset", "1") => {
                        node::power_off(cfg, node).await?;
                        node::power_on(cfg, node).await?;
                    }
                    ("reset", "0") | ("boot", _) => {}
                    _ => return bad("unknown parameter or value"),
                }
            }
            Ok(String::new())
        }
        _ => bad("expected get or set"),
    }
}

/// The BMC's command log (`chassis.log` in its directory): one line per `set` that
/// reached it, with the power state it found, written before the command runs. Tests
/// count power commands there, at the BMC's side of the wire.
pub(crate) fn chassis_log(cfg: &LabConfig, node: &LabNode) -> PathBuf {
    cfg.bmc_dir(node).join("chassis.log")
}

fn record_command(
    cfg: &LabConfig,
    node: &LabNode,
    param: &str,
    value: &str,
) -> Result<(), LabError> {
    use std::io::Write;
    let path = chassis_log(cfg, node);
    let was = if node::power_is_on(cfg, node) {
        "on"
    } else {
        "off"
    };
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let line = format!("{ms} set {param} {value} (was {was})\n");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| LabError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bmc_config_names_its_address_user_and_script() {
        let cfg = LabConfig::default();
        let node = cfg.node("worker2").unwrap();
        let text = lan_conf(&node, Path::new("/x/chassis.sh"), "pw");
        assert!(text.contains("addr 127.77.0.12 623"), "{text}");
        assert!(text.contains("chassis_control \"/x/chassis.sh\""));
        assert!(text.contains("user 2 true \"quorate\" \"pw\" admin"));
        let script = chassis_script(Path::new("/usr/bin/quorate"), &cfg, &node);
        // shlex leaves words without special characters unquoted.
        assert!(
            script.contains(
                "exec /usr/bin/quorate lab chassis --dir /var/lib/quorate-lab worker2 \"$@\""
            ),
            "{script}"
        );
        let odd = chassis_script(Path::new("/opt/my bin/quorate"), &cfg, &node);
        assert!(
            odd.contains("exec '/opt/my bin/quorate' lab chassis"),
            "{odd}"
        );
    }

    #[test]
    fn passwords_are_random_hex() {
        let a = new_password().unwrap();
        let b = new_password().unwrap();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn chassis_reads_the_power_file_and_refuses_nonsense() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LabConfig {
            dir: dir.path().into(),
            ..LabConfig::default()
        };
        let node = cfg.node("worker1").unwrap();
        std::fs::create_dir_all(cfg.node_dir(&node)).unwrap();
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let get = chassis(&cfg, &node, &args(&["get", "power"]))
            .await
            .unwrap();
        assert_eq!(get, "power:0\n");
        std::fs::write(cfg.node_dir(&node).join("power"), "1\n").unwrap();
        let get = chassis(&cfg, &node, &args(&["get", "power", "boot"]))
            .await
            .unwrap();
        assert_eq!(get, "power:1\nboot:default\n");
        for bad in [&["get", "fan"][..], &["set", "power"], &["frob"], &[]] {
            assert!(chassis(&cfg, &node, &args(bad)).await.is_err(), "{bad:?}");
        }
        // Each `set` that reaches the BMC is logged with the state it found.
        std::fs::create_dir_all(cfg.bmc_dir(&node)).unwrap();
        chassis(&cfg, &node, &args(&["set", "boot", "pxe"]))
            .await
            .unwrap();
        let log = std::fs::read_to_string(chassis_log(&cfg, &node)).unwrap();
        assert!(log.ends_with(" set boot pxe (was on)\n"), "{log}");
        assert_eq!(log.lines().count(), 1, "{log}");
    }
}
