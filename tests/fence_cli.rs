//! `quorate fence` as an operator runs it: the binary, spec files on disk, real `ipmi_sim`
//! BMCs cross-checked with `ipmitool`, and the SQLite state directory. Under `CI` a
//! simulator that cannot start fails the test; elsewhere the test is skipped with the
//! reason printed.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::ipmi_sim::{IpmiSim, SimOptions};
use tempfile::TempDir;

/// Distinctive, so finding it anywhere is unambiguous. At most 16 bytes (IPMI 1.5).
const PASSWORD: &str = "Cl1-pw+7Hq3zRt9";
const WRONG: &str = "Cl1-wr0ng-K8s2V";
/// The variable the specs name for the password (the default secret policy allows the
/// `QUORATE_SECRET_` prefix).
const PW_VAR: &str = "QUORATE_SECRET_TEST_BMC_PASSWORD";

/// One Fence document of worker1.
struct Device<'a> {
    name: &'a str,
    level: u32,
    port: u16,
    /// The YAML of `password:`.
    password: String,
    power_wait: &'a str,
    /// The YAML of `delay:`.
    delay: &'a str,
}

impl<'a> Device<'a> {
    fn env(name: &'a str, level: u32, sim: &IpmiSim) -> Self {
        Device {
            name,
            level,
            port: sim.port(),
            password: format!("{{fromEnv: {PW_VAR}}}"),
            power_wait: "3s",
            delay: "0s",
        }
    }
}

/// A spec directory (one node, `worker1`, and its devices) and a state directory.
struct Lab {
    dir: TempDir,
}

