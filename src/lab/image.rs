//! The lab's container image, [`IMAGE`]: the host's statically linked busybox
//! (Debian package busybox-static) with its applets, a page in `/www`, imported into
//! every node's Podman (there is no registry to pull from).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LabError;
use super::cmd::Cmd;
use super::config::{IMAGE, LabConfig, LabNode, PODMAN_PORT};
use super::prereq::BUSYBOX;

/// Applets linked into the image.
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "httpd", "nc", "touch", "test", "true", "false", "mkdir",
    "rm", "wget", "id", "hostname", "date", "ps", "kill",
];

/// Writes the image's root filesystem as a tar at [`LabConfig::image_tar`].
pub(crate) async fn build(cfg: &LabConfig) -> Result<PathBuf, LabError> {
    let busybox = BUSYBOX
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or_else(|| LabError::Missing("busybox (install busybox-static)".into()))?;
    let root = cfg.dir.join("image-rootfs");
    let mk = |p: &Path| std::fs::create_dir_all(p).map_err(|e| LabError::io(p, e));
    for d in ["bin", "www", "tmp", "etc", "proc", "sys", "dev", "data"] {
        mk(&root.join(d))?;
    }
    let bin = root.join("bin/busybox");
    std::fs::copy(busybox, &bin).map_err(|e| LabError::io(&bin, e))?;
    for a in APPLETS {
        let link = root.join("bin").join(a);
        std::os::unix::fs::symlink("busybox", &link).map_err(|e| LabError::io(&link, e))?;
    }
    let files = [
        ("www/index.html", "quorate lab web\n"),
        ("etc/passwd", "root:x:0:0:root:/:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
    ];
    for (name, text) in files {
        let p = root.join(name);
        std::fs::write(&p, text).map_err(|e| LabError::io(&p, e))?;
    }
    let tar = cfg.image_tar();
    Cmd::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .run()
        .await?;
    std::fs::remove_dir_all(&root).map_err(|e| LabError::io(&root, e))?;
    Ok(tar)
}

/// Imports the tar as [`IMAGE`] through the node's Podman API.
pub(crate) async fn load(node: &LabNode, tar: &Path) -> Result<(), LabError> {
    Cmd::new("podman")
        .args(["--remote", "--url"])
        .arg(format!("tcp://{}:{PODMAN_PORT}", node.address))
        .arg("import")
        .arg(tar)
        .arg(IMAGE)
        .run_within(Duration::from_secs(120))
        .await
        .map(|_| ())
}
