//! Per-galaxy conditions and the standardisation shared by training and sampling.
//! Conditions, in this one fixed order for training, sampling and evaluation alike: log10 M_stars
//! (sum of the mass column), tau50 (median age), tau10 (10th-percentile age), Z_av (mean Z), then, if asked,
//! log10 M_dm read from a GalacticFlow file name (its condition functions may use the galaxy's M_dm), then any
//! extra per-galaxy columns (e.g. autoencoder latents) from a CSV keyed by galaxy id. A condition that is
//! not finite is an error naming the galaxy: one -inf would wreck the standardisation of every other.
//! Every star column and every condition is z-scored with the mean and std over the stacked star table
//! (conditions weighted by each galaxy's star count, as GalacticFlow), and the statistics travel with
//! the model so samples come back in physical units.
use super::stats::{mean, percentile};
use super::{Galaxy, AGE, MASS, METALS};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const BASE_CONDITIONS: [&str; 4] = ["log10_Mstars", "tau50", "tau10", "Z_av"];
/// The dark-matter mass condition, log10 M_dm [Msun] (as GalacticFlow log10's its masses before z-scoring).
pub const DM_CONDITION: &str = "log10_Mdm";

/// The four GalacticFlow conditions of one galaxy (log10 M_stars is -inf or NaN for a massless galaxy;
/// [`conditions`] refuses it).
pub fn base_conditions(g: &Galaxy) -> [f64; 4] {
    let mass: f64 = g.stars.column(MASS).iter().map(|&m| f64::from(m)).sum();
    let age = g.stars.column(AGE).to_vec();
    let z = g.stars.column(METALS).to_vec();
    [mass.log10(), percentile(&age, 50.0), percentile(&age, 10.0), mean(&z)]
}

/// The conditions beyond the four of GalacticFlow's `cond_M_stars_2age_avZ`, in their order.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConditionSet<'a> {
    /// log10 M_dm from the galaxy's file name (`..._<NIHAO id>_<M_dm>.npy`).
    pub dm_mass: bool,
    /// Columns from a CSV keyed by galaxy id.
    pub extra: Option<&'a ExtraConditions>,
}

/// Extra per-galaxy condition columns read from a CSV: a header `id,name1,name2,...`, then one row per galaxy.
#[derive(Clone, Debug, Default)]
pub struct ExtraConditions {
    pub names: Vec<String>,
    pub by_id: HashMap<String, Vec<f64>>,
}

impl ExtraConditions {
    pub fn read_csv(path: &Path) -> Result<ExtraConditions> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        let (names, rows) = super::text_tables::extra_conditions(&text).map_err(|e| Error::file(path, e))?;
        Ok(ExtraConditions { names, by_id: rows.into_iter().collect() })
    }
}

/// Condition names in order.
pub fn condition_names(set: ConditionSet) -> Vec<String> {
    let mut v: Vec<String> = BASE_CONDITIONS.iter().map(|s| s.to_string()).collect();
    if set.dm_mass {
        v.push(DM_CONDITION.to_string());
    }
    if let Some(e) = set.extra {
        v.extend(e.names.iter().cloned());
    }
    v
}

/// The full condition vector of a galaxy (physical units), every value finite.
pub fn conditions(g: &Galaxy, set: ConditionSet) -> Result<Vec<f64>> {
    let mut v = base_conditions(g).to_vec();
    if set.dm_mass {
        let name = g.name.as_ref().ok_or_else(|| {
            g.error(format!(
                "{DM_CONDITION} needs the dark-matter mass from the file name, which must end in \
                 _<NIHAO id>_<M_dm>.npy with M_dm a positive number in Msun, as GalacticFlow names its files"
            ))
        })?;
        v.push(name.m_dm.log10());
    }
    if let Some(e) = set.extra {
        let x = e
            .by_id
            .get(&g.id)
            .ok_or_else(|| Error::Data(format!("galaxy '{}' has no row in the extra-condition file", g.id)))?;
        v.extend_from_slice(x);
    }
    let names = condition_names(set);
    if let Some((name, x)) = names.iter().zip(&v).find(|(_, x)| !x.is_finite()) {
        return Err(g.error(format!("condition {name} is {x}, not a finite number")));
    }
    Ok(v)
}