impl Lab {
    fn new(devices: &[Device]) -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().unwrap(),
        };
        lab.write_specs(devices);
        lab
    }

    fn write_specs(&self, devices: &[Device]) {
        let specs = self.specs();
        std::fs::create_dir_all(&specs).unwrap();
        let mut text = String::from(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: lab}\nspec:\n  \
             nodes:\n    - {name: worker1, runtime: \"podman+unix:///run/worker1.sock\"}\n  \
             fencing: {timeout: 30s}\n",
        );
        for d in devices {
            text.push_str(&format!(
                "---\napiVersion: quorate.io/v1alpha1\nkind: Fence\nmetadata: {{name: {}}}\n\
                 spec:\n  targets: [worker1]\n  level: {}\n  powerWait: {}\n  delay: {}\n  ipmi:\n    \
                 address: 127.0.0.1\n    port: {}\n    username: {}\n    password: {}\n",
                d.name,
                d.level,
                d.power_wait,
                d.delay,
                d.port,
                support::ipmi_sim::USER,
                d.password
            ));
        }
        std::fs::write(specs.join("cluster.yaml"), text).unwrap();
    }

    fn specs(&self) -> PathBuf {
        self.dir.path().join("specs")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `quorate fence ARGS --specs .. --state-dir ..` (the flags appended only to the
    /// forms that take them), with the BMC password in the environment.
    fn fence(&self, args: &[&str]) -> Output {
        let mut cmd = support::quorate_cmd();
        cmd.arg("fence").args(args);
        if args.first() != Some(&"history") {
            cmd.arg("--specs").arg(self.specs());
        }
        cmd.arg("--state-dir").arg(self.state());
        run_bounded(cmd.env(PW_VAR, PASSWORD))
    }
}

/// Runs `cmd`, failing the test if it does not finish within 60 s (a hang).
fn run_bounded(cmd: &mut Command) -> Output {
    support::run_bounded(cmd, Duration::from_secs(60))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn both(o: &Output) -> String {
    format!("--- stdout\n{}--- stderr\n{}", stdout(o), stderr(o))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn history_json(lab: &Lab) -> Vec<serde_json::Value> {
    let out = lab.fence(&["history", "--node", "worker1", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", both(&out)))
}

#[test]
fn off_is_confirmed_recorded_and_ipmitool_agrees() {
    let Some(sim) = IpmiSim::start_or_skip(&SimOptions::new(PASSWORD)) else {
        return;
    };
    let lab = Lab::new(&[Device::env("bmc-worker1", 1, &sim)]);
    assert_eq!(sim.ipmitool_power_is_on(PASSWORD), Some(true));

    let out = lab.fence(&["worker1", "--action", "off"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "level 1 bmc-worker1: ipmi lanplus 127.0.0.1:{} user admin",
            sim.port()
        )),
        "{text}"
    );
    assert!(text.contains("level 1 bmc-worker1 try 1"), "{text}");
    assert!(
        text.contains("result: worker1 is confirmed off (level 1)"),
        "{text}"
    );
    assert_eq!(sim.ipmitool_power_is_on(PASSWORD), Some(false));
    let changes = sim.power_changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(!changes[0].on);

    let h = history_json(&lab);
    let outcome = h.iter().find(|e| e["type"] == "outcome").expect("outcome");
    assert_eq!(outcome["succeeded"], true, "{h:?}");
    assert_eq!(outcome["level"], 1);
    assert_eq!(outcome["action"], "off");
    let attempt = h.iter().find(|e| e["type"] == "attempt").expect("attempt");
    assert_eq!(attempt["powerState"], "off");
    assert_eq!(attempt["device"], "bmc-worker1");
}

#[test]
fn wrong_password_fails_and_is_never_printed_or_stored() {
    let Some(sim) = IpmiSim::start_or_skip(&SimOptions::new(PASSWORD)) else {
        return;
    };
    let file = sim.secret_file("wrong", WRONG);
    let lab = Lab::new(&[Device {
        password: format!("{{fromFile: {}}}", file.display()),
        ..Device::env("bmc-worker1", 1, &sim)
    }]);
    let mut cmd = support::quorate_cmd();
    cmd.arg("fence")
        .args(["worker1", "--action", "off", "--specs"])
        .arg(lab.specs())
        .arg("--state-dir")
        .arg(lab.state())
        .arg("--secrets-dir")
        .arg(sim.dir())
        .env("RUST_LOG", "trace")
        .env(PW_VAR, PASSWORD);
    let out = run_bounded(&mut cmd);
    assert_eq!(code(&out), 1, "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("failed [auth]"), "{text}");
    assert!(text.contains("result: FAILED"), "{text}");
    // Logs were on at trace (quorate says so; other crates log at most info).
    assert!(
        stderr(&out).contains("other crates at most INFO") && stderr(&out).contains("filter=trace"),
        "trace logs were on: {}",
        both(&out)
    );
    assert!(sim.power_changes().is_empty());
    assert_eq!(sim.ipmitool_power_is_on(PASSWORD), Some(true));

    let mut printed = vec![both(&out)];
    for f in std::fs::read_dir(lab.state()).unwrap() {
        printed.push(String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap()).into());
    }
    let listed = lab.fence(&["history"]);
    assert!(stdout(&listed).contains("[auth]"), "{}", both(&listed));
    printed.push(both(&listed));
    for text in &printed {
        for secret in [PASSWORD, WRONG] {
            assert!(!text.contains(secret), "secret leaked into: {text}");
        }
    }
}

#[test]
fn status_reports_the_power_state_and_changes_nothing() {
    let Some(sim) = IpmiSim::start_or_skip(&SimOptions::new(PASSWORD)) else {
        return;
    };
    let lab = Lab::new(&[Device::env("bmc-worker1", 1, &sim)]);
    let out = lab.fence(&["worker1", "--action", "status"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(
        stdout(&out).contains("result: worker1 is on"),
        "{}",
        both(&out)
    );
    sim.set_power(false);
    let out = lab.fence(&["--action", "status", "worker1"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(
        stdout(&out).contains("result: worker1 is off"),
        "{}",
        both(&out)
    );
    assert!(sim.power_changes().is_empty(), "status changed the power");
    assert!(!lab.state().exists(), "status recorded something");
}

#[test]
fn confirm_and_history_show_who_and_when() {
    // No BMC is contacted: the device only has to be valid.
    let lab = Lab::new(&[Device {
        name: "bmc-worker1",
        level: 1,
        port: 9,
        password: format!("{{fromEnv: {PW_VAR}}}"),
        power_wait: "20s",
        delay: "0s",
    }]);
    let before = now_ms();
    let out = lab.fence(&[
        "confirm",
        "worker1",
        "--by",
        "alice",
        "--note",
        "power cords pulled",
    ]);
    let after = now_ms();
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(
        stdout(&out).contains("recorded: worker1 confirmed off by hand by alice at 20"),
        "{}",
        both(&out)
    );
    assert!(stderr(&out).contains("treats worker1 as fenced"));

    let out = lab.fence(&["history", "--node", "worker1"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let line = stdout(&out);
    assert!(
        line.contains("Z worker1 confirmed off by hand by alice: power cords pulled"),
        "{line}"
    );
    let h = history_json(&lab);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["type"], "manual");
    assert_eq!(h[0]["by"], "alice");
    assert_eq!(h[0]["note"], "power cords pulled");
    let at = h[0]["atUnixMs"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&at),
        "{before} <= {at} <= {after}"
    );

    // A node the specs do not know is refused and nothing is recorded.
    let out = lab.fence(&["confirm", "worker9", "--by", "bob"]);
    assert_eq!(code(&out), 1, "{}", both(&out));
    assert!(stderr(&out).contains("no node `worker9`"), "{}", both(&out));
    let all = lab.fence(&["history", "--format", "json"]);
    let all: Vec<serde_json::Value> = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(all.len(), 1);
}

#[test]
fn the_second_level_is_used_when_the_first_cannot_confirm() {
    let mut lying = SimOptions::new(PASSWORD);
    lying.ignore_power_off = true;
    let (Some(bad), Some(good)) = (
        IpmiSim::start_or_skip(&lying),
        IpmiSim::start_or_skip(&SimOptions::new(PASSWORD)),
    ) else {
        return;
    };
    let lab = Lab::new(&[
        Device {
            power_wait: "1s",
            ..Device::env("bmc-lying", 1, &bad)
        },
        Device::env("pdu-good", 2, &good),
    ]);
    let out = lab.fence(&["worker1", "--action", "off"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let text = stdout(&out);
    assert!(
        text.contains("level 1 bmc-lying try 1") && text.contains("failed [not-confirmed]"),
        "{text}"
    );
    assert!(
        text.contains("result: worker1 is confirmed off (level 2)"),
        "{text}"
    );
    assert_eq!(bad.ipmitool_power_is_on(PASSWORD), Some(true));
    assert_eq!(good.ipmitool_power_is_on(PASSWORD), Some(false));
    let h = history_json(&lab);
    let levels: Vec<(i64, bool)> = h
        .iter()
        .filter(|e| e["type"] == "attempt")
        .map(|e| (e["level"].as_i64().unwrap(), e["powerState"] == "off"))
        .collect();
    assert_eq!(levels.last(), Some(&(2, true)), "{h:?}");
    assert!(
        levels[..levels.len() - 1]
            .iter()
            .all(|&(l, ok)| l == 1 && !ok)
    );
}

#[test]
fn refusals_exit_1_before_any_power_command() {
    let Some(sim) = IpmiSim::start_or_skip(&SimOptions::new(PASSWORD)) else {
        return;
    };
    let lab = Lab::new(&[Device::env("bmc-worker1", 1, &sim)]);

    // The state directory is a file: exit 1, and the BMC was not asked.
    std::fs::write(lab.state(), "not a directory").unwrap();
    let out = lab.fence(&["worker1", "--action", "off"]);
    assert_eq!(code(&out), 1, "{}", both(&out));
    assert!(stderr(&out).contains("state directory"), "{}", both(&out));
    std::fs::remove_file(lab.state()).unwrap();

    // An unknown node, and a subcommand name after a flag read as a node: exit 1.
    for args in [
        &["worker9", "--action", "off"][..],
        &["--action", "off", "confirm"][..],
    ] {
        let out = lab.fence(args);
        assert_eq!(code(&out), 1, "{args:?}: {}", both(&out));
        assert!(stderr(&out).contains("has no node"), "{}", both(&out));
    }

    // Bad flags, a missing specs path, a missing history: exit 1 (2 means changes).
    assert_eq!(code(&lab.fence(&["worker1", "--action", "cycle"])), 1);
    assert_eq!(code(&lab.fence(&["confirm"])), 1);
    let mut cmd = support::quorate_cmd();
    cmd.args([
        "fence",
        "worker1",
        "--action",
        "off",
        "--specs",
        "/nonexistent/specs",
    ]);
    assert_eq!(code(&run_bounded(&mut cmd)), 1);
    let out = lab.fence(&["history"]);
    assert_eq!(code(&out), 1, "{}", both(&out));
    assert!(stderr(&out).contains("no state database"), "{}", both(&out));

    // Invalid specs (an inline password): the diagnostics, exit 1, the value masked.
    let inline = Device {
        password: "hunter2-inline".into(),
        ..Device::env("bmc-worker1", 1, &sim)
    };
    lab.write_specs(&[inline]);
    let out = lab.fence(&["worker1", "--action", "off"]);
    assert_eq!(code(&out), 1, "{}", both(&out));
    assert!(
        stderr(&out).contains("quorate::secret::inline"),
        "{}",
        both(&out)
    );
    assert!(!both(&out).contains("hunter2-inline"), "{}", both(&out));

    assert!(sim.power_changes().is_empty(), "a refused command powered");
    assert_eq!(sim.ipmitool_power_is_on(PASSWORD), Some(true));
}

/// The default state directory is the one constant; `--help` shows it.
#[test]
fn help_names_the_default_state_dir_and_exit_codes() {
    let out = run_bounded(support::quorate_cmd().args(["fence", "--help"]));
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(text.contains(quorate::state::DEFAULT_DIR), "{text}");
    assert!(text.contains("Exit codes"), "{text}");
    assert!(Path::new(quorate::state::DEFAULT_DIR).is_absolute());
}

/// Each try is printed when it ends, not with the result: the failed first level is on
/// stdout while the second level still waits out its delay.
#[test]
fn each_try_is_printed_as_it_ends() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::Instant;
    let mut lying = SimOptions::new(PASSWORD);
    lying.ignore_power_off = true;
    let (Some(bad), Some(good)) = (
        IpmiSim::start_or_skip(&lying),
        IpmiSim::start_or_skip(&SimOptions::new(PASSWORD)),
    ) else {
        return;
    };
    let lab = Lab::new(&[
        Device {
            power_wait: "1s",
            ..Device::env("bmc-lying", 1, &bad)
        },
        Device {
            delay: "4s",
            ..Device::env("pdu-good", 2, &good)
        },
    ]);
    let mut child = support::quorate_cmd()
        .args(["fence", "worker1", "--action", "off", "--specs"])
        .arg(lab.specs())
        .arg("--state-dir")
        .arg(lab.state())
        .env(PW_VAR, PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        lines.push((Instant::now(), line.unwrap()));
    }
    let ended = Instant::now();
    assert!(child.wait().unwrap().success(), "{lines:?}");
    let first_try = lines
        .iter()
        .find(|(_, l)| l.contains("level 1 bmc-lying try 1"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        ended - first_try.0 >= Duration::from_secs(3),
        "the first try was printed only {:?} before the end: {lines:?}",
        ended - first_try.0
    );
    let result = lines
        .iter()
        .position(|(_, l)| l.contains("result: worker1 is confirmed off (level 2)"));
    let attempt = lines
        .iter()
        .position(|(_, l)| l.contains("level 2 pdu-good try 1"));
    assert!(attempt.is_some() && attempt < result, "{lines:?}");
    let tries = lines
        .iter()
        .filter(|(_, l)| l.contains("bmc-lying try 1"))
        .count();
    assert_eq!(
        tries, 1,
        "printed once, not again with the result: {lines:?}"
    );
}
