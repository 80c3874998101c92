//! Packaging: manifests (HLS, DASH) and segments (CMAF) built from an asset.

pub mod cmaf;
pub mod dash;
pub mod hls;
