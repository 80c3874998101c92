//! Smooth Streaming as a player sees it (MS-SSTR), written for the tests independently of
//! `src/output/smooth.rs`:
//!
//! * the client manifest read with quick-xml's pull reader into a small element tree (our
//!   writer is not involved), with typed views of `StreamIndex` / `QualityLevel` / `c`;
//! * the init segment a player builds from a `QualityLevel`, since Smooth has none on the
//!   wire: the layout of dash.js's `MssFragmentMoovProcessor` (src/mss, dash.js 5.x) —
//!   `ftyp` iso6 + `moov` with one track at the manifest's 10 MHz timescale, empty sample
//!   tables, `mvex/trex`, `avcC` from the `00000001 SPS 00000001 PPS` CodecPrivateData and
//!   `esds` from the AudioSpecificConfig, `encv`/`enca` + `sinf` (`frma`, `schm` cenc 1.0,
//!   `tenc` with an 8-byte IV and the KID of the ProtectionHeader's WRMHEADER) for cenc;
//!   dash.js stops at H.264 and AAC, so HEVC (`hvcC` from VPS/SPS/PPS, ISO/IEC 14496-15
//!   §8.3.3) and Dolby (`dac3` / `dec3`, ETSI TS 102 366 Annex F, cut out of the
//!   WAVEFORMATEXTENSIBLE CodecPrivateData) are built the same way;
//! * what dash.js's `MssFragmentMoofProcessor` does to a fragment before appending it that
//!   matters to a decoder: `tfhd.track_ID` rewritten to the init segment's track;
//! * the fragment boxes the tests check: `tfxd` (MS-SSTR §2.2.4.4), `trun` durations, the
//!   PIFF 1.1 SampleEncryptionBox (`uuid` A2394F52-…) and `senc`/`saiz`/`saio`
//!   (ISO/IEC 23001-7 §7).

use std::collections::BTreeMap;

use base64::Engine as _;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::XmlVersion;

/// `tfxd` (MS-SSTR §2.2.4.4, TfxdBox): the fragment's absolute time and duration.
pub const TFXD: [u8; 16] = uuid(0x6D1D9B05_42D5_44E6_80E2_141DAFF757B2);
/// PIFF 1.1 §5.3.2.1 SampleEncryptionBox.
pub const PIFF_SENC: [u8; 16] = uuid(0xA2394F52_5A9B_4F14_A244_6C427C648DF4);
/// `ProtectionHeader@SystemID` of PlayReady (MS-SSTR §2.2.2.2).
pub const PLAYREADY_SYSTEM_ID: &str = "9A04F079-9840-4286-AB92-E65BE0885F95";
/// The track every player-built init segment declares (dash.js: adaptation index + 1).
pub const TRACK_ID: u32 = 1;
/// The manifest timescale MS-SSTR fixes for VOD (§2.2.2.1 TimeScale default).
pub const TIMESCALE: u64 = 10_000_000;

const fn uuid(v: u128) -> [u8; 16] {
    v.to_be_bytes()
}

// ---------------------------------------------------------------------------------------
// The client manifest.

/// One XML element: its name, attributes, children and text.
#[derive(Debug, Clone, Default)]
pub struct Element {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    /// A required attribute, parsed; Err names the element and the attribute.
    pub fn num(&self, name: &str) -> Result<u64, String> {
        let v = self.attr(name).ok_or_else(|| format!("<{}> has no {name}: {:?}", self.name, self.attrs))?;
        v.parse().map_err(|_| format!("<{}> {name}={v:?} is not an unsigned integer", self.name))
    }

    pub fn opt_num(&self, name: &str) -> Result<Option<u64>, String> {
        self.attr(name).map(|_| self.num(name)).transpose()
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn from_start(start: &BytesStart<'_>) -> Result<Element, String> {
        let mut e = Element { name: start.name().as_ref().to_owned(), ..Element::default() };
        for a in start.attributes() {
            let a = a.map_err(|err| format!("<{}>: bad attribute: {err}", e.name))?;
            let key = a.key.as_ref().to_owned();
            let value = a
                .normalized_value(XmlVersion::Explicit1_0)
                .map_err(|err| format!("<{}> {key}: {err}", e.name))?
                .into_owned();
            if e.attrs.insert(key.clone(), value).is_some() {
                return Err(format!("<{}> repeats attribute {key}", e.name));
            }
        }
        Ok(e)
    }
}

/// Parses an XML document into its root element (well-formedness checked by quick-xml).
pub fn parse_xml(xml: &str) -> Result<Element, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let close = |stack: &mut Vec<Element>, root: &mut Option<Element>, e: Element| match stack.last_mut() {
        Some(parent) => parent.children.push(e),
        None if root.is_none() => *root = Some(e),
        None => {}
    };
    loop {
        match reader.read_event().map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))? {
            Event::Start(s) => stack.push(Element::from_start(&s)?),
            Event::Empty(s) => {
                let e = Element::from_start(&s)?;
                close(&mut stack, &mut root, e);
            }
            Event::End(_) => {
                let e = stack.pop().ok_or("unbalanced end tag")?;
                close(&mut stack, &mut root, e);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            // Text arrives in pieces around entity and character references.
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| format!("reference: {e}"))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.xml10_content();
                        resolve_predefined_entity(&name).ok_or_else(|| format!("unknown entity &{name};"))?.to_owned()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed <{}>", stack.last().map_or("", |e| e.name.as_str())));
    }
    root.ok_or_else(|| "no root element".to_owned())
}

