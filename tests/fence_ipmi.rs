//! The IPMI fence agent and the fence topology against real `ipmi_sim` BMCs, cross-checked
//! with `ipmitool`. Under `CI` a simulator that cannot start fails the test; elsewhere the
//! test is skipped with the reason printed.

mod support;

use std::io::Write;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use quorate::fence::ipmi::{Interface, IpmiAgent, IpmiConfig};
use quorate::fence::log::{HistoryEntry, OffEvidence};
use quorate::fence::ops::{confirm_off, fence_node, history};
use quorate::fence::topology::FenceResult;
use quorate::fence::{
    FenceAction, FenceAgent, FenceDevice, FenceError, FenceLog, FencePolicy, NodeTopology,
    PowerState, SystemClock,
};
use quorate::secret::SecretRef;
use quorate::state::StateStore;
use support::ipmi_sim::{IpmiSim, SimOptions, now_unix_ns};

/// Distinctive, so finding it anywhere is unambiguous. At most 16 bytes (IPMI 1.5).
const PASSWORD: &str = "Qz7+pw-9fK2xLmT";
const WRONG: &str = "Wr0ng-pw-Xy4Vb8";

/// Everything any test logs through `tracing`, at every level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .try_init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);
impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn start(opts: SimOptions) -> Option<IpmiSim> {
    captured_logs();
    IpmiSim::start_or_skip(&opts)
}

fn config(sim: &IpmiSim, password: &str) -> IpmiConfig {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("pw-{}", N.fetch_add(1, Ordering::Relaxed));
    let file = sim.secret_file(&name, password);
    let mut c = IpmiConfig::new(
        "127.0.0.1",
        support::ipmi_sim::USER,
        SecretRef::FromFile(file),
    );
    c.port = sim.port();
    c.power_wait = Duration::from_secs(3);
    c.timeout = Duration::from_secs(2);
    c
}

fn agent(sim: &IpmiSim, password: &str) -> IpmiAgent {
    IpmiAgent::new(config(sim, password)).unwrap()
}

