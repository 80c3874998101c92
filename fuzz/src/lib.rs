//! What every fuzz target shares: an allocator that turns an oversized allocation into a
//! finding, and an in-memory storage account to index fuzzed files from.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use jit_origin::source::storage::Storage;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

/// The largest single allocation any target may make for an input of `len` bytes: the origin
/// legitimately allocates in proportion to its input (sample tables, one TS packet per tiny
/// sample: under 64 bytes of output per input byte) plus fixed buffers (runtime, 64 KiB probe
/// reads). Anything above this is a table size, offset or count trusted from the input.
pub fn allocation_bound(len: usize) -> usize {
    (1 << 20) + 64 * len
}

static BOUND: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sets the single-allocation bound for the input about to run.
pub fn bound_allocations(input_len: usize) {
    BOUND.store(allocation_bound(input_len), Ordering::Relaxed);
}

/// The system allocator, aborting (a libFuzzer crash, input saved) on any single allocation
/// above the bound. libFuzzer's own `-malloc_limit_mb` needs a sanitizer's malloc hooks, which
/// stable Rust does not have.
pub struct BoundedAlloc;

impl BoundedAlloc {
    fn check(size: usize) {
        let bound = BOUND.load(Ordering::Relaxed);
        // A panic is already a finding; printing its backtrace may allocate more than the bound.
        if size > bound && !std::thread::panicking() {
            // Lift the bound so the report below can allocate, then crash. The stack only with
            // RUST_BACKTRACE=1 (replaying): symbolizing takes seconds, and libFuzzer's timeout
            // alarm firing inside malloc meanwhile would deadlock.
            BOUND.store(usize::MAX, Ordering::Relaxed);
            eprintln!(
                "\n==ALLOCATION BOUND== {size} bytes requested, bound {bound}\n{}",
                std::backtrace::Backtrace::capture()
            );
            std::process::abort();
        }
    }
}

// SAFETY: forwards to `System` unchanged; only adds a size check before allocating.
unsafe impl GlobalAlloc for BoundedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: BoundedAlloc = BoundedAlloc;

/// One in-memory storage account and the single-threaded runtime that drives it.
pub struct MemoryStorage {
    pub rt: tokio::runtime::Runtime,
    store: Arc<InMemory>,
    pub storage: Storage,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        let store = Arc::new(InMemory::new());
        let storage = Storage::new("mem", store.clone() as Arc<dyn ObjectStore>);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio runtime");
        MemoryStorage { rt, store, storage }
    }
}

impl MemoryStorage {
    /// Stores `data` at `path`, replacing what was there.
    pub fn put(&self, path: &str, data: &[u8]) {
        let (store, path) = (self.store.clone(), StorePath::from(path));
        let data = Bytes::copy_from_slice(data);
        self.rt.block_on(async move { store.put(&path, data.into()).await }).expect("in-memory put");
    }
}
