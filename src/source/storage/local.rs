//! Ranged reads of local files, written for what an origin does with them: read each segment's
//! bytes once, package them, and keep the result in its own segment cache.
//!
//! A range the page cache holds entirely is copied from it. Any other range is read with
//! `O_DIRECT`, straight from the disk into our buffer. Going through the page cache would cost
//! several times the read itself — allocating, filling, aging and reclaiming page-cache memory
//! for bytes the segment cache already keeps (on a 2-core VM: ~2.8 ms of CPU per 1.5 MB
//! segment read cold through the page cache, ~0.05 ms read direct) — and, on a library larger
//! than memory, would push out pages worth keeping. `O_DIRECT` needs offsets, lengths and
//! buffer addresses aligned to the device's block size; [`DIRECT_ALIGN`] covers every common
//! device. Filesystems without direct I/O (`EINVAL`) get an ordinary buffered read.
//!
//! object_store's local backend does neither, and also zero-fills each buffer before reading
//! into it; this module is why local storage bypasses it for ranged reads.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

/// Offset, length and address alignment of direct reads: the largest logical block size in
/// common use (4Kn disks, NVMe namespaces, cloud volumes).
pub(super) const DIRECT_ALIGN: usize = 4096;

/// One ranged read of a local file: shorter than asked when the file ends first, like a
/// ranged GET.
///
/// Made in two steps so that the buffer is allocated on the runtime's worker thread and only
/// the read runs on the blocking pool: the allocator keeps per-thread heaps, and a buffer freed
/// later by a worker (cache eviction, a finished response) goes back to the heap it came from.
/// Dozens of blocking threads each holding freed segment buffers cost ~10 MB of resident
/// memory in the load benchmark.
pub(super) struct RangeRead {
    /// Spans the range widened to block boundaries, so the part not in the page cache can be
    /// read directly into it, in place. Buffer position `p` holds file offset `base + p`.
    buf: AlignedBuf,
    base: u64,
    /// Where the range starts in the buffer, and its length.
    head: usize,
    len: usize,
}

impl RangeRead {
    pub(super) fn new(range: Range<u64>, buffers: &Arc<ReadBuffers>) -> io::Result<Self> {
        let len = usize::try_from(range.end.saturating_sub(range.start)).map_err(io::Error::other)?;
        let head = (range.start % DIRECT_ALIGN as u64) as usize;
        let buf = AlignedBuf::new(round_up(head + len), buffers)?;
        Ok(RangeRead { buf, base: range.start - head as u64, head, len })
    }

    /// Reads the range from `path`. Blocking: run it on the blocking pool.
    pub(super) fn run(self, path: &Path) -> io::Result<Bytes> {
        let RangeRead { mut buf, base, head, len } = self;
        let file = File::open(path)?;
        if !page_cache_holds(&file, base + head as u64, len) {
            let whole = 0..buf.len();
            match set_direct(&file, true).and_then(|()| buf.read(&file, whole, base, ReadMode::Direct)) {
                Ok(read) => return buf.into_bytes(head..read.clamp(head, head + len)),
                // No direct I/O on this filesystem, or not at this alignment: the page cache it is.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => set_direct(&file, false)?,
                Err(e) => return Err(e),
            }
        }
        let read = buf.read(&file, head..head + len, base, ReadMode::Buffered)?;
        buf.into_bytes(head..head + read)
    }
}

/// Whether every page of `len` bytes at `offset` is in the page cache, asked with
/// `cachestat(2)` (Linux 6.5), which, unlike a non-blocking read, starts no readahead.
/// Older kernels answer "no", and their reads go direct.
#[cfg(target_os = "linux")]
fn page_cache_holds(file: &File, offset: u64, len: usize) -> bool {
    #[repr(C)]
    struct CachestatRange {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Cachestat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    /// The same on every architecture (the syscall table is shared from number 424 on); the
    /// libc crate does not name it for x86-64 yet.
    const SYS_CACHESTAT: libc::c_long = 451;
    if len == 0 {
        return true;
    }
    let page = 4096;
    let pages = (offset + len as u64).div_ceil(page) - offset / page;
    let range = CachestatRange { off: offset, len: len as u64 };
    let mut stat = Cachestat::default();
    // SAFETY: both structs match the kernel's layout; the kernel only writes `stat`.
    let rc = unsafe {
        libc::syscall(SYS_CACHESTAT, file.as_raw_fd(), &range as *const CachestatRange, &mut stat as *mut Cachestat, 0)
    };
    rc == 0 && stat.nr_cache >= pages
}

/// Other systems (macOS, for development) have no `O_DIRECT`: every read is buffered.
#[cfg(not(target_os = "linux"))]
fn page_cache_holds(_: &File, _: u64, _: usize) -> bool {
    true
}
#[cfg(not(target_os = "linux"))]
fn set_direct(_: &File, _: bool) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::EINVAL))
}

