//! Time from "fence off" to "confirmed off" against one `ipmi_sim`, beside `ipmitool chassis
//! power off` followed by `ipmitool chassis power status`, interleaved in the same run. The
//! `quorate fence` process (start, read and validate the specs, fence, record in SQLite) is
//! measured the same way, as the operator's peer of the two `ipmitool` processes.
//!
//! Run: `cargo bench --bench fence` (`QUORATE_BENCH_N` sets the iterations, default 50).
//! The node is powered on again (in the simulator's state file) before every iteration.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use quorate::fence::ipmi::{IpmiAgent, IpmiConfig};
use quorate::fence::ops::fence_node;
use quorate::fence::{
    FenceAction, FenceAgent, FenceDevice, FencePolicy, NodeTopology, PowerState, SystemClock,
};
use quorate::secret::SecretRef;
use quorate::state::StateStore;
use support::ipmi_sim::{IpmiSim, SimOptions, USER};

const PASSWORD: &str = "bench-pw-1234";

fn ipmitool(sim: &IpmiSim, args: &[&str]) -> String {
    let port = sim.port().to_string();
    let out = Command::new("ipmitool")
        .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", &port])
        .args(["-U", USER, "-P", PASSWORD])
        .args(args)
        .output()
        .expect("run ipmitool");
    assert!(out.status.success(), "ipmitool {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ipmitool chassis power off`, then `status` until it reports off.
fn ipmitool_off(sim: &IpmiSim) {
    ipmitool(sim, &["chassis", "power", "off"]);
    for _ in 0..50 {
        if ipmitool(sim, &["chassis", "power", "status"]).contains("Power is off") {
            return;
        }
    }
    panic!("ipmitool never saw power off");
}

/// A spec set with one node, `bench`, fenced by the simulator.
fn specs(sim: &IpmiSim, dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("specs dir");
    let text = format!(
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {{name: bench}}\nspec:\n  \
         nodes:\n    - {{name: bench, runtime: \"podman+unix:///run/bench.sock\"}}\n---\n\
         apiVersion: quorate.io/v1alpha1\nkind: Fence\nmetadata: {{name: bmc}}\nspec:\n  \
         targets: [bench]\n  ipmi: {{address: 127.0.0.1, port: {}, username: {USER}, \
         password: {{fromFile: {}}}}}\n",
        sim.port(),
        sim.secret_file("cli-pw", PASSWORD).display()
    );
    std::fs::write(dir.join("cluster.yaml"), text).expect("write specs");
    dir.to_path_buf()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p90(v: &mut [Duration]) -> Duration {
    v.sort();
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

fn main() {
    let n: usize = std::env::var("QUORATE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let Some(sim) = IpmiSim::start_or_skip(&SimOptions::new(PASSWORD)) else {
        return;
    };
    let pw = sim.secret_file("pw", PASSWORD);
    let mut config = IpmiConfig::new("127.0.0.1", USER, SecretRef::FromFile(pw));
    config.port = sim.port();
    let agent = IpmiAgent::new(config.clone()).expect("config");
    let topology = NodeTopology {
        node: "bench".into(),
        devices: vec![FenceDevice {
            name: "bmc".into(),
            level: 1,
            delay: Duration::ZERO,
            agent: Box::new(IpmiAgent::new(config).expect("config")),
        }],
    };
    let state_dir = tempfile::tempdir().expect("temp dir");
    let store = StateStore::open(state_dir.path()).expect("state store");
    let specs = specs(&sim, &state_dir.path().join("specs"));
    let cli_state = state_dir.path().join("cli-state");
    let policy = FencePolicy::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let (mut agent_t, mut fence_t, mut tool_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut cli_t = Vec::new();
    for i in 0..n + 3 {
        sim.set_power(true);
        let t = Instant::now();
        let state = rt.block_on(agent.off()).expect("agent off");
        let d_agent = t.elapsed();
        assert_eq!(state, PowerState::Off);
        assert!(!sim.power_is_on());

        sim.set_power(true);
        let t = Instant::now();
        let report = rt.block_on(fence_node(
            &topology,
            FenceAction::Off,
            &policy,
            &SystemClock,
            &store,
        ));
        let d_fence = t.elapsed();
        assert!(report.succeeded(), "{report}");
        assert!(!sim.power_is_on());

        sim.set_power(true);
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_quorate"))
            .args(["fence", "bench", "--action", "off", "--specs"])
            .arg(&specs)
            .arg("--state-dir")
            .arg(&cli_state)
            .arg("--secrets-dir")
            .arg(sim.dir())
            .output()
            .expect("run quorate");
        let d_cli = t.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!sim.power_is_on());

        sim.set_power(true);
        let t = Instant::now();
        ipmitool_off(&sim);
        let d_tool = t.elapsed();
        assert!(!sim.power_is_on());

        if i >= 3 {
            agent_t.push(d_agent);
            fence_t.push(d_fence);
            cli_t.push(d_cli);
            tool_t.push(d_tool);
        }
    }

    let tool = median(&mut tool_t);
    println!("fence off -> confirmed off against ipmi_sim, {n} iterations (after 3 warm-up)");
    for (name, v) in [
        ("quorate IpmiAgent::off", &mut agent_t),
        ("quorate fence_node(off) + SQLite record", &mut fence_t),
        ("`quorate fence bench --action off` process", &mut cli_t),
        ("ipmitool power off + power status", &mut tool_t),
    ] {
        let m = median(v);
        println!(
            "  {name:<42} median {:>8.2?}  p90 {:>8.2?}  ratio to ipmitool {:.2}",
            m,
            p90(v),
            m.as_secs_f64() / tool.as_secs_f64()
        );
    }
}
