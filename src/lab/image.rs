//! The lab's container image, [`IMAGE`]: the host's statically linked busybox
//! (Debian package busybox-static) with its applets, a page in `/www`, and the host's
//! Redis (Debian packages redis-server and redis-tools): `redis-server` and `redis-cli`
//! with every shared library `ldd` lists for them and the dynamic loader, each at its
//! host path, so they run without `LD_LIBRARY_PATH`. It is imported into every node's
//! Podman (there is no registry to pull from).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LabError;
use super::cmd::Cmd;
use super::config::{IMAGE, LabConfig, LabNode, PODMAN_PORT};
use super::prereq::{BUSYBOX, REDIS_CLI, REDIS_SERVER};

/// Applets linked into the image.
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "httpd", "nc", "touch", "test", "true", "false", "mkdir",
    "rm", "wget", "id", "hostname", "date", "ps", "kill", "awk", "tr", "sed", "grep", "head",
    "cut",
];

/// Writes the image's root filesystem as a tar at [`LabConfig::image_tar`].
pub(crate) async fn build(cfg: &LabConfig) -> Result<PathBuf, LabError> {
    let busybox = first_file(BUSYBOX)
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
    add_redis(&root).await?;
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

/// The first of `paths` that is a file (following links).
fn first_file(paths: &[&'static str]) -> Option<&'static Path> {
    paths.iter().map(|p| Path::new(*p)).find(|p| p.is_file())
}

/// Copies `redis-server` and `redis-cli`, their shared libraries and the dynamic loader
/// into `root`, each at its host path.
async fn add_redis(root: &Path) -> Result<(), LabError> {
    let server = first_file(REDIS_SERVER).ok_or_else(|| {
        LabError::Missing("redis-server (install redis-server and redis-tools)".into())
    })?;
    let cli = first_file(REDIS_CLI)
        .ok_or_else(|| LabError::Missing("redis-cli (install redis-tools)".into()))?;
    let mut files = BTreeSet::from([server.to_path_buf(), cli.to_path_buf()]);
    for program in [server, cli] {
        files.extend(libraries(program).await?);
    }
    for file in &files {
        copy_resolved(file, root)?;
    }
    Ok(())
}

/// The shared libraries and the loader `ldd` lists for `program`.
async fn libraries(program: &Path) -> Result<Vec<PathBuf>, LabError> {
    let out = Cmd::new("ldd").arg(program).run().await?;
    parse_ldd(&out).map_err(|lib| {
        LabError::Missing(format!(
            "{lib}, a shared library of {} (ldd: not found)",
            program.display()
        ))
    })
}

/// The absolute paths in `ldd`'s output: `name => /path (0x…)` and the loader's
/// `/path (0x…)`; the kernel's vDSO (`linux-vdso.so.1 (0x…)`) has none. A library `ldd`
/// did not find is the error, by name.
fn parse_ldd(out: &str) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in out.lines() {
        let (name, target) = match line.split_once("=>") {
            Some((name, target)) => (name.trim(), target.trim()),
            None => (line.trim(), line.trim()),
        };
        if target.starts_with("not found") {
            return Err(name.to_owned());
        }
        match target.split_whitespace().next() {
            Some(path) if path.starts_with('/') => paths.push(PathBuf::from(path)),
            _ => {}
        }
    }
    Ok(paths)
}

/// Copies the file `host` (an absolute path) to the same path under `root`. A symbolic
/// link is resolved: its target's content is written under the link's own name (the name
/// the loader and `ldd` use, such as a soname, or `redis-server`, which is a link to
/// `redis-check-rdb` and picks its mode from its name).
fn copy_resolved(host: &Path, root: &Path) -> Result<(), LabError> {
    let relative = host
        .strip_prefix("/")
        .map_err(|_| LabError::Config(format!("{}: not an absolute path", host.display())))?;
    let dest = root.join(relative);
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    }
    let real = std::fs::canonicalize(host).map_err(|e| LabError::io(host, e))?;
    std::fs::copy(&real, &dest).map_err(|e| LabError::io(&dest, e))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader_but_not_the_vdso() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tliblzf.so.1 => /lib/x86_64-linux-gnu/liblzf.so.1 (0x00007fb0)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007fb1)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/liblzf.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        let missing = "\tlibjemalloc.so.2 => not found\n";
        assert_eq!(parse_ldd(missing).unwrap_err(), "libjemalloc.so.2");
    }

    #[test]
    fn a_link_is_copied_as_its_target_under_its_own_name() {
        let host = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let real = host.path().join("redis-check-rdb");
        std::fs::write(&real, "binary").unwrap();
        let link = host.path().join("redis-server");
        std::os::unix::fs::symlink("redis-check-rdb", &link).unwrap();
        copy_resolved(&link, root.path()).unwrap();
        let copied = root.path().join(link.strip_prefix("/").unwrap());
        assert!(!copied.symlink_metadata().unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(copied).unwrap(), "binary");
    }
}
