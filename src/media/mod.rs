//! What media is made of: ISO BMFF boxes, codec configurations and the bit reader under them.

pub mod bits;
pub mod codec;
pub mod mp4;
