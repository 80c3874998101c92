//! Dolby Vision: the DOVIDecoderConfigurationRecord of the `dvcC` (profiles ≤ 7), `dvvC`
//! (8–10) and `dvwC` (> 10) boxes (Dolby Vision Streams within the ISO Base Media File
//! Format v2.x), and the codec strings and HLS `SUPPLEMENTAL-CODECS` brands built from it.

use serde::Serialize;

use crate::media::bits::BitReader;
use crate::media::{MediaError, MediaResult};

/// The configuration boxes that carry the record, in any video sample entry.
pub(crate) const CONFIG_BOXES: [&[u8; 4]; 3] = [b"dvcC", b"dvvC", b"dvwC"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct DolbyVision {
    pub version_major: u8,
    pub version_minor: u8,
    pub profile: u8,
    pub level: u8,
    pub rpu_present: bool,
    pub el_present: bool,
    pub bl_present: bool,
    /// dv_bl_signal_compatibility_id: 0 none (profile 5), 1 HDR10, 2 SDR, 4 HLG, 6 Blu-ray.
    pub bl_compatibility: u8,
}

impl DolbyVision {
    /// The record: version_major 8, version_minor 8, profile 7, level 6, rpu 1, el 1, bl 1,
    /// bl_signal_compatibility_id 4 (older version-1.0 records end before it: 0), reserved.
    pub fn parse(record: &[u8]) -> MediaResult<DolbyVision> {
        let mut b = BitReader::new(record);
        let fields = (|| {
            let version_major = b.read(8)? as u8;
            let version_minor = b.read(8)? as u8;
            let profile = b.read(7)? as u8;
            let level = b.read(6)? as u8;
            let (rpu_present, el_present, bl_present) = (b.flag()?, b.flag()?, b.flag()?);
            let bl_compatibility = b.read(4).unwrap_or(0) as u8;
            Some(DolbyVision {
                version_major,
                version_minor,
                profile,
                level,
                rpu_present,
                el_present,
                bl_present,
                bl_compatibility,
            })
        })();
        fields.ok_or_else(|| MediaError("truncated Dolby Vision configuration record".into()))
    }

    /// The Dolby Vision codec string, `{entry}.{profile:02}.{level:02}` (e.g. `dvh1.05.06`),
    /// where `entry` is the Dolby Vision sample entry type of the stream: the track's own when
    /// it is one, else the one matching its base layer (`hvc1` → `dvh1`, `hev1` → `dvhe`,
    /// `av01` → `dav1`, `avc1` → `dva1`, `avc3` → `dvav`).
    pub fn codec_string(&self, sample_entry: &str) -> String {
        let entry = match sample_entry {
            "hvc1" => "dvh1",
            "hev1" => "dvhe",
            "av01" => "dav1",
            "avc1" => "dva1",
            "avc3" => "dvav",
            other => other,
        };
        format!("{entry}.{:02}.{:02}", self.profile, self.level)
    }

    /// The HLS `SUPPLEMENTAL-CODECS` compatibility brand of the base layer (HLS §4.4.6.2,
    /// Apple's HLS authoring spec): `db1p` HDR10 (PQ), `db2g` SDR, `db4h` HLG. Other ids
    /// (none, Blu-ray) have none.
    pub fn compatibility_brand(&self) -> Option<&'static str> {
        match self.bl_compatibility {
            1 => Some("db1p"),
            2 => Some("db2g"),
            4 => Some("db4h"),
            _ => None,
        }
    }

    /// Whether the base layer is playable without Dolby Vision (profiles 8.x, 9.x, 10.x with a
    /// compatibility id): then the track's `CODECS` is the base layer's and Dolby Vision is
    /// supplemental.
    pub fn backward_compatible(&self) -> bool {
        self.bl_compatibility != 0
    }

    /// `dvh1.08.06/db1p`: the `SUPPLEMENTAL-CODECS` value (the codec alone when there is no
    /// brand).
    pub fn supplemental_codecs(&self, sample_entry: &str) -> String {
        let codec = self.codec_string(sample_entry);
        match self.compatibility_brand() {
            Some(brand) => format!("{codec}/{brand}"),
            None => codec,
        }
    }

    /// `8.1`, `5`, `8.4`: how Dolby names the profile with its compatibility.
    pub fn profile_name(&self) -> String {
        match self.bl_compatibility {
            0 => self.profile.to_string(),
            c => format!("{}.{c}", self.profile),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 24-byte records the fixtures carry (fixtures/edit-sample-entry.py).
    fn record(profile: u16, level: u16, compat: u8) -> Vec<u8> {
        let flags = (profile << 9) | (level << 3) | 0b101;
        let mut r = vec![1, 0];
        r.extend_from_slice(&flags.to_be_bytes());
        r.push(compat << 4);
        r.extend_from_slice(&[0; 19]);
        r
    }

    #[test]
    fn profiles_and_strings() {
        let p5 = DolbyVision::parse(&record(5, 6, 0)).unwrap();
        assert_eq!((p5.profile, p5.level, p5.rpu_present, p5.el_present, p5.bl_present), (5, 6, true, false, true));
        assert_eq!(p5.codec_string("dvh1"), "dvh1.05.06");
        assert!(!p5.backward_compatible());
        assert_eq!((p5.compatibility_brand(), p5.profile_name()), (None, "5".to_string()));

        let p81 = DolbyVision::parse(&record(8, 6, 1)).unwrap();
        assert_eq!(p81.supplemental_codecs("hvc1"), "dvh1.08.06/db1p");
        assert_eq!(p81.supplemental_codecs("hev1"), "dvhe.08.06/db1p");
        assert_eq!(p81.profile_name(), "8.1");
        let p84 = DolbyVision::parse(&record(8, 9, 4)).unwrap();
        assert_eq!(p84.supplemental_codecs("hvc1"), "dvh1.08.09/db4h");
        let p10 = DolbyVision::parse(&record(10, 13, 1)).unwrap();
        assert_eq!(p10.supplemental_codecs("av01"), "dav1.10.13/db1p");
        let p82 = DolbyVision::parse(&record(8, 1, 2)).unwrap();
        assert_eq!(p82.compatibility_brand(), Some("db2g"));
    }

    #[test]
    fn short_records() {
        // A version-1.0 record of 4 bytes: no compatibility id.
        let r = record(5, 1, 3);
        assert_eq!(DolbyVision::parse(&r[..4]).unwrap().bl_compatibility, 0);
        assert!(DolbyVision::parse(&r[..3]).is_err());
        assert!(DolbyVision::parse(&[]).is_err());
    }
}
