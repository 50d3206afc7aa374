//! The embedded default data set: `gforge synth galaxies` writes synthetic NIHAO-like galaxies
//! (src/data/synth.rs) as `<id>.npy` files in the GalacticFlow layout, mass column included, so the
//! pipeline treats them exactly like simulation output; `truth.json` keeps each galaxy's parameters,
//! from which the exact density (and so the exact KL of a trained flow) is evaluated.
use super::synth::{self, GalaxyParams, StarCount};
use super::Galaxy;
use crate::error::{Error, Result};
use ndarray::Array2;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SynthConfig {
    pub galaxies: usize,
    /// Star particle mass [Msun]: each galaxy gets M_star / m_particle stars, clamped to [n_min, n_max].
    pub m_particle: f64,
    pub n_min: usize,
    pub n_max: usize,
    pub seed: u64,
}

impl Default for SynthConfig {
    /// The demo's set: 96 galaxies of 700 to 3,000 stars (~122k in all). Many small galaxies rather than a
    /// few large ones: what a conditional flow (and the image autoencoder) must learn is how galaxies
    /// differ, and with 24 galaxies the 5 held out scored models by luck as much as by skill.
    fn default() -> Self {
        SynthConfig { galaxies: 96, m_particle: 1e7, n_min: 700, n_max: 3000, seed: 1 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Truth {
    pub config: SynthConfig,
    pub galaxies: Vec<(String, GalaxyParams)>,
}

impl Truth {
    pub fn read(path: &Path) -> Result<Truth> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::file(path, format!("not a synthetic truth file: {e}")))
    }

    pub fn get(&self, id: &str) -> Option<&GalaxyParams> {
        self.galaxies.iter().find(|(g, _)| g == id).map(|(_, p)| p)
    }
}

/// Draws the galaxies (parameters and stars), each from its own seeded stream so one galaxy does not
/// depend on how many stars another has.
pub fn generate(cfg: &SynthConfig) -> (Vec<Galaxy>, Truth) {
    let count = StarCount::ParticleMass { m_particle: cfg.m_particle, n_min: cfg.n_min, n_max: cfg.n_max };
    let mut gals = Vec::new();
    let mut truth = Vec::new();
    for i in 0..cfg.galaxies {
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        let p = GalaxyParams::draw(&mut rng, count);
        let rows = synth::sample_stars(&p, p.n_stars, &mut rng);
        let stars = Array2::from_shape_fn((rows.len(), 11), |(r, c)| rows[r][c] as f32);
        let id = format!("g{i:03}");
        gals.push(Galaxy::new(id.clone(), stars));
        truth.push((id, p));
    }
    (gals, Truth { config: cfg.clone(), galaxies: truth })
}

/// Writes the galaxies and truth.json into `dir` (created if needed).
pub fn write(dir: &Path, gals: &[Galaxy], truth: &Truth) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    for g in gals {
        crate::io::write_npy_f32(&dir.join(format!("{}.npy", g.id)), &g.stars.clone().into_dyn())?;
    }
    let json = serde_json::to_vec_pretty(truth).map_err(|e| Error::Data(e.to_string()))?;
    crate::io::write_atomic(&dir.join("truth.json"), |w| std::io::Write::write_all(w, &json))
}
