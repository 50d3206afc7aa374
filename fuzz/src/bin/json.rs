//! Any bytes as each JSON file the crate reads beside its data, through the crate's own reader and then what
//! consumes it, as `gforge` runs them:
//! - an HI map folder's truth.json: `higlow::load_folder` (its maps per parameter set come from the file) on
//!   a fixed folder of two 64 x 64 maps, then the exact posterior of a map under the file's generator constants;
//! - a synthetic galaxy set's truth.json: each galaxy's exact log-density of a star and its inside fraction
//!   (generator draws), as `flow eval` computes the exact KL;
//! - an image folder's views.json: the latent probes of `gforge forge`.
use galactic_forge::data::hi_maps::BOX_SIZE;
use galactic_forge::data::images::Views;
use galactic_forge::data::synth;
use galactic_forge::data::synthetic::Truth;
use galactic_forge::pipeline::{eval, forge, higlow};

const SIDE: usize = 64;

fn main() {
    let dir = std::env::temp_dir().join(format!("gforge-fuzz-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Two parameter sets of one map each, as `gforge synth hi-maps` lays them out.
    let maps: Vec<f32> = (0..2 * SIDE * SIDE).map(|i| 1e7 * (1.0 + (i % 7) as f32)).collect();
    let arr = ndarray::Array3::from_shape_vec((2, SIDE, SIDE), maps).unwrap();
    ndarray_npy::write_npy(dir.join("maps.npy"), &arr).unwrap();
    std::fs::write(dir.join("params.csv"), "Omega_m,sigma_8\n0.3,0.8\n0.2,0.7\n").unwrap();
    let truth = dir.join("truth.json");
    let ids: Vec<String> = (0..4).map(|i| format!("g{i:03}")).collect();
    let z: Vec<Vec<f32>> = (0..4).map(|i| vec![i as f32, 1.0 - i as f32]).collect();
    afl::fuzz!(|data: &[u8]| {
        if std::fs::write(&truth, data).is_err() {
            return;
        }
        if let Ok(hi) = higlow::load_folder(&dir) {
            if let Some(t) = &hi.truth {
                // As `glow eval` does, with the file's own scaling of the conditions.
                let _ = t.model.exact_posterior(hi.maps.map(0), hi.maps.side, BOX_SIZE, &t.cond_scaling, 3);
            }
        }
        if let Ok(t) = Truth::read(&truth) {
            for (_, p) in t.galaxies.iter().take(4) {
                let _ = synth::log_prob(p, &[1.0, -0.5, 0.2, 100.0, -50.0, 10.0, 0.01, -0.5, 0.2, 5.0]);
                let _ = eval::log_inside_fraction(p, 20.0, 64);
            }
        }
        if let Ok(v) = Views::read(&truth) {
            let _ = forge::probes(&v, &ids, &z, &ids[2..]);
        }
    });
}
