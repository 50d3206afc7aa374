//! Any bytes as a PNG or JPEG, decoded and resized as `images::load_image` does (the same source file).
#[path = "../../../src/data/image_decode.rs"]
mod image_decode;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let reader = image::ImageReader::new(std::io::Cursor::new(data));
        let _ = image_decode::decode_rgba(reader, 16);
    });
}