/// A Smooth client manifest (MS-SSTR §2.2.2).
#[derive(Debug)]
pub struct Manifest {
    pub root: Element,
}

impl Manifest {
    pub fn parse(xml: &str) -> Result<Manifest, String> {
        let root = parse_xml(xml)?;
        if root.name != "SmoothStreamingMedia" {
            return Err(format!("root element is <{}>, not <SmoothStreamingMedia>", root.name));
        }
        Ok(Manifest { root })
    }

    pub fn streams(&self) -> impl Iterator<Item = Stream<'_>> {
        self.root.children_named("StreamIndex").map(Stream)
    }

    /// The StreamIndex of `kind` ("video", "audio", "text") named `name`.
    pub fn stream(&self, kind: &str, name: &str) -> Option<Stream<'_>> {
        self.streams().find(|s| s.0.attr("Type") == Some(kind) && s.name() == name)
    }

    /// `Protection/ProtectionHeader`: its SystemID and the decoded PlayReady Object.
    pub fn protection_header(&self) -> Result<Option<(String, Vec<u8>)>, String> {
        let Some(protection) = self.root.children_named("Protection").next() else { return Ok(None) };
        let header =
            protection.children_named("ProtectionHeader").next().ok_or("<Protection> without <ProtectionHeader>")?;
        let system = header.attr("SystemID").ok_or("<ProtectionHeader> without SystemID")?.to_owned();
        let text: String = header.text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("ProtectionHeader is not base64: {e}"))?;
        Ok(Some((system, bytes)))
    }
}

/// One `StreamIndex`.
#[derive(Debug, Clone, Copy)]
pub struct Stream<'a>(pub &'a Element);

/// A chunk (`c`) with its repeats expanded: start time and duration, 10 MHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub t: u64,
    pub d: u64,
}

impl<'a> Stream<'a> {
    pub fn kind(&self) -> &'a str {
        self.0.attr("Type").unwrap_or("")
    }
    pub fn name(&self) -> &'a str {
        self.0.attr("Name").unwrap_or_else(|| self.kind())
    }
    pub fn levels(&self) -> impl Iterator<Item = &'a Element> + 'a {
        self.0.children_named("QualityLevel")
    }
    pub fn level(&self, bitrate: u64) -> Option<&'a Element> {
        self.levels().find(|l| l.num("Bitrate").ok() == Some(bitrate))
    }

    /// The chunks in order, MS-SSTR §2.2.2.5: a missing `t` follows the previous chunk, `r`
    /// is one-based (r="3" is three chunks of duration `d`), and the `d` of the last chunk
    /// is required (VOD).
    pub fn chunks(&self) -> Result<Vec<Chunk>, String> {
        let mut out: Vec<Chunk> = Vec::new();
        for c in self.0.children_named("c") {
            let t = match (c.opt_num("t")?, out.last()) {
                (Some(t), _) => t,
                (None, Some(prev)) => prev.t + prev.d,
                (None, None) => 0,
            };
            let d = c.num("d").map_err(|e| format!("StreamIndex {}: {e}", self.name()))?;
            let r = c.opt_num("r")?.unwrap_or(1);
            if r == 0 {
                return Err(format!("StreamIndex {}: r=\"0\" (r is one-based)", self.name()));
            }
            for k in 0..r {
                out.push(Chunk { t: t + k * d, d });
            }
        }
        Ok(out)
    }

    /// The fragment URL (relative to the manifest) of the chunk at `t` of `bitrate`: the
    /// `Url` pattern with both spellings of each substitution MS-SSTR §2.2.2.3 allows.
    pub fn fragment_url(&self, bitrate: u64, t: u64) -> String {
        self.0
            .attr("Url")
            .unwrap_or("")
            .replace("{bitrate}", &bitrate.to_string())
            .replace("{Bitrate}", &bitrate.to_string())
            .replace("{start time}", &t.to_string())
            .replace("{start_time}", &t.to_string())
    }
}

// ---------------------------------------------------------------------------------------
// The PlayReady Object (PlayReady Header Object spec: LE length, record count, records of
// type 1 holding the UTF-16LE WRMHEADER XML).

