//! Data preparation: load a folder (or .npz) of galaxies, clean them as GalacticFlow, compute the
//! conditions, leave whole galaxies out for validation, fit the standardisation on the training galaxies.
use crate::data::clean::{clean, CleanConfig, CleanReport};
use crate::data::conditions::{condition_names, conditions, ConditionSet, ExtraConditions, Standardizer, StarSet};
use crate::data::{load, Galaxy, Layout};
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrepareConfig {
    pub clean: CleanConfig,
    /// Galaxies left out for validation, by id; if empty, `val_fraction` of them chosen with `seed`.
    pub val_ids: Vec<String>,
    pub val_fraction: f64,
    pub seed: u64,
    /// CSV of extra per-galaxy conditions (`id,name1,...`).
    pub extra_conditions: Option<PathBuf>,
    /// How the files lay out their stars ([stars, 11] or GalacticFlow's [11, stars]).
    #[serde(default)]
    pub layout: Layout,
    /// Also condition on log10 M_dm from the file names (after the four galaxy parameters).
    #[serde(default)]
    pub dm_mass: bool,
}

impl Default for PrepareConfig {
    fn default() -> Self {
        PrepareConfig {
            clean: CleanConfig::default(),
            val_ids: Vec::new(),
            val_fraction: 0.2,
            seed: 0,
            extra_conditions: None,
            layout: Layout::Auto,
            dm_mass: false,
        }
    }
}

pub struct Prepared {
    pub train: Vec<Galaxy>,
    pub val: Vec<Galaxy>,
    pub train_cond: Vec<Vec<f64>>,
    pub val_cond: Vec<Vec<f64>>,
    pub standardizer: Standardizer,
    pub report: CleanReport,
}

impl Prepared {
    pub fn train_set(&self) -> StarSet {
        StarSet::build(&self.train, &self.train_cond, &self.standardizer)
    }
    pub fn val_set(&self) -> StarSet {
        StarSet::build(&self.val, &self.val_cond, &self.standardizer)
    }
}

/// The validation ids among `ids`: `val_ids` if given (each must be present), else `val_fraction` of them
/// chosen with `seed` (at least one of each side when there are two or more). The autoencoder uses the same
/// rule, so images and stars of one galaxy land on the same side.
pub fn pick_val_ids(ids: &[String], val_ids: &[String], val_fraction: f64, seed: u64) -> Result<Vec<String>> {
    if !val_ids.is_empty() {
        if let Some(missing) = val_ids.iter().find(|id| !ids.contains(id)) {
            return Err(Error::Data(format!("validation galaxy '{missing}' is not among the (cleaned) galaxies")));
        }
        return Ok(val_ids.to_vec());
    }
    let mut ids = ids.to_vec();
    ids.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let k = ((ids.len() as f64 * val_fraction).round() as usize)
        .clamp(usize::from(ids.len() >= 2), ids.len().saturating_sub(1));
    ids.truncate(k);
    Ok(ids)
}

/// Splits cleaned galaxies into (train, val) (see [`pick_val_ids`]); a validation id that cleaning dropped
/// is an error saying so.
fn split(gals: Vec<Galaxy>, cfg: &PrepareConfig, report: &CleanReport) -> Result<(Vec<Galaxy>, Vec<Galaxy>)> {
    if let Some((id, why)) = cfg.val_ids.iter().find_map(|id| report.dropped(id).map(|why| (id, why))) {
        return Err(Error::Data(format!("validation galaxy '{id}' was dropped by cleaning: {why}")));
    }
    let ids: Vec<String> = gals.iter().map(|g| g.id.clone()).collect();
    let val_ids = pick_val_ids(&ids, &cfg.val_ids, cfg.val_fraction, cfg.seed)?;
    let (val, train): (Vec<Galaxy>, Vec<Galaxy>) = gals.into_iter().partition(|g| val_ids.contains(&g.id));
    if train.is_empty() {
        return Err(Error::Data("no galaxies left for training".into()));
    }
    Ok((train, val))
}

pub fn prepare(data: &Path, cfg: &PrepareConfig) -> Result<Prepared> {
    let raw = load(data, cfg.layout)?;
    let (kept, report) = clean(&raw, &cfg.clean)?;
    if kept.is_empty() {
        return Err(Error::Data(format!("no galaxy is left after cleaning. {report}")));
    }
    let extra = cfg.extra_conditions.as_deref().map(ExtraConditions::read_csv).transpose()?;
    let set = ConditionSet { dm_mass: cfg.dm_mass, extra: extra.as_ref() };
    let (train, val) = split(kept, cfg, &report)?;
    let conds = |gs: &[Galaxy]| gs.iter().map(|g| conditions(g, set)).collect::<Result<Vec<_>>>();
    let (train_cond, val_cond) = (conds(&train)?, conds(&val)?);
    let standardizer = Standardizer::fit(&train, &train_cond, condition_names(set));
    Ok(Prepared { train, val, train_cond, val_cond, standardizer, report })
}

/// Writes the prepared sets as .npy (train_x, train_c, val_x, val_c; conditions repeated per star) and
/// prepared.json, so other tools (benches/torch/zuko_flows.py) train on exactly the same data.
pub fn export(p: &Prepared, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    for (name, set) in [("train", p.train_set()), ("val", p.val_set())] {
        let n = set.len();
        let x = ndarray::Array2::from_shape_vec((n, crate::data::MODELLED.len()), set.x.clone())
            .map_err(|e| Error::Data(e.to_string()))?;
        let c: Vec<f32> = set
            .galaxy
            .iter()
            .flat_map(|&g| set.cond[g as usize * set.cond_dim..(g as usize + 1) * set.cond_dim].iter().copied())
            .collect();
        let c = ndarray::Array2::from_shape_vec((n, set.cond_dim), c).map_err(|e| Error::Data(e.to_string()))?;
        crate::io::write_npy_f32(&dir.join(format!("{name}_x.npy")), &x.into_dyn())?;
        crate::io::write_npy_f32(&dir.join(format!("{name}_c.npy")), &c.into_dyn())?;
    }
    let info = serde_json::json!({
        "standardizer": p.standardizer,
        "log_jacobian": p.standardizer.log_jacobian(),
        "train_ids": p.train.iter().map(|g| &g.id).collect::<Vec<_>>(),
        "val_ids": p.val.iter().map(|g| &g.id).collect::<Vec<_>>(),
        "report": p.report.to_string(),
        "dropped": p.report.galaxies_cut,
        "non_finite_stars_cut": p.report.non_finite_cut,
    });
    let bytes = serde_json::to_vec_pretty(&info).map_err(|e| Error::Data(e.to_string()))?;
    crate::io::write_atomic(&dir.join("prepared.json"), |w| std::io::Write::write_all(w, &bytes))
}
