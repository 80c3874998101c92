//! Cached segments the kernel sends without a user-space copy.
//!
//! Writing a cached 1.5 MB segment from heap memory makes the kernel copy all of it into
//! socket buffers on every request; that copy was most of the request's cost. A large segment
//! entering the cache is therefore copied once into its own sealed memfd, mapped read-only,
//! and the cached body becomes a `Bytes` over that mapping: every consumer (HTTP/2, TLS, range
//! requests) still sees ordinary bytes. A process-wide registry maps each live mapping's
//! address range to its memfd, so a plain HTTP/1.1 connection finding a buffer inside one can
//! `sendfile` it from the memfd instead: the kernel then hands the file's pages to the socket.
//!
//! Why this is safe: the memfd is sealed against writes, shrinking and growing, so its pages
//! never change; each segment has its own memfd, unregistered, unmapped and closed only when
//! the last `Bytes` over it is dropped, and pages still referenced by socket buffers stay
//! alive in the kernel after that. The bytes on the wire are the mapping's bytes by
//! construction.
//!
//! Each live mapping holds a file descriptor, so their number is capped below the process's
//! descriptor limit (connections need them too); past the cap, or where `memfd_create` fails
//! or does not exist, a segment stays in heap memory and goes out with ordinary writes.

use bytes::Bytes;

/// Bodies at least this long go into a memfd: below it the per-entry descriptor, mapping and
/// syscall cost more than the copy `sendfile` saves.
pub(crate) const MIN_LEN: u64 = 64 * 1024;

/// A copy of `parts` (`len` bytes together) the kernel can send without a user-space copy, and
/// the memory it takes (whole pages); `None` when `len` is below [`MIN_LEN`], too many
/// mappings are live, or the kernel refuses (the caller keeps `parts`).
pub(crate) fn sealed_copy(parts: &[Bytes], len: u64) -> Option<(Bytes, u64)> {
    if len < MIN_LEN {
        return None;
    }
    imp::sealed_copy(parts, len)
}

/// Where a buffer about to be written lies in a sealed memfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Located {
    /// The memfd: open while any `Bytes` over its mapping is alive, so while the buffer that
    /// was looked up is borrowed.
    pub fd: std::os::fd::RawFd,
    /// The buffer's offset in it.
    pub offset: u64,
}

