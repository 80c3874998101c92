//! What media is made of: ISO BMFF boxes and codec configurations.

pub mod codec;
pub mod mp4;
