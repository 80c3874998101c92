//! Conditional writes of local files, for the document store.
//!
//! object_store's local backend creates a file only if absent (a hard link, atomic) but has no
//! replace-if-unchanged at all, and a delete racing a replace could let the replace bring the
//! deleted file back. Here every conditional write and every delete of a file holds an
//! exclusive `flock(2)` on the file's folder while it checks the current version and moves the
//! new file into place (object_store still writes it: a staged file renamed over the old one),
//! so the check and the write of one writer never interleave with another's — threads of one
//! process and processes sharing the disk alike. The kernel drops the lock when its descriptor
//! closes, also when the process dies, so a crash never leaves a stale lock behind. (`flock`
//! over NFS is not dependable: replicas on several hosts share a cloud store, not a network
//! disk.)

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// An exclusive lock on a folder, held until dropped.
pub(super) struct FolderLock {
    _folder: File,
}

impl FolderLock {
    /// Locks `folder` (created when missing), waiting for another holder to finish.
    pub(super) async fn acquire(folder: PathBuf) -> io::Result<FolderLock> {
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&folder)?;
            let handle = File::open(&folder)?;
            loop {
                // SAFETY: flock on a descriptor we own; it only changes the lock state.
                if unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX) } == 0 {
                    return Ok(FolderLock { _folder: handle });
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        })
        .await
        .map_err(io::Error::other)?
    }
}
