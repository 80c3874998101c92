//! Prometheus metrics. Label handles are resolved once (at start or on first use of a label
//! pair) so the request path pays for an atomic add, not a hash lookup of label values.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::source::storage::Storage;

pub struct Metrics {
    registry: Registry,
    pub(crate) requests: IntCounterVec,
    pub(crate) request_seconds: HistogramVec,
    pub(crate) in_flight: IntGauge,
    /// Open client connections.
    pub(crate) connections_open: IntGauge,
    /// Connections turned away: over `max_connections` (503), or too slow with their first
    /// request head (408).
    pub(crate) connections_refused: IntCounter,
    pub(crate) connections_timed_out: IntCounter,
    pub(crate) connections_idle_dropped: IntCounter,
    pub(crate) cache_lookups: IntCounterVec,
    pub(crate) cache_evictions: IntCounterVec,
    pub(crate) cache_bytes: IntGaugeVec,
    pub(crate) cache_entries: IntGaugeVec,
    pub(crate) storage_requests: IntCounterVec,
    pub(crate) storage_bytes: IntCounterVec,
    pub(crate) segment_build_seconds: Histogram,
    /// Responses built from an asset's last good load while its storage fails.
    pub(crate) stale_served: IntCounterVec,
    /// Reads of the document store by result (`ok`, `error`).
    pub(crate) store_refreshes: IntCounterVec,
    pub(crate) store_last_success: IntGauge,
    /// Documents in the published state, and those of them that do not publish.
    pub(crate) store_documents: IntGauge,
    pub(crate) store_documents_skipped: IntGauge,
    /// Live ingest: fragments and media bytes stored, by protocol (`rtmp`, `cmaf`).
    pub fragments_ingested: IntCounterVec,
    pub bytes_ingested: IntCounterVec,
    /// Ingest connections closed by an error, by protocol and reason (`auth`, `media`,
    /// `no_init`, `unsupported`, `too_large`, `time`, `codec_change`, `storage`, …).
    pub ingest_errors: IntCounterVec,
    /// Open ingest connections, by protocol.
    pub ingest_connections: IntGaugeVec,
    /// From a fragment's last byte received to its track document stored (the fragment is
    /// then servable by every replica), seconds.
    pub ingest_store_seconds: Histogram,
    /// Handles of `requests` and `request_seconds` by kind ([`REQUEST_KINDS`]), and of
    /// `cache_lookups` by cache ([`CACHES`]), each resolved on first use: a series still
    /// appears once it counts something.
    request_handles: [KindHandles; REQUEST_KINDS.len()],
    lookup_handles: [[OnceLock<IntCounter>; 2]; CACHES.len()],
}

/// Every `kind` label of a request.
const REQUEST_KINDS: [&str; 13] = [
    "manifest",
    "playlist",
    "init",
    "segment",
    "keyframe",
    "thumbnail",
    "key",
    "download",
    "health",
    "metrics",
    "time",
    "player",
    "other",
];
/// The statuses most responses have, whose counters are kept resolved.
const COMMON_STATUSES: [u16; 3] = [200, 206, 304];
/// Every `cache` label of a lookup.
const CACHES: [&str; 4] = ["asset", "manifest", "segment", "failure"];

#[derive(Default)]
struct KindHandles {
    seconds: OnceLock<Histogram>,
    by_status: [OnceLock<IntCounter>; COMMON_STATUSES.len()],
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable_metric(name, e));
    registry.register(Box::new(c.clone())).unwrap_or_else(|e| unreachable_metric(name, e));
    c
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e));
    registry.register(Box::new(g.clone())).unwrap_or_else(|e| unreachable_metric(name, e));
    g
}

fn int_counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e));
    registry.register(Box::new(c.clone())).unwrap_or_else(|e| unreachable_metric(name, e));
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable_metric(name, e));
    registry.register(Box::new(g.clone())).unwrap_or_else(|e| unreachable_metric(name, e));
    g
}

