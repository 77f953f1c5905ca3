//! A `quorate lab` for tests: brought up by the real command under a name and subnet of
//! its own (so parallel test binaries and a user's lab do not clash), removed by
//! `quorate lab down` on drop, also when the test panics.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use quorate::lab::Lab;
use tempfile::TempDir;

/// A lab that is up; `lab down` runs on drop.
pub struct TestLab {
    /// The lab, as its `lab.json` records it.
    pub lab: Lab,
    /// Its directory.
    pub dir: PathBuf,
    /// Its name (`qt<slot>`), also the cluster's name in its specs.
    pub name: String,
    /// Its data subnet (`10.77.<slot>.0/24`).
    pub subnet: String,
    _tmp: TempDir,
}

/// Runs the quorate binary under test.
pub fn quorate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .output()
        .expect("run quorate")
}

/// stdout then stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A slot for a lab of this process: `(slot, name qt<slot>, subnet 10.77.<slot>.0/24)`,
/// with BMCs on `127.77.<slot>.x`. Each call gives another slot (up to 150 per process).
pub fn fresh_slot() -> (u8, String, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let slot = 100 + (std::process::id() + n * 37) % 150;
    let slot = u8::try_from(slot).expect("slot below 250");
    (slot, format!("qt{slot}"), format!("10.77.{slot}.0/24"))
}

impl TestLab {
    /// Brings up a lab of `nodes` nodes, or skips (`None`, printing why) / fails under
    /// `CI` when it cannot (not root, a program missing, ...).
    pub fn up(nodes: u32) -> Option<TestLab> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return super::unavailable("quorate lab", "it needs root");
        }
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut last = String::new();
        for _ in 0..5 {
            let (slot, name, subnet) = fresh_slot();
            let dir = tmp.path().join(format!("lab{slot}"));
            let d = dir.to_string_lossy().into_owned();
            let nodes = nodes.to_string();
            let out = quorate(&[
                "lab", "up", "--nodes", &nodes, "--dir", &d, "--name", &name, "--subnet", &subnet,
            ]);
            if out.status.success() {
                let lab = Lab::open(&dir).expect("lab.json after lab up");
                return Some(TestLab {
                    lab,
                    dir,
                    name,
                    subnet,
                    _tmp: tmp,
                });
            }
            last = text(&out);
            // Another lab holds this name or subnet: try another slot.
            if !last.contains("another lab") {
                break;
            }
        }
        super::unavailable("quorate lab up", last)
    }

    /// The directory as a string, for `--dir`.
    pub fn d(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// Runs `quorate lab <args> --dir <dir>`.
    pub fn cmd(&self, args: &[&str]) -> Output {
        let d = self.d();
        let mut all: Vec<&str> = vec!["lab"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--dir", &d]);
        quorate(&all)
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let out = self.cmd(&["down"]);
        if !out.status.success() {
            eprintln!("lab down failed: {}", text(&out));
        }
    }
}
