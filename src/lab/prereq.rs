//! What `lab up` needs from the machine, checked before anything is made, so a missing
//! piece is one clear message instead of a failure in the middle of a failover: the
//! programs it runs, Podman's network helpers, and what the lab's image is built from
//! (busybox, `redis-server`, `redis-cli`).

use std::ffi::OsStr;
use std::path::Path;

use super::LabError;

/// Programs on `PATH`, with the Debian package that has them.
const PROGRAMS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
    ("setsid", "util-linux"),
    ("podman", "podman"),
    ("runc", "runc"),
    ("iptables", "iptables"),
    ("ipmi_sim", "openipmi"),
    ("git", "git"),
    ("tar", "tar"),
    ("ldd", "libc-bin"),
];

/// Podman's helper programs (not on `PATH`): the network backend `lab/containers.conf`
/// pins, and its DNS server.
const HELPERS: &[(&str, &str)] = &[("netavark", "netavark"), ("aardvark-dns", "aardvark-dns")];

/// Where Podman looks for its helpers (its `helper_binaries_dir` defaults).
const HELPER_DIRS: &[&str] = &[
    "/usr/local/libexec/podman",
    "/usr/local/lib/podman",
    "/usr/libexec/podman",
    "/usr/lib/podman",
];

/// Where busybox-static installs busybox (the lab's image is built from it).
pub(crate) const BUSYBOX: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// Where redis-server installs `redis-server` (copied into the lab's image with the
/// libraries `ldd` lists for it).
pub(crate) const REDIS_SERVER: &[&str] = &["/usr/bin/redis-server", "/usr/local/bin/redis-server"];

/// Where redis-tools installs `redis-cli` (copied into the lab's image likewise).
pub(crate) const REDIS_CLI: &[&str] = &["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"];

/// The files of the lab's image other than programs on `PATH`: where each may be, what it
/// is, and its package.
const IMAGE_FILES: &[(&[&str], &str, &str)] = &[
    (BUSYBOX, "busybox (the lab's image)", "busybox-static"),
    (
        REDIS_SERVER,
        "redis-server (the lab's image)",
        "redis-server",
    ),
    (REDIS_CLI, "redis-cli (the lab's image)", "redis-tools"),
];

/// A prerequisite the machine lacks, and the Debian package that brings it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing {
    what: String,
    package: &'static str,
}

/// Every missing prerequisite, looking for programs in `path` (the value of `PATH`).
pub(crate) fn missing(path: Option<&OsStr>) -> Vec<Missing> {
    let on_path =
        |name: &str| path.is_some_and(|p| std::env::split_paths(p).any(|d| d.join(name).is_file()));
    let mut out: Vec<Missing> = PROGRAMS
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(program, package)| Missing {
            what: (*program).to_owned(),
            package,
        })
        .collect();
    for (helper, package) in HELPERS {
        if !HELPER_DIRS
            .iter()
            .any(|d| Path::new(d).join(helper).is_file())
        {
            out.push(Missing {
                what: format!("{helper} (Podman's network backend for the lab)"),
                package,
            });
        }
    }
    for (paths, what, package) in IMAGE_FILES {
        if !paths.iter().any(|p| Path::new(p).is_file()) {
            out.push(Missing {
                what: (*what).to_owned(),
                package,
            });
        }
    }
    out
}

/// Fails with every missing prerequisite and the command that installs them.
pub(crate) fn check() -> Result<(), LabError> {
    explain(&missing(std::env::var_os("PATH").as_deref()))
}

fn explain(missing: &[Missing]) -> Result<(), LabError> {
    if missing.is_empty() {
        return Ok(());
    }
    let what: Vec<String> = missing
        .iter()
        .map(|m| format!("{} (package {})", m.what, m.package))
        .collect();
    let mut packages: Vec<&str> = Vec::new();
    for m in missing {
        if !packages.contains(&m.package) {
            packages.push(m.package);
        }
    }
    Err(LabError::Missing(format!(
        "{}; install them with `apt-get install --no-install-recommends {}` \
         (scripts/quickstart does)",
        what.join(", "),
        packages.join(" ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_package_and_the_install_command() {
        let found = missing(Some(OsStr::new("/nonexistent")));
        assert!(
            found
                .iter()
                .any(|m| m.what == "runc" && m.package == "runc")
        );
        assert!(found.iter().any(|m| m.what == "iptables"));
        let message = explain(&found).expect_err("nothing is on PATH").to_string();
        assert!(message.contains("ipmi_sim (package openipmi)"), "{message}");
        // util-linux has three programs but is named once in the command.
        let command = message.split("apt-get install").nth(1).unwrap_or_default();
        assert_eq!(command.matches(" util-linux").count(), 1, "{message}");
        assert!(
            command.starts_with(
                " --no-install-recommends iproute2 util-linux podman runc iptables openipmi git tar"
            ),
            "{message}"
        );
        assert!(explain(&[]).is_ok());
    }
}