fn device(name: &str, level: u32, delay: Duration, agent: IpmiAgent) -> FenceDevice {
    FenceDevice {
        name: name.into(),
        level,
        delay,
        agent: Box::new(agent),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_on_and_off() {
    let Some(sim) = start(SimOptions::new(PASSWORD)) else {
        return;
    };
    let a = agent(&sim, PASSWORD);
    assert_eq!(a.status().await.unwrap(), PowerState::On);
    sim.set_power(false);
    assert_eq!(a.status().await.unwrap(), PowerState::Off);
    assert!(
        sim.power_changes().is_empty(),
        "status must not change power"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_is_confirmed_and_ipmitool_agrees() {
    let Some(sim) = start(SimOptions::new(PASSWORD)) else {
        return;
    };
    assert_eq!(sim.ipmitool_power_is_on(PASSWORD), Some(true));
    assert_eq!(agent(&sim, PASSWORD).off().await.unwrap(), PowerState::Off);
    assert!(!sim.power_is_on());
    assert_eq!(sim.ipmitool_power_is_on(PASSWORD), Some(false));
    let changes = sim.power_changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(!changes[0].on);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_and_reboot_are_confirmed() {
    let mut opts = SimOptions::new(PASSWORD);
    opts.initially_on = false;
    let Some(sim) = start(opts) else { return };
    let a = agent(&sim, PASSWORD);
    assert_eq!(a.on().await.unwrap(), PowerState::On);
    assert_eq!(a.reboot().await.unwrap(), PowerState::On);
    let seen: Vec<bool> = sim.power_changes().iter().map(|c| c.on).collect();
    assert_eq!(seen, [true, false, true], "on, then reboot as off + on");
    assert_eq!(sim.ipmitool_power_is_on(PASSWORD), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_auth_error_and_changes_nothing() {
    let Some(sim) = start(SimOptions::new(PASSWORD)) else {
        return;
    };
    let err = agent(&sim, WRONG).off().await.unwrap_err();
    assert!(matches!(err, FenceError::Auth { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(sim.power_is_on());
    assert!(sim.power_changes().is_empty());
    assert_eq!(sim.ipmitool_power_is_on(PASSWORD), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_bmc_errors_within_its_timeout() {
    captured_logs();
    // A UDP port that swallows everything: nothing ever answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), PASSWORD).unwrap();
    let mut c = IpmiConfig::new("127.0.0.1", "admin", SecretRef::FromFile(pw.path().into()));
    c.port = silent.local_addr().unwrap().port();
    c.timeout = Duration::from_millis(400);
    let t = Instant::now();
    let err = IpmiAgent::new(c.clone()).unwrap().off().await.unwrap_err();
    let took = t.elapsed();
    assert!(matches!(err, FenceError::Timeout { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(400),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_millis(400) * 3, "took {took:?}");

    // A closed port: the ICMP error comes back at once.
    drop(silent);
    let err = IpmiAgent::new(c).unwrap().status().await.unwrap_err();
    assert!(
        matches!(
            err,
            FenceError::Unreachable { .. } | FenceError::Timeout { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmc_ignoring_power_off_is_a_failed_fence() {
    let mut opts = SimOptions::new(PASSWORD);
    opts.ignore_power_off = true;
    let Some(sim) = start(opts) else { return };
    let mut c = config(&sim, PASSWORD);
    c.power_wait = Duration::from_secs(1);
    let err = IpmiAgent::new(c).unwrap().off().await.unwrap_err();
    match &err {
        FenceError::NotConfirmed {
            wanted,
            still,
            after,
            ..
        } => {
            assert_eq!((*wanted, *still), (PowerState::Off, PowerState::On));
            assert!(*after >= Duration::from_secs(1));
        }
        other => panic!("expected NotConfirmed, got {other:?}"),
    }
    assert_eq!(sim.power_changes().len(), 1, "the BMC was asked");
    assert_eq!(sim.ipmitool_power_is_on(PASSWORD), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmi_1_5_is_refused_unless_allowed() {
    let Some(sim) = start(SimOptions::new(PASSWORD)) else {
        return;
    };
    let mut c = config(&sim, PASSWORD);
    c.interface = Interface::Lan;
    let err = IpmiAgent::new(c.clone()).unwrap_err();
    assert!(matches!(err, FenceError::InsecureRefused { .. }), "{err:?}");
    // Allowed, against a BMC offering MD5: ipmi-rs 0.6 cannot verify its replies.
    c.allow_insecure = true;
    let err = IpmiAgent::new(c).unwrap().status().await.unwrap_err();
    assert!(matches!(err, FenceError::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("MD5"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmi_1_5_works_when_allowed_with_straight_auth() {
    let mut opts = SimOptions::new(PASSWORD);
    opts.ipmi15_auths = "straight";
    let Some(sim) = start(opts) else { return };
    let mut c = config(&sim, PASSWORD);
    c.interface = Interface::Lan;
    c.allow_insecure = true;
    let a = IpmiAgent::new(c).unwrap();
    assert_eq!(a.off().await.unwrap(), PowerState::Off);
    assert_eq!(sim.ipmitool_power_is_on(PASSWORD), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_closed_so_many_operations_succeed() {
    let Some(sim) = start(SimOptions::new(PASSWORD)) else {
        return;
    };
    let a = agent(&sim, PASSWORD);
    // The simulated BMC holds at most 63 sessions at once.
    for i in 0..80 {
        let r = a.status().await;
        assert_eq!(r, Ok(PowerState::On), "status #{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_level_is_tried_when_the_first_fails() {
    let mut lying = SimOptions::new(PASSWORD);
    lying.ignore_power_off = true;
    let (Some(bad), Some(good)) = (start(lying), start(SimOptions::new(PASSWORD))) else {
        return;
    };
    let mut bad_cfg = config(&bad, PASSWORD);
    bad_cfg.power_wait = Duration::from_millis(500);
    let topo = NodeTopology {
        node: "node2".into(),
        devices: vec![
            device("psu-good", 2, Duration::ZERO, agent(&good, PASSWORD)),
            device(
                "bmc-lying",
                1,
                Duration::ZERO,
                IpmiAgent::new(bad_cfg).unwrap(),
            ),
        ],
    };
    let policy = FencePolicy {
        timeout: Duration::from_secs(20),
        max_tries: 2,
        backoff_first: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
    };
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let report = fence_node(&topo, FenceAction::Off, &policy, &SystemClock, &store).await;
    assert_eq!(
        report.result,
        FenceResult::Confirmed {
            level: 2,
            state: PowerState::Off
        },
        "{report}"
    );
    let tried: Vec<(u32, &str, bool)> = report
        .attempts
        .iter()
        .map(|a| (a.level, a.device.as_str(), a.result.is_ok()))
        .collect();
    assert_eq!(
        tried,
        [
            (1, "bmc-lying", false),
            (1, "bmc-lying", false),
            (2, "psu-good", true)
        ]
    );
    assert_eq!(
        report.attempts[0].result.as_ref().unwrap_err().kind,
        "not-confirmed"
    );
    assert!(bad.power_is_on() && !good.power_is_on());
    assert_eq!(good.ipmitool_power_is_on(PASSWORD), Some(false));

    // Recorded durably: three attempts and the outcome, and the node counts as fenced.
    let h = store.history(Some("node2")).await.unwrap();
    assert_eq!(
        h.iter()
            .filter(|e| matches!(e, HistoryEntry::Attempt(_)))
            .count(),
        3
    );
    assert!(matches!(
        store.off_evidence("node2").await.unwrap(),
        Some(OffEvidence::Fenced { level: 2, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delay_is_honoured_before_fencing() {
    let Some(sim) = start(SimOptions::new(PASSWORD)) else {
        return;
    };
    let delay = Duration::from_millis(1500);
    let topo = NodeTopology {
        node: "node1".into(),
        devices: vec![device("bmc", 1, delay, agent(&sim, PASSWORD))],
    };
    let log = quorate::fence::MemoryFenceLog::new();
    let before = now_unix_ns();
    let report = fence_node(
        &topo,
        FenceAction::Off,
        &FencePolicy::default(),
        &SystemClock,
        &log,
    )
    .await;
    assert!(report.succeeded(), "{report}");
    let changes = sim.power_changes();
    assert_eq!(changes.len(), 1);
    assert!(
        changes[0].at_unix_ns >= before + delay.as_nanos(),
        "power went off {} ms after the run started",
        (changes[0].at_unix_ns - before) / 1_000_000
    );
    assert!(report.attempts[0].started_unix_ms >= report.started_unix_ms + 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_nowhere() {
    let Some(sim) = start(SimOptions::new(PASSWORD)) else {
        return;
    };
    let logs = captured_logs();
    let topo = NodeTopology {
        node: "node3".into(),
        devices: vec![
            device("wrong-pw", 1, Duration::ZERO, agent(&sim, WRONG)),
            device("right-pw", 2, Duration::ZERO, agent(&sim, PASSWORD)),
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("state")).unwrap();
    let policy = FencePolicy::default();
    let report = fence_node(&topo, FenceAction::Off, &policy, &SystemClock, &store).await;
    assert!(report.succeeded(), "{report}");
    let status = fence_node(&topo, FenceAction::Status, &policy, &SystemClock, &store).await;
    confirm_off(
        &store,
        &SystemClock,
        "node3",
        Some("tester"),
        Some("checked"),
    )
    .await
    .unwrap();
    let hist = history(&store, None).await.unwrap();
    let err = agent(&sim, WRONG).status().await.unwrap_err();

    let mut printed = vec![
        report.to_string(),
        format!("{report:?}"),
        status.to_string(),
        format!("{status:?}"),
        hist.to_string(),
        format!("{hist:?}"),
        err.to_string(),
        format!("{err:?}"),
        format!("{topo:?}"),
        format!("{:?}", config(&sim, PASSWORD)),
        format!("{:?}", agent(&sim, PASSWORD)),
    ];
    assert!(
        printed[0].contains("wrong-pw") && printed[0].contains("auth"),
        "{}",
        printed[0]
    );
    drop(store);
    for f in std::fs::read_dir(dir.path().join("state")).unwrap() {
        printed.push(String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap()).into());
    }
    printed.push(String::from_utf8_lossy(&logs.lock().unwrap()).into());
    assert!(
        printed.last().unwrap().contains("node3"),
        "logs were captured"
    );
    for text in &printed {
        for secret in [PASSWORD, WRONG] {
            assert!(!text.contains(secret), "secret leaked into: {text}");
        }
    }
}
