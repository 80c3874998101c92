//! How a Smooth Streaming client manifest describes a codec (MS-SSTR §2.2.2.5, the
//! `QualityLevel` element): its `FourCC`, the `CodecPrivateData` a client builds its decoder
//! (and, in players on MSE, its init segment) from, and for audio the WAVEFORMATEX tag.
//! Smooth has no init segment, so these fields are the whole codec configuration.
//!
//! - H.264 (`avc1`/`avc3`): `H264`; every SPS then every PPS of the `avcC`, each after an
//!   Annex B start code `00000001` (what dash.js, Shaka Player and ExoPlayer split on).
//! - HEVC (`hvc1`/`hev1`): the sample entry type in capitals (`HVC1`, `HEV1`), as Smooth
//!   services write it, so a client knows whether parameter sets may also come in-band; the
//!   VPS, SPS and PPS of the `hvcC` after start codes. A Dolby Vision profile 5 entry
//!   (`dvh1`/`dvhe`) has no base layer an HEVC decoder shows right, so it has no FourCC.
//! - AAC: `AACL` (`AACH` with SBR, HE-AAC); the AudioSpecificConfig; `AudioTag` 255.
//! - AC-3 / E-AC-3: `AC-3` / `EC-3` with `AudioTag` 65534 (WAVE_FORMAT_EXTENSIBLE): the
//!   WAVEFORMATEXTENSIBLE extension (samples per block, speaker mask, the Dolby sub-format
//!   GUID) followed by the `dac3` / `dec3` payload, the form Smooth servers write and Smooth
//!   clients cut the `dac3` / `dec3` back out of.
//!
//! Everything else (AV1, VP9, Opus, FLAC, text) has no Smooth FourCC here.

use super::{Ac3Config, CodecConfig, CodecFamily, CodecInfo};

/// WAVEFORMATEX `wFormatTag` of AAC in Smooth manifests (MS-SSTR §2.2.2.5: 255 = AAC).
const WAVE_FORMAT_AAC: u16 = 0x00FF;
/// WAVEFORMATEX `wFormatTag` of a format named by a sub-format GUID.
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// MEDIASUBTYPE_DOLBY_AC3 (E06D802C-DB46-11CF-B4D1-00805F6CBBEA), in GUID byte order.
const AC3_SUBFORMAT: [u8; 16] =
    [0x2C, 0x80, 0x6D, 0xE0, 0x46, 0xDB, 0xCF, 0x11, 0xB4, 0xD1, 0x00, 0x80, 0x5F, 0x6C, 0xBB, 0xEA];
/// MEDIASUBTYPE_DOLBY_DDPLUS (A7FB87AF-2D02-42FB-A4D4-05CD93843BDD), in GUID byte order.
const EAC3_SUBFORMAT: [u8; 16] =
    [0xAF, 0x87, 0xFB, 0xA7, 0x02, 0x2D, 0xFB, 0x42, 0xA4, 0xD4, 0x05, 0xCD, 0x93, 0x84, 0x3B, 0xDD];
/// Samples an AC-3 frame (and an E-AC-3 frame of 6 blocks) decodes to.
const DOLBY_SAMPLES_PER_FRAME: u16 = 1536;
/// WAVEFORMATEXTENSIBLE speaker mask of each AC-3 `acmod` (ETSI TS 102 366 Table 4.3:
/// 1+1, C, L R, L C R, L R S, L C R S, L R Ls Rs, L C R Ls Rs), surrounds as back speakers.
const ACMOD_SPEAKERS: [u32; 8] = [0x3, 0x4, 0x3, 0x7, 0x103, 0x107, 0x33, 0x37];
const SPEAKER_LOW_FREQUENCY: u32 = 0x8;

/// A codec as a Smooth `QualityLevel` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmoothCodec {
    pub four_cc: String,
    /// Upper-case hex, as MS-SSTR §2.2.2.5 writes `CodecPrivateData`.
    pub codec_private_data: String,
    /// Audio: the WAVEFORMATEX `wFormatTag` (`AudioTag`).
    pub audio_tag: Option<u16>,
}

impl CodecInfo {
    /// How a Smooth manifest names this codec; `None` when Smooth cannot carry it.
    pub fn smooth(&self) -> Option<SmoothCodec> {
        let (four_cc, private, audio_tag) = match (&self.family, &self.config) {
            (CodecFamily::Avc, CodecConfig::Avc(avc)) => {
                ("H264".to_owned(), annex_b(avc.sps.iter().chain(&avc.pps).map(Vec::as_slice)), None)
            }
            (CodecFamily::Hevc, CodecConfig::Hevc(hevc)) => {
                let entry = self.sample_entry_type.as_str();
                if !matches!(entry, "hvc1" | "hev1") {
                    return None;
                }
                // VPS, SPS, PPS (nal_unit_type 32–34); SEI arrays of the hvcC are not setup.
                let parameter_sets = hevc
                    .nal_units
                    .iter()
                    .filter(|nal| nal.first().is_some_and(|b| (32..=34).contains(&((b >> 1) & 0x3f))))
                    .map(Vec::as_slice);
                (entry.to_ascii_uppercase(), annex_b(parameter_sets), None)
            }
            (CodecFamily::Aac, CodecConfig::Aac(es)) => {
                let asc = es.audio_specific_config.as_ref()?;
                let four_cc = if asc.sbr { "AACH" } else { "AACL" };
                (four_cc.to_owned(), es.audio_specific_config_bytes.clone(), Some(WAVE_FORMAT_AAC))
            }
            (CodecFamily::Ac3, CodecConfig::Ac3(c)) => {
                ("AC-3".to_owned(), dolby_private_data(c, &AC3_SUBFORMAT), Some(WAVE_FORMAT_EXTENSIBLE))
            }
            (CodecFamily::Eac3, CodecConfig::Eac3(c)) => {
                ("EC-3".to_owned(), dolby_private_data(c, &EAC3_SUBFORMAT), Some(WAVE_FORMAT_EXTENSIBLE))
            }
            _ => return None,
        };
        if private.is_empty() {
            return None;
        }
        Some(SmoothCodec { four_cc, codec_private_data: hex_upper(&private), audio_tag })
    }
}