/// The first of `bufs` lying wholly inside a live mapping: its index and where it lies.
/// Empty buffers are never found (a zero-length send would read as a closed connection).
pub(crate) fn first_located(bufs: &[std::io::IoSlice<'_>]) -> Option<(usize, Located)> {
    imp::first_located(bufs)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::BTreeMap;
    use std::fs::File;
    use std::io::{IoSlice, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{LazyLock, RwLock};

    use bytes::Bytes;

    use super::Located;

    /// Live mappings: start address → (length, memfd). Written when a segment enters or
    /// leaves memory, read on every plain write while any mapping is live.
    static REGISTRY: RwLock<BTreeMap<usize, (usize, std::os::fd::RawFd)>> = RwLock::new(BTreeMap::new());
    /// `REGISTRY`'s size, read without its lock: no mapping, no lookup.
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    /// Mappings allowed at once: a quarter of the descriptor limit, the rest left to
    /// connections and storage reads.
    static CAP: LazyLock<usize> = LazyLock::new(|| {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one `rlimit` into the struct passed.
        let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        if known {
            usize::try_from(limit.rlim_cur / 4).unwrap_or(usize::MAX)
        } else {
            0
        }
    });

    /// A sealed memfd mapped read-only: the owner of a cached body's bytes.
    struct Mapping {
        ptr: NonNull<u8>,
        len: usize,
        /// Closed after the unmapping (field drop order: after `Drop::drop`).
        _fd: OwnedFd,
    }

    // SAFETY: the mapping is read-only and never changes (the memfd is sealed), so sharing and
    // sending it between threads cannot race.
    unsafe impl Send for Mapping {}
    // SAFETY: as above.
    unsafe impl Sync for Mapping {}

    impl AsRef<[u8]> for Mapping {
        fn as_ref(&self) -> &[u8] {
            // SAFETY: `ptr` is a live mapping of `len` readable bytes until `drop`.
            unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // Unregistered before it is unmapped: a new mapping at the same address must not
            // be found with this descriptor.
            let start = self.ptr.as_ptr() as usize;
            if registry_write().remove(&start).is_some() {
                LIVE.fetch_sub(1, Ordering::Release);
            }
            // SAFETY: `ptr`/`len` are the mapping made in `sealed_copy`; no `Bytes` over it
            // remains (this is its owner's drop).
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }

    fn registry_write() -> std::sync::RwLockWriteGuard<'static, BTreeMap<usize, (usize, std::os::fd::RawFd)>> {
        REGISTRY.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn sealed_copy(parts: &[Bytes], len: u64) -> Option<(Bytes, u64)> {
        let len_usize = usize::try_from(len).ok()?;
        if parts.iter().map(|p| p.len() as u64).sum::<u64>() != len {
            return None;
        }
        // A racing insert may pass the cap by a few: it bounds descriptors, not exactly.
        if LIVE.load(Ordering::Acquire) >= *CAP {
            return None;
        }
        // SAFETY: the name is a NUL-terminated string; the flags are valid.
        let raw = unsafe { libc::memfd_create(c"jit-origin-segment".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a descriptor just opened and owned by nothing else.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        file.set_len(len).ok()?;
        for part in parts {
            file.write_all(part).ok()?;
        }
        let seals = libc::F_SEAL_SEAL | libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        // SAFETY: F_ADD_SEALS takes an int; the descriptor is open.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return None;
        }
        // SAFETY: maps `len` bytes of an open file read-only; the result is checked.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len_usize, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        let ptr = NonNull::new(ptr.cast::<u8>())?;
        let fd = OwnedFd::from(file);
        registry_write().insert(ptr.as_ptr() as usize, (len_usize, fd.as_raw_fd()));
        LIVE.fetch_add(1, Ordering::Release);
        let page = 4096;
        let weight = len.div_ceil(page) * page;
        Some((Bytes::from_owner(Mapping { ptr, len: len_usize, _fd: fd }), weight))
    }

    pub(super) fn first_located(bufs: &[IoSlice<'_>]) -> Option<(usize, Located)> {
        if LIVE.load(Ordering::Acquire) == 0 {
            return None;
        }
        let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        bufs.iter().enumerate().find_map(|(i, buf)| {
            let addr = buf.as_ptr() as usize;
            let (&start, &(len, fd)) = registry.range(..=addr).next_back()?;
            let offset = addr - start;
            (!buf.is_empty() && offset.checked_add(buf.len())? <= len).then_some((i, Located { fd, offset: offset as u64 }))
        })
    }
}

/// Elsewhere (macOS, for development) segments stay in heap memory.
#[cfg(not(target_os = "linux"))]
mod imp {
    use bytes::Bytes;

    use super::Located;

    pub(super) fn sealed_copy(_: &[Bytes], _: u64) -> Option<(Bytes, u64)> {
        None
    }

    pub(super) fn first_located(_: &[std::io::IoSlice<'_>]) -> Option<(usize, Located)> {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::IoSlice;

    use super::*;

    fn body(len: usize) -> Vec<Bytes> {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        bytes.chunks(15_000).map(Bytes::copy_from_slice).collect()
    }

    #[test]
    fn a_sealed_copy_holds_the_parts_and_is_found_at_the_right_offsets() {
        let parts = body(200_000);
        let (copy, weight) = sealed_copy(&parts, 200_000).expect("memfd");
        assert_eq!(copy, parts.concat());
        assert_eq!(weight, 200_704, "whole pages");
        let slice = copy.slice(1000..5000);
        let header = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        let bufs = [IoSlice::new(&header), IoSlice::new(&slice)];
        let (index, at) = first_located(&bufs).expect("found");
        assert_eq!((index, at.offset), (1, 1000));
        // The memfd's bytes at that offset are the slice's.
        let mut read = vec![0; 4000];
        // SAFETY: reads 4000 bytes into a buffer of that size from an open descriptor.
        let n = unsafe { libc::pread(at.fd, read.as_mut_ptr().cast(), read.len(), at.offset as libc::off_t) };
        assert_eq!(n, 4000);
        assert_eq!(read, slice);
        // The whole mapping, its last byte, and nothing past it.
        assert_eq!(first_located(&[IoSlice::new(&copy)]).map(|(i, l)| (i, l.offset)), Some((0, 0)));
        assert!(first_located(&[IoSlice::new(&copy[199_999..])]).is_some());
        assert_eq!(first_located(&[IoSlice::new(&copy[5..5])]), None, "empty buffers are not sent from it");
    }

    #[test]
    fn heap_buffers_and_small_bodies_are_not_found() {
        let heap = body(100_000).concat();
        assert_eq!(first_located(&[IoSlice::new(&heap)]), None);
        assert!(sealed_copy(&body(1000), 1000).is_none(), "below the minimum");
        assert!(sealed_copy(&body(100_000), 99_999).is_none(), "a length that is not the parts'");
    }

    #[test]
    fn a_dropped_copy_is_unregistered_and_its_descriptor_closed() {
        let (copy, _) = sealed_copy(&body(70_000), 70_000).expect("memfd");
        let at = first_located(&[IoSlice::new(&copy)]).expect("found").1;
        let before = inode(at.fd).expect("open");
        let clone = copy.slice(10..);
        drop(copy);
        assert!(first_located(&[IoSlice::new(&clone)]).is_some(), "alive while a slice is");
        drop(clone);
        // Closed: the number is free or (another test's file) names another inode.
        assert_ne!(inode(at.fd), Some(before), "closed");
    }

    fn inode(fd: std::os::fd::RawFd) -> Option<u64> {
        // SAFETY: fstat writes one `stat`; a closed descriptor fails with EBADF.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        (unsafe { libc::fstat(fd, &mut stat) } == 0).then_some(stat.st_ino)
    }
}
