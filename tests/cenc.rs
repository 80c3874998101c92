//! Common Encryption over HTTP (DESIGN.md §4): `cenc` / `cbcs` fMP4 output, its DRM signalling
//! in DASH and HLS-CMAF, the ClearKey licence endpoint, PlayReady key seeds and policies. The
//! origin runs in this process on an ephemeral port; clients are reqwest, ffmpeg (decrypting
//! oracle) and an AES-128 `cbcs` / `cenc` decryptor written here from ISO/IEC 23001-7 (not
//! from `src/protect`). MP4 boxes, PSSH boxes, the Widevine protobuf and the PlayReady header
//! object are parsed by hand here, independently of `src/protect/drm/`.
//!
//! * `cenc_dash_*`: MPD ContentProtection (mp4protection + default_KID, Widevine pssh,
//!   PlayReady pro + pssh, ClearKey Laurl, namespaces); init segment `encv`/`enca` with
//!   sinf/frma/schm/tenc and the PSSH boxes; every segment of the 150k video and audio_eng,
//!   found through the SegmentTimeline, decrypted by ffmpeg one segment at a time decodes to
//!   the source's frames; `saio` points at the `senc` entries.
//! * `cenc_hls_*`: the HLS-CMAF media playlist's EXT-X-KEY lines and that its segments are
//!   DASH-CMAF's bytes.
//! * `cbcs_*`: tenc v1 with the 1:9 pattern and a constant IV, SAMPLE-AES lines with FairPlay,
//!   and a video and an audio segment decrypted by the independent decryptor equal the clear
//!   locator's samples; ffmpeg decrypts cbcs per segment too.
//! * `determinism_*`: same bytes and ETag twice and from a second origin.
//! * `clearkey_*`: the W3C licence endpoint (JSON, unknown KIDs, malformed requests, token
//!   access, preflight, no key material in errors) and the raw key endpoint.
//! * `key_seed_*`: a key derived from a PlayReady key seed (published vector) is licensed and
//!   really encrypts the content.
//! * `policy_*`: 403 / 400 for what a locator or a format cannot serve.

mod common;

use common::{attr, dash_segment_urls, element_text, xml_unescape, Got, TestServer};

use std::ffi::OsStr;
use std::path::Path as FsPath;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header;
use reqwest::{Method, StatusCode};

use jit_origin::config::Config;
use jit_origin::serve::origin::Origin;

// ---------------------------------------------------------------------------------------
// Configuration.

/// multi-drm locator of `ladder`, every DRM system signalled, open key access.
const DRM: &str = "drm-ladder";
const KID: &str = "9eb4050de44b4802932e27d75083e266";
const KID_GUID: &str = "9eb4050d-e44b-4802-932e-27d75083e266";
const KEY: &str = "166634c675823c235a4a9446fad52e4d";
/// cenc-only locator of `ladder`, keys behind an HS256 JWT.
const CENC_TOKEN: &str = "cenc-token";
const TOKEN_KID: &str = "00112233445566778899aabbccddeeff";
const TOKEN_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// Another cenc locator with the same issuer, audience and secret, whose tokens must name
/// its key in the content key identifier claim.
const CENC_BOUND: &str = "cenc-bound";
const BOUND_KID: &str = "ffeeddccbbaa99887766554433221100";
const BOUND_KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// cenc locator whose key comes from a PlayReady key seed (Microsoft's published test seed).
const SEED: &str = "seed-ladder";
const SEED_B64: &str = "XVBovsmzhP9gRIZxWfFta3VVRPzVEWmJsazEJ46I";
const SEED_KID: &str = "339C45B5-FB6D-4BD9-994C-EABD9D41C95B";
/// The published key of SEED_KID under SEED_B64 (the vector src/protect/drm/playready.rs tests use).
const SEED_KEY_B64: &str = "pTfNwMplhBQG1SXnvyLXVA==";
/// Clear and envelope locators of the same asset.
const CLEAR: &str = "clear-ladder";
const ENV: &str = "env-ladder";

const SECRET: &[u8] = b"jit-origin-test-secret-0123456789abcdef";
const SECRET_B64: &str = "aml0LW9yaWdpbi10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
const ISSUER: &str = "https://issuer.example.test";
const AUDIENCE: &str = "jit-origin-test";

const WV_LICENSE: &str = "https://wv.example/license?kid={kid}";
const PR_LICENSE: &str = "https://pr.example/rightsmanager.asmx?kid={kid_uuid}&loc={locator}";

const WIDEVINE_ID: &str = "edef8ba979d64acea3c827dcd51d21ed";
const PLAYREADY_ID: &str = "9a04f07998404286ab92e65be0885f95";
const COMMON_ID: &str = "1077efecc0b24d02ace33c1e52e2fb4b";

/// The configuration of a server on `port` (the ClearKey licence URL names it). `wv_host`
/// only varies the Widevine licence URL (for the ETag test).
fn config_text(port: u16, wv_host: &str) -> String {
    let fixtures = common::fixtures_dir();
    let wv = WV_LICENSE.replace("wv.example", wv_host);
    format!(
        r#"listen = "127.0.0.1:0"
[[storage]]
name = "fixtures"
url = "file://{fixtures}"

[[locator]]
id = "{DRM}"
storage = "fixtures"
asset = "ladder"
policy = "multi-drm"
keys = [{{ kid = "{KID}", key = "{KEY}" }}]
[locator.drm]
widevine_license_url = "{wv}"
widevine_content_id = "{{locator}}"
playready_license_url = "{PR_LICENSE}"
fairplay_key_uri = "skd://{{kid}}"
clearkey_license_url = "http://127.0.0.1:{port}/{{locator}}/clearkey"
clearkey_key_url = "http://127.0.0.1:{port}/{{locator}}/key/{{kid}}"

[[locator]]
id = "{CENC_TOKEN}"
storage = "fixtures"
asset = "ladder"
policy = "cenc"
keys = [{{ kid = "{TOKEN_KID}", key = "{TOKEN_KEY}" }}]
[locator.key_access]
mode = "token"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
hs256_secret_base64 = "{SECRET_B64}"
[locator.drm]
clearkey_license_url = "http://127.0.0.1:{port}/{{locator}}/clearkey"

[[locator]]
id = "{CENC_BOUND}"
storage = "fixtures"
asset = "ladder"
policy = "cenc"
keys = [{{ kid = "{BOUND_KID}", key = "{BOUND_KEY}" }}]
[locator.key_access]
mode = "token"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
hs256_secret_base64 = "{SECRET_B64}"
require_content_key_claim = true

[[locator]]
id = "{SEED}"
storage = "fixtures"
asset = "ladder"
policy = "cenc"
key_seed_base64 = "{SEED_B64}"
keys = [{{ kid = "{SEED_KID}" }}]

[[locator]]
id = "{CLEAR}"
storage = "fixtures"
asset = "ladder"
policy = "clear"

[[locator]]
id = "{ENV}"
storage = "fixtures"
asset = "ladder"
policy = "envelope"
keys = [{{ kid = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", key = "5566778899aabbccddeeff0011223344" }}]
"#,
        fixtures = fixtures.display()
    )
}

fn path(locator: &str, rest: &str) -> String {
    format!("/{locator}/ladder.ism/{rest}")
}

// ---------------------------------------------------------------------------------------
// Small codecs (written here, independent of src/).

fn hex_decode(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

fn hex16(s: &str) -> [u8; 16] {
    hex_decode(s).try_into().expect("16 bytes")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(bytes: &[u8], url: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            let c = B64[((n >> (18 - 6 * i)) & 63) as usize];
            out.push(match (url, c) {
                (true, b'+') => '-',
                (true, b'/') => '_',
                (_, c) => c as char,
            });
        }
        if !url {
            (chunk.len()..3).for_each(|_| out.push('='));
        }
    }
    out
}

/// Decodes standard or URL-safe base64, padded or not.
fn b64_decode(s: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim().bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => panic!("not base64: {s:?}"),
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// The KID as a Microsoft little-endian GUID (PlayReady).
fn guid_le(kid: &[u8; 16]) -> [u8; 16] {
    let mut k = *kid;
    k[0..4].reverse();
    k[4..6].reverse();
    k[6..8].reverse();
    k
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------
// MP4 boxes, by hand.

#[derive(Clone, Copy, Debug)]
struct Mp4Box<'a> {
    kind: [u8; 4],
    /// Offset of the box header in the buffer walked.
    start: usize,
    /// Offset of the payload in that buffer.
    payload_at: usize,
    payload: &'a [u8],
}

/// The boxes in `buf[from..]`, payload offsets relative to `buf`.
fn boxes_at(buf: &[u8], from: usize) -> Vec<Mp4Box<'_>> {
    let mut out = Vec::new();
    let mut at = from;
    while at + 8 <= buf.len() {
        let mut size = be32(buf, at) as usize;
        let mut header = 8;
        if size == 1 {
            size = u64::from_be_bytes(buf[at + 8..at + 16].try_into().unwrap()) as usize;
            header = 16;
        } else if size == 0 {
            size = buf.len() - at;
        }
        assert!(size >= header && at + size <= buf.len(), "box at {at} of size {size} overruns {} bytes", buf.len());
        out.push(Mp4Box {
            kind: buf[at + 4..at + 8].try_into().unwrap(),
            start: at,
            payload_at: at + header,
            payload: &buf[at + header..at + size],
        });
        at += size;
    }
    assert_eq!(at, buf.len(), "boxes do not end where the buffer does");
    out
}

fn children<'a>(b: &Mp4Box<'a>, skip: usize) -> Vec<Mp4Box<'a>> {
    boxes_at(b.payload, skip)
}

fn child<'a>(b: &Mp4Box<'a>, kind: &[u8; 4], skip: usize) -> Option<Mp4Box<'a>> {
    children(b, skip).into_iter().find(|c| &c.kind == kind)
}

