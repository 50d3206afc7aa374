//! Neutral-hydrogen (HI) maps in HIGlow's setting (CAMELS IllustrisTNG, 64 x 64 pixels, 25 Mpc/h box,
//! 15 maps per simulation), their loading, held-out split, normalisation and augmentation.
//!
//! Layout on disk (CAMELS' 2-D maps): one .npy `[N, H, W]` of linear HI values (> 0), maps of simulation
//! `s` at rows `s * maps_per_sim ..`, and the CAMELS parameter table with one row per simulation.
//!
//! Normalisation (`MapScaling`) works on `u = log10 n`, as HIGlow: min-max to [-1, 1], or z-score then
//! `2 sigmoid - 1`. Both are smooth and monotone per pixel, so the density of the data follows exactly
//! from a model's density of the normalised map `v`:
//! `log p_data(n) = log p_model(v(n)) + sum_pixels log |dv/dn|` (`log_abs_det`), with
//! `dv/du = 2 / (hi - lo)` (min-max) or `2 s (1 - s) / std`, `s = sigmoid((u - mean) / std)` (sigmoid),
//! and `du/dn = 1 / (n ln 10)`.
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// Side HIGlow's maps are brought to.
pub const SIDE: usize = 64;
/// CAMELS box size [Mpc/h].
pub const BOX_SIZE: f64 = 25.0;
/// CAMELS maps per simulation (per parameter set).
pub const MAPS_PER_SIM: usize = 15;

/// HI maps with their cosmological parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct HiMaps {
    pub side: usize,
    /// `[n, side * side]`, row-major maps of linear HI values (> 0), as in the files.
    pub maps: Vec<f32>,
    /// (Omega_m, sigma_8) per map.
    pub params: Vec<[f32; 2]>,
    /// Parameter-set (simulation) index per map.
    pub sim: Vec<u32>,
    pub maps_per_sim: usize,
}

impl HiMaps {
    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    pub fn map(&self, i: usize) -> &[f32] {
        let p = self.side * self.side;
        &self.maps[i * p..(i + 1) * p]
    }

    /// Train and held-out map indices (ascending). Whole parameter sets are held out, never single maps of
    /// a set (HIGlow meant to hold out 3 maps of every simulation, so its test maps share the training
    /// maps' parameters; its modulo test even keeps map 15 in training). `round(val_fraction * sets)` sets
    /// are held out, at least one when `val_fraction > 0` and there are >= 2 sets, and at least one set is
    /// always kept for training. The choice depends only on `seed`.
    pub fn split_by_sim(&self, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let mut sets: Vec<u32> = self.sim.clone();
        sets.sort_unstable();
        sets.dedup();
        let n = sets.len();
        let f = if val_fraction.is_nan() { 0.0 } else { val_fraction.clamp(0.0, 1.0) };
        let mut n_val = (f * n as f64).round() as usize;
        if f > 0.0 && n >= 2 {
            n_val = n_val.clamp(1, n - 1);
        } else if n < 2 {
            n_val = 0;
        }
        sets.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let held: std::collections::HashSet<u32> = sets[..n_val].iter().copied().collect();
        (0..self.len()).partition(|&i| !held.contains(&self.sim[i]))
    }

