//! The SMIL server manifest (`.ism`) of an asset, as Azure Media Services writes it:
//!
//! ```xml
//! <smil xmlns="http://www.w3.org/2001/SMIL20/Language">
//!   <head><meta name="clientManifestRelativePath" content="x.ismc"/></head>
//!   <body><switch>
//!     <video src="x_1000.mp4" systemBitrate="1000000">
//!       <param name="trackID" value="1" valuetype="data"/>
//!     </video>
//!     <audio src="x_aac.mp4" systemBitrate="128000" systemLanguage="eng">
//!       <param name="trackName" value="aac_eng_2_128" valuetype="data"/>
//!     </audio>
//!   </switch></body>
//! </smil>
//! ```
//!
//! Only the tracks matter; `<head>` is ignored. Every `src` is normalised to a path inside the
//! asset folder (`./v.mp4` is `v.mp4`); absolute paths, schemes, backslashes and `..` that
//! would leave the folder are refused.

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsmManifest {
    pub tracks: Vec<IsmTrack>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsmTrackKind {
    Video,
    Audio,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsmTrack {
    pub kind: IsmTrackKind,
    /// Path of the source file, relative to the asset folder (validated).
    pub src: String,
    pub system_bitrate: Option<u64>,
    pub system_language: Option<String>,
    pub track_id: Option<u32>,
    pub track_name: Option<String>,
    pub role: Option<String>,
    pub accessibility: Option<String>,
    /// AMS's `textDisplayName` param: the name players show for a text track.
    pub display_name: Option<String>,
    /// AMS's `outputFlag` param: `false` keeps the track out of every output.
    pub output: bool,
}

impl IsmManifest {
    pub fn tracks_of(&self, kind: IsmTrackKind) -> impl Iterator<Item = &IsmTrack> {
        self.tracks.iter().filter(move |t| t.kind == kind)
    }
}

/// A track while its element is open: `src` is checked when the element closes.
struct Pending {
    kind: IsmTrackKind,
    element: String,
    src: Option<String>,
    track: IsmTrack,
}

fn track_kind(local: &str) -> Option<IsmTrackKind> {
    match local {
        "video" => Some(IsmTrackKind::Video),
        "audio" => Some(IsmTrackKind::Audio),
        "textstream" => Some(IsmTrackKind::Text),
        _ => None,
    }
}

/// The attributes of an element as (local name, value) pairs.
fn attributes(e: &BytesStart, reader_pos: u64) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| format!("bad attribute near byte {reader_pos}: {err}"))?;
        let key = a.key.local_name().as_ref().to_string();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| format!("bad value of attribute '{key}' near byte {reader_pos}: {err}"))?
            .into_owned();
        out.push((key, value));
    }
    Ok(out)
}

fn parse_u64(what: &str, value: &str) -> Result<u64, String> {
    value.trim().parse::<u64>().map_err(|_| format!("{what} '{value}' is not a number"))
}

fn parse_u32(what: &str, value: &str) -> Result<u32, String> {
    value.trim().parse::<u32>().map_err(|_| format!("{what} '{value}' is not a number"))
}

fn non_empty(value: String) -> Option<String> {
    if value.trim().is_empty() {
        None
    } else {
        Some(value)
    }
}

fn open_track(kind: IsmTrackKind, e: &BytesStart, pos: u64) -> Result<Pending, String> {
    let element = e.local_name().as_ref().to_string();
    let mut p = Pending {
        kind,
        element: element.clone(),
        src: None,
        track: IsmTrack {
            kind,
            src: String::new(),
            system_bitrate: None,
            system_language: None,
            track_id: None,
            track_name: None,
            role: None,
            accessibility: None,
            display_name: None,
            output: true,
        },
    };
    for (key, value) in attributes(e, pos)? {
        match key.as_str() {
            "src" => p.src = Some(value),
            "systemBitrate" => p.track.system_bitrate = Some(parse_u64(&format!("<{element}> systemBitrate"), &value)?),
            "systemLanguage" => p.track.system_language = non_empty(value),
            "trackID" => p.track.track_id = Some(parse_u32(&format!("<{element}> trackID"), &value)?),
            "trackName" => p.track.track_name = non_empty(value),
            "role" => p.track.role = non_empty(value),
            "accessibility" => p.track.accessibility = non_empty(value),
            "textDisplayName" => p.track.display_name = non_empty(value),
            "outputFlag" => p.track.output = parse_bool(&format!("<{element}> outputFlag"), &value)?,
            _ => {}
        }
    }
    Ok(p)
}

