//! The repository's `specs/` is the default lab's spec set: exactly what `quorate lab
//! specs --nodes 3` writes (and `lab up` commits). Regenerate it with
//! `quorate lab specs --out specs` after changing `src/lab/specs.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn quorate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
}

fn files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn the_specs_directory_equals_the_default_lab_specs() {
    let out = tempfile::tempdir().unwrap();
    let status = quorate()
        .args(["lab", "specs", "--nodes", "3", "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let generated = files(out.path());
    let committed = files(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("specs"));
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "specs/ holds other files than the lab's; run `quorate lab specs --out specs`"
    );
    for (name, text) in &generated {
        assert!(
            committed[name] == *text,
            "specs/{name} differs from what `quorate lab specs` writes; run \
             `quorate lab specs --out specs` and review the diff"
        );
    }
}

#[test]
fn lab_specs_follow_the_shape_asked_for() {
    let out = tempfile::tempdir().unwrap();
    let status = quorate()
        .args([
            "lab",
            "specs",
            "--nodes",
            "5",
            "--name",
            "other",
            "--subnet",
            "10.1.2.0/24",
            "--dir",
            "/srv/lab",
            "--out",
        ])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let all: String = files(out.path()).into_values().collect();
    assert!(
        all.contains("runtime: podman+tcp://10.1.2.15:8080"),
        "{all}"
    );
    assert!(all.contains("address: 127.1.2.15"));
    assert!(all.contains("fromFile: /srv/lab/secrets/bmc-password"));
    assert!(all.contains("  name: other\n"));
    assert_eq!(all.matches("kind: Fence").count(), 5);
    let valid = quorate().arg("validate").arg(out.path()).output().unwrap();
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stdout)
    );
    let bad = quorate()
        .args(["lab", "specs", "--name", "Bad-Name", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lab name `Bad-Name`"));
}
