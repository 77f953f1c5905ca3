//! Reading a secret file without trusting what the path names: only a regular file, opened
//! without blocking, at most [`MAX_SECRET_FILE_BYTES`]. A spec could otherwise name
//! `/dev/zero` (memory runs out), a FIFO (the open or the read never returns, past every
//! deadline) or a huge file.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zeroize::Zeroizing;

/// The largest secret file read: a password, a token, a PEM key or certificate chain fits
/// many times over.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Why a secret file was not read. Names what the file is, never what it holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum FileError {
    /// The open or the read failed (the io error's kind only: not found, permission denied).
    #[error("{0}")]
    Io(std::io::ErrorKind),
    /// A directory, device, FIFO or socket.
    #[error("it is not a regular file (a {0}); secrets are read only from regular files")]
    NotRegular(&'static str),
    /// More than [`MAX_SECRET_FILE_BYTES`].
    #[error("it is larger than {MAX_SECRET_FILE_BYTES} bytes, the limit of a secret file")]
    TooLarge,
}

/// The bytes of the regular file at `path`. Opened with `O_NONBLOCK` (a FIFO or a device
/// cannot make the open wait) and `O_NOCTTY`, checked to be a regular file on the open
/// descriptor (so the check and the read are of one file), and read up to the limit. With
/// `no_follow`, a symlink as the last component is refused (`O_NOFOLLOW`): a path already
/// resolved against the secret policy cannot be swapped for a link after the check.
pub(super) fn read_regular(path: &Path, no_follow: bool) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if no_follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = File::options()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| FileError::Io(e.kind()))?;
    let meta = file.metadata().map_err(|e| FileError::Io(e.kind()))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(FileError::NotRegular(kind_name(&kind)));
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    // One allocation of the final size (no copies of the secret left by a growing buffer);
    // the file may grow after the stat, so the read itself is bounded too.
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::Io(e.kind()))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    Ok(bytes)
}

fn kind_name(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// `read_regular` on another thread, failing the test if it does not return within 2 s
    /// (instead of hanging the test binary).
    fn read_bounded(path: &Path) -> Result<Zeroizing<Vec<u8>>, FileError> {
        let (tx, rx) = mpsc::channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(read_regular(&path, false));
        });
        rx.recv_timeout(Duration::from_secs(2))
            .unwrap_or_else(|_| panic!("reading the secret file did not return within 2 s"))
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (path, what) in [
            (Path::new("/dev/zero"), "character device"),
            (Path::new("/dev/urandom"), "character device"),
            (fifo.as_path(), "FIFO"),
            (dir.path(), "directory"),
        ] {
            let e = read_bounded(path).unwrap_err();
            assert_eq!(e, FileError::NotRegular(what), "{}", path.display());
        }
    }

    #[test]
    fn files_up_to_the_limit_are_read_and_larger_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("at");
        std::fs::write(&at, vec![b'a'; MAX_SECRET_FILE_BYTES as usize]).unwrap();
        assert_eq!(
            read_bounded(&at).unwrap().len() as u64,
            MAX_SECRET_FILE_BYTES
        );
        let over = dir.path().join("over");
        std::fs::write(&over, vec![b'a'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(read_bounded(&over).unwrap_err(), FileError::TooLarge);
        // A sparse file of a gigabyte: refused by its size, nothing is read.
        let huge = std::fs::File::create(dir.path().join("huge")).unwrap();
        huge.set_len(1 << 30).unwrap();
        assert_eq!(
            read_bounded(&dir.path().join("huge")).unwrap_err(),
            FileError::TooLarge
        );
    }

    #[test]
    fn no_follow_refuses_a_final_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("pw"), dir.path().join("link")).unwrap();
        assert!(read_regular(&dir.path().join("link"), false).is_ok());
        assert!(matches!(
            read_regular(&dir.path().join("link"), true),
            Err(FileError::Io(_))
        ));
    }
}