fn apply_param(p: &mut Pending, e: &BytesStart, pos: u64) -> Result<(), String> {
    let mut name = None;
    let mut value = None;
    for (k, v) in attributes(e, pos)? {
        match k.as_str() {
            "name" => name = Some(v),
            "value" => value = Some(v),
            _ => {}
        }
    }
    let (Some(name), Some(value)) = (name, value) else {
        return Ok(());
    };
    let element = &p.element;
    match name.as_str() {
        "trackID" => p.track.track_id = Some(parse_u32(&format!("<{element}> param trackID"), &value)?),
        "trackName" => p.track.track_name = non_empty(value),
        "systemLanguage" => p.track.system_language = non_empty(value),
        "systemBitrate" => {
            p.track.system_bitrate = Some(parse_u64(&format!("<{element}> param systemBitrate"), &value)?)
        }
        "role" => p.track.role = non_empty(value),
        "accessibility" => p.track.accessibility = non_empty(value),
        "textDisplayName" => p.track.display_name = non_empty(value),
        "outputFlag" => p.track.output = parse_bool(&format!("<{element}> param outputFlag"), &value)?,
        _ => {}
    }
    Ok(())
}

fn parse_bool(what: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{what} '{value}' is not true or false")),
    }
}

fn close_track(p: Pending) -> Result<IsmTrack, String> {
    let src = p.src.ok_or_else(|| format!("<{}> without src", p.element))?;
    let mut track = p.track;
    track.kind = p.kind;
    track.src = normalise_src(&src)?;
    Ok(track)
}

/// A `src` as a path inside the asset folder: `.` segments dropped and `dir/..` pairs
/// resolved (`./v.mp4` and `a/../v.mp4` are `v.mp4`), so storage is only ever asked for a
/// plain relative path. One that leaves the folder or cannot name a file there is refused.
pub fn normalise_src(src: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("src '{src}' {why}"));
    if src.trim().is_empty() {
        return bad("is empty");
    }
    if src.contains('\\') {
        return bad("contains a backslash");
    }
    if src.starts_with('/') {
        return bad("is absolute");
    }
    if src.contains(':') {
        return bad("has a scheme or drive letter");
    }
    if src.chars().any(|c| c.is_control()) {
        return bad("contains control characters");
    }
    let mut path: Vec<&str> = Vec::new();
    for segment in src.split('/') {
        let lower = segment.to_ascii_lowercase();
        match segment {
            "." => {}
            ".." if path.pop().is_some() => {}
            // Storage does not decode escapes: an encoded `..` would name a file literally
            // called so, and is far more likely an attempt to leave the folder.
            _ if lower.replace("%2e", ".") == ".." => return bad("leaves the asset folder ('..')"),
            "" => return bad("has an empty path segment"),
            _ if lower.contains("%2f") || lower.contains("%5c") => return bad("contains an encoded path separator"),
            _ => path.push(segment),
        }
    }
    if path.is_empty() {
        return bad("names the asset folder, not a file");
    }
    Ok(path.join("/"))
}

