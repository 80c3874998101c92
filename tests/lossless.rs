//! Decoding oracle over every fixture asset: package to HLS-CMAF and DASH-CMAF, decode each
//! track with ffmpeg, compare frame hashes with the source (see tests/common for the details).

mod common;

use common::{check_asset, fixtures_dir, Format};

macro_rules! lossless {
    ($($asset:literal => $hls:ident, $dash:ident;)*) => {$(
        #[test]
        fn $hls() {
            check_asset(&fixtures_dir().join($asset), &[Format::Hls]);
        }
        #[test]
        fn $dash() {
            check_asset(&fixtures_dir().join($asset), &[Format::Dash]);
        }
    )*};
}

lossless! {
    "ladder" => ladder_hls, ladder_dash;
    "ladder-frag" => ladder_frag_hls, ladder_frag_dash;
    "ladder-cmaf" => ladder_cmaf_hls, ladder_cmaf_dash;
    "muxed" => muxed_hls, muxed_dash;
    "hevc" => hevc_hls, hevc_dash;
    "dolby" => dolby_hls, dolby_dash;
    "edit" => edit_hls, edit_dash;
    "hdr10" => hdr10_hls, hdr10_dash;
    "av1" => av1_hls, av1_dash;
}