/// The WRMHEADER XML of a PlayReady Object.
pub fn wrm_header(pro: &[u8]) -> Result<String, String> {
    let le16 = |at: usize| -> Result<usize, String> {
        pro.get(at..at + 2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]]))).ok_or("PRO truncated".into())
    };
    let total = pro.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize).ok_or("PRO truncated")?;
    if total != pro.len() {
        return Err(format!("PRO length field {total}, object is {} bytes", pro.len()));
    }
    let count = le16(4)?;
    let mut at = 6;
    for _ in 0..count {
        let (kind, len) = (le16(at)?, le16(at + 2)?);
        let value = pro.get(at + 4..at + 4 + len).ok_or("PRO record truncated")?;
        if kind == 1 {
            let units: Vec<u16> = value.chunks_exact(2).map(|u| u16::from_le_bytes([u[0], u[1]])).collect();
            return String::from_utf16(&units).map_err(|e| format!("WRMHEADER is not UTF-16: {e}"));
        }
        at += 4 + len;
    }
    Err("PRO has no rights management header record".into())
}

/// The KID a player takes from the WRMHEADER (dash.js `getKIDFromProtectionHeader`): the
/// first `KID` element's base64 GUID, little-endian in its first three fields, turned into
/// the big-endian UUID bytes `tenc` carries.
pub fn kid_of_wrm_header(wrm: &str) -> Result<[u8; 16], String> {
    let root = parse_xml(wrm)?;
    fn find<'a>(e: &'a Element, name: &str) -> Option<&'a Element> {
        if e.name == name {
            return Some(e);
        }
        e.children.iter().find_map(|c| find(c, name))
    }
    let kid = find(&root, "KID").ok_or("WRMHEADER has no KID")?;
    // v4.0 has the GUID as the element's text, v4.1+ as its VALUE attribute.
    let b64 = kid.attr("VALUE").unwrap_or(&kid.text).trim();
    let guid = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("KID not base64: {e}"))?;
    let mut kid: [u8; 16] = guid.try_into().map_err(|g: Vec<u8>| format!("KID is {} bytes", g.len()))?;
    kid[0..4].reverse();
    kid[4..6].reverse();
    kid[6..8].reverse();
    Ok(kid)
}

// ---------------------------------------------------------------------------------------
// Boxes.

/// A box: its payload after a body of `fields`, children appended.
fn mp4_box(kind: &[u8; 4], payload: &[&[u8]]) -> Vec<u8> {
    let len: usize = 8 + payload.iter().map(|p| p.len()).sum::<usize>();
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_be_bytes());
    b.extend_from_slice(kind);
    for p in payload {
        b.extend_from_slice(p);
    }
    b
}

/// A full box: version and flags, then the payload.
fn full_box(kind: &[u8; 4], version: u8, flags: u32, payload: &[&[u8]]) -> Vec<u8> {
    let vf = (u32::from(version) << 24 | flags).to_be_bytes();
    let mut parts: Vec<&[u8]> = vec![&vf];
    parts.extend_from_slice(payload);
    mp4_box(kind, &parts)
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Option<Vec<u8>> = s.chars().map(|c| c.to_digit(16).map(|d| d as u8)).collect();
    match digits {
        Some(d) if d.len() % 2 == 0 => Ok(d.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect()),
        _ => Err(format!("not an even number of hex digits: {s:?}")),
    }
}

/// The NAL units of an Annex B CodecPrivateData (`00000001` start codes), dash.js-style.
fn nal_units(codec_private_data: &str) -> Result<Vec<Vec<u8>>, String> {
    let upper = codec_private_data.to_ascii_uppercase();
    upper.split("00000001").filter(|s| !s.is_empty()).map(hex).collect()
}

/// Removes emulation-prevention bytes (00 00 03 → 00 00), ISO/IEC 14496-10 §7.4.1.
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// `avcC` (ISO/IEC 14496-15 §5.3.3.1) from `00000001 SPS 00000001 PPS`: profile,
/// compatibility and level are the SPS's bytes 1-3, NAL lengths of 4 bytes.
fn avcc(codec_private_data: &str) -> Result<Vec<u8>, String> {
    let nals = nal_units(codec_private_data)?;
    let of = |ty: u8| nals.iter().filter(|n| n.first().is_some_and(|b| b & 0x1F == ty)).collect::<Vec<_>>();
    let (sps, pps) = (of(7), of(8));
    let first = sps.first().filter(|s| s.len() >= 4).ok_or_else(|| format!("no SPS in {codec_private_data:?}"))?;
    if pps.is_empty() {
        return Err(format!("no PPS in {codec_private_data:?}"));
    }
    let mut b = vec![1, first[1], first[2], first[3], 0xFF, 0xE0 | sps.len() as u8];
    for s in &sps {
        b.extend_from_slice(&(s.len() as u16).to_be_bytes());
        b.extend_from_slice(s);
    }
    b.push(pps.len() as u8);
    for p in &pps {
        b.extend_from_slice(&(p.len() as u16).to_be_bytes());
        b.extend_from_slice(p);
    }
    Ok(mp4_box(b"avcC", &[&b]))
}