fn need<'a>(b: &Mp4Box<'a>, kind: &[u8; 4], skip: usize) -> Mp4Box<'a> {
    child(b, kind, skip).unwrap_or_else(|| {
        let kinds: Vec<String> =
            children(b, skip).iter().map(|c| String::from_utf8_lossy(&c.kind).into_owned()).collect();
        panic!("'{}' has no '{}' (children {kinds:?})", String::from_utf8_lossy(&b.kind), String::from_utf8_lossy(kind))
    })
}

fn top<'a>(buf: &'a [u8], kind: &[u8; 4]) -> Mp4Box<'a> {
    boxes_at(buf, 0)
        .into_iter()
        .find(|b| &b.kind == kind)
        .unwrap_or_else(|| panic!("no top-level '{}'", String::from_utf8_lossy(kind)))
}

#[derive(Debug, Clone, PartialEq)]
struct Tenc {
    version: u8,
    crypt: u8,
    skip: u8,
    protected: u8,
    iv_size: u8,
    kid: [u8; 16],
    constant_iv: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Pssh {
    version: u8,
    system: String,
    kids: Vec<[u8; 16]>,
    data: Vec<u8>,
}

fn parse_pssh_payload(p: &[u8]) -> Pssh {
    let version = p[0];
    let system = hex(&p[4..20]);
    let mut at = 20;
    let mut kids = Vec::new();
    if version >= 1 {
        let n = be32(p, at) as usize;
        at += 4;
        for _ in 0..n {
            kids.push(p[at..at + 16].try_into().unwrap());
            at += 16;
        }
    }
    let len = be32(p, at) as usize;
    at += 4;
    assert_eq!(at + len, p.len(), "pssh data size");
    Pssh { version, system, kids, data: p[at..].to_vec() }
}

/// A whole `pssh` box (as base64 in MPDs and HLS data URIs).
fn parse_pssh_box(b: &[u8]) -> Pssh {
    let all = boxes_at(b, 0);
    assert_eq!(all.len(), 1, "one box");
    assert_eq!(&all[0].kind, b"pssh");
    parse_pssh_payload(all[0].payload)
}

/// What an encrypted init segment says about its one track.
#[derive(Debug)]
struct InitInfo {
    entry: [u8; 4],
    original: [u8; 4],
    scheme: [u8; 4],
    scheme_version: u32,
    tenc: Tenc,
    pssh: Vec<Pssh>,
}

fn parse_init(init: &[u8]) -> InitInfo {
    let moov = top(init, b"moov");
    let trak = need(&moov, b"trak", 0);
    let stsd = need(&need(&need(&need(&trak, b"mdia", 0), b"minf", 0), b"stbl", 0), b"stsd", 0);
    assert_eq!(be32(stsd.payload, 4), 1, "one sample entry");
    let entry = &children(&stsd, 8)[0];
    let fixed = match &entry.kind {
        b"encv" => 78,
        b"enca" => 28,
        k => panic!("sample entry '{}' is not encv/enca", String::from_utf8_lossy(k)),
    };
    let sinf = need(entry, b"sinf", fixed);
    let frma = need(&sinf, b"frma", 0);
    let schm = need(&sinf, b"schm", 0);
    let tenc = need(&need(&sinf, b"schi", 0), b"tenc", 0);
    let t = tenc.payload;
    let version = t[0];
    let (crypt, skip) = if version >= 1 { (t[5] >> 4, t[5] & 0xf) } else { (0, 0) };
    let (protected, iv_size) = (t[6], t[7]);
    let kid: [u8; 16] = t[8..24].try_into().unwrap();
    let constant_iv = (protected == 1 && iv_size == 0).then(|| {
        let n = t[24] as usize;
        assert_eq!(t.len(), 25 + n, "tenc length");
        t[25..25 + n].to_vec()
    });
    if constant_iv.is_none() {
        assert_eq!(t.len(), 24, "tenc length");
    }
    let pssh =
        children(&moov, 0).iter().filter(|b| &b.kind == b"pssh").map(|b| parse_pssh_payload(b.payload)).collect();
    InitInfo {
        entry: entry.kind,
        original: frma.payload[..4].try_into().unwrap(),
        scheme: schm.payload[4..8].try_into().unwrap(),
        scheme_version: be32(schm.payload, 8),
        tenc: Tenc { version, crypt, skip, protected, iv_size, kid, constant_iv },
        pssh,
    }
}

/// One sample of a media segment: its bytes' range in the segment and its `senc` entry.
#[derive(Debug, Clone)]
struct Sample {
    range: std::ops::Range<usize>,
    iv: Vec<u8>,
    subsamples: Vec<(usize, usize)>,
}

/// The samples of a one-track media segment. `iv_size` from `tenc` (0 for cbcs); a missing
/// `senc` means "whole samples, no per-sample IVs".
fn parse_segment(seg: &[u8], iv_size: usize) -> Vec<Sample> {
    let moof = top(seg, b"moof");
    let traf = need(&moof, b"traf", 0);
    let tfhd = need(&traf, b"tfhd", 0).payload;
    let tf_flags = be32(tfhd, 0) & 0xff_ffff;
    assert!(tf_flags & 0x1 == 0 && tf_flags & 0x2_0000 != 0, "default-base-is-moof expected, tfhd flags {tf_flags:#x}");
    let mut at = 8;
    if tf_flags & 0x2 != 0 {
        at += 4;
    }
    if tf_flags & 0x8 != 0 {
        at += 4;
    }
    let default_size = (tf_flags & 0x10 != 0).then(|| be32(tfhd, at));
    let trun = need(&traf, b"trun", 0).payload;
    let tr_flags = be32(trun, 0) & 0xff_ffff;
    let count = be32(trun, 4) as usize;
    let mut at = 8;
    let data_offset = if tr_flags & 0x1 != 0 {
        at += 4;
        be32(trun, at - 4) as i32 as i64
    } else {
        panic!("trun without data_offset")
    };
    if tr_flags & 0x4 != 0 {
        at += 4;
    }
    let mut pos = (moof.start as i64 + data_offset) as usize;
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        if tr_flags & 0x100 != 0 {
            at += 4;
        }
        let size = if tr_flags & 0x200 != 0 {
            at += 4;
            be32(trun, at - 4)
        } else {
            default_size.expect("sample size")
        } as usize;
        if tr_flags & 0x400 != 0 {
            at += 4;
        }
        if tr_flags & 0x800 != 0 {
            at += 4;
        }
        samples.push(Sample { range: pos..pos + size, iv: Vec::new(), subsamples: Vec::new() });
        pos += size;
    }
    let mdat = top(seg, b"mdat");
    assert_eq!(pos, mdat.payload_at + mdat.payload.len(), "samples fill mdat");
    if let Some(senc) = child(&traf, b"senc", 0) {
        let p = senc.payload;
        let flags = be32(p, 0) & 0xff_ffff;
        assert_eq!(be32(p, 4) as usize, count, "senc sample_count");
        let mut at = 8;
        for s in &mut samples {
            s.iv = p[at..at + iv_size].to_vec();
            at += iv_size;
            if flags & 0x2 != 0 {
                let n = be16(p, at) as usize;
                at += 2;
                for _ in 0..n {
                    s.subsamples.push((be16(p, at) as usize, be32(p, at + 2) as usize));
                    at += 6;
                }
                assert_eq!(
                    s.subsamples.iter().map(|(c, p)| c + p).sum::<usize>(),
                    s.range.len(),
                    "subsamples cover the sample"
                );
            }
        }
        assert_eq!(at, p.len(), "senc fully read");
        // saio: one offset, from the moof start, to the first sample's entry in senc.
        let saio = need(&traf, b"saio", 0).payload;
        let saio_flags = be32(saio, 0) & 0xff_ffff;
        let first = if saio_flags & 1 != 0 { 12 } else { 4 };
        assert_eq!(be32(saio, first), 1, "one saio offset");
        let offset = if saio[0] == 0 {
            be32(saio, first + 4) as usize
        } else {
            u64::from_be_bytes(saio[first + 4..first + 12].try_into().unwrap()) as usize
        };
        // senc.payload_at is relative to traf's payload; make it relative to the segment.
        let senc_entries = traf.payload_at + moof.payload_at + senc.payload_at + 8;
        assert_eq!(moof.start + offset, senc_entries, "saio points at the senc entries");
        // saiz: per-sample sizes match senc.
        let saiz = need(&traf, b"saiz", 0).payload;
        let zat = if be32(saiz, 0) & 1 != 0 { 12 } else { 4 };
        let default = saiz[zat] as usize;
        assert_eq!(be32(saiz, zat + 1) as usize, count, "saiz sample_count");
        for (i, s) in samples.iter().enumerate() {
            let want = iv_size + if flags & 0x2 != 0 { 2 + 6 * s.subsamples.len() } else { 0 };
            let got = if default != 0 { default } else { saiz[zat + 5 + i] as usize };
            assert_eq!(got, want, "saiz of sample {i}");
        }
    }
    samples
}

