//! Live events as published: where an event's media goes and who may push it. The event's
//! running state and timeline live in storage (`source::live`), shared by every replica.

use std::sync::Arc;

use crate::secret::Secret;
use crate::source::storage::Storage;

/// A live event (config `[[live_event]]`, or AMS `liveEvents/{name}` with its live output).
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// The event's name (AMS `liveEventName`): `/ingest/{name}/…` on the ingest listener.
    pub name: String,
    /// What an encoder must present: the RTMP stream key's first part
    /// (`rtmp://host/live/{token}[/{stream}]`), or the CMAF ingest URL's token segment.
    pub access_token: Secret,
    /// Where the event records: the asset folder of its live output, in `storage`.
    pub storage: Arc<Storage>,
    pub folder: String,
    /// URL name of the asset (AMS live output `manifestName`); the folder's name when absent.
    pub manifest_name: Option<String>,
    /// AMS `archiveWindowLength`: how far back live manifests reach, seconds (60 to 90,000).
    pub dvr_window_secs: u64,
}

/// The DVR window bounds AMS allows (1 minute to 25 hours), seconds.
pub const DVR_WINDOW_SECS: std::ops::RangeInclusive<u64> = 60..=90_000;

impl LiveEvent {
    /// Whether `token` is this event's access token (compared in constant time).
    pub fn accepts_token(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.access_token.expose().as_bytes();
        !expected.is_empty() && bool::from(expected.ct_eq(token.as_bytes()))
    }
}

/// Checks a live event name as AMS allows it (`liveEventName`): 1–32 letters, digits and
/// hyphens, starting and ending with a letter or digit. It is a path segment of the CMAF
/// ingest URL.
pub fn check_name(name: &str) -> Result<(), String> {
    let allowed = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !(1..=32).contains(&name.len()) || !allowed || name.starts_with('-') || name.ends_with('-') {
        return Err(format!(
            "'{name}' must be 1 to 32 letters, digits and hyphens, starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks an ingest access token: 16 to 128 letters, digits, `-` or `_` (a GUID, with or
/// without hyphens, as AMS gives them), so it is hard to guess and is one URL path segment.
/// The message never shows the token.
pub fn check_access_token(token: &str) -> Result<(), String> {
    if !(16..=128).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
        return Err("must be 16 to 128 letters, digits, '-' or '_'".into());
    }
    Ok(())
}

/// Checks a DVR window against [`DVR_WINDOW_SECS`].
pub fn check_dvr_window(secs: u64) -> Result<(), String> {
    if !DVR_WINDOW_SECS.contains(&secs) {
        return Err(format!(
            "{secs} s is outside {} s (1 minute) to {} s (25 hours)",
            DVR_WINDOW_SECS.start(),
            DVR_WINDOW_SECS.end()
        ));
    }
    Ok(())
}
