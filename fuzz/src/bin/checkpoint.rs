//! Any bytes as the settings of a checkpoint (its `__config__` entry), with the weights of a real checkpoint
//! of each model kind (corpus/checkpoint-weights/), loaded as every kind the CLI writes: a star flow
//! (`SavedModel::from_checkpoint`, as `flow sample|eval|log-prob` and the C API), the autoencoder and
//! HIGlow's Glow. Each parses the settings, builds the model they describe and restores the tensors into it,
//! so settings that ask for another or an impossible model must fail there, not abort. The archive around
//! the settings is the `npz` target's (its CRC-32 checks would stop most mutations before the settings).
use galactic_forge::checkpoint::{self, Checkpoint};
use galactic_forge::pipeline::{ae, glow, SavedModel};
use galactic_forge::Device;
use std::path::{Path, PathBuf};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/checkpoint-weights");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let weights: Vec<Checkpoint> = paths.iter().map(|p| checkpoint::load(p).unwrap()).collect();
    afl::fuzz!(|data: &[u8]| {
        let Ok(config) = serde_json::from_slice::<serde_json::Value>(data) else { return };
        let dev = Device::Cpu;
        for (w, path) in weights.iter().zip(&paths) {
            let ck = || Checkpoint { config: config.clone(), tensors: w.tensors.clone() };
            let _ = SavedModel::from_checkpoint(path, ck(), &dev);
            let _ = ae::from_checkpoint(path, ck(), &dev);
            let _ = glow::from_checkpoint(path, ck(), &dev);
        }
    });
}
