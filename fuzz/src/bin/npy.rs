//! Any bytes as a .npy file: `npy::read` returns a value or an error, never panics or over-allocates.
#[path = "../../../src/npy.rs"]
#[allow(dead_code)]
mod npy;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = npy::read(&mut &data[..], data.len() as u64);
    });
}
