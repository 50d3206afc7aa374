//! Any bytes as an .npz archive, read as `checkpoint::load` and `io::read_npz_f32` read it: every entry
//! through `npy::Npz::read`, the `__config__` entry parsed as JSON.
#[path = "../../../src/npy.rs"]
#[allow(dead_code)]
mod npy;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(mut z) = npy::Npz::new(std::io::Cursor::new(data), data.len() as u64) else { return };
        for i in 0..z.len() {
            match z.read(i) {
                Ok((name, npy::Value::U8(bytes))) if name == "__config__" => {
                    let _ = serde_json::from_slice::<serde_json::Value>(&bytes);
                }
                Ok((_, npy::Value::F32(a))) => {
                    let _ = a.iter().any(|x| !x.is_finite());
                }
                _ => {}
            }
        }
    });
}
