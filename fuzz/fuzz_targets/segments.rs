#![no_main]
//! Segment building from a fuzzed index: the input is indexed from an in-memory storage
//! account and loaded as a single-file asset, then every manifest, init segment and media
//! segment of every track is built in CMAF (clear, cenc, cbcs, AES-128), DASH, MPEG-TS
//! (clear, AES-128; v3 muxing audio into video) and Smooth Streaming (clear, cenc). Errors
//! are fine; panics and oversized allocations are findings.

use jit_origin::output::package_resources;
use jit_origin::plan::url::{Encryption, Format, Resource};
use jit_origin::plan::Protection;
use jit_origin::protect::drm::DrmSystems;
use jit_origin::protect::{ContentKey, Scheme};
use jit_origin::serve::origin::render;
use jit_origin::source::asset::{load, AssetSource};
use jit_origin::source::timeline::SegmentPolicy;
use jit_origin_fuzz::MemoryStorage;
use libfuzzer_sys::fuzz_target;

const PATH: &str = "fuzz/input.mp4";

/// Every format with each encryption it supports.
const VARIANTS: [(Format, Option<Encryption>); 10] = [
    (Format::M3u8Cmaf, None),
    (Format::M3u8Cmaf, Some(Encryption::Common(Scheme::Cenc))),
    (Format::M3u8Cmaf, Some(Encryption::Common(Scheme::Cbcs))),
    (Format::M3u8Cmaf, Some(Encryption::Envelope)),
    (Format::MpdTimeCmaf, None),
    (Format::M3u8Aapl, None),
    (Format::M3u8Aapl, Some(Encryption::Envelope)),
    (Format::M3u8AaplV3, None),
    (Format::Smooth, None),
    (Format::Smooth, Some(Encryption::Common(Scheme::Cenc))),
];

thread_local! {
    static STORAGE: MemoryStorage = MemoryStorage::default();
}

fn with_encryption(resource: Resource, enc: Option<Encryption>) -> Resource {
    match resource {
        Resource::Manifest(mut o) => {
            o.encryption = enc;
            Resource::Manifest(o)
        }
        Resource::MediaPlaylist { bitrate, track, format, filters, audio, kind, .. } => {
            Resource::MediaPlaylist { bitrate, track, format, encryption: enc, filters, audio, kind }
        }
        Resource::Init { bitrate, track, format, .. } => Resource::Init { bitrate, track, format, encryption: enc },
        Resource::Segment { bitrate, track, time, format, audio, .. } => {
            Resource::Segment { bitrate, track, time, format, encryption: enc, audio }
        }
        Resource::KeyFrame { bitrate, track, time, format, .. } => {
            Resource::KeyFrame { bitrate, track, time, format, encryption: enc }
        }
        // Tiles are never encrypted.
        tile @ Resource::Thumbnail { .. } => tile,
    }
}

fuzz_target!(|data: &[u8]| {
    jit_origin_fuzz::bound_allocations(data.len());
    let key = ContentKey { kid: [0x11; 16], key: [0x22; 16] };
    let drm = DrmSystems::default();
    let protection = Protection { key: &key, key_uri: "https://keys.invalid/k", locator: "fuzz", drm: &drm };
    STORAGE.with(|s| {
        s.put(PATH, data);
        s.rt.block_on(async {
            let Ok(asset) = load(&s.storage, &AssetSource::File(PATH.into()), SegmentPolicy::default()).await else {
                return;
            };
            for (format, enc) in VARIANTS {
                for resource in package_resources(&asset, format) {
                    let resource = with_encryption(resource, enc);
                    let _ = render(&s.storage, &asset, &resource, true, Some(protection)).await;
                }
            }
        });
    });
});