    /// Writes `maps.npy` ([N, side, side] float32) and `params.csv` (`name,Omega_m,sigma_8`, one row per
    /// parameter set) into `dir` (created if needed), each atomically; `load_camels` reads them back.
    /// The maps must be grouped as CAMELS groups them: `maps_per_sim` consecutive maps per set.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let (mps, p) = (self.maps_per_sim, self.side * self.side);
        if mps == 0
            || !self.len().is_multiple_of(mps)
            || self.maps.len() != self.len() * p
            || self.sim.len() != self.len()
        {
            return Err(Error::Data(format!(
                "HI maps: {} maps ({} values, {} set indices) are not whole sets of {mps} maps of {p} pixels",
                self.len(),
                self.maps.len(),
                self.sim.len()
            )));
        }
        for (s, chunk) in self.params.chunks(mps).enumerate() {
            let sims = &self.sim[s * mps..(s + 1) * mps];
            if chunk.iter().any(|q| q != &chunk[0]) || sims.iter().any(|&q| q != sims[0]) {
                return Err(Error::Data(format!(
                    "HI maps: maps {}..{} are not one parameter set (CAMELS keeps a set's maps together)",
                    s * mps,
                    (s + 1) * mps
                )));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
        let a = ndarray::ArrayD::from_shape_vec(vec![self.len(), self.side, self.side], self.maps.clone())
            .map_err(|e| Error::Data(e.to_string()))?;
        crate::io::write_npy_f32(&dir.join("maps.npy"), &a)?;
        crate::io::write_atomic(&dir.join("params.csv"), |w| {
            writeln!(w, "name,Omega_m,sigma_8")?;
            for (s, chunk) in self.params.chunks(mps).enumerate() {
                // f32 Display is the shortest text that parses back to the same f32.
                writeln!(w, "LH_{s},{},{}", chunk[0][0], chunk[0][1])?;
            }
            Ok(())
        })
    }
}

/// Reads CAMELS HI maps and their parameter table.
///
/// `maps`: .npy `[N, H, W]`, float32 or float64, `H == W` a multiple of 64, block-averaged (in linear
/// units, as the column density of a coarser pixel) down to 64 x 64. `params`: CAMELS' table, as CSV
/// with a header (`CAMELs_params.csv`: name, Omega_m, sigma_8, A_SN1, ...) or whitespace-separated
/// text (`params_*.txt`, optional leading `#` lines); Omega_m and sigma_8 are the first two numbers of a
/// row after an optional name. `N` must be `rows * maps_per_sim`: map `i` belongs to row
/// `i / maps_per_sim`.
pub fn load_camels(maps: &Path, params: &Path, maps_per_sim: usize) -> Result<HiMaps> {
    if maps_per_sim == 0 {
        return Err(Error::Usage("maps per simulation must be at least 1".into()));
    }
    let rows = read_params(params)?;
    let a = crate::io::read_npy_f32(maps)?;
    let bad = |msg: String| Error::file(maps, msg);
    let sh = a.shape().to_vec();
    if sh.len() != 3 {
        return Err(bad(format!("HI maps have shape {sh:?}; expected [maps, H, W]")));
    }
    let (n, h, w) = (sh[0], sh[1], sh[2]);
    if h != w {
        return Err(bad(format!("HI maps are {h} x {w}; expected square maps")));
    }
    if h == 0 || h % SIDE != 0 {
        return Err(bad(format!("HI maps are {h} x {w}; the side must be a multiple of {SIDE}")));
    }
    if n != rows.len() * maps_per_sim {
        return Err(Error::file(
            params,
            format!(
                "{} parameter rows x {maps_per_sim} maps per simulation = {} maps, but {} holds {n}",
                rows.len(),
                rows.len() * maps_per_sim,
                maps.display()
            ),
        ));
    }
    let a = a.as_standard_layout();
    let data = a.as_slice().expect("standard layout");
    let (f, p) = (h / SIDE, h * w);
    let mut out = vec![0f32; n * SIDE * SIDE];
    for m in 0..n {
        let src = &data[m * p..(m + 1) * p];
        if let Some(i) = src.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!("map {m}: non-finite value {} at pixel ({}, {})", src[i], i / w, i % w)));
        }
        for r in 0..SIDE {
            for c in 0..SIDE {
                let mut s = 0f64;
                for y in 0..f {
                    s += src[(r * f + y) * w + c * f..(r * f + y) * w + (c + 1) * f]
                        .iter()
                        .map(|&v| v as f64)
                        .sum::<f64>();
                }
                let v = (s / (f * f) as f64) as f32;
                if v <= 0.0 {
                    let how = if f > 1 { format!(" (mean of its {f} x {f} block)") } else { String::new() };
                    return Err(bad(format!(
                        "map {m}: non-positive HI value {v} at pixel ({r}, {c}){how}; maps are log10-transformed, \
                         so every pixel must be > 0"
                    )));
                }
                out[m * SIDE * SIDE + r * SIDE + c] = v;
            }
        }
    }
    Ok(HiMaps {
        side: SIDE,
        maps: out,
        params: (0..n).map(|i| rows[i / maps_per_sim]).collect(),
        sim: (0..n).map(|i| (i / maps_per_sim) as u32).collect(),
        maps_per_sim,
    })
}