/// `hvcC` (ISO/IEC 14496-15 §8.3.3.1) from `00000001 VPS 00000001 SPS 00000001 PPS`: the
/// general profile, tier and level are the SPS's profile_tier_level (byte-aligned right
/// after its first byte), NAL lengths of 4 bytes, one array per parameter-set type.
fn hvcc(codec_private_data: &str) -> Result<Vec<u8>, String> {
    let nals = nal_units(codec_private_data)?;
    let of = |ty: u8| nals.iter().filter(|n| n.first().is_some_and(|b| (b >> 1) & 0x3F == ty)).collect::<Vec<_>>();
    let (vps, sps, pps) = (of(32), of(33), of(34));
    let first = sps.first().ok_or_else(|| format!("no SPS in {codec_private_data:?}"))?;
    let sps_rbsp = rbsp(first);
    // 2 bytes of NAL header, 1 of vps id / max sub-layers / nesting, then 12 of general PTL.
    let ptl = sps_rbsp.get(3..15).ok_or("SPS too short for profile_tier_level")?;
    if vps.is_empty() || pps.is_empty() {
        return Err(format!("VPS or PPS missing in {codec_private_data:?}"));
    }
    let mut b = vec![1];
    b.extend_from_slice(ptl);
    // min_spatial_segmentation 0, parallelism unknown, 4:2:0, bit depths from the SPS the
    // decoder reads anyway, avgFrameRate 0, lengthSizeMinusOne 3.
    b.extend_from_slice(&[0xF0, 0x00, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0, 0x0F]);
    let arrays = [(32u8, &vps), (33, &sps), (34, &pps)];
    b.push(arrays.len() as u8);
    for (ty, units) in arrays {
        b.push(0x80 | ty);
        b.extend_from_slice(&(units.len() as u16).to_be_bytes());
        for u in units.iter() {
            b.extend_from_slice(&(u.len() as u16).to_be_bytes());
            b.extend_from_slice(u);
        }
    }
    Ok(mp4_box(b"hvcC", &[&b]))
}

/// `esds` around the AudioSpecificConfig, as dash.js writes it (ISO/IEC 14496-1 §7.2.6.5:
/// ES_Descriptor, DecoderConfigDescriptor for MPEG-4 audio, DecoderSpecificInfo).
fn esds(asc: &[u8], bitrate: u32) -> Vec<u8> {
    let n = asc.len() as u8;
    let mut d = vec![0x03, 20 + n, 0, TRACK_ID as u8, 0];
    d.extend_from_slice(&[0x04, 15 + n, 0x40, 0x05 << 2 | 1, 0xFF, 0xFF, 0xFF]);
    d.extend_from_slice(&bitrate.to_be_bytes());
    d.extend_from_slice(&bitrate.to_be_bytes());
    d.extend_from_slice(&[0x05, n]);
    d.extend_from_slice(asc);
    full_box(b"esds", 0, 0, &[&d])
}

/// The `dac3` / `dec3` payload of a Dolby QualityLevel: with `AudioTag` 65534
/// (WAVE_FORMAT_EXTENSIBLE) CodecPrivateData is the WAVEFORMATEXTENSIBLE extension (samples
/// per block 2, speaker mask 4, sub-format GUID 16 bytes) and then that payload, which the
/// client cuts out; otherwise the payload alone.
fn dolby_config(level: &Element) -> Result<Vec<u8>, String> {
    let bytes = hex(level.attr("CodecPrivateData").unwrap_or(""))?;
    if level.attr("AudioTag") != Some("65534") {
        return Ok(bytes);
    }
    match bytes.get(22..) {
        Some(payload) if !payload.is_empty() => Ok(payload.to_vec()),
        _ => Err(format!("WAVEFORMATEXTENSIBLE CodecPrivateData without a dac3/dec3 payload: {bytes:02X?}")),
    }
}

