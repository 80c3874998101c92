//! A locator's publishing window (AMS `startTime` / `endTime`): outside it the locator serves
//! nothing, and inside it no response may be cached past its end.
//!
//! Outside the window every request of the locator is a 404, as AMS answers it: to a viewer the
//! locator does not exist (yet, or any more). The refusal is cached like other errors, but
//! never past the start of a locator that has not started, so CDNs pick up the start on time.
//! Inside the window, `Cache-Control` lifetimes are cut to the seconds left ([`cap_max_age`]),
//! so no CDN or browser keeps serving the locator after its end.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderValue};

use crate::plan::locator::Locator;

/// Why a locator serves nothing now.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not found: {reason}")]
pub(super) struct Outside {
    reason: String,
    /// How long until the locator starts, when it has not yet.
    pub(super) starts_in: Option<Duration>,
}

/// Seconds `locator` is published for from `now` on (`None`: no end), or why it is not
/// published at `now`.
pub(super) fn check(locator: &Locator, now: SystemTime) -> Result<Option<u64>, Outside> {
    if let Some(start) = locator.start_time.filter(|start| now < *start) {
        return Err(Outside {
            reason: format!("locator '{}' is published from {}", locator.id, rfc3339(start)),
            starts_in: start.duration_since(now).ok(),
        });
    }
    match locator.end_time {
        None => Ok(None),
        Some(end) => match end.duration_since(now) {
            Ok(left) if !left.is_zero() => Ok(Some(left.as_secs())),
            _ => Err(Outside {
                reason: format!("locator '{}' was published until {}", locator.id, rfc3339(end)),
                starts_in: None,
            }),
        },
    }
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Cuts every lifetime in `headers`' `Cache-Control` (`max-age`, `s-maxage`) to `cap` seconds,
/// and drops the permission to serve the response stale (`stale-if-error`), which would begin
/// when the capped lifetime ends: at the end of the window.
pub(super) fn cap_max_age(headers: &mut HeaderMap, cap: u64) {
    let Some(value) = headers.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()) else { return };
    let capped: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.starts_with("stale-if-error"))
        .map(|directive| match directive.split_once('=') {
            Some((name @ ("max-age" | "s-maxage"), secs)) => {
                format!("{name}={}", secs.parse::<u64>().map_or(0, |secs| secs.min(cap)))
            }
            _ => directive.to_string(),
        })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&capped.join(", ")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn windowed(start: Option<u64>, end: Option<u64>) -> Locator {
        let storage = std::sync::Arc::new(crate::source::storage::Storage::new(
            "s",
            std::sync::Arc::new(object_store::memory::InMemory::new()),
        ));
        Locator {
            id: "loc".into(),
            storage,
            asset_folder: "a".into(),
            asset_name: None,
            start_time: start.map(at),
            end_time: end.map(at),
            streaming: true,
            downloads: false,
            policy: crate::plan::locator::StreamingPolicy::Clear,
            default_filters: Vec::new(),
            key_access: None,
            url_signing_key: None,
        }
    }

    #[test]
    fn a_locator_serves_inside_its_window_only() {
        // 2026-01-01T00:00:00Z and one day later.
        let (start, end) = (1_767_225_600, 1_767_312_000);
        let l = windowed(Some(start), Some(end));
        let early = check(&l, at(start - 30)).unwrap_err();
        assert_eq!(early.to_string(), "not found: locator 'loc' is published from 2026-01-01T00:00:00Z");
        assert_eq!(early.starts_in, Some(Duration::from_secs(30)));
        assert_eq!(check(&l, at(start)).unwrap(), Some(86_400));
        assert_eq!(check(&l, at(end - 1)).unwrap(), Some(1));
        let late = check(&l, at(end)).unwrap_err();
        assert_eq!(late.to_string(), "not found: locator 'loc' was published until 2026-01-02T00:00:00Z");
        assert_eq!(late.starts_in, None);
        assert_eq!(check(&windowed(None, None), at(0)).unwrap(), None);
        assert_eq!(check(&windowed(Some(start), None), at(end)).unwrap(), None);
    }

    #[test]
    fn lifetimes_are_cut_to_the_cap() {
        let capped = |value: &str, cap| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
            cap_max_age(&mut headers, cap);
            headers[header::CACHE_CONTROL].to_str().unwrap().to_string()
        };
        assert_eq!(
            capped("public, max-age=31536000, immutable, stale-if-error=86400", 42),
            "public, max-age=42, immutable"
        );
        assert_eq!(capped("public, max-age=10", 3600), "public, max-age=10");
        assert_eq!(capped("public,max-age=600,s-maxage=900", 0), "public, max-age=0, s-maxage=0");
        assert_eq!(capped("private, no-store", 5), "private, no-store");
    }
}
