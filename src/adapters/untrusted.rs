//! Opening files that sit in directories other processes can write: request files in
//! `state_dir/requests/`, inbox tasks, Claude's session registry and transcripts, hook
//! stderr files. Whoever can write such a directory can put a symlink there (ccl would
//! read, or overwrite, whatever it points to), a FIFO (a plain `open` blocks the whole
//! loop until someone writes to it), a device, or a file of any size. Every such file is
//! therefore opened here: without following a final symlink, without blocking, accepted
//! only when it is a regular file, and read up to a stated number of bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for reading: `O_NOFOLLOW | O_NONBLOCK`, then refused unless it is a
/// regular file. A FIFO opens at once (non-blocking) and is then refused; a symlink
/// fails with `ELOOP`.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The whole of a regular file of at most `max_bytes`; a longer one is an error (its
/// first `max_bytes + 1` bytes are all that is ever read).
pub fn read_capped(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    read_prefix(path, max_bytes + 1, &mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(io::Error::other(format!("larger than {max_bytes} bytes")));
    }
    Ok(bytes)
}

/// The first `max_bytes` bytes of a regular file (less when it is shorter).
pub fn read_prefix(path: &Path, max_bytes: u64, into: &mut Vec<u8>) -> io::Result<()> {
    open_regular(path)?.take(max_bytes).read_to_end(into)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn fifos_symlinks_and_oversize_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let target = dir.path().join("secret");
        std::fs::write(&target, b"elsewhere").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 100]).unwrap();

        let (tx, rx) = std::sync::mpsc::channel();
        let paths = (fifo.clone(), link.clone(), big.clone(), target.clone());
        std::thread::spawn(move || {
            let (fifo, link, big, target) = paths;
            let _ = tx.send((
                read_capped(&fifo, 10).is_err(),
                read_capped(&link, 10).is_err(),
                read_capped(&big, 99).is_err(),
                read_capped(&big, 100).map(|b| b.len()).ok(),
                read_capped(&target, 100).ok(),
            ));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("reading a fifo must not block");
        assert_eq!(got, (true, true, true, Some(100), Some(b"elsewhere".to_vec())));
    }
}