/// The sample entry of `level` for `stsd`, `encv`/`enca` with `sinf` when `kid` is given.
fn sample_entry(stream: Stream<'_>, level: &Element, kid: Option<[u8; 16]>) -> Result<Vec<u8>, String> {
    let video = stream.kind() == "video";
    let cpd = level.attr("CodecPrivateData").unwrap_or("");
    let (format, config): ([u8; 4], Vec<u8>) = match level.attr("FourCC").unwrap_or("") {
        "H264" | "AVC1" | "avc1" => (*b"avc1", avcc(cpd)?),
        "HEVC" | "hev1" | "HEV1" => (*b"hev1", hvcc(cpd)?),
        "hvc1" | "HVC1" => (*b"hvc1", hvcc(cpd)?),
        "AACL" | "AACH" | "mp4a" => (*b"mp4a", esds(&hex(cpd)?, level.num("Bitrate")? as u32)),
        "EC-3" | "ec-3" => (*b"ec-3", mp4_box(b"dec3", &[dolby_config(level)?.as_slice()])),
        "AC-3" | "ac-3" => (*b"ac-3", mp4_box(b"dac3", &[dolby_config(level)?.as_slice()])),
        other => return Err(format!("no player builds an init segment for FourCC {other:?}")),
    };
    let mut fields = vec![0u8; 6];
    fields.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
    if video {
        let width = level.opt_num("MaxWidth")?.or(stream.0.opt_num("MaxWidth")?).unwrap_or(0) as u16;
        let height = level.opt_num("MaxHeight")?.or(stream.0.opt_num("MaxHeight")?).unwrap_or(0) as u16;
        fields.extend_from_slice(&[0; 16]);
        fields.extend_from_slice(&width.to_be_bytes());
        fields.extend_from_slice(&height.to_be_bytes());
        fields.extend_from_slice(&0x0048_0000u32.to_be_bytes());
        fields.extend_from_slice(&0x0048_0000u32.to_be_bytes());
        fields.extend_from_slice(&[0, 0, 0, 0, 0, 1]); // reserved, frame_count 1
        fields.extend_from_slice(&[0; 32]); // compressorname
        fields.extend_from_slice(&[0x00, 0x18, 0xFF, 0xFF]); // depth, pre_defined -1
    } else {
        let channels = level.num("Channels")? as u16;
        let rate = level.num("SamplingRate")? as u32;
        fields.extend_from_slice(&[0; 8]);
        fields.extend_from_slice(&channels.to_be_bytes());
        fields.extend_from_slice(&16u16.to_be_bytes());
        fields.extend_from_slice(&[0; 4]);
        fields.extend_from_slice(&(rate << 16).to_be_bytes());
    }
    let Some(kid) = kid else { return Ok(mp4_box(&format, &[&fields, &config])) };
    // ISO/IEC 23001-7 §8: tenc v0, protected, 8-byte IVs (what dash.js assumes for PIFF).
    let frma = mp4_box(b"frma", &[&format]);
    let schm = full_box(b"schm", 0, 0, &[b"cenc", &0x0001_0000u32.to_be_bytes()]);
    let tenc = full_box(b"tenc", 0, 0, &[&[0, 0, 1, 8], &kid]);
    let sinf = mp4_box(b"sinf", &[&frma, &schm, &mp4_box(b"schi", &[&tenc])]);
    Ok(mp4_box(if video { b"encv" } else { b"enca" }, &[&fields, &config, &sinf]))
}

