//! Star-particle data in the GalacticFlow layout: one array per galaxy, 11 float columns
//! (x, y, z [kpc], vx, vy, vz [km/s], Z, [Fe/H], [O/Fe], mass [Msun], age [Gyr]); a folder of `<id>.npy`
//! files or one .npz with an entry per galaxy. Loading validates every file and names the bad one.
//! HI maps (HIGlow, CAMELS layout) live in `hi_maps`, their synthetic stand-in with an exact density in
//! `hi_generator`, and the power spectrum that scores generated maps in `power_spectrum`.
pub mod clean;
pub mod conditions;
pub mod hi_generator;
pub mod hi_maps;
pub mod images;
pub mod power_spectrum;
pub mod stats;
pub mod synth;
pub mod synthetic;

use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// Column names of the file layout.
pub const COLUMNS: [&str; 11] = ["x", "y", "z", "vx", "vy", "vz", "Z", "Fe/H", "O/Fe", "mass", "age"];
/// The file columns the flow models (all but mass), in model order.
pub const MODELLED: [usize; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10];
pub const MASS: usize = 9;
pub const AGE: usize = 10;
pub const METALS: usize = 6;

/// One galaxy's star particles, [N, 11] in the file layout.
#[derive(Clone, Debug)]
pub struct Galaxy {
    pub id: String,
    pub stars: Array2<f32>,
}

impl Galaxy {
    pub fn n(&self) -> usize {
        self.stars.nrows()
    }

    /// The modelled columns, [N, 10].
    pub fn modelled(&self) -> Array2<f32> {
        // Built row-major on purpose: `select` along columns may return a column-major array.
        Array2::from_shape_fn((self.n(), MODELLED.len()), |(r, c)| self.stars[[r, MODELLED[c]]])
    }
}

fn validate(id: &str, a: ndarray::ArrayD<f32>, path: &Path) -> Result<Galaxy> {
    let bad = |msg: String| Error::file(path, msg);
    if a.ndim() != 2 || a.shape()[1] != COLUMNS.len() {
        return Err(bad(format!(
            "galaxy '{id}' has shape {:?}; expected [stars, 11] with columns {}",
            a.shape(),
            COLUMNS.join(", ")
        )));
    }
    if a.shape()[0] == 0 {
        return Err(bad(format!("galaxy '{id}' has no stars")));
    }
    let stars = a.into_dimensionality::<ndarray::Ix2>().map_err(|e| bad(e.to_string()))?;
    if let Some((r, row)) = stars.outer_iter().enumerate().find(|(_, r)| r.iter().any(|v| !v.is_finite())) {
        let c = row.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(bad(format!("galaxy '{id}': non-finite value {} in star {r}, column {}", row[c], COLUMNS[c])));
    }
    Ok(Galaxy { id: id.to_string(), stars })
}

/// Loads every galaxy of a folder of .npy files (id = file stem, sorted) or of one .npz file.
pub fn load(path: &Path) -> Result<Vec<Galaxy>> {
    if !path.exists() {
        return Err(Error::file(path, "no such file or folder"));
    }
    let mut out = Vec::new();
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::file(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "npy"))
            .collect();
        files.sort();
        for f in files {
            let id = f.file_stem().unwrap_or_default().to_string_lossy().to_string();
            out.push(validate(&id, crate::io::read_npy_f32(&f)?, &f)?);
        }
        if out.is_empty() {
            return Err(Error::file(path, "no .npy galaxy files in this folder"));
        }
    } else {
        for (id, a) in crate::io::read_npz_f32(path)? {
            out.push(validate(&id, a, path)?);
        }
        if out.is_empty() {
            return Err(Error::file(path, "no galaxies in this .npz file"));
        }
    }
    Ok(out)
}
