//! A real BMC for tests: `ipmi_sim` (OpenIPMI) with its own config in a temp dir, on a
//! free UDP port, with a chassis_control script that keeps the power state in a file and
//! logs every power change with a timestamp. Killed on drop.

use std::fs;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// The BMC user the simulator knows.
pub const USER: &str = "admin";

/// How the simulated BMC behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The password of [`USER`] (at most 16 bytes: the simulator also speaks IPMI 1.5).
    pub password: String,
    /// Power state at start.
    pub initially_on: bool,
    /// A lying BMC: accepts power off but keeps the power on (and reports it on).
    pub ignore_power_off: bool,
    /// The IPMI 1.5 authentication types the BMC allows (`none md2 md5 straight`).
    pub ipmi15_auths: &'static str,
}

impl SimOptions {
    /// An honest BMC, powered on, with `password`.
    pub fn new(password: &str) -> Self {
        SimOptions {
            password: password.to_string(),
            initially_on: true,
            ignore_power_off: false,
            ipmi15_auths: "none md2 md5 straight",
        }
    }
}

/// A power change the chassis script was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerChange {
    /// When the script ran (Unix ns).
    pub at_unix_ns: u128,
    /// Whether it was asked to power on.
    pub on: bool,
}

/// A running `ipmi_sim`.
pub struct IpmiSim {
    child: Child,
    dir: TempDir,
    port: u16,
}

/// Nanoseconds since the Unix epoch, comparable with [`PowerChange::at_unix_ns`].
pub fn now_unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn free_udp_port() -> std::io::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn chassis_script(dir: &Path, ignore_power_off: bool) -> String {
    let set_power = if ignore_power_off {
        r#"[ "$2" = 1 ] && echo 1 > "$dir/power""#
    } else {
        r#"echo "$2" > "$dir/power""#
    };
    format!(
        r#"#!/bin/sh
# chassis_control for ipmi_sim: the power state lives in $dir/power.
dir='{dir}'
case "$1" in
get)
    shift
    for item in "$@"; do
        case "$item" in
        power) echo "power:$(cat "$dir/power")" ;;
        esac
    done ;;
set)
    shift
    while [ $# -ge 2 ]; do
        case "$1" in
        power) echo "$(date +%s%N) $2" >> "$dir/power.log"; {set_power} ;;
        esac
        shift 2
    done ;;
esac
exit 0
"#,
        dir = dir.display()
    )
}

/// Sends an RMCP presence ping and waits for the pong.
fn rmcp_ping(port: u16, wait: Duration) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    if sock.set_read_timeout(Some(wait)).is_err() || sock.connect(("127.0.0.1", port)).is_err() {
        return false;
    }
    // RMCP header (v1.0, no ack, class ASF), ASF IANA 4542, Presence Ping, tag 0x42.
    let ping = [
        0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x80, 0x42, 0x00, 0x00,
    ];
    if sock.send(&ping).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(sock.recv(&mut buf), Ok(n) if n >= 9 && buf[8] == 0x40)
}

impl IpmiSim {
    /// Starts a simulator and waits until it answers an RMCP ping.
    pub fn start(opts: &SimOptions) -> Result<IpmiSim, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(opts) {
                Ok(sim) => return Ok(sim),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts a simulator, or skips (prints why) or fails under CI.
    pub fn start_or_skip(opts: &SimOptions) -> Option<IpmiSim> {
        match Self::start(opts) {
            Ok(sim) => Some(sim),
            Err(why) => super::unavailable("ipmi_sim", &why),
        }
    }

    fn try_start(opts: &SimOptions) -> Result<IpmiSim, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let d = dir.path();
        let port = free_udp_port().map_err(|e| format!("free port: {e}"))?;
        let write = |name: &str, text: &str| {
            fs::write(d.join(name), text).map_err(|e| format!("write {name}: {e}"))
        };
        write("power", if opts.initially_on { "1\n" } else { "0\n" })?;
        write("power.log", "")?;
        write("chassis.sh", &chassis_script(d, opts.ignore_power_off))?;
        fs::set_permissions(d.join("chassis.sh"), fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod: {e}"))?;
        write(
            "lan.conf",
            &format!(
                r#"name "quorate-test"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback {auths}
    allowed_auths_user {auths}
    allowed_auths_operator {auths}
    allowed_auths_admin {auths}
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{chassis}"
  user 2 true "{USER}" "{password}" admin 10 {auths}
"#,
                chassis = d.join("chassis.sh").display(),
                password = opts.password,
                auths = opts.ipmi15_auths,
            ),
        )?;
        write(
            "sim.emu",
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
             mc_enable 0x20\n",
        )?;
        fs::create_dir(d.join("state")).map_err(|e| format!("state dir: {e}"))?;
        let log = fs::File::create(d.join("sim.log")).map_err(|e| format!("log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(d.join("lan.conf"))
            .arg("-f")
            .arg(d.join("sim.emu"))
            .arg("-s")
            .arg(d.join("state"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot run ipmi_sim: {e}"))?;
        let mut sim = IpmiSim { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = sim.child.try_wait() {
                return Err(format!("ipmi_sim exited ({status}): {}", sim.sim_log()));
            }
            if rmcp_ping(port, Duration::from_millis(200)) {
                return Ok(sim);
            }
        }
        Err(format!(
            "ipmi_sim did not answer on port {port}: {}",
            sim.sim_log()
        ))
    }

    /// The simulator's output so far.
    pub fn sim_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sim.log")).unwrap_or_default()
    }

    /// The UDP port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir holding its config and state.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `content` into a file in the temp dir (mode 0600) and returns its path.
    pub fn secret_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// The power state as the chassis script keeps it (not through IPMI).
    pub fn power_is_on(&self) -> bool {
        fs::read_to_string(self.dir.path().join("power"))
            .map(|s| s.trim() == "1")
            .unwrap_or(false)
    }

    /// Sets the power state directly (not through IPMI).
    pub fn set_power(&self, on: bool) {
        fs::write(
            self.dir.path().join("power"),
            if on { "1\n" } else { "0\n" },
        )
        .unwrap();
    }

    /// Every power change the script was asked for, in order.
    pub fn power_changes(&self) -> Vec<PowerChange> {
        fs::read_to_string(self.dir.path().join("power.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (at, v) = l.split_once(' ')?;
                Some(PowerChange {
                    at_unix_ns: at.parse().ok()?,
                    on: v.trim() == "1",
                })
            })
            .collect()
    }

    /// Runs `ipmitool -I lanplus -C 3` against the simulator with `password`.
    pub fn ipmitool(&self, password: &str, args: &[&str]) -> Output {
        let port = self.port.to_string();
        Command::new("ipmitool")
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port])
            .args(["-U", USER, "-P", password])
            .args(args)
            .output()
            .expect("run ipmitool")
    }

    /// `ipmitool chassis power status`, as an independent client: `Some(true)` for on.
    pub fn ipmitool_power_is_on(&self, password: &str) -> Option<bool> {
        let out = self.ipmitool(password, &["chassis", "power", "status"]);
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return None;
        }
        if text.contains("Power is on") {
            Some(true)
        } else if text.contains("Power is off") {
            Some(false)
        } else {
            None
        }
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