/// The init segment a player builds for `level` of `stream` (see the module comment);
/// `kid` makes it a cenc one. `duration` is the manifest's, 10 MHz.
pub fn player_init(
    stream: Stream<'_>,
    level: &Element,
    kid: Option<[u8; 16]>,
    duration: u64,
) -> Result<Vec<u8>, String> {
    let video = stream.kind() == "video";
    let ftyp = mp4_box(b"ftyp", &[b"iso6", &1u32.to_be_bytes(), b"isom", b"iso6", b"msdh"]);
    let ts = (TIMESCALE as u32).to_be_bytes();
    let dur = duration.to_be_bytes();
    let matrix: Vec<u8> =
        [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000].iter().flat_map(|v| v.to_be_bytes()).collect();
    let mut mvhd = vec![0u8; 16]; // creation and modification times
    mvhd.extend_from_slice(&ts);
    mvhd.extend_from_slice(&dur);
    mvhd.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
    mvhd.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    mvhd.extend_from_slice(&[0; 10]);
    mvhd.extend_from_slice(&matrix);
    mvhd.extend_from_slice(&[0; 24]);
    mvhd.extend_from_slice(&(TRACK_ID + 1).to_be_bytes());
    let mvhd = full_box(b"mvhd", 1, 0, &[&mvhd]);

    let width = level.opt_num("MaxWidth")?.or(stream.0.opt_num("MaxWidth")?).unwrap_or(0) as u32;
    let height = level.opt_num("MaxHeight")?.or(stream.0.opt_num("MaxHeight")?).unwrap_or(0) as u32;
    let mut tkhd = vec![0u8; 16];
    tkhd.extend_from_slice(&TRACK_ID.to_be_bytes());
    tkhd.extend_from_slice(&[0; 4]);
    tkhd.extend_from_slice(&dur);
    tkhd.extend_from_slice(&[0; 8]); // reserved
    tkhd.extend_from_slice(&[0, 0, 0, 0]); // layer, alternate_group
    tkhd.extend_from_slice(&(if video { 0u16 } else { 0x0100 }).to_be_bytes());
    tkhd.extend_from_slice(&[0, 0]);
    tkhd.extend_from_slice(&matrix);
    tkhd.extend_from_slice(&(width << 16).to_be_bytes());
    tkhd.extend_from_slice(&(height << 16).to_be_bytes());
    let tkhd = full_box(b"tkhd", 1, 7, &[&tkhd]);

    let mut mdhd = vec![0u8; 16];
    mdhd.extend_from_slice(&ts);
    mdhd.extend_from_slice(&dur);
    mdhd.extend_from_slice(&[0x55, 0xC4, 0, 0]); // language "und"
    let mdhd = full_box(b"mdhd", 1, 0, &[&mdhd]);
    let handler: &[u8; 4] = if video { b"vide" } else { b"soun" };
    let hdlr = full_box(b"hdlr", 0, 0, &[&[0; 4], handler, &[0; 12], stream.name().as_bytes(), &[0]]);
    let media_header = if video { full_box(b"vmhd", 0, 1, &[&[0; 8]]) } else { full_box(b"smhd", 0, 0, &[&[0; 4]]) };
    let dref = full_box(b"dref", 0, 0, &[&1u32.to_be_bytes(), &full_box(b"url ", 0, 1, &[])]);
    let dinf = mp4_box(b"dinf", &[&dref]);
    let empty = [0u8; 4];
    let stsd = full_box(b"stsd", 0, 0, &[&1u32.to_be_bytes(), &sample_entry(stream, level, kid)?]);
    let stbl = mp4_box(
        b"stbl",
        &[
            &stsd,
            &full_box(b"stts", 0, 0, &[&empty]),
            &full_box(b"stsc", 0, 0, &[&empty]),
            &full_box(b"stsz", 0, 0, &[&empty, &empty]),
            &full_box(b"stco", 0, 0, &[&empty]),
        ],
    );
    let minf = mp4_box(b"minf", &[&media_header, &dinf, &stbl]);
    let mdia = mp4_box(b"mdia", &[&mdhd, &hdlr, &minf]);
    let trak = mp4_box(b"trak", &[&tkhd, &mdia]);
    let trex = full_box(b"trex", 0, 0, &[&TRACK_ID.to_be_bytes(), &1u32.to_be_bytes(), &[0; 12]]);
    let mvex = mp4_box(b"mvex", &[&trex]);
    let moov = mp4_box(b"moov", &[&mvhd, &trak, &mvex]);
    Ok([ftyp, moov].concat())
}

// ---------------------------------------------------------------------------------------
// Fragments.

/// A box inside a buffer: its type (and `uuid` user type), where it starts in the buffer,
/// and its body (after the header and user type).
#[derive(Debug, Clone, Copy)]
pub struct Mp4Box<'a> {
    pub kind: [u8; 4],
    pub user_type: Option<[u8; 16]>,
    pub start: usize,
    pub size: usize,
    pub body: &'a [u8],
    /// Where `body` starts in the buffer.
    pub body_start: usize,
}

/// The boxes of `buf[from..to]`, in order; Err on a size that does not fit.
pub fn boxes(buf: &[u8], from: usize, to: usize) -> Result<Vec<Mp4Box<'_>>, String> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let head = buf.get(at..at + 8).ok_or_else(|| format!("box header truncated at {at}"))?;
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = [head[4], head[5], head[6], head[7]];
        if size < 8 || at + size > to {
            return Err(format!("box {:?} at {at} has size {size}, past {to}", String::from_utf8_lossy(&kind)));
        }
        let (user_type, body_start) = if &kind == b"uuid" {
            let u = buf.get(at + 8..at + 24).ok_or("uuid box truncated")?;
            (Some(u.try_into().map_err(|_| "uuid")?), at + 24)
        } else {
            (None, at + 8)
        };
        out.push(Mp4Box { kind, user_type, start: at, size, body: &buf[body_start..at + size], body_start });
        at += size;
    }
    Ok(out)
}

fn child<'a>(list: &[Mp4Box<'a>], kind: &[u8; 4]) -> Option<Mp4Box<'a>> {
    list.iter().find(|b| &b.kind == kind).copied()
}

fn uuid_child<'a>(list: &[Mp4Box<'a>], user_type: [u8; 16]) -> Option<Mp4Box<'a>> {
    list.iter().find(|b| b.user_type == Some(user_type)).copied()
}

fn be32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]])).ok_or_else(|| format!("truncated at {at}"))
}

fn be64(b: &[u8], at: usize) -> Result<u64, String> {
    Ok(u64::from(be32(b, at)?) << 32 | u64::from(be32(b, at + 4)?))
}

