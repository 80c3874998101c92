//! `streamingLocators/{name}/listPaths`: the manifest URLs (relative to the streaming host)
//! of every protocol and encryption scheme the locator's policy enables, and the files a
//! download-enabled policy serves, as AMS answers it.
//!
//! HLS lists `m3u8-aapl` and `m3u8-cmaf`, DASH `mpd-time-csf` and `mpd-time-cmaf`,
//! SmoothStreaming the `manifest` without `format=` (as AMS does), each only where the origin
//! serves that format with that scheme (MPEG-TS carries no Common Encryption, DASH no AES-128
//! envelope, Smooth `cenc` only): every path is one the router parses.

use serde::Serialize;

use crate::manage::error::{ApiError, ApiResult};
use crate::manage::model::{EnabledProtocols, EncryptionScheme};
use crate::plan::url::{self, Format, ManifestOptions, Resource};
use crate::source::asset::resolve_source;
use crate::source::storage::Storage;

/// The answer of `listPaths`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListPaths {
    pub streaming_paths: Vec<StreamingPath>,
    pub download_paths: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(super) struct StreamingPath {
    pub streaming_protocol: &'static str,
    pub encryption_scheme: &'static str,
    pub paths: Vec<String>,
}

/// The paths of locator `locator_id` over the asset in `folder` of `storage`. An asset whose
/// folder is empty or missing has no paths (as AMS answers for an asset without media).
pub(super) async fn list_paths(
    locator_id: &str,
    storage: &Storage,
    folder: &str,
    schemes: &[(EncryptionScheme, EnabledProtocols)],
    downloads: bool,
) -> ApiResult<ListPaths> {
    let unavailable = |e: crate::Error| ApiError::unavailable(format!("the asset's storage is unavailable: {e}"));
    let asset = match resolve_source(storage, folder, None).await {
        Ok(source) => source.name(),
        Err(crate::Error::NotFound(_)) => {
            return Ok(ListPaths { streaming_paths: Vec::new(), download_paths: Vec::new() })
        }
        Err(e) => return Err(unavailable(e)),
    };
    let mut streaming_paths = Vec::new();
    for (scheme, protocols) in schemes {
        let protocols: [(&str, bool, &[Format]); 3] = [
            ("Hls", protocols.hls, &[Format::M3u8Aapl, Format::M3u8Cmaf]),
            ("Dash", protocols.dash, &[Format::MpdTimeCsf, Format::MpdTimeCmaf]),
            ("SmoothStreaming", protocols.smooth_streaming, &[Format::Smooth]),
        ];
        for (protocol, enabled, formats) in protocols {
            let paths: Vec<String> = formats
                .iter()
                .copied()
                .filter(|_| enabled)
                .map(|format| {
                    Resource::Manifest(ManifestOptions {
                        encryption: scheme.encryption(),
                        ..ManifestOptions::new(format)
                    })
                })
                .map(|resource| url::format(&resource, false))
                .filter(|path| url::parse(path).is_ok())
                .map(|path| format!("/{locator_id}/{asset}.ism/{path}"))
                .collect();
            if !paths.is_empty() {
                streaming_paths.push(StreamingPath {
                    streaming_protocol: protocol,
                    encryption_scheme: scheme.as_str(),
                    paths,
                });
            }
        }
    }
    let mut download_paths = Vec::new();
    if downloads {
        let objects = storage.list(folder).await.map_err(unavailable)?;
        for object in objects {
            let path = object.location.to_string();
            let file = url::percent_encode(path.rsplit('/').next().unwrap_or(&path));
            // The files the download route serves (MP4 and WebVTT), as it parses their names.
            if url::DownloadFile::is_download_path(&file) {
                download_paths.push(format!("/{locator_id}/{file}"));
            }
        }
        download_paths.sort();
    }
    Ok(ListPaths { streaming_paths, download_paths })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manage::model::predefined_policy;

    #[tokio::test]
    async fn paths_are_those_the_origin_serves() {
        let storage = Storage::local("t", concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")).unwrap();
        let paths_of = |policy: &str| predefined_policy(policy).unwrap().1.schemes();
        let clear =
            list_paths("L", &storage, "ladder", &paths_of("Predefined_DownloadAndClearStreaming"), true).await.unwrap();
        let hls = &clear.streaming_paths[0];
        assert_eq!((hls.streaming_protocol, hls.encryption_scheme), ("Hls", "NoEncryption"));
        assert_eq!(hls.paths, ["/L/ladder.ism/manifest(format=m3u8-aapl)", "/L/ladder.ism/manifest(format=m3u8-cmaf)"]);
        assert_eq!(clear.streaming_paths[1].paths[0], "/L/ladder.ism/manifest(format=mpd-time-csf)");
        let smooth = &clear.streaming_paths[2];
        assert_eq!((smooth.streaming_protocol, smooth.encryption_scheme), ("SmoothStreaming", "NoEncryption"));
        assert_eq!(smooth.paths, ["/L/ladder.ism/manifest"]);
        assert!(
            clear.download_paths.iter().all(|p| p.starts_with("/L/") && p.ends_with(".mp4")),
            "{:?}",
            clear.download_paths
        );
        assert!(!clear.download_paths.is_empty());

        // Envelope: HLS only (DASH has no AES-128 envelope).
        let envelope = list_paths("L", &storage, "ladder", &paths_of("Predefined_ClearKey"), false).await.unwrap();
        assert_eq!(envelope.streaming_paths.len(), 1);
        assert_eq!(envelope.streaming_paths[0].paths[1], "/L/ladder.ism/manifest(format=m3u8-cmaf,encryption=cbc)");
        assert!(envelope.download_paths.is_empty());

        // cenc: Smooth with PlayReady; cbcs (FairPlay): HLS and DASH only.
        let drm = list_paths("L", &storage, "ladder", &paths_of("Predefined_MultiDrmStreaming"), false).await.unwrap();
        let smooth: Vec<_> = drm.streaming_paths.iter().filter(|p| p.streaming_protocol == "SmoothStreaming").collect();
        assert_eq!(smooth.len(), 1, "{:?}", drm.streaming_paths);
        assert_eq!(smooth[0].encryption_scheme, "CommonEncryptionCenc");
        assert_eq!(smooth[0].paths, ["/L/ladder.ism/manifest(encryption=cenc)"]);

        let missing =
            list_paths("L", &storage, "no-such-folder", &paths_of("Predefined_ClearKey"), true).await.unwrap();
        assert!(missing.streaming_paths.is_empty() && missing.download_paths.is_empty());
    }
}