// ---------------------------------------------------------------------------------------
// ISO/IEC 23001-7 decryption, written from the specification.

fn aes(key: &[u8; 16]) -> Aes128 {
    Aes128::new(&(*key).into())
}

/// The protected ranges of a sample, as (start, end) in the sample: the whole sample when it
/// has no subsamples.
fn protected_ranges(s: &Sample) -> Vec<(usize, usize)> {
    if s.subsamples.is_empty() {
        return vec![(0, s.range.len())];
    }
    let mut at = 0;
    let mut out = Vec::new();
    for &(clear, protected) in &s.subsamples {
        at += clear;
        out.push((at, at + protected));
        at += protected;
    }
    out
}

/// `cenc` (§9.5.2.1): AES-CTR, counter block = 8-byte IV ‖ 64-bit block counter from 0; the
/// protected ranges of one sample form one key stream.
fn cenc_decrypt(key: &[u8; 16], sample: &mut [u8], s: &Sample) {
    let cipher = aes(key);
    assert_eq!(s.iv.len(), 8, "cenc IV size");
    let mut stream = 0u64;
    for (from, to) in protected_ranges(s) {
        for byte in &mut sample[from..to] {
            let mut block = [0u8; 16];
            block[..8].copy_from_slice(&s.iv);
            block[8..].copy_from_slice(&(stream / 16).to_be_bytes());
            let mut b = block.into();
            cipher.encrypt_block(&mut b);
            *byte ^= b[(stream % 16) as usize];
            stream += 1;
        }
    }
}