/// Sample encryption entries as `senc` and the PIFF box carry them (23001-7 §7.2.1):
/// `flags & 2` (subsamples) and the bytes after sample_count.
#[derive(Debug, PartialEq, Eq)]
pub struct SampleEncryption {
    pub subsamples: bool,
    pub sample_count: u32,
    pub entries: Vec<u8>,
}

/// What the tests check in a Smooth fragment.
#[derive(Debug)]
pub struct Fragment {
    /// `tfxd` absolute time and duration (10 MHz).
    pub tfxd: (u64, u64),
    pub sample_count: u32,
    /// Sum of the trun sample durations (tfhd's default where trun has none).
    pub duration: u64,
    pub piff: Option<SampleEncryption>,
    pub senc: Option<SampleEncryption>,
    /// `saio`'s one offset, relative to the moof (the base of a default-base-is-moof traf).
    pub saio: Option<u64>,
    /// Where the senc entries start, relative to the moof.
    pub senc_entries_offset: Option<u64>,
}

fn sample_encryption(b: &Mp4Box<'_>) -> Result<SampleEncryption, String> {
    let flags = be32(b.body, 0)? & 0xFF_FFFF;
    // PIFF flag 1: an AlgorithmID, IV size and KID override the track's defaults.
    let at = if flags & 1 != 0 { 4 + 20 } else { 4 };
    let sample_count = be32(b.body, at)?;
    Ok(SampleEncryption { subsamples: flags & 2 != 0, sample_count, entries: b.body[at + 4..].to_vec() })
}

/// Parses a Smooth fragment (MS-SSTR §2.2.4: `moof` + `mdat`, one `traf` with `tfhd`,
/// `trun`, `tfxd`) and checks what a player relies on: the trun data offset points at the
/// mdat payload and the sample sizes fill it.
pub fn parse_fragment(bytes: &[u8]) -> Result<Fragment, String> {
    let top = boxes(bytes, 0, bytes.len())?;
    let kinds: Vec<String> = top.iter().map(|b| String::from_utf8_lossy(&b.kind).into_owned()).collect();
    let (Some(moof), Some(mdat)) = (child(&top, b"moof"), child(&top, b"mdat")) else {
        return Err(format!("fragment is {kinds:?}, not moof + mdat"));
    };
    if kinds != ["moof", "mdat"] {
        return Err(format!("fragment is {kinds:?}, not moof + mdat"));
    }
    let moof_children = boxes(bytes, moof.body_start, moof.start + moof.size)?;
    child(&moof_children, b"mfhd").ok_or("moof without mfhd")?;
    let traf = child(&moof_children, b"traf").ok_or("moof without traf")?;
    let traf_children = boxes(bytes, traf.body_start, traf.start + traf.size)?;
    let tfhd = child(&traf_children, b"tfhd").ok_or("traf without tfhd")?;
    let trun = child(&traf_children, b"trun").ok_or("traf without trun")?;
    let tfxd = uuid_child(&traf_children, TFXD).ok_or("traf without tfxd")?;

    let tfxd = match tfxd.body.first() {
        Some(1) => (be64(tfxd.body, 4)?, be64(tfxd.body, 12)?),
        Some(0) => (u64::from(be32(tfxd.body, 4)?), u64::from(be32(tfxd.body, 8)?)),
        v => return Err(format!("tfxd version {v:?}")),
    };

    let tfhd_flags = be32(tfhd.body, 0)? & 0xFF_FFFF;
    if tfhd_flags & 0x01 != 0 {
        return Err("tfhd has a base_data_offset: fragments are moved by players".into());
    }
    let mut at = 8;
    at += if tfhd_flags & 0x02 != 0 { 4 } else { 0 };
    let default_duration = if tfhd_flags & 0x08 != 0 { Some(be32(tfhd.body, at)?) } else { None };
    at += if tfhd_flags & 0x08 != 0 { 4 } else { 0 };
    let default_size = if tfhd_flags & 0x10 != 0 { Some(be32(tfhd.body, at)?) } else { None };

    let flags = be32(trun.body, 0)? & 0xFF_FFFF;
    let sample_count = be32(trun.body, 4)?;
    let mut at = 8;
    let data_offset = if flags & 0x01 != 0 { Some(be32(trun.body, at)? as i32) } else { None };
    at += if flags & 0x01 != 0 { 4 } else { 0 };
    at += if flags & 0x04 != 0 { 4 } else { 0 };
    let (mut duration, mut total_size) = (0u64, 0u64);
    for _ in 0..sample_count {
        if flags & 0x100 != 0 {
            duration += u64::from(be32(trun.body, at)?);
            at += 4;
        } else {
            duration += u64::from(default_duration.ok_or("trun without durations and tfhd without a default")?);
        }
        if flags & 0x200 != 0 {
            total_size += u64::from(be32(trun.body, at)?);
            at += 4;
        } else {
            total_size += u64::from(default_size.ok_or("trun without sizes and tfhd without a default")?);
        }
        at += if flags & 0x400 != 0 { 4 } else { 0 };
        at += if flags & 0x800 != 0 { 4 } else { 0 };
    }
    let payload = (mdat.start + mdat.size - mdat.body_start) as u64;
    if total_size != payload {
        return Err(format!("trun sample sizes add up to {total_size}, mdat holds {payload}"));
    }
    // Without a base offset the base is the moof (14496-12 §8.8.7.1: first traf, or
    // default-base-is-moof).
    let want = (mdat.body_start - moof.start) as i32;
    if data_offset != Some(want) {
        return Err(format!("trun data_offset {data_offset:?}, the mdat payload is at {want}"));
    }

    let piff = uuid_child(&traf_children, PIFF_SENC).map(|b| sample_encryption(&b)).transpose()?;
    let senc_box = child(&traf_children, b"senc");
    let senc = senc_box.map(|b| sample_encryption(&b)).transpose()?;
    let saio = match child(&traf_children, b"saio") {
        Some(b) => {
            let flags = be32(b.body, 0)? & 0xFF_FFFF;
            let at = if flags & 1 != 0 { 12 } else { 4 };
            if be32(b.body, at)? != 1 {
                return Err("saio with other than one offset".into());
            }
            Some(if b.body[0] == 1 { be64(b.body, at + 4)? } else { u64::from(be32(b.body, at + 4)?) })
        }
        None => None,
    };
    let senc_entries_offset = senc_box.map(|b| (b.body_start + 8 - moof.start) as u64);
    Ok(Fragment { tfxd, sample_count, duration, piff, senc, saio, senc_entries_offset })
}