/// z-scoring statistics of the star columns and conditions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Standardizer {
    pub star_mean: Vec<f64>,
    pub star_std: Vec<f64>,
    pub cond_names: Vec<String>,
    pub cond_mean: Vec<f64>,
    pub cond_std: Vec<f64>,
}

fn mean_std(cols: usize, rows: impl Iterator<Item = (Vec<f64>, f64)>) -> (Vec<f64>, Vec<f64>) {
    let (mut s, mut s2, mut w) = (vec![0.0; cols], vec![0.0; cols], 0.0);
    for (r, wt) in rows {
        for c in 0..cols {
            s[c] += wt * r[c];
            s2[c] += wt * r[c] * r[c];
        }
        w += wt;
    }
    let m: Vec<f64> = s.iter().map(|v| v / w).collect();
    // A constant column keeps std 1, so it standardises to 0 instead of NaN.
    let sd =
        (0..cols).map(|c| (s2[c] / w - m[c] * m[c]).max(0.0).sqrt()).map(|v| if v > 1e-12 { v } else { 1.0 }).collect();
    (m, sd)
}

impl Standardizer {
    /// Statistics over the stacked stars of `galaxies` (their modelled columns) and their conditions.
    pub fn fit(galaxies: &[Galaxy], conds: &[Vec<f64>], cond_names: Vec<String>) -> Standardizer {
        let stars = galaxies.iter().flat_map(|g| {
            g.modelled().outer_iter().map(|r| (r.iter().map(|&v| f64::from(v)).collect(), 1.0)).collect::<Vec<_>>()
        });
        let (star_mean, star_std) = mean_std(super::MODELLED.len(), stars);
        let c = cond_names.len();
        let (cond_mean, cond_std) = mean_std(c, galaxies.iter().zip(conds).map(|(g, v)| (v.clone(), g.n() as f64)));
        Standardizer { star_mean, star_std, cond_names, cond_mean, cond_std }
    }

    pub fn stars_to_model(&self, row: &[f32], out: &mut [f32]) {
        for c in 0..row.len() {
            out[c] = ((f64::from(row[c]) - self.star_mean[c]) / self.star_std[c]) as f32;
        }
    }

    pub fn stars_to_physical(&self, row: &[f32], out: &mut [f32]) {
        for c in 0..row.len() {
            out[c] = (f64::from(row[c]) * self.star_std[c] + self.star_mean[c]) as f32;
        }
    }

    /// One or more whole conditions, row-major.
    pub fn cond_to_model(&self, c: &[f64]) -> Vec<f32> {
        let n = self.cond_mean.len();
        c.iter().enumerate().map(|(i, v)| ((v - self.cond_mean[i % n]) / self.cond_std[i % n]) as f32).collect()
    }

    /// log|d model / d physical| of one star: what converts a model-space density to physical units.
    pub fn log_jacobian(&self) -> f64 {
        -self.star_std.iter().map(|s| s.ln()).sum::<f64>()
    }
}

/// Standardised stars of a set of galaxies, ready for mini-batches: x [N, 10], the galaxy of each star,
/// and the standardised conditions per galaxy [G, C].
pub struct StarSet {
    pub ids: Vec<String>,
    pub x: Vec<f32>,
    pub galaxy: Vec<u32>,
    pub cond: Vec<f32>,
    pub cond_dim: usize,
}