/// (Omega_m, sigma_8) of every row of a CAMELS parameter table (see `load_camels`).
fn read_params(path: &Path) -> Result<Vec<[f32; 2]>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    super::text_tables::camels_params(&text).map_err(|e| Error::file(path, e))
}

/// Which normalisation `MapScaling::fit` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScalingKind {
    MinMax,
    Sigmoid,
}

/// Per-pixel normalisation of maps, `n -> v` in [-1, 1] through `u = log10 n` (module doc), fitted on the
/// training maps and stored with a model so that its density can be turned back into the data's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum MapScaling {
    /// `v = 2 (u - lo) / (hi - lo) - 1` (HIGlow maps to [0, 1]; [-1, 1] matches its sampling clamp).
    MinMax { lo: f64, hi: f64 },
    /// `v = 2 sigmoid((u - mean) / std) - 1` (HIGlow's default).
    Sigmoid { mean: f64, std: f64 },
}

const LN_10: f64 = std::f64::consts::LN_10;
/// `inverse` keeps v this far inside (-1, 1), where the sigmoid's logit is finite.
const SIGMOID_CLAMP: f64 = 1e-6;

/// ln sigmoid(x) = -softplus(-x), without overflow.
fn ln_sigmoid(x: f64) -> f64 {
    -((-x).max(0.0) + (-x.abs()).exp().ln_1p())
}

