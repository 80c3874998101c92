#![no_main]
//! The management API's request bodies and the store's documents (one JSON model for both):
//! reading any bytes as any resource, checking it, and building what the origin makes of it
//! (a streaming policy's terms, a key policy's token verifier with its symmetric or RSA keys,
//! a filter, a live output's DVR window) never panics. The first byte picks the resource.

use jit_origin::manage::model::{
    self, AssetProperties, ContentKeyPolicyProperties, LiveEventProperties, LiveOutputProperties, Resource,
    StreamingLocatorProperties, StreamingPolicyProperties,
};
use jit_origin::plan::filter::FilterDefinition;
use jit_origin::protect::token::{KeyAccess, TokenVerifier};
use libfuzzer_sys::fuzz_target;

/// The properties of `body` read as a resource of type `P`, if it reads.
macro_rules! properties {
    ($p:ty, $body:expr) => {
        model::parse::<Resource<$p>>($body).ok().map(|r| r.properties)
    };
}

fuzz_target!(|data: &[u8]| {
    jit_origin_fuzz::bound_allocations(data.len());
    let Some((&kind, body)) = data.split_first() else { return };
    match kind % 7 {
        0 => {
            if let Some(asset) = properties!(AssetProperties, body) {
                let _ = asset.check();
            }
        }
        1 => {
            if let Some(locator) = properties!(StreamingLocatorProperties, body) {
                if locator.check().is_ok() {
                    let _ = locator.content_keys();
                }
            }
        }
        2 => {
            if let Some(policy) = properties!(StreamingPolicyProperties, body) {
                if policy.check().is_ok() {
                    let _ = policy.terms();
                    let _ = policy.schemes();
                }
            }
        }
        3 => {
            if let Some(policy) = properties!(ContentKeyPolicyProperties, body) {
                if policy.check().is_ok() {
                    if let Ok(KeyAccess::Token(token)) = policy.key_access() {
                        let _ = TokenVerifier::new(&token);
                    }
                }
            }
        }
        4 => {
            if let Some(event) = properties!(LiveEventProperties, body) {
                let _ = event.check();
            }
        }
        5 => {
            if let Some(output) = properties!(LiveOutputProperties, body) {
                if output.check().is_ok() {
                    let _ = output.dvr_window_secs();
                }
            }
        }
        _ => {
            if let Some(filter) = properties!(FilterDefinition, body) {
                let _ = filter.check();
            }
        }
    }
});