impl StarSet {
    pub fn build(galaxies: &[Galaxy], conds: &[Vec<f64>], st: &Standardizer) -> StarSet {
        let d = super::MODELLED.len();
        let n: usize = galaxies.iter().map(|g| g.n()).sum();
        let (mut x, mut galaxy) = (vec![0.0; n * d], Vec::with_capacity(n));
        let mut k = 0;
        for (gi, g) in galaxies.iter().enumerate() {
            for r in g.modelled().outer_iter() {
                let row: Vec<f32> = r.to_vec();
                st.stars_to_model(&row, &mut x[k * d..(k + 1) * d]);
                galaxy.push(gi as u32);
                k += 1;
            }
        }
        let cond = conds.iter().flat_map(|c| st.cond_to_model(c)).collect();
        StarSet { ids: galaxies.iter().map(|g| g.id.clone()).collect(), x, galaxy, cond, cond_dim: st.cond_names.len() }
    }

    pub fn len(&self) -> usize {
        self.galaxy.len()
    }

    pub fn is_empty(&self) -> bool {
        self.galaxy.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn galaxy() -> Galaxy {
        // Ages 1..=10, masses 1e4 each, Z = 0.01 and 0.03 alternating.
        let stars = Array2::from_shape_fn((10, 11), |(r, c)| match c {
            AGE => (r + 1) as f32,
            MASS => 1e4,
            METALS => {
                if r % 2 == 0 {
                    0.01
                } else {
                    0.03
                }
            }
            _ => 0.0,
        });
        Galaxy::new("g7", stars)
    }

    #[test]
    fn base_conditions_are_galacticflows() {
        let c = base_conditions(&galaxy());
        assert!((c[0] - 5.0).abs() < 1e-12, "log10 of 10 x 1e4 Msun: {}", c[0]);
        assert!((c[1] - 5.5).abs() < 1e-12, "median age: {}", c[1]);
        assert!((c[2] - 1.9).abs() < 1e-9, "10th percentile age (numpy linear): {}", c[2]);
        assert!((c[3] - 0.02).abs() < 1e-9, "mean Z: {}", c[3]);
    }

    #[test]
    fn extra_conditions_come_from_a_csv_keyed_by_id() {
        let dir = std::env::temp_dir().join(format!("gforge-extra-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("latents.csv");
        std::fs::write(&p, "id,l0,l1\ng7,0.5,-1.25\ng8,1,2\n").unwrap();
        let e = ExtraConditions::read_csv(&p).unwrap();
        assert_eq!(e.names, ["l0", "l1"]);
        let set = ConditionSet { extra: Some(&e), ..Default::default() };
        let c = conditions(&galaxy(), set).unwrap();
        assert_eq!(&c[4..], &[0.5, -1.25]);
        assert_eq!(condition_names(set).len(), 6);
        let missing = Galaxy { id: "g9".into(), ..galaxy() };
        assert!(conditions(&missing, set).unwrap_err().to_string().contains("g9"));
        std::fs::write(&p, "id,l0\ng7,nan\n").unwrap();
        assert!(ExtraConditions::read_csv(&p).unwrap_err().to_string().contains("line 2"));
        std::fs::write(&p, "name,l0\n").unwrap();
        assert!(ExtraConditions::read_csv(&p).is_err());
    }

    #[test]
    fn dark_matter_mass_comes_from_the_name_and_every_condition_is_finite() {
        let set = ConditionSet { dm_mass: true, ..Default::default() };
        assert_eq!(condition_names(set), ["log10_Mstars", "tau50", "tau10", "Z_av", "log10_Mdm"]);
        let named = Galaxy::new("g1.05e11_2.5e11", galaxy().stars);
        let c = conditions(&named, set).unwrap();
        assert!((c[4] - 2.5e11f64.log10()).abs() < 1e-12, "{c:?}");
        let e = conditions(&galaxy(), set).unwrap_err().to_string();
        assert!(e.contains("'g7'") && e.contains("_<NIHAO id>_<M_dm>.npy"), "{e}");
        let mut massless = galaxy();
        massless.stars.column_mut(MASS).fill(0.0);
        let e = conditions(&massless, ConditionSet::default()).unwrap_err().to_string();
        assert!(e.contains("'g7'") && e.contains("log10_Mstars is -inf"), "{e}");
    }
}