impl MapScaling {
    /// Fits on the pixels of the given (training) maps: min and max, or mean and (unbiased) std of
    /// log10 n, as HIGlow. An error if there are no pixels, a pixel is not a positive finite number, or
    /// the maps are constant.
    pub fn fit<'a>(kind: ScalingKind, maps: impl IntoIterator<Item = &'a [f32]>) -> Result<MapScaling> {
        let (mut n, mut mean, mut m2) = (0usize, 0f64, 0f64);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for map in maps {
            for &v in map {
                if !(v > 0.0 && v.is_finite()) {
                    return Err(Error::Data(format!("map scaling: HI value {v} is not a positive finite number")));
                }
                let u = (v as f64).log10();
                // Welford: stable over millions of pixels.
                n += 1;
                let d = u - mean;
                mean += d / n as f64;
                m2 += d * (u - mean);
                lo = lo.min(u);
                hi = hi.max(u);
            }
        }
        if n < 2 || hi <= lo {
            return Err(Error::Data(format!("map scaling: {n} pixels with no spread in log10 values to fit")));
        }
        Ok(match kind {
            ScalingKind::MinMax => MapScaling::MinMax { lo, hi },
            ScalingKind::Sigmoid => MapScaling::Sigmoid { mean, std: (m2 / (n - 1) as f64).sqrt() },
        })
    }

    fn v_of_u(&self, u: f64) -> f64 {
        match *self {
            MapScaling::MinMax { lo, hi } => 2.0 * (u - lo) / (hi - lo) - 1.0,
            MapScaling::Sigmoid { mean, std } => {
                let z = (u - mean) / std;
                // 2 sigmoid(z) - 1 = tanh(z / 2), accurate in both tails.
                (0.5 * z).tanh()
            }
        }
    }

    /// `n -> v`.
    pub fn forward(&self, n: &[f32]) -> Vec<f32> {
        n.iter().map(|&x| self.v_of_u((x as f64).log10()) as f32).collect()
    }

    /// `v -> n`; for `Sigmoid`, v is first clamped to `(-1 + 1e-6, 1 - 1e-6)`.
    pub fn inverse(&self, v: &[f32]) -> Vec<f32> {
        v.iter()
            .map(|&x| {
                let x = x as f64;
                let u = match *self {
                    MapScaling::MinMax { lo, hi } => (x + 1.0) / 2.0 * (hi - lo) + lo,
                    MapScaling::Sigmoid { mean, std } => {
                        let x = x.clamp(-1.0 + SIGMOID_CLAMP, 1.0 - SIGMOID_CLAMP);
                        // logit((x + 1) / 2) = 2 atanh(x)
                        2.0 * x.atanh() * std + mean
                    }
                };
                10f64.powf(u) as f32
            })
            .collect()
    }

    /// `sum_pixels log |dv/dn|` in f64 (module doc); NaN if a pixel is not a positive finite number.
    pub fn log_abs_det(&self, n: &[f32]) -> f64 {
        let mut total = 0.0;
        for &x in n {
            if !(x > 0.0 && x.is_finite()) {
                return f64::NAN;
            }
            let x = x as f64;
            let ln_du_dn = -(x.ln() + LN_10.ln());
            total += ln_du_dn
                + match *self {
                    MapScaling::MinMax { lo, hi } => (2.0 / (hi - lo)).ln(),
                    MapScaling::Sigmoid { mean, std } => {
                        let z = (x.log10() - mean) / std;
                        std::f64::consts::LN_2 + ln_sigmoid(z) + ln_sigmoid(-z) - std.ln()
                    }
                };
        }
        total
    }
}

/// Scaling of (Omega_m, sigma_8) to [-1, 1]: `c = 2 (p - lo) / (hi - lo) - 1` per parameter.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CondScaling {
    pub lo: [f64; 2],
    pub hi: [f64; 2],
}

impl Default for CondScaling {
    /// CAMELS' LH ranges, Omega_m in [0.1, 0.5], sigma_8 in [0.6, 1.0] (HIGlow uses the data's min and max,
    /// which are these ranges to within 1e-3 for its 1000 simulations).
    fn default() -> Self {
        CondScaling { lo: [0.1, 0.6], hi: [0.5, 1.0] }
    }
}

impl CondScaling {
    pub fn forward(&self, p: [f64; 2]) -> [f64; 2] {
        [0, 1].map(|i| 2.0 * (p[i] - self.lo[i]) / (self.hi[i] - self.lo[i]) - 1.0)
    }

    pub fn inverse(&self, c: [f64; 2]) -> [f64; 2] {
        [0, 1].map(|i| (c[i] + 1.0) / 2.0 * (self.hi[i] - self.lo[i]) + self.lo[i])
    }

    /// A warning for each parameter of `p` outside the range the model was trained on (where the flow
    /// extrapolates and its maps are not to be trusted).
    pub fn outside(&self, p: [f64; 2]) -> Vec<String> {
        (0..2)
            .filter(|&i| !(self.lo[i]..=self.hi[i]).contains(&p[i]))
            .map(|i| {
                format!(
                    "{} = {} is outside the training range [{}, {}]: the flow extrapolates there",
                    ["Omega_m", "sigma_8"][i],
                    p[i],
                    self.lo[i],
                    self.hi[i]
                )
            })
            .collect()
    }
}

