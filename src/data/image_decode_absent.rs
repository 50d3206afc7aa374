//! PNG and JPEG in a build without the `cli` feature (no image crate): reading or writing one is one clear
//! error. Same names and signatures as image_decode.rs (data/mod.rs picks one of the two).
use std::io::{BufRead, Seek, Write};

const ABSENT: &str = "this build reads and writes no PNG or JPEG (it was compiled without the `cli` feature)";

/// The largest image side read (pixels), as in image_decode.rs.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// Stand-in for image_decode.rs's `read_planar`.
pub fn read_planar<R: BufRead + Seek>(_: R, _: u32) -> Result<Vec<f32>, String> {
    Err(ABSENT.into())
}

/// Stand-in for image_decode.rs's `write_png_rgb8`.
pub fn write_png_rgb8(_: impl Write, _: &[u8], _: u32, _: u32) -> std::io::Result<()> {
    Err(std::io::Error::other(ABSENT))
}
