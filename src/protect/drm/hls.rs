//! HLS `EXT-X-KEY` signalling — RFC 8216bis: `SAMPLE-AES` (cbcs) / `SAMPLE-AES-CTR` (cenc) with
//! the KEYFORMATs players recognise (see [`hls_key_lines`]).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::playready::playready_header_object;
use super::pssh::widevine_pssh;
use super::{expand_template, DrmSystems};
use crate::protect::{ContentKey, Scheme};

/// HLS KEYFORMAT values.
const KEYFORMAT_FAIRPLAY: &str = "com.apple.streamingkeydelivery";
const KEYFORMAT_WIDEVINE: &str = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";
const KEYFORMAT_PLAYREADY: &str = "com.microsoft.playready";
const KEYFORMAT_CLEARKEY: &str = "org.w3.clearkey";
const KEYFORMAT_IDENTITY: &str = "identity";

/// HLS `METHOD` for fMP4 segments: `SAMPLE-AES-CTR` for cenc, `SAMPLE-AES` for cbcs.
fn hls_method(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Cenc => "SAMPLE-AES-CTR",
        Scheme::Cbcs => "SAMPLE-AES",
    }
}

/// One `EXT-X-KEY` line: its KEYFORMAT and the attribute list that follows `#EXT-X-KEY:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsKeyLine {
    pub keyformat: &'static str,
    pub attributes: String,
    /// Where the URI sits in `attributes`, so a playlist can add query parameters to it.
    pub uri: std::ops::Range<usize>,
}