/// The fragment as dash.js's MssFragmentMoofProcessor hands it to the decoder, as far as
/// the decoder cares: `tfhd.track_ID` is the player-built init segment's track.
pub fn player_fragment(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let top = boxes(bytes, 0, bytes.len())?;
    let moof = child(&top, b"moof").ok_or("no moof")?;
    let moof_children = boxes(bytes, moof.body_start, moof.start + moof.size)?;
    let traf = child(&moof_children, b"traf").ok_or("no traf")?;
    let tfhd = child(&boxes(bytes, traf.body_start, traf.start + traf.size)?, b"tfhd").ok_or("no tfhd")?;
    let mut out = bytes.to_vec();
    out[tfhd.body_start + 4..tfhd.body_start + 8].copy_from_slice(&TRACK_ID.to_be_bytes());
    Ok(out)
}

/// A QualityLevel's fragments as a player appends them, and what they hold.
pub struct Fetched {
    pub fragments: Vec<Vec<u8>>,
    pub parsed: Vec<Fragment>,
}

/// Fetches every fragment of `bitrate` in `stream` (its Url pattern filled with the chunk
/// times, relative to `manifest_url`), checks the content type, `tfxd` = the chunk's (`t`,
/// `d`) and that the trun durations add up to `d`, and returns them rewritten as dash.js
/// appends them. Err names the first fragment that is wrong.
pub async fn fetch_fragments(
    client: &reqwest::Client,
    manifest_url: &str,
    stream: Stream<'_>,
    bitrate: u64,
) -> Result<Fetched, String> {
    let label = format!("{} {} ({bitrate})", stream.kind(), stream.name());
    let base = manifest_url.rfind('/').map_or(manifest_url, |at| &manifest_url[..=at]);
    let chunks = stream.chunks().map_err(|e| format!("{label}: {e}"))?;
    if chunks.is_empty() {
        return Err(format!("{label}: no chunks"));
    }
    let want_type = if stream.kind() == "video" { "video/mp4" } else { "audio/mp4" };
    let mut fetched = Fetched { fragments: Vec::new(), parsed: Vec::new() };
    for Chunk { t, d } in chunks {
        let got = super::get(client, &format!("{base}{}", stream.fragment_url(bitrate, t))).await;
        if got.status != reqwest::StatusCode::OK || got.header(reqwest::header::CONTENT_TYPE) != Some(want_type) {
            return Err(format!("{label}: {}", got.describe()));
        }
        let f = parse_fragment(&got.body).map_err(|e| format!("{label} {}: {e}", got.what))?;
        if f.tfxd != (t, d) {
            return Err(format!("{label} {}: tfxd (time, duration) {:?}, chunk t={t} d={d}", got.what, f.tfxd));
        }
        if f.duration != d {
            return Err(format!("{label} {}: trun durations add up to {}, chunk d={d}", got.what, f.duration));
        }
        fetched.fragments.push(player_fragment(&got.body)?);
        fetched.parsed.push(f);
    }
    Ok(fetched)
}