/// The `g`-th of the 8 symmetries of the square (g in 0..8): bit 0 flips the rows' order, bit 1 the columns'
/// order, bit 2 transposes (after the flips). 0 is the identity; 0..4 are the flips HIGlow trains with.
/// Panics unless `map.len() == side^2` and `g < 8`.
pub fn dihedral(map: &[f32], side: usize, g: usize) -> Vec<f32> {
    assert!(map.len() == side * side && g < 8, "dihedral: map of side {side} and symmetry {g} of 8");
    let mut out = vec![0f32; map.len()];
    for r in 0..side {
        for c in 0..side {
            let (i, j) = symmetry_of_square(r, c, side, g);
            out[i * side + j] = map[r * side + c];
        }
    }
    out
}

/// Where pixel (r, c) goes under symmetry `g` of [`dihedral`].
fn symmetry_of_square(r: usize, c: usize, side: usize, g: usize) -> (usize, usize) {
    let i = if g & 1 != 0 { side - 1 - r } else { r };
    let j = if g & 2 != 0 { side - 1 - c } else { c };
    if g & 4 != 0 {
        (j, i)
    } else {
        (i, j)
    }
}

/// HIGlow's augmentation (HI_transform): a random cyclic shift along both axes, each in `0..side-1` (numpy's
/// `choice(size - 1)`, so never `side - 1`), then a flip of the rows' order and of the columns' order, each
/// with probability 1/2; with `transpose`, then a transpose with probability 1/2 (all 8 symmetries of the
/// square, where HIGlow uses 4). Maps are periodic and statistically isotropic, so this keeps the
/// distribution. `map` holds whole planes of `side^2` values, all moved by the same draw. Panics otherwise.
pub fn augment(map: &[f32], side: usize, transpose: bool, rng: &mut impl Rng) -> Vec<f32> {
    let plane = side * side;
    assert!(
        plane > 0 && map.len().is_multiple_of(plane),
        "augment: {} values are not planes of side {side}",
        map.len()
    );
    let (sr, sc) = if side >= 2 { (rng.random_range(0..side - 1), rng.random_range(0..side - 1)) } else { (0, 0) };
    let (fr, fc) = (rng.random_bool(0.5), rng.random_bool(0.5));
    let tr = transpose && rng.random_bool(0.5);
    let g = usize::from(fr) | usize::from(fc) << 1 | usize::from(tr) << 2;
    let mut out = vec![0f32; map.len()];
    for (src, dst) in map.chunks(plane).zip(out.chunks_mut(plane)) {
        for r in 0..side {
            for c in 0..side {
                // torch.roll (out[i] = in[i - shift]), then the symmetry.
                let (i, j) = symmetry_of_square((r + sr) % side, (c + sc) % side, side, g);
                dst[i * side + j] = src[r * side + c];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_outside_the_training_range_are_named() {
        let c = CondScaling::default();
        assert!(c.outside([0.1, 1.0]).is_empty() && c.outside([0.3, 0.8]).is_empty());
        let w = c.outside([0.7, 0.8]);
        assert!(w.len() == 1 && w[0].contains("Omega_m = 0.7") && w[0].contains("[0.1, 0.5]"), "{w:?}");
        assert_eq!(c.outside([0.05, 1.2]).len(), 2);
    }

    #[test]
    fn the_eight_symmetries_of_the_square_are_distinct_and_a_group() {
        let side = 5;
        let m: Vec<f32> = (0..side * side).map(|v| v as f32).collect();
        let all: Vec<Vec<f32>> = (0..8).map(|g| dihedral(&m, side, g)).collect();
        assert_eq!(all[0], m);
        for a in 0..8 {
            for b in 0..a {
                assert_ne!(all[a], all[b], "symmetries {a} and {b}");
            }
            // Closed under composition: applying any symmetry to any image of m gives another image of m.
            for b in 0..8 {
                assert!(all.contains(&dihedral(&all[a], side, b)), "{b} after {a}");
            }
        }
        // Bit 2 is the transpose; bits 0 and 1 reverse the rows and the columns.
        assert_eq!(dihedral(&m, side, 4)[1], m[side]);
        assert_eq!(dihedral(&m, side, 1)[0], m[(side - 1) * side]);
        assert_eq!(dihedral(&m, side, 2)[0], m[side - 1]);
    }

    fn rng(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    /// Positive maps whose log10 spans a few decades, like HI column densities.
    fn maps(n: usize, side: usize, seed: u64) -> Vec<f32> {
        let mut r = rng(seed);
        (0..n * side * side).map(|_| 10f32.powf(r.random_range(5.0..11.0))).collect()
    }

    fn sets(n_sets: usize, mps: usize) -> HiMaps {
        HiMaps {
            side: 4,
            maps: maps(n_sets * mps, 4, 1),
            params: (0..n_sets * mps).map(|i| [0.1 + (i / mps) as f32 * 0.01, 0.8]).collect(),
            sim: (0..n_sets * mps).map(|i| (i / mps) as u32).collect(),
            maps_per_sim: mps,
        }
    }

    #[test]
    fn split_holds_out_whole_sets_deterministically() {
        let d = sets(20, 15);
        let (train, val) = d.split_by_sim(0.1, 3);
        assert_eq!(val.len(), 2 * 15);
        assert_eq!(train.len() + val.len(), d.len());
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..d.len()).collect::<Vec<_>>());
        // No parameter set on both sides.
        assert!(val.iter().all(|&i| train.iter().all(|&j| d.sim[j] != d.sim[i])));
        assert_eq!(d.split_by_sim(0.1, 3), (train.clone(), val.clone()));
        assert_ne!(d.split_by_sim(0.1, 4).1, val, "another seed holds out other sets");
        // At least one held-out set, at least one training set.
        assert_eq!(sets(2, 15).split_by_sim(0.01, 0).1.len(), 15);
        assert_eq!(sets(3, 15).split_by_sim(1.0, 0).0.len(), 15);
        assert!(d.split_by_sim(0.0, 0).1.is_empty() && d.split_by_sim(f64::NAN, 0).1.is_empty());
        assert!(sets(1, 15).split_by_sim(0.5, 0).1.is_empty());
    }

    /// Per pixel, log |dv/dn| against a central difference of v(n) in f64.
    #[test]
    fn scaling_jacobian_matches_finite_differences() {
        let train = maps(3, 8, 2);
        for kind in [ScalingKind::MinMax, ScalingKind::Sigmoid] {
            let s = MapScaling::fit(kind, train.chunks(64)).unwrap();
            for &n in train.iter().take(64).chain(&[1e3f32, 1e13]) {
                let x = n as f64;
                let h = 1e-5 * x;
                let fd = (s.v_of_u((x + h).log10()) - s.v_of_u((x - h).log10())) / (2.0 * h);
                let lad = s.log_abs_det(&[n]);
                assert!((lad - fd.abs().ln()).abs() < 1e-7, "{kind:?} at {n}: {lad} vs {}", fd.abs().ln());
            }
            // Pixels add up.
            let all = s.log_abs_det(&train[..64]);
            let each: f64 = train[..64].iter().map(|&n| s.log_abs_det(&[n])).sum();
            assert!((all - each).abs() < 1e-9 * all.abs());
            assert!(s.log_abs_det(&[1.0, 0.0]).is_nan() && s.log_abs_det(&[f32::NAN]).is_nan());
        }
    }

    #[test]
    fn scaling_round_trips_and_fits_higlow_statistics() {
        let train = maps(4, 8, 3);
        let u: Vec<f64> = train.iter().map(|&v| (v as f64).log10()).collect();
        let mean = u.iter().sum::<f64>() / u.len() as f64;
        let var = u.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (u.len() - 1) as f64;
        let mm = MapScaling::fit(ScalingKind::MinMax, [&train[..]]).unwrap();
        let sg = MapScaling::fit(ScalingKind::Sigmoid, train.chunks(64)).unwrap();
        let MapScaling::Sigmoid { mean: m, std } = sg else { panic!() };
        assert!((m - mean).abs() < 1e-10 && (std - var.sqrt()).abs() < 1e-10);
        let v = mm.forward(&train);
        assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
        assert!(v.contains(&-1.0) && v.contains(&1.0));
        for s in [mm, sg] {
            let back = s.inverse(&s.forward(&train));
            for (a, b) in back.iter().zip(&train) {
                assert!((a / b - 1.0).abs() < 2e-5, "{s:?}: {a} vs {b}");
            }
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<MapScaling>(&json).unwrap(), s);
        }
        // Sigmoid: values beyond (-1, 1) are clamped, so the inverse stays finite.
        assert!(sg.inverse(&[-1.0, 1.0, 2.0]).iter().all(|v| v.is_finite() && *v > 0.0));
        assert!(MapScaling::fit(ScalingKind::MinMax, [&[5.0f32; 10][..]]).is_err());
        assert!(MapScaling::fit(ScalingKind::Sigmoid, [&[5.0f32, 0.0][..]]).unwrap_err().to_string().contains("0"));
        assert!(MapScaling::fit(ScalingKind::Sigmoid, std::iter::empty()).is_err());
    }

    #[test]
    fn condition_scaling_defaults_to_camels_ranges() {
        let c = CondScaling::default();
        assert_eq!(c.forward([0.1, 0.6]), [-1.0, -1.0]);
        assert_eq!(c.forward([0.5, 1.0]), [1.0, 1.0]);
        let x = c.inverse(c.forward([0.3137, 0.8411]));
        assert!((x[0] - 0.3137).abs() < 1e-15 && (x[1] - 0.8411).abs() < 1e-15);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<CondScaling>(&json).unwrap(), c);
    }

    /// Every output is one of HIGlow's transforms (roll by 0..side-2 per axis, then optional flips, then with
    /// `transpose` an optional transpose), and all (side - 1)^2 * 4 (* 2) of them come up about equally often.
    #[test]
    fn augment_is_a_uniform_random_shift_and_flip() {
        let side = 4;
        let map: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let candidate = |sr: usize, sc: usize, f: usize| -> Vec<f32> {
            let rolled = |i: usize, j: usize| map[((i + side - sr) % side) * side + (j + side - sc) % side];
            let mut out = vec![0f32; 16];
            for p in 0..16 {
                let (i, j) = (p / side, p % side);
                let v = rolled(if f & 1 == 1 { side - 1 - i } else { i }, if f & 2 == 2 { side - 1 - j } else { j });
                out[if f & 4 == 4 { j * side + i } else { p }] = v;
            }
            out
        };
        for transpose in [false, true] {
            let kinds = if transpose { 8 } else { 4 };
            let mut all = vec![];
            for sr in 0..side - 1 {
                for sc in 0..side - 1 {
                    for f in 0..kinds {
                        all.push(candidate(sr, sc, f));
                    }
                }
            }
            let mut counts = vec![0usize; all.len()];
            let mut r = rng(5);
            let draws = 1000 * all.len();
            for _ in 0..draws {
                let out = augment(&map, side, transpose, &mut r);
                let k = all.iter().position(|c| c == &out).expect("an output that is not a HIGlow transform");
                counts[k] += 1;
            }
            // 1000 expected each, sd ~31.
            assert!(counts.iter().all(|&c| (850..1150).contains(&c)), "{counts:?}");
            assert_eq!(augment(&[2.0], 1, transpose, &mut r), vec![2.0]);
        }
        // Two planes move together: the second plane (the first plus 100) stays the first plus 100.
        let two: Vec<f32> = map.iter().copied().chain(map.iter().map(|v| v + 100.0)).collect();
        let out = augment(&two, side, true, &mut rng(9));
        assert!(out[..16].iter().zip(&out[16..]).all(|(a, b)| b - a == 100.0));
    }
}