/// Switches `file` to direct I/O or back (`EINVAL` where the filesystem has none).
#[cfg(target_os = "linux")]
fn set_direct(file: &File, direct: bool) -> io::Result<()> {
    // SAFETY: plain fcntl calls on an open descriptor.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    let flags = if direct { flags | libc::O_DIRECT } else { flags & !libc::O_DIRECT };
    if flags < 0 || unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn round_up(n: usize) -> usize {
    n.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN
}

#[derive(Clone, Copy, PartialEq)]
enum ReadMode {
    /// From a file in direct I/O mode: block-aligned, so a short read means the file ended.
    Direct,
    Buffered,
}

/// Segment-sized read buffers, recycled: a buffer freed when its segment leaves the cache
/// serves the next uncached segment's read.
///
/// The allocator alone does this badly for blocks of this size. Returning them to the kernel
/// soon after a free (mimalloc's default) made every read fault in and zero fresh pages, up
/// to half the CPU of an uncached segment; keeping them for a second (our setting) lets freed
/// blocks pile up beside new ones, 20-110 MiB of resident memory beyond the live buffers
/// under 256 connections. Here freed buffers wait, up to [`ReadBuffers::RETAINED`] bytes, for
/// the next read that fits them.
#[derive(Debug, Default)]
pub(super) struct ReadBuffers {
    free: Mutex<FreeBuffers>,
}

#[derive(Debug, Default)]
struct FreeBuffers {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl ReadBuffers {
    /// Reads smaller than this use the allocator directly (index windows, audio segments).
    const SMALLEST: usize = 256 * 1024;
    /// Bytes of free buffers kept: enough for a burst of evictions to meet the builds that
    /// follow them.
    const RETAINED: usize = 32 * 1024 * 1024;
    /// Capacities are rounded up to this, so that segments of similar sizes share buffers.
    const GRANULE: usize = 64 * 1024;

    /// An empty vector with at least `capacity` bytes of room.
    fn take(&self, capacity: usize) -> io::Result<Vec<u8>> {
        if capacity >= Self::SMALLEST {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            // The snuggest fit, and none more than a quarter larger than needed.
            let fit = (free.buffers.iter().enumerate())
                .filter(|(_, b)| (capacity..=capacity + capacity / 4).contains(&b.capacity()))
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            if let Some(i) = fit {
                let buffer = free.buffers.swap_remove(i);
                free.bytes -= buffer.capacity();
                return Ok(buffer);
            }
        }
        let mut buffer = Vec::new();
        let rounded = if capacity >= Self::SMALLEST { capacity.next_multiple_of(Self::GRANULE) } else { capacity };
        buffer.try_reserve_exact(rounded).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(buffer)
    }

    /// Keeps `buffer` for a later read, dropping the oldest kept ones beyond `RETAINED`.
    fn give(&self, buffer: Vec<u8>) {
        if buffer.capacity() < Self::SMALLEST {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.bytes += buffer.capacity();
        free.buffers.push(buffer);
        while free.bytes > Self::RETAINED {
            let oldest = free.buffers.remove(0);
            free.bytes -= oldest.capacity();
        }
    }
}

/// A heap buffer aligned for direct I/O, handed to `Bytes` without a copy once filled, and
/// back to its [`ReadBuffers`] when the last `Bytes` of it goes.
///
/// It is an ordinary byte vector with `DIRECT_ALIGN` bytes to spare, used from its first
/// aligned address: asking the allocator for aligned memory instead sends large blocks down a
/// path that never reuses freed ones, so every segment faulted and zeroed fresh pages.
struct AlignedBuf {
    /// Capacity only: its length stays 0, and the bytes are written through raw pointers.
    memory: Vec<u8>,
    recycle: Arc<ReadBuffers>,
    /// The aligned part: `memory[start..start + size]`.
    start: usize,
    size: usize,
    /// The initialised part, relative to `start`: what the read wrote.
    filled: Range<usize>,
}

impl AlignedBuf {
    fn new(size: usize, buffers: &Arc<ReadBuffers>) -> io::Result<Self> {
        let memory = buffers.take(size + DIRECT_ALIGN)?;
        let start = memory.as_ptr().align_offset(DIRECT_ALIGN);
        Ok(AlignedBuf { memory, recycle: buffers.clone(), start, size, filled: 0..0 })
    }

    fn ptr(&mut self) -> *mut u8 {
        // SAFETY: `start < DIRECT_ALIGN`, within the capacity.
        unsafe { self.memory.as_mut_ptr().add(self.start) }
    }

    fn len(&self) -> usize {
        self.size
    }

    /// Reads into `self[into]` from `file` at offset `base + into.start`, retrying short reads
    /// (signals cut them short), until the file ends. Returns the bytes read.
    fn read(&mut self, file: &File, into: Range<usize>, base: u64, mode: ReadMode) -> io::Result<usize> {
        // Guards the unsafe write below.
        if into.end > self.len() {
            return Err(io::Error::other("read past the end of its buffer"));
        }
        let mut read = 0;
        while into.start + read < into.end {
            let at = into.start + read;
            let position = libc::off_t::try_from(base + at as u64).map_err(io::Error::other)?;
            // SAFETY: `at < into.end <= len`: the kernel writes at most `into.end - at` bytes
            // inside the aligned part, which we own.
            let n = unsafe { libc::pread(file.as_raw_fd(), self.ptr().add(at).cast(), into.end - at, position) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            read += n;
            if n == 0 || (mode == ReadMode::Direct && n % DIRECT_ALIGN != 0) {
                break;
            }
        }
        self.filled = into.start..into.start + read;
        Ok(read)
    }

    /// The bytes at `window`, which must have been filled by reads (nothing unwritten is ever
    /// exposed).
    fn into_bytes(mut self, window: Range<usize>) -> io::Result<Bytes> {
        if window.is_empty() {
            return Ok(Bytes::new());
        }
        if window.start < self.filled.start || window.end > self.filled.end {
            return Err(io::Error::other("window outside the read bytes"));
        }
        self.filled = window;
        Ok(Bytes::from_owner(self))
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        self.recycle.give(std::mem::take(&mut self.memory));
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `filled` lies inside the aligned part and reads have written all of it.
        unsafe {
            std::slice::from_raw_parts(self.memory.as_ptr().add(self.start + self.filled.start), self.filled.len())
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file of `len` bytes that differ from their neighbours, so a misplaced byte shows.
    fn patterned_file(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let content: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&content).unwrap();
        file.as_file().sync_all().unwrap();
        (file, content)
    }

    fn evict_from_page_cache(file: &File) {
        // SAFETY: an advisory call on an open descriptor.
        assert_eq!(unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) }, 0);
    }

    fn read(path: &Path, range: Range<u64>) -> Bytes {
        RangeRead::new(range, &Arc::default()).unwrap().run(path).unwrap()
    }

    /// Ranges at every alignment, across block edges and past the end of the file, read both
    /// when the file is out of the page cache (direct reads) and when it is in (copies).
    #[test]
    fn reads_exactly_the_asked_range_from_disk_and_from_page_cache() {
        let len = 3 * DIRECT_ALIGN * 5 + 1234;
        let (file, content) = patterned_file(len);
        let size = len as u64;
        let block = DIRECT_ALIGN as u64;
        let ranges = [
            0..size,
            0..1,
            1..block,
            block - 1..block + 1,
            block..3 * block,
            123..size - 77,
            size - 5..size,
            size - 5..size + 100_000,
            size..size + 10,
            size + 3..size + 10,
            7..7,
        ];
        for warm in [false, true] {
            for range in ranges.iter().cloned() {
                if warm {
                    std::fs::read(file.path()).unwrap();
                } else {
                    evict_from_page_cache(file.as_file());
                }
                let got = read(file.path(), range.clone());
                let want = &content[(range.start as usize).min(len)..(range.end as usize).min(len)];
                assert_eq!(&got[..], want, "range {range:?}, page cache warm: {warm}");
            }
        }
    }

    /// The page-cache probe tells a cached range from an uncached one, and uncached ranges
    /// bypass the page cache. Kernels before 6.5 have no `cachestat`: the probe answers "not
    /// cached" and every read goes direct. A tmpfs file always lives in the page cache.
    #[test]
    fn page_cache_probe_follows_the_cache() {
        let all = 64 * DIRECT_ALIGN;
        let (file, _) = patterned_file(all);
        let f = file.as_file();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let version: Vec<u32> = kernel.split(['.', '-']).take(2).filter_map(|n| n.trim().parse().ok()).collect();
        // SAFETY: fstatfs fills the struct it is given.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstatfs(f.as_raw_fd(), &mut fs) }, 0);

        if version < vec![6, 5] {
            std::fs::read(file.path()).unwrap();
            assert!(!page_cache_holds(f, 0, all), "no cachestat on kernel {kernel}, yet a cached answer");
        } else if fs.f_type == libc::TMPFS_MAGIC {
            evict_from_page_cache(f);
            assert!(page_cache_holds(f, 0, all), "a tmpfs file is always in the page cache");
        } else {
            evict_from_page_cache(f);
            assert!(!page_cache_holds(f, 0, all));
            std::fs::read(file.path()).unwrap();
            assert!(page_cache_holds(f, 0, all), "cachestat did not see a file just read");
            evict_from_page_cache(f);
            assert!(!page_cache_holds(f, DIRECT_ALIGN as u64 + 5, 2 * DIRECT_ALIGN));
            // An uncached range is read direct: the read leaves nothing in the page cache.
            read(file.path(), 5..40_000);
            assert!(!page_cache_holds(f, 0, all), "an uncached read went through the page cache");
        }
    }

    fn kept(buffers: &ReadBuffers) -> (usize, usize) {
        let free = buffers.free.lock().unwrap();
        (free.buffers.len(), free.bytes)
    }

    #[test]
    fn read_buffers_are_reused_by_reads_that_fit_them() {
        let buffers = ReadBuffers::default();
        let mib = 1 << 20;
        let first = buffers.take(mib).unwrap();
        assert_eq!(first.capacity(), mib);
        let address = first.as_ptr();
        buffers.give(first);
        assert_eq!(kept(&buffers), (1, mib));
        // Much smaller reads leave it for a read its size; a fitting one gets it back.
        let smaller = buffers.take(700 * 1024).unwrap();
        assert_ne!(smaller.as_ptr(), address);
        let fitting = buffers.take(900 * 1024).unwrap();
        assert_eq!(fitting.as_ptr(), address);
        assert_eq!(kept(&buffers), (0, 0));
        // Small buffers are the allocator's business.
        buffers.give(Vec::with_capacity(4096));
        assert_eq!(kept(&buffers), (0, 0));
        // The oldest go beyond the retention bound.
        for _ in 0..40 {
            buffers.give(Vec::with_capacity(mib));
        }
        assert_eq!(kept(&buffers), (32, ReadBuffers::RETAINED));
    }

    /// A read's buffer goes back for the next read once the last slice of it is dropped.
    #[test]
    fn dropped_reads_return_their_buffer() {
        let (file, content) = patterned_file(600 * 1024);
        let buffers = Arc::default();
        let bytes = RangeRead::new(1000..500_000, &buffers).unwrap().run(file.path()).unwrap();
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(kept(&buffers).0, 0, "a slice still holds the buffer");
        assert_eq!(&slice[..], &content[1010..1020]);
        drop(slice);
        assert_eq!(kept(&buffers).0, 1);
        let again = RangeRead::new(2000..450_000, &buffers).unwrap().run(file.path()).unwrap();
        assert_eq!(kept(&buffers).0, 0, "the next read took it");
        assert_eq!(&again[..], &content[2000..450_000]);
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = RangeRead::new(0..10, &Arc::default()).unwrap().run(&dir.path().join("absent.mp4")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}

/// Bytes a download reads from a local file per blocking read.
const STREAM_CHUNK: u64 = 256 * 1024;

/// `range` of `file` as chunks of [`STREAM_CHUNK`] bytes, each read on the blocking pool when
/// the previous one has been taken, so a file sent whole is never held in memory. A file that
/// ends before the range does is an error (the response promised its length).
pub(super) fn file_chunks(
    file: File,
    path: String,
    range: Range<u64>,
) -> BoxStream<'static, crate::error::Result<Bytes>> {
    let read = move |(file, offset): (File, u64)| {
        let path = path.clone();
        async move {
            if offset >= range.end {
                return Ok(None);
            }
            let len = (range.end - offset).min(STREAM_CHUNK) as usize;
            let chunk = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0; len];
                file.read_exact_at(&mut buf, offset).map(|()| (Bytes::from(buf), file))
            })
            .await
            .map_err(io::Error::other)
            .and_then(|read| read)
            .map_err(|e| crate::error::Error::Storage { path, message: e.to_string() })?;
            let (bytes, file) = chunk;
            Ok(Some((bytes, (file, offset + len as u64))))
        }
    };
    futures::stream::try_unfold((file, range.start), read).boxed()
}
