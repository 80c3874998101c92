//! How the replica's reads of the store are going, for `/readyz`: a store outage does not make
//! the origin unready (it keeps serving the last state it read), but operators must see it.

use std::time::{Duration, SystemTime};

/// The outcome of the replica's reads of the store so far.
#[derive(Debug, Clone, Default)]
pub struct StoreHealth {
    /// When the last read succeeded.
    pub last_success: Option<SystemTime>,
    /// Since when reads fail, and why (the last error; never a credential or an endpoint).
    pub failing: Option<(SystemTime, String)>,
    /// Documents in the published state, and those of them that could not be published.
    pub documents: usize,
    pub skipped: usize,
}

impl StoreHealth {
    /// Records a successful read of `documents`, `skipped` of which do not publish.
    pub fn succeeded(&mut self, at: SystemTime, documents: usize, skipped: usize) {
        *self = StoreHealth { last_success: Some(at), failing: None, documents, skipped };
    }

    /// Records a failed read; the state read last stays published.
    pub fn failed(&mut self, at: SystemTime, error: String) {
        let since = self.failing.take().map_or(at, |(since, _)| since);
        self.failing = Some((since, error));
    }

    /// One line for `/readyz`, as of `now`.
    pub fn describe(&self, now: SystemTime) -> String {
        let ago = |t: SystemTime| format!("{:.1} s ago", now.duration_since(t).unwrap_or(Duration::ZERO).as_secs_f64());
        let published = match self.last_success {
            Some(at) => format!("{} documents ({} skipped), read {}", self.documents, self.skipped, ago(at)),
            None => "never read: serving the config file's locators and filters".to_string(),
        };
        match &self.failing {
            None => format!("store: ok, {published}"),
            Some((since, error)) => {
                format!("store: failing since {} ({error}); serving the last good state: {published}", ago(*since))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_keeps_its_start_and_the_last_good_state() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut health = StoreHealth::default();
        assert!(health.describe(t0).contains("never read"), "{}", health.describe(t0));
        health.succeeded(at(1), 12, 1);
        assert_eq!(health.describe(at(3)), "store: ok, 12 documents (1 skipped), read 2.0 s ago");
        health.failed(at(5), "cannot reach the storage service".into());
        health.failed(at(7), "the storage service answered 503".into());
        assert_eq!(
            health.describe(at(9)),
            "store: failing since 4.0 s ago (the storage service answered 503); serving the last good state: \
             12 documents (1 skipped), read 8.0 s ago"
        );
        health.succeeded(at(10), 11, 0);
        assert!(health.describe(at(10)).starts_with("store: ok, 11 documents"));
    }
}
