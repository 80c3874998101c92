//! Cache keys and ETag identities, derived from a request's [`Plan`].
//!
//! Keys name content, not URLs: a segment is keyed by its source file, the file's version and
//! the samples it holds, so every locator (and every manifest filter or URL spelling) of the
//! same asset shares one cached copy.

use std::hash::Hash;

use xxhash_rust::xxh3::Xxh3;

use crate::plan::locator::Locator;
use crate::plan::thumbnails::{ThumbnailSettings, TilePlan};
use crate::plan::url::{Encryption, Format, Resource};
use crate::plan::{DocumentPlan, Plan, SegmentPlan};
use crate::source::asset::AssetTrack;
use crate::source::storage::ObjectVersion;
use crate::source::timeline::Segment;

/// Where a request's resource lives: which asset of which storage account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct AssetKey {
    pub(super) storage: String,
    pub(super) folder: String,
    pub(super) name: String,
}

impl AssetKey {
    pub(super) fn of(locator: &Locator, name: &str) -> Self {
        AssetKey {
            storage: locator.storage.name().to_string(),
            folder: locator.asset_folder.clone(),
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ManifestKey {
    pub(super) asset: AssetKey,
    resource: Resource,
    extension: bool,
    /// Every filter applied (the locator's defaults, then the request's), by fingerprint:
    /// an edited filter makes another key and ETag.
    filters: Vec<u64>,
    /// Encrypted manifests and init segments embed the locator's key URI and DRM signalling
    /// (licence URLs, PSSH data, the PlayReady key checksum): their fingerprint (never the
    /// key), so cache entries and ETags are per signalling.
    protection_fingerprint: Option<u64>,
    /// A live manifest's version: it changes with every fragment stored.
    live: LiveVersion,
    /// Thumbnail settings: manifests list tiles of their size and timing.
    thumbnails: TileKey,
}

/// The newest change of a live event's documents (`LiveInfo::updated_ms`) a manifest was built
/// from; `None` for VOD and for init segments (immutable). Hashes to nothing when `None`, so
/// VOD keys and ETags are what they were before live events existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LiveVersion(pub(super) Option<u64>);

impl Hash for LiveVersion {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if let Some(updated_ms) = self.0 {
            updated_ms.hash(state);
        }
    }
}

impl ManifestKey {
    /// The key of a manifest, media playlist or init segment `plan` of `locator`.
    pub(super) fn of(locator: &Locator, plan: &Plan<'_>, document: &DocumentPlan<'_>) -> Self {
        let keys = plan.protection.and(locator.policy.keys());
        ManifestKey {
            asset: AssetKey::of(locator, &plan.asset.name),
            resource: plan.resource.clone(),
            extension: plan.extension,
            filters: document.filters.iter().map(|f| f.fingerprint()).collect(),
            protection_fingerprint: keys.map(|k| k.signalling_fingerprint),
            live: live_version(plan),
            thumbnails: TileKey(document.thumbnails.map(|s| (0, s))),
        }
    }
}

/// The live version a manifest of `plan` depends on (none for an init segment).
pub(super) fn live_version(plan: &Plan<'_>) -> LiveVersion {
    let document = !matches!(plan.resource, Resource::Init { .. });
    LiveVersion(plan.asset.live.as_ref().filter(|_| document).map(|live| live.updated_ms))
}

/// The bytes of a media segment are fully determined by these fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SegmentKey {
    storage: String,
    pub(super) file: String,
    version: ObjectVersion,
    track_position: usize,
    first_sample: u32,
    sample_count: u32,
    sequence_number: u32,
    /// Segment bytes differ per container and encryption (not per URL spelling or locator).
    format: Format,
    encryption: Option<Encryption>,
    /// xxh3 of the content key: encrypted bytes differ per key. Never the key itself.
    key_fingerprint: Option<u64>,
    /// HLS v3 TS segments also hold the default audio's segment: its file, version, track
    /// and samples.
    muxed_audio: Option<(String, ObjectVersion, usize, u32, u32)>,
    /// A keyframe resource differs from a one-sample segment of the same sample (its sample's
    /// duration, its AES-128 IV).
    keyframe: KeyFrameMark,
    /// A thumbnail tile instead of a segment: its time and how it is made.
    tile: TileKey,
}

/// Whether a [`SegmentKey`] is a keyframe's. Hashes to nothing for segments, so their keys and
/// ETags are what they were before keyframes existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyFrameMark(bool);

impl Hash for KeyFrameMark {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if self.0 {
            "keyframe".hash(state);
        }
    }
}

