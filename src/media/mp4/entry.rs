//! Sample entries built from decoder configurations that arrive outside an MP4 file (RTMP
//! sequence headers): `avc1` + `avcC`, `hvc1` + `hvcC`, `mp4a` + `esds`. The result is the
//! same kind of whole `stsd` entry an indexed file gives, so [`crate::media::codec::describe`]
//! and the init-segment writer treat both alike.

use bytes::Bytes;

use super::writer::BoxWriter;
use super::FourCC;
use crate::media::{err, MediaResult};

/// A visual sample entry `kind` (`avc1`, `hvc1`) of `width` × `height` holding the decoder
/// configuration record `record` in a `config` box (`avcC`, `hvcC`).
pub fn visual(kind: &FourCC, width: u16, height: u16, config: &FourCC, record: &[u8]) -> MediaResult<Bytes> {
    let mut w = BoxWriter::with_capacity(86 + 8 + record.len());
    let entry = w.begin(kind);
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.zeros(16); // pre_defined, reserved, pre_defined[3]
    w.u16(width);
    w.u16(height);
    w.u32(0x0048_0000); // 72 dpi
    w.u32(0x0048_0000);
    w.u32(0); // reserved
    w.u16(1); // frame_count
    w.zeros(32); // compressorname
    w.u16(0x0018); // depth
    w.i16(-1); // pre_defined
    w.leaf(config, record);
    w.end(entry);
    w.finish()
}

/// An `mp4a` sample entry for AAC with the AudioSpecificConfig `asc` (ISO/IEC 14496-14 `esds`:
/// ES_Descriptor → DecoderConfigDescriptor (MPEG-4 audio) → DecoderSpecificInfo, SLConfig).
pub fn aac(asc: &[u8], channels: u16, sample_rate: u32) -> MediaResult<Bytes> {
    let mut w = BoxWriter::with_capacity(36 + 48 + asc.len());
    let entry = w.begin(b"mp4a");
    w.zeros(6);
    w.u16(1); // data_reference_index
    w.zeros(8); // version, revision, vendor
    w.u16(channels);
    w.u16(16); // samplesize
    w.zeros(4); // pre_defined, reserved
                // 16.16 fixed point; rates above 65535 Hz do not fit and are left to the esds.
    w.u32(if sample_rate <= 0xffff { sample_rate << 16 } else { 0 });
    let esds = w.begin_full(b"esds", 0, 0);
    let mut decoder_config = vec![0x40, 0x15]; // MPEG-4 audio; audio stream, upstream 0, reserved 1
    decoder_config.extend_from_slice(&[0; 3 + 4 + 4]); // bufferSizeDB, maxBitrate, avgBitrate
    decoder_config.extend_from_slice(&descriptor(0x05, asc)?);
    let mut es = vec![0, 0, 0]; // ES_ID, flags
    es.extend_from_slice(&descriptor(0x04, &decoder_config)?);
    es.extend_from_slice(&descriptor(0x06, &[0x02])?); // SLConfigDescriptor: predefined MP4
    w.bytes(&descriptor(0x03, &es)?);
    w.end(esds);
    w.end(entry);
    w.finish()
}

/// An MPEG-4 descriptor: tag, the length in the 4-byte expandable form (7 bits a byte, as
/// ffmpeg writes it), payload.
fn descriptor(tag: u8, payload: &[u8]) -> MediaResult<Vec<u8>> {
    let len = u32::try_from(payload.len()).ok().filter(|&n| n < 1 << 28);
    let Some(len) = len else { return err(format!("descriptor of {} bytes", payload.len())) };
    let mut out = vec![tag];
    out.extend([21, 14, 7].map(|shift| 0x80 | ((len >> shift) & 0x7f) as u8));
    out.push((len & 0x7f) as u8);
    out.extend_from_slice(payload);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::{describe, CodecConfig, CodecFamily};

    #[test]
    fn aac_entry_describes_as_written() {
        // AAC LC, 48 kHz (index 3), stereo.
        let entry = aac(&[0x11, 0x90], 2, 48_000).unwrap();
        let info = describe(&entry).unwrap();
        assert_eq!(info.family, CodecFamily::Aac);
        assert_eq!(info.codec_string, "mp4a.40.2");
        assert_eq!((info.sample_rate, info.channels), (48_000, 2));
        match info.config {
            CodecConfig::Aac(es) => assert_eq!(es.audio_specific_config.map(|a| a.channel_config), Some(2)),
            other => panic!("{other:?}"),
        }
        // The same bytes mp4-atom reads as an mp4a with its esds.
        let atom = <mp4_atom::Codec as mp4_atom::Decode>::decode(&mut &entry[..]);
        assert!(matches!(atom, Ok(mp4_atom::Codec::Mp4a(_))), "{atom:?}");
    }

    #[test]
    fn long_descriptor_lengths() {
        let d = descriptor(5, &[7; 300]).unwrap();
        assert_eq!(&d[..5], &[5, 0x80, 0x80, 0x82, 0x2c]);
        assert_eq!(d.len(), 305);
    }

    #[test]
    fn avc_entry_describes_as_written() {
        // x264 High@3.0 avcC with one SPS and one PPS.
        let avcc =
            [0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x1e, 0x01, 0x00, 0x02, 0x68, 0xeb];
        let entry = visual(b"avc1", 640, 360, b"avcC", &avcc).unwrap();
        let info = describe(&entry).unwrap();
        assert_eq!(info.family, CodecFamily::Avc);
        assert_eq!(info.codec_string, "avc1.64001e");
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!(entry.len(), 86 + 8 + avcc.len());
    }
}