/// The `EXT-X-KEY` attribute lists for a cenc/cbcs fMP4 rendition, one per signalled DRM, in
/// this order (each player picks the KEYFORMAT it knows and ignores the rest):
///
/// * **FairPlay** (cbcs only) — `METHOD=SAMPLE-AES,URI="skd://…",
///   KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"`. Safari/AVPlayer hand the
///   `skd://` URI to the app's key-request delegate / EME `initData`.
/// * **Widevine** — `URI="data:text/plain;base64,<Widevine pssh box>"`, `KEYID=0x<kid>`,
///   `KEYFORMAT="urn:uuid:edef8ba9-…"`. Shaka and hls.js use the PSSH as EME init data; both read
///   `KEYID`.
/// * **PlayReady** — `URI="data:text/plain;charset=UTF-16;base64,<PRO>"`, `KEYID=0x<kid>`,
///   `KEYFORMAT="com.microsoft.playready"`. Shaka wraps the PRO into a pssh and takes LA_URL from
///   it; hls.js reads the KID from the WRMHEADER.
/// * **Clear Key for hls.js** — `URI="<clearkey licence URL>"`, `KEYID=0x<kid>`,
///   `KEYFORMAT="org.w3.clearkey"`. hls.js takes the KID from `KEYID` (a non-`data:` URI carries
///   no KID); the licence URL it POSTs to comes from its `drmSystems['org.w3.clearkey'].licenseUrl`
///   config, so the URI here is informational for the app. Shaka ignores this KEYFORMAT.
/// * **`identity` for Shaka** (only when `clearkey.key_url` is set) — `URI="<raw key URL>"`,
///   `KEYFORMAT="identity"`. Shaka fetches the URI as the raw 16-byte key and takes the KID from
///   the init segment's `tenc`; Apple players also accept identity keys for cbcs.
///
/// For cbcs the two Clear Key lines exclude each other: hls.js (1.7) prefers an `identity` key
/// over every other KEYFORMAT and, with `METHOD=SAMPLE-AES`, treats it as MPEG-TS sample
/// encryption, which it cannot apply to fMP4, so playback stalls. A cbcs playlist therefore has
/// the `identity` line when `key_url` is set (Shaka, Apple) and the `org.w3.clearkey` line
/// otherwise (hls.js). hls.js ignores `identity` with `SAMPLE-AES-CTR`, so cenc has both.
///
/// All lines use `METHOD=SAMPLE-AES` for cbcs and `SAMPLE-AES-CTR` for cenc, no `IV` (fMP4
/// carries IVs in `tenc`/`senc`), and `KEYFORMATVERSIONS="1"`. KEYFORMAT needs
/// `EXT-X-VERSION` ≥ 5. The same attribute lists are valid for `#EXT-X-SESSION-KEY` in a
/// multivariant playlist.
pub fn hls_key_lines(scheme: Scheme, key: &ContentKey, locator: &str, systems: &DrmSystems) -> Vec<HlsKeyLine> {
    let method = hls_method(scheme);
    let kid = &key.kid;
    let keyid = format!("0x{}", base16ct::lower::encode_string(kid));
    let mut lines = Vec::new();
    let mut push = |keyformat: &'static str, uri: String, with_keyid: bool| {
        let keyid_attr = if with_keyid { format!(",KEYID={keyid}") } else { String::new() };
        let uri_start = format!("METHOD={method},URI=\"").len();
        lines.push(HlsKeyLine {
            keyformat,
            attributes: format!(
                "METHOD={method},URI=\"{uri}\"{keyid_attr},KEYFORMAT=\"{keyformat}\",KEYFORMATVERSIONS=\"1\""
            ),
            uri: uri_start..uri_start + uri.len(),
        });
    };
    if let (Some(fp), Scheme::Cbcs) = (&systems.fairplay, scheme) {
        push(KEYFORMAT_FAIRPLAY, expand_template(&fp.key_uri, kid, locator), false);
    }
    if let Some(wv) = &systems.widevine {
        let content_id = wv.content_id.as_deref().map(|c| expand_template(c, kid, locator)).unwrap_or_default();
        let pssh = widevine_pssh(&[*kid], content_id.as_bytes(), scheme);
        push(KEYFORMAT_WIDEVINE, format!("data:text/plain;base64,{}", STANDARD.encode(&pssh)), true);
    }
    if let Some(pr) = &systems.playready {
        let la_url = pr.license_url.as_deref().map(|u| expand_template(u, kid, locator));
        let pro = playready_header_object(kid, &key.key, la_url.as_deref(), scheme);
        push(KEYFORMAT_PLAYREADY, format!("data:text/plain;charset=UTF-16;base64,{}", STANDARD.encode(&pro)), true);
    }
    if let Some(ck) = &systems.clearkey {
        if ck.key_url.is_none() || scheme == Scheme::Cenc {
            push(KEYFORMAT_CLEARKEY, expand_template(&ck.license_url, kid, locator), true);
        }
        if let Some(key_url) = &ck.key_url {
            push(KEYFORMAT_IDENTITY, expand_template(key_url, kid, locator), false);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protect::decode_base64;
    use crate::protect::drm::playready::tests::parse_pro;
    use crate::protect::drm::pssh::tests::parse_pssh;
    use crate::protect::drm::pssh::{widevine_pssh_data, WIDEVINE_SYSTEM_ID};
    use crate::protect::drm::tests::{systems, test_key, LOCATOR};

    fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
        let m3u8 = format!("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-KEY:{attrs}\n#EXTINF:4,\na.m4s\n");
        // Must parse as a playlist (quoted strings intact).
        assert!(m3u8_rs::parse_media_playlist_res(m3u8.as_bytes()).is_ok());
        let pos = attrs.find(&format!("{name}="))?;
        let rest = &attrs[pos + name.len() + 1..];
        Some(match rest.strip_prefix('"') {
            Some(q) => &q[..q.find('"').unwrap()],
            None => rest.split(',').next().unwrap(),
        })
    }

    #[test]
    fn hls_lines_for_cbcs() {
        let key = test_key();
        let lines = hls_key_lines(Scheme::Cbcs, &key, LOCATOR, &systems());
        let formats: Vec<_> = lines.iter().map(|l| l.keyformat).collect();
        assert_eq!(formats, [KEYFORMAT_FAIRPLAY, KEYFORMAT_WIDEVINE, KEYFORMAT_PLAYREADY, KEYFORMAT_IDENTITY]);
        for l in &lines {
            assert_eq!(attr(&l.attributes, "METHOD"), Some("SAMPLE-AES"));
            assert_eq!(attr(&l.attributes, "KEYFORMAT"), Some(l.keyformat));
            assert_eq!(attr(&l.attributes, "KEYFORMATVERSIONS"), Some("1"));
            assert!(attr(&l.attributes, "IV").is_none());
            assert!(l.attributes.starts_with("METHOD="));
        }
        assert_eq!(attr(&lines[0].attributes, "URI"), Some("skd://9eb4050de44b4802932e27d75083e266"));
        assert!(attr(&lines[0].attributes, "KEYID").is_none());
        // Widevine: data URI with a v0 Widevine pssh, KEYID.
        let uri = attr(&lines[1].attributes, "URI").unwrap();
        let pssh = decode_base64(uri.strip_prefix("data:text/plain;base64,").unwrap()).unwrap();
        let (_, sys, _, data) = parse_pssh(&pssh);
        assert_eq!(sys, WIDEVINE_SYSTEM_ID);
        assert_eq!(data, widevine_pssh_data(&[key.kid], LOCATOR.as_bytes(), Scheme::Cbcs));
        assert_eq!(attr(&lines[1].attributes, "KEYID"), Some("0x9eb4050de44b4802932e27d75083e266"));
        // PlayReady: UTF-16 PRO, v4.3, LA_URL expanded and XML-escaped.
        let uri = attr(&lines[2].attributes, "URI").unwrap();
        let pro = decode_base64(uri.strip_prefix("data:text/plain;charset=UTF-16;base64,").unwrap()).unwrap();
        let (_, _, _, xml) = parse_pro(&pro);
        assert!(xml.contains("version=\"4.3.0.0\""));
        assert!(xml.contains(
            "<LA_URL>https://pr.example/rightsmanager.asmx?kid=9eb4050d-e44b-4802-932e-27d75083e266&amp;x=1</LA_URL>"
        ));
        // identity (Shaka): the raw key URL, and no org.w3.clearkey line, which hls.js could
        // not use next to an identity key anyway.
        assert_eq!(
            attr(&lines[3].attributes, "URI"),
            Some("https://origin.example/keys/11111111-2222-3333-4444-555555555555/9eb4050de44b4802932e27d75083e266")
        );
        // Without a key URL: the org.w3.clearkey line (hls.js) with the licence URL and KEYID.
        let mut no_key_url = systems();
        no_key_url.clearkey.as_mut().unwrap().key_url = None;
        let lines = hls_key_lines(Scheme::Cbcs, &key, LOCATOR, &no_key_url);
        let clearkey = lines.last().unwrap();
        assert_eq!(clearkey.keyformat, KEYFORMAT_CLEARKEY);
        assert!(lines.iter().all(|l| l.keyformat != KEYFORMAT_IDENTITY));
        assert_eq!(
            attr(&clearkey.attributes, "URI"),
            Some("https://origin.example/clearkey/11111111-2222-3333-4444-555555555555/license")
        );
        assert_eq!(attr(&clearkey.attributes, "KEYID"), Some("0x9eb4050de44b4802932e27d75083e266"));
        assert_eq!(attr(&clearkey.attributes, "METHOD"), Some("SAMPLE-AES"));
    }

    #[test]
    fn hls_lines_for_cenc_skip_fairplay() {
        let key = test_key();
        let lines = hls_key_lines(Scheme::Cenc, &key, LOCATOR, &systems());
        assert!(lines.iter().all(|l| l.keyformat != KEYFORMAT_FAIRPLAY));
        assert!(lines.iter().all(|l| attr(&l.attributes, "METHOD") == Some("SAMPLE-AES-CTR")));
        assert_eq!(lines.len(), 4);
        let exact = &lines[1].attributes;
        assert!(exact.starts_with("METHOD=SAMPLE-AES-CTR,URI=\"data:text/plain;charset=UTF-16;base64,"));
        assert!(exact.ends_with(
            "\",KEYID=0x9eb4050de44b4802932e27d75083e266,KEYFORMAT=\"com.microsoft.playready\",KEYFORMATVERSIONS=\"1\""
        ));
        assert!(hls_key_lines(Scheme::Cenc, &key, LOCATOR, &DrmSystems::default()).is_empty());
    }
}