/// Parses a SMIL server manifest.
pub fn parse_ism(xml: &[u8]) -> Result<IsmManifest, String> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    reader.config_mut().check_end_names = true;

    let mut tracks = Vec::new();
    let mut depth: usize = 0; // open elements
    let mut seen_root = false;
    let mut head_depth: Option<usize> = None; // depth at which <head> opened
    let mut pending: Option<(Pending, usize)> = None; // open track and its depth

    loop {
        let pos = reader.buffer_position();
        let event =
            reader.read_event().map_err(|e| format!("malformed XML at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(event, Event::Empty(_));
                let local = e.local_name();
                let local = local.as_ref();
                if depth == 0 {
                    if seen_root {
                        return Err("more than one root element".into());
                    }
                    if local != "smil" {
                        return Err(format!("root element is <{}>, not <smil>", e.name().as_ref()));
                    }
                    seen_root = true;
                } else if head_depth.is_some() {
                    // Inside <head>: ignored.
                } else if depth == 1 && local == "head" {
                    if !is_empty {
                        head_depth = Some(depth);
                    }
                } else if let Some((p, track_depth)) = pending.as_mut() {
                    if local == "param" && depth == *track_depth + 1 {
                        apply_param(p, e, pos)?;
                    }
                } else if let Some(kind) = track_kind(local) {
                    let p = open_track(kind, e, pos)?;
                    if is_empty {
                        tracks.push(close_track(p)?);
                    } else {
                        pending = Some((p, depth));
                    }
                }
                if !is_empty {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if head_depth == Some(depth) {
                    head_depth = None;
                }
                if matches!(pending, Some((_, d)) if d == depth) {
                    if let Some((p, _)) = pending.take() {
                        tracks.push(close_track(p)?);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err("no <smil> root element".into());
    }
    if depth != 0 {
        return Err("document ends inside an element".into());
    }
    Ok(IsmManifest { tracks })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<smil xmlns="http://www.w3.org/2001/SMIL20/Language">
  <head>
    <meta name="formats" content="mp4" />
    <meta name="clientManifestRelativePath" content="bbb.ismc" />
  </head>
  <body>
    <switch>
      <video src="bbb_1280x720_AACAudio_3000.mp4" systemBitrate="3000000">
        <param name="trackID" value="1" valuetype="data" />
        <param name="trackName" value="video" valuetype="data" />
      </video>
      <video src="bbb_640x360_AACAudio_1000.mp4" systemBitrate="1000000">
        <param name="trackID" value="1" valuetype="data" />
      </video>
      <audio src="bbb_AACAudio_eng.mp4" systemBitrate="128002" systemLanguage="eng">
        <param name="trackID" value="2" valuetype="data" />
        <param name="trackName" value="aac_eng_2_128041_2_1" valuetype="data" />
      </audio>
      <audio src="bbb_AACAudio_fra.mp4" systemBitrate="128002">
        <param name="systemLanguage" value="fra" valuetype="data" />
        <param name="trackName" value="aac_fra_2_128041_2_1" valuetype="data" />
        <param name="role" value="dub" valuetype="data" />
        <param name="accessibility" value="description" valuetype="data" />
      </audio>
      <textstream src="bbb_eng.vtt" systemBitrate="1000" systemLanguage="eng">
        <param name="trackName" value="text_eng" valuetype="data"/>
        <param name="accessibility" value="caption" valuetype="data"/>
      </textstream>
    </switch>
  </body>
</smil>"#;

    #[test]
    fn realistic_ams_manifest() {
        let m = parse_ism(AMS.as_bytes()).unwrap();
        assert_eq!(m.tracks.len(), 5);
        let v = &m.tracks[0];
        assert_eq!(v.kind, IsmTrackKind::Video);
        assert_eq!(v.src, "bbb_1280x720_AACAudio_3000.mp4");
        assert_eq!(v.system_bitrate, Some(3_000_000));
        assert_eq!(v.track_id, Some(1));
        assert_eq!(v.track_name.as_deref(), Some("video"));
        assert_eq!(m.tracks[1].track_name, None);
        let a = &m.tracks[2];
        assert_eq!(a.kind, IsmTrackKind::Audio);
        assert_eq!(a.system_language.as_deref(), Some("eng"));
        assert_eq!(a.track_id, Some(2));
        assert_eq!(a.track_name.as_deref(), Some("aac_eng_2_128041_2_1"));
        let fr = &m.tracks[3];
        assert_eq!(fr.system_language.as_deref(), Some("fra"), "param completes the attribute");
        assert_eq!(fr.role.as_deref(), Some("dub"));
        assert_eq!(fr.accessibility.as_deref(), Some("description"));
        assert_eq!(fr.track_id, None);
        let t = &m.tracks[4];
        assert_eq!(t.kind, IsmTrackKind::Text);
        assert_eq!(t.src, "bbb_eng.vtt");
        assert_eq!(t.accessibility.as_deref(), Some("caption"));
        assert_eq!(m.tracks_of(IsmTrackKind::Video).count(), 2);
    }

    #[test]
    fn textstreams_take_ams_display_names_output_flags_and_caption_params() {
        let xml = r#"<smil><body><switch>
            <textstream src="en.vtt" systemBitrate="0" systemLanguage="eng">
              <param name="trackName" value="subtitles_eng" valuetype="data"/>
              <param name="textDisplayName" value="English (SDH)" valuetype="data"/>
              <param name="accessibility" value="caption" valuetype="data"/>
              <param name="role" value="caption" valuetype="data"/>
            </textstream>
            <textstream src="de.vtt" systemBitrate="0">
              <param name="systemLanguage" value="deu" valuetype="data"/>
              <param name="outputFlag" value="false" valuetype="data"/>
            </textstream>
            <textstream src="fr.vtt" systemBitrate="0" textDisplayName="Français" outputFlag="TRUE"/>
        </switch></body></smil>"#;
        let m = parse_ism(xml.as_bytes()).unwrap();
        let [en, de, fr] = &m.tracks[..] else { panic!("{m:?}") };
        assert_eq!(en.kind, IsmTrackKind::Text);
        assert_eq!(en.system_bitrate, Some(0));
        assert_eq!((en.track_name.as_deref(), en.system_language.as_deref()), (Some("subtitles_eng"), Some("eng")));
        assert_eq!(en.display_name.as_deref(), Some("English (SDH)"));
        assert_eq!((en.accessibility.as_deref(), en.role.as_deref()), (Some("caption"), Some("caption")));
        assert!(en.output);
        assert_eq!((de.system_language.as_deref(), de.output, de.display_name.as_deref()), (Some("deu"), false, None));
        assert_eq!((fr.display_name.as_deref(), fr.output), (Some("Français"), true));
        let bad = r#"<smil><body><textstream src="a.vtt"><param name="outputFlag" value="maybe"/></textstream></body></smil>"#;
        assert!(parse_ism(bad.as_bytes()).unwrap_err().contains("outputFlag 'maybe'"));
    }

    #[test]
    fn tracks_directly_in_body_self_closing_and_prefixed() {
        let xml = r#"<smil xmlns="http://www.w3.org/2001/SMIL20/Language"><body>
            <video src="v.mp4" systemBitrate="500000" trackID="3" trackName="v1"/>
            <audio src="sub/a.mp4"></audio>
        </body></smil>"#;
        let m = parse_ism(xml.as_bytes()).unwrap();
        assert_eq!(m.tracks.len(), 2);
        assert_eq!(m.tracks[0].track_id, Some(3));
        assert_eq!(m.tracks[0].track_name.as_deref(), Some("v1"));
        assert_eq!(m.tracks[1].src, "sub/a.mp4");
        assert_eq!(m.tracks[1].system_bitrate, None);

        let prefixed = r#"<s:smil xmlns:s="http://www.w3.org/2001/SMIL20/Language"><s:body><s:switch>
            <s:audio src="a.mp4"><s:param name="trackID" value="7"/></s:audio>
        </s:switch></s:body></s:smil>"#;
        let m = parse_ism(prefixed.as_bytes()).unwrap();
        assert_eq!(m.tracks[0].track_id, Some(7));
    }

    #[test]
    fn param_overrides_attribute() {
        let xml = r#"<smil><body><audio src="a.mp4" systemLanguage="und" trackID="1">
            <param name="systemLanguage" value="deu" valuetype="data"/>
            <param name="trackID" value="4" valuetype="data"/>
        </audio></body></smil>"#;
        let t = &parse_ism(xml.as_bytes()).unwrap().tracks[0];
        assert_eq!(t.system_language.as_deref(), Some("deu"));
        assert_eq!(t.track_id, Some(4));
    }

    #[test]
    fn head_is_ignored() {
        let xml = r#"<smil><head><video src="/etc/passwd"/><meta name="x" content="y"/></head>
            <body><video src="v.mp4"/></body></smil>"#;
        let m = parse_ism(xml.as_bytes()).unwrap();
        assert_eq!(m.tracks.len(), 1);
        assert_eq!(m.tracks[0].src, "v.mp4");
    }

    #[test]
    fn rejects_missing_smil_root() {
        let e = parse_ism(br#"<html><body><video src="v.mp4"/></body></html>"#).unwrap_err();
        assert!(e.contains("smil"), "{e}");
        let e = parse_ism(b"").unwrap_err();
        assert!(e.contains("smil"), "{e}");
        assert!(parse_ism(b"<smil><body><video src=\"v.mp4\"></body></smil>").is_err(), "mismatched tags");
    }

    #[test]
    fn rejects_track_without_src() {
        let e = parse_ism(br#"<smil><body><switch><video systemBitrate="1"/></switch></body></smil>"#).unwrap_err();
        assert!(e.contains("src"), "{e}");
        let e =
            parse_ism(br#"<smil><body><audio><param name="trackID" value="1"/></audio></body></smil>"#).unwrap_err();
        assert!(e.contains("<audio> without src"), "{e}");
    }

    #[test]
    fn rejects_non_numeric_bitrate_and_track_id() {
        let e = parse_ism(br#"<smil><body><video src="v.mp4" systemBitrate="fast"/></body></smil>"#).unwrap_err();
        assert!(e.contains("systemBitrate") && e.contains("fast"), "{e}");
        let e = parse_ism(br#"<smil><body><video src="v.mp4" systemBitrate="-5"/></body></smil>"#).unwrap_err();
        assert!(e.contains("systemBitrate"), "{e}");
        let e = parse_ism(
            br#"<smil><body><video src="v.mp4"><param name="trackID" value="one" valuetype="data"/></video></body></smil>"#,
        )
        .unwrap_err();
        assert!(e.contains("trackID") && e.contains("one"), "{e}");
        let e = parse_ism(br#"<smil><body><video src="v.mp4" trackID="1.5"/></body></smil>"#).unwrap_err();
        assert!(e.contains("trackID"), "{e}");
    }

    #[test]
    fn rejects_src_escaping_the_asset_folder() {
        for src in [
            "/etc/passwd",
            "../other/v.mp4",
            "a/../../v.mp4",
            "..",
            "a\\..\\v.mp4",
            "C:\\v.mp4",
            "c:v.mp4",
            "http://evil.example/v.mp4",
            "file:///etc/passwd",
            "s3://bucket/v.mp4",
            "%2e%2e/v.mp4",
            "a//v.mp4",
            "",
        ] {
            let xml = format!(r#"<smil><body><video src="{src}"/></body></smil>"#);
            let e = parse_ism(xml.as_bytes()).expect_err(src);
            assert!(e.contains("src"), "{src}: {e}");
        }
        // Escaped in XML still resolves to a backslash / absolute path.
        assert!(parse_ism(br#"<smil><body><video src="&#x2F;etc/passwd"/></body></smil>"#).is_err());
        // Fine: nested folders, dots inside names.
        for src in ["v.mp4", "sub/dir/v.1.mp4", "a..b.mp4"] {
            let xml = format!(r#"<smil><body><video src="{src}"/></body></smil>"#);
            assert_eq!(parse_ism(xml.as_bytes()).unwrap().tracks[0].src, src);
        }
    }

    #[test]
    fn src_dot_segments_inside_the_folder_are_resolved() {
        for (src, path) in [
            ("./v.mp4", "v.mp4"),
            ("././v.mp4", "v.mp4"),
            ("a/../v.mp4", "v.mp4"),
            ("a/./b/../v.mp4", "a/v.mp4"),
            ("a/b/../../c/v.mp4", "c/v.mp4"),
        ] {
            assert_eq!(normalise_src(src).as_deref(), Ok(path), "{src}");
        }
        for src in [".", "./", "a/..", "./../v.mp4", "a/../../v.mp4", "a/./../.."] {
            assert!(normalise_src(src).is_err(), "{src}");
        }
    }
}
