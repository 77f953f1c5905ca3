//! The private directories that hold the local sockets of relays and SSH tunnels.
//!
//! Each socket has a directory of its own (0700: only quorate's user can open the socket),
//! inside one directory per process, `quorate-sockets-<pid>.<random>` in the temporary
//! directory. A socket's directory goes when its relay or tunnel is dropped, and the
//! process's when the last of them is. A process that is killed first (SIGKILL, a crash,
//! the OOM killer) cannot clean up: it leaves its one directory, which the next quorate
//! process of the same user removes once it sees that process gone.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, Once, Weak};

use tempfile::TempDir;

/// How the directory of a process is named: this, its pid, a dot, random characters.
const PREFIX: &str = "quorate-sockets-";

/// This process's directory, while a socket directory is in it.
struct ProcessDir(TempDir);

/// The process directory in use, if any.
struct Current(Mutex<Weak<ProcessDir>>);

static CURRENT: Current = Current(Mutex::new(Weak::new()));
static SWEPT: Once = Once::new();

/// A private directory for one local socket.
pub(crate) struct SocketDir {
    // Dropped in this order: the socket's directory, then (the last one out) the process's.
    dir: TempDir,
    _process: Arc<ProcessDir>,
}

impl SocketDir {
    /// A new one, in this process's directory (made when there is none, after the first
    /// look for those of processes that are gone).
    pub(crate) fn new(prefix: &str) -> std::io::Result<SocketDir> {
        let base = std::env::temp_dir();
        SWEPT.call_once(|| remove_abandoned(&base));
        SocketDir::within(&CURRENT, &base, prefix)
    }

    fn within(current: &Current, base: &Path, prefix: &str) -> std::io::Result<SocketDir> {
        let process = current.get(base)?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(process.0.path())?;
        Ok(SocketDir {
            dir,
            _process: process,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Current {
    /// The process directory in use, or a new one in `base`.
    fn get(&self, base: &Path) -> std::io::Result<Arc<ProcessDir>> {
        let mut current = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = current.upgrade() {
            return Ok(dir);
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}.", std::process::id()))
            .tempdir_in(base)?;
        let dir = Arc::new(ProcessDir(dir));
        *current = Arc::downgrade(&dir);
        Ok(dir)
    }
}

/// Removes from `base` the process directories of this user whose process is gone. Only
/// directories (not links) named as [`PREFIX`] names them and owned by this user are
/// touched; `remove_dir_all` does not follow links inside them.
fn remove_abandoned(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let Some(pid) = pid_of(&entry.file_name()) else {
            continue;
        };
        let path = entry.path();
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours
            && !alive(pid)
            && let Err(e) = std::fs::remove_dir_all(&path)
        {
            tracing::debug!(dir = %path.display(), error = %e, "cannot remove an abandoned socket directory");
        }
    }
}

/// The pid in the name of a process directory.
fn pid_of(name: &OsStr) -> Option<i32> {
    let (pid, _) = name.to_str()?.strip_prefix(PREFIX)?.split_once('.')?;
    pid.parse().ok().filter(|p| *p > 0)
}

/// Whether process `pid` (> 0) exists, as far as this process can tell.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled; `pid`
    // is positive, so it names one process, never a group.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pid of a process that has ended (and been waited for).
    fn gone() -> i32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

    #[test]
    fn the_directories_of_processes_that_are_gone_are_removed_and_no_others() {
        let base = tempfile::tempdir().unwrap();
        let dead = base.path().join(format!("{PREFIX}{}.abc", gone()));
        std::fs::create_dir_all(dead.join("relay-x")).unwrap();
        std::fs::write(dead.join("relay-x/runtime.sock"), b"").unwrap();
        let living = base
            .path()
            .join(format!("{PREFIX}{}.abc", std::process::id()));
        std::fs::create_dir(&living).unwrap();
        let other = base.path().join("quorate-sockets-x.abc");
        std::fs::create_dir(&other).unwrap();
        // A link named like a dead process's directory is not followed or removed.
        let target = base.path().join("target");
        std::fs::create_dir(&target).unwrap();
        let link = base.path().join(format!("{PREFIX}{}.lnk", gone()));
        std::os::unix::fs::symlink(&target, &link).unwrap();

        remove_abandoned(base.path());
        assert!(!dead.exists());
        assert!(living.exists() && other.exists() && target.exists());
        assert!(std::fs::symlink_metadata(&link).is_ok());
    }

    #[test]
    fn names_give_a_pid_only_in_the_one_form() {
        assert_eq!(pid_of(OsStr::new("quorate-sockets-42.x1")), Some(42));
        assert_eq!(pid_of(OsStr::new("quorate-sockets-0.x1")), None);
        assert_eq!(pid_of(OsStr::new("quorate-sockets--1.x1")), None);
        assert_eq!(pid_of(OsStr::new("quorate-sockets-42")), None);
        assert_eq!(pid_of(OsStr::new("quorate-relay-42.x1")), None);
    }

    #[test]
    fn the_process_directory_lasts_as_long_as_a_socket_directory_in_it() {
        let (base, current) = (tempfile::tempdir().unwrap(), Current(Mutex::default()));
        let a = SocketDir::within(&current, base.path(), "a-").unwrap();
        let b = SocketDir::within(&current, base.path(), "b-").unwrap();
        let process = a.path().parent().unwrap().to_path_buf();
        assert_eq!(process.parent(), Some(base.path()));
        assert_eq!(b.path().parent(), Some(process.as_path()));
        let name = process.file_name().unwrap();
        assert_eq!(pid_of(name), Some(std::process::id() as i32));
        drop(a);
        assert!(process.exists());
        drop(b);
        assert!(!process.exists());
        // The next one makes a new process directory.
        let c = SocketDir::within(&current, base.path(), "c-").unwrap();
        assert!(
            c.path()
                .parent()
                .is_some_and(|p| p != process && p.exists())
        );
    }
}
