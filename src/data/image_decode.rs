//! Every use of the image crate: decoding one PNG or JPEG for [`super::images::load_image`], with limits set
//! before the decoder allocates anything, and encoding an RGB PNG. Standalone (the image crate only), so
//! the fuzzing harness (fuzz/) compiles this very file; a build without the `cli` feature compiles
//! image_decode_absent.rs instead.
use std::io::{BufRead, Seek, Write};

/// The largest image side read (pixels): a bigger image, or a header that claims one, is refused before
/// its pixels are allocated (as f32 RGBA an 8192 x 8192 image is 1 GiB).
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// The image `reader` holds as planar RGB, 3 x `size` x `size` values in [0, 1] (see [`decode_rgba`]; the
/// Catmull-Rom filter's overshoot at sharp edges is clamped back into [0, 1]).
pub fn read_planar<R: BufRead + Seek>(reader: R, size: u32) -> Result<Vec<f32>, String> {
    let rgba = decode_rgba(image::ImageReader::new(reader), size)?;
    let px = |c: usize| rgba.pixels().map(move |p| p.0[c].clamp(0.0, 1.0));
    Ok(px(0).chain(px(1)).chain(px(2)).collect())
}

/// Writes `rgb` (row-major, 3 bytes a pixel) as a `width` x `height` RGB PNG.
pub fn write_png_rgb8(w: impl Write, rgb: &[u8], width: u32, height: u32) -> std::io::Result<()> {
    use image::ImageEncoder;
    image::codecs::png::PngEncoder::new(w)
        .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(std::io::Error::other)
}

/// The image `reader` holds (format sniffed from its content) as premultiplied RGBA in [0, 1], resized to
/// `size` x `size` with a Catmull-Rom filter unless it is that size already; the error is the decoder's.
pub fn decode_rgba<R: BufRead + Seek>(reader: image::ImageReader<R>, size: u32) -> Result<image::Rgba32FImage, String> {
    let mut reader = reader.with_guessed_format().map_err(|e| e.to_string())?;
    if reader.format() == Some(image::ImageFormat::Png) {
        let mut inner = reader.into_inner();
        check_png_chunks(&mut inner)?;
        reader = image::ImageReader::with_format(inner, image::ImageFormat::Png);
    }
    // The decoders allocate from the dimensions a header declares: refuse absurd ones before decoding.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(1 << 30);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| e.to_string())?;
    let mut rgba = decoded.to_rgba32f();
    if decoded.color().has_alpha() {
        rgba.pixels_mut().for_each(|p| (0..3).for_each(|c| p.0[c] *= p.0[3]));
    }
    if rgba.dimensions() != (size, size) {
        rgba = image::imageops::resize(&rgba, size, size, image::imageops::FilterType::CatmullRom);
    }
    Ok(rgba)
}

/// Walks a PNG's chunk headers (without reading their data) and refuses a palette (PLTE) whose length is
/// not 3 to 768 bytes in whole RGB triples, which the PNG specification forbids and png 0.18.1 panics on
/// (found by fuzzing: fuzz/, FUZZING.md). Other damage is left to the decoder, which reports it.
fn check_png_chunks<R: BufRead + Seek>(r: &mut R) -> Result<(), String> {
    use std::io::SeekFrom;
    let start = r.stream_position().map_err(|e| e.to_string())?;
    r.seek(SeekFrom::Current(8)).map_err(|e| e.to_string())?;
    let mut head = [0u8; 8];
    while r.read_exact(&mut head).is_ok() {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        match &head[4..8] {
            b"PLTE" if len == 0 || len > 768 || len % 3 != 0 => {
                return Err(format!("invalid PNG: a palette (PLTE chunk) of {len} bytes, not 1 to 256 RGB triples"));
            }
            b"IEND" => break,
            _ => {}
        }
        r.seek(SeekFrom::Current(i64::from(len) + 4)).map_err(|e| e.to_string())?;
    }
    r.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    Ok(())
}