/// Metric definitions are constants of this file; a failure here is a programming error
/// caught by the unit test below, never input-dependent.
fn unreachable_metric<T>(name: &str, e: prometheus::Error) -> T {
    panic!("metric {name} is malformed: {e}") // ok: static definitions, covered by a unit test
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        let latency_buckets =
            vec![0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "jit_http_request_duration_seconds",
                "Time from request to response headers, by resource kind",
            )
            .buckets(latency_buckets.clone()),
            &["kind"],
        )
        .unwrap_or_else(|e| unreachable_metric("jit_http_request_duration_seconds", e));
        registry
            .register(Box::new(request_seconds.clone()))
            .unwrap_or_else(|e| unreachable_metric("request_seconds", e));
        let in_flight = int_gauge(&registry, "jit_http_requests_in_flight", "Requests being handled");
        let segment_build_seconds = Histogram::with_opts(
            HistogramOpts::new("jit_segment_build_seconds", "Time to read and build one uncached segment")
                .buckets(latency_buckets),
        )
        .unwrap_or_else(|e| unreachable_metric("segment_build_seconds", e));
        registry
            .register(Box::new(segment_build_seconds.clone()))
            .unwrap_or_else(|e| unreachable_metric("segment_build", e));
        let ingest_store_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "jit_ingest_store_seconds",
                "From a live fragment's last byte received to its track document stored",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )
        .unwrap_or_else(|e| unreachable_metric("jit_ingest_store_seconds", e));
        registry
            .register(Box::new(ingest_store_seconds.clone()))
            .unwrap_or_else(|e| unreachable_metric("ingest_store_seconds", e));
        Metrics {
            fragments_ingested: counter_vec(
                &registry,
                "jit_ingest_fragments_total",
                "Live fragments stored, by ingest protocol",
                &["protocol"],
            ),
            bytes_ingested: counter_vec(
                &registry,
                "jit_ingest_bytes_total",
                "Live media bytes stored, by ingest protocol",
                &["protocol"],
            ),
            ingest_errors: counter_vec(
                &registry,
                "jit_ingest_errors_total",
                "Ingest connections closed by an error, by protocol and reason",
                &["protocol", "reason"],
            ),
            ingest_connections: gauge_vec(
                &registry,
                "jit_ingest_connections",
                "Open ingest connections, by protocol",
                &["protocol"],
            ),
            ingest_store_seconds,
            requests: counter_vec(
                &registry,
                "jit_http_requests_total",
                "HTTP requests by resource kind and status",
                &["kind", "status"],
            ),
            request_seconds,
            in_flight,
            connections_open: int_gauge(&registry, "jit_http_connections_open", "Open client connections"),
            connections_refused: int_counter(
                &registry,
                "jit_http_connections_refused_total",
                "Connections answered 503 or closed because max_connections were open",
            ),
            connections_timed_out: int_counter(
                &registry,
                "jit_http_connections_header_timeout_total",
                "Connections answered 408: first request head slower than header_read_timeout",
            ),
            connections_idle_dropped: int_counter(
                &registry,
                "jit_http_connections_idle_dropped_total",
                "Connections dropped with responses unfinished: no byte moved for idle_timeout and no close after GOAWAY",
            ),
            cache_lookups: counter_vec(
                &registry,
                "jit_cache_lookups_total",
                "Cache lookups by cache and result (hit|miss)",
                &["cache", "result"],
            ),
            cache_evictions: counter_vec(
                &registry,
                "jit_cache_evictions_total",
                "Entries evicted by capacity or expiry",
                &["cache"],
            ),
            cache_bytes: gauge_vec(&registry, "jit_cache_bytes", "Weighted size of each cache, bytes", &["cache"]),
            cache_entries: gauge_vec(&registry, "jit_cache_entries", "Entries in each cache", &["cache"]),
            storage_requests: counter_vec(
                &registry,
                "jit_storage_requests_total",
                "Storage requests issued, by account and kind (get, head, list)",
                &["storage", "kind"],
            ),
            storage_bytes: counter_vec(
                &registry,
                "jit_storage_bytes_total",
                "Bytes read from storage by account",
                &["storage"],
            ),
            segment_build_seconds,
            stale_served: counter_vec(
                &registry,
                "jit_stale_served_total",
                "Responses served from an asset's last good load while its storage fails, by cache",
                &["cache"],
            ),
            store_refreshes: counter_vec(
                &registry,
                "jit_store_refresh_total",
                "Reads of the document store by result (ok, error)",
                &["result"],
            ),
            store_last_success: int_gauge(
                &registry,
                "jit_store_last_success_timestamp_seconds",
                "Unix time of the last successful read of the document store",
            ),
            store_documents: int_gauge(&registry, "jit_store_documents", "Documents read from the store"),
            store_documents_skipped: int_gauge(
                &registry,
                "jit_store_documents_skipped",
                "Documents of the store that do not publish (missing asset, unknown policy, bad key; logged)",
            ),
            registry,
            request_handles: Default::default(),
            lookup_handles: Default::default(),
        }
    }

    /// Counts a request of `kind` answered with `status` after `seconds`.
    pub(crate) fn count_request(&self, kind: &str, status: http::StatusCode, seconds: f64) {
        let labels = [kind, status.as_str()];
        let Some(handles) = REQUEST_KINDS.iter().position(|k| *k == kind).and_then(|i| self.request_handles.get(i))
        else {
            self.requests.with_label_values(&labels).inc();
            self.request_seconds.with_label_values(&[kind]).observe(seconds);
            return;
        };
        handles.seconds.get_or_init(|| self.request_seconds.with_label_values(&[kind])).observe(seconds);
        match COMMON_STATUSES.iter().position(|s| *s == status.as_u16()).and_then(|i| handles.by_status.get(i)) {
            Some(counter) => counter.get_or_init(|| self.requests.with_label_values(&labels)).inc(),
            None => self.requests.with_label_values(&labels).inc(),
        }
    }

    /// Counts a lookup of `cache` that hit or missed.
    pub(crate) fn count_lookup(&self, cache: &str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        let handle = CACHES.iter().position(|c| *c == cache).and_then(|i| self.lookup_handles.get(i));
        match handle.and_then(|h| h.get(usize::from(hit))) {
            Some(counter) => counter.get_or_init(|| self.cache_lookups.with_label_values(&[cache, result])).inc(),
            None => self.cache_lookups.with_label_values(&[cache, result]).inc(),
        }
    }

    /// Copies a storage account's request counters into the exported counters.
    pub(crate) fn sync_storage(&self, storage: &Storage) {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = storage.stats();
        let name = storage.name();
        let advance = |c: IntCounter, now: u64| c.inc_by(now.saturating_sub(c.get()));
        advance(self.storage_requests.with_label_values(&[name, "get"]), stats.get_requests.load(Relaxed));
        advance(self.storage_requests.with_label_values(&[name, "head"]), stats.head_requests.load(Relaxed));
        advance(self.storage_requests.with_label_values(&[name, "list"]), stats.list_requests.load(Relaxed));
        advance(self.storage_bytes.with_label_values(&[name]), stats.bytes_read.load(Relaxed));
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding only fails on a writer error; a Vec does not fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_register_and_render() {
        let m = Metrics::new();
        m.requests.with_label_values(&["segment", "200"]).inc();
        m.count_request("segment", http::StatusCode::OK, 0.001);
        m.count_request("segment", http::StatusCode::NOT_FOUND, 0.001);
        m.count_request("unlisted", http::StatusCode::OK, 0.001);
        m.count_lookup("manifest", true);
        m.count_lookup("manifest", true);
        m.count_lookup("manifest", false);
        m.count_lookup("unlisted", false);
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            "jit_http_requests_total{kind=\"segment\",status=\"200\"} 2",
            "jit_http_requests_total{kind=\"segment\",status=\"404\"} 1",
            "jit_http_requests_total{kind=\"unlisted\",status=\"200\"} 1",
            "jit_http_request_duration_seconds_count{kind=\"segment\"} 2",
            "jit_cache_lookups_total{cache=\"manifest\",result=\"hit\"} 2",
            "jit_cache_lookups_total{cache=\"manifest\",result=\"miss\"} 1",
            "jit_cache_lookups_total{cache=\"unlisted\",result=\"miss\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("kind=\"playlist\""), "a series appears when first used: {text}");
    }
}
