//! A storage wrapper for in-process tests: counts requests, can slow reads down (to widen
//! race windows) and can be switched to fail like a cloud backend in an outage.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Future, StreamExt};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult,
};

/// How reads and listings fail, while switched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// At once, the way a 5xx answer after the retries does (the origin answers 502).
    Fails = 1,
    /// After [`CountingStore::set_timeout`] (500 ms unless set), the way a request timeout
    /// does (the origin answers 504).
    TimesOut = 2,
}

#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    gets: AtomicU64,
    lists: AtomicU64,
    /// Added to every `get_opts`, milliseconds.
    pub delay_ms: AtomicU64,
    fault: AtomicU8,
    timeout_ms: AtomicU64,
}

impl CountingStore {
    pub fn over(inner: Arc<dyn ObjectStore>) -> Arc<CountingStore> {
        Arc::new(CountingStore {
            inner,
            gets: AtomicU64::new(0),
            lists: AtomicU64::new(0),
            delay_ms: AtomicU64::new(0),
            fault: AtomicU8::new(Fault::None as u8),
            timeout_ms: AtomicU64::new(500),
        })
    }
    pub fn over_fixtures() -> Arc<CountingStore> {
        Self::over(Arc::new(LocalFileSystem::new_with_prefix(super::fixtures_dir()).expect("fixtures store")))
    }
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }
    pub fn lists(&self) -> u64 {
        self.lists.load(Ordering::SeqCst)
    }
    pub fn set_fault(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }
    /// How long a request takes to fail under [`Fault::TimesOut`].
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms.store(timeout.as_millis() as u64, Ordering::SeqCst);
    }

    /// How the fault switched on fails a request, if one is.
    fn fault_kind(&self) -> Option<HttpErrorKind> {
        match self.fault.load(Ordering::SeqCst) {
            f if f == Fault::Fails as u8 => Some(HttpErrorKind::Request),
            f if f == Fault::TimesOut as u8 => Some(HttpErrorKind::Timeout),
            _ => None,
        }
    }

    /// The error of the fault switched on, after its delay; `None` when storage is healthy.
    async fn fault(&self) -> Option<object_store::Error> {
        let kind = self.fault_kind()?;
        if kind == HttpErrorKind::Timeout {
            tokio::time::sleep(Duration::from_millis(self.timeout_ms.load(Ordering::SeqCst))).await;
        }
        Some(fault_error(kind))
    }
}

/// A transport failure of `kind`, as object_store reports one from a cloud backend.
fn fault_error(kind: HttpErrorKind) -> object_store::Error {
    let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "storage switched off by the test");
    object_store::Error::Generic { store: "CountingStore", source: Box::new(HttpError::new(kind, cause)) }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

// `ObjectStore` is an `#[async_trait]` trait; these are its expanded signatures.
impl ObjectStore for CountingStore {
    fn put_opts<'l0, 'l1, 'at>(
        &'l0 self,
        location: &'l1 Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'at, PutResult>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        self.inner.put_opts(location, payload, opts)
    }

    fn put_multipart_opts<'l0, 'l1, 'at>(
        &'l0 self,
        location: &'l1 Path,
        opts: PutMultipartOptions,
    ) -> BoxFut<'at, Box<dyn MultipartUpload>>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        self.inner.put_multipart_opts(location, opts)
    }

    fn get_opts<'l0, 'l1, 'at>(&'l0 self, location: &'l1 Path, options: GetOptions) -> BoxFut<'at, GetResult>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        Box::pin(async move {
            self.gets.fetch_add(1, Ordering::SeqCst);
            if let Some(e) = self.fault().await {
                return Err(e);
            }
            let delay = self.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            self.inner.get_opts(location, options).await
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        if let Some(kind) = self.fault_kind() {
            // The stream outlives `self`: it fails at once, without the timeout's delay.
            return futures::stream::once(async move { Err(fault_error(kind)) }).boxed();
        }
        self.inner.list(prefix)
    }

    fn list_with_delimiter<'l0, 'l1, 'at>(&'l0 self, prefix: Option<&'l1 Path>) -> BoxFut<'at, ListResult>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        self.lists.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if let Some(e) = self.fault().await {
                return Err(e);
            }
            self.inner.list_with_delimiter(prefix).await
        })
    }

    fn copy_opts<'l0, 'l1, 'l2, 'at>(&'l0 self, from: &'l1 Path, to: &'l2 Path, options: CopyOptions) -> BoxFut<'at, ()>
    where
        'l0: 'at,
        'l1: 'at,
        'l2: 'at,
        Self: 'at,
    {
        self.inner.copy_opts(from, to, options)
    }
}
