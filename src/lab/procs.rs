//! Finding and killing every process that belongs to a lab node or BMC.
//!
//! A node's processes are those inside its network namespace (the Podman service,
//! `aardvark-dns`), those whose command line names the node's directory (the service,
//! every `conmon`), and all their descendants (the containers' processes, which run in
//! namespaces of their own). Killing them all with SIGKILL is the power cut: nothing of
//! the node survives, and the mounts it made (in its private mount namespace) go with it.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use super::LabError;

/// One process as read from `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proc {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Inode of its network namespace (`None` when unreadable, as for zombies).
    pub netns: Option<u64>,
    /// Command line, arguments joined by spaces.
    pub cmdline: String,
    /// A zombie: already dead, waiting to be reaped.
    pub zombie: bool,
}

/// Which processes to select.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    /// Processes in this network namespace (by inode).
    pub netns: Option<u64>,
    /// Processes whose command line contains this text.
    pub needle: Option<String>,
}

/// Reads every process from `/proc` (processes that exit meanwhile are skipped).
pub(crate) fn scan() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_proc)
        .collect()
}

fn read_proc(pid: u32) -> Option<Proc> {
    let base = Path::new("/proc").join(pid.to_string());
    let stat = std::fs::read_to_string(base.join("stat")).ok()?;
    let (state, ppid) = parse_stat(&stat)?;
    let netns = std::fs::read_link(base.join("ns/net"))
        .ok()
        .and_then(|l| parse_ns_link(&l.to_string_lossy()));
    let cmdline = std::fs::read(base.join("cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default();
    Some(Proc {
        pid,
        ppid,
        netns,
        cmdline,
        zombie: state == 'Z',
    })
}

/// State and parent pid from `/proc/PID/stat` (`pid (comm) state ppid ...`; `comm` may
/// hold spaces and parentheses, so fields are counted from the last `)`).
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The inode in a namespace link such as `net:[4026532179]`.
fn parse_ns_link(link: &str) -> Option<u64> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The inode of a named network namespace (`/run/netns/NAME`), if it exists.
pub(crate) fn netns_inode(name: &str) -> Option<u64> {
    std::fs::metadata(Path::new("/run/netns").join(name))
        .ok()
        .map(|m| m.ino())
}

/// Pids of this process and its ancestors: never selected, whatever they match.
fn protected(procs: &[Proc]) -> BTreeSet<u32> {
    let parents: HashMap<u32, u32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    let mut out = BTreeSet::from([0, 1]);
    let mut pid = std::process::id();
    while pid > 1 && out.insert(pid) {
        pid = parents.get(&pid).copied().unwrap_or(0);
    }
    out
}

/// The live processes `sel` matches, with all their descendants, minus `protect`.
pub(crate) fn select(procs: &[Proc], sel: &Selector, protect: &BTreeSet<u32>) -> BTreeSet<u32> {
    let matches = |p: &Proc| {
        sel.netns.is_some_and(|ns| p.netns == Some(ns))
            || sel
                .needle
                .as_deref()
                .is_some_and(|n| !n.is_empty() && p.cmdline.contains(n))
    };
    let mut chosen: BTreeSet<u32> = procs.iter().filter(|p| matches(p)).map(|p| p.pid).collect();
    loop {
        let before = chosen.len();
        for p in procs {
            if chosen.contains(&p.ppid) {
                chosen.insert(p.pid);
            }
        }
        if chosen.len() == before {
            break;
        }
    }
    let live: BTreeSet<u32> = procs.iter().filter(|p| !p.zombie).map(|p| p.pid).collect();
    chosen
        .into_iter()
        .filter(|pid| live.contains(pid) && !protect.contains(pid))
        .collect()
}

/// Sends SIGKILL to `pid` (a process that is gone already is fine).
pub(crate) fn kill(pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 1
    {
        // SAFETY: kill(2) with a positive pid and a valid signal number touches no memory.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Kills everything `sel` selects, again and again until nothing is left (a dying Podman
/// service may still fork), for up to `within`. Returns how many processes were killed.
pub(crate) async fn kill_all(sel: &Selector, within: Duration) -> Result<usize, LabError> {
    let deadline = tokio::time::Instant::now() + within;
    let mut killed = BTreeSet::new();
    loop {
        let procs = scan();
        let victims = select(&procs, sel, &protected(&procs));
        if victims.is_empty() {
            return Ok(killed.len());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: "killing the node's processes".into(),
                after: within,
                detail: format!("still alive: {victims:?}"),
            });
        }
        for pid in &victims {
            kill(*pid);
        }
        killed.extend(victims);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Whether a process with `pid` is alive (not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    read_proc(pid).is_some_and(|p| !p.zombie)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, ppid: u32, netns: u64, cmdline: &str) -> Proc {
        Proc {
            pid,
            ppid,
            netns: Some(netns),
            cmdline: cmdline.into(),
            zombie: false,
        }
    }

    #[test]
    fn stat_lines_with_odd_command_names() {
        assert_eq!(parse_stat("42 (a) b (c)) S 7 42 42 0 -1"), Some(('S', 7)));
        assert_eq!(parse_stat("9 (sh) Z 1 9"), Some(('Z', 1)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_ns_link("net:[4026532179]"), Some(4026532179));
        assert_eq!(parse_ns_link("mnt:[1]"), None);
    }

    #[test]
    fn selects_the_namespace_the_needle_and_descendants() {
        let procs = vec![
            p(1, 0, 1, "/sbin/init"),
            p(10, 1, 2, "podman system service"),
            p(11, 1, 1, "conmon -b /lab/nodes/worker1/root/x"),
            p(12, 11, 3, "httpd -f"),
            p(13, 12, 3, "sh"),
            p(14, 1, 1, "conmon -b /lab/nodes/worker10/root/x"),
            p(15, 14, 4, "httpd -f"),
            p(16, 1, 1, "quorate lab chassis --dir /lab worker1"),
            Proc {
                zombie: true,
                ..p(17, 11, 3, "")
            },
        ];
        let sel = Selector {
            netns: Some(2),
            needle: Some("/lab/nodes/worker1/".into()),
        };
        let got = select(&procs, &sel, &BTreeSet::from([0, 1]));
        assert_eq!(got, BTreeSet::from([10, 11, 12, 13]));
        let got = select(&procs, &sel, &BTreeSet::from([0, 1, 11]));
        assert!(!got.contains(&11) && got.contains(&12));
        let none = select(&procs, &Selector::default(), &BTreeSet::new());
        assert!(none.is_empty());
    }

    #[test]
    fn this_process_is_protected_and_alive() {
        let procs = scan();
        let me = std::process::id();
        assert!(protected(&procs).contains(&me));
        assert!(alive(me));
        let sel = Selector {
            netns: None,
            needle: Some(String::new()),
        };
        assert!(select(&procs, &sel, &protected(&procs)).is_empty());
    }
}
