//! Dolby AC-3 and E-AC-3: the `dac3` and `dec3` boxes (ETSI TS 102 366 Annex F) and the
//! channel layout they imply.

use crate::media::bits::BitReader;
use crate::media::{MediaError, MediaResult};

/// AC-3 fscod → sample rate (ETSI TS 102 366 §4.4.1.3).
const AC3_RATES: [u32; 3] = [48000, 44100, 32000];
/// AC-3 acmod → full-bandwidth channel count.
const ACMOD_CHANNELS: [u16; 8] = [2, 1, 2, 3, 3, 4, 4, 5];
/// AC-3 acmod → Dolby channel map (Table E.1.4 bits: L C R Ls Rs Lc/Rc Lrs/Rrs Cs …).
const ACMOD_CHANMAP: [u16; 8] = [0xA000, 0x4000, 0xA000, 0xE000, 0xA100, 0xE100, 0xB800, 0xF800];
const CHANMAP_LFE: u16 = 0x0001;
/// E-AC-3 chan_loc (Table F.6.1), LSB first: Lc/Rc, Lrs/Rrs, Cs, Ts, Lsd/Rsd, Lw/Rw, Vhl/Vhr,
/// Vhc, LFE2, as (channel count, Dolby channel map bit). Pairs count two channels.
const LOCATIONS: [(u16, u16); 9] = [
    (2, 1 << 10),
    (2, 1 << 9),
    (1, 1 << 8),
    (1, 1 << 7),
    (2, 1 << 6),
    (2, 1 << 5),
    (2, 1 << 4),
    (1, 1 << 3),
    (1, 1 << 1),
];

/// What a `dac3`, or the first independent substream of a `dec3`, tells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ac3Config {
    pub fscod: u8,
    pub bsid: u8,
    pub bsmod: u8,
    pub acmod: u8,
    pub lfe: bool,
    /// E-AC-3: the channel locations of the dependent substreams (0 for AC-3).
    pub chan_loc: u16,
    /// E-AC-3 with Joint Object Coding (Dolby Atmos): the `complexity_index_type_a` of `dec3`.
    pub joc_complexity: Option<u8>,
    /// The `dac3` / `dec3` payload as stored (a Smooth `CodecPrivateData` carries it whole).
    pub payload: Vec<u8>,
}

impl Ac3Config {
    /// AC3SpecificBox (ETSI TS 102 366 §F.4): fscod 2, bsid 5, bsmod 3, acmod 3, lfeon 1,
    /// bit_rate_code 5, reserved 5.
    pub fn parse_dac3(dac3: &[u8]) -> MediaResult<Ac3Config> {
        let mut b = BitReader::new(dac3);
        let fields = (|| {
            Some(Ac3Config {
                fscod: b.read(2)? as u8,
                bsid: b.read(5)? as u8,
                bsmod: b.read(3)? as u8,
                acmod: b.read(3)? as u8,
                lfe: b.flag()?,
                payload: dac3.to_vec(),
                ..Ac3Config::default()
            })
        })();
        fields.ok_or_else(truncated)
    }

    /// EC3SpecificBox (ETSI TS 102 366 §F.6): data_rate 13, num_ind_sub 3, then per
    /// independent substream fscod 2, bsid 5, reserved 1, asvc 1, bsmod 3, acmod 3, lfeon 1,
    /// reserved 3, num_dep_sub 4, chan_loc 9 | reserved 1; then optionally reserved 7,
    /// flag_ec3_extension_type_a 1, complexity_index_type_a 8 (JOC). The first independent
    /// substream describes the track.
    pub fn parse_dec3(dec3: &[u8]) -> MediaResult<Ac3Config> {
        let mut b = BitReader::new(dec3);
        let mut config = Self::read_dec3_substreams(&mut b).ok_or_else(truncated)?;
        // Byte-align, then the optional JOC extension.
        b.byte_align().ok_or_else(truncated)?;
        if b.bits_left() >= 16 {
            b.skip(7).ok_or_else(truncated)?;
            if b.flag().ok_or_else(truncated)? {
                config.joc_complexity = Some(b.read(8).ok_or_else(truncated)? as u8);
            }
        }
        config.payload = dec3.to_vec();
        Ok(config)
    }

    fn read_dec3_substreams(b: &mut BitReader) -> Option<Ac3Config> {
        let _data_rate = b.read(13)?;
        let num_ind_sub = b.read(3)? + 1;
        let mut first = None;
        for _ in 0..num_ind_sub {
            let fscod = b.read(2)? as u8;
            let bsid = b.read(5)? as u8;
            b.skip(1)?;
            let _asvc = b.read(1)?;
            let bsmod = b.read(3)? as u8;
            let acmod = b.read(3)? as u8;
            let lfe = b.flag()?;
            b.skip(3)?;
            let num_dep_sub = b.read(4)?;
            let chan_loc = if num_dep_sub > 0 { b.read(9)? as u16 } else { b.read(1).map(|_| 0)? };
            first.get_or_insert(Ac3Config { fscod, bsid, bsmod, acmod, lfe, chan_loc, ..Ac3Config::default() });
        }
        first
    }

    pub fn sample_rate(&self) -> Option<u32> {
        AC3_RATES.get(usize::from(self.fscod)).copied()
    }

    /// The channel count and the 16-bit Dolby channel map (ETSI TS 102 366 Table E.1.4).
    pub fn channels_and_map(&self) -> (u16, u16) {
        let acmod = usize::from(self.acmod);
        let mut channels = ACMOD_CHANNELS.get(acmod).copied().unwrap_or(2) + u16::from(self.lfe);
        let mut mask = ACMOD_CHANMAP.get(acmod).copied().unwrap_or(0xA000);
        if self.lfe {
            mask |= CHANMAP_LFE;
        }
        for (i, (n, bit)) in LOCATIONS.iter().enumerate() {
            if self.chan_loc & (1 << i) != 0 {
                channels += n;
                mask |= bit;
            }
        }
        (channels, mask)
    }
}

fn truncated() -> MediaError {
    MediaError("truncated".into())
}