/// What names a thumbnail tile in [`SegmentKey`] (tiles share the segment cache). Hashes to
/// nothing for segments, so their keys and ETags are what they were before tiles existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TileKey(Option<(u64, ThumbnailSettings)>);

impl Hash for TileKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if let Some(tile) = self.0 {
            tile.hash(state);
        }
    }
}

impl SegmentKey {
    /// The key of the segment `plan` (of `segment`) of `locator`. A live segment's source is
    /// its fragment object (named by its time; its samples are not in the track's index).
    pub(super) fn of(locator: &Locator, plan: &Plan<'_>, segment: &SegmentPlan<'_>) -> Self {
        let (track, s) = (segment.track, &segment.segment);
        let source = |track: &AssetTrack, s: &Segment| match plan.asset.live {
            Some(_) => super::live::fragment_of(track, s),
            None => track.file.clone(),
        };
        SegmentKey {
            storage: locator.storage.name().to_string(),
            file: source(track, s),
            version: track.file_index.version.clone(),
            track_position: track.track_position,
            first_sample: s.first_sample,
            sample_count: s.sample_count,
            sequence_number: segment.sequence_number(),
            format: match segment.format {
                // HLS-CMAF and DASH-CMAF segments are the same bytes: one cache entry. Not a
                // sidecar's: WebVTT text in HLS, wvtt fMP4 in DASH.
                Format::MpdTimeCmaf if track.index().sidecar.is_none() => Format::M3u8Cmaf,
                other => other,
            },
            encryption: plan.resource.encryption(),
            key_fingerprint: plan.protection.and(locator.policy.keys()).map(|k| k.key_fingerprint),
            muxed_audio: segment.muxed_audio.map(|(a, s)| {
                (source(a, s), a.file_index.version.clone(), a.track_position, s.first_sample, s.sample_count)
            }),
            keyframe: KeyFrameMark(segment.keyframe),
            tile: TileKey(None),
        }
    }

    /// The key of thumbnail tile `tile` of `locator`: the source file and track, the tile's
    /// time and its settings (the same in every format, so the format fields are fixed).
    pub(super) fn of_tile(locator: &Locator, tile: &TilePlan<'_>) -> Self {
        let track = tile.track;
        SegmentKey {
            storage: locator.storage.name().to_string(),
            file: track.file.clone(),
            version: track.file_index.version.clone(),
            track_position: track.track_position,
            first_sample: tile.samples.first().copied().unwrap_or(0),
            sample_count: tile.samples.len() as u32,
            sequence_number: 0,
            format: Format::M3u8Cmaf,
            encryption: None,
            key_fingerprint: None,
            muxed_audio: None,
            keyframe: KeyFrameMark(false),
            tile: TileKey(Some((tile.tile.time, tile.settings))),
        }
    }

    /// The ETag identity of the segment: its key with the source ETags left out when replicas
    /// do not share them (local stores derive them from inode numbers).
    pub(super) fn identity(&self, shared_etags: bool) -> u64 {
        let mut recipe = self.clone();
        if !shared_etags {
            recipe.version.etag = None;
            if let Some(audio) = &mut recipe.muxed_audio {
                audio.1.etag = None;
            }
        }
        identity_of(&recipe, &[&self.version], shared_etags)
    }

    pub(super) fn version(&self) -> &ObjectVersion {
        &self.version
    }
}

/// Hash of everything that determines a response's bytes, for its ETag. The crate version
/// is part of it so a new packager build never reuses an old build's validators. Source
/// versions contribute size and mtime, and their ETag when every replica sees the same one
/// (cloud stores: a replaced object gets a new ETag even with the same size and second).
pub(super) fn identity_of(key: &impl Hash, sources: &[&ObjectVersion], shared_etags: bool) -> u64 {
    let mut h = Xxh3::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    // Hash through a stable byte form: `Hash` impls of std types are stable within a build
    // and our keys are plain data.
    key.hash(&mut HashWriter(&mut h));
    for v in sources {
        h.update(&v.size.to_le_bytes());
        h.update(&v.last_modified_unix.to_le_bytes());
        if let Some(etag) = v.etag.as_ref().filter(|_| shared_etags) {
            h.update(etag.as_bytes());
        }
    }
    h.digest()
}

struct HashWriter<'a>(&'a mut Xxh3);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        self.0.digest()
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