/// `cbcs` (§10.4): per protected range, AES-CBC from the constant IV over the first `crypt`
/// blocks of every `crypt + skip` (0:0 = every block); skipped blocks and a trailing partial
/// block are clear and do not enter the chain; the chain restarts at each range.
fn cbcs_decrypt(key: &[u8; 16], iv: &[u8; 16], crypt: u8, skip: u8, sample: &mut [u8], s: &Sample) {
    let cipher = aes(key);
    let (crypt, skip) = if crypt == 0 && skip == 0 { (1, 0) } else { (crypt as usize, skip as usize) };
    for (from, to) in protected_ranges(s) {
        let mut prev = *iv;
        let blocks = (to - from) / 16;
        for k in (0..blocks).filter(|k| k % (crypt + skip) < crypt) {
            let b = &mut sample[from + 16 * k..from + 16 * k + 16];
            let ct: [u8; 16] = b.try_into().unwrap();
            let mut x = ct.into();
            cipher.decrypt_block(&mut x);
            for i in 0..16 {
                b[i] = x[i] ^ prev[i];
            }
            prev = ct;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The server under test: its own runtime thread, stopped on drop. The listener is bound
// first so the config can name the port.

impl TestServer {
    fn start() -> TestServer {
        TestServer::start_with("wv.example", None)
    }

    /// A second replica of `other`: the very same configuration (URLs name `other`'s port).
    fn replica_of(other: &TestServer) -> TestServer {
        TestServer::start_with("wv.example", Some(other.addr.port()))
    }

    /// `url_port`: the port the configured licence URLs name (default: this server's).
    fn start_with(wv_host: &str, url_port: Option<u16>) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let text = config_text(url_port.unwrap_or(addr.port()), wv_host);
        let config = Config::parse(&text, common::fixtures_dir())
            .unwrap_or_else(|e| panic!("test config does not parse: {e}\n{text}"));
        TestServer::serve_on(listener, Origin::from_config(&config).expect("origin"), config.http)
    }
}

fn send(method: Method, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Got {
    let what = format!("{method} {url}");
    let url = url.to_string();
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let body = body.map(<[u8]>::to_vec);
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(async move {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        let mut rb = client.request(method, &url);
        for (k, v) in &headers {
            rb = rb.header(k, v);
        }
        if let Some(body) = body {
            rb = rb.body(body);
        }
        let resp = rb.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let (status, version, headers) = (resp.status(), resp.version(), resp.headers().clone());
        let body = resp.bytes().await.unwrap_or_else(|e| panic!("{what}: body: {e}")).to_vec();
        Got { what, status, headers, body, version }
    })
}

fn get(url: &str) -> Got {
    send(Method::GET, url, &[], None)
}

fn post_json(url: &str, body: &str, headers: &[(&str, &str)]) -> Got {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    send(Method::POST, url, &h, Some(body.as_bytes()))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn valid_token() -> String {
    let claims =
        serde_json::json!({ "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 3600, "iat": now(), "sub": "viewer-1" });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET))
        .expect("encode jwt")
}

// ---------------------------------------------------------------------------------------
// Manifest helpers.

/// The `<AdaptationSet …>…</AdaptationSet>` blocks of an MPD.
fn adaptation_sets(mpd: &str) -> Vec<&str> {
    mpd.split("<AdaptationSet")
        .skip(1)
        .map(|s| &s[..s.find("</AdaptationSet>").expect("closed AdaptationSet")])
        .collect()
}

/// `ContentProtection` elements of a block: (schemeIdUri, whole element text).
fn content_protections(block: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = block;
    while let Some(at) = rest.find("<ContentProtection") {
        let el = &rest[at..];
        let head_end = el.find('>').unwrap();
        let len = if el[..head_end].ends_with('/') {
            head_end + 1
        } else {
            el.find("</ContentProtection>").expect("closed ContentProtection") + "</ContentProtection>".len()
        };
        let el = &el[..len];
        out.push((attr(el, "schemeIdUri").expect("schemeIdUri").to_string(), el.to_string()));
        rest = &rest[at + len..];
    }
    out
}

/// Segment URIs of an HLS media playlist, resolved.
fn playlist_uris(playlist_url: &str, text: &str) -> Vec<String> {
    let base = &playlist_url[..playlist_url.rfind('/').unwrap() + 1];
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| format!("{base}{l}")).collect()
}

/// A quoted or plain attribute of an HLS attribute list.
fn hls_attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!("{name}=");
    let mut search = 0;
    loop {
        let at = search + line[search..].find(&needle)?;
        // A whole attribute name: preceded by ':' or ','.
        if at > 0 && matches!(line.as_bytes()[at - 1], b':' | b',') {
            let rest = &line[at + needle.len()..];
            return Some(match rest.strip_prefix('"') {
                Some(q) => &q[..q.find('"')?],
                None => rest.split(',').next().unwrap(),
            });
        }
        search = at + needle.len();
    }
}

// ---------------------------------------------------------------------------------------
// DRM signalling checks shared by the tests.

/// Widevine protobuf: the `key_id` (2) values and `protection_scheme` (9).
fn widevine_fields(data: &[u8]) -> (Vec<Vec<u8>>, Option<u64>, Option<Vec<u8>>) {
    let varint = |at: &mut usize| -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = data[*at];
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    };
    let (mut kids, mut scheme, mut content_id) = (Vec::new(), None, None);
    let mut at = 0;
    while at < data.len() {
        let key = varint(&mut at);
        match (key >> 3, key & 7) {
            (field, 0) => {
                let v = varint(&mut at);
                if field == 9 {
                    scheme = Some(v);
                }
            }
            (field, 2) => {
                let len = varint(&mut at) as usize;
                let v = data[at..at + len].to_vec();
                at += len;
                match field {
                    2 => kids.push(v),
                    4 => content_id = Some(v),
                    _ => {}
                }
            }
            other => panic!("unexpected protobuf wire type {other:?}"),
        }
    }
    (kids, scheme, content_id)
}

/// PlayReady Object → WRMHEADER XML, checking the framing (little-endian lengths, one record
/// of type 1, UTF-16LE).
fn pro_xml(pro: &[u8]) -> String {
    assert_eq!(u32::from_le_bytes(pro[0..4].try_into().unwrap()) as usize, pro.len(), "PRO length");
    assert_eq!(u16::from_le_bytes([pro[4], pro[5]]), 1, "PRO record count");
    assert_eq!(u16::from_le_bytes([pro[6], pro[7]]), 1, "PRO record type (rights management header)");
    let len = u16::from_le_bytes([pro[8], pro[9]]) as usize;
    assert_eq!(10 + len, pro.len(), "PRO record length");
    let units: Vec<u16> = pro[10..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).expect("UTF-16LE WRMHEADER")
}

/// The Widevine, PlayReady and common PSSHs of a `scheme` stream of KID/KEY (whatever their
/// source: init segment, MPD or HLS data URI).
fn check_widevine_pssh(p: &Pssh, scheme: &[u8; 4]) {
    assert_eq!(p.system, WIDEVINE_ID);
    assert!(p.version == 0 || p.kids == [hex16(KID)], "v1 Widevine pssh lists the KID: {p:?}");
    let (kids, protection, content_id) = widevine_fields(&p.data);
    assert_eq!(kids, vec![hex16(KID).to_vec()], "Widevine key_id");
    assert_eq!(protection, Some(u64::from(u32::from_be_bytes(*scheme))), "Widevine protection_scheme");
    assert_eq!(content_id.as_deref(), Some(DRM.as_bytes()), "content_id = the {{locator}} template");
}

fn check_playready_pro(pro: &[u8], scheme: &[u8; 4]) -> String {
    let xml = pro_xml(pro);
    let kid_value = b64_encode(&guid_le(&hex16(KID)), false);
    match scheme {
        b"cenc" => {
            assert!(xml.contains("version=\"4.0.0.0\""), "{xml}");
            assert_eq!(element_text(&xml, "<KID>", "</KID>"), Some(kid_value.as_str()), "{xml}");
            assert_eq!(element_text(&xml, "<ALGID>", "</ALGID>"), Some("AESCTR"), "{xml}");
            // Checksum: first 8 bytes of AES-ECB(key, little-endian KID).
            let mut block = guid_le(&hex16(KID)).into();
            aes(&hex16(KEY)).encrypt_block(&mut block);
            assert_eq!(
                element_text(&xml, "<CHECKSUM>", "</CHECKSUM>"),
                Some(b64_encode(&block[..8], false).as_str()),
                "{xml}"
            );
        }
        _ => {
            assert!(xml.contains("version=\"4.3.0.0\""), "{xml}");
            assert!(xml.contains(&format!("<KID ALGID=\"AESCBC\" VALUE=\"{kid_value}\"")), "{xml}");
            assert!(!xml.contains("CHECKSUM"), "{xml}");
        }
    }
    let la = PR_LICENSE.replace("{kid_uuid}", KID_GUID).replace("{locator}", DRM).replace('&', "&amp;");
    assert_eq!(element_text(&xml, "<LA_URL>", "</LA_URL>"), Some(la.as_str()), "{xml}");
    xml
}

/// An encrypted init segment of the multi-DRM locator.
fn check_init(init: &[u8], scheme: &[u8; 4], video: bool) -> InitInfo {
    let info = parse_init(init);
    assert_eq!(&info.entry, if video { b"encv" } else { b"enca" });
    assert_eq!(&info.original, if video { b"avc1" } else { b"mp4a" }, "frma");
    assert_eq!(&info.scheme, scheme, "schm scheme_type");
    assert_eq!(info.scheme_version, 0x0001_0000, "schm scheme_version");
    assert_eq!(info.tenc.kid, hex16(KID), "tenc default_KID");
    assert_eq!(info.tenc.protected, 1, "tenc default_isProtected");
    let systems: Vec<&str> = info.pssh.iter().map(|p| p.system.as_str()).collect();
    assert!(
        systems.contains(&COMMON_ID) && systems.contains(&WIDEVINE_ID) && systems.contains(&PLAYREADY_ID),
        "pssh systems {systems:?}"
    );
    for p in &info.pssh {
        match p.system.as_str() {
            COMMON_ID => {
                assert_eq!(p.version, 1, "W3C common pssh is version 1");
                assert_eq!(p.kids, vec![hex16(KID)], "common pssh lists the KID");
                assert!(p.data.is_empty());
            }
            WIDEVINE_ID => check_widevine_pssh(p, scheme),
            PLAYREADY_ID => {
                check_playready_pro(&p.data, scheme);
            }
            other => panic!("unexpected pssh system {other}"),
        }
    }
    info
}

// ---------------------------------------------------------------------------------------
// ffmpeg: per-segment decryption (ffmpeg 5.1 finds a sample's senc entry in the last parsed
// fragment only, so every segment goes to ffmpeg with the init segment alone), the
// elementary streams concatenated and decoded once.

fn ffmpeg_decrypt_decode(
    init: &[u8],
    segments: &[Vec<u8>],
    key_hex: &str,
    map: &str,
    raw: &str,
    dir: &FsPath,
) -> Result<Vec<String>, String> {
    let mut elementary = Vec::new();
    for (k, seg) in segments.iter().enumerate() {
        let file = dir.join(format!("{raw}-seg{k}.mp4"));
        std::fs::write(&file, [init, &seg[..]].concat()).unwrap();
        let mut cmd = Command::new(common::ffmpeg_bin());
        cmd.args(["-nostdin", "-hide_banner", "-v", "error", "-decryption_key", key_hex, "-i"]).arg(&file);
        cmd.args(["-map", map, "-c", "copy", "-f", raw, "-"]);
        elementary.extend(common::run(&mut cmd)?);
    }
    let out = dir.join(format!("decrypted.{raw}"));
    std::fs::write(&out, elementary).unwrap();
    common::framemd5(&[], &out, "0:0")
}

fn source_frames(file: &str, map: &str) -> Vec<String> {
    let src = common::fixtures_dir().join("ladder").join(file);
    common::framemd5(&[OsStr::new("-ignore_editlist"), OsStr::new("1")], &src, map).unwrap_or_else(|e| panic!("{e}"))
}

fn fetch_all(urls: &[String]) -> Vec<Vec<u8>> {
    urls.iter().map(|u| get(u).ok().body).collect()
}

// ---------------------------------------------------------------------------------------
// 1. cenc over DASH and HLS-CMAF.

#[test]
fn cenc_dash_signalling_init_and_ffmpeg_decrypt() {
    let server = TestServer::start();
    let mpd_url = server.url(&path(DRM, "manifest(format=mpd-time-cmaf,encryption=cenc).mpd"));
    let got = get(&mpd_url).ok();
    assert_eq!(got.header(header::CONTENT_TYPE), Some("application/dash+xml"));
    let mpd = got.text();

    // Namespaces on the MPD root.
    let root = &mpd[mpd.find("<MPD").unwrap()..];
    let root = &root[..root.find('>').unwrap()];
    assert_eq!(attr(root, "xmlns:cenc"), Some("urn:mpeg:cenc:2013"), "{root}");
    assert_eq!(attr(root, "xmlns:mspr"), Some("urn:microsoft:playready"), "{root}");
    assert!(attr(root, "xmlns:dashif").is_some(), "{root}");

    let sets = adaptation_sets(&mpd);
    // (The video set's trick-mode twin is protected the same way.)
    assert_eq!(sets.len(), 4, "video, audio eng, audio fra, video trick mode");
    let clearkey_url = server.url(&format!("/{DRM}/clearkey"));
    for set in &sets {
        let cps = content_protections(set);
        let schemes: Vec<&str> = cps.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            schemes,
            [
                "urn:mpeg:dash:mp4protection:2011",
                "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
                "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95",
                "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"
            ],
            "ContentProtection of {}",
            &set[..set.find('>').unwrap()]
        );
        // ContentProtection comes before Label/Role/Representation (schema order).
        let last_cp = set.rfind("</ContentProtection>").unwrap();
        assert!(set.find("<Representation").unwrap() > last_cp && set.find("<Label").is_none_or(|l| l > last_cp));
        let mp4 = &cps[0].1;
        assert_eq!(attr(mp4, "value"), Some("cenc"));
        assert_eq!(attr(mp4, "cenc:default_KID").map(str::to_lowercase).as_deref(), Some(KID_GUID));

        let wv = &cps[1].1;
        let pssh =
            parse_pssh_box(&b64_decode(element_text(wv, "<cenc:pssh>", "</cenc:pssh>").expect("Widevine cenc:pssh")));
        check_widevine_pssh(&pssh, b"cenc");
        assert_eq!(
            element_text(wv, "<dashif:Laurl>", "</dashif:Laurl>").map(xml_unescape),
            Some(WV_LICENSE.replace("{kid}", KID))
        );

        let pr = &cps[2].1;
        let pro = b64_decode(element_text(pr, "<mspr:pro>", "</mspr:pro>").expect("mspr:pro"));
        check_playready_pro(&pro, b"cenc");
        let pssh =
            parse_pssh_box(&b64_decode(element_text(pr, "<cenc:pssh>", "</cenc:pssh>").expect("PlayReady cenc:pssh")));
        assert_eq!((pssh.system.as_str(), &pssh.data), (PLAYREADY_ID, &pro), "PlayReady pssh carries the PRO");

        let ck = &cps[3].1;
        assert_eq!(element_text(ck, "<dashif:Laurl>", "</dashif:Laurl>").map(xml_unescape), Some(clearkey_url.clone()));
        // dash.js hands a Clear Key cenc:pssh to the CDM as `keyids` JSON: there must be none
        // (the init segment's common PSSH serves players that want one).
        assert_eq!(element_text(ck, "<cenc:pssh>", "</cenc:pssh>"), None, "ClearKey descriptor: {ck}");
    }

    // The 150k video and audio_eng: init segments, then every segment through ffmpeg.
    let dir = tempfile::tempdir().unwrap();
    for (rep, file, map, raw, video) in [
        ("video-150000", "video_150k.mp4", "0:v:0", "h264", true),
        ("audio_eng-128000", "audio_eng.mp4", "0:a:0", "adts", false),
    ] {
        let (init_url, seg_urls) = dash_segment_urls(&mpd_url, &mpd, rep);
        assert!(seg_urls.len() > 1, "{rep}: {seg_urls:?}");
        let init = get(&init_url).ok();
        assert_eq!(init.header(header::CONTENT_TYPE), Some(if video { "video/mp4" } else { "audio/mp4" }));
        let info = check_init(&init.body, b"cenc", video);
        assert_eq!((info.tenc.version, info.tenc.iv_size), (0, 8), "cenc tenc: version 0, 8-byte per-sample IVs");
        let segments = fetch_all(&seg_urls);
        for (url, seg) in seg_urls.iter().zip(&segments) {
            let samples = parse_segment(seg, 8);
            let ivs: std::collections::HashSet<&Vec<u8>> = samples.iter().map(|s| &s.iv).collect();
            assert_eq!(ivs.len(), samples.len(), "{url}: per-sample IVs are distinct");
            if video {
                for s in &samples {
                    assert!(
                        s.subsamples.iter().all(|(_, p)| p % 16 == 0),
                        "{url}: cenc video protects whole blocks: {:?}",
                        s.subsamples
                    );
                }
            }
        }
        let src = source_frames(file, map);
        let ours = ffmpeg_decrypt_decode(&init.body, &segments, KEY, map, raw, dir.path())
            .unwrap_or_else(|e| panic!("{rep}: {e}"));
        common::compare(&src, &ours)
            .unwrap_or_else(|e| panic!("{rep} (cenc, decrypted by ffmpeg) differs from the source:\n{e}"));
        eprintln!("ok: cenc {rep}: {} frames equal after decryption", src.len());

        // Without the key the first segment does not decode to the source's frames.
        let file0 = dir.path().join("nokey.mp4");
        std::fs::write(&file0, [&init.body[..], &segments[0][..]].concat()).unwrap();
        let mut cmd = Command::new(common::ffmpeg_bin());
        cmd.args(["-nostdin", "-v", "quiet", "-i"]).arg(&file0).args(["-map", map, "-c", "copy", "-f", raw, "-"]);
        let blind = cmd.output().unwrap().stdout;
        let mut cmd = Command::new(common::ffmpeg_bin());
        cmd.args(["-nostdin", "-v", "quiet", "-decryption_key", KEY, "-i"])
            .arg(&file0)
            .args(["-map", map, "-c", "copy", "-f", raw, "-"]);
        let clear = cmd.output().unwrap().stdout;
        assert_ne!(blind, clear, "{rep}: the first segment's samples are the same with and without the key");
    }
}

#[test]
fn cenc_hls_cmaf_key_lines_and_same_segments_as_dash() {
    let server = TestServer::start();
    let pl_url = server.url(&path(DRM, "QualityLevels(150000)/Manifest(video,format=m3u8-cmaf,encryption=cenc).m3u8"));
    let got = get(&pl_url).ok();
    assert_eq!(got.header(header::CONTENT_TYPE), Some("application/vnd.apple.mpegurl"));
    let text = got.text();
    let lines: Vec<&str> = text.lines().collect();
    let version: u32 =
        lines.iter().find_map(|l| l.strip_prefix("#EXT-X-VERSION:")).expect("EXT-X-VERSION").parse().unwrap();
    assert!(version >= 5, "KEYFORMAT needs EXT-X-VERSION >= 5, got {version}");
    let map_at = lines.iter().position(|l| l.starts_with("#EXT-X-MAP:")).expect("EXT-X-MAP");
    let first_seg = lines.iter().position(|l| l.starts_with("#EXTINF")).expect("EXTINF");
    let keys: Vec<(usize, &str)> =
        lines.iter().enumerate().filter(|(_, l)| l.starts_with("#EXT-X-KEY:")).map(|(i, l)| (i, *l)).collect();
    assert!(!keys.is_empty(), "{text}");
    for &(i, l) in &keys {
        assert!(i > map_at && i < first_seg, "EXT-X-KEY after EXT-X-MAP and before the first segment:\n{text}");
        assert_eq!(hls_attr(l, "METHOD"), Some("SAMPLE-AES-CTR"), "{l}");
        assert!(hls_attr(l, "IV").is_none(), "fMP4 carries IVs in senc: {l}");
    }
    let by_format = |f: &str| keys.iter().map(|(_, l)| *l).find(|l| hls_attr(l, "KEYFORMAT") == Some(f));
    assert!(by_format("com.apple.streamingkeydelivery").is_none(), "no FairPlay for cenc");
    // Widevine: data URI with the Widevine pssh, KEYID.
    let wv = by_format("urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed")
        .unwrap_or_else(|| panic!("no Widevine key line:\n{text}"));
    let uri = hls_attr(wv, "URI").unwrap();
    check_widevine_pssh(
        &parse_pssh_box(&b64_decode(uri.strip_prefix("data:text/plain;base64,").expect("data URI"))),
        b"cenc",
    );
    assert_eq!(hls_attr(wv, "KEYID").map(str::to_lowercase), Some(format!("0x{KID}")));
    // PlayReady: UTF-16 PRO.
    let pr = by_format("com.microsoft.playready").unwrap_or_else(|| panic!("no PlayReady key line:\n{text}"));
    let uri = hls_attr(pr, "URI").unwrap();
    let b64 = uri.strip_prefix("data:text/plain;charset=UTF-16;base64,").expect("PRO data URI");
    check_playready_pro(&b64_decode(b64), b"cenc");
    // ClearKey: the licence URL.
    let ck = by_format("org.w3.clearkey").unwrap_or_else(|| panic!("no ClearKey key line:\n{text}"));
    assert_eq!(hls_attr(ck, "URI").map(str::to_string), Some(server.url(&format!("/{DRM}/clearkey"))));
    assert_eq!(hls_attr(ck, "KEYID").map(str::to_lowercase), Some(format!("0x{KID}")));
    for l in [wv, pr, ck] {
        assert_eq!(hls_attr(l, "KEYFORMATVERSIONS"), Some("1"), "{l}");
    }

    // Same segment times as DASH, same bytes.
    let uris = playlist_uris(&pl_url, &text);
    let mpd_url = server.url(&path(DRM, "manifest(format=mpd-time-cmaf,encryption=cenc).mpd"));
    let mpd = get(&mpd_url).ok().text();
    let (dash_init, dash_segs) = dash_segment_urls(&mpd_url, &mpd, "video-150000");
    assert_eq!(uris.len(), dash_segs.len());
    for (h, d) in uris.iter().zip(&dash_segs) {
        let time = |u: &str| u[u.find("video=").unwrap() + 6..].split(',').next().unwrap().to_string();
        assert_eq!(time(h), time(d), "segment times: HLS {h} vs DASH {d}");
    }
    let (h, d) = (get(&uris[1]).ok(), get(&dash_segs[1]).ok());
    assert!(
        h.body == d.body,
        "HLS-CMAF {} and DASH-CMAF {} differ ({} vs {} bytes)",
        uris[1],
        dash_segs[1],
        h.body.len(),
        d.body.len()
    );
    // The HLS init segment signals the same encryption as DASH's.
    let hls_init = {
        let line = lines[map_at];
        let at = line.find("URI=\"").unwrap() + 5;
        format!("{}{}", &pl_url[..pl_url.rfind('/').unwrap() + 1], &line[at..at + line[at..].find('"').unwrap()])
    };
    let (hi, di) =
        (check_init(&get(&hls_init).ok().body, b"cenc", true), check_init(&get(&dash_init).ok().body, b"cenc", true));
    assert_eq!(hi.tenc, di.tenc, "HLS and DASH init segments' tenc");

    // The multivariant playlist carries encryption=cenc to its media playlists.
    let mv = get(&server.url(&path(DRM, "manifest(format=m3u8-cmaf,encryption=cenc).m3u8"))).ok().text();
    assert!(mv.contains("QualityLevels(150000)/Manifest(video,format=m3u8-cmaf,encryption=cenc).m3u8"), "{mv}");
}

// ---------------------------------------------------------------------------------------
// 2. cbcs.

#[test]
fn cbcs_tenc_key_lines_and_independent_decryption() {
    let server = TestServer::start();
    // HLS: SAMPLE-AES lines, FairPlay first.
    let pl_url =
        server.url(&path(DRM, "QualityLevels(150000)/Manifest(video,format=m3u8-cmaf,encryption=cbcs-aapl).m3u8"));
    let text = get(&pl_url).ok().text();
    let keys: Vec<&str> = text.lines().filter(|l| l.starts_with("#EXT-X-KEY:")).collect();
    assert!(keys.iter().all(|l| hls_attr(l, "METHOD") == Some("SAMPLE-AES")), "{text}");
    let fp = keys
        .iter()
        .find(|l| hls_attr(l, "KEYFORMAT") == Some("com.apple.streamingkeydelivery"))
        .unwrap_or_else(|| panic!("no FairPlay line:\n{text}"));
    assert_eq!(hls_attr(fp, "URI").map(str::to_string), Some(format!("skd://{KID}")));
    assert_eq!(hls_attr(fp, "KEYFORMATVERSIONS"), Some("1"));
    let pr = keys.iter().find(|l| hls_attr(l, "KEYFORMAT") == Some("com.microsoft.playready")).expect("PlayReady line");
    check_playready_pro(
        &b64_decode(hls_attr(pr, "URI").unwrap().strip_prefix("data:text/plain;charset=UTF-16;base64,").unwrap()),
        b"cbcs",
    );
    let wv = keys
        .iter()
        .find(|l| hls_attr(l, "KEYFORMAT") == Some("urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"))
        .expect("Widevine line");
    check_widevine_pssh(
        &parse_pssh_box(&b64_decode(hls_attr(wv, "URI").unwrap().strip_prefix("data:text/plain;base64,").unwrap())),
        b"cbcs",
    );
    // Clear Key: the identity line (the locator has a key URL), and no org.w3.clearkey line,
    // which hls.js would pass over for the identity key anyway.
    let identity = keys.iter().find(|l| hls_attr(l, "KEYFORMAT") == Some("identity")).expect("identity line");
    assert_eq!(hls_attr(identity, "URI").map(str::to_string), Some(server.url(&format!("/{DRM}/key/{KID}"))));
    assert!(keys.iter().all(|l| hls_attr(l, "KEYFORMAT") != Some("org.w3.clearkey")), "{text}");
    // DASH says cbcs too.
    let mpd = get(&server.url(&path(DRM, "manifest(format=mpd-time-cmaf,encryption=cbcs-aapl).mpd"))).ok().text();
    let cps = content_protections(adaptation_sets(&mpd)[0]);
    assert_eq!(attr(&cps[0].1, "value"), Some("cbcs"));

    let key = hex16(KEY);
    let dir = tempfile::tempdir().unwrap();
    for (track, bitrate, time, video) in [("video", 150000, 1024u64, true), ("audio_eng", 128000, 0, false)] {
        let enc_init = get(&server.url(&path(
            DRM,
            &format!("QualityLevels({bitrate})/Fragments({track}=i,format=m3u8-cmaf,encryption=cbcs-aapl).mp4"),
        )))
        .ok();
        let info = check_init(&enc_init.body, b"cbcs", video);
        let t = &info.tenc;
        assert_eq!(t.iv_size, 0, "cbcs: no per-sample IVs");
        let civ: [u8; 16] = t.constant_iv.clone().expect("cbcs constant IV").try_into().expect("16-byte constant IV");
        if video {
            assert_eq!((t.version, t.crypt, t.skip), (1, 1, 9), "cbcs video: tenc v1 with pattern 1:9");
        } else {
            assert_eq!((t.crypt, t.skip), (0, 0), "cbcs audio: no pattern (every block)");
        }
        // The second video segment (time of the first is 1024; take a later one) and audio's first.
        let seg_path = |loc: &str, enc: &str| {
            path(loc, &format!("QualityLevels({bitrate})/Fragments({track}={time},format=m3u8-cmaf{enc}).m4s"))
        };
        let enc = get(&server.url(&seg_path(DRM, ",encryption=cbcs-aapl"))).ok().body;
        let clear = get(&server.url(&seg_path(CLEAR, ""))).ok().body;
        let enc_samples = parse_segment(&enc, 0);
        let clear_samples = parse_segment(&clear, 0);
        assert_eq!(enc_samples.len(), clear_samples.len(), "{track}: sample count");
        assert!(clear_samples.iter().all(|s| s.subsamples.is_empty() && s.iv.is_empty()));
        let mut changed = 0;
        for (i, (e, c)) in enc_samples.iter().zip(&clear_samples).enumerate() {
            assert_eq!(e.range.len(), c.range.len(), "{track} sample {i}: size");
            if video {
                assert!(!e.subsamples.is_empty(), "{track} sample {i}: video uses subsamples");
            }
            let mut sample = enc[e.range.clone()].to_vec();
            changed += usize::from(sample[..] != clear[c.range.clone()]);
            cbcs_decrypt(&key, &civ, t.crypt, t.skip, &mut sample, e);
            assert!(
                sample[..] == clear[c.range.clone()],
                "{track} sample {i}: decrypted (subsamples {:?}) differs from the clear locator's",
                e.subsamples
            );
        }
        assert!(
            changed * 2 > enc_samples.len(),
            "{track}: most samples must be encrypted ({changed} of {})",
            enc_samples.len()
        );
        eprintln!(
            "ok: cbcs {track}@{time}: {} samples decrypted by the reference decryptor equal the clear samples",
            enc_samples.len()
        );

        // ffmpeg decrypts cbcs too, per segment: the elementary stream equals the clear one.
        let raw = if video { "h264" } else { "adts" };
        let map = if video { "0:v:0" } else { "0:a:0" };
        let ours = ffmpeg_decrypt_decode(&enc_init.body, std::slice::from_ref(&enc), KEY, map, raw, dir.path())
            .unwrap_or_else(|e| panic!("{e}"));
        let clear_init =
            get(&server
                .url(&path(CLEAR, &format!("QualityLevels({bitrate})/Fragments({track}=i,format=m3u8-cmaf).mp4"))))
            .ok()
            .body;
        let file = dir.path().join(format!("clear-{raw}.mp4"));
        std::fs::write(&file, [&clear_init[..], &clear[..]].concat()).unwrap();
        let theirs = common::framemd5(&[], &file, map).unwrap_or_else(|e| panic!("{e}"));
        common::compare(&theirs, &ours).unwrap_or_else(|e| panic!("{track} cbcs decrypted by ffmpeg:\n{e}"));
    }
}

// ---------------------------------------------------------------------------------------
// 3. Determinism.

#[test]
fn determinism_same_bytes_and_etag_across_requests_and_origins() {
    let a = TestServer::start();
    let b = TestServer::replica_of(&a);
    for rest in [
        "manifest(format=mpd-time-cmaf,encryption=cenc).mpd",
        "QualityLevels(150000)/Manifest(video,format=m3u8-cmaf,encryption=cbcs-aapl).m3u8",
        "QualityLevels(150000)/Fragments(video=25600,format=mpd-time-cmaf,encryption=cenc).m4s",
        "QualityLevels(150000)/Fragments(video=25600,format=m3u8-cmaf,encryption=cbcs-aapl).m4s",
        "QualityLevels(128000)/Fragments(audio_eng=0,format=mpd-time-cmaf,encryption=cenc).m4s",
        "QualityLevels(150000)/Fragments(video=i,format=mpd-time-cmaf,encryption=cenc).mp4",
    ] {
        let p = path(DRM, rest);
        let first = get(&a.url(&p)).ok();
        let again = get(&a.url(&p)).ok();
        let other = get(&b.url(&p)).ok();
        let etag = first.header(header::ETAG).expect("ETag").to_string();
        assert!(etag.starts_with('"'), "strong ETag: {etag}");
        for (what, g) in [("again", &again), ("second origin", &other)] {
            assert!(g.body == first.body, "{rest}: bytes differ ({what})");
            assert_eq!(g.header(header::ETAG), Some(etag.as_str()), "{rest}: ETag ({what})");
        }
    }
    // Different keys give different bytes and ETags for the same segment.
    let rest = "QualityLevels(128000)/Fragments(audio_eng=0,format=mpd-time-cmaf,encryption=cenc).m4s";
    let (x, y) = (get(&a.url(&path(DRM, rest))).ok(), get(&a.url(&path(SEED, rest))).ok());
    assert!(x.body != y.body, "two keys, same segment bytes");
    assert_ne!(x.header(header::ETAG), y.header(header::ETAG));
    // cenc and cbcs of one segment differ.
    let cenc =
        get(&a.url(&path(DRM, "QualityLevels(150000)/Fragments(video=25600,format=m3u8-cmaf,encryption=cenc).m4s")))
            .ok();
    let cbcs =
        get(&a
            .url(&path(DRM, "QualityLevels(150000)/Fragments(video=25600,format=m3u8-cmaf,encryption=cbcs-aapl).m4s")))
        .ok();
    assert_ne!(cenc.header(header::ETAG), cbcs.header(header::ETAG));
}

/// A DRM configuration change (here the Widevine licence URL, same length) changes the MPD's
/// bytes, so it must change its ETag: otherwise a CDN revalidating with If-None-Match keeps
/// serving the old licence URL (304), and replicas with different configs share validators.
#[test]
fn determinism_etag_follows_drm_config() {
    let a = TestServer::start_with("wv.example", None);
    let b = TestServer::start_with("wx.example", Some(a.addr.port()));
    let p = path(DRM, "manifest(format=mpd-time-cmaf,encryption=cenc).mpd");
    let (x, y) = (get(&a.url(&p)).ok(), get(&b.url(&p)).ok());
    assert!(x.body != y.body, "the configs differ, so must the MPDs");
    assert_ne!(x.header(header::ETAG), y.header(header::ETAG), "different MPD bytes under one ETag");
}

// ---------------------------------------------------------------------------------------
// 4. ClearKey licence endpoint.

fn kid_b64url(kid_hex: &str) -> String {
    b64_encode(&hex16(kid_hex), true)
}

/// Asserts a licence answer holds exactly `kid` → `key` (decoded values compared).
fn assert_licence(got: &Got, kid_hex: &str, key: &[u8; 16]) {
    assert_eq!(got.status, StatusCode::OK, "{}", got.describe());
    assert!(got.header(header::CONTENT_TYPE).is_some_and(|c| c.starts_with("application/json")), "{}", got.describe());
    let v = got.json();
    let keys = v["keys"].as_array().unwrap_or_else(|| panic!("no keys array: {v}"));
    assert_eq!(keys.len(), 1, "{v}");
    assert_eq!(keys[0]["kty"], "oct", "{v}");
    let k = keys[0]["k"].as_str().expect("k");
    let kid = keys[0]["kid"].as_str().expect("kid");
    assert!(!k.contains(['=', '+', '/']) && !kid.contains(['=', '+', '/']), "base64url without padding: {v}");
    assert_eq!(b64_decode(kid), hex16(kid_hex).to_vec(), "kid");
    assert_eq!(b64_decode(k), key.to_vec(), "k");
    assert_eq!(v["type"], "temporary", "{v}");
}

/// No 4xx answer of a key endpoint may carry the key, in any spelling.
fn assert_no_key(got: &Got, key_hex: &str) {
    let key = hex16(key_hex);
    let body = got.text();
    for spelling in [key_hex.to_string(), key_hex.to_uppercase(), b64_encode(&key, true), b64_encode(&key, false)] {
        assert!(!body.contains(&spelling), "{} leaks the key", got.describe());
    }
    assert!(!got.body.windows(16).any(|w| w == key), "{} leaks the raw key", got.describe());
}

#[test]
fn clearkey_licence_endpoint() {
    let server = TestServer::start();
    // The licence URL signalled in the MPD is the one that answers.
    let mpd = get(&server.url(&path(DRM, "manifest(format=mpd-time-cmaf,encryption=cenc).mpd"))).ok().text();
    let ck = content_protections(adaptation_sets(&mpd)[0])
        .into_iter()
        .find(|(s, _)| s.contains("e2719d58"))
        .expect("ClearKey")
        .1;
    let laurl = xml_unescape(element_text(&ck, "<dashif:Laurl>", "</dashif:Laurl>").unwrap());
    let request = format!(r#"{{"kids":["{}"],"type":"temporary"}}"#, kid_b64url(KID));
    let got = post_json(&laurl, &request, &[]);
    assert_licence(&got, KID, &hex16(KEY));
    assert!(got.header(header::CACHE_CONTROL).is_some_and(|c| c.contains("no-store")), "{}", got.describe());
    assert!(got.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_some(), "CORS on the licence: {}", got.describe());

    // Unknown KIDs are left out (known ones still answered).
    let unknown = "0f0e0d0c0b0a09080706050403020100";
    let got = post_json(&laurl, &format!(r#"{{"kids":["{}"],"type":"temporary"}}"#, kid_b64url(unknown)), &[]);
    assert_eq!(got.status, StatusCode::OK, "{}", got.describe());
    assert_eq!(got.json()["keys"].as_array().map(Vec::len), Some(0), "{}", got.describe());
    let got = post_json(
        &laurl,
        &format!(r#"{{"kids":["{}","{}"],"type":"temporary"}}"#, kid_b64url(unknown), kid_b64url(KID)),
        &[],
    );
    assert_licence(&got, KID, &hex16(KEY));

    // Malformed requests: 400 with no key material.
    for bad in [
        "not json",
        "{}",
        r#"{"kids":[]}"#,
        r#"{"kids":["short"]}"#,
        r#"{"kids":"nrQFDeRLSAKTLifXUIPiZg"}"#,
        "{\"kids\":[\"",
    ] {
        let got = post_json(&laurl, bad, &[]);
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", got.describe());
        assert_no_key(&got, KEY);
    }
    // Unknown locator.
    let got = post_json(&server.url("/no-such-locator/clearkey"), &request, &[]);
    assert_eq!(got.status, StatusCode::NOT_FOUND, "{}", got.describe());

    // CORS preflight for the licence POST.
    let got = send(
        Method::OPTIONS,
        &laurl,
        &[
            ("Origin", "https://player.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        None,
    );
    assert!(got.status == StatusCode::NO_CONTENT || got.status == StatusCode::OK, "{}", got.describe());
    let methods = got.header(header::ACCESS_CONTROL_ALLOW_METHODS).unwrap_or_default().to_string();
    assert!(methods.split(',').any(|m| m.trim() == "POST"), "preflight must allow POST: {}", got.describe());
    assert!(got.header(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_some(), "{}", got.describe());

    // Token key access: the licence needs a JWT, like the key endpoint.
    let token_url = server.url(&format!("/{CENC_TOKEN}/clearkey"));
    let request = format!(r#"{{"kids":["{}"],"type":"temporary"}}"#, kid_b64url(TOKEN_KID));
    let got = post_json(&token_url, &request, &[]);
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.describe());
    assert!(got.header(header::WWW_AUTHENTICATE).is_some_and(|h| h.starts_with("Bearer")), "{}", got.describe());
    assert_no_key(&got, TOKEN_KEY);
    let forged = {
        let claims = serde_json::json!({ "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 3600 });
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"not-the-secret-not-the-secret-00"),
        )
        .unwrap()
    };
    let got = post_json(&token_url, &request, &[("Authorization", &format!("Bearer {forged}"))]);
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "forged token: {}", got.describe());
    assert_no_key(&got, TOKEN_KEY);
    let bearer = format!("Bearer {}", valid_token());
    let got = post_json(&token_url, &request, &[("Authorization", &bearer)]);
    assert_licence(&got, TOKEN_KID, &hex16(TOKEN_KEY));
    // Malformed request with a valid token: still 400 without the key.
    let got = post_json(&token_url, "[1,2", &[("Authorization", &bearer)]);
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.describe());
    assert_no_key(&got, TOKEN_KEY);

    // The raw key endpoint serves the same key.
    let got = get(&server.url(&format!("/{DRM}/key/{KID}"))).ok();
    assert_eq!(got.body, hex16(KEY).to_vec());
    assert_eq!(got.header(header::CONTENT_TYPE), Some("application/octet-stream"));
    let got = get(&server.url(&format!("/{CENC_TOKEN}/key/{TOKEN_KID}")));
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.describe());
    assert_no_key(&got, TOKEN_KEY);
    let got =
        send(Method::GET, &server.url(&format!("/{CENC_TOKEN}/key/{TOKEN_KID}")), &[("Authorization", &bearer)], None)
            .ok();
    assert_eq!(got.body, hex16(TOKEN_KEY).to_vec());
}

/// A valid token bound to `kid_guid` by the content key identifier claim (or unbound).
fn token_for_key(kid_guid: Option<&str>) -> String {
    let mut claims = serde_json::json!({ "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 3600, "sub": "viewer-1" });
    if let Some(guid) = kid_guid {
        claims[jit_origin::protect::token::CONTENT_KEY_CLAIM] = guid.into();
    }
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET))
        .expect("encode jwt")
}

/// Locators sharing issuer, audience and secret are isolated by the content key claim: a
/// token bound to one locator's KID opens that key only (key endpoint and ClearKey licence);
/// a locator with `require_content_key_claim` refuses unbound tokens.
#[test]
fn token_bound_to_a_content_key_opens_only_that_key() {
    let server = TestServer::start();
    let guid = |hex: &str| format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
    let for_a = format!("Bearer {}", token_for_key(Some(&guid(TOKEN_KID))));
    let for_b = format!("Bearer {}", token_for_key(Some(&guid(BOUND_KID).to_uppercase())));
    let unbound = format!("Bearer {}", token_for_key(None));
    let key_url = |locator: &str, kid: &str| server.url(&format!("/{locator}/key/{kid}"));
    let licence = |locator: &str, kids: &[&str], bearer: &str| {
        let kids: Vec<String> = kids.iter().map(|k| format!("\"{}\"", kid_b64url(k))).collect();
        let body = format!(r#"{{"kids":[{}],"type":"temporary"}}"#, kids.join(","));
        post_json(&server.url(&format!("/{locator}/clearkey")), &body, &[("Authorization", bearer)])
    };
    let forbidden = |got: Got, key: &str| {
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.describe());
        assert_eq!(
            got.header(header::WWW_AUTHENTICATE),
            Some("Bearer error=\"insufficient_scope\""),
            "{}",
            got.describe()
        );
        assert_no_key(&got, key);
    };

    // Bound to A's key: A's key and licence, nothing of B's.
    let got = send(Method::GET, &key_url(CENC_TOKEN, TOKEN_KID), &[("Authorization", &for_a)], None).ok();
    assert_eq!(got.body, hex16(TOKEN_KEY).to_vec());
    assert_licence(&licence(CENC_TOKEN, &[TOKEN_KID], &for_a), TOKEN_KID, &hex16(TOKEN_KEY));
    forbidden(send(Method::GET, &key_url(CENC_BOUND, BOUND_KID), &[("Authorization", &for_a)], None), BOUND_KEY);
    forbidden(licence(CENC_BOUND, &[BOUND_KID], &for_a), BOUND_KEY);
    // One foreign KID in a licence request refuses the whole request.
    forbidden(licence(CENC_TOKEN, &[TOKEN_KID, BOUND_KID], &for_a), TOKEN_KEY);

    // Bound to B's key (AMS writes GUIDs in either case): B's key, not A's.
    let got = send(Method::GET, &key_url(CENC_BOUND, BOUND_KID), &[("Authorization", &for_b)], None).ok();
    assert_eq!(got.body, hex16(BOUND_KEY).to_vec());
    assert_licence(&licence(CENC_BOUND, &[BOUND_KID], &for_b), BOUND_KID, &hex16(BOUND_KEY));
    forbidden(send(Method::GET, &key_url(CENC_TOKEN, TOKEN_KID), &[("Authorization", &for_b)], None), TOKEN_KEY);

    // Unbound: refused where the claim is required; accepted where it is not (the locator
    // is then isolated only by its issuer, audience and secret).
    forbidden(send(Method::GET, &key_url(CENC_BOUND, BOUND_KID), &[("Authorization", &unbound)], None), BOUND_KEY);
    forbidden(licence(CENC_BOUND, &[BOUND_KID], &unbound), BOUND_KEY);
    assert_licence(&licence(CENC_TOKEN, &[TOKEN_KID], &unbound), TOKEN_KID, &hex16(TOKEN_KEY));

    // A claim that is no key id is a malformed token: 401.
    let garbled = format!("Bearer {}", token_for_key(Some("not-a-guid")));
    let got = send(Method::GET, &key_url(CENC_TOKEN, TOKEN_KID), &[("Authorization", &garbled)], None);
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.describe());
    assert_no_key(&got, TOKEN_KEY);
}

// ---------------------------------------------------------------------------------------
// 5. Key seed.

#[test]
fn key_seed_licence_gives_the_published_key_and_it_decrypts() {
    let server = TestServer::start();
    let expected: [u8; 16] = b64_decode(SEED_KEY_B64).try_into().unwrap();
    let kid_hex = hex(&hex16(SEED_KID));
    let got = post_json(
        &server.url(&format!("/{SEED}/clearkey")),
        &format!(r#"{{"kids":["{}"],"type":"temporary"}}"#, kid_b64url(SEED_KID)),
        &[],
    );
    assert_licence(&got, SEED_KID, &expected);
    let got = get(&server.url(&format!("/{SEED}/key/{kid_hex}"))).ok();
    assert_eq!(got.body, expected.to_vec(), "raw key endpoint");

    // The content of the seed locator is encrypted under that KID and key: decrypt an audio
    // segment (whole-sample cenc) with the reference CTR decryptor.
    let init = parse_init(
        &get(&server
            .url(&path(SEED, "QualityLevels(128000)/Fragments(audio_eng=i,format=mpd-time-cmaf,encryption=cenc).mp4")))
        .ok()
        .body,
    );
    assert_eq!(init.tenc.kid, hex16(SEED_KID), "tenc KID of the seed locator");
    // The second audio segment, its time from the clear media playlist.
    let playlist =
        get(&server.url(&path(CLEAR, "QualityLevels(128000)/Manifest(audio_eng,format=m3u8-cmaf).m3u8"))).ok().text();
    let second = playlist_uris("/", &playlist).get(1).cloned().expect("two audio segments");
    let time = second[second.find("audio_eng=").unwrap() + 10..].split(',').next().unwrap().to_string();
    let rest = format!("QualityLevels(128000)/Fragments(audio_eng={time},format=m3u8-cmaf{{enc}}).m4s");
    let enc = get(&server.url(&path(SEED, &rest.replace("{enc}", ",encryption=cenc")))).ok().body;
    let clear = get(&server.url(&path(CLEAR, &rest.replace("{enc}", "")))).ok().body;
    let (es, cs) = (parse_segment(&enc, init.tenc.iv_size as usize), parse_segment(&clear, 0));
    assert_eq!(es.len(), cs.len());
    for (i, (e, c)) in es.iter().zip(&cs).enumerate() {
        assert!(e.subsamples.is_empty(), "audio: whole-sample encryption");
        let mut s = enc[e.range.clone()].to_vec();
        assert!(s[..] != clear[c.range.clone()], "sample {i} is encrypted");
        cenc_decrypt(&expected, &mut s, e);
        assert!(
            s[..] == clear[c.range.clone()],
            "sample {i}: decrypting with the seed-derived key gives the clear sample"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. Policies.

#[test]
fn policy_refusals() {
    let server = TestServer::start();
    let status = |p: &str| {
        let got = get(&server.url(p));
        assert_no_key(&got, TOKEN_KEY);
        assert_no_key(&got, KEY);
        if !got.status.is_success() {
            assert!(!got.text().trim().contains('\n'), "one-line reason: {}", got.describe());
        }
        (got.status, got.describe())
    };
    for (p, want) in [
        // cenc-only locator: no cbcs, no clear.
        (path(CENC_TOKEN, "manifest(format=m3u8-cmaf,encryption=cbcs-aapl).m3u8"), StatusCode::FORBIDDEN),
        (path(CENC_TOKEN, "manifest(format=mpd-time-cmaf,encryption=cbcs-aapl).mpd"), StatusCode::FORBIDDEN),
        (
            path(CENC_TOKEN, "QualityLevels(150000)/Fragments(video=1024,format=m3u8-cmaf,encryption=cbcs-aapl).m4s"),
            StatusCode::FORBIDDEN,
        ),
        (path(CENC_TOKEN, "manifest(format=mpd-time-cmaf).mpd"), StatusCode::FORBIDDEN),
        (path(CENC_TOKEN, "QualityLevels(150000)/Fragments(video=1024,format=m3u8-cmaf).m4s"), StatusCode::FORBIDDEN),
        (path(CENC_TOKEN, "manifest(format=m3u8-cmaf,encryption=cbc).m3u8"), StatusCode::FORBIDDEN),
        // Allowed on the cenc locator (sanity).
        (path(CENC_TOKEN, "manifest(format=mpd-time-cmaf,encryption=cenc).mpd"), StatusCode::OK),
        // MPEG-TS has no Common Encryption.
        (path(CENC_TOKEN, "manifest(format=m3u8-aapl,encryption=cenc).m3u8"), StatusCode::BAD_REQUEST),
        (
            path(CENC_TOKEN, "QualityLevels(150000)/Fragments(video=1024,format=m3u8-aapl,encryption=cenc).ts"),
            StatusCode::BAD_REQUEST,
        ),
        (path(DRM, "manifest(format=m3u8-aapl-v3,encryption=cbcs-aapl).m3u8"), StatusCode::BAD_REQUEST),
        // DASH has no AES-128 envelope.
        (path(ENV, "manifest(format=mpd-time-cmaf,encryption=cbc).mpd"), StatusCode::BAD_REQUEST),
        // Envelope and clear locators serve no Common Encryption.
        (path(ENV, "manifest(format=mpd-time-cmaf,encryption=cenc).mpd"), StatusCode::FORBIDDEN),
        (path(CLEAR, "manifest(format=mpd-time-cmaf,encryption=cenc).mpd"), StatusCode::FORBIDDEN),
        // multi-drm: both schemes, nothing else.
        (path(DRM, "manifest(format=mpd-time-csf,encryption=cbcs-aapl).mpd"), StatusCode::OK),
        (path(DRM, "manifest(format=m3u8-cmaf).m3u8"), StatusCode::FORBIDDEN),
        (path(DRM, "manifest(format=m3u8-cmaf,encryption=cbc).m3u8"), StatusCode::FORBIDDEN),
    ] {
        let (got, describe) = status(&p);
        assert_eq!(got, want, "{describe}");
    }
}