/// WAVEFORMATEXTENSIBLE's extension (little-endian: samples per block, speaker mask,
/// sub-format GUID), then the `dac3` / `dec3` payload.
fn dolby_private_data(config: &Ac3Config, subformat: &[u8; 16]) -> Vec<u8> {
    if config.payload.is_empty() {
        return Vec::new();
    }
    let speakers = ACMOD_SPEAKERS.get(usize::from(config.acmod)).copied().unwrap_or(0x3)
        | if config.lfe { SPEAKER_LOW_FREQUENCY } else { 0 };
    let mut out = Vec::with_capacity(22 + config.payload.len());
    out.extend_from_slice(&DOLBY_SAMPLES_PER_FRAME.to_le_bytes());
    out.extend_from_slice(&speakers.to_le_bytes());
    out.extend_from_slice(subformat);
    out.extend_from_slice(&config.payload);
    out
}

/// NAL units, each after a 4-byte Annex B start code.
fn annex_b<'a>(nal_units: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nal_units {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::{AvcConfig, EsDescriptor, HevcConfig};

    #[test]
    fn h264_private_data_is_every_sps_then_pps_after_start_codes() {
        let avc = AvcConfig { sps: vec![vec![0x67, 0x64]], pps: vec![vec![0x68, 0xEE]], ..AvcConfig::default() };
        let info = CodecInfo { family: CodecFamily::Avc, config: CodecConfig::Avc(avc), ..CodecInfo::default() };
        let smooth = info.smooth().unwrap();
        assert_eq!(smooth.four_cc, "H264");
        assert_eq!(smooth.codec_private_data, "0000000167640000000168EE");
        assert_eq!(smooth.audio_tag, None);
    }

    #[test]
    fn hevc_keeps_vps_sps_pps_and_names_the_entry() {
        let hevc = HevcConfig {
            nal_units: vec![vec![0x40, 1], vec![0x42, 1], vec![0x44, 1], vec![0x4E, 1]],
            ..HevcConfig::default()
        };
        let mut info = CodecInfo {
            family: CodecFamily::Hevc,
            sample_entry_type: "hev1".into(),
            config: CodecConfig::Hevc(hevc),
            ..CodecInfo::default()
        };
        let smooth = info.smooth().unwrap();
        assert_eq!(smooth.four_cc, "HEV1");
        assert_eq!(smooth.codec_private_data, "000000014001000000014201000000014401");
        // Dolby Vision profile 5: no HEVC base layer.
        info.sample_entry_type = "dvh1".into();
        assert_eq!(info.smooth(), None);
    }

    #[test]
    fn aac_is_its_audio_specific_config_and_he_aac_is_aach() {
        let es = EsDescriptor::parse(&esds(&[0x11, 0x90])).unwrap();
        let info = CodecInfo { family: CodecFamily::Aac, config: CodecConfig::Aac(es), ..CodecInfo::default() };
        let smooth = info.smooth().unwrap();
        assert_eq!((smooth.four_cc.as_str(), smooth.codec_private_data.as_str()), ("AACL", "1190"));
        assert_eq!(smooth.audio_tag, Some(255));
        // AOT 5 (SBR) over a 24 kHz core, 48 kHz output, AAC LC.
        let es = EsDescriptor::parse(&esds(&[0x2B, 0x11, 0x88, 0x00])).unwrap();
        let info = CodecInfo { family: CodecFamily::Aac, config: CodecConfig::Aac(es), ..CodecInfo::default() };
        assert_eq!(info.smooth().unwrap().four_cc, "AACH");
    }

    #[test]
    fn eac3_is_the_extensible_wave_header_then_dec3() {
        // 5.1 E-AC-3: acmod 7 with LFE.
        let dec3 = [0x06, 0x00, 0x20, 0x0F, 0x00];
        let config = Ac3Config::parse_dec3(&dec3).unwrap();
        let info = CodecInfo { family: CodecFamily::Eac3, config: CodecConfig::Eac3(config), ..CodecInfo::default() };
        let smooth = info.smooth().unwrap();
        assert_eq!(smooth.four_cc, "EC-3");
        assert_eq!(smooth.audio_tag, Some(65534));
        assert_eq!(smooth.codec_private_data, "00063F000000AF87FBA7022DFB42A4D405CD93843BDD0600200F00");
    }

    #[test]
    fn codecs_without_smooth_carriage_have_no_four_cc() {
        assert_eq!(CodecInfo { family: CodecFamily::Av1, ..CodecInfo::default() }.smooth(), None);
        assert_eq!(CodecInfo::default().smooth(), None);
    }

    /// An `esds` payload (version/flags included) around an AudioSpecificConfig.
    fn esds(asc: &[u8]) -> Vec<u8> {
        let dsi = [&[0x05, asc.len() as u8][..], asc].concat();
        let dcd = [&[0x04, (13 + dsi.len()) as u8, 0x40, 0x15][..], &[0; 11], &dsi].concat();
        let es = [&[0x03, (3 + dcd.len()) as u8, 0, 1, 0][..], &dcd].concat();
        [&[0, 0, 0, 0][..], &es].concat()
    }
}
